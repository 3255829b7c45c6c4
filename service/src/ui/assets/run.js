// The run page: header, then tabs: history charts, system charts, overview
// (identity and metadata), config, summary, alerts, files, console output,
// media (images, tables, plots) and artifacts (media.js).
// A running run is polled: new rows redraw the visible charts without a reload.

import { ChartCard, followResizes, seriesUrl, xLabel } from "./chart.js";
import { artifactsView, mediaView } from "./media.js";
import {
  api, crumbs, el, enc, fill, fmtBytes, fmtDuration, fmtTime, fmtValue, isLive, kvTable, notice,
  PALETTE, poll, runPath, stateBadge,
} from "./util.js";

const TABS = [
  ["charts", "Charts"],
  ["media", "Media"],
  ["system", "System"],
  ["overview", "Overview"],
  ["config", "Config"],
  ["summary", "Summary"],
  ["alerts", "Alerts"],
  ["files", "Files"],
  ["artifacts", "Artifacts"],
  ["logs", "Logs"],
];

/** Groups metric infos by section, in the server's order. */
export function bySection(metrics) {
  const sections = new Map();
  for (const m of metrics) {
    if (!sections.has(m.section)) sections.set(m.section, []);
    sections.get(m.section).push(m);
  }
  return sections;
}

/** A collapsible section of chart cards. */
export function chartSection(name, cards) {
  return el(
    "details",
    { class: "chart-section", open: true, dataset: { section: name } },
    el("summary", {}, el("span", { class: "section-name", text: name }), el("span", { class: "count", text: String(cards.length) })),
    el("div", { class: "chart-grid" }, cards.map((c) => c.root)),
  );
}

/** The x axis a metric is drawn against for the chosen axis setting. */
export function axisFor(metric, choice) {
  if (choice === "auto") return metric.step_metric || "_step";
  return choice;
}

function axisSelect(axes, value, onChange, withAuto) {
  const options = [];
  if (withAuto) options.push(["auto", "Step metric (define_metric), else step"]);
  for (const a of axes) options.push([a, xLabel(a)]);
  const select = el(
    "select",
    { id: withAuto ? "x-axis" : "system-x-axis", onchange: (e) => onChange(e.target.value) },
    options.map(([v, label]) => el("option", { value: v, text: label, selected: v === value })),
  );
  return el("label", { class: "field" }, "x axis ", select);
}

class RunPage {
  constructor(root, project, id) {
    this.root = root;
    this.project = project;
    this.id = id;
    this.base = `/api/runs/${runPath(project, id)}`;
    this.xChoice = "auto";
    this.systemX = "_runtime";
    this.showHidden = false;
    this.filter = "";
    this.cards = new Map();
    this.systemCards = new Map();
    this.metrics = null;
    this.last = {};
  }

  async start() {
    crumbs([[this.project, `/projects/${enc(this.project)}`], [this.id, null]]);
    this.detail = await api(this.base);
    this.header = el("div", { class: "run-header" });
    this.tabBar = el("nav", { class: "tabs" });
    this.panels = {};
    for (const [key] of TABS) this.panels[key] = el("section", { class: "panel", id: `panel-${key}`, hidden: true });
    fill(this.root, this.header, this.tabBar, Object.values(this.panels));
    this.renderHeader();
    this.renderStatic();
    window.addEventListener("hashchange", () => this.showTab());
    this.showTab();
    const waiting = notice(`Reading the run's history for the charts (${this.detail.run.steps.toLocaleString()} steps; a big run takes a while the first time it is opened)…`);
    fill(this.panels.charts, waiting);
    fill(this.panels.system, waiting.cloneNode(true));
    await this.loadMetrics();
    followResizes(() => [...this.cards.values(), ...this.systemCards.values()]);
    if (isLive(this.detail.run.state)) this.stopPolling = poll(() => this.tick(), 2000);
  }

  renderHeader() {
    const r = this.detail.run;
    document.title = `${r.name} · runcore`;
    const facts = [
      ["Path", r.path],
      ["Group", r.group],
      ["Job type", r.job_type],
      ["Started", fmtTime(r.start_time)],
      ["Duration", fmtDuration(r.duration)],
      ["Steps", String(r.steps)],
      ["Exit code", r.exit_code === null || r.exit_code === undefined ? "" : String(r.exit_code)],
    ].filter(([, v]) => v);
    fill(
      this.header,
      el("h1", {}, el("span", { id: "run-name", text: r.name }), " ", stateBadge(r.state)),
      el("dl", { class: "facts" }, facts.map(([k, v]) => el("div", {}, el("dt", { text: k }), el("dd", { text: v })))),
      r.tags.length ? el("div", { class: "tags" }, r.tags.map((t) => el("span", { class: "tag", text: t }))) : null,
      r.notes ? el("p", { class: "notes", text: r.notes }) : null,
    );
  }

  tabCount(key) {
    if (key === "alerts") return this.detail.alerts.length;
    if (key === "files") return this.files ? this.files.length : null;
    if (key === "artifacts") return this.artifacts ? this.artifacts.logged.length + this.artifacts.used.length : null;
    if (key === "media") return this.media ? this.media.length : null;
    return null;
  }

  renderTabs() {
    const current = this.currentTab();
    fill(
      this.tabBar,
      TABS.filter(([key]) => key !== "logs" || this.detail.has_output).map(([key, label]) => {
        const n = this.tabCount(key);
        return el("a", { href: `#${key}`, class: key === current ? "tab active" : "tab", dataset: { tab: key } }, label, n === null ? null : el("span", { class: "count", text: String(n) }));
      }),
    );
  }

  currentTab() {
    const h = location.hash.slice(1);
    return TABS.some(([k]) => k === h) ? h : "charts";
  }

  showTab() {
    const tab = this.currentTab();
    for (const [key, panel] of Object.entries(this.panels)) panel.hidden = key !== tab;
    this.renderTabs();
    if (tab === "files" && !this.files) this.loadFiles();
    if (tab === "artifacts" && !this.artifacts) this.loadArtifacts();
    if (tab === "media" && !this.media) this.loadMedia();
    if (tab === "logs") this.loadOutput();
  }

  renderStatic() {
    const d = this.detail;
    fill(this.panels.overview, el("h2", { text: "Run" }), kvTable(overviewFacts(d.run), ""), el("h2", { text: "System" }), kvTable(d.metadata, "No metadata recorded."));
    fill(this.panels.config, kvTable(d.config, "No config."));
    fill(this.panels.summary, kvTable(d.summary, "No summary yet."));
    fill(this.panels.alerts, alertsTable(d.alerts));
  }

  async loadMetrics() {
    const m = await api(`${this.base}/metrics`);
    this.metrics = m;
    this.renderCharts();
    this.renderSystem();
    // A big run being indexed: the charts are a preview until the index is done.
    if (m.indexing) this.stopIndexPoll = poll(() => this.indexTick(), 1000);
  }

  /** One poll while the run is indexed: progress, then the full charts. */
  async indexTick() {
    const m = await api(`${this.base}/metrics`);
    if (m.indexing) {
      this.metrics.indexing = m.indexing;
      const banner = document.getElementById("indexing");
      if (banner) banner.textContent = indexingText(this.metrics);
      return;
    }
    this.stopIndexPoll();
    this.metrics = m;
    this.renderCharts();
    this.renderSystem();
    for (const c of [...this.cards.values(), ...this.systemCards.values()]) c.invalidate();
  }

  historyCard(metric) {
    const card = new ChartCard(metric.key, async (width, range) => {
      const x = axisFor(metric, this.xChoice);
      const data = await api(seriesUrl(this.project, this.id, { key: metric.key, x, width, range }));
      card.root.dataset.preview = data.preview ? "1" : "";
      return [{ label: metric.key, color: PALETTE[0], data }];
    });
    return card;
  }

  renderCharts() {
    const m = this.metrics;
    const visible = m.history.filter((h) => (this.showHidden || !h.hidden) && (!this.filter || h.key.toLowerCase().includes(this.filter)));
    const sections = [];
    for (const [name, list] of bySection(visible)) {
      const cards = list.map((metric) => {
        if (!this.cards.has(metric.key)) this.cards.set(metric.key, this.historyCard(metric));
        return this.cards.get(metric.key);
      });
      sections.push(chartSection(name, cards));
    }
    const hiddenCount = m.history.filter((h) => h.hidden).length;
    const toolbar = el(
      "div",
      { class: "toolbar" },
      axisSelect(m.x_axes, this.xChoice, (v) => {
        this.xChoice = v;
        for (const c of this.cards.values()) {
          c.range = null;
          c.invalidate();
        }
      }, true),
      el("input", { type: "search", id: "metric-filter", placeholder: "Filter metrics", value: this.filter, oninput: (e) => {
        this.filter = e.target.value.trim().toLowerCase();
        this.renderCharts();
      } }),
      hiddenCount
        ? el("label", { class: "field" }, el("input", { type: "checkbox", id: "show-hidden", checked: this.showHidden, onchange: (e) => {
          this.showHidden = e.target.checked;
          this.renderCharts();
        } }), ` show ${hiddenCount} hidden`)
        : null,
      el("span", { class: "muted", text: `${m.indexing ? "about " : ""}${m.rows.toLocaleString()} rows` }),
    );
    const banner = m.indexing ? el("p", { id: "indexing", class: "indexing", text: indexingText(m) }) : null;
    const focused = document.activeElement && document.activeElement.id === "metric-filter";
    fill(this.panels.charts, toolbar, banner, sections.length ? sections : notice(m.history.length ? "No metric matches." : "No metrics logged yet."));
    if (focused) {
      const input = document.getElementById("metric-filter");
      input.focus();
      input.setSelectionRange(input.value.length, input.value.length);
    }
  }

  renderSystem() {
    const m = this.metrics;
    for (const metric of m.system) {
      if (this.systemCards.has(metric.key)) continue;
      const card = new ChartCard(metric.key.replace(/^system\./, ""), async (width, range) => {
        const data = await api(seriesUrl(this.project, this.id, { key: metric.key, x: this.systemX, width, range, source: "system" }));
        card.root.dataset.preview = data.preview ? "1" : "";
        return [{ label: metric.key, color: PALETTE[1], data }];
      });
      this.systemCards.set(metric.key, card);
    }
    const sections = [];
    for (const [name, list] of bySection(m.system)) sections.push(chartSection(name, list.map((x) => this.systemCards.get(x.key))));
    const toolbar = el("div", { class: "toolbar" }, axisSelect(m.system_x_axes, this.systemX, (v) => {
      this.systemX = v;
      for (const c of this.systemCards.values()) {
        c.range = null;
        c.invalidate();
      }
    }, false));
    fill(this.panels.system, toolbar, sections.length ? sections : notice("No system metrics sampled (they are off for this run, or none were taken yet)."));
  }

  async loadFiles() {
    this.files = await api(`${this.base}/files`);
    fill(this.panels.files, filesTable(this.project, this.id, this.files));
    this.renderTabs();
  }

  async loadArtifacts() {
    this.artifacts = await api(`${this.base}/artifacts`);
    fill(this.panels.artifacts, artifactsView(this.artifacts, this.detail.run.path));
    this.renderTabs();
  }

  async loadMedia() {
    this.media = await api(`${this.base}/media`);
    fill(this.panels.media, mediaView(this.base, this.project, this.id, this.media));
    this.renderTabs();
  }

  async loadOutput() {
    if (!this.output) {
      this.output = { end: 0, pre: el("pre", { id: "output", class: "output" }) };
      fill(this.panels.logs, this.output.pre);
      const first = await api(`${this.base}/output`);
      this.appendOutput(first);
      return;
    }
    const more = await api(`${this.base}/output?from=${this.output.end}`);
    this.appendOutput(more);
  }

  appendOutput(chunk) {
    // eslint-disable-next-line no-control-regex
    const text = chunk.text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
    if (chunk.start > this.output.end && this.output.end === 0 && chunk.start > 0) {
      this.output.pre.append(`… (${fmtBytes(chunk.start)} earlier)\n`);
    }
    this.output.pre.append(text);
    this.output.end = chunk.end;
  }

  /** One poll of a live run. */
  async tick() {
    const s = await api(`${this.base}/status`);
    const changed = (k) => s[k] !== this.last[k];
    if (changed("history_bytes") || changed("events_bytes")) {
      const before = this.metrics;
      this.metrics = await api(`${this.base}/metrics`);
      const newKeys = (list, old) => list.length !== old.length;
      if (newKeys(this.metrics.history, before.history) || this.metrics.x_axes.length !== before.x_axes.length) this.renderCharts();
      if (newKeys(this.metrics.system, before.system)) this.renderSystem();
      if (changed("history_bytes")) for (const c of this.cards.values()) c.invalidate();
      // New media show when the tab is opened again (not redrawn under the reader).
      if (changed("history_bytes") && this.currentTab() !== "media") this.media = null;
      if (changed("events_bytes")) for (const c of this.systemCards.values()) c.invalidate();
    }
    if (changed("alerts_bytes") || s.run.state !== this.detail.run.state || s.run.steps !== this.detail.run.steps) {
      this.detail = await api(this.base);
      this.renderHeader();
      this.renderStatic();
      this.renderTabs();
    }
    if (changed("output_bytes") && this.output) await this.loadOutput();
    this.last = s;
    if (!isLive(s.run.state) && this.stopPolling) {
      this.stopPolling();
      this.files = null;
      this.artifacts = null;
      this.media = null;
      if (this.currentTab() === "files") this.loadFiles();
      if (this.currentTab() === "artifacts") this.loadArtifacts();
      if (this.currentTab() === "media") this.loadMedia();
    }
  }
}

/** The preview banner's text: what the charts are drawn from, and progress. */
function indexingText(m) {
  return `Preview: these charts are drawn from ${m.preview_lines.toLocaleString()} rows sampled across the run, while its chart index is built (indexing ${m.indexing.percent}%). Full-resolution charts replace them when it is done.`;
}

function overviewFacts(r) {
  return {
    id: r.id,
    name: r.name,
    path: r.path,
    state: r.state,
    group: r.group,
    job_type: r.job_type,
    tags: r.tags.join(", "),
    notes: r.notes,
    started: fmtTime(r.start_time),
    ended: r.end_time ? fmtTime(r.end_time) : "",
    duration: fmtDuration(r.duration),
    steps: r.steps,
    exit_code: r.exit_code,
    resumed: r.resumed,
    client: r.client_host ? `${r.client_host} (pid ${r.client_pid})` : "",
    last_heartbeat: fmtTime(r.last_heartbeat),
  };
}

export function alertsTable(alerts) {
  if (!alerts.length) return notice("No alerts.");
  return el(
    "table",
    { class: "table", id: "alerts" },
    el("thead", {}, el("tr", {}, ["Time", "Level", "Title", "Text", "Outcome"].map((h) => el("th", { text: h })))),
    el("tbody", {}, alerts.map((a) => el(
      "tr",
      {},
      el("td", { text: fmtTime(a._timestamp) }),
      el("td", {}, el("span", { class: `level level-${String(a.level).toLowerCase()}`, text: a.level || "INFO" })),
      el("td", { text: a.title }),
      el("td", { class: "wrap", text: a.text }),
      el("td", { text: a.outcome === "throttled" ? `throttled until ${fmtTime(a.throttled_until)}` : fmtValue(a.outcome) }),
    ))),
  );
}

function filesTable(project, id, files) {
  if (!files.length) return notice("No saved files.");
  return el(
    "table",
    { class: "table", id: "files" },
    el("thead", {}, el("tr", {}, el("th", { text: "File" }), el("th", { class: "num", text: "Size" }))),
    el("tbody", {}, files.map((f) => el(
      "tr",
      {},
      el("td", {}, el("a", { href: `/files/${runPath(project, id)}/${f.path.split("/").map(enc).join("/")}`, download: f.path.split("/").pop(), text: f.path })),
      el("td", { class: "num", text: fmtBytes(f.size) }),
    ))),
  );
}

export async function runPage(root, project, id) {
  await new RunPage(root, project, id).start();
}

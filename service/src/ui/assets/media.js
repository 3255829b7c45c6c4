// The run page's Artifacts and Media tabs. Artifacts: the versions the run logged
// and used, with lineage links to the runs that logged or used each. Media: per
// history key, the latest image (a slider walks the steps), a table (sorted and
// paged by the server, /table) or a runcore.plot chart (a table with a `chart`
// spec) drawn with uPlot.
/* global uPlot */

import { api, el, enc, fill, fmtBytes, fmtTime, fmtValue, notice, PALETTE, runPath } from "./util.js";

const PAGE_ROWS = 20;
const PLOT_ROWS = 1000;
const HIST_BINS = 20;

function runLink(r) {
  return el("a", { class: "lineage", href: `/runs/${runPath(r.project, r.id)}`, title: r.path, text: `${r.project}/${r.id}` });
}

function links(refs, self) {
  const others = refs.filter((r) => r.path !== self);
  if (!others.length) return "—";
  return others.flatMap((r, i) => (i ? [", ", runLink(r)] : [runLink(r)]));
}

function artifactTable(id, rows, self) {
  return el(
    "table",
    { class: "table", id },
    el("thead", {}, el("tr", {}, ["Artifact", "Type", "Size", "Files", "Digest", "Created", "Logged by", "Used by"].map((h) => el("th", { text: h })))),
    el("tbody", {}, rows.map((a) => el(
      "tr",
      { dataset: { artifact: `${a.name}:${a.version}` } },
      el("td", { title: a.description || null }, el("strong", { text: `${a.name}:${a.version}` }), " ", a.aliases.map((x) => el("span", { class: "tag", text: x }))),
      el("td", { text: a.type }),
      el("td", { class: "num", text: fmtBytes(a.size) }),
      el("td", { class: "num", text: String(a.file_count) }),
      el("td", { class: "mono", title: a.digest, text: a.digest.slice(0, 12) }),
      el("td", { text: fmtTime(a.created_at) }),
      el("td", {}, links(a.logged_by, self)),
      el("td", {}, links(a.used_by, self)),
    ))),
  );
}

/** The Artifacts tab: `data` is /artifacts, `self` the run's path. */
export function artifactsView(data, self) {
  const part = (title, id, rows, empty) => [el("h2", { text: `${title} (${rows.length})` }), rows.length ? artifactTable(id, rows, self) : notice(empty)];
  return [
    ...part("Logged", "artifacts-logged", data.logged, "This run logged no artifacts."),
    ...part("Used", "artifacts-used", data.used, "This run used no artifacts."),
  ];
}

function fileUrl(prefix, project, id, path) {
  return `/${prefix}/${runPath(project, id)}/${path.split("/").map(enc).join("/")}`;
}

function stepLabel(item) {
  return item.step === null || item.step === undefined ? "" : `step ${item.step}`;
}

/** The latest image of a key, with a slider over its steps. */
function imageCard(project, id, m) {
  const img = el("img", { class: "media-image", alt: m.key });
  const caption = el("div", { class: "chart-note" });
  const show = (i) => {
    const item = m.items[i];
    img.src = fileUrl("media", project, id, item.path);
    caption.textContent = [stepLabel(item), item.caption].filter(Boolean).join(" · ");
  };
  const slider = m.items.length > 1
    ? el("input", { type: "range", class: "step-slider", min: 0, max: m.items.length - 1, value: m.items.length - 1, oninput: (e) => show(Number(e.target.value)) })
    : null;
  show(m.items.length - 1);
  return [img, slider, caption];
}

/** A table file shown a page at a time, sorted by a clicked header. */
class TableView {
  constructor(base, path) {
    this.base = base;
    this.path = path;
    this.offset = 0;
    this.sort = null;
    this.desc = false;
    this.root = el("div", { class: "media-table" });
  }

  async load() {
    const q = new URLSearchParams({ path: this.path, offset: this.offset, limit: PAGE_ROWS });
    if (this.sort !== null) q.set("sort", this.sort);
    if (this.desc) q.set("desc", "true");
    let page;
    try {
      page = await api(`${this.base}/table?${q}`);
    } catch (e) {
      fill(this.root, notice(e.message, "error"));
      return;
    }
    this.render(page);
  }

  render(page) {
    const head = page.columns.map((c) => {
      const mark = c === this.sort ? (this.desc ? " ▼" : " ▲") : "";
      return el("th", { class: "sortable", dataset: { column: c }, text: `${c}${mark}`, onclick: () => {
        this.desc = this.sort === c ? !this.desc : false;
        this.sort = c;
        this.offset = 0;
        this.load();
      } });
    });
    const last = Math.min(page.total, page.offset + page.rows.length);
    const pager = el(
      "div",
      { class: "pager" },
      el("button", { class: "prev", disabled: page.offset === 0, text: "‹ Prev", onclick: () => {
        this.offset = Math.max(0, this.offset - PAGE_ROWS);
        this.load();
      } }),
      el("span", { class: "range muted", text: page.total ? `rows ${page.offset + 1}–${last} of ${page.total}` : "no rows" }),
      el("button", { class: "next", disabled: last >= page.total, text: "Next ›", onclick: () => {
        this.offset += PAGE_ROWS;
        this.load();
      } }),
    );
    fill(
      this.root,
      el("table", { class: "table" }, el("thead", {}, el("tr", {}, head)), el("tbody", {}, page.rows.map((r) => el("tr", {}, r.map((v) => el("td", { class: typeof v === "number" ? "num" : null, text: typeof v === "object" && v !== null ? JSON.stringify(v) : fmtValue(v) })))))),
      pager,
    );
  }
}

function num(v) {
  if (typeof v === "number") return v;
  if (v === "Infinity") return Infinity;
  if (v === "-Infinity") return -Infinity;
  return null;
}

/** uPlot data and series for a chart spec over a table's rows. */
export function plotData(chart, columns, rows) {
  const col = (name) => columns.indexOf(name);
  const pts = (s) => ({ paths: () => null, points: { show: true, size: 6, fill: PALETTE[s % PALETTE.length] } });
  if (chart.type === "line" || chart.type === "scatter") {
    const [xi, yi, si] = [col(chart.x), col(chart.y), chart.stroke ? col(chart.stroke) : -1];
    const groups = new Map();
    for (const r of rows) {
      const key = si >= 0 ? String(r[si]) : chart.y;
      if (!groups.has(key)) groups.set(key, [[], []]);
      groups.get(key)[0].push(num(r[xi]));
      groups.get(key)[1].push(num(r[yi]));
    }
    const list = [...groups.entries()];
    const data = list.length === 1 ? list[0][1] : uPlot.join(list.map(([, d]) => d));
    const series = list.map(([label], s) => (chart.type === "scatter" ? { label, stroke: PALETTE[s % PALETTE.length], ...pts(s) } : { label, stroke: PALETTE[s % PALETTE.length], width: 1.5, spanGaps: true }));
    return { data, series, xLabels: null };
  }
  if (chart.type === "bar") {
    const [li, vi] = [col(chart.label), col(chart.value)];
    const labels = rows.map((r) => String(r[li]));
    return { data: [labels.map((_, i) => i), rows.map((r) => num(r[vi]))], series: [bars(chart.value)], xLabels: labels };
  }
  const vi = col(chart.value);
  const values = rows.map((r) => num(r[vi])).filter((v) => v !== null && Number.isFinite(v));
  if (!values.length) return { data: [[], []], series: [bars("count")], xLabels: null };
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const width = hi > lo ? (hi - lo) / HIST_BINS : 1;
  const counts = new Array(HIST_BINS).fill(0);
  for (const v of values) counts[Math.min(HIST_BINS - 1, Math.floor((v - lo) / width))] += 1;
  return { data: [counts.map((_, i) => lo + (i + 0.5) * width), counts], series: [bars("count")], xLabels: null };
}

function bars(label) {
  return { label, stroke: PALETTE[0], fill: `${PALETTE[0]}99`, paths: uPlot.paths.bars({ size: [0.8, 64] }) };
}

/** A runcore.plot chart drawn from its table. */
async function plotCard(base, item, box) {
  const chart = item.chart;
  const q = new URLSearchParams({ path: item.path, limit: PLOT_ROWS });
  // uPlot wants x ascending.
  if ((chart.type === "line" || chart.type === "scatter") && chart.x) q.set("sort", chart.x);
  const page = await api(`${base}/table?${q}`);
  const { data, series, xLabels } = plotData(chart, page.columns, page.rows);
  const axes = [{ values: xLabels ? (_, ticks) => ticks.map((t) => xLabels[t] ?? "") : undefined, label: chart.x || chart.label || chart.value }, { label: chart.y || chart.value || "count" }];
  const opts = {
    width: Math.max(240, box.clientWidth || 480),
    height: 220,
    scales: { x: { time: false } },
    series: [{ label: chart.x || chart.label || chart.value }, ...series],
    axes,
    legend: { show: series.length > 1 },
  };
  const plot = new uPlot(opts, data, box);
  box.dataset.state = "drawn";
  box.dataset.points = String(page.rows.length);
  return plot;
}

/** One key of the Media tab. */
function mediaCard(base, project, id, m) {
  const latest = m.items[m.items.length - 1];
  const card = el("div", { class: "media-card", dataset: { key: m.key, type: m.type } });
  const title = el("div", { class: "chart-title", title: m.key, text: latest.chart && latest.chart.title ? `${m.key} · ${latest.chart.title}` : m.key });
  if (m.type === "image-file") {
    fill(card, title, imageCard(project, id, m));
  } else if (m.type === "table-file" && latest.chart) {
    const box = el("div", { class: "plot-box" });
    fill(card, title, box, el("div", { class: "chart-note", text: stepLabel(latest) }));
    plotCard(base, latest, box).catch((e) => {
      box.dataset.state = "error";
      fill(box, notice(e.message, "error"));
    });
  } else if (m.type === "table-file") {
    let view = new TableView(base, latest.path);
    const pick = m.items.length > 1
      ? el("select", { class: "step-select", onchange: (e) => {
        const next = new TableView(base, m.items[Number(e.target.value)].path);
        view.root.replaceWith(next.root);
        view = next;
        view.load();
      } }, m.items.map((it, i) => el("option", { value: i, text: stepLabel(it) || `#${i}`, selected: i === m.items.length - 1 })))
      : null;
    fill(card, title, pick, view.root);
    view.load();
  } else {
    fill(card, title, el("ul", {}, m.items.slice(-10).map((it) => el("li", {}, el("a", { href: fileUrl("files", project, id, it.path), text: `${stepLabel(it)} ${it.path.split("/").pop()}` })))));
  }
  return card;
}

/** The Media tab: `keys` is /media. */
export function mediaView(base, project, id, keys) {
  if (!keys.length) return notice("No images, tables or plots logged.");
  return el("div", { class: "media-grid" }, keys.map((m) => mediaCard(base, project, id, m)));
}

// A project's runs table: name, state, group, job type, tags, start, duration,
// steps and chosen summary columns; sort by any column, filter by text, state,
// tag and group, group rows by `group`, select runs to compare. Refreshes itself
// while runs are live.

import {
  api, crumbs, el, enc, fill, fmtDuration, fmtTime, fmtValue, isLive, notice, poll, stateBadge,
} from "./util.js";

const STATES = ["running", "finished", "failed", "crashed", "killed", "preempting", "preempted"];
const DEFAULT_SUMMARY_COLUMNS = 4;

const FIXED = [
  { key: "name", label: "Name", get: (r) => r.name },
  { key: "state", label: "State", get: (r) => r.state },
  { key: "group", label: "Group", get: (r) => r.group },
  { key: "job_type", label: "Job type", get: (r) => r.job_type },
  { key: "tags", label: "Tags", get: (r) => r.tags.join(",") },
  { key: "start_time", label: "Started", get: (r) => r.start_time },
  { key: "duration", label: "Duration", get: (r) => r.duration },
  { key: "steps", label: "Steps", get: (r) => r.steps, num: true },
];

function compareValues(a, b) {
  const na = typeof a === "number";
  const nb = typeof b === "number";
  if (na && nb) return a - b;
  if (na) return -1;
  if (nb) return 1;
  return String(a ?? "").localeCompare(String(b ?? ""));
}

/** Summary keys by how many runs have a number there, then by name. */
function summaryKeys(runs) {
  const counts = new Map();
  for (const r of runs) {
    for (const [k, v] of Object.entries(r.summary)) {
      const numeric = typeof v === "number" || v === "NaN" || v === "Infinity" || v === "-Infinity";
      counts.set(k, (counts.get(k) || 0) + (numeric ? 2 : 1));
    }
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([k]) => k);
}

class RunsTable {
  constructor(root, project) {
    this.root = root;
    this.project = project;
    const q = new URLSearchParams(location.search);
    this.f = { text: q.get("q") || "", state: q.get("state") || "", tag: q.get("tag") || "", group: q.get("group") || "" };
    this.groupBy = q.get("groupby") === "group";
    this.sort = { key: "start_time", desc: true };
    this.selected = new Set();
    this.storeKey = `runcore.columns.${project}`;
    this.columns = null;
  }

  async start() {
    crumbs([[this.project, null]]);
    document.title = `${this.project} · runcore`;
    this.runs = await api(`/api/projects/${enc(this.project)}/runs`);
    const saved = localStorage.getItem(this.storeKey);
    this.allKeys = summaryKeys(this.runs);
    this.columns = saved ? JSON.parse(saved) : this.allKeys.slice(0, DEFAULT_SUMMARY_COLUMNS);
    this.toolbar = el("div", { class: "toolbar" });
    this.table = el("table", { class: "table runs", id: "runs-table" });
    fill(this.root, el("h1", { text: this.project }), this.toolbar, el("div", { class: "table-wrap" }, this.table));
    this.renderToolbar();
    this.renderTable();
    this.stopPolling = poll(() => this.refresh(), 3000);
  }

  async refresh() {
    if (!this.runs.some((r) => isLive(r.state))) return;
    this.runs = await api(`/api/projects/${enc(this.project)}/runs`);
    this.allKeys = summaryKeys(this.runs);
    this.renderTable();
  }

  saveQuery() {
    const q = new URLSearchParams();
    if (this.f.text) q.set("q", this.f.text);
    for (const k of ["state", "tag", "group"]) if (this.f[k]) q.set(k, this.f[k]);
    if (this.groupBy) q.set("groupby", "group");
    const s = q.toString();
    history.replaceState(null, "", s ? `?${s}` : location.pathname);
  }

  select(id, label, values, key) {
    return el(
      "label",
      { class: "field" },
      `${label} `,
      el(
        "select",
        { id, onchange: (e) => { this.f[key] = e.target.value; this.saveQuery(); this.renderTable(); } },
        el("option", { value: "", text: "any" }),
        values.map((v) => el("option", { value: v, text: v || "(none)", selected: v === this.f[key] })),
      ),
    );
  }

  renderToolbar() {
    const tags = [...new Set(this.runs.flatMap((r) => r.tags))].sort();
    const groups = [...new Set(this.runs.map((r) => r.group))].sort();
    const states = STATES.filter((s) => this.runs.some((r) => r.state === s));
    this.compareBtn = el("button", { id: "compare", class: "primary", onclick: () => this.compare() }, "Compare");
    const chooser = el(
      "details",
      { class: "columns-chooser" },
      el("summary", { text: "Summary columns" }),
      el("div", { class: "choices" }, this.allKeys.map((k) => el(
        "label",
        {},
        el("input", { type: "checkbox", value: k, checked: this.columns.includes(k), onchange: (e) => {
          this.columns = e.target.checked ? [...this.columns, k] : this.columns.filter((c) => c !== k);
          localStorage.setItem(this.storeKey, JSON.stringify(this.columns));
          this.renderTable();
        } }),
        ` ${k}`,
      ))),
    );
    fill(
      this.toolbar,
      el("input", { type: "search", id: "filter-text", placeholder: "Filter by name, id, tag, notes", value: this.f.text, oninput: (e) => {
        this.f.text = e.target.value.trim();
        this.saveQuery();
        this.renderTable();
      } }),
      this.select("filter-state", "State", states, "state"),
      tags.length ? this.select("filter-tag", "Tag", tags, "tag") : null,
      groups.some((g) => g) ? this.select("filter-group", "Group", groups, "group") : null,
      groups.some((g) => g)
        ? el("label", { class: "field" }, el("input", { type: "checkbox", id: "group-by", checked: this.groupBy, onchange: (e) => {
          this.groupBy = e.target.checked;
          this.saveQuery();
          this.renderTable();
        } }), " group by group")
        : null,
      this.allKeys.length ? chooser : null,
      this.compareBtn,
    );
    this.updateCompare();
  }

  updateCompare() {
    const n = this.selected.size;
    this.compareBtn.disabled = n < 2;
    this.compareBtn.textContent = n >= 2 ? `Compare ${n} runs` : "Select 2+ runs to compare";
  }

  compare() {
    const ids = this.runs.filter((r) => this.selected.has(r.id)).map((r) => `${r.project}/${r.id}`);
    location.href = `/compare?runs=${ids.map(enc).join(",")}`;
  }

  visibleRuns() {
    const t = this.f.text.toLowerCase();
    const rows = this.runs.filter((r) => (!this.f.state || r.state === this.f.state)
      && (!this.f.tag || r.tags.includes(this.f.tag))
      && (!this.f.group || r.group === this.f.group)
      && (!t || [r.name, r.id, r.notes, r.group, r.job_type, ...r.tags].some((s) => s && s.toLowerCase().includes(t))));
    const col = FIXED.find((c) => c.key === this.sort.key);
    const get = col ? col.get : (r) => r.summary[this.sort.key];
    rows.sort((a, b) => compareValues(get(a), get(b)) * (this.sort.desc ? -1 : 1));
    return rows;
  }

  header() {
    const th = (key, label, num) => {
      const active = this.sort.key === key;
      return el("th", {
        class: [num ? "num" : "", "sortable", active ? "sorted" : ""].join(" ").trim(),
        dataset: { sort: key },
        onclick: () => {
          this.sort = { key, desc: active ? !this.sort.desc : key === "start_time" };
          this.renderTable();
        },
      }, label, active ? (this.sort.desc ? " ▾" : " ▴") : "");
    };
    const all = el("input", { type: "checkbox", title: "Select all shown", onchange: (e) => {
      for (const r of this.visibleRuns()) e.target.checked ? this.selected.add(r.id) : this.selected.delete(r.id);
      this.renderTable();
    } });
    return el("thead", {}, el("tr", {}, el("th", { class: "pick" }, all), FIXED.map((c) => th(c.key, c.label, c.num)), this.columns.map((k) => th(k, k, true))));
  }

  row(r) {
    const pick = el("input", { type: "checkbox", class: "pick-run", value: r.id, checked: this.selected.has(r.id), onchange: (e) => {
      e.target.checked ? this.selected.add(r.id) : this.selected.delete(r.id);
      this.updateCompare();
    } });
    const href = `/runs/${enc(r.project)}/${enc(r.id)}`;
    return el(
      "tr",
      { dataset: { run: r.id, state: r.state } },
      el("td", { class: "pick" }, pick),
      el("td", { class: "name" }, el("a", { href, text: r.name }), el("div", { class: "muted small", text: r.id })),
      el("td", {}, stateBadge(r.state)),
      el("td", { text: r.group }),
      el("td", { text: r.job_type }),
      el("td", {}, r.tags.map((t) => el("span", { class: "tag", text: t }))),
      el("td", { class: "nowrap", text: fmtTime(r.start_time) }),
      el("td", { class: "nowrap", text: fmtDuration(r.duration) }),
      el("td", { class: "num", text: r.steps.toLocaleString() }),
      this.columns.map((k) => el("td", { class: "num", text: fmtValue(r.summary[k]) })),
    );
  }

  renderTable() {
    const rows = this.visibleRuns();
    const width = FIXED.length + 1 + this.columns.length;
    const body = el("tbody");
    if (this.groupBy) {
      const groups = new Map();
      for (const r of rows) {
        if (!groups.has(r.group)) groups.set(r.group, []);
        groups.get(r.group).push(r);
      }
      for (const [g, list] of [...groups.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
        body.append(el("tr", { class: "group-row", dataset: { group: g } }, el("td", { colspan: width }, el("strong", { text: g || "(no group)" }), ` · ${list.length} run${list.length === 1 ? "" : "s"}`)));
        for (const r of list) body.append(this.row(r));
      }
    } else {
      for (const r of rows) body.append(this.row(r));
    }
    if (!rows.length) body.append(el("tr", {}, el("td", { colspan: width, class: "muted", text: this.runs.length ? "No run matches the filters." : "No runs yet." })));
    fill(this.table, this.header(), body);
    this.updateCompare();
  }
}

export async function runsPage(root, project) {
  const t = new RunsTable(root, project);
  try {
    await t.start();
  } catch (e) {
    fill(root, notice(e.message, "error"));
  }
}

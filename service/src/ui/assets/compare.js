// The compare page: the selected runs' history metrics overlaid, one chart per
// metric, one coloured line per run that has it. Live runs keep updating.

import { ChartCard, followResizes, seriesUrl, xLabel } from "./chart.js";
import { axisFor, bySection, chartSection } from "./run.js";
import {
  api, crumbs, el, enc, fill, fmtDuration, isLive, notice, PALETTE, poll, runPath, stateBadge,
} from "./util.js";

class ComparePage {
  constructor(root, list) {
    this.root = root;
    this.refs = list.split(",").filter(Boolean).map((item) => {
      const i = item.indexOf("/");
      return { project: item.slice(0, i), id: item.slice(i + 1) };
    });
    this.xChoice = "auto";
    this.cards = [];
    this.last = new Map();
  }

  async start() {
    crumbs([["compare", null]]);
    document.title = "Compare · runcore";
    this.runs = await Promise.all(this.refs.map(async (ref, i) => {
      const base = `/api/runs/${runPath(ref.project, ref.id)}`;
      const [detail, metrics] = await Promise.all([api(base), api(`${base}/metrics`)]);
      return { ...ref, base, detail, metrics, color: PALETTE[i % PALETTE.length] };
    }));
    this.render();
    followResizes(() => this.cards);
    if (this.runs.some((r) => isLive(r.detail.run.state))) this.stopPolling = poll(() => this.tick(), 2000);
  }

  legend() {
    return el(
      "table",
      { class: "table compare-runs", id: "compare-runs" },
      el("tbody", {}, this.runs.map((r) => el(
        "tr",
        { dataset: { run: r.id } },
        el("td", {}, el("span", { class: "swatch", style: `background:${r.color}` })),
        el("td", { class: "name" }, el("a", { href: `/runs/${enc(r.project)}/${enc(r.id)}`, text: r.detail.run.name })),
        el("td", { class: "muted", text: `${r.project}/${r.id}` }),
        el("td", {}, stateBadge(r.detail.run.state)),
        el("td", { text: r.detail.run.group }),
        el("td", { class: "num", text: `${r.detail.run.steps.toLocaleString()} steps` }),
        el("td", { class: "num", text: fmtDuration(r.detail.run.duration) }),
      ))),
    );
  }

  /** Every metric some run has, with the runs that have it. */
  metrics() {
    const byKey = new Map();
    for (const r of this.runs) {
      for (const m of r.metrics.history) {
        if (m.hidden) continue;
        if (!byKey.has(m.key)) byKey.set(m.key, { key: m.key, section: m.section, runs: [] });
        byKey.get(m.key).runs.push({ run: r, metric: m });
      }
    }
    return [...byKey.values()].sort((a, b) => a.section.localeCompare(b.section) || a.key.localeCompare(b.key));
  }

  card(entry) {
    return new ChartCard(entry.key, async (width, range) => Promise.all(entry.runs.map(async ({ run, metric }) => ({
      label: run.detail.run.name,
      color: run.color,
      data: await api(seriesUrl(run.project, run.id, { key: metric.key, x: axisFor(metric, this.xChoice), width, range })),
    }))));
  }

  render() {
    const axes = [...new Set(this.runs.flatMap((r) => r.metrics.x_axes))];
    const select = el(
      "select",
      { id: "x-axis", onchange: (e) => {
        this.xChoice = e.target.value;
        for (const c of this.cards) {
          c.range = null;
          c.invalidate();
        }
      } },
      el("option", { value: "auto", text: "Step metric (define_metric), else step" }),
      axes.map((a) => el("option", { value: a, text: xLabel(a) })),
    );
    const entries = this.metrics();
    this.cards.forEach((c) => c.destroy());
    this.cards = [];
    const sections = [];
    const groups = bySection(entries);
    for (const [name, list] of groups) {
      const cards = list.map((e) => this.card(e));
      this.cards.push(...cards);
      sections.push(chartSection(name, cards));
    }
    fill(
      this.root,
      el("h1", { text: `Comparing ${this.runs.length} runs` }),
      this.legend(),
      el("div", { class: "toolbar" }, el("label", { class: "field" }, "x axis ", select)),
      sections.length ? sections : notice("These runs have no metrics yet."),
    );
  }

  async tick() {
    let changed = false;
    for (const r of this.runs) {
      if (!isLive(r.detail.run.state) && this.last.has(r.id)) continue;
      const s = await api(`${r.base}/status`);
      if (this.last.get(r.id) !== s.history_bytes) changed = true;
      this.last.set(r.id, s.history_bytes);
      r.detail.run = s.run;
    }
    if (!changed) return;
    const counts = this.runs.map((r) => r.metrics.history.length).join();
    for (const r of this.runs) r.metrics = await api(`${r.base}/metrics`);
    if (counts !== this.runs.map((r) => r.metrics.history.length).join()) this.render();
    else this.cards.forEach((c) => c.invalidate());
    if (!this.runs.some((r) => isLive(r.detail.run.state))) this.stopPolling();
  }
}

export async function comparePage(root, list) {
  await new ComparePage(root, list).start();
}

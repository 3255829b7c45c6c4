// A chart card: a title, a uPlot line chart of one or more series fetched from
// /series at the card's pixel width, and a note. NaN and ±Inf arrive as gaps
// (null) plus marks, drawn as red markers: ▲ +Inf at the top, ▼ -Inf and × NaN at
// the bottom. Drag to zoom (the zoomed range is fetched again at full
// resolution), double-click to zoom out.
/* global uPlot */

import { el, fmtTick, fmtTime, fmtValue } from "./util.js";

const X_LABELS = { _step: "Step", _runtime: "Runtime (s)", _timestamp: "Time" };
const HEIGHT = 190;
const MARK_COLOR = "#d1242f";

export function xLabel(key) {
  return X_LABELS[key] || key;
}

/** Cards load when they scroll near the viewport. */
const observer = new IntersectionObserver(
  (entries) => {
    for (const e of entries) {
      const card = e.target.__card;
      if (!card) continue;
      card.visible = e.isIntersecting;
      if (e.isIntersecting && card.stale) card.refresh();
    }
  },
  { rootMargin: "300px" },
);

export class ChartCard {
  /**
   * @param title  the card's title (the metric key)
   * @param load   async (width, range) => [{label, color, data}] with data a /series reply
   */
  constructor(title, load) {
    this.load = load;
    this.root = el("div", { class: "chart-card", dataset: { key: title, state: "idle" } });
    this.root.__card = this;
    this.plotBox = el("div", { class: "chart-plot" });
    this.note = el("div", { class: "chart-note" });
    this.root.append(el("div", { class: "chart-title", title, text: title }), this.plotBox, this.note);
    this.plot = null;
    this.shape = "";
    this.range = null;
    this.marks = [];
    this.visible = false;
    this.stale = true;
    this.loading = false;
    this.again = false;
    this.plotBox.addEventListener("dblclick", () => {
      if (this.range) {
        this.range = null;
        this.refresh();
      }
    });
    observer.observe(this.root);
  }

  /** Marks the data as changed: visible cards load now, others when seen. */
  invalidate() {
    this.stale = true;
    if (this.visible) this.refresh();
  }

  async refresh() {
    this.stale = false;
    if (this.loading) {
      this.again = true;
      return;
    }
    this.loading = true;
    try {
      do {
        this.again = false;
        await this.draw();
      } while (this.again);
    } finally {
      this.loading = false;
    }
  }

  width() {
    return Math.max(120, Math.floor(this.plotBox.clientWidth || 400));
  }

  async draw() {
    if (!this.plot) this.root.dataset.state = "loading";
    let series;
    try {
      series = await this.load(this.width(), this.range);
    } catch (e) {
      this.root.dataset.state = "error";
      this.note.textContent = e.message;
      return;
    }
    const withPoints = series.filter((s) => s.data.x.length > 0);
    const xKey = series.length ? series[0].data.x_key : "_step";
    if (withPoints.length === 0) {
      this.destroy();
      this.root.dataset.state = "empty";
      this.root.dataset.points = "0";
      this.note.textContent = `no values against ${xLabel(xKey)}`;
      return;
    }
    const data =
      withPoints.length === 1
        ? [withPoints[0].data.x, withPoints[0].data.y]
        : uPlot.join(withPoints.map((s) => [s.data.x, s.data.y]));
    this.marks = withPoints.flatMap((s) => s.data.marks);
    const shape = `${xKey}|${withPoints.map((s) => `${s.label}:${s.color}`).join("|")}`;
    if (!this.plot || shape !== this.shape) {
      this.destroy();
      this.shape = shape;
      this.plot = new uPlot(this.options(xKey, withPoints), data, this.plotBox);
    } else {
      this.plot.setData(data);
    }
    if (this.range) this.plot.setScale("x", { min: this.range[0], max: this.range[1] });
    this.describe(withPoints);
  }

  describe(series) {
    const shown = series.reduce((n, s) => n + s.data.x.length, 0);
    const total = series.reduce((n, s) => n + s.data.total, 0);
    this.root.dataset.state = "drawn";
    this.root.dataset.points = String(shown);
    this.root.dataset.total = String(total);
    const parts = [];
    const count = (kind) => this.marks.filter((m) => m.kind === kind).length;
    const nan = count("nan");
    const inf = count("inf") + count("-inf");
    if (nan) parts.push(`${nan} NaN`);
    if (inf) parts.push(`${inf} ±Inf`);
    if (series.some((s) => s.data.sampled)) parts.push(`${total.toLocaleString()} points, drawn as ${shown.toLocaleString()}`);
    if (this.range) parts.push("zoomed: double-click to reset");
    this.note.textContent = parts.join(" · ");
  }

  options(xKey, series) {
    const time = xKey === "_timestamp";
    return {
      width: this.width(),
      height: HEIGHT,
      scales: { x: { time } },
      cursor: { drag: { x: true, y: false, setScale: false } },
      legend: { live: true },
      series: [
        { label: xLabel(xKey), value: (u, v) => (v == null ? "" : time ? fmtTime(v) : fmtValue(v)) },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 1.5,
          spanGaps: false,
          points: { show: (u, si, i0, i1) => i1 - i0 < 60 },
          value: (u, v) => (v == null ? "—" : fmtValue(v)),
        })),
      ],
      axes: [
        { stroke: "#57606a", grid: { stroke: "#eaeef2" }, ticks: { stroke: "#d0d7de" }, ...(time ? {} : { values: (u, vals) => vals.map(fmtTick) }) },
        { stroke: "#57606a", grid: { stroke: "#eaeef2" }, ticks: { stroke: "#d0d7de" }, size: 56, values: (u, vals) => vals.map(fmtTick) },
      ],
      hooks: {
        draw: [(u) => this.drawMarks(u)],
        setSelect: [(u) => this.zoomTo(u)],
      },
    };
  }

  zoomTo(u) {
    if (u.select.width < 4) return;
    const lo = u.posToVal(u.select.left, "x");
    const hi = u.posToVal(u.select.left + u.select.width, "x");
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    this.range = [lo, hi];
    this.refresh();
  }

  drawMarks(u) {
    if (!this.marks.length) return;
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    const s = 5 * devicePixelRatio;
    ctx.save();
    ctx.fillStyle = MARK_COLOR;
    ctx.strokeStyle = MARK_COLOR;
    ctx.lineWidth = 1.5 * devicePixelRatio;
    for (const m of this.marks) {
      const x = u.valToPos(m.x, "x", true);
      if (x < left - 1 || x > left + width + 1) continue;
      ctx.beginPath();
      if (m.kind === "inf") {
        ctx.moveTo(x, top);
        ctx.lineTo(x - s, top + 1.6 * s);
        ctx.lineTo(x + s, top + 1.6 * s);
        ctx.fill();
      } else if (m.kind === "-inf") {
        const b = top + height;
        ctx.moveTo(x, b);
        ctx.lineTo(x - s, b - 1.6 * s);
        ctx.lineTo(x + s, b - 1.6 * s);
        ctx.fill();
      } else {
        const b = top + height - s;
        ctx.moveTo(x - s * 0.8, b - s * 0.8);
        ctx.lineTo(x + s * 0.8, b + s * 0.8);
        ctx.moveTo(x + s * 0.8, b - s * 0.8);
        ctx.lineTo(x - s * 0.8, b + s * 0.8);
        ctx.stroke();
      }
    }
    ctx.restore();
  }

  /** Follows the card's width. */
  resize() {
    if (this.plot) this.plot.setSize({ width: this.width(), height: HEIGHT });
  }

  destroy() {
    if (this.plot) {
      this.plot.destroy();
      this.plot = null;
      this.shape = "";
    }
  }
}

/** Keeps every card of a page as wide as its cell. */
export function followResizes(cards) {
  let timer = null;
  window.addEventListener("resize", () => {
    clearTimeout(timer);
    timer = setTimeout(() => cards().forEach((c) => c.resize()), 150);
  });
}

/** Builds /series URLs. */
export function seriesUrl(project, id, { key, x, width, range, source }) {
  const q = new URLSearchParams({ key, x, width: String(width) });
  if (source) q.set("source", source);
  if (range) {
    q.set("min", String(range[0]));
    q.set("max", String(range[1]));
  }
  return `/api/runs/${encodeURIComponent(project)}/${encodeURIComponent(id)}/series?${q}`;
}

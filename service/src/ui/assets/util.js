// Small helpers shared by the pages: building elements (text only, never HTML
// from data), calling the API, formatting numbers, times and states, polling.

/** Creates an element: attrs may hold class, text, href, title, dataset, on{Event}. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2).toLowerCase(), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** Replaces a node's children. */
export function fill(node, ...children) {
  node.replaceChildren();
  for (const c of children.flat(Infinity)) {
    if (c !== undefined && c !== null && c !== false) node.append(c);
  }
  return node;
}

/** Calls the JSON API; throws an Error carrying the server's message. */
export async function api(path) {
  const resp = await fetch(path, { headers: { Accept: "application/json" } });
  let body = null;
  try {
    body = await resp.json();
  } catch (_) {
    body = null;
  }
  if (!resp.ok) {
    const err = new Error((body && body.error) || `${resp.status} ${resp.statusText}`);
    err.status = resp.status;
    throw err;
  }
  return body;
}

export const enc = encodeURIComponent;

export function runPath(project, id) {
  return `${enc(project)}/${enc(id)}`;
}

/** A number for a table: NaN/Infinity strings as they are, floats shortened. */
export function fmtValue(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-4 || a >= 1e6)) return v.toExponential(4);
    return String(Number(v.toPrecision(6)));
  }
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/** An axis tick: short, with SI-style suffixes for big numbers. */
export function fmtTick(v) {
  if (v === null || v === undefined) return "";
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  if (a !== 0 && a < 1e-3) return v.toExponential(1);
  return String(+v.toPrecision(4));
}

function pad(n) {
  return String(n).padStart(2, "0");
}

/** Unix seconds as local `YYYY-MM-DD HH:MM:SS`. */
export function fmtTime(unix) {
  if (!unix) return "";
  const d = new Date(unix * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Seconds as `4.5s`, `2m03s`, `1h02m03s`. */
export function fmtDuration(secs) {
  if (secs === null || secs === undefined || !isFinite(secs)) return "";
  if (secs < 60) return `${secs.toFixed(1)}s`;
  const s = Math.floor(secs);
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m${pad(s % 60)}s`;
}

export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(1)} ${units[i]}`;
}

/** States whose run may still change. */
export function isLive(state) {
  return state === "running" || state === "preempting";
}

export function stateBadge(state) {
  return el("span", { class: `state state-${state}`, text: state });
}

/** Sets the header's breadcrumbs: [[label, href], ...]. */
export function crumbs(list) {
  const nav = document.getElementById("crumbs");
  if (!nav) return;
  fill(
    nav,
    list.map(([label, href]) => [
      el("span", { class: "sep", text: "/" }),
      href ? el("a", { href, text: label }) : el("span", { text: label }),
    ]),
  );
}

/** A message in place of content. */
export function notice(text, kind = "muted") {
  return el("p", { class: `notice ${kind}`, text });
}

/**
 * Calls `tick` every `ms` while the page is visible, after the previous call has
 * finished; returns a function that stops it.
 */
export function poll(tick, ms) {
  let stopped = false;
  let timer = null;
  const loop = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await tick();
      } catch (e) {
        console.warn("poll:", e);
      }
    }
    if (!stopped) timer = setTimeout(loop, ms);
  };
  timer = setTimeout(loop, ms);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** Flattens nested objects into [["a.b", value], ...] (lists stay values). */
export function flatten(obj, prefix = "", out = []) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v) && !v._type) flatten(v, key, out);
    else out.push([key, v]);
  }
  return out;
}

/** A two-column table of flattened values, with a filter box. */
export function kvTable(obj, emptyText) {
  const rows = flatten(obj);
  if (rows.length === 0) return notice(emptyText);
  const body = el("tbody");
  const render = (q) => {
    fill(
      body,
      rows
        .filter(([k, v]) => !q || k.toLowerCase().includes(q) || fmtValue(v).toLowerCase().includes(q))
        .map(([k, v]) => el("tr", {}, el("td", { class: "key", text: k }), el("td", { class: "val", text: fmtValue(v) }))),
    );
  };
  render("");
  const input = el("input", {
    type: "search",
    class: "kv-filter",
    placeholder: "Filter keys or values",
    oninput: (e) => render(e.target.value.trim().toLowerCase()),
  });
  return el("div", { class: "kv" }, input, el("table", { class: "kv-table" }, body));
}

/** Colours for series, by index. */
export const PALETTE = [
  "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
  "#e377c2", "#17becf", "#7f7f7f", "#bcbd22", "#393b79", "#ad494a",
];

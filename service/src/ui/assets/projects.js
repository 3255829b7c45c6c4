// The projects page: every project in the store with its runs by state.

import { api, crumbs, el, enc, fill, fmtTime, notice, stateBadge } from "./util.js";

export async function projectsPage(root, info) {
  crumbs([]);
  document.title = "Projects · runcore";
  const projects = await api("/api/projects");
  if (!projects.length) {
    fill(root, el("h1", { text: "Projects" }), notice(`No runs in ${info.data_dir} yet: start a sidecar with --data-dir there and log a run.`));
    return;
  }
  const rows = projects.map((p) => el(
    "tr",
    { dataset: { project: p.name } },
    el("td", { class: "name" }, el("a", { href: `/projects/${enc(p.name)}`, text: p.name })),
    el("td", { class: "num", text: String(p.runs) }),
    el("td", {}, Object.entries(p.states).map(([s, n]) => el("span", { class: "state-count" }, stateBadge(s), ` ${n}`))),
    el("td", { class: "nowrap", text: fmtTime(p.last_start) }),
  ));
  fill(
    root,
    el("h1", { text: "Projects" }),
    el(
      "table",
      { class: "table", id: "projects-table" },
      el("thead", {}, el("tr", {}, ["Project", "Runs", "States", "Last run started"].map((h, i) => el("th", { class: i === 1 ? "num" : "", text: h })))),
      el("tbody", {}, rows),
    ),
  );
}

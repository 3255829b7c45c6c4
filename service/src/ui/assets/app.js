// The UI's entry point: picks the page from the URL. Every page is built from
// the JSON API (docs/UI.md); the server has already answered 404/400 for a URL
// that names nothing.

import { comparePage } from "./compare.js";
import { projectsPage } from "./projects.js";
import { runPage } from "./run.js";
import { runsPage } from "./runs.js";
import { api, el, fill, notice } from "./util.js";

async function main() {
  const root = document.getElementById("app");
  const path = location.pathname;
  const info = await api("/api/info");
  const dir = document.getElementById("datadir");
  if (dir) dir.textContent = info.data_dir;
  let m;
  if (path === "/") {
    await projectsPage(root, info);
  } else if ((m = path.match(/^\/projects\/([^/]+)$/))) {
    await runsPage(root, decodeURIComponent(m[1]));
  } else if ((m = path.match(/^\/runs\/([^/]+)\/([^/]+)$/))) {
    await runPage(root, decodeURIComponent(m[1]), decodeURIComponent(m[2]));
  } else if (path === "/compare") {
    await comparePage(root, new URLSearchParams(location.search).get("runs") || "");
  } else {
    fill(root, notice(`No page at ${path}.`, "error"));
  }
  document.body.dataset.ready = "true";
}

main().catch((e) => {
  fill(document.getElementById("app"), el("h1", { text: "Something went wrong" }), notice(e.message, "error"));
  document.body.dataset.ready = "error";
});

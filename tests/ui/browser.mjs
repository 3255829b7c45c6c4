// The web UI in a real browser (Debian's Chromium, driven by playwright-core).
//
//   node browser.mjs UI_URL SIDECAR_UI_URL READY_FILE [--screenshots DIR]
//
// UI_URL is a `runcore ui` over the store made by make_store.py; SIDECAR_UI_URL
// the same store through `runcore serve --ui-listen`; READY_FILE holds the live
// run's id. Prints one line per test and last `N passed, M failed`; exits 1 on a
// failure.

import { readFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [ui, sidecarUi, readyFile] = process.argv.slice(2, 5);
const shotsAt = process.argv.indexOf("--screenshots");
const shots = shotsAt > 0 ? process.argv[shotsAt + 1] : null;
const base = ui.replace(/\/$/, "");
const PROJECT = "ui-test";

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function getJson(url) {
  const r = await fetch(url);
  return { status: r.status, body: await r.json() };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1 });
const pageErrors = [];

async function open(path) {
  const page = await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(`${path}: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 40[04]/.test(m.text())) pageErrors.push(`${path}: console: ${m.text()}`);
  });
  const resp = await page.goto(base + path);
  return { page, resp };
}

async function ready(page) {
  await page.waitForFunction(() => document.body.dataset.ready, null, { timeout: 20000 });
  assert((await page.evaluate(() => document.body.dataset.ready)) === "true", "the page reported an error");
}

/** Scrolls to a chart card, waits until it is drawn, returns its canvas's coloured pixels. */
async function drawnCard(page, card) {
  await card.scrollIntoViewIfNeeded();
  await page.waitForFunction((c) => ["drawn", "empty", "error"].includes(c.dataset.state), await card.elementHandle(), { timeout: 20000 });
  const state = await card.getAttribute("data-state");
  const key = await card.getAttribute("data-key");
  assert(state === "drawn", `chart ${key} is ${state}: ${await card.locator(".chart-note").textContent()}`);
  return card.evaluate((c) => {
    const canvas = c.querySelector("canvas");
    const { width, height } = canvas;
    const px = canvas.getContext("2d").getImageData(0, 0, width, height).data;
    const colours = new Set();
    let coloured = 0;
    for (let i = 0; i < px.length; i += 4) {
      const [r, g, b, a] = [px[i], px[i + 1], px[i + 2], px[i + 3]];
      if (a > 100 && Math.max(r, g, b) - Math.min(r, g, b) > 60) {
        coloured++;
        colours.add(`${r >> 5},${g >> 5},${b >> 5}`);
      }
    }
    return { coloured, colours: colours.size, points: Number(c.dataset.points) };
  });
}

async function runsOf(project) {
  return (await getJson(`${base}/api/projects/${project}/runs`)).body;
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

test("the projects page lists the store's project", async () => {
  const { page } = await open("/");
  await ready(page);
  const names = await page.locator("#projects-table tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.project));
  assert(names.includes(PROJECT), `projects: ${names}`);
  await page.close();
});

test("the runs table lists every run, with coloured states, filters, grouping and sorting", async () => {
  const runs = await runsOf(PROJECT);
  const { page } = await open(`/projects/${PROJECT}`);
  await ready(page);
  const rows = page.locator("#runs-table tbody tr[data-run]");
  const ids = await rows.evaluateAll((rs) => rs.map((r) => r.dataset.run));
  assert(ids.length === runs.length && runs.every((r) => ids.includes(r.id)), `rows ${ids} vs runs ${runs.map((r) => r.id)}`);
  const colour = async (state) => page.locator(`#runs-table .state-${state}`).first().evaluate((e) => getComputedStyle(e).backgroundColor);
  const [failed, finished, running] = [await colour("failed"), await colour("finished"), await colour("running")];
  assert(new Set([failed, finished, running]).size === 3, `state colours ${failed} ${finished} ${running}`);
  await page.selectOption("#filter-state", "failed");
  assert((await rows.count()) === 1, "state filter keeps the failed run");
  await page.selectOption("#filter-state", "");
  await page.fill("#filter-text", "wider");
  assert((await rows.count()) === 1, "text filter");
  await page.fill("#filter-text", "");
  await page.selectOption("#filter-tag", "lr");
  assert((await rows.count()) === 2, "tag filter");
  await page.selectOption("#filter-tag", "");
  await page.check("#group-by");
  const groups = await page.locator("#runs-table tr.group-row").evaluateAll((rs) => rs.map((r) => r.dataset.group));
  assert(groups.join() === "live,sweep-a,sweep-b", `groups ${groups}`);
  await page.uncheck("#group-by");
  await page.click('#runs-table th[data-sort="steps"]');
  await page.click('#runs-table th[data-sort="steps"]');
  const steps = await page.locator("#runs-table tbody tr[data-run] td.num").first().textContent();
  assert(steps, "sorted by steps");
  if (shots) {
    const box = await page.locator("#runs-table").boundingBox();
    await page.screenshot({ path: join(shots, "ui-runs.png"), clip: { x: 0, y: 0, width: 1280, height: Math.ceil(box.y + box.height + 24) } });
  }
  await page.close();
});

test("the run page draws a chart for each metric, system metrics, tables and files", async () => {
  const run = (await runsOf(PROJECT)).find((r) => r.name === "baseline");
  const { body: metrics } = await getJson(`${base}/api/runs/${PROJECT}/${run.id}/metrics`);
  const shown = metrics.history.filter((m) => !m.hidden).map((m) => m.key);
  assert(shown.length >= 5 && metrics.history.some((m) => m.hidden && m.key === "epoch"), `metrics ${JSON.stringify(metrics.history)}`);
  const { page } = await open(`/runs/${PROJECT}/${run.id}`);
  await ready(page);
  const cards = page.locator("#panel-charts .chart-card");
  const keys = await cards.evaluateAll((cs) => cs.map((c) => c.dataset.key));
  assert(keys.sort().join() === [...shown].sort().join(), `cards ${keys} vs metrics ${shown}`);
  for (let i = 0; i < keys.length; i++) {
    const px = await drawnCard(page, cards.nth(i));
    assert(px.coloured > 50, `chart ${keys[i]} has ${px.coloured} coloured pixels`);
  }
  const loss = page.locator('#panel-charts .chart-card[data-key="train/loss"] .chart-note');
  assert((await loss.textContent()).includes("1 NaN"), "the NaN is reported");
  const sections = await page.locator("#panel-charts details.chart-section").evaluateAll((s) => s.map((d) => d.dataset.section));
  assert(["grad", "train", "val"].every((s) => sections.includes(s)), `sections ${sections}`);
  await page.evaluate(() => window.scrollTo(0, 0));
  if (shots) await page.screenshot({ path: join(shots, "ui-run.png") });
  await page.click('a[data-tab="system"]');
  const sys = page.locator("#panel-system .chart-card");
  assert((await sys.count()) > 0, "system charts");
  await drawnCard(page, page.locator('#panel-system .chart-card[data-key="cpu"]'));
  await page.click('a[data-tab="config"]');
  assert((await page.locator("#panel-config").textContent()).includes("optimizer.name"), "config table");
  await page.click('a[data-tab="summary"]');
  assert((await page.locator("#panel-summary").textContent()).includes("best_checkpoint"), "summary table");
  await page.click('a[data-tab="alerts"]');
  assert((await page.locator("#alerts").textContent()).includes("loss plateau"), "alerts");
  await page.click('a[data-tab="overview"]');
  assert((await page.locator("#panel-overview").textContent()).includes("cpu_count"), "metadata");
  await page.click('a[data-tab="files"]');
  const link = page.locator("#files a", { hasText: "model-card.txt" });
  const href = await link.getAttribute("href");
  const file = await fetch(base + href);
  assert(file.ok && (await file.text()).includes("model baseline"), "the saved file downloads");
  await page.close();
});

test("the Artifacts tab lists logged and used artifacts with lineage links", async () => {
  const runs = await runsOf(PROJECT);
  const maker = runs.find((r) => r.name === "baseline");
  const user = runs.find((r) => r.name === "wider-lr");
  const { page } = await open(`/runs/${PROJECT}/${maker.id}#artifacts`);
  await ready(page);
  const row = page.locator('#artifacts-logged tr[data-artifact="ui-dataset:v0"]');
  await row.waitFor({ timeout: 20000 });
  const text = await row.textContent();
  assert(text.includes("dataset") && text.includes("gold") && text.includes("latest"), `row: ${text}`);
  const link = row.locator("a.lineage");
  assert((await link.getAttribute("href")) === `/runs/${PROJECT}/${user.id}`, "links to the run that used it");
  await Promise.all([page.waitForURL(new RegExp(`/runs/${PROJECT}/${user.id}`)), link.click()]);
  await ready(page);
  await page.click('a[data-tab="artifacts"]');
  const used = page.locator('#artifacts-used tr[data-artifact="ui-dataset:v0"] a.lineage');
  await used.waitFor({ timeout: 20000 });
  assert((await used.getAttribute("href")) === `/runs/${PROJECT}/${maker.id}`, "links back to the run that logged it");
  await page.close();
});

test("the Media tab shows images with a step slider, a sortable paged table and a plot", async () => {
  const run = (await runsOf(PROJECT)).find((r) => r.name === "baseline");
  const { page } = await open(`/runs/${PROJECT}/${run.id}#media`);
  await ready(page);
  const img = page.locator('.media-card[data-key="samples"] img');
  await img.waitFor({ timeout: 20000 });
  await page.waitForFunction((i) => i.complete && i.naturalWidth > 0, await img.elementHandle(), { timeout: 20000 });
  assert((await img.evaluate((i) => i.naturalWidth)) === 32, "the latest image decodes");
  const slider = page.locator('.media-card[data-key="samples"] input.step-slider');
  assert((await slider.getAttribute("max")) === "2", "a slider over three steps");
  const latest = await img.getAttribute("src");
  await slider.fill("0");
  assert((await img.getAttribute("src")) !== latest, "the slider shows another step");
  const table = page.locator('.media-card[data-key="predictions"]');
  const firstCell = () => table.locator("tbody tr").first().locator("td").first().textContent();
  const range = () => table.locator(".pager .range").textContent();
  await page.waitForFunction((c) => c.querySelectorAll("tbody tr").length > 0, await table.elementHandle(), { timeout: 20000 });
  assert((await table.locator("tbody tr").count()) === 20, "a page of 20 rows");
  assert((await range()).includes("1–20 of 45"), `range ${await range()}`);
  await table.locator("button.next").click();
  await page.waitForFunction((c) => c.querySelector(".pager .range").textContent.includes("21–40"), await table.elementHandle());
  assert((await firstCell()) === "20", `page 2 starts at id 20, not ${await firstCell()}`);
  await table.locator('th[data-column="score"]').click();
  await page.waitForFunction((c) => c.querySelector("th[data-column=score]").textContent.includes("▲"), await table.elementHandle());
  assert((await firstCell()) === "44", `ascending score puts id 44 first, not ${await firstCell()}`);
  await table.locator('th[data-column="score"]').click();
  await page.waitForFunction((c) => c.querySelector("th[data-column=score]").textContent.includes("▼"), await table.elementHandle());
  assert((await firstCell()) === "0", `descending score puts id 0 first, not ${await firstCell()}`);
  const plot = page.locator('.media-card[data-key="loss_curve"] .plot-box');
  await page.waitForFunction((b) => ["drawn", "error"].includes(b.dataset.state), await plot.elementHandle(), { timeout: 20000 });
  assert((await plot.getAttribute("data-state")) === "drawn", `plot: ${await plot.textContent()}`);
  assert((await plot.getAttribute("data-points")) === "10", "the plot has the table's 10 rows");
  const coloured = await plot.evaluate((b) => {
    const c = b.querySelector("canvas");
    const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < px.length; i += 4) if (px[i + 3] > 100 && Math.max(px[i], px[i + 1], px[i + 2]) - Math.min(px[i], px[i + 1], px[i + 2]) > 60) n++;
    return n;
  });
  assert(coloured > 50, `the plot has ${coloured} coloured pixels`);
  await page.close();
});

test("compare overlays the selected runs", async () => {
  const { page } = await open(`/projects/${PROJECT}`);
  await ready(page);
  const runs = await runsOf(PROJECT);
  const pick = runs.filter((r) => r.group === "sweep-a" || r.name === "diverged");
  for (const r of pick) await page.check(`#runs-table tr[data-run="${r.id}"] input.pick-run`);
  await Promise.all([page.waitForURL(/\/compare\?runs=/), page.click("#compare")]);
  await ready(page);
  const legend = await page.locator("#compare-runs tr").count();
  assert(legend === pick.length, `legend rows ${legend}`);
  const card = page.locator('.chart-card[data-key="train/loss"]');
  const px = await drawnCard(page, card);
  assert(px.colours >= pick.length, `${px.colours} colours in the overlay`);
  const series = await card.locator(".u-legend .u-series").count();
  assert(series === pick.length + 1, `legend of the chart has ${series} entries`);
  await page.evaluate(() => window.scrollTo(0, 0));
  if (shots) await page.screenshot({ path: join(shots, "ui-compare.png") });
  await page.close();
});

test("a live run's chart grows while its client logs, without a reload", async () => {
  const id = readFileSync(readyFile, "utf8").trim();
  const { page } = await open(`/runs/${PROJECT}/${id}`);
  await ready(page);
  await page.evaluate(() => { window.__notReloaded = true; });
  const card = page.locator('#panel-charts .chart-card[data-key="live/loss"]');
  const first = (await drawnCard(page, card)).points;
  await page.waitForFunction(
    ([c, n]) => Number(c.dataset.points) > n + 5,
    [await card.elementHandle(), first],
    { timeout: 30000 },
  );
  assert(await page.evaluate(() => window.__notReloaded === true), "the page was reloaded");
  assert((await page.locator(".run-header .state-running").count()) === 1, "shown as running");
  await page.close();
});

test("bad input gives 404/400 pages and JSON errors, and the server lives on", async () => {
  const run = (await runsOf(PROJECT)).find((r) => r.name === "baseline");
  for (const [path, code] of [
    [`/runs/${PROJECT}/no-such-run`, 404],
    ["/projects/no-such-project", 404],
    ["/no/such/page", 404],
    ["/compare?runs=not-a-pair", 400],
    ["/compare", 400],
    [`/compare?runs=${PROJECT}/nope`, 404],
    [`/runs/${PROJECT}/..%2F..`, 400],
  ]) {
    const { page, resp } = await open(path);
    assert(resp.status() === code, `${path}: ${resp.status()}, want ${code}`);
    assert((await page.locator("#error-code").textContent()).startsWith(String(code)), `${path} shows its code`);
    await page.close();
  }
  const api = `${base}/api/runs/${PROJECT}/${run.id}`;
  for (const [url, code] of [
    [`${api}/series?key=no-such-metric`, 404],
    [`${api}/series?key=train/loss&width=abc`, 400],
    [`${api}/series?key=train/loss&width=0`, 400],
    [`${api}/series?key=train/loss&min=x`, 400],
    [`${api}/series?key=train/loss&x=nope`, 400],
    [`${api}/series`, 400],
    [`${base}/api/runs/${PROJECT}/nope/metrics`, 404],
    [`${base}/api/nothing`, 404],
    [`${base}/files/${PROJECT}/${run.id}/no-such-file`, 404],
  ]) {
    const r = await fetch(url);
    assert(r.status === code, `${url}: ${r.status}, want ${code}`);
  }
  const broken = await getJson(`${api}/series?key=no-such-metric`);
  assert(broken.body.error.includes("no-such-metric"), "the error names the metric");
  const { page } = await open(`/runs/${PROJECT}/${run.id}`);
  await ready(page);
  await page.close();
});

test("a big run never indexed opens at once with preview charts, then full ones", async () => {
  // make_store.py big: ui-big/bigcopy, 100,000 rows (about 60 MiB) and no index.
  const { page } = await open("/runs/ui-big/bigcopy");
  await ready(page);
  const banner = page.locator("#indexing");
  await banner.waitFor({ timeout: 20000 });
  assert(/Preview: .* sampled .*indexing \d+%/.test(await banner.textContent()), `banner: ${await banner.textContent()}`);
  const card = page.locator('#panel-charts .chart-card[data-key="noisy"]');
  const preview = await drawnCard(page, card);
  assert((await card.getAttribute("data-preview")) === "1", "the first chart is a preview");
  const previewTotal = Number(await card.getAttribute("data-total"));
  assert(preview.coloured > 50 && previewTotal > 0 && previewTotal <= 1000, `preview of ${previewTotal} rows: ${JSON.stringify(preview)}`);
  assert(/NaN|Inf/.test(await card.locator(".chart-note").textContent()), "non-finite values show in the preview");
  // The index is done: the banner goes, the chart is drawn again from every row.
  await banner.waitFor({ state: "detached", timeout: 180000 });
  await page.waitForFunction((c) => c.dataset.preview === "" && c.dataset.state === "drawn", await card.elementHandle(), { timeout: 20000 });
  const full = await drawnCard(page, card);
  const fullTotal = Number(await card.getAttribute("data-total"));
  assert(fullTotal === 100000 && full.coloured > 50, `full chart of ${fullTotal} rows: ${JSON.stringify(full)}`);
  const { body: series } = await getJson(`${base}/api/runs/ui-big/bigcopy/series?key=noisy&width=100`);
  assert(!series.preview && series.total === 100000, `series total ${series.total}`);
  await page.close();
});

test("runcore serve --ui-listen shows the same runs", async () => {
  const r = await fetch(`${sidecarUi.replace(/\/$/, "")}/api/projects/${PROJECT}/runs`);
  assert(r.ok, `sidecar UI: ${r.status}`);
  const ids = (await r.json()).map((x) => x.id).sort();
  const mine = (await runsOf(PROJECT)).map((x) => x.id).sort();
  assert(ids.join() === mine.join(), `${ids} vs ${mine}`);
});

test("no script errors on any page", async () => {
  assert(pageErrors.length === 0, pageErrors.join("\n"));
});

if (shots) mkdirSync(shots, { recursive: true });
let passed = 0;
let failed = 0;
for (const t of tests) {
  try {
    await t.fn();
    passed++;
    console.log(`ok   ${t.name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${t.name}\n     ${e.message}`);
  }
}
await browser.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

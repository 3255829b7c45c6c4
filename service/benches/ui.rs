//! The web UI on a big run: 1,000,000 steps x 100 metrics (plus a step metric),
//! served by `runcore::ui::serve` in-process and asked over HTTP as the page
//! asks. Figures:
//!
//! - the first open of a run never indexed (charts from a preview), and building
//!   its chart index in the background until the full charts are there;
//! - opening the run page once the index exists: the run, its metric list and
//!   the first screen of charts (6 series requests, 6 at a time as a browser);
//! - all 100 charts of the page;
//! - one metric's series at a chart's width, against `_step`, `_timestamp` and a
//!   define_metric step metric, and a zoomed range;
//! - the first request after 1,000 rows were appended (a live run).
//!
//! `cargo bench --bench ui` (`-- --quick` for 100,000 steps x 20 metrics). The
//! run is generated once under `.cache/ui-bench/` (about 3 GB of history.jsonl at
//! full size) and reused. Prints a Markdown table (docs/BENCHMARKS.md).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runcore::proto::v1::{DefineMetricRequest, InitRequest};
use runcore::proto::wal::{record::Kind, Record};
use runcore::store::{self, RunFile};
use runcore::wal::WalWriter;

const PROJECT: &str = "bench";
const RUN: &str = "big";
const WIDTH: usize = 800;

struct Size {
    rows: u64,
    metrics: usize,
}

fn key(k: usize) -> String {
    format!("s{}/metric_{:02}", k / 20, k % 20)
}

/// A cheap, repeatable noise in [-0.5, 0.5).
fn noise(a: u64, b: u64) -> f64 {
    let mut h = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    h ^= h >> 29;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (h >> 11) as f64 / (1u64 << 53) as f64 - 0.5
}

/// Writes the run directory: a log with its Start and DefineMetric records, run.json
/// and history.jsonl. Returns the history's size.
fn generate(dir: &Path, size: &Size) -> u64 {
    fs::create_dir_all(dir.join(store::FILES_DIR)).unwrap();
    let mut wal = WalWriter::create(&dir.join(store::WAL)).unwrap();
    let start = 1_790_000_000.0;
    let init = InitRequest {
        project: PROJECT.into(),
        id: RUN.into(),
        ..Default::default()
    };
    for kind in [
        Kind::Start(init),
        Kind::DefineMetric(DefineMetricRequest {
            name: "epoch".into(),
            hidden: Some(true),
            ..Default::default()
        }),
        Kind::DefineMetric(DefineMetricRequest {
            name: "s4/*".into(),
            step_metric: "epoch".into(),
            ..Default::default()
        }),
    ] {
        wal.append(&Record {
            time: start,
            kind: Some(kind),
        })
        .unwrap();
    }
    let run = RunFile {
        id: RUN.into(),
        name: "big-run".into(),
        project: PROJECT.into(),
        state: "finished".into(),
        start_time: start,
        end_time: Some(start + size.rows as f64 * 0.01),
        history_rows: size.rows as i64,
        step: size.rows as i64,
        ..Default::default()
    };
    fs::write(
        dir.join(store::RUN_JSON),
        serde_json::to_string(&run).unwrap(),
    )
    .unwrap();
    let keys: Vec<String> = (0..size.metrics).map(key).collect();
    let mut out = BufWriter::with_capacity(
        1 << 20,
        File::create(dir.join(store::HISTORY_JSONL)).unwrap(),
    );
    let mut line = String::with_capacity(64 * size.metrics);
    let mut num = ryu::Buffer::new();
    for step in 0..size.rows {
        line.clear();
        line.push('{');
        for (k, name) in keys.iter().enumerate() {
            let v = (1.0 + k as f64 / 50.0) / (1.0 + step as f64 / 20_000.0)
                + 0.05 * noise(step, k as u64);
            line.push('"');
            line.push_str(name);
            line.push_str("\":");
            line.push_str(if k == 0 && step % 100_000 == 77 {
                "NaN"
            } else {
                num.format(v)
            });
            line.push(',');
        }
        let runtime = step as f64 * 0.01;
        line.push_str(&format!(
            "\"epoch\":{},\"_step\":{step},\"_runtime\":{},\"_timestamp\":{}}}\n",
            step / 1000,
            num.format(runtime),
            ryu::Buffer::new().format(start + runtime)
        ));
        out.write_all(line.as_bytes()).unwrap();
    }
    out.flush().unwrap();
    fs::metadata(dir.join(store::HISTORY_JSONL)).unwrap().len()
}

fn dir_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => dir_size(&e.path()),
                    _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                })
                .sum()
        })
        .unwrap_or(0)
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn get(&self, path: &str) -> Duration {
        let t = Instant::now();
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.bytes().await.unwrap();
        t.elapsed()
    }

    /// Whether the run is still being indexed in the background.
    async fn indexing(&self, path: &str) -> bool {
        let url = format!("{}{path}", self.base);
        let body = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v.get("indexing").is_some()
    }

    /// Fetches `paths`, `parallel` at a time; returns the wall time.
    async fn get_all(&self, paths: &[String], parallel: usize) -> Duration {
        let t = Instant::now();
        for chunk in paths.chunks(parallel) {
            let tasks: Vec<_> = chunk
                .iter()
                .map(|p| {
                    let (http, url) = (self.http.clone(), format!("{}{p}", self.base));
                    tokio::spawn(async move {
                        let r = http.get(url).send().await.unwrap();
                        assert!(r.status().is_success());
                        r.bytes().await.unwrap();
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        }
        t.elapsed()
    }
}

fn series(k: usize, x: &str) -> String {
    format!(
        "/api/runs/{PROJECT}/{RUN}/series?key={}&x={x}&width={WIDTH}",
        key(k).replace('/', "%2F")
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// "median (min–max)" of durations in ms.
fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    format!(
        "{:.1} ms ({:.1}–{:.1}), p95 {:.1}",
        ms(v[v.len() / 2]),
        ms(v[0]),
        ms(v[v.len() - 1]),
        ms(v[(v.len() * 95 / 100).min(v.len() - 1)])
    )
}

/// CPU seconds this process has used (user + system).
fn cpu_seconds() -> f64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat(5), counted after the command name's ')'.
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_mib() -> f64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn measure(data: PathBuf, run_dir: PathBuf, size: &Size, history_bytes: u64) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(runcore::ui::serve(
        listener,
        data,
        None,
        std::future::pending(),
    ));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = Client {
        http: reqwest::Client::new(),
        base,
    };
    let run_api = format!("/api/runs/{PROJECT}/{RUN}");
    let _ = fs::remove_dir_all(run_dir.join(runcore::ui::index::INDEX_DIR));
    let first_screen: Vec<String> = (0..6).map(|k| series(k, "_step")).collect();
    let cpu = cpu_seconds();
    // The first open of a run never indexed: the preview, while indexing starts.
    let t = Instant::now();
    c.get(&format!("/runs/{PROJECT}/{RUN}")).await;
    c.get("/api/info").await;
    c.get(&run_api).await;
    c.get(&format!("{run_api}/metrics")).await;
    c.get_all(&first_screen, 6).await;
    let preview_open = t.elapsed();
    // Then the index is built in the background; the page asks once a second.
    while c.indexing(&format!("{run_api}/metrics")).await {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cold = t.elapsed();
    let cold_cpu = cpu_seconds() - cpu;
    let index_bytes = dir_size(&run_dir.join(runcore::ui::index::INDEX_DIR));

    let mut opens = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        c.get(&format!("/runs/{PROJECT}/{RUN}")).await;
        c.get("/api/info").await;
        c.get(&run_api).await;
        c.get(&format!("{run_api}/metrics")).await;
        c.get_all(&first_screen, 6).await;
        opens.push(t.elapsed());
    }
    let all: Vec<String> = (0..size.metrics).map(|k| series(k, "_step")).collect();
    let mut alls = Vec::new();
    let cpu = cpu_seconds();
    for _ in 0..3 {
        alls.push(c.get_all(&all, 6).await);
    }
    let series_cpu_ms = (cpu_seconds() - cpu) * 1000.0 / (3 * size.metrics) as f64;
    let mut rows: Vec<(String, String)> = Vec::new();
    for (label, x, keys) in [
        ("x = `_step`", "_step", 0..size.metrics),
        ("x = `_timestamp`", "_timestamp", 0..size.metrics.min(30)),
        (
            "x = `epoch` (define_metric step metric)",
            "epoch",
            80.min(size.metrics - 1)..size.metrics,
        ),
    ] {
        let mut times = Vec::new();
        for k in keys {
            times.push(c.get(&series(k, x)).await);
        }
        rows.push((
            format!("one metric's series, {label}, width {WIDTH}"),
            stats(times),
        ));
    }
    let mut zoom = Vec::new();
    for k in 0..size.metrics.min(30) {
        let lo = (k as u64 * 7_919) % (size.rows / 2);
        zoom.push(
            c.get(&format!(
                "{}&min={lo}&max={}",
                series(k, "_step"),
                lo + size.rows / 100
            ))
            .await,
        );
    }
    rows.push((
        format!("a zoomed range (1% of the steps), width {WIDTH}"),
        stats(zoom),
    ));
    let live = append_and_ask(&c, &run_dir, size, history_bytes).await;
    print_report(
        size,
        history_bytes,
        index_bytes,
        (preview_open, cold, cold_cpu),
        opens,
        (alls, series_cpu_ms),
        rows,
        live,
    );
}

/// Appends 1,000 rows, times the next series request, then restores the file.
async fn append_and_ask(c: &Client, run_dir: &Path, size: &Size, history_bytes: u64) -> Duration {
    let path = run_dir.join(store::HISTORY_JSONL);
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    let mut num = ryu::Buffer::new();
    for step in size.rows..size.rows + 1000 {
        let mut line = String::from("{");
        for k in 0..size.metrics {
            line.push_str(&format!(
                "\"{}\":{},",
                key(k),
                num.format(0.5 + noise(step, k as u64))
            ));
        }
        line.push_str(&format!(
            "\"epoch\":{},\"_step\":{step},\"_runtime\":1.0,\"_timestamp\":1.0}}\n",
            step / 1000
        ));
        f.write_all(line.as_bytes()).unwrap();
    }
    drop(f);
    let t = c.get(&series(0, "_step")).await;
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(history_bytes)
        .unwrap();
    t
}

#[allow(clippy::too_many_arguments)]
fn print_report(
    size: &Size,
    history_bytes: u64,
    index_bytes: u64,
    (preview_open, cold, cold_cpu): (Duration, Duration, f64),
    opens: Vec<Duration>,
    (alls, series_cpu_ms): (Vec<Duration>, f64),
    rows: Vec<(String, String)>,
    live: Duration,
) {
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "1-min load average at the end: {}",
        load.split(' ').next().unwrap_or("?")
    );
    println!(
        "run: {} steps x {} metrics (+ epoch), history.jsonl {:.2} GiB, index {:.2} GiB",
        size.rows,
        size.metrics,
        gib(history_bytes),
        gib(index_bytes)
    );
    println!();
    println!("| figure | time |");
    println!("|---|---|");
    println!(
        "| first open of a run never indexed (preview): page, run, metrics, first 6 charts | {:.1} ms |",
        ms(preview_open)
    );
    println!(
        "| building the index from nothing in the background, until full charts | {:.1} s ({cold_cpu:.1} CPU s) |",
        cold.as_secs_f64()
    );
    println!(
        "| opening the run page (index built): page, run, metrics, first 6 charts | {} |",
        stats(opens)
    );
    println!(
        "| all {} charts of the page, 6 requests at a time | {} ({series_cpu_ms:.1} CPU ms per chart) |",
        size.metrics,
        stats(alls)
    );
    for (label, figure) in rows {
        println!("| {label} | {figure} |");
    }
    println!(
        "| first series request after 1,000 rows were appended (live run) | {:.1} ms |",
        ms(live)
    );
    println!(
        "| peak RSS of the process (server and benchmark client) | {:.0} MiB |",
        peak_rss_mib()
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let size = if quick {
        Size {
            rows: 100_000,
            metrics: 20,
        }
    } else {
        Size {
            rows: 1_000_000,
            metrics: 100,
        }
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = repo
        .join(".cache/ui-bench")
        .join(format!("{}x{}", size.rows, size.metrics));
    let data = root.join("data");
    let run_dir = data.join(PROJECT).join(RUN);
    let done = root.join("generated");
    let history_bytes = match fs::read_to_string(&done)
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        Some(len) => len,
        None => {
            let _ = fs::remove_dir_all(&root);
            eprintln!(
                "generating {} steps x {} metrics in {}",
                size.rows,
                size.metrics,
                root.display()
            );
            let t = Instant::now();
            let len = generate(&run_dir, &size);
            fs::write(&done, len.to_string()).unwrap();
            eprintln!(
                "generated {:.2} GiB in {:.0} s",
                len as f64 / (1u64 << 30) as f64,
                t.elapsed().as_secs_f64()
            );
            len
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(measure(data, run_dir, &size, history_bytes));
}

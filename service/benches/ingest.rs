//! Raw ingest through `LogStream`: how many scalar points per second one client can
//! push into a sidecar on loopback, with the transaction log on, and what the
//! sidecar spends doing it. Also the load generator of `bench/run.sh` (raw ingest,
//! durability cost and idle cost scenarios).
//!
//! `cargo bench --bench ingest` starts its own sidecar (this build's `runcore`) on a
//! temporary data dir and pushes 2,000,000 points for 1 run and for 16 concurrent
//! runs. With flags it drives a sidecar someone else started:
//!
//! ```text
//! cargo bench --bench ingest -- --address tcp://127.0.0.1:PORT --sidecar-pid PID \
//!     [--runs 1] [--points 5000000] [--keys 10] [--rows-per-batch 1000] [--in-flight 8] [--json]
//! cargo bench --bench ingest -- --address ADDR --idle --runs 100   # open runs, wait for stdin EOF
//! cargo bench --bench ingest -- --writers 8 [--points 2000000]      # 8 runs vs 8 writers of one run
//! ```
//!
//! `--shared` makes the `--runs` streams writers of one shared run (W&B's
//! mode="shared": writer 0 primary, each writer its own keys) instead of separate
//! runs. `--writers N` starts its own sidecar twice and compares N separate runs
//! with N writers of one shared run, the same points in all.
//!
//! Each run gets its own connection and one stream of numbered batches (rows of
//! `--keys` float scalars in the packed fields, the key table once per batch), with
//! up to `--in-flight` batches unacknowledged. The clock runs from the first batch
//! sent to the last acknowledgement. The sidecar's CPU is read from
//! `/proc/PID/stat` before and after (so other processes do not count), its peak RSS
//! from `VmHWM` in `/proc/PID/status`, and the log size from each run's `run.wal`.
//! The client is single-threaded, so on a 2-core machine it leaves the sidecar at
//! least one core; its own CPU is printed too, to show when it is the limit.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runcore::config::ListenAddr;
use runcore::proto::v1::run_service_client::RunServiceClient;
use runcore::proto::v1::{
    ClientInfo, FinishRequest, HeartbeatRequest, InitRequest, LogBatch, Row, SystemMetricsSettings,
};
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone)]
struct Opts {
    address: Option<String>,
    sidecar_pid: Option<u32>,
    runs: usize,
    points: u64,
    keys: usize,
    rows_per_batch: usize,
    in_flight: usize,
    idle: bool,
    json: bool,
    /// The streams are writers of one shared run.
    shared: bool,
    /// Compare this many separate runs with as many writers of one run.
    writers: Option<usize>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            address: None,
            sidecar_pid: None,
            runs: 1,
            points: 5_000_000,
            keys: 10,
            rows_per_batch: 1000,
            in_flight: 8,
            idle: false,
            json: false,
            shared: false,
            writers: None,
        }
    }
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let num = |s: String| s.parse::<u64>().map_err(|e| format!("{s}: {e}"));
        match a.as_str() {
            // `cargo bench` passes --bench.
            "--bench" => {}
            "--address" => o.address = Some(val("--address")?),
            "--sidecar-pid" => o.sidecar_pid = Some(num(val("--sidecar-pid")?)? as u32),
            "--runs" => o.runs = num(val("--runs")?)?.max(1) as usize,
            "--points" => o.points = num(val("--points")?)?,
            "--keys" => o.keys = num(val("--keys")?)?.max(1) as usize,
            "--rows-per-batch" => o.rows_per_batch = num(val("--rows-per-batch")?)?.max(1) as usize,
            "--in-flight" => o.in_flight = num(val("--in-flight")?)?.max(1) as usize,
            "--idle" => o.idle = true,
            "--json" => o.json = true,
            "--shared" => o.shared = true,
            "--writers" => o.writers = Some(num(val("--writers")?)?.max(1) as usize),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

/// User + system CPU seconds of a process (all its threads, dead ones included).
fn process_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of proc(5): 11 and 12 after the command.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// A `Vm*` line of /proc/PID/status, KiB.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn self_cpu_s() -> f64 {
    process_cpu_s(std::process::id()).unwrap_or(0.0)
}

async fn connect(address: &str) -> Result<RunServiceClient<Channel>, BoxError> {
    let addr: ListenAddr = address.parse()?;
    let channel = runcore::client::connect(&addr).await?;
    Ok(RunServiceClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

/// A run opened for the benchmark, on its own connection.
struct OpenRun {
    client: RunServiceClient<Channel>,
    id: String,
    /// Its writer id (a writer of a shared run), and the prefix of its keys.
    writer: String,
    /// The run's directory (parent of its files/ dir): run.wal is there.
    dir: PathBuf,
}

async fn open_run(address: &str, i: usize, shared: bool) -> Result<OpenRun, BoxError> {
    let mut client = connect(address).await?;
    let (id, writer) = if shared {
        ("shared-bench".to_owned(), format!("w{i}"))
    } else {
        (String::new(), String::new())
    };
    let reply = client
        .init(InitRequest {
            id,
            resume: runcore::proto::v1::Resume::Allow as i32,
            writer_id: writer.clone(),
            writer: shared.then(|| runcore::proto::v1::WriterSettings {
                shared: true,
                label: format!("rank-{i}"),
                primary: Some(i == 0),
                update_finish_state: Some(i == 0),
            }),
            project: "bench".into(),
            name: format!("ingest-{i}"),
            client: Some(ClientInfo {
                pid: i64::from(std::process::id()),
                ..Default::default()
            }),
            // Idle runs must not be crashed by the client timeout: they heartbeat
            // like an SDK does, and this is the margin.
            client_timeout: Some(600.0),
            system_metrics: Some(SystemMetricsSettings {
                interval: 15.0,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?
        .into_inner();
    let run = reply.run.ok_or("Init returned no run")?;
    let dir = Path::new(&run.dir)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    Ok(OpenRun {
        client,
        id: run.id,
        writer,
        dir,
    })
}

/// One batch of `rows` rows starting at row `first`.
fn make_batch(run: (&str, &str), seq: u64, keys: &[String], first: u64, rows: usize) -> LogBatch {
    let (run_id, writer) = run;
    let key_ids: Vec<u32> = (0..keys.len() as u32).collect();
    let ts = runcore::clock::now();
    LogBatch {
        run_id: run_id.to_owned(),
        seq,
        keys: keys.to_vec(),
        rows: (0..rows as u64)
            .map(|r| {
                let x = (first + r) as f64 * 1e-3;
                Row {
                    scalar_keys: key_ids.clone(),
                    scalar_values: (0..keys.len()).map(|k| x + k as f64).collect(),
                    timestamp: ts,
                    ..Default::default()
                }
            })
            .collect(),
        writer_id: writer.to_owned(),
    }
}

/// Streams `rows` rows into a run; returns the number of rows acknowledged.
async fn stream_rows(run: &mut OpenRun, rows: u64, o: &Opts) -> Result<u64, BoxError> {
    let keys: Arc<Vec<String>> = Arc::new(
        (0..o.keys)
            .map(|k| format!("{}metric_{k}", run.writer))
            .collect(),
    );
    let batches = rows.div_ceil(o.rows_per_batch as u64);
    let (tx, rx) = mpsc::channel::<LogBatch>(o.in_flight);
    let window = Arc::new(Semaphore::new(o.in_flight));
    let producer = {
        let (window, keys, id, writer, per) = (
            window.clone(),
            keys.clone(),
            run.id.clone(),
            run.writer.clone(),
            o.rows_per_batch,
        );
        tokio::spawn(async move {
            for b in 0..batches {
                let Ok(permit) = window.acquire().await else {
                    return;
                };
                permit.forget();
                let first = b * per as u64;
                let n = (rows - first).min(per as u64) as usize;
                if tx
                    .send(make_batch((&id, &writer), b + 1, &keys, first, n))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        })
    };
    let mut acks = run
        .client
        .log_stream(ReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut acked = 0u64;
    let mut seen = 0u64;
    while seen < batches {
        let Some(ack) = acks.message().await? else {
            return Err(format!("stream ended after {seen} of {batches} batches").into());
        };
        if !ack.dropped.is_empty() {
            return Err(format!("batch {} dropped rows: {:?}", ack.seq, ack.dropped[0]).into());
        }
        seen += 1;
        let first = (ack.seq - 1) * o.rows_per_batch as u64;
        acked += (rows - first).min(o.rows_per_batch as u64);
        window.add_permits(1);
    }
    producer.await?;
    Ok(acked)
}

struct Figures {
    points: u64,
    wall_s: f64,
    sidecar_cpu_s: Option<f64>,
    client_cpu_s: f64,
    finish_s: f64,
    wal_bytes: u64,
    rss_peak_kib: Option<u64>,
    rss_end_kib: Option<u64>,
}

async fn ingest(address: &str, pid: Option<u32>, o: &Opts) -> Result<Figures, BoxError> {
    let mut runs = Vec::with_capacity(o.runs);
    for i in 0..o.runs {
        runs.push(open_run(address, i, o.shared).await?);
    }
    let rows_per_run = (o.points / o.runs as u64).div_ceil(o.keys as u64);
    let (cpu0, own0) = (pid.and_then(process_cpu_s), self_cpu_s());
    let t0 = Instant::now();
    let opts = Arc::new(o.clone());
    let tasks: Vec<_> = runs
        .into_iter()
        .map(|mut run| {
            let opts = opts.clone();
            tokio::spawn(async move {
                let acked = stream_rows(&mut run, rows_per_run, &opts).await?;
                Ok::<_, BoxError>((run, acked))
            })
        })
        .collect();
    let mut done = Vec::with_capacity(tasks.len());
    let mut rows = 0;
    for t in tasks {
        let (run, acked) = t.await??;
        rows += acked;
        done.push(run);
    }
    let wall_s = t0.elapsed().as_secs_f64();
    let (cpu1, own1) = (pid.and_then(process_cpu_s), self_cpu_s());
    let t1 = Instant::now();
    let mut wal_bytes = 0;
    // A shared run's primary (writer 0) finishes last.
    for run in done.iter_mut().rev() {
        run.client
            .finish(FinishRequest {
                run_id: run.id.clone(),
                exit_code: Some(0),
                writer_id: run.writer.clone(),
            })
            .await?;
    }
    let mut dirs: Vec<&PathBuf> = done.iter().map(|r| &r.dir).collect();
    dirs.dedup();
    for dir in dirs {
        wal_bytes += std::fs::metadata(dir.join("run.wal")).map_or(0, |m| m.len());
    }
    let finish_s = t1.elapsed().as_secs_f64();
    Ok(Figures {
        points: rows * o.keys as u64,
        wall_s,
        sidecar_cpu_s: cpu0.zip(cpu1).map(|(a, b)| b - a),
        client_cpu_s: own1 - own0,
        finish_s,
        wal_bytes,
        rss_peak_kib: pid.and_then(|p| status_kib(p, "VmHWM")),
        rss_end_kib: pid.and_then(|p| status_kib(p, "VmRSS")),
    })
}

fn report(f: &Figures, o: &Opts) {
    let pps = f.points as f64 / f.wall_s;
    let per_point_us = f.sidecar_cpu_s.map(|c| c * 1e6 / f.points as f64);
    let wal_per_point = f.wal_bytes as f64 / f.points as f64;
    if o.json {
        let v = serde_json::json!({
            "mode": "ingest",
            "runs": o.runs,
            "shared": o.shared,
            "keys": o.keys,
            "rows_per_batch": o.rows_per_batch,
            "in_flight": o.in_flight,
            "points": f.points,
            "wall_s": f.wall_s,
            "points_per_s": pps,
            "sidecar_cpu_s": f.sidecar_cpu_s,
            "sidecar_cpu_us_per_point": per_point_us,
            "sidecar_rss_peak_kib": f.rss_peak_kib,
            "sidecar_rss_end_kib": f.rss_end_kib,
            "client_cpu_s": f.client_cpu_s,
            "finish_s": f.finish_s,
            "wal_bytes": f.wal_bytes,
            "wal_bytes_per_point": wal_per_point,
        });
        println!("{v}");
    } else {
        let opt = |x: Option<f64>, unit: &str| x.map_or("n/a".into(), |v| format!("{v:.3} {unit}"));
        let what = if o.shared {
            "writer(s) of 1 run"
        } else {
            "run(s)"
        };
        println!(
            "{:>2} {what} x {} keys, {} rows/batch: {:>10.0} points/s  ({} points in {:.2} s)  \
             sidecar CPU {} ({} per point), peak RSS {}  client CPU {:.2} s  finish {:.3} s  WAL {:.1} B/point",
            o.runs,
            o.keys,
            o.rows_per_batch,
            pps,
            f.points,
            f.wall_s,
            opt(f.sidecar_cpu_s, "s"),
            opt(per_point_us, "µs"),
            f.rss_peak_kib
                .map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
            f.client_cpu_s,
            f.finish_s,
            wal_per_point,
        );
    }
}

/// Opens `--runs` runs, says so on stdout, heartbeats them every 15 s (as the
/// Python client does) until stdin closes, then finishes them.
async fn idle(address: &str, o: &Opts) -> Result<(), BoxError> {
    let mut runs = Vec::with_capacity(o.runs);
    for i in 0..o.runs {
        runs.push(open_run(address, i, false).await?);
    }
    println!(
        "{}",
        serde_json::json!({"mode": "idle", "ready": true, "runs": o.runs, "client_pid": std::process::id()})
    );
    let (eof_tx, mut eof) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = eof_tx.send(());
    });
    let mut beat = tokio::time::interval(Duration::from_secs(15));
    beat.tick().await;
    loop {
        tokio::select! {
            _ = &mut eof => break,
            _ = beat.tick() => {
                for run in &mut runs {
                    run.client.heartbeat(HeartbeatRequest { run_id: run.id.clone(), ..Default::default() }).await?;
                }
            }
        }
    }
    for run in &mut runs {
        let run_id = run.id.clone();
        run.client
            .finish(FinishRequest {
                run_id,
                exit_code: Some(0),
                ..Default::default()
            })
            .await?;
    }
    Ok(())
}

/// A sidecar of this build on a temporary data dir, for a plain `cargo bench`.
struct OwnSidecar {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl OwnSidecar {
    fn start() -> Result<Self, BoxError> {
        let dir = tempfile::tempdir()?;
        let port_file = dir.path().join("address");
        let child = Command::new(env!("CARGO_BIN_EXE_runcore"))
            .arg("serve")
            .args(["--listen", "tcp://127.0.0.1:0", "--port-file"])
            .arg(&port_file)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(a) = std::fs::read_to_string(&port_file) {
                if !a.trim().is_empty() {
                    return Ok(OwnSidecar {
                        child,
                        address: a.trim().to_owned(),
                        _dir: dir,
                    });
                }
            }
            if Instant::now() > deadline {
                return Err("the sidecar did not write its port file within 20 s".into());
            }
            // Polling for the spawned sidecar's port file (a separate process).
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for OwnSidecar {
    fn drop(&mut self) {
        // SIGTERM: every run is finished, so the drain is immediate.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let o = parse_args()?;
    match o.address.clone() {
        Some(address) if o.idle => idle(&address, &o).await,
        Some(address) => {
            let f = ingest(&address, o.sidecar_pid, &o).await?;
            report(&f, &o);
            Ok(())
        }
        None if o.writers.is_some() => {
            // N separate runs, then N writers of one shared run, each on a fresh
            // sidecar of this build.
            for shared in [false, true] {
                let sidecar = OwnSidecar::start()?;
                let o = Opts {
                    runs: o.writers.unwrap_or(8),
                    shared,
                    ..o.clone()
                };
                let f = ingest(&sidecar.address, Some(sidecar.child.id()), &o).await?;
                report(&f, &o);
            }
            Ok(())
        }
        None => {
            // A plain `cargo bench`: a short self-contained run.
            for runs in [1, 16] {
                let sidecar = OwnSidecar::start()?;
                let o = Opts {
                    runs,
                    points: 2_000_000,
                    ..o.clone()
                };
                let f = ingest(&sidecar.address, Some(sidecar.child.id()), &o).await?;
                report(&f, &o);
            }
            Ok(())
        }
    }
}

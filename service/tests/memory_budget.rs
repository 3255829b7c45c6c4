//! The memory budget (issue 14): whatever clients send, the sidecar's peak
//! resident memory stays under the Kubernetes manifest's 256 MiB limit with the
//! manifest's settings, refusing with RESOURCE_EXHAUSTED what would not fit, and
//! taking it again once runs have ended; and what an ordinary client sends (the
//! native client's batches of wide rows) is never refused at the default budget,
//! nor, at a small one, when its queued batches pass the budget only until they
//! are applied (a log batch waits for room, `memory::ROOM_WAIT`).
//! The sidecar is a separate process: its peak RSS (`VmHWM`) is the point.

mod support;

use std::collections::BTreeMap;

use runcore::proto::v1::{FinishRequest, LogBatch, LogRequest, Row, Value};
use support::*;
use tonic::Code;

/// The manifest's memory limit (deploy/kubernetes/*.yaml).
const MANIFEST_LIMIT: u64 = 256 << 20;

/// The sidecar with the manifest's memory settings (read from the manifest).
fn start_as_in_the_manifest() -> Sidecar {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/kubernetes/training-job.yaml"
    );
    let manifest = std::fs::read_to_string(path).expect("the manifest");
    let lines: Vec<&str> = manifest.lines().map(str::trim).collect();
    let value = |name: &str| -> String {
        let at = lines
            .iter()
            .position(|l| *l == format!("- name: {name}"))
            .unwrap_or_else(|| panic!("{name} in the manifest"));
        let v = lines[at + 1].strip_prefix("value: ").expect("a value line");
        v.trim_matches('"').to_owned()
    };
    let names = ["RUNCORE_MEMORY_BUDGET", "MALLOC_MMAP_THRESHOLD_"];
    let values: Vec<String> = names.iter().map(|n| value(n)).collect();
    let env: Vec<(&str, &str)> = names
        .iter()
        .copied()
        .zip(values.iter().map(String::as_str))
        .collect();
    Sidecar::start_with_env(Transport::Tcp, &[], &env)
}

/// Peak resident memory of a process, bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("a VmHWM line");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn text(seed: usize, len: usize) -> Value {
    let mut s = format!("{seed:08}");
    s.push_str(&"x".repeat(len - s.len()));
    string(s)
}

fn log_of(run: &str, values: BTreeMap<String, Value>) -> LogRequest {
    LogRequest {
        run_id: run.into(),
        data: values,
        ..Default::default()
    }
}

#[tokio::test]
async fn long_summaries_in_many_runs_stay_under_the_manifest_limit() {
    let sidecar = start_as_in_the_manifest();
    let mut client = sidecar.client().await;
    const MIB: usize = 1 << 20;
    let (mut accepted, mut refused, mut runs) = (0usize, None, Vec::new());
    // Unbounded, 40 runs x 8 keys x two distinct 1 MiB values would hold 640 MiB
    // of summaries (each key's first and last value).
    'runs: for r in 0..40 {
        let id = format!("r{r}");
        start_run(&mut client, &id).await;
        runs.push(id.clone());
        for round in 0..2 {
            let values = (0..8)
                .map(|k| (format!("k{k}"), text(r * 100 + round * 10 + k, MIB)))
                .collect();
            match client.log(log_of(&id, values)).await {
                Ok(_) => accepted += 1,
                Err(s) => {
                    refused = Some(s);
                    break 'runs;
                }
            }
        }
    }
    let refused = refused.expect("the budget refused something");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("--memory-budget"), "{refused:?}");
    // It took a good share of the budget before refusing (8 MiB per call).
    eprintln!(
        "accepted {accepted} calls; peak {} MiB",
        peak_rss(sidecar.pid()) >> 20
    );
    assert!(accepted >= 6, "only {accepted} calls taken");
    let peak = peak_rss(sidecar.pid());
    assert!(peak < MANIFEST_LIMIT, "peak RSS {} MiB", peak >> 20);

    // Once the runs end, memory is given back and a new run takes long values
    // again; what was acknowledged is in the store.
    for id in &runs {
        client
            .finish(FinishRequest {
                run_id: id.clone(),
                ..Default::default()
            })
            .await
            .expect("finish is never refused for memory");
    }
    let summary = read_json(&sidecar.run_dir("p", "r0").join("summary.json"));
    assert_eq!(as_str(&summary["k0"]).len(), MIB);
    start_run(&mut client, "after").await;
    let values = (0..8).map(|k| (format!("k{k}"), text(k, MIB))).collect();
    client
        .log(log_of("after", values))
        .await
        .expect("logging again once runs ended");
}

#[tokio::test]
async fn many_large_messages_at_once_stay_under_the_manifest_limit() {
    let sidecar = start_as_in_the_manifest();
    let mut client = sidecar.client().await;
    start_run(&mut client, "big").await;
    // 24 connections each send a 12 MiB value at the same moment: 288 MiB of
    // request bodies before any decoding, unbounded.
    let len = 12 << 20;
    let mut calls = Vec::new();
    for i in 0..24 {
        let mut c = runcore::proto::v1::run_service_client::RunServiceClient::new(
            channel(&sidecar.addr).await,
        )
        .max_encoding_message_size(usize::MAX);
        let req = log_of("big", BTreeMap::from([(format!("v{i}"), text(i, len))]));
        calls.push(tokio::spawn(async move { c.log(req).await }));
    }
    let (mut ok, mut exhausted) = (0, 0);
    for call in calls {
        match call.await.expect("join") {
            Ok(_) => ok += 1,
            Err(s) if s.code() == Code::ResourceExhausted => exhausted += 1,
            Err(s) => panic!("unexpected {s:?}"),
        }
    }
    eprintln!(
        "{ok} taken, {exhausted} refused; peak {} MiB",
        peak_rss(sidecar.pid()) >> 20
    );
    assert!(ok >= 1 && exhausted >= 1, "{ok} taken, {exhausted} refused");
    let peak = peak_rss(sidecar.pid());
    assert!(peak < MANIFEST_LIMIT, "peak RSS {} MiB", peak >> 20);
}

/// A LogStream batch as the native Python client packs it: one key table of
/// `width` keys, `rows` rows without a step (each commits its own step).
fn wide_batch(run: &str, seq: u64, rows: usize, width: usize) -> LogBatch {
    LogBatch {
        run_id: run.into(),
        seq,
        keys: (0..width)
            .map(|k| format!("layer/{k:04}/grad_norm"))
            .collect(),
        rows: (0..rows)
            .map(|i| Row {
                scalar_keys: (0..width as u32).collect(),
                scalar_values: (0..width)
                    .map(|k| (seq as usize * rows + i + k) as f64)
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn wide_batches_of_the_native_client_are_all_recorded_at_the_default_budget() {
    // No --memory-budget: the default. Each batch is 250 rows of 1,000 scalars
    // (2.5 MB encoded), which the budget once charged 230 MB and refused.
    let sidecar = Sidecar::start();
    let (runs, batches, rows, width) = (2, 3, 250, 1000);
    let mut streams = Vec::new();
    for r in 0..runs {
        let id = format!("wide{r}");
        let mut client = sidecar.client().await;
        start_run(&mut client, &id).await;
        let sent: Vec<LogBatch> = (1..=batches)
            .map(|seq| wide_batch(&id, seq, rows, width))
            .collect();
        streams.push(tokio::spawn(async move {
            let mut acks = client
                .log_stream(tokio_stream::iter(sent))
                .await
                .expect("the stream opens")
                .into_inner();
            let mut got = Vec::new();
            while let Some(ack) = acks.message().await.expect("every batch is taken") {
                got.push(ack);
            }
            (id, got)
        }));
    }
    let mut client = sidecar.client().await;
    for stream in streams {
        let (id, acks) = stream.await.expect("join");
        assert_eq!(
            acks.iter().map(|a| a.seq).collect::<Vec<_>>(),
            (1..=batches).collect::<Vec<_>>(),
            "{id}"
        );
        assert!(
            acks.iter().all(|a| !a.duplicate && a.dropped.is_empty()),
            "{acks:?}"
        );
        assert_eq!(acks.last().unwrap().step, (batches as usize * rows) as i64);
        client
            .finish(FinishRequest {
                run_id: id.clone(),
                ..Default::default()
            })
            .await
            .expect("finish");
        let history = read_jsonl(&sidecar.run_dir("p", &id).join("history.jsonl"));
        assert_eq!(history.len(), batches as usize * rows, "{id}");
        let last = history.last().unwrap();
        assert_eq!(
            last.len(),
            width + 3,
            "every key and _step, _runtime, _timestamp"
        );
        // The last row of batch 3: (3 * 250 + 249 + 999).
        assert_eq!(num(get(last, "layer/0999/grad_norm")), 1998.0);
    }
    let peak = peak_rss(sidecar.pid());
    eprintln!("peak {} MiB", peak >> 20);
    assert!(peak < MANIFEST_LIMIT, "peak RSS {} MiB", peak >> 20);
}

#[tokio::test]
async fn batches_queued_past_a_small_budget_wait_for_room_and_are_all_recorded() {
    // A 16 MiB budget, and a LogStream sent flat out: 30 batches of 100 rows of
    // 1,000 scalars, each charged about 2.6 MB while it is queued (78 MB in
    // all). The stream is read as fast as the connection allows and the actor
    // applies one batch at a time, so the queued batches pass the budget
    // (refused at once before batches waited for room); each one that does not
    // fit waits until the batches ahead of it are applied.
    let sidecar = Sidecar::start_with(Transport::Tcp, &["--memory-budget", "16777216"]);
    let (batches, rows, width) = (30u64, 100, 1000);
    let id = "queued";
    let mut client = sidecar.client().await;
    start_run(&mut client, id).await;
    let sent: Vec<LogBatch> = (1..=batches)
        .map(|seq| wide_batch(id, seq, rows, width))
        .collect();
    let mut acks = client
        .clone()
        .log_stream(tokio_stream::iter(sent))
        .await
        .expect("the stream opens")
        .into_inner();
    let mut got = Vec::new();
    while let Some(ack) = acks.message().await.expect("no batch is refused") {
        got.push(ack);
    }
    assert_eq!(
        got.iter().map(|a| a.seq).collect::<Vec<_>>(),
        (1..=batches).collect::<Vec<_>>()
    );
    assert!(
        got.iter().all(|a| !a.duplicate && a.dropped.is_empty()),
        "{got:?}"
    );
    client
        .finish(FinishRequest {
            run_id: id.into(),
            ..Default::default()
        })
        .await
        .expect("finish");
    let history = read_jsonl(&sidecar.run_dir("p", id).join("history.jsonl"));
    assert_eq!(history.len(), batches as usize * rows);
    // The last row of batch 30: (30 * 100 + 99 + 999).
    assert_eq!(
        num(get(history.last().unwrap(), "layer/0999/grad_norm")),
        4098.0
    );
}

#[tokio::test]
async fn a_batch_larger_than_the_whole_budget_is_refused_at_once() {
    // Waiting cannot make room for more than the limit: refused, not held
    // (that it is refused without waiting is checked in memory's unit tests).
    let sidecar = Sidecar::start_with(Transport::Tcp, &["--memory-budget", "4194304"]);
    let mut client = sidecar.client().await;
    start_run(&mut client, "huge").await;
    // One 1 MiB string is charged about 6 MiB (module doc of memory::log_bytes).
    let values = BTreeMap::from([("text".to_owned(), text(0, 1 << 20))]);
    let refused = client
        .log(log_of("huge", values))
        .await
        .expect_err("past the whole budget");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("--memory-budget"), "{refused:?}");
    // The run takes what fits.
    let values = BTreeMap::from([("text".to_owned(), text(1, 1024))]);
    client
        .log(log_of("huge", values))
        .await
        .expect("a small value fits");
}

#[test]
fn the_native_client_records_every_wide_row_at_the_default_budget() {
    // The Python client's native core, as a 1,000 x 1,000 benchmark logs: it
    // packs rows into batches of up to 512 rows or 4 MiB (about 420 rows of
    // 1,000 scalars) and drops a batch the sidecar refuses.
    let sidecar = Sidecar::start();
    let client = runcore_client::Client::connect(&sidecar.addr, None).expect("connect");
    let run = client
        .init(runcore_client::proto::InitRequest {
            id: "native".into(),
            project: "p".into(),
            ..Default::default()
        })
        .expect("init");
    let keys: Vec<String> = (0..1000)
        .map(|k| format!("layer/{k:04}/grad_norm"))
        .collect();
    for i in 0..1000 {
        let row = keys
            .iter()
            .enumerate()
            .map(|(k, key)| (key.as_str(), (i + k) as f64));
        assert!(run.log(row, None, None));
    }
    assert!(run.flush(None));
    let stats = run.stats();
    assert_eq!(
        (stats.rows_acked, stats.rows_lost),
        (1000, 0),
        "{stats:?} {:?}",
        run.warnings()
    );
    run.finish(None).expect("finish");
    let history = read_jsonl(&sidecar.run_dir("p", "native").join("history.jsonl"));
    assert_eq!(history.len(), 1000);
    assert_eq!(num(get(&history[999], "layer/0999/grad_norm")), 1998.0);
}

//! Micro-benchmarks of the per-point hot paths of a LogStream batch, in the order a
//! batch goes through them, so that a regression shows up in review:
//!
//! - `decode+validate+append`: protobuf decode of a `LogBatch` as it arrives,
//!   `api::validate::batch`, and `WalWriter::append` (encode, CRC, one write(2)
//!   into the page cache) of its `Record`;
//! - `apply`: `RunState::apply` of that record (step/commit rules, summary, and a
//!   history.jsonl line per row into the store's buffer);
//! - `summary update`: `Summary::observe` of one value;
//! - `history row encode`: one history.jsonl line through `StoreWriter` (the `Sink`
//!   the run actor uses), for a 10-key and a 1000-key row.
//!
//! `cargo bench --bench hot_paths` (add `-- --json` for one JSON object per line,
//! `-- --quick` for 3 repetitions instead of 15).
//! Each figure is timed with `std::time::Instant` over a fixed number of
//! iterations, after one untimed warm-up repetition, repeated; the median, min and
//! max per repetition are printed, as ns per unit (a point, a value or a row).

use std::sync::Arc;
use std::time::Instant;

use indexmap::IndexMap;
use prost::Message;
use runcore::api::validate;
use runcore::proto::v1::{InitRequest, LogBatch, Row, Value};
use runcore::proto::wal::{record::Kind, Record};
use runcore::semantics::state::{CommittedRow, RunState, Sink};
use runcore::semantics::summary::Summary;
use runcore::store::StoreWriter;
use runcore::value;
use runcore::wal::WalWriter;

struct Bench {
    json: bool,
    /// Timed repetitions of each figure.
    reps: usize,
}

impl Bench {
    /// Times `f` (`iters` calls per repetition, each worth `units` units) and prints
    /// ns per unit.
    fn run(&self, name: &str, unit: &str, units: u64, iters: u64, mut f: impl FnMut(u64)) {
        let mut rep = |timed: bool| {
            let t = Instant::now();
            for i in 0..iters {
                f(i);
            }
            let ns = t.elapsed().as_nanos() as f64 / (iters * units) as f64;
            timed.then_some(ns)
        };
        rep(false);
        let mut per: Vec<f64> = (0..self.reps).filter_map(|_| rep(true)).collect();
        per.sort_by(f64::total_cmp);
        let (median, min, max) = (per[per.len() / 2], per[0], per[per.len() - 1]);
        if self.json {
            println!(
                "{}",
                serde_json::json!({"name": name, "unit": unit, "median_ns": median,
                    "min_ns": min, "max_ns": max, "reps": self.reps, "iters": iters})
            );
        } else {
            println!(
                "{name:<44} {median:>9.1} ns/{unit:<6} (min {min:.1}, max {max:.1}; {} reps x {iters})",
                self.reps
            );
        }
    }
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|k| format!("metric_{k}")).collect()
}

/// A batch as the Python client sends it: `rows` rows of `nkeys` float scalars.
fn batch(rows: usize, nkeys: usize) -> LogBatch {
    LogBatch {
        run_id: "benchrun".into(),
        seq: 1,
        keys: keys(nkeys),
        rows: (0..rows)
            .map(|r| Row {
                scalar_keys: (0..nkeys as u32).collect(),
                scalar_values: (0..nkeys).map(|k| r as f64 * 1e-3 + k as f64).collect(),
                timestamp: 1.7e9 + r as f64,
                ..Default::default()
            })
            .collect(),
        writer_id: String::new(),
    }
}

/// A started run, as the actor holds it.
fn started_state(store: &mut StoreWriter) -> RunState {
    let mut state = RunState::default();
    let init = InitRequest {
        id: "benchrun".into(),
        project: "bench".into(),
        ..Default::default()
    };
    state.apply(
        &Record {
            time: 1.7e9,
            kind: Some(Kind::Start(init)),
        },
        store,
    );
    state
}

fn decode_to_append(b: &Bench, dir: &std::path::Path, rows: usize, nkeys: usize) {
    let bytes = batch(rows, nkeys).encode_to_vec();
    let points = (rows * nkeys) as u64;
    // A fresh log per repetition keeps the file (and the page cache) small.
    let mut n = 0;
    let mut wal: Option<WalWriter> = None;
    let iters = (2_000_000 / points).max(20);
    b.run(
        &format!("decode+validate+append {rows}x{nkeys}"),
        "point",
        points,
        iters,
        |i| {
            if i == 0 {
                n += 1;
                let path = dir.join(format!("append-{n}.wal"));
                let _ = std::fs::remove_file(dir.join(format!("append-{}.wal", n - 1)));
                wal = WalWriter::create(&path).ok();
            }
            let mut batch = LogBatch::decode(bytes.as_slice()).expect("decodes");
            validate::batch(&mut batch).expect("valid");
            let record = Record {
                time: 1.7e9,
                kind: Some(Kind::Log(batch)),
            };
            if let Some(w) = wal.as_mut() {
                w.append(&record).expect("appends");
            }
            std::hint::black_box(record);
        },
    );
}

fn apply(b: &Bench, dir: &std::path::Path, rows: usize, nkeys: usize) {
    let record = Record {
        time: 1.7e9,
        kind: Some(Kind::Log(batch(rows, nkeys))),
    };
    let points = (rows * nkeys) as u64;
    let store_dir = dir.join(format!("apply-{rows}x{nkeys}"));
    let mut store = StoreWriter::open(&store_dir, true).expect("store opens");
    let mut state = started_state(&mut store);
    b.run(
        &format!("apply (state+summary+history) {rows}x{nkeys}"),
        "point",
        points,
        (1_000_000 / points).max(20),
        |i| {
            if i == 0 {
                // Fresh store files each repetition keep the temp dir small.
                store = StoreWriter::open(&store_dir, true).expect("store opens");
            }
            std::hint::black_box(state.apply(&record, &mut store));
        },
    );
}

fn summary(b: &Bench) {
    let keys: Vec<Arc<str>> = keys(10).into_iter().map(Arc::from).collect();
    let mut s = Summary::default();
    b.run(
        "summary update (observe, 10 keys)",
        "value",
        10,
        200_000,
        |i| {
            let x = i as f64 * 1e-3;
            for (k, key) in keys.iter().enumerate() {
                s.observe(key, &value::double(x + k as f64));
            }
        },
    );
}

fn history(b: &Bench, dir: &std::path::Path, nkeys: usize) {
    let store_dir = dir.join(format!("history-{nkeys}"));
    let mut store = StoreWriter::open(&store_dir, true).expect("store opens");
    let values: IndexMap<Arc<str>, Value> = keys(nkeys)
        .into_iter()
        .enumerate()
        .map(|(k, key)| (Arc::from(key), value::double(0.123456789 * k as f64 + 1.0)))
        .collect();
    let iters = (200_000 / nkeys as u64).max(200);
    b.run(
        &format!("history row encode ({nkeys} keys)"),
        "row",
        1,
        iters,
        |i| {
            if i == 0 {
                store = StoreWriter::open(&store_dir, true).expect("store opens");
            }
            let row = CommittedRow {
                step: i as i64,
                runtime: i as f64 * 0.01,
                timestamp: 1.7e9 + i as f64 * 0.01,
                values: &values,
            };
            store.history(&row);
        },
    );
    store.flush();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let b = Bench {
        json: args.iter().any(|a| a == "--json"),
        // --quick: a harness check, not figures to quote.
        reps: if args.iter().any(|a| a == "--quick") {
            3
        } else {
            15
        },
    };
    let dir = tempfile::tempdir().expect("temp dir");
    decode_to_append(&b, dir.path(), 1000, 10);
    decode_to_append(&b, dir.path(), 1, 1000);
    apply(&b, dir.path(), 1000, 10);
    apply(&b, dir.path(), 1, 1000);
    summary(&b);
    history(&b, dir.path(), 10);
    history(&b, dir.path(), 1000);
}

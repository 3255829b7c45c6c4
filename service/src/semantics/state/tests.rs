//! The step/commit table, finish and step_sync, artifact records, applied record by
//! record.

use super::*;
use crate::proto::v1::UpdateConfigRequest;

#[derive(Default)]
struct Collect(Vec<(i64, Vec<(String, f64)>)>);

impl Sink for Collect {
    fn history(&mut self, row: &CommittedRow<'_>) {
        self.0.push((
            row.step,
            row.values
                .iter()
                .map(|(k, v)| (k.to_string(), value::as_f64(v).unwrap_or(f64::NAN)))
                .collect(),
        ));
    }
}

pub(super) fn started() -> RunState {
    let mut s = RunState::default();
    let rec = Record {
        time: 100.0,
        kind: Some(Kind::Start(InitRequest {
            id: "r".into(),
            project: "p".into(),
            ..Default::default()
        })),
    };
    s.apply(&rec, &mut Collect::default());
    s
}

fn log(
    s: &mut RunState,
    out: &mut Collect,
    k: &str,
    v: f64,
    step: Option<i64>,
    commit: Option<bool>,
) -> Vec<DroppedRow> {
    let batch = LogBatch {
        keys: vec![k.into()],
        rows: vec![Row {
            scalar_keys: vec![0],
            scalar_values: vec![v],
            step,
            commit,
            ..Default::default()
        }],
        ..Default::default()
    };
    let rec = Record {
        time: 101.0,
        kind: Some(Kind::Log(batch)),
    };
    match s.apply(&rec, out) {
        Outcome::Log { dropped } => dropped,
        other => panic!("unexpected outcome {other:?}"),
    }
}

fn row(k: &str, v: f64) -> Vec<(String, f64)> {
    vec![(k.to_owned(), v)]
}

#[test]
fn the_wandb_step_commit_table() {
    let mut s = started();
    let mut out = Collect::default();
    log(&mut s, &mut out, "a", 1.0, None, None); // commits at 0
    log(&mut s, &mut out, "b", 2.0, None, Some(false)); // pending at 1
    log(&mut s, &mut out, "c", 3.0, None, None); // merges, commits at 1
    log(&mut s, &mut out, "d", 4.0, Some(5), None); // jumps to 5, pending
    log(&mut s, &mut out, "e", 5.0, Some(5), None); // merges at 5
    log(&mut s, &mut out, "f", 6.0, Some(7), None); // flushes 5, pending at 7
    let dropped = log(&mut s, &mut out, "g", 7.0, Some(3), None);
    log(&mut s, &mut out, "h", 8.0, Some(7), Some(true)); // commits 7
    assert_eq!(
        out.0,
        vec![
            (0, row("a", 1.0)),
            (1, vec![("b".into(), 2.0), ("c".into(), 3.0)]),
            (5, vec![("d".into(), 4.0), ("e".into(), 5.0)]),
            (7, vec![("f".into(), 6.0), ("h".into(), 8.0)]),
        ]
    );
    assert_eq!(dropped.len(), 1);
    assert_eq!((dropped[0].step, dropped[0].current_step), (3, 7));
    assert_eq!(s.info.step, 8);
    assert_eq!(s.info.history_rows, 4);
}

#[test]
fn finish_flushes_the_pending_row() {
    let mut s = started();
    let mut out = Collect::default();
    log(&mut s, &mut out, "a", 1.0, Some(3), None);
    assert!(out.0.is_empty());
    let rec = Record {
        time: 102.0,
        kind: Some(Kind::State(StateChange {
            state: State::Finished as i32,
            exit_code: Some(0),
            ..Default::default()
        })),
    };
    s.apply(&rec, &mut out);
    assert_eq!(out.0, vec![(3, row("a", 1.0))]);
    assert_eq!(s.state(), State::Finished);
    assert_eq!(s.info.end_time, 102.0);
}

#[test]
fn step_sync_fills_the_step_metric() {
    let mut s = started();
    let mut out = Collect::default();
    s.metrics
        .define(&crate::proto::v1::DefineMetricRequest {
            name: "val/*".into(),
            step_metric: "epoch".into(),
            ..Default::default()
        })
        .unwrap();
    log(&mut s, &mut out, "epoch", 2.0, None, None);
    log(&mut s, &mut out, "val/loss", 0.5, None, None);
    log(&mut s, &mut out, "train/loss", 0.7, None, None);
    assert_eq!(
        out.0[1].1,
        vec![("val/loss".into(), 0.5), ("epoch".into(), 2.0)]
    );
    assert_eq!(out.0[2].1, row("train/loss", 0.7));
}

#[test]
fn system_metrics_keep_each_writer_labels_latest_sample() {
    let mut s = started();
    let mut out = Collect::default();
    let sample = |time: f64, label: &str, cpu: f64| Record {
        time,
        kind: Some(Kind::System(SystemSample {
            keys: vec!["cpu".into()],
            values: vec![cpu],
            label: label.into(),
            ..Default::default()
        })),
    };
    s.apply(&sample(101.0, "rank-0", 10.0), &mut out);
    s.apply(&sample(102.0, "rank-1", 20.0), &mut out);
    s.apply(&sample(103.0, "rank-0", 30.0), &mut out);
    let got = s.system_metrics();
    assert_eq!(got["system.cpu/l:rank-0"], 30.0);
    assert_eq!(got["system.cpu/l:rank-1"], 20.0);
    assert_eq!((got["_timestamp"], got["_runtime"]), (103.0, 3.0));
    assert_eq!(got.len(), 4);
}

#[test]
fn artifact_records_keep_what_the_run_logged_and_used() {
    use crate::proto::v1::Artifact;
    use crate::proto::wal::{artifact_record, ArtifactRecord};
    let mut s = started();
    let record = |kind| Record {
        time: 103.0,
        kind: Some(Kind::Artifact(ArtifactRecord { kind: Some(kind) })),
    };
    let version = |name: &str, v: &str| Artifact {
        name: name.into(),
        version: v.into(),
        ..Default::default()
    };
    for kind in [
        artifact_record::Kind::Logged(version("ds", "v0")),
        artifact_record::Kind::Logged(version("ds", "v0")),
        artifact_record::Kind::Used(version("model", "v2")),
        artifact_record::Kind::Aliased(version("ds", "v0")),
    ] {
        s.apply(&record(kind), &mut Collect::default());
    }
    assert_eq!(s.logged_artifacts, ["ds:v0"]);
    assert_eq!(s.used_artifacts, ["model:v2"]);
}

/// Applies one row of `values` (no step: committed at once).
fn log_values(s: &mut RunState, values: &[(&str, Value)]) {
    let batch = LogBatch {
        rows: vec![Row {
            values: values
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let rec = Record {
        time: 101.0,
        kind: Some(Kind::Log(batch)),
    };
    s.apply(&rec, &mut Collect::default());
}

#[test]
fn retained_bytes_follow_what_the_summary_keeps() {
    let mut s = started();
    let base = s.retained_bytes();
    // Scalars logged again and again hold the same memory.
    let mut out = Collect::default();
    log(&mut s, &mut out, "loss", 1.0, None, None);
    let one = s.retained_bytes();
    for i in 0..1000 {
        log(&mut s, &mut out, "loss", i as f64, None, None);
    }
    assert_eq!(s.retained_bytes(), one);
    // A long string is held as the key's first and last value; a later short
    // one replaces only the last.
    let mb = "x".repeat(1 << 20);
    log_values(&mut s, &[("text", value::string(mb.clone()))]);
    let held = s.retained_bytes() - one;
    assert!((2 << 20..(2 << 20) + 4096).contains(&held), "{held}");
    log_values(&mut s, &[("text", value::string("short"))]);
    let held = s.retained_bytes() - one;
    assert!((1 << 20..(1 << 20) + 4096).contains(&held), "{held}");
    // Config counts its values; removing them gives the bytes back.
    let config = |config: BTreeMap<String, Value>, remove: Vec<String>| Record {
        time: 102.0,
        kind: Some(Kind::Config(UpdateConfigRequest {
            config,
            remove,
            ..Default::default()
        })),
    };
    let before = s.retained_bytes();
    let big = BTreeMap::from([("big".to_owned(), value::string(mb))]);
    s.apply(&config(big, vec![]), &mut Collect::default());
    assert!(s.retained_bytes() - before >= 1 << 20);
    s.apply(
        &config(BTreeMap::new(), vec!["big".into()]),
        &mut Collect::default(),
    );
    assert_eq!(s.retained_bytes(), before);
    assert!(base < one);
}

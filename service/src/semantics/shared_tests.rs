//! The shared-run step rules on `RunState::apply` directly.

use super::*;
use crate::proto::v1::{LogBatch, WriterSettings};
use crate::proto::wal::{record::Kind, Record, StateChange};
use crate::semantics::state::CommittedRow;

/// Committed rows as (step, sorted key=value pairs).
#[derive(Default)]
struct Rows(Vec<(i64, Vec<(String, f64)>)>);

impl Sink for Rows {
    fn history(&mut self, row: &CommittedRow<'_>) {
        let mut kv: Vec<(String, f64)> = row
            .values
            .iter()
            .map(|(k, v)| (k.to_string(), value::as_f64(v).unwrap_or(f64::NAN)))
            .collect();
        kv.sort_by(|a, b| a.0.cmp(&b.0));
        self.0.push((row.step, kv));
    }
}

fn init(writer: &str, shared: bool) -> InitRequest {
    InitRequest {
        id: "r".into(),
        project: "p".into(),
        writer_id: writer.into(),
        writer: Some(WriterSettings {
            shared,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn apply(s: &mut RunState, out: &mut Rows, kind: Kind) -> super::super::state::Outcome {
    s.apply(
        &Record {
            time: 100.0,
            kind: Some(kind),
        },
        out,
    )
}

/// Logs one row `k=v` from `writer`; returns the dropped rows.
fn log(
    s: &mut RunState,
    out: &mut Rows,
    writer: &str,
    k: &str,
    v: f64,
    step: Option<i64>,
    commit: Option<bool>,
) -> usize {
    let batch = LogBatch {
        writer_id: writer.into(),
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
    match apply(s, out, Kind::Log(batch)) {
        super::super::state::Outcome::Log { dropped } => dropped.len(),
        _ => panic!("not a log outcome"),
    }
}

fn end(s: &mut RunState, out: &mut Rows, writer: &str) {
    apply(
        s,
        out,
        Kind::WriterEnd(WriterEnd {
            writer_id: writer.into(),
            state: State::Finished as i32,
            ..Default::default()
        }),
    );
}

fn kv(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn two_writers() -> (RunState, Rows) {
    let mut s = RunState::default();
    let mut out = Rows::default();
    apply(&mut s, &mut out, Kind::Start(init("a", true)));
    apply(&mut s, &mut out, Kind::Resume(init("b", true)));
    (s, out)
}

#[test]
fn each_writer_counts_its_own_steps_and_rows_of_a_step_merge() {
    let (mut s, mut out) = two_writers();
    log(&mut s, &mut out, "a", "a", 1.0, None, None); // a: step 0
    log(&mut s, &mut out, "a", "a", 2.0, None, None); // a: step 1
    assert!(out.0.is_empty(), "b still at step 0 holds step 0 open");
    log(&mut s, &mut out, "b", "b", 10.0, None, None); // b: step 0
    assert_eq!(out.0, vec![(0, kv(&[("a", 1.0), ("b", 10.0)]))]);
    log(&mut s, &mut out, "b", "b", 11.0, None, None); // b: step 1
    assert_eq!(out.0[1], (1, kv(&[("a", 2.0), ("b", 11.0)])));
    assert_eq!(s.info.step, 2);
    assert_eq!(s.info.history_rows, 2);
}

#[test]
fn explicit_steps_merge_and_smaller_ones_drop_per_writer() {
    let (mut s, mut out) = two_writers();
    assert_eq!(log(&mut s, &mut out, "a", "x", 1.0, Some(5), None), 0);
    assert_eq!(log(&mut s, &mut out, "b", "y", 2.0, Some(5), None), 0);
    assert_eq!(log(&mut s, &mut out, "a", "x", 3.0, Some(7), None), 0);
    // a moved past 5, b has not: 5 stays open; b jumping on writes it.
    assert!(out.0.is_empty());
    assert_eq!(log(&mut s, &mut out, "b", "y", 4.0, Some(7), None), 0);
    assert_eq!(out.0, vec![(5, kv(&[("x", 1.0), ("y", 2.0)]))]);
    // Each writer's own smaller step is dropped and reported.
    assert_eq!(log(&mut s, &mut out, "a", "x", 9.0, Some(6), None), 1);
    end(&mut s, &mut out, "a");
    end(&mut s, &mut out, "b");
    assert_eq!(out.0[1], (7, kv(&[("x", 3.0), ("y", 4.0)])));
}

#[test]
fn a_writer_that_ends_holds_nothing_and_the_run_end_writes_everything() {
    let (mut s, mut out) = two_writers();
    log(&mut s, &mut out, "a", "a", 1.0, None, None);
    log(&mut s, &mut out, "a", "a", 2.0, None, None);
    end(&mut s, &mut out, "b");
    assert_eq!(out.0.len(), 2);
    log(&mut s, &mut out, "a", "a", 3.0, Some(9), None); // pending at 9
    apply(
        &mut s,
        &mut out,
        Kind::State(StateChange {
            state: State::Finished as i32,
            exit_code: Some(0),
            ..Default::default()
        }),
    );
    assert_eq!(out.0[2], (9, kv(&[("a", 3.0)])));
    assert!(s.writers.attached().next().is_none());
}

#[test]
fn a_late_writer_starts_at_the_runs_current_step() {
    let mut s = RunState::default();
    let mut out = Rows::default();
    apply(&mut s, &mut out, Kind::Start(init("a", true)));
    for i in 0..3 {
        log(&mut s, &mut out, "a", "a", f64::from(i), None, None);
    }
    apply(&mut s, &mut out, Kind::Resume(init("b", true)));
    assert_eq!(s.writers.get("b").unwrap().step, 3);
    log(&mut s, &mut out, "b", "b", 1.0, None, None);
    log(&mut s, &mut out, "a", "a", 3.0, None, None);
    assert_eq!(out.0[3], (3, kv(&[("a", 3.0), ("b", 1.0)])));
}

#[test]
fn seqs_are_per_writer() {
    let (mut s, mut out) = two_writers();
    let batch = |w: &str| LogBatch {
        writer_id: w.into(),
        seq: 1,
        ..Default::default()
    };
    apply(&mut s, &mut out, Kind::Log(batch("a")));
    assert!(s.is_duplicate("a", 1));
    assert!(!s.is_duplicate("b", 1));
    apply(&mut s, &mut out, Kind::Log(batch("b")));
    assert!(s.is_duplicate("b", 1));
}

#[test]
fn a_run_becoming_shared_keeps_its_pending_row() {
    let mut s = RunState::default();
    let mut out = Rows::default();
    apply(&mut s, &mut out, Kind::Start(init("a", false)));
    log(&mut s, &mut out, "a", "a", 1.0, Some(4), None); // pending at 4
    apply(&mut s, &mut out, Kind::Resume(init("b", true)));
    assert!(s.info.shared);
    log(&mut s, &mut out, "b", "b", 2.0, None, None); // b starts at 4
    log(&mut s, &mut out, "a", "a", 3.0, None, None); // a commits 4
    assert_eq!(out.0, vec![(4, kv(&[("a", 3.0), ("b", 2.0)]))]);
}

#[test]
fn a_stalled_writer_holds_at_most_max_open_steps() {
    let (mut s, mut out) = two_writers();
    let n = MAX_OPEN_STEPS as i64 + 5;
    for i in 0..n {
        log(&mut s, &mut out, "a", "a", i as f64, None, None);
    }
    assert_eq!(out.0.len(), 5);
    assert_eq!(s.open.len(), MAX_OPEN_STEPS);
    // b continues after what was written, nothing of it lost.
    assert_eq!(s.writers.get("b").unwrap().step, 5);
    log(&mut s, &mut out, "b", "b", 1.0, None, None);
    assert_eq!(out.0.len(), 6);
    assert_eq!(out.0[5], (5, kv(&[("a", 5.0), ("b", 1.0)])));
}

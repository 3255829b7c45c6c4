//! Property tests (issue 14): the transaction-log reader on any bytes, request
//! validation on any request, and the step/commit state machine on any sequence of
//! rows. Case counts are kept small: the suite runs on two cores.

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;
use prost::Message;
use runcore::api::validate;
use runcore::limits::{MAX_DEPTH, MAX_STEP};
use runcore::proto::v1::{
    value::Kind, AlertRequest, Histogram, InitRequest, ListValue, LogBatch, LogRequest, MapValue,
    Row, RunState as State, SaveFilesRequest, Value,
};
use runcore::proto::wal::{record::Kind as RecordKind, Record, StateChange};
use runcore::semantics::state::{CommittedRow, RunState, Sink};
use runcore::wal::{WalReader, WalWriter};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,8}",
        any::<String>(),
        Just(String::new()),
        Just("../../x".to_owned()),
        Just("_step".to_owned()),
        "[a-z]{0,3}[\\x00-\\x1f][a-z]{0,3}",
    ]
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-1.0),
        Just(1e300),
        0.0..1e6,
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        number().prop_map(|x| Value {
            kind: Some(Kind::DoubleValue(x))
        }),
        any::<i64>().prop_map(|x| Value {
            kind: Some(Kind::IntValue(x))
        }),
        text().prop_map(|s| Value {
            kind: Some(Kind::StringValue(s))
        }),
        (
            prop::collection::vec(number(), 0..4),
            prop::collection::vec(any::<i64>(), 0..3)
        )
            .prop_map(|(bins, counts)| Value {
                kind: Some(Kind::Histogram(Histogram {
                    bins,
                    counts,
                    ..Default::default()
                }))
            }),
        prop::collection::vec(number(), 1..8).prop_map(|values| Value {
            kind: Some(Kind::Histogram(Histogram {
                values,
                num_bins: 3,
                ..Default::default()
            }))
        }),
        Just(Value { kind: None }),
    ];
    leaf.prop_recursive(MAX_DEPTH as u32 + 4, 64, 3, |inner| {
        prop_oneof![
            prop::collection::btree_map(text(), inner.clone(), 0..3).prop_map(|fields| Value {
                kind: Some(Kind::MapValue(MapValue { fields }))
            }),
            prop::collection::vec(inner, 0..3).prop_map(|values| Value {
                kind: Some(Kind::ListValue(ListValue { values }))
            }),
        ]
    })
}

/// A value `depth` maps deep, to reach the limit more often than chance does.
fn deep_value() -> impl Strategy<Value = Value> {
    (MAX_DEPTH - 2..MAX_DEPTH + 3, value()).prop_map(|(depth, mut v)| {
        for _ in 0..depth {
            v = Value {
                kind: Some(Kind::MapValue(MapValue {
                    fields: BTreeMap::from([("k".to_owned(), v)]),
                })),
            };
        }
        v
    })
}

fn step() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        Just(None),
        (0i64..20).prop_map(Some),
        any::<i64>().prop_map(Some),
        (MAX_STEP - 2..=MAX_STEP + 2).prop_map(Some),
    ]
}

fn log_request() -> impl Strategy<Value = LogRequest> {
    (
        text(),
        prop::collection::btree_map(text(), prop_oneof![value(), deep_value()], 0..4),
        step(),
        any::<Option<bool>>(),
        any::<u64>(),
        number(),
    )
        .prop_map(|(run_id, data, step, commit, seq, timestamp)| LogRequest {
            run_id,
            data,
            step,
            commit,
            seq,
            timestamp,
        })
}

/// What the API accepted must be readable from the log: encoded in a record and
/// decoded again, it comes back whole.
fn round_trips(batch: LogBatch) {
    let record = Record {
        time: 1.0,
        kind: Some(RecordKind::Log(batch)),
    };
    let bytes = record.encode_to_vec();
    let back = Record::decode(bytes.as_slice()).expect("an accepted request decodes");
    assert_eq!(back.encode_to_vec(), bytes);
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn validation_answers_every_log_request(req in log_request()) {
        if let Ok(batch) = validate::log(req) {
            for row in &batch.rows {
                prop_assert!(row.step.is_none_or(|s| (0..=MAX_STEP).contains(&s)));
                prop_assert!(row.timestamp.is_finite() && row.timestamp >= 0.0);
            }
            round_trips(batch);
        }
    }

    #[test]
    fn validation_answers_every_batch(
        run_id in text(),
        keys in prop::collection::vec(text(), 0..4),
        rows in prop::collection::vec(
            (prop::collection::vec(0u32..6, 0..4), prop::collection::vec(number(), 0..4),
             prop::collection::btree_map(text(), value(), 0..3), step()),
            0..4),
        seq in any::<u64>(),
    ) {
        let mut batch = LogBatch {
            run_id,
            seq,
            keys,
            rows: rows.into_iter().map(|(scalar_keys, scalar_values, values, step)| Row {
                scalar_keys, scalar_values, values, step, ..Default::default()
            }).collect(),
        };
        if validate::batch(&mut batch).is_ok() {
            round_trips(batch);
        }
    }

    #[test]
    fn validation_answers_every_init_alert_and_save(
        id in text(), project in text(), entity in text(), name in text(),
        timeout in proptest::option::of(number()),
        config in prop::collection::btree_map(text(), prop_oneof![value(), deep_value()], 0..3),
        title in text(), wait in proptest::option::of(number()), level in text(),
        glob in text(), policy in text(),
    ) {
        let mut init = InitRequest {
            id, project, entity, name, config, client_timeout: timeout, ..Default::default()
        };
        let _ = validate::init(&mut init);
        let mut alert = AlertRequest {
            run_id: "r".into(), title, level, wait_duration: wait, ..Default::default()
        };
        let _ = validate::alert(&mut alert);
        let _ = validate::save(&SaveFilesRequest {
            run_id: "r".into(), glob, policy, ..Default::default()
        });
    }
}

/// Records as a writer makes them.
fn records() -> impl Strategy<Value = Vec<Record>> {
    prop::collection::vec(
        (
            1.0f64..1e9,
            prop::collection::vec(number(), 0..4),
            proptest::option::of(0i64..100),
        ),
        1..12,
    )
    .prop_map(|rows| {
        rows.into_iter()
            .map(|(time, scalar_values, step)| Record {
                time,
                kind: Some(RecordKind::Log(LogBatch {
                    run_id: "r".into(),
                    keys: vec!["a".into(), "b".into(), "c".into(), "d".into()],
                    rows: vec![Row {
                        scalar_keys: (0..scalar_values.len() as u32).collect(),
                        scalar_values,
                        step,
                        ..Default::default()
                    }],
                    ..Default::default()
                })),
            })
            .collect()
    })
}

/// Damage done to a log: flipped bytes, a cut, garbage, or nothing but garbage.
#[derive(Debug, Clone)]
enum Damage {
    Flip(Vec<(usize, u8)>),
    Cut(usize),
    Insert(usize, Vec<u8>),
    Zeroes(usize),
    Replace(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        prop::collection::vec((any::<usize>(), 1u8..), 1..4).prop_map(Damage::Flip),
        any::<usize>().prop_map(Damage::Cut),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..40))
            .prop_map(|(a, b)| Damage::Insert(a, b)),
        (0usize..200).prop_map(Damage::Zeroes),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Damage::Replace),
    ]
}

fn apply(bytes: &mut Vec<u8>, d: &Damage) {
    let n = bytes.len().max(1);
    match d {
        Damage::Flip(flips) => {
            for (at, x) in flips {
                if let Some(b) = bytes.get_mut(at % n) {
                    *b ^= x;
                }
            }
        }
        Damage::Cut(at) => bytes.truncate(at % n),
        Damage::Insert(at, garbage) => {
            let at = at % n;
            bytes.splice(at..at, garbage.iter().copied());
        }
        Damage::Zeroes(len) => *bytes = vec![0u8; *len],
        Damage::Replace(garbage) => *bytes = garbage.clone(),
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn the_log_reader_returns_only_what_was_written(recs in records(), d in damage()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.wal");
        {
            let mut w = WalWriter::create(&path).unwrap();
            for r in &recs {
                w.append(r).unwrap();
            }
        }
        let mut bytes = std::fs::read(&path).unwrap();
        apply(&mut bytes, &d);
        std::fs::write(&path, &bytes).unwrap();
        // Reading (and skipping past bad records) gives a subsequence of what
        // was written, in order; with no damage, all of it.
        let mut read = Vec::new();
        if let Ok(mut r) = WalReader::open(&path) {
            while let Ok(Some(rec)) = r.next_record() {
                read.push(rec);
            }
        }
        let mut rest = recs.iter();
        for rec in &read {
            // Compared as bytes: NaN != NaN.
            let bytes = rec.encode_to_vec();
            prop_assert!(
                rest.any(|w| w.encode_to_vec() == bytes),
                "a record that was not written: {rec:?}"
            );
        }
        if let Damage::Flip(_) = d {
            // A flip damages at most the frames it lands in.
            prop_assert!(read.len() + 3 >= recs.len(), "{} of {}", read.len(), recs.len());
        }
    }
}

#[derive(Default)]
struct Rows(Vec<(i64, Vec<String>)>);

impl Sink for Rows {
    fn history(&mut self, row: &CommittedRow<'_>) {
        self.0
            .push((row.step, row.values.keys().map(|k| k.to_string()).collect()));
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn committed_steps_only_grow_and_every_row_lands_once_or_is_reported(
        calls in prop::collection::vec((step(), any::<Option<bool>>()), 1..40),
    ) {
        let mut state = RunState::default();
        let mut out = Rows::default();
        state.apply(&Record {
            time: 1.0,
            kind: Some(RecordKind::Start(InitRequest { id: "r".into(), ..Default::default() })),
        }, &mut out);
        let mut dropped = HashSet::new();
        for (i, (step, commit)) in calls.iter().enumerate() {
            let batch = LogBatch {
                keys: vec![format!("row{i}")],
                rows: vec![Row {
                    scalar_keys: vec![0], scalar_values: vec![1.0], step: *step, commit: *commit,
                    ..Default::default()
                }],
                ..Default::default()
            };
            let before = state.info.step;
            let outcome = state.apply(&Record {
                time: 2.0, kind: Some(RecordKind::Log(batch)),
            }, &mut out);
            prop_assert!(state.info.step >= before, "the step went back");
            if let runcore::semantics::state::Outcome::Log { dropped: d } = outcome {
                for row in d {
                    prop_assert!(!row.reason.is_empty());
                    dropped.insert(format!("row{i}"));
                }
            }
        }
        state.apply(&Record {
            time: 3.0,
            kind: Some(RecordKind::State(StateChange {
                reason: String::new(),
                state: State::Finished as i32, exit_code: Some(0),
            })),
        }, &mut out);
        // Steps of committed rows strictly increase and stay in range.
        for w in out.0.windows(2) {
            prop_assert!(w[0].0 < w[1].0, "steps {} then {}", w[0].0, w[1].0);
        }
        for (s, _) in &out.0 {
            prop_assert!((0..=MAX_STEP).contains(s));
        }
        prop_assert_eq!(state.info.history_rows as usize, out.0.len());
        // Every row is committed exactly once, or reported dropped.
        for i in 0..calls.len() {
            let key = format!("row{i}");
            let landed = out.0.iter().filter(|(_, keys)| keys.contains(&key)).count();
            let was_dropped = dropped.contains(&key);
            prop_assert!(
                (landed == 1) != was_dropped,
                "{key}: committed {landed} times, dropped {was_dropped}"
            );
        }
    }
}

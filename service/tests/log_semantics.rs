//! Log: the W&B step/commit rules, LogStream batching and exactly-once, value kinds,
//! and ScanHistory.

mod support;

use std::collections::BTreeMap;

use runcore::proto::v1::{
    value::Kind, Histogram, ListValue, LogBatch, LogRequest, MapValue, Media, MediaKind, Row,
    ScanHistoryRequest, Value,
};
use support::*;

#[tokio::test]
async fn the_wandb_step_commit_table_over_unary_log() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    start_run(&mut c, "r").await;
    let log = |pairs: &[(&str, f64)], step: Option<i64>, commit: Option<bool>| {
        let req = log_req("r", pairs, step, commit);
        let mut c = c.clone();
        async move { c.log(req).await.unwrap().into_inner() }
    };
    assert_eq!(log(&[("a", 1.0)], None, None).await.step, 1); // commit at 0
    assert_eq!(log(&[("b", 2.0)], None, Some(false)).await.step, 1); // pending at 1
    assert_eq!(log(&[("c", 3.0)], None, None).await.step, 2); // merge, commit at 1
    assert_eq!(log(&[("d", 4.0)], Some(5), None).await.step, 5); // jump, pending at 5
    assert_eq!(log(&[("e", 5.0)], Some(5), None).await.step, 5); // merge at 5
    assert_eq!(log(&[("f", 6.0)], Some(7), None).await.step, 7); // flush 5, pending at 7
    let dropped = log(&[("g", 7.0)], Some(3), None).await;
    assert_eq!(dropped.dropped.len(), 1, "a smaller step is reported");
    assert_eq!(
        (dropped.dropped[0].step, dropped.dropped[0].current_step),
        (3, 7)
    );
    assert!(
        dropped.dropped[0].reason.contains("smaller"),
        "{}",
        dropped.dropped[0].reason
    );
    assert_eq!(log(&[("h", 8.0)], Some(7), Some(true)).await.step, 8); // commit 7
    c.finish(runcore::proto::v1::FinishRequest {
        run_id: "r".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();

    let rows = read_jsonl(&s.run_dir("p", "r").join("history.jsonl"));
    assert_eq!(steps(&rows), vec![0, 1, 5, 7]);
    let keys = |r: &BTreeMap<String, Value>| -> Vec<String> {
        r.keys().filter(|k| !k.starts_with('_')).cloned().collect()
    };
    assert_eq!(keys(&rows[0]), ["a"]);
    assert_eq!(keys(&rows[1]), ["b", "c"]);
    assert_eq!(keys(&rows[2]), ["d", "e"]);
    assert_eq!(keys(&rows[3]), ["f", "h"]);
    assert_eq!(num(get(&rows[3], "h")), 8.0);
    for r in &rows {
        assert!(num(get(r, "_runtime")) >= 0.0);
        assert!(num(get(r, "_timestamp")) > 1.7e9);
    }
}

fn batch(run: &str, seq: u64, first_step: i64, n: usize) -> LogBatch {
    LogBatch {
        run_id: run.into(),
        seq,
        keys: vec!["loss".into(), "acc".into()],
        rows: (0..n)
            .map(|i| Row {
                scalar_keys: vec![0, 1],
                scalar_values: vec![1.0 / (first_step as f64 + i as f64 + 1.0), i as f64],
                step: Some(first_step + i as i64),
                commit: Some(true),
                ..Default::default()
            })
            .collect(),
        writer_id: String::new(),
    }
}

#[tokio::test]
async fn log_stream_batches_are_acked_and_resent_batches_are_dropped() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    start_run(&mut c, "st").await;
    // Batches 1..=3, then 2 and 3 again (a client resending after a reconnect), then 4.
    let batches = vec![
        batch("st", 1, 0, 100),
        batch("st", 2, 100, 100),
        batch("st", 3, 200, 100),
        batch("st", 2, 100, 100),
        batch("st", 3, 200, 100),
        batch("st", 4, 300, 50),
    ];
    let mut acks = c
        .log_stream(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(ack) = acks.message().await.unwrap() {
        got.push((ack.seq, ack.duplicate, ack.step));
    }
    assert_eq!(
        got,
        vec![
            (1, false, 100),
            (2, false, 200),
            (3, false, 300),
            (2, true, 300),
            (3, true, 300),
            (4, false, 350)
        ]
    );
    let info = c
        .init(runcore::proto::v1::InitRequest {
            id: "st".into(),
            resume: runcore::proto::v1::Resume::Allow as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.last_seq, 4);
    assert_eq!(info.starting_step, 350);
    let mut scan = c
        .scan_history(ScanHistoryRequest {
            run_id: "st".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut rows = Vec::new();
    while let Some(chunk) = scan.message().await.unwrap() {
        rows.extend(chunk.rows);
    }
    assert_eq!(
        rows.iter().map(|r| r.step).collect::<Vec<_>>(),
        (0..350).collect::<Vec<_>>()
    );
    assert_eq!(num(get(&rows[10].values, "loss")), 1.0 / 11.0);
}

#[tokio::test]
async fn one_stream_can_carry_several_runs() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    start_run(&mut c, "m1").await;
    start_run(&mut c, "m2").await;
    let batches = vec![
        batch("m1", 1, 0, 10),
        batch("m2", 1, 0, 20),
        batch("m1", 2, 10, 5),
    ];
    let mut acks = c
        .log_stream(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(ack) = acks.message().await.unwrap() {
        got.push((ack.run_id, ack.seq, ack.step));
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            ("m1".into(), 1, 10),
            ("m1".into(), 2, 15),
            ("m2".into(), 1, 20)
        ]
    );
}

#[tokio::test]
async fn value_kinds_round_trip_to_history() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    let media_dir = tempfile::tempdir().unwrap();
    std::fs::write(media_dir.path().join("pic.png"), b"not really a png").unwrap();
    c.init(runcore::proto::v1::InitRequest {
        id: "v".into(),
        project: "p".into(),
        working_dir: media_dir.path().display().to_string(),
        ..Default::default()
    })
    .await
    .unwrap();
    let v = |k: Kind| Value { kind: Some(k) };
    let mut data = BTreeMap::new();
    data.insert("f".to_string(), double(0.25));
    data.insert("i".to_string(), int(-7));
    data.insert("b".to_string(), v(Kind::BoolValue(true)));
    data.insert("s".to_string(), string("héllo \"q\""));
    data.insert("nan".to_string(), double(f64::NAN));
    data.insert("inf".to_string(), double(f64::NEG_INFINITY));
    data.insert("a/b.c".to_string(), double(1.0));
    let mut inner = BTreeMap::new();
    inner.insert("x".to_string(), double(2.0));
    inner.insert(
        "deep".to_string(),
        v(Kind::MapValue(MapValue {
            fields: BTreeMap::from([("y".to_string(), int(3))]),
        })),
    );
    data.insert(
        "nested".to_string(),
        v(Kind::MapValue(MapValue { fields: inner })),
    );
    data.insert(
        "list".to_string(),
        v(Kind::ListValue(ListValue {
            values: vec![int(1), string("two")],
        })),
    );
    data.insert(
        "hist_raw".to_string(),
        v(Kind::Histogram(Histogram {
            values: vec![0.0, 0.5, 1.0, 1.0],
            num_bins: 2,
            ..Default::default()
        })),
    );
    data.insert(
        "hist".to_string(),
        v(Kind::Histogram(Histogram {
            bins: vec![0.0, 1.0, 2.0],
            counts: vec![3, 4],
            ..Default::default()
        })),
    );
    data.insert(
        "pic".to_string(),
        v(Kind::Media(Media {
            path: "pic.png".into(),
            kind: MediaKind::Image as i32,
            caption: "cap".into(),
            ..Default::default()
        })),
    );
    c.log(LogRequest {
        run_id: "v".into(),
        data,
        ..Default::default()
    })
    .await
    .unwrap();
    c.finish(runcore::proto::v1::FinishRequest {
        run_id: "v".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();

    let dir = s.run_dir("p", "v");
    let text = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    assert!(text.contains("\"nan\":NaN"), "{text}");
    assert!(text.contains("\"inf\":-Infinity"), "{text}");
    let rows = read_jsonl(&dir.join("history.jsonl"));
    let r = &rows[0];
    assert_eq!(num(get(r, "f")), 0.25);
    assert_eq!(get(r, "i"), &int(-7));
    assert_eq!(as_str(get(r, "s")), "héllo \"q\"");
    assert_eq!(num(get(r, "a/b.c")), 1.0);
    let nested = as_map(get(r, "nested"));
    assert_eq!(num(get(nested, "x")), 2.0);
    assert_eq!(get(as_map(get(nested, "deep")), "y"), &int(3));
    let Some(Kind::Histogram(h)) = &get(r, "hist_raw").kind else {
        panic!("hist_raw")
    };
    assert_eq!(
        (h.bins.clone(), h.counts.clone()),
        (vec![0.0, 0.5, 1.0], vec![1, 3])
    );
    let Some(Kind::Histogram(h)) = &get(r, "hist").kind else {
        panic!("hist")
    };
    assert_eq!(h.counts, vec![3, 4]);
    let Some(Kind::Media(m)) = &get(r, "pic").kind else {
        panic!("pic")
    };
    assert!(m.path.starts_with("media/images/pic_0_"), "{}", m.path);
    assert_eq!(m.caption, "cap");
    assert_eq!(
        std::fs::read(dir.join("files").join(&m.path)).unwrap(),
        b"not really a png"
    );
    // The summary holds the last value of each key.
    let summary = read_json(&dir.join("summary.json"));
    assert_eq!(num(get(&summary, "f")), 0.25);
    assert_eq!(get(&summary, "_step"), &int(0));
}

#[tokio::test]
async fn scan_history_filters_by_keys_and_steps() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    start_run(&mut c, "sc").await;
    for i in 0..10 {
        let mut pairs = vec![("x", i as f64)];
        if i % 2 == 0 {
            pairs.push(("even", 1.0));
        }
        c.log(log_req("sc", &pairs, None, None)).await.unwrap();
    }
    let mut scan = c
        .scan_history(ScanHistoryRequest {
            run_id: "sc".into(),
            keys: vec!["even".into()],
            min_step: Some(2),
            max_step: Some(8),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut rows = Vec::new();
    while let Some(chunk) = scan.message().await.unwrap() {
        rows.extend(chunk.rows);
    }
    assert_eq!(
        rows.iter().map(|r| r.step).collect::<Vec<_>>(),
        vec![2, 4, 6]
    );
    for r in &rows {
        let keys: Vec<&String> = r.values.keys().collect();
        assert_eq!(keys, ["_runtime", "_step", "_timestamp", "even"]);
    }
}

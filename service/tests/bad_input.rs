//! Every kind of bad input gets the right status code and a message that says what
//! to fix, and none of it hurts the run.

mod support;

use std::collections::BTreeMap;

use runcore::proto::v1::{
    value::Kind, AlertRequest, DefineMetricRequest, FinishRequest, Histogram, InitRequest,
    LogBatch, LogRequest, Row, SaveFilesRequest, Value,
};
use support::*;
use tonic::Code;

fn expect(r: Result<impl std::fmt::Debug, tonic::Status>, code: Code, text: &str) {
    let err = r.expect_err("should fail");
    assert_eq!(err.code(), code, "{}", err.message());
    assert!(
        err.message().contains(text),
        "{:?} lacks {text:?}",
        err.message()
    );
}

#[tokio::test]
async fn each_bad_request_names_its_fix() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    start_run(&mut c, "b").await;

    // Unknown run.
    expect(
        c.log(log_req("nope", &[("x", 1.0)], None, None)).await,
        Code::NotFound,
        "not found",
    );
    expect(
        c.log(log_req("", &[("x", 1.0)], None, None)).await,
        Code::InvalidArgument,
        "run_id is empty",
    );
    // Keys.
    expect(
        c.log(log_req("b", &[("", 1.0)], None, None)).await,
        Code::InvalidArgument,
        "key is empty",
    );
    expect(
        c.log(log_req("b", &[("_step", 1.0)], None, None)).await,
        Code::InvalidArgument,
        "reserved",
    );
    expect(
        c.log(log_req("b", &[("x", 1.0)], Some(-1), None)).await,
        Code::InvalidArgument,
        "negative",
    );
    let mut empty = BTreeMap::new();
    empty.insert("x".to_string(), Value { kind: None });
    expect(
        c.log(LogRequest {
            run_id: "b".into(),
            data: empty,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "no kind set",
    );
    let mut hist = BTreeMap::new();
    hist.insert(
        "h".to_string(),
        Value {
            kind: Some(Kind::Histogram(Histogram {
                bins: vec![0.0, 1.0],
                counts: vec![1, 2],
                ..Default::default()
            })),
        },
    );
    expect(
        c.log(LogRequest {
            run_id: "b".into(),
            data: hist,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "bin edges",
    );
    let mut media = BTreeMap::new();
    media.insert(
        "m".to_string(),
        Value {
            kind: Some(Kind::Media(runcore::proto::v1::Media {
                path: "/nonexistent/x.png".into(),
                ..Default::default()
            })),
        },
    );
    expect(
        c.log(LogRequest {
            run_id: "b".into(),
            data: media,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "cannot read /nonexistent/x.png",
    );
    // Alerts.
    let alert = |title: &str, level: &str| AlertRequest {
        run_id: "b".into(),
        title: title.into(),
        level: level.into(),
        ..Default::default()
    };
    expect(c.alert(alert("", "")).await, Code::InvalidArgument, "1..64");
    expect(
        c.alert(alert(&"x".repeat(65), "")).await,
        Code::InvalidArgument,
        "got 65",
    );
    expect(
        c.alert(alert("t", "LOUD")).await,
        Code::InvalidArgument,
        "INFO, WARN or ERROR",
    );
    expect(
        c.alert(AlertRequest {
            wait_duration: Some(-1.0),
            ..alert("t", "")
        })
        .await,
        Code::InvalidArgument,
        "wait_duration",
    );
    // define_metric.
    let def = |name: &str, summary: &str| DefineMetricRequest {
        run_id: "b".into(),
        name: name.into(),
        summary: summary.into(),
        ..Default::default()
    };
    expect(
        c.define_metric(def("a*b", "")).await,
        Code::InvalidArgument,
        "only a trailing '*'",
    );
    expect(
        c.define_metric(def("a", "median")).await,
        Code::InvalidArgument,
        "unknown summary option \"median\"",
    );
    expect(
        c.define_metric(def("a", "best")).await,
        Code::InvalidArgument,
        "goal",
    );
    expect(
        c.define_metric(def("", "")).await,
        Code::InvalidArgument,
        "name is empty",
    );
    // SaveFiles.
    let save = |glob: &str, policy: &str| SaveFilesRequest {
        run_id: "b".into(),
        glob: glob.into(),
        policy: policy.into(),
        ..Default::default()
    };
    expect(
        c.save_files(save("rel/*.txt", "now")).await,
        Code::InvalidArgument,
        "no working_dir",
    );
    expect(
        c.save_files(save("/tmp/*.txt", "sometimes")).await,
        Code::InvalidArgument,
        "unknown policy",
    );
    expect(
        c.save_files(save("/tmp/../etc/passwd", "now")).await,
        Code::InvalidArgument,
        "'..'",
    );
    expect(
        c.save_files(SaveFilesRequest {
            base_path: "/elsewhere".into(),
            ..save("/tmp/*.txt", "now")
        })
        .await,
        Code::InvalidArgument,
        "not a prefix",
    );
    // Init.
    let bad_init = |id: &str, project: &str| InitRequest {
        id: id.into(),
        project: project.into(),
        ..Default::default()
    };
    expect(
        c.init(bad_init("a/b", "p")).await,
        Code::InvalidArgument,
        "run id",
    );
    expect(
        c.init(bad_init("ok", "../x")).await,
        Code::InvalidArgument,
        "project",
    );
    expect(
        c.init(InitRequest {
            working_dir: "rel".into(),
            ..bad_init("ok2", "p")
        })
        .await,
        Code::InvalidArgument,
        "absolute",
    );

    // After all that, the run is intact and logs on.
    let ok = c
        .log(log_req("b", &[("x", 1.0)], None, None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.step, 1);
    c.finish(FinishRequest {
        run_id: "b".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    // Log and SaveFiles after Finish.
    expect(
        c.log(log_req("b", &[("x", 1.0)], None, None)).await,
        Code::FailedPrecondition,
        "has ended (finished)",
    );
    expect(
        c.save_files(save("/tmp/x", "now")).await,
        Code::FailedPrecondition,
        "resume",
    );
    let rows = read_jsonl(&s.run_dir("p", "b").join("history.jsonl"));
    assert_eq!(rows.len(), 1);
}

#[tokio::test]
async fn bad_stream_batches_end_the_stream_with_the_reason() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    start_run(&mut c, "bs").await;
    let good = LogBatch {
        run_id: "bs".into(),
        seq: 1,
        keys: vec!["x".into()],
        rows: vec![Row {
            scalar_keys: vec![0],
            scalar_values: vec![1.0],
            ..Default::default()
        }],
        ..Default::default()
    };
    let out_of_range = LogBatch {
        seq: 2,
        rows: vec![Row {
            scalar_keys: vec![3],
            scalar_values: vec![1.0],
            ..Default::default()
        }],
        ..good.clone()
    };
    let mut acks = c
        .log_stream(tokio_stream::iter(vec![good.clone(), out_of_range]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acks.message().await.unwrap().unwrap().seq, 1);
    let err = acks.message().await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("batch 2, row 0: scalar key index 3"),
        "{}",
        err.message()
    );
    let reserved = LogBatch {
        seq: 3,
        keys: vec!["_x".into()],
        ..good.clone()
    };
    let mut acks = c
        .log_stream(tokio_stream::iter(vec![reserved]))
        .await
        .unwrap()
        .into_inner();
    let err = acks.message().await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("reserved"));
    let unknown = LogBatch {
        run_id: "ghost".into(),
        ..good.clone()
    };
    let mut acks = c
        .log_stream(tokio_stream::iter(vec![unknown]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acks.message().await.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn oversized_messages_are_resource_exhausted() {
    let s = InProcess::start_with(|c| c.max_message_bytes = 4096).await;
    let mut c = s.client().await;
    start_run(&mut c, "big").await;
    let huge = log_req(
        "big",
        &(0..600).map(|_| ("k", 1.0)).collect::<Vec<_>>(),
        None,
        None,
    );
    let mut data = huge.data.clone();
    for i in 0..600 {
        data.insert(format!("key_{i}"), double(i as f64));
    }
    let err = c.log(LogRequest { data, ..huge }).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    assert!(err.message().contains("4096 bytes"), "{}", err.message());
    let batch = LogBatch {
        run_id: "big".into(),
        seq: 1,
        keys: vec!["x".into()],
        rows: (0..1000)
            .map(|_| Row {
                scalar_keys: vec![0],
                scalar_values: vec![1.0],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let mut acks = c
        .log_stream(tokio_stream::iter(vec![batch]))
        .await
        .unwrap()
        .into_inner();
    let err = acks.message().await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    assert!(err.message().contains("4096 bytes"));
    // The run is unharmed.
    assert_eq!(
        c.log(log_req("big", &[("x", 1.0)], None, None))
            .await
            .unwrap()
            .into_inner()
            .step,
        1
    );
}

#[tokio::test]
async fn unreadable_media_drops_only_its_row_in_a_stream() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    let wd = tempfile::tempdir().unwrap();
    std::fs::write(wd.path().join("ok.png"), b"png").unwrap();
    c.init(InitRequest {
        id: "md".into(),
        project: "p".into(),
        working_dir: wd.path().display().to_string(),
        ..Default::default()
    })
    .await
    .unwrap();
    let media = |path: &str| {
        BTreeMap::from([(
            "img".to_string(),
            Value {
                kind: Some(Kind::Media(runcore::proto::v1::Media {
                    path: path.into(),
                    ..Default::default()
                })),
            },
        )])
    };
    let batch = LogBatch {
        run_id: "md".into(),
        seq: 1,
        keys: vec!["x".into()],
        rows: vec![
            Row {
                scalar_keys: vec![0],
                scalar_values: vec![0.0],
                values: media("ok.png"),
                ..Default::default()
            },
            Row {
                scalar_keys: vec![0],
                scalar_values: vec![1.0],
                values: media("missing.png"),
                ..Default::default()
            },
            Row {
                scalar_keys: vec![0],
                scalar_values: vec![2.0],
                step: Some(5),
                ..Default::default()
            },
            Row {
                scalar_keys: vec![0],
                scalar_values: vec![3.0],
                step: Some(1),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let mut acks = c
        .log_stream(tokio_stream::iter(vec![batch]))
        .await
        .unwrap()
        .into_inner();
    let ack = acks.message().await.unwrap().unwrap();
    let dropped: Vec<(u32, bool)> = ack
        .dropped
        .iter()
        .map(|d| (d.row_index, d.reason.contains("missing.png")))
        .collect();
    assert_eq!(dropped, [(1, true), (3, false)], "{:?}", ack.dropped);
    c.finish(FinishRequest {
        run_id: "md".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let rows = read_jsonl(&s.run_dir("p", "md").join("history.jsonl"));
    let xs: Vec<f64> = rows.iter().map(|r| num(get(r, "x"))).collect();
    assert_eq!(xs, [0.0, 2.0]);
}

#[tokio::test]
async fn after_a_failed_batch_a_stream_applies_nothing_more() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    start_run(&mut c, "ended").await;
    start_run(&mut c, "next").await;
    c.finish(FinishRequest {
        run_id: "ended".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let one = |run: &str, seq: u64| LogBatch {
        run_id: run.into(),
        seq,
        keys: vec!["x".into()],
        rows: vec![Row {
            scalar_keys: vec![0],
            scalar_values: vec![1.0],
            ..Default::default()
        }],
        ..Default::default()
    };
    // The first batch fails in its run (ended); the stream's later batch for another
    // run must not be applied behind the client's back.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(one("next", 1)).await.unwrap();
    let mut acks = c
        .log_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acks.message().await.unwrap().unwrap().seq, 1);
    tx.send(one("ended", 1)).await.unwrap();
    tx.send(one("next", 2)).await.unwrap();
    let err = acks.message().await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    drop(tx);
    let resumed = c
        .init(InitRequest {
            id: "next".into(),
            resume: runcore::proto::v1::Resume::Allow as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resumed.last_seq, 1, "batch 2 was not applied");
    assert_eq!(resumed.starting_step, 1);
}

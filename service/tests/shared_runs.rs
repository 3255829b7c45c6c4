//! Shared runs, in-process: seqs are per writer (two writers numbering their
//! batches alike both land), a second writer that did not ask to share is refused
//! by name, rows of one step from several writers merge into one history row (the
//! store and ScanHistory agree), rows after the run or the writer ended are
//! refused with an error, never dropped silently; a shared writer joins without
//! resume, and every RPC naming a writer checks its id.

mod support;

use std::collections::BTreeMap;

use runcore::proto::v1::run_service_client::RunServiceClient;
use runcore::proto::v1::{
    FinishRequest, GetRunRequest, HeartbeatRequest, InitRequest, LogBatch, LogRequest, Resume, Row,
    RunState, ScanHistoryRequest, Value, WriterSettings,
};
use support::*;
use tonic::transport::Channel;
use tonic::Code;

fn writer(id: &str, writer_id: &str, label: &str, primary: bool) -> InitRequest {
    InitRequest {
        id: id.into(),
        project: "p".into(),
        resume: Resume::Allow as i32,
        writer_id: writer_id.into(),
        writer: Some(WriterSettings {
            shared: true,
            label: label.into(),
            primary: Some(primary),
            update_finish_state: Some(primary),
        }),
        ..Default::default()
    }
}

/// `n` batches of `per` rows of key `key`, values counting from 0, seqs from 1.
fn batches(run: &str, writer_id: &str, key: &str, n: u64, per: u64) -> Vec<LogBatch> {
    (0..n)
        .map(|b| LogBatch {
            run_id: run.into(),
            seq: b + 1,
            keys: vec![key.into()],
            rows: (0..per)
                .map(|i| Row {
                    scalar_keys: vec![0],
                    scalar_values: vec![(b * per + i) as f64],
                    ..Default::default()
                })
                .collect(),
            writer_id: writer_id.into(),
        })
        .collect()
}

/// Streams the batches; returns how many acks were not duplicates.
async fn stream(c: &mut RunServiceClient<Channel>, batches: Vec<LogBatch>) -> usize {
    let n = batches.len();
    let mut acks = c
        .log_stream(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    let mut fresh = 0;
    for _ in 0..n {
        let ack = acks.message().await.unwrap().expect("an ack per batch");
        fresh += usize::from(!ack.duplicate);
    }
    fresh
}

/// The values of `key` over history rows, in row order.
fn column(rows: &[BTreeMap<String, Value>], key: &str) -> Vec<f64> {
    rows.iter().filter_map(|r| r.get(key).map(num)).collect()
}

fn log_from(run: &str, writer_id: &str, k: &str, v: f64) -> LogRequest {
    LogRequest {
        writer_id: writer_id.into(),
        ..log_req(run, &[(k, v)], None, None)
    }
}

#[tokio::test]
async fn two_writers_numbering_their_batches_alike_both_land_once_merged_by_step() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    c.init(writer("r", "w0", "rank-0", true)).await.unwrap();
    c.init(writer("r", "w1", "rank-1", false)).await.unwrap();
    // Both number their batches 1..=50, as two processes would.
    let (mut c0, mut c1) = (s.client().await, s.client().await);
    let (a, b) = tokio::join!(
        stream(&mut c0, batches("r", "w0", "a", 50, 4)),
        stream(&mut c1, batches("r", "w1", "b", 50, 4)),
    );
    assert_eq!((a, b), (50, 50), "no batch taken for another writer's");
    // A resent batch is a duplicate of its own writer only.
    assert_eq!(
        stream(&mut c, batches("r", "w1", "b", 1, 4)).await,
        0,
        "w1's seq 1 again"
    );
    let fin = c
        .finish(FinishRequest {
            run_id: "r".into(),
            writer_id: "w0".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fin.run.unwrap().state(), RunState::Finished);
    let rows = read_jsonl(&s.run_dir("p", "r").join("history.jsonl"));
    let want: Vec<f64> = (0..200).map(f64::from).collect();
    assert_eq!(column(&rows, "a"), want);
    assert_eq!(column(&rows, "b"), want);
    // One row per step, each writer's k-th row at step k.
    assert_eq!(steps(&rows), (0..200).collect::<Vec<i64>>());
    // ScanHistory replays the log to the same rows.
    let mut scan = c
        .scan_history(ScanHistoryRequest {
            run_id: "r".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut scanned = Vec::new();
    while let Some(chunk) = scan.message().await.unwrap() {
        scanned.extend(chunk.rows.into_iter().map(|r| r.values));
    }
    assert_eq!(scanned, rows);
}

#[tokio::test]
async fn a_second_writer_that_did_not_ask_to_share_is_refused_by_name() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    let mut first = client_process();
    let mut second = client_process();
    let plain = |writer_id: &str, pid: u32| InitRequest {
        id: "r".into(),
        project: "p".into(),
        resume: Resume::Allow as i32,
        writer_id: writer_id.into(),
        client: Some(local_client(pid)),
        ..Default::default()
    };
    c.init(plain("first", first.id())).await.unwrap();
    stream(&mut c, batches("r", "first", "a", 3, 2)).await;
    let err = c.init(plain("second", second.id())).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let host = &runcore::liveness::local_host().hostname;
    assert!(
        err.message().contains(&format!("pid {}", first.id()))
            && err.message().contains(host.as_str())
            && err.message().contains("shared"),
        "{}",
        err.message()
    );
    // The same writer again resumes with its own seqs.
    let again = c
        .init(plain("first", first.id()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.last_seq, again.writer_id.as_str()), (3, "first"));
    // Anonymous writers are told apart by their process.
    let anon = |pid: u32| InitRequest {
        writer_id: String::new(),
        ..plain("", pid)
    };
    let err = c.init(anon(second.id())).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    // Once the first writer's process is gone, the second one may go on.
    first.kill().unwrap();
    first.wait().unwrap();
    let joined = c
        .init(plain("second", second.id()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(joined.last_seq, 0, "a new writer numbers its own batches");
    assert_eq!(stream(&mut c, batches("r", "second", "a", 3, 2)).await, 3);
    second.kill().unwrap();
    second.wait().unwrap();
}

#[tokio::test]
async fn rows_after_the_primary_finished_are_refused_with_an_error() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    c.init(writer("r", "p0", "rank-0", true)).await.unwrap();
    c.init(writer("r", "w1", "rank-1", false)).await.unwrap();
    c.log(log_from("r", "w1", "b", 1.0)).await.unwrap();
    c.log(log_from("r", "p0", "a", 1.0)).await.unwrap();
    c.finish(FinishRequest {
        run_id: "r".into(),
        writer_id: "p0".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let err = c.log(log_from("r", "w1", "b", 2.0)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("finished"), "{}", err.message());
    // On a stream too: the batch is refused, the stream ends with the error.
    let mut acks = c
        .log_stream(tokio_stream::iter(batches("r", "w1", "b", 1, 1)))
        .await
        .unwrap()
        .into_inner();
    let err = acks.message().await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let rows = read_jsonl(&s.run_dir("p", "r").join("history.jsonl"));
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (num(get(&rows[0], "a")), num(get(&rows[0], "b"))),
        (1.0, 1.0)
    );
}

#[tokio::test]
async fn a_writer_that_may_not_end_the_run_finishes_alone() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    c.init(writer("r", "p0", "rank-0", true)).await.unwrap();
    c.init(writer("r", "w1", "rank-1", false)).await.unwrap();
    c.log(log_from("r", "w1", "b", 1.0)).await.unwrap();
    let fin = c
        .finish(FinishRequest {
            run_id: "r".into(),
            writer_id: "w1".into(),
            exit_code: Some(0),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fin.run.unwrap().state(), RunState::Running);
    assert_eq!(fin.writer.unwrap().state(), RunState::Finished);
    // Its later rows are refused, the primary's are not.
    let err = c.log(log_from("r", "w1", "b", 2.0)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("w1"), "{}", err.message());
    c.log(log_from("r", "p0", "a", 1.0)).await.unwrap();
    let got = c
        .get_run(GetRunRequest { run_id: "r".into() })
        .await
        .unwrap()
        .into_inner();
    let states: Vec<(String, RunState)> = got
        .writers
        .iter()
        .map(|w| (w.label.clone(), w.state()))
        .collect();
    assert_eq!(
        states,
        vec![
            ("rank-0".into(), RunState::Running),
            ("rank-1".into(), RunState::Finished)
        ]
    );
    assert!(got.run.unwrap().shared);
    // A writer id the run never had is refused too.
    let err = c.log(log_from("r", "nobody", "x", 1.0)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // Sharing needs a writer id.
    let err = c.init(writer("r", "", "x", false)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn shared_writers_join_without_resume_and_every_rpc_checks_the_writer_id() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    let never = |w: &str, primary: bool| InitRequest {
        resume: Resume::Never as i32,
        ..writer("r", w, w, primary)
    };
    c.init(never("p0", true)).await.unwrap();
    let joined = c.init(never("w1", false)).await.unwrap().into_inner();
    assert!(joined.resumed);
    // Without shared mode, resume never still refuses an existing id.
    let plain = InitRequest {
        id: "r".into(),
        project: "p".into(),
        ..Default::default()
    };
    assert_eq!(c.init(plain).await.unwrap_err().code(), Code::AlreadyExists);
    let long = "w".repeat(129);
    for bad in ["w\n1", long.as_str()] {
        let err = c.log(log_from("r", bad, "a", 1.0)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert!(err.message().contains("writer_id"), "{}", err.message());
        let hb = HeartbeatRequest {
            run_id: "r".into(),
            writer_id: bad.into(),
        };
        assert_eq!(
            c.heartbeat(hb).await.unwrap_err().code(),
            Code::InvalidArgument
        );
        let fin = FinishRequest {
            run_id: "r".into(),
            writer_id: bad.into(),
            ..Default::default()
        };
        assert_eq!(
            c.finish(fin).await.unwrap_err().code(),
            Code::InvalidArgument
        );
        let mut acks = c
            .log_stream(tokio_stream::iter(batches("r", bad, "a", 1, 1)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            acks.message().await.unwrap_err().code(),
            Code::InvalidArgument
        );
    }
    // None of it touched the run: both writers are still attached.
    let got = c
        .get_run(GetRunRequest { run_id: "r".into() })
        .await
        .unwrap()
        .into_inner();
    let running = got
        .writers
        .iter()
        .filter(|w| w.state() == RunState::Running)
        .count();
    assert_eq!(running, 2);
    assert_eq!(got.run.unwrap().state(), RunState::Running);
}

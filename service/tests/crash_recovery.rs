//! Durability: a SIGKILL of the sidecar in the middle of a LogStream loses no
//! acknowledged row, and a client that resends its unacknowledged batches after the
//! restart ends with every row exactly once. A torn log tail is cut on open.

mod support;

use std::collections::BTreeSet;
use std::io::Write;

use runcore::proto::v1::{FinishRequest, InitRequest, LogBatch, Resume, Row};
use support::*;
use tokio_stream::wrappers::ReceiverStream;

const ROWS_PER_BATCH: usize = 50;
const BATCHES: u64 = 400;

fn batch(seq: u64) -> LogBatch {
    let first = (seq - 1) as usize * ROWS_PER_BATCH;
    LogBatch {
        run_id: "crash".into(),
        seq,
        keys: vec!["i".into(), "loss".into()],
        rows: (first..first + ROWS_PER_BATCH)
            .map(|i| Row {
                scalar_keys: vec![0, 1],
                scalar_values: vec![i as f64, 1.0 / (i as f64 + 1.0)],
                ..Default::default()
            })
            .collect(),
        writer_id: String::new(),
    }
}

/// The `i` of every history row, checking each appears once and matches its step.
fn logged(dir: &std::path::Path) -> BTreeSet<i64> {
    let rows = read_jsonl(&dir.join("history.jsonl"));
    let mut seen = BTreeSet::new();
    for r in &rows {
        let i = num(get(r, "i")) as i64;
        assert_eq!(num(get(r, "_step")) as i64, i, "row {i} at the wrong step");
        assert!(seen.insert(i), "row {i} is in history.jsonl twice");
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_acknowledged_row() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Sidecar::start_in(tmp.path(), Transport::Tcp, &["--fsync", "never"]);
    let mut c = s.client().await;
    c.init(InitRequest {
        id: "crash".into(),
        project: "p".into(),
        ..Default::default()
    })
    .await
    .unwrap();

    // At most WINDOW batches in flight, as a client with a bounded resend buffer.
    const WINDOW: usize = 8;
    let window = std::sync::Arc::new(tokio::sync::Semaphore::new(WINDOW));
    let (tx, rx) = tokio::sync::mpsc::channel(WINDOW);
    let permits = window.clone();
    let producer = tokio::spawn(async move {
        for seq in 1..=BATCHES {
            permits.acquire().await.expect("semaphore").forget();
            if tx.send(batch(seq)).await.is_err() {
                break;
            }
        }
    });
    let mut acks = c
        .log_stream(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut acked = 0u64;
    while let Ok(Some(ack)) = acks.message().await {
        assert_eq!(ack.seq, acked + 1, "acks arrive in order");
        acked = ack.seq;
        window.add_permits(1);
        if acked == 60 {
            // Kill mid-stream: batches are still in flight.
            std::process::Command::new("kill")
                .args(["-9", &s.pid().to_string()])
                .status()
                .unwrap();
        }
    }
    s.kill();
    producer.abort();
    assert!((60..=60 + WINDOW as u64).contains(&acked), "acked {acked}");

    let s = Sidecar::start_in(tmp.path(), Transport::Tcp, &[]);
    let dir = s.run_dir("p", "crash");
    // Recovery rebuilt history.jsonl from the log: every acknowledged row, once.
    let before = logged(&dir);
    let acked_rows = acked as i64 * ROWS_PER_BATCH as i64;
    assert!(
        (0..acked_rows).all(|i| before.contains(&i)),
        "an acknowledged row is missing"
    );

    // The client resumes and resends everything it has no ack for.
    let mut c = s.client().await;
    let resumed = c
        .init(InitRequest {
            id: "crash".into(),
            project: "p".into(),
            resume: Resume::Allow as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        resumed.last_seq >= acked,
        "the log holds at least the acked batches"
    );
    let resend: Vec<LogBatch> = (acked + 1..=BATCHES).map(batch).collect();
    let mut acks = c
        .log_stream(tokio_stream::iter(resend))
        .await
        .unwrap()
        .into_inner();
    let mut dups = 0;
    while let Some(ack) = acks.message().await.unwrap() {
        if ack.duplicate {
            assert!(ack.seq <= resumed.last_seq);
            dups += 1;
        }
    }
    assert_eq!(
        dups,
        resumed.last_seq - acked,
        "batches the log already held are acknowledged as duplicates"
    );
    let fin = c
        .finish(FinishRequest {
            run_id: "crash".into(),
            exit_code: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        fin.run.unwrap().history_rows,
        BATCHES as i64 * ROWS_PER_BATCH as i64
    );
    let after = logged(&dir);
    assert_eq!(
        after.len(),
        BATCHES as usize * ROWS_PER_BATCH,
        "every row exactly once"
    );
}

#[tokio::test]
async fn a_torn_log_tail_is_cut_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Sidecar::start_in(tmp.path(), Transport::Tcp, &[]);
    let mut c = s.client().await;
    start_run(&mut c, "torn").await;
    for i in 0..10 {
        c.log(log_req("torn", &[("x", i as f64)], None, None))
            .await
            .unwrap();
    }
    s.kill();
    let wal = s.run_dir("p", "torn").join("run.wal");
    let good_len = std::fs::metadata(&wal).unwrap().len();
    // Half a frame, as a crash in the middle of a write leaves it.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&wal)
        .unwrap()
        .write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 5])
        .unwrap();

    let s = Sidecar::start_in(tmp.path(), Transport::Tcp, &[]);
    assert_eq!(
        std::fs::metadata(&wal).unwrap().len(),
        good_len,
        "the torn tail was cut"
    );
    let mut c = s.client().await;
    // The recovered run is open: logging goes on at the next step, without Init.
    assert_eq!(
        c.log(log_req("torn", &[("x", 10.0)], None, None))
            .await
            .unwrap()
            .into_inner()
            .step,
        11
    );
    c.finish(FinishRequest {
        run_id: "torn".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let rows = read_jsonl(&s.run_dir("p", "torn").join("history.jsonl"));
    assert_eq!(steps(&rows), (0..11).collect::<Vec<_>>());
}

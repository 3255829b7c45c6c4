//! Shared runs against the real binary, where the process boundary is the point:
//! a SIGKILLed non-primary writer is reported (GetRun, events.jsonl) and the run
//! goes on; each writer's system metrics are sampled from its own process and
//! labelled; a writer re-attaching after the sidecar's own SIGKILL and restart
//! continues with its own seqs.

mod support;

use runcore::proto::v1::{
    FinishRequest, GetRunRequest, InitRequest, LogBatch, LogRequest, Resume, Row, RunState,
    SystemMetricsSettings, WriterSettings,
};
use support::*;

fn writer(writer_id: &str, label: &str, primary: bool, pid: u32) -> InitRequest {
    InitRequest {
        id: "r".into(),
        project: "p".into(),
        resume: Resume::Allow as i32,
        writer_id: writer_id.into(),
        client: Some(local_client(pid)),
        writer: Some(WriterSettings {
            shared: true,
            label: label.into(),
            primary: Some(primary),
            update_finish_state: Some(primary),
        }),
        system_metrics: Some(SystemMetricsSettings {
            interval: 0.1,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn log_from(writer_id: &str, k: &str, v: f64) -> LogRequest {
    LogRequest {
        writer_id: writer_id.into(),
        ..log_req("r", &[(k, v)], None, None)
    }
}

/// The event lines of kind `event` (writer_joined, writer_ended) in events.jsonl.
fn writer_events(
    s: &Sidecar,
    event: &str,
) -> Vec<std::collections::BTreeMap<String, runcore::proto::v1::Value>> {
    read_jsonl(&s.run_dir("p", "r").join("events.jsonl"))
        .into_iter()
        .filter(|l| l.get("_event").map(as_str) == Some(event))
        .collect()
}

#[tokio::test]
async fn a_killed_non_primary_writer_is_reported_and_the_run_goes_on() {
    let s = Sidecar::start();
    let mut c = s.client().await;
    let mut primary = client_process();
    let mut worker = client_process();
    c.init(writer("p0", "rank-0", true, primary.id()))
        .await
        .unwrap();
    c.init(writer("w1", "rank-1", false, worker.id()))
        .await
        .unwrap();
    c.log(log_from("w1", "b", 1.0)).await.unwrap();
    c.log(log_from("p0", "a", 1.0)).await.unwrap();
    worker.kill().unwrap(); // SIGKILL
    worker.wait().unwrap();
    let crashed = wait_for_async(|| async {
        let got = s
            .client()
            .await
            .get_run(GetRunRequest { run_id: "r".into() })
            .await
            .unwrap()
            .into_inner();
        let w = got.writers.iter().find(|w| w.id == "w1")?.clone();
        (w.state() == RunState::Crashed).then_some((got, w))
    })
    .await;
    let (got, w1) = crashed;
    assert_eq!(got.run.unwrap().state(), RunState::Running);
    assert!(w1.reason.contains("exited"), "{}", w1.reason);
    // The line is in events.jsonl at the next flush.
    let ended = wait_for(|| Some(writer_events(&s, "writer_ended")).filter(|e| !e.is_empty()));
    assert_eq!(ended.len(), 1);
    let who = as_map(get(&ended[0], "writer"));
    assert_eq!(
        (as_str(get(who, "label")), as_str(get(who, "state"))),
        ("rank-1", "crashed")
    );
    // The primary goes on and decides how the run ends.
    c.log(log_from("p0", "a", 2.0)).await.unwrap();
    let fin = c
        .finish(FinishRequest {
            run_id: "r".into(),
            writer_id: "p0".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fin.run.unwrap().state(), RunState::Finished);
    let rows = read_jsonl(&s.run_dir("p", "r").join("history.jsonl"));
    assert_eq!(steps(&rows), vec![0, 1]);
    assert_eq!(num(get(&rows[0], "b")), 1.0);
    primary.kill().unwrap();
    primary.wait().unwrap();
}

#[tokio::test]
async fn each_writer_is_sampled_from_its_own_process_and_labelled() {
    let s = Sidecar::start();
    let mut c = s.client().await;
    let mut procs = [client_process(), client_process()];
    for (i, p) in procs.iter().enumerate() {
        c.init(writer(
            &format!("w{i}"),
            &format!("rank-{i}"),
            i == 0,
            p.id(),
        ))
        .await
        .unwrap();
    }
    let events = s.run_dir("p", "r").join("events.jsonl");
    let keys = wait_for(|| {
        let lines = read_jsonl(&events);
        let has = |k: &str| lines.iter().any(|l| l.contains_key(k));
        (has("system.proc.memory.rssMB/l:rank-0") && has("system.proc.memory.rssMB/l:rank-1"))
            .then_some(lines)
    });
    // No unlabelled sample: every metric names its writer.
    for line in &keys {
        for k in line.keys().filter(|k| k.starts_with("system.")) {
            assert!(k.contains("/l:rank-"), "unlabelled key {k}");
        }
    }
    for p in &mut procs {
        p.kill().unwrap();
        p.wait().unwrap();
    }
}

#[tokio::test]
async fn a_writer_resumes_its_own_seqs_after_the_sidecar_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Sidecar::start_in(tmp.path(), Transport::Tcp, &[]);
    let mut c = s.client().await;
    let me = local_client(std::process::id());
    let w = |id: &str| InitRequest {
        client: Some(me.clone()),
        system_metrics: None,
        ..writer(id, id, id == "a", std::process::id())
    };
    c.init(w("a")).await.unwrap();
    c.init(w("b")).await.unwrap();
    let batch = |writer_id: &str, seq: u64| LogBatch {
        run_id: "r".into(),
        seq,
        keys: vec![writer_id.into()],
        rows: vec![Row {
            scalar_keys: vec![0],
            scalar_values: vec![seq as f64],
            ..Default::default()
        }],
        writer_id: writer_id.into(),
    };
    let send = |addr: String, batches: Vec<LogBatch>| async move {
        let mut c =
            runcore::proto::v1::run_service_client::RunServiceClient::new(channel(&addr).await);
        let n = batches.len();
        let mut acks = c
            .log_stream(tokio_stream::iter(batches))
            .await
            .unwrap()
            .into_inner();
        let mut dup = Vec::new();
        for _ in 0..n {
            dup.push(acks.message().await.unwrap().unwrap().duplicate);
        }
        dup
    };
    send(
        s.addr.clone(),
        vec![batch("a", 1), batch("a", 2), batch("b", 1)],
    )
    .await;
    s.kill();
    s = Sidecar::start_in(tmp.path(), Transport::Tcp, &[]);
    let mut c = s.client().await;
    let a = c.init(w("a")).await.unwrap().into_inner();
    let b = c.init(w("b")).await.unwrap().into_inner();
    assert_eq!((a.last_seq, b.last_seq), (2, 1));
    // Resent batches are duplicates of their own writer only.
    let dup = send(
        s.addr.clone(),
        vec![batch("b", 1), batch("b", 2), batch("a", 2), batch("a", 3)],
    )
    .await;
    assert_eq!(dup, vec![true, false, true, false]);
}

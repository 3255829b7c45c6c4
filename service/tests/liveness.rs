//! Run liveness: a client that dies or goes quiet crashes its run (preempted if it
//! was preempting), the sidecar's own death and restart, --parent-pid, SIGTERM's
//! grace, StopRun. Each case checks the state in run.json, in GetRun and in the
//! transaction log (GetRun of an ended run replays its log).

mod support;

use std::time::{Duration, Instant};

use runcore::proto::v1::{
    FinishRequest, GetRunRequest, HeartbeatRequest, InitRequest, MarkPreemptingRequest, Resume,
    RunState, StopRunRequest,
};
use support::*;

async fn state_of(s: &Sidecar, id: &str) -> RunState {
    let mut c = s.client().await;
    c.get_run(GetRunRequest { run_id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap()
        .state()
}

/// Polls GetRun until the run reaches `want`; returns how long that took.
async fn wait_state(s: &Sidecar, id: &str, want: RunState, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = state_of(s, id).await;
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "run {id} is {got:?}, not {want:?}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The state a fresh replay of the run's log gives (a second sidecar is not
/// needed: `runcore runs show` reads run.json, GetRun of an ended run replays).
fn assert_recorded(s: &Sidecar, id: &str, state: &str) {
    assert_eq!(run_json_state(&s.run_dir("p", id)), state);
}

#[tokio::test]
async fn a_killed_client_process_crashes_its_run_within_two_seconds() {
    let s = Sidecar::start();
    let mut c = s.client().await;
    let mut client = client_process();
    c.init(InitRequest {
        id: "k".into(),
        project: "p".into(),
        client: Some(local_client(client.id())),
        ..Default::default()
    })
    .await
    .unwrap();
    c.log(log_req("k", &[("x", 1.0)], Some(0), None))
        .await
        .unwrap(); // pending at step 0
    client.kill().unwrap();
    let took = wait_state(&s, "k", RunState::Crashed, Duration::from_secs(2)).await;
    client.wait().unwrap();
    eprintln!("crash noticed {took:?} after the kill");
    assert_recorded(&s, "k", "crashed");
    // The pending row was committed before the state change.
    let rows = read_jsonl(&s.run_dir("p", "k").join("history.jsonl"));
    assert_eq!(steps(&rows), vec![0]);
    // A crashed run refuses logs, and comes back to life when resumed.
    let err = c
        .log(log_req("k", &[("x", 2.0)], None, None))
        .await
        .unwrap_err();
    assert!(err.message().contains("crashed"), "{}", err.message());
    let again = c
        .init(InitRequest {
            id: "k".into(),
            resume: Resume::Allow as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.run.unwrap().state(), RunState::Running);
    assert_eq!(again.starting_step, 1);
}

#[tokio::test]
async fn a_quiet_remote_client_crashes_its_run_after_its_timeout() {
    let s = Sidecar::start();
    let mut c = s.client().await;
    let remote = runcore::proto::v1::ClientInfo {
        pid: 1,
        hostname: "another-host".into(),
        boot_id: "b".into(),
    };
    c.init(InitRequest {
        id: "q".into(),
        project: "p".into(),
        client: Some(remote),
        client_timeout: Some(1.0),
        ..Default::default()
    })
    .await
    .unwrap();
    // Heartbeats keep it alive past its timeout.
    let start = Instant::now();
    let mut last = 0.0;
    while start.elapsed() < Duration::from_millis(1500) {
        let hb = c
            .heartbeat(HeartbeatRequest {
                run_id: "q".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        last = runcore::clock::now();
        assert_eq!(hb.state(), RunState::Running);
        assert!(!hb.should_stop);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_state(&s, "q", RunState::Crashed, Duration::from_secs(5)).await;
    let mut c = s.client().await;
    let run = c
        .get_run(GetRunRequest { run_id: "q".into() })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    assert!(
        run.end_time - last >= 0.9,
        "crashed {:.2} s after the last heartbeat",
        run.end_time - last
    );
    assert_recorded(&s, "q", "crashed");
}

#[tokio::test]
async fn a_preempting_run_whose_client_dies_is_preempted() {
    let s = Sidecar::start();
    let mut c = s.client().await;
    let mut client = client_process();
    c.init(InitRequest {
        id: "pre".into(),
        project: "p".into(),
        client: Some(local_client(client.id())),
        ..Default::default()
    })
    .await
    .unwrap();
    let run = c
        .mark_preempting(MarkPreemptingRequest {
            run_id: "pre".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    assert_eq!(run.state(), RunState::Preempting);
    client.kill().unwrap();
    wait_state(&s, "pre", RunState::Preempted, Duration::from_secs(2)).await;
    client.wait().unwrap();
    assert_recorded(&s, "pre", "preempted");
}

#[tokio::test]
async fn heartbeat_says_should_stop_after_runs_stop() {
    let s = Sidecar::start();
    let mut c = s.client().await;
    start_run(&mut c, "st").await;
    let out = std::process::Command::new(BIN)
        .args(["runs", "stop", "st", "--address", &s.addr])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("asked run p/st to stop"));
    let hb = c
        .heartbeat(HeartbeatRequest {
            run_id: "st".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(hb.should_stop);
    assert_eq!(hb.state(), RunState::Running);
    // A client reconnecting to the open run keeps the stop request and a preemption.
    c.mark_preempting(MarkPreemptingRequest {
        run_id: "st".into(),
    })
    .await
    .unwrap();
    let back = c
        .init(InitRequest {
            id: "st".into(),
            resume: Resume::Allow as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    assert_eq!(
        (back.state(), back.stop_requested),
        (RunState::Preempting, true)
    );
    let fin = c
        .finish(FinishRequest {
            run_id: "st".into(),
            exit_code: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fin.run.unwrap().state(), RunState::Finished);
    // A finished run never crashes later.
    let err = c
        .stop_run(StopRunRequest {
            run_id: "st".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test]
async fn after_a_sidecar_kill_a_dead_client_crashes_and_a_live_one_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Sidecar::start_in(tmp.path(), Transport::Tcp, &[]);
    let mut c = s.client().await;
    let mut dead = client_process();
    let mut live = client_process();
    for (id, p) in [("dead", &dead), ("live", &live)] {
        c.init(InitRequest {
            id: id.into(),
            project: "p".into(),
            client: Some(local_client(p.id())),
            ..Default::default()
        })
        .await
        .unwrap();
        for i in 0..5 {
            c.log(log_req(id, &[("i", i as f64)], None, None))
                .await
                .unwrap();
        }
    }
    s.kill();
    dead.kill().unwrap();
    dead.wait().unwrap();
    let s = Sidecar::start_in(tmp.path(), Transport::Tcp, &[]);
    wait_state(&s, "dead", RunState::Crashed, Duration::from_secs(2)).await;
    assert_recorded(&s, "dead", "crashed");
    // The live client's run waits for it; the client resumes and logs on.
    assert_eq!(state_of(&s, "live").await, RunState::Running);
    let mut c = s.client().await;
    let back = c
        .init(InitRequest {
            id: "live".into(),
            resume: Resume::Allow as i32,
            client: Some(local_client(live.id())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.starting_step, 5);
    for i in 5..8 {
        c.log(log_req("live", &[("i", i as f64)], None, None))
            .await
            .unwrap();
    }
    c.finish(FinishRequest {
        run_id: "live".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let rows = read_jsonl(&s.run_dir("p", "live").join("history.jsonl"));
    assert_eq!(steps(&rows), (0..8).collect::<Vec<_>>());
    let is: Vec<f64> = rows.iter().map(|r| num(get(r, "i"))).collect();
    assert_eq!(is, (0..8).map(f64::from).collect::<Vec<_>>());
    assert_recorded(&s, "live", "finished");
    live.kill().unwrap();
    live.wait().unwrap();
}

#[tokio::test]
async fn the_sidecar_exits_with_its_parent_and_crashes_open_runs() {
    let mut parent = client_process();
    let pid = parent.id().to_string();
    let mut s = Sidecar::start_with(Transport::Tcp, &["--parent-pid", &pid]);
    let mut c = s.client().await;
    start_run(&mut c, "orphan").await;
    c.log(log_req("orphan", &[("x", 1.0)], Some(0), None))
        .await
        .unwrap();
    parent.kill().unwrap();
    parent.wait().unwrap();
    // terminate() only waits here: the sidecar is already on its way out.
    let start = Instant::now();
    let code = s.wait_exit();
    assert_eq!(code, Some(0));
    eprintln!("sidecar exited {:?} after its parent", start.elapsed());
    assert_recorded(&s, "orphan", "crashed");
    assert_eq!(
        steps(&read_jsonl(&s.run_dir("p", "orphan").join("history.jsonl"))),
        vec![0]
    );
}

#[tokio::test]
async fn sigterm_waits_for_clients_then_kills_open_runs() {
    let mut s = Sidecar::start_with(Transport::Tcp, &["--shutdown-grace", "2"]);
    let mut c = s.client().await;
    start_run(&mut c, "finishes").await;
    start_run(&mut c, "lingers").await;
    c.log(log_req("lingers", &[("x", 1.0)], None, None))
        .await
        .unwrap();
    let pid = s.pid();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    // Inside the grace period the sidecar still serves: a client finishes its run.
    let fin = c
        .finish(FinishRequest {
            run_id: "finishes".into(),
            exit_code: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fin.run.unwrap().state(), RunState::Finished);
    assert_eq!(s.wait_exit(), Some(0));
    assert_recorded(&s, "finishes", "finished");
    assert_recorded(&s, "lingers", "killed");
    // The log agrees: a new sidecar replays it and does not reopen the run.
    let root = s.root.clone();
    let s2 = Sidecar::start_in(&root, Transport::Tcp, &[]);
    assert_eq!(state_of(&s2, "lingers").await, RunState::Killed);
    assert_eq!(
        steps(&read_jsonl(
            &s2.run_dir("p", "lingers").join("history.jsonl")
        )),
        vec![0]
    );
}

#[tokio::test]
async fn runs_ls_shows_a_run_whose_sidecar_died_as_crashed() {
    let mut s = Sidecar::start_with(
        Transport::Tcp,
        &["--heartbeat-interval", "0.2", "--client-timeout", "0.5"],
    );
    let mut c = s.client().await;
    start_run(&mut c, "stale").await;
    s.kill();
    assert_recorded(&s, "stale", "running");
    let ls = || {
        let out = std::process::Command::new(BIN)
            .args(["runs", "ls", "--data-dir"])
            .arg(&s.data_dir)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let line = wait_for(|| {
        let text = ls();
        text.lines()
            .find(|l| l.starts_with("stale") && l.contains(" crashed "))
            .map(str::to_owned)
    });
    assert!(line.contains("crashed"));
    assert_recorded(&s, "stale", "running");
}

//! Behaviour that depends on time, with tokio's clock paused and advanced instead
//! of slept: a run's actor driven directly (no sockets, whose waits would let a
//! paused clock run ahead), with `runcore::clock` following the paused clock.

use std::sync::Arc;
use std::time::Duration;

use runcore::proto::v1::{AlertRequest, InitRequest, RunState};
use runcore::run::{self, Command, RunHandle, RunSettings};
use runcore::shutdown::Shutdown;
use runcore::wal::FsyncPolicy;

/// Settings whose own timers stay out of the way: nothing flushes or beats
/// within the tests' advances.
fn settings() -> Arc<RunSettings> {
    Arc::new(RunSettings {
        flush_interval: Duration::from_secs(3600),
        heartbeat_interval: Duration::from_secs(3600),
        fsync: FsyncPolicy::Never,
        files: runcore::config::FilesPolicy {
            roots: None,
            max_bytes: 1 << 20,
        },
        finish_timeout: Duration::from_secs(1),
    })
}

/// A new run (a client on another host: only its timeout watches it) and its actor.
fn start(dir: &std::path::Path, client_timeout: f64, shutdown: &Shutdown) -> RunHandle {
    let init = InitRequest {
        id: "t".into(),
        project: "p".into(),
        client_timeout: Some(client_timeout),
        ..Default::default()
    };
    let opened = run::create(&dir.join("p").join("t"), init, "{}", 3600.0).expect("create run");
    run::spawn(opened, settings(), shutdown.token(), None, None)
}

fn alert(title: &str) -> AlertRequest {
    AlertRequest {
        run_id: "t".into(),
        title: title.into(),
        text: "loss diverged".into(),
        level: String::new(),
        wait_duration: Some(60.0),
    }
}

async fn state(handle: &RunHandle) -> RunState {
    let got = handle
        .call(|reply| Command::Get { reply })
        .await
        .expect("get");
    got.run.expect("run").state()
}

#[tokio::test(start_paused = true)]
async fn an_alert_title_is_sent_again_once_its_wait_has_passed() {
    let tmp = tempfile::tempdir().unwrap();
    let shutdown = Shutdown::new();
    let handle = start(tmp.path(), 1e6, &shutdown);
    let send = |title: &'static str| {
        let handle = handle.clone();
        async move {
            handle
                .call(|reply| Command::Alert {
                    req: alert(title),
                    reply,
                })
                .await
                .expect("alert")
        }
    };
    assert!(send("nan").await.sent);
    tokio::time::advance(Duration::from_secs(59)).await;
    let inside = send("nan").await;
    assert!(inside.throttled && !inside.sent, "59 s into a 60 s window");
    tokio::time::advance(Duration::from_secs(2)).await;
    let after = send("nan").await;
    assert!(after.sent && !after.throttled, "61 s after the first");
}

#[tokio::test(start_paused = true)]
async fn a_client_silent_past_its_timeout_crashes_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let shutdown = Shutdown::new();
    let handle = start(tmp.path(), 30.0, &shutdown);
    tokio::time::advance(Duration::from_secs(20)).await;
    assert_eq!(state(&handle).await, RunState::Running);
    // A heartbeat is a sign of life: the timeout counts again from it.
    handle
        .call(|reply| Command::Heartbeat {
            writer_id: String::new(),
            reply,
        })
        .await
        .expect("heartbeat");
    tokio::time::advance(Duration::from_secs(25)).await;
    assert_eq!(state(&handle).await, RunState::Running);
    tokio::time::advance(Duration::from_secs(10)).await;
    // The liveness check runs every 500 ms: let it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The actor has ended the run and stopped; its last published status and
    // run.json say why.
    assert!(handle.is_closed());
    assert_eq!(handle.info().state(), RunState::Crashed);
    let run_json = std::fs::read_to_string(tmp.path().join("p/t/run.json")).unwrap();
    assert!(run_json.contains("\"crashed\""), "{run_json}");
}

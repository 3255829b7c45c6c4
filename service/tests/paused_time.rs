//! Behaviour that depends on time, with tokio's clock paused and advanced instead
//! of slept: a run's actor driven directly (no sockets, whose waits would let a
//! paused clock run ahead), with `runcore::clock` following the paused clock.

mod support;

use std::sync::Arc;
use std::time::Duration;

use runcore::proto::v1::{AlertRequest, InitRequest, RunState};
use runcore::run::{self, Command, RunHandle, RunSettings};
use runcore::shutdown::Shutdown;
use runcore::wal::FsyncPolicy;
use support::run_settings;

/// Settings whose own timers stay out of the way: nothing flushes or beats
/// within the tests' advances.
fn settings() -> Arc<RunSettings> {
    run_settings(
        Duration::from_secs(3600),
        Duration::from_secs(3600),
        FsyncPolicy::Never,
    )
}

/// A new run (a client on another host: only its timeout watches it) and its actor.
fn start(dir: &std::path::Path, client_timeout: f64, shutdown: &Shutdown) -> RunHandle {
    start_with(dir, client_timeout, shutdown, None)
}

fn start_with(
    dir: &std::path::Path,
    client_timeout: f64,
    shutdown: &Shutdown,
    delivery: Option<Box<dyn run::Delivery>>,
) -> RunHandle {
    let init = InitRequest {
        id: "t".into(),
        project: "p".into(),
        client_timeout: Some(client_timeout),
        ..Default::default()
    };
    let opened = run::create(&dir.join("p").join("t"), init, "{}", 3600.0).expect("create run");
    let clients = runcore::liveness::Clients::new();
    run::spawn(
        opened,
        settings(),
        shutdown.token(),
        delivery,
        None,
        &clients,
    )
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

/// A backend whose delivery never answers, not even at its timeout (a bug, or a
/// disk that hangs): Finish waits on it forever.
struct StuckDelivery;

#[async_trait::async_trait]
impl run::Delivery for StuckDelivery {
    fn wake(&self) {}
    fn status(&self) -> runcore::proto::v1::BackendStatus {
        Default::default()
    }
    fn stop_requested(&self) -> bool {
        false
    }
    async fn wait_delivered(
        &mut self,
        _log_len: u64,
        _timeout: Duration,
    ) -> runcore::proto::v1::BackendStatus {
        std::future::pending().await
    }
}

/// A run stuck on one request says since when, so that the server's watchdog
/// (health NOT_SERVING past `limits::WEDGED_AFTER`, tested in server.rs) can see it;
/// an idle actor is not busy.
#[tokio::test(start_paused = true)]
async fn a_run_stuck_on_one_request_is_seen_as_busy_since_it_began() {
    let tmp = tempfile::tempdir().unwrap();
    let shutdown = Shutdown::new();
    let handle = start_with(tmp.path(), 1e6, &shutdown, Some(Box::new(StuckDelivery)));
    assert_eq!(state(&handle).await, RunState::Running);
    assert!(handle.busy_since().is_none(), "an idle actor is not busy");

    let began = tokio::time::Instant::now();
    let finishing = handle.clone();
    let finish = tokio::spawn(async move {
        finishing
            .call(|reply| Command::Finish {
                exit_code: 0,
                writer_id: String::new(),
                reply,
            })
            .await
    });
    tokio::time::sleep(runcore::limits::WEDGED_AFTER + Duration::from_secs(1)).await;
    assert!(
        !finish.is_finished(),
        "the finish waits on the stuck delivery"
    );
    let since = handle.busy_since().expect("busy on the finish");
    assert!(since >= began && since.elapsed() > runcore::limits::WEDGED_AFTER);
    finish.abort();
}

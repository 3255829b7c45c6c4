//! Open runs that log nothing cost (almost) nothing: an actor takes no periodic
//! wake-ups, its heartbeat is recorded once per heartbeat interval however often
//! its client sends signs of life (as run.json's time, without rewriting it), what it buffers is still flushed within the
//! flush interval, and the runs of one client share one check of its process.
//! Time is tokio's, paused and advanced; the actors are driven directly.

mod support;

use std::sync::Arc;
use std::time::Duration;

use runcore::liveness::Clients;
use runcore::proto::v1::{AlertRequest, ClientInfo, InitRequest, RunState};
use runcore::run::{self, Command, RunHandle, RunSettings};
use runcore::shutdown::Shutdown;
use runcore::wal::FsyncPolicy;
use support::run_settings;

const FLUSH: Duration = Duration::from_secs(1);
const HEARTBEAT: Duration = Duration::from_secs(30);

fn settings() -> Arc<RunSettings> {
    run_settings(FLUSH, HEARTBEAT, FsyncPolicy::Batch)
}

/// Run `id` in `dir`, held by `client` (None: a client on another host, watched
/// by its timeout only), its actor sharing `clients`.
fn start(
    dir: &std::path::Path,
    id: &str,
    client: Option<ClientInfo>,
    shutdown: &Shutdown,
    clients: &Clients,
) -> RunHandle {
    let init = InitRequest {
        id: id.into(),
        project: "p".into(),
        client_timeout: Some(3600.0),
        client,
        ..Default::default()
    };
    let opened = run::create(&dir.join("p").join(id), init, "{}", HEARTBEAT.as_secs_f64())
        .expect("create run");
    run::spawn(opened, settings(), shutdown.token(), None, None, clients)
}

fn run_json(dir: &std::path::Path, id: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("p").join(id).join("run.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The run's last heartbeat as readers see it (run.json's field or its time).
fn last_heartbeat(dir: &std::path::Path, id: &str) -> f64 {
    runcore::store::read_run_file(&dir.join("p").join(id))
        .unwrap()
        .last_heartbeat
}

fn run_json_bytes(dir: &std::path::Path, id: &str) -> Vec<u8> {
    std::fs::read(dir.join("p").join(id).join("run.json")).unwrap()
}

async fn heartbeat(handle: &RunHandle) {
    handle
        .call(|reply| Command::Heartbeat {
            writer_id: String::new(),
            reply,
        })
        .await
        .expect("heartbeat");
}

#[tokio::test(start_paused = true)]
async fn signs_of_life_do_not_rewrite_run_json_between_heartbeats() {
    let tmp = tempfile::tempdir().unwrap();
    let shutdown = Shutdown::new();
    let handle = start(tmp.path(), "h", None, &shutdown, &Clients::new());
    tokio::time::sleep(FLUSH * 2).await;
    let first = last_heartbeat(tmp.path(), "h");
    let written = run_json_bytes(tmp.path(), "h");
    // A client's heartbeat every 5 s: signs of life, not recorded each time.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        heartbeat(&handle).await;
    }
    tokio::time::sleep(FLUSH * 2).await;
    assert_eq!(last_heartbeat(tmp.path(), "h"), first, "27 s in");
    // The sidecar records one each heartbeat interval, with or without them.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let second = last_heartbeat(tmp.path(), "h");
    assert!(
        second - first >= HEARTBEAT.as_secs_f64(),
        "{first} -> {second}"
    );
    tokio::time::sleep(HEARTBEAT).await;
    let third = last_heartbeat(tmp.path(), "h");
    assert!(
        third - second >= HEARTBEAT.as_secs_f64(),
        "{second} -> {third}"
    );
    // Recorded as run.json's time: the file itself was not rewritten for them.
    assert_eq!(run_json_bytes(tmp.path(), "h"), written);
    assert_eq!(handle.info().state(), RunState::Running);
}

#[tokio::test(start_paused = true)]
async fn a_buffered_write_is_flushed_within_the_flush_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let shutdown = Shutdown::new();
    let handle = start(tmp.path(), "f", None, &shutdown, &Clients::new());
    // Idle long enough that any periodic timer would have come and gone.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let alerts = tmp.path().join("p/f/alerts.jsonl");
    handle
        .call(|reply| Command::Alert {
            req: AlertRequest {
                run_id: "f".into(),
                title: "loss".into(),
                text: "diverged".into(),
                level: String::new(),
                wait_duration: None,
            },
            reply,
        })
        .await
        .expect("alert");
    tokio::time::sleep(FLUSH + Duration::from_millis(10)).await;
    let text = std::fs::read_to_string(&alerts).unwrap();
    assert!(text.contains("diverged"), "{text:?}");
}

#[tokio::test(start_paused = true)]
async fn the_runs_of_one_client_share_one_check_and_all_crash_when_it_dies() {
    let tmp = tempfile::tempdir().unwrap();
    let shutdown = Shutdown::new();
    let clients = Clients::new();
    let mut client = support::client_process();
    let runs: Vec<RunHandle> = (0..3)
        .map(|i| {
            let info = support::local_client(client.id());
            start(
                tmp.path(),
                &format!("r{i}"),
                Some(info),
                &shutdown,
                &clients,
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        clients.checked(),
        1,
        "one check for the client's three runs"
    );
    for r in &runs {
        assert_eq!(r.info().state(), RunState::Running);
    }
    client.kill().unwrap();
    client.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (i, r) in runs.iter().enumerate() {
        assert!(r.is_closed(), "run r{i} still open");
        assert_eq!(r.info().state(), RunState::Crashed);
        assert_eq!(run_json(tmp.path(), &format!("r{i}"))["state"], "crashed");
    }
    assert_eq!(clients.checked(), 0, "the check ended with its client");
}

/// Sets a run's recorded heartbeat to `at`: the field and run.json's time (a
/// run whose sidecar died at `at`).
fn heartbeat_at(dir: &std::path::Path, at: f64) {
    let path = dir.join("run.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["last_heartbeat"] = serde_json::json!(at);
    std::fs::write(&path, v.to_string()).unwrap();
    let time = std::time::UNIX_EPOCH + Duration::from_secs_f64(at);
    let file = std::fs::File::open(&path).unwrap();
    file.set_modified(time).unwrap();
}

#[test]
fn an_edit_of_a_stale_stored_run_keeps_it_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p").join("old");
    let init = InitRequest {
        id: "old".into(),
        project: "p".into(),
        ..Default::default()
    };
    // Opened and let go: the run is open in run.json with no sidecar holding it.
    drop(run::create(&dir, init, "{}", HEARTBEAT.as_secs_f64()).expect("create run"));
    let now = runcore::clock::now();
    assert!(!runcore::store::read_run_file(&dir).unwrap().is_stale(now));
    heartbeat_at(&dir, 1000.0);
    let stale = runcore::store::read_run_file(&dir).unwrap();
    assert_eq!(stale.last_heartbeat, 1000.0);
    assert!(stale.is_stale(now));
    // Renaming it rewrites run.json; that is no sign of life.
    run::edit_stored(
        &dir,
        runcore::proto::v1::UpdateRunRequest {
            run_id: "old".into(),
            name: Some("renamed".into()),
            ..Default::default()
        },
        HEARTBEAT.as_secs_f64(),
    )
    .expect("edit");
    let edited = runcore::store::read_run_file(&dir).unwrap();
    assert_eq!(edited.name, "renamed");
    assert_eq!(edited.last_heartbeat, 1000.0);
    assert!(edited.is_stale(runcore::clock::now()));
}

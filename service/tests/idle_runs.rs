//! Open runs that log nothing cost (almost) nothing: an actor takes no periodic
//! wake-ups, its heartbeat is recorded once per heartbeat interval however often
//! its client sends signs of life, and stamped on run.json without rewriting it,
//! what it buffers is still flushed within the flush interval, and the runs of
//! one client share one check of its process. Time is tokio's, paused and
//! advanced; the actors are driven directly.

mod support;

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

use runcore::liveness::Clients;
use runcore::proto::v1::{AlertRequest, ClientInfo, InitRequest, RunState, UpdateRunRequest};
use runcore::run::{self, Command, RunHandle, RunSettings};
use runcore::shutdown::Shutdown;
use runcore::store::{self, RunFile};
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

/// The heartbeat readers of the store see (run.json's field or its stamp).
fn last_heartbeat(dir: &std::path::Path, id: &str) -> f64 {
    store::read_run_file(&dir.join("p").join(id))
        .unwrap()
        .last_heartbeat
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
    // The first is run.json's modification time at its first write: the wall
    // clock's, a little ahead of the paused clock's start that the next is due from.
    assert!(
        second - first >= HEARTBEAT.as_secs_f64() - FLUSH.as_secs_f64(),
        "{first} -> {second}"
    );
    tokio::time::sleep(HEARTBEAT).await;
    let third = last_heartbeat(tmp.path(), "h");
    assert!(
        third - second >= HEARTBEAT.as_secs_f64(),
        "{second} -> {third}"
    );
    assert_eq!(handle.info().state(), RunState::Running);
}

#[tokio::test(start_paused = true)]
async fn a_heartbeat_is_stamped_on_run_json_without_rewriting_it() {
    let tmp = tempfile::tempdir().unwrap();
    let shutdown = Shutdown::new();
    let handle = start(tmp.path(), "m", None, &shutdown, &Clients::new());
    tokio::time::sleep(FLUSH * 2).await;
    let path = tmp.path().join("p/m/run.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let inode = std::fs::metadata(&path).unwrap().ino();
    tokio::time::sleep(HEARTBEAT * 3).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    assert_eq!(
        std::fs::metadata(&path).unwrap().ino(),
        inode,
        "not replaced"
    );
    let recorded = handle.info().last_heartbeat;
    let written: RunFile = serde_json::from_str(&text).unwrap();
    assert!(recorded - written.last_heartbeat >= 2.0 * HEARTBEAT.as_secs_f64());
    let read = store::read_run_file(&tmp.path().join("p/m")).unwrap();
    assert!(
        (read.last_heartbeat - recorded).abs() < 1e-3,
        "read {} recorded {recorded}",
        read.last_heartbeat
    );
    // A reader of the field alone would call the live run's sidecar dead by now.
    let limit = runcore::liveness::stale_after(read.client_timeout, read.heartbeat_interval);
    let then = written.last_heartbeat + limit + 1.0;
    assert!(written.is_stale(then) && !read.is_stale(then));
}

#[tokio::test]
async fn an_edit_of_a_run_no_sidecar_holds_is_no_heartbeat() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p/e");
    let init = InitRequest {
        id: "e".into(),
        project: "p".into(),
        ..Default::default()
    };
    drop(run::create(&dir, init, "{}", HEARTBEAT.as_secs_f64()).expect("create run"));
    // Its sidecar died long ago, the run left running.
    let path = dir.join("run.json");
    let mut v = run_json(tmp.path(), "e");
    v["last_heartbeat"] = serde_json::json!(1000.0);
    std::fs::write(&path, v.to_string()).unwrap();
    let old = std::time::UNIX_EPOCH + Duration::from_secs(1000);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(old))
        .unwrap();
    let edit = UpdateRunRequest {
        run_id: "e".into(),
        name: Some("renamed".into()),
        ..Default::default()
    };
    run::edit_stored(&dir, edit, HEARTBEAT.as_secs_f64()).expect("edit");
    let read = store::read_run_file(&dir).unwrap();
    assert_eq!(
        (read.name.as_str(), read.state.as_str()),
        ("renamed", "running")
    );
    assert_eq!(read.last_heartbeat, 1000.0);
    assert!(read.is_stale(runcore::clock::now()));
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

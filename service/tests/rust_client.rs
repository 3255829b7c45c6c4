//! The Rust client crate (clients/rust) against the real `runcore` binary, over a
//! unix socket and TCP: the connection, the health check and the bearer token; the
//! Run API's rows landing once and in order, through a sidecar killed and started
//! again; a sender that gives up on a run ended under it or on a wrong token; a
//! sender (and a run) closed right after it started, without the half-close wait.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runcore_client::contract::{classify, Action, Kind};
use runcore_client::proto::{
    DroppedRow, FinishRequest, FinishResponse, GetRunRequest, GetRunResponse, InitRequest,
    InitResponse, StopRunRequest, StopRunResponse,
};
use runcore_client::{
    AttachError, Client, Code, Connection, Link, Row, Run, Sender, SenderSettings,
};
use support::{get, num, read_jsonl, wait_for, Sidecar, Transport};

const CALL_TIMEOUT: Duration = Duration::from_secs(20);
const TOKEN: &str = "a-test-token-of-enough-characters-0123456789";

fn init_request(id: &str) -> InitRequest {
    InitRequest {
        id: id.into(),
        project: "p".into(),
        client: Some(runcore_client::proto::ClientInfo {
            pid: i64::from(std::process::id()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn init_and_read_back(connection: &Connection, id: &str) {
    let started: InitResponse = connection
        .call("Init", &init_request(id), CALL_TIMEOUT)
        .expect("Init");
    assert_eq!(started.run.expect("run").id, id);
    let read: GetRunResponse = connection
        .call("GetRun", &GetRunRequest { run_id: id.into() }, CALL_TIMEOUT)
        .expect("GetRun");
    assert_eq!(read.run.expect("run").project, "p");
}

#[test]
fn typed_calls_and_health_over_a_unix_socket() {
    let sidecar = Sidecar::start_with(Transport::Unix, &[]);
    assert!(sidecar.addr.starts_with("unix:"), "{}", sidecar.addr);
    let connection = Connection::new(&sidecar.addr, None).expect("connection");
    assert_eq!(connection.address(), sidecar.addr);
    let health = connection
        .health("runcore.v1.RunService", CALL_TIMEOUT)
        .expect("health");
    assert_eq!(health, "SERVING");
    init_and_read_back(&connection, "unix-run");
}

#[test]
fn raw_calls_pass_encoded_messages_through_over_tcp() {
    let sidecar = Sidecar::start_with(Transport::Tcp, &[]);
    let connection = Connection::new(&sidecar.addr, None).expect("connection");
    let request = prost::Message::encode_to_vec(&init_request("tcp-run"));
    let reply = connection
        .call_raw("Init", request, CALL_TIMEOUT)
        .expect("Init");
    let started: InitResponse = prost::Message::decode(reply.as_slice()).expect("InitResponse");
    assert_eq!(started.run.expect("run").id, "tcp-run");
    let missing = connection
        .call::<_, GetRunResponse>(
            "GetRun",
            &GetRunRequest {
                run_id: "nope".into(),
            },
            CALL_TIMEOUT,
        )
        .expect_err("no such run");
    assert_eq!(missing.code, Code::NotFound, "{missing}");
}

#[test]
fn the_bearer_token_opens_the_sidecar_and_a_wrong_one_is_unauthenticated() {
    let sidecar = Sidecar::start_with(Transport::Tcp, &["--auth-token", TOKEN]);
    let right = Connection::new(&sidecar.addr, Some(TOKEN.into())).expect("connection");
    init_and_read_back(&right, "token-run");

    let wrong = Connection::new(&sidecar.addr, Some("not-the-token".into())).expect("connection");
    let refused = wrong
        .call::<_, InitResponse>("Init", &init_request("other"), CALL_TIMEOUT)
        .expect_err("wrong token");
    assert_eq!(refused.code, Code::Unauthenticated, "{refused}");
    let none = Connection::new(&sidecar.addr, None).expect("connection");
    let refused = none
        .call::<_, InitResponse>("Init", &init_request("other"), CALL_TIMEOUT)
        .expect_err("no token");
    assert_eq!(refused.code, Code::Unauthenticated, "{refused}");
    // The health service is exempt from the token.
    assert_eq!(
        wrong
            .health("runcore.v1.RunService", CALL_TIMEOUT)
            .expect("health"),
        "SERVING"
    );
}

#[test]
fn a_connection_reconnects_to_a_sidecar_restarted_at_the_same_address() {
    let root = tempfile::tempdir().expect("temp dir");
    let mut sidecar = Sidecar::start_in(root.path(), Transport::Unix, &[]);
    let connection = Connection::new(&sidecar.addr, None).expect("connection");
    init_and_read_back(&connection, "restarted");
    sidecar.kill();
    let away = connection
        .health("runcore.v1.RunService", CALL_TIMEOUT)
        .expect_err("the sidecar is gone");
    // UNAVAILABLE, or CANCELLED when the transport notices the dead connection
    // during the call: both mean "reconnect and try again".
    assert_eq!(classify(away.code, Kind::Unary), Action::Retry, "{away}");
    let _again = Sidecar::start_in(root.path(), Transport::Unix, &[]);
    let health = support::wait_for(|| {
        connection
            .health("runcore.v1.RunService", CALL_TIMEOUT)
            .ok()
    });
    assert_eq!(health, "SERVING");
}

/// Logs rows `range` as {"i": i}, one step each.
fn log_range(run: &Run, range: std::ops::Range<u64>) {
    for i in range {
        assert!(run.log([("i", i as f64)], None, None), "row {i} dropped");
    }
}

/// The `i` of every history row of run `id`, in file order, each checked to sit at
/// its own step.
fn history(data_dir: &Path, id: &str) -> Vec<u64> {
    let rows = read_jsonl(&data_dir.join("p").join(id).join("history.jsonl"));
    rows.iter()
        .map(|row| {
            let i = num(get(row, "i"));
            assert_eq!(num(get(row, "_step")), i, "row {i} at the wrong step");
            i as u64
        })
        .collect()
}

/// The `i` of every history row of run `id`, in file order, at whatever step.
fn logged_values(data_dir: &Path, id: &str) -> Vec<u64> {
    let rows = read_jsonl(&data_dir.join("p").join(id).join("history.jsonl"));
    rows.iter().map(|row| num(get(row, "i")) as u64).collect()
}

fn start_run(client: &Client, id: &str) -> Run {
    client.init(init_request(id)).expect("Init")
}

#[test]
fn ten_thousand_rows_land_once_and_in_order() {
    let sidecar = Sidecar::start_with(Transport::Unix, &[]);
    let client = Client::connect(&sidecar.addr, None).expect("connect");
    let run = start_run(&client, "many");
    log_range(&run, 0..10_000);
    assert_eq!(run.step(), 10_000);
    let finished = run.finish(None).expect("Finish");
    assert_eq!(finished.run.expect("run").history_rows, 10_000);
    assert_eq!(
        history(&sidecar.data_dir, "many"),
        (0..10_000).collect::<Vec<_>>()
    );
}

#[test]
fn rows_survive_a_sidecar_killed_and_started_again_mid_run() {
    let root = tempfile::tempdir().expect("temp dir");
    let mut sidecar = Sidecar::start_in(root.path(), Transport::Unix, &[]);
    let client = Client::connect(&sidecar.addr, None).expect("connect");
    let run = start_run(&client, "killed");
    log_range(&run, 0..1_000);
    assert!(run.flush(None));

    // Stopped, the sidecar takes batches into its socket and acknowledges none:
    // once they are all sent, they are in flight when it is killed.
    signal(sidecar.pid(), "-STOP");
    wait_for(|| is_stopped(sidecar.pid()).then_some(()));
    log_range(&run, 1_000..2_000);
    wait_for(|| {
        let stats = run.stats();
        (stats.queued == 0 && stats.batches_sent > stats.batches_acked).then_some(())
    });
    sidecar.kill();
    let sidecar = Sidecar::start_in(root.path(), Transport::Unix, &[]);
    log_range(&run, 2_000..3_000);
    assert!(run.flush(None));

    let stats = run.stats();
    assert!(stats.batches_resent > 0, "{stats:?}");
    assert_eq!(
        (stats.rows_acked, stats.rows_lost, stats.dead),
        (3_000, 0, None)
    );
    run.finish(None).expect("Finish");
    assert_eq!(
        history(&sidecar.data_dir, "killed"),
        (0..3_000).collect::<Vec<_>>()
    );
}

#[test]
fn a_batch_the_sidecar_refuses_is_dropped_and_the_rows_after_it_land() {
    let sidecar = Sidecar::start_with(Transport::Unix, &[]);
    let client = Client::connect(&sidecar.addr, None).expect("connect");
    let run = start_run(&client, "refused");
    log_range(&run, 0..10);
    assert!(run.flush(None));
    // An empty key is INVALID_ARGUMENT: the stream ends, the batch is dropped.
    assert!(run.log([("", 1.0)], None, None));
    assert!(run.flush(None));
    log_range(&run, 10..20);
    assert!(run.flush(None));

    let stats = run.stats();
    assert_eq!(
        (stats.rows_acked, stats.rows_lost, &stats.dead),
        (20, 1, &None),
        "{stats:?}"
    );
    wait_for(|| {
        let warnings = run.warnings();
        warnings
            .iter()
            .any(|w| {
                w.contains("refused a batch of 1 logged rows") && w.contains("INVALID_ARGUMENT")
            })
            .then_some(())
    });
    run.finish(None).expect("Finish");
    assert_eq!(
        history(&sidecar.data_dir, "refused"),
        (0..20).collect::<Vec<_>>()
    );
}

#[test]
fn a_heartbeat_tells_the_run_it_was_asked_to_stop() {
    let sidecar = Sidecar::start_with(Transport::Unix, &[]);
    let settings = SenderSettings {
        heartbeat_every: Duration::from_millis(50),
        ..SenderSettings::default()
    };
    let client = Client::connect(&sidecar.addr, None)
        .expect("connect")
        .with_sender_settings(settings);
    let run = start_run(&client, "stopped");
    assert!(!run.stop_requested());
    let other = Connection::new(&sidecar.addr, None).expect("connection");
    other
        .call::<_, StopRunResponse>(
            "StopRun",
            &StopRunRequest {
                run_id: "stopped".into(),
            },
            CALL_TIMEOUT,
        )
        .expect("StopRun");
    wait_for(|| run.stop_requested().then_some(()));
    run.finish(None).expect("Finish");
}

#[test]
fn a_sidecar_back_on_another_data_dir_gets_the_run_initialised_again() {
    let root = tempfile::tempdir().expect("temp dir");
    let mut sidecar = Sidecar::start_in(root.path(), Transport::Unix, &[]);
    let client = Client::connect(&sidecar.addr, None).expect("connect");
    let run = start_run(&client, "moved");
    log_range(&run, 0..100);
    assert!(run.flush(None));
    sidecar.kill();

    let other_data = root.path().join("other-data");
    let other_dir = other_data.display().to_string();
    let sidecar = Sidecar::start_in(root.path(), Transport::Unix, &["--data-dir", &other_dir]);
    log_range(&run, 100..200);
    assert!(run.flush(None));
    let stats = run.stats();
    assert_eq!(
        (stats.rows_acked, stats.rows_lost, &stats.dead),
        (200, 0, &None),
        "{stats:?}"
    );
    run.finish(None).expect("Finish");
    // The sidecar lost the first rows with its data dir; the run, Init-ed again
    // there, holds every row logged after.
    assert_eq!(
        logged_values(&sidecar.data_dir, "moved"),
        (100..200).collect::<Vec<_>>()
    );
}

#[test]
fn a_sender_gives_up_on_a_hung_sidecar_after_the_reconnect_timeout() {
    let sidecar = Sidecar::start_with(Transport::Unix, &[]);
    let settings = SenderSettings {
        reconnect_timeout: Duration::from_millis(500),
        ..SenderSettings::default()
    };
    let client = Client::connect(&sidecar.addr, None)
        .expect("connect")
        .with_sender_settings(settings);
    let run = start_run(&client, "hung");
    log_range(&run, 0..10);
    assert!(run.flush(None));

    signal(sidecar.pid(), "-STOP");
    wait_for(|| is_stopped(sidecar.pid()).then_some(()));
    log_range(&run, 10..20);
    // Every row is accounted for once the sender gives up: the ten unacked, lost.
    assert!(run.flush(None));
    let stats = run.stats();
    let dead = stats.dead.expect("the sender gave up");
    assert!(dead.contains("acknowledged nothing"), "{dead}");
    assert_eq!((stats.rows_acked, stats.rows_lost), (10, 10));
}

#[test]
fn a_run_finished_under_the_client_ends_its_sender_with_the_reason() {
    let sidecar = Sidecar::start_with(Transport::Tcp, &[]);
    let client = Client::connect(&sidecar.addr, None).expect("connect");
    let run = start_run(&client, "ended");
    log_range(&run, 0..10);
    assert!(run.flush(None));

    let other = Connection::new(&sidecar.addr, None).expect("connection");
    let finish = FinishRequest {
        run_id: "ended".into(),
        writer_id: writer_of(&other, "ended"),
        ..Default::default()
    };
    other
        .call::<_, FinishResponse>("Finish", &finish, CALL_TIMEOUT)
        .expect("Finish from another connection");

    log_range(&run, 10..20);
    assert!(run.flush(None), "the rows are accounted for: lost");
    let stats = run.stats();
    let dead = stats.dead.expect("the sender gave up");
    assert!(dead.contains("ended by the sidecar (finished)"), "{dead}");
    assert_eq!((stats.rows_acked, stats.rows_lost), (10, 10));
    // The warning comes just after the counters (the Link is called without a lock).
    wait_for(|| {
        let warnings = run.warnings();
        warnings
            .iter()
            .any(|w| w.contains("10 logged rows could not be delivered"))
            .then_some(())
    });
    assert_eq!(
        history(&sidecar.data_dir, "ended"),
        (0..10).collect::<Vec<_>>()
    );
}

#[test]
fn the_run_api_works_with_the_right_token_and_a_wrong_token_stops_the_sender() {
    let sidecar = Sidecar::start_with(Transport::Tcp, &["--auth-token", TOKEN]);
    let client = Client::connect(&sidecar.addr, Some(TOKEN.into())).expect("connect");
    let run = start_run(&client, "authorized");
    log_range(&run, 0..100);
    run.finish(None).expect("Finish");
    assert_eq!(
        history(&sidecar.data_dir, "authorized"),
        (0..100).collect::<Vec<_>>()
    );

    let wrong =
        Client::connect(&sidecar.addr, Some("not-the-token".into())).expect("health is exempt");
    let refused = wrong
        .init(init_request("refused"))
        .err()
        .expect("Init refused");
    assert_eq!(refused.code, Code::Unauthenticated, "{refused}");

    let link = Arc::new(RecordingLink::default());
    let connection =
        Connection::new(&sidecar.addr, Some("not-the-token".into())).expect("connection");
    let sender = Sender::start(
        connection,
        "authorized".into(),
        String::new(),
        1,
        SenderSettings::default(),
        Arc::clone(&link) as Arc<dyn Link>,
    );
    sender.put(Row {
        scalars: vec![("i".into(), 1.0)],
        ..Row::default()
    });
    assert!(sender.flush(None));
    let stats = sender.stats();
    let dead = stats.dead.expect("the sender gave up");
    assert!(dead.contains("UNAUTHENTICATED"), "{dead}");
    assert_eq!(stats.rows_lost, 1);
    wait_for(|| {
        let warned = link.warned.lock().expect("warnings");
        warned
            .iter()
            .any(|(kind, _)| kind == "sender-gave-up")
            .then_some(())
    });
}

/// A sender started for `id` with a RecordingLink, numbering from seq 1.
fn start_sender(connection: Connection, id: &str) -> Sender {
    Sender::start(
        connection,
        id.into(),
        String::new(),
        1,
        SenderSettings::default(),
        Arc::new(RecordingLink::default()) as Arc<dyn Link>,
    )
}

#[test]
fn closing_a_sender_that_sent_nothing_does_not_wait_for_the_stream_to_end() {
    let sidecar = Sidecar::start_with(Transport::Unix, &[]);
    let connection = Connection::new(&sidecar.addr, None).expect("connection");
    init_and_read_back(&connection, "idle");
    // Closed at once: whichever way the race with the sender thread's first look
    // goes (no stream opened yet, or one opened that carried nothing), there is
    // nothing to ack and nothing to wait for.
    for _ in 0..4 {
        let sender = start_sender(connection.clone(), "idle");
        sender.close(None);
        let stats = sender.stats();
        assert!(!stats.half_close_timed_out, "{stats:?}");
        assert_eq!((stats.batches_sent, stats.dead), (0, None));
    }
    // A stream that carried a batch is half-closed and ended by the sidecar.
    let sender = start_sender(connection.clone(), "idle");
    sender.put(Row {
        scalars: vec![("i".into(), 0.0)],
        ..Row::default()
    });
    sender.close(None);
    let stats = sender.stats();
    assert!(!stats.half_close_timed_out, "{stats:?}");
    assert_eq!((stats.rows_acked, stats.dead), (1, None));
    let read: GetRunResponse = connection
        .call(
            "GetRun",
            &GetRunRequest {
                run_id: "idle".into(),
            },
            CALL_TIMEOUT,
        )
        .expect("GetRun");
    assert_eq!(read.run.expect("run").history_rows, 1);
}

#[test]
fn a_run_finished_right_after_init_finishes_without_the_half_close_wait() {
    let sidecar = Sidecar::start_with(Transport::Unix, &[]);
    let client = Client::connect(&sidecar.addr, None).expect("connect");
    for i in 0..3 {
        let id = format!("quick-{i}");
        let run = start_run(&client, &id);
        let started = Instant::now();
        let finished = run.finish(None).expect("Finish");
        assert_eq!(finished.run.expect("run").history_rows, 0);
        // finish() consumes the run, so its sender's half_close_timed_out cannot be
        // read (the test above reads it): elapsed time is the observable here, bounded
        // generously against the 5 s wait that finish() used to sit out.
        let took = started.elapsed();
        assert!(took < Duration::from_millis(2500), "finish took {took:?}");
    }
}

/// The writer id the run's only writer got.
fn writer_of(connection: &Connection, id: &str) -> String {
    let run: GetRunResponse = connection
        .call("GetRun", &GetRunRequest { run_id: id.into() }, CALL_TIMEOUT)
        .expect("GetRun");
    let writers: Vec<String> = run.writers.into_iter().map(|w| w.id).collect();
    assert_eq!(writers.len(), 1, "{writers:?}");
    writers[0].clone()
}

fn signal(pid: u32, which: &str) {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {which} {pid}");
}

/// Whether process `pid` is stopped (state T in /proc/PID/stat).
fn is_stopped(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the parenthesised command name.
    stat.rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('T'))
}

/// A Link for a sender driven directly: the run is open, the sidecar never comes
/// back, and warnings are kept.
#[derive(Default)]
struct RecordingLink {
    warned: Mutex<Vec<(String, String)>>,
}

impl Link for RecordingLink {
    fn attach(&self, _force: bool) -> Result<(), AttachError> {
        Ok(())
    }

    fn recover(&self, _timeout: Duration) -> Result<Connection, String> {
        Err("this test's sidecar does not come back".into())
    }

    fn on_dropped(&self, _row: &DroppedRow) {}

    fn warn(&self, kind: &str, message: &str) {
        let mut warned = self.warned.lock().expect("warnings");
        warned.push((kind.to_owned(), message.to_owned()));
    }

    fn should_stop(&self) {}
}

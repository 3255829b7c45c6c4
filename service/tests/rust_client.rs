//! The Rust client crate (clients/rust) against the real `runcore` binary, over a
//! unix socket and TCP: the connection, the health check and the bearer token; the
//! Run API's rows landing once and in order, through a sidecar killed and started
//! again; a sender that gives up on a run ended under it or on a wrong token.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runcore_client::contract::{classify, Action, Kind};
use runcore_client::proto::{
    DroppedRow, FinishRequest, FinishResponse, GetRunRequest, GetRunResponse, InitRequest,
    InitResponse,
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

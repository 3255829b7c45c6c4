//! The Rust client crate (clients/rust) against the real `runcore` binary, over a
//! unix socket and TCP: the connection, the health check and the bearer token.

mod support;

use std::time::Duration;

use runcore_client::contract::{classify, Action, Kind};
use runcore_client::proto::{GetRunRequest, GetRunResponse, InitRequest, InitResponse};
use runcore_client::{Code, Connection};
use support::{Sidecar, Transport};

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

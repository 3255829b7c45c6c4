//! The server itself: listeners, port file, health, reflection, shutdown, data-dir lock.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::*;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

async fn health(addr: &str, service: &str) -> i32 {
    let mut h = HealthClient::new(channel(addr).await);
    h.check(HealthCheckRequest {
        service: service.into(),
    })
    .await
    .expect("health check")
    .into_inner()
    .status
}

#[tokio::test]
async fn tcp_port_file_and_health() {
    let s = Sidecar::start();
    assert!(s.addr.starts_with("tcp://127.0.0.1:"), "{}", s.addr);
    assert_ne!(s.addr, "tcp://127.0.0.1:0");
    assert_eq!(health(&s.addr, "").await, ServingStatus::Serving as i32);
    assert_eq!(
        health(&s.addr, "runcore.v1.RunService").await,
        ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn unix_socket_is_private_and_serves() {
    let s = Sidecar::start_with(Transport::Unix, &[]);
    let path = s
        .addr
        .strip_prefix("unix://")
        .expect("unix address")
        .to_owned();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        health(&s.addr, "runcore.v1.RunService").await,
        ServingStatus::Serving as i32
    );
    let mut c = s.client().await;
    let run = start_run(&mut c, "u1").await;
    assert_eq!(run.run.unwrap().id, "u1");
}

#[tokio::test]
async fn reflection_lists_every_rpc() {
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let s = Sidecar::start();
    let mut r = ServerReflectionClient::new(channel(&s.addr).await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = r
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection reply")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"runcore.v1.RunService".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );

    // The file descriptor names every RPC of the contract.
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "runcore.v1.RunService".into(),
        )),
    };
    let mut stream = r
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(fd)) = resp.message_response else {
        panic!("unexpected reflection reply")
    };
    use prost::Message;
    let file =
        prost_types::FileDescriptorProto::decode(fd.file_descriptor_proto[0].as_slice()).unwrap();
    let rpcs: Vec<String> = file.service[0]
        .method
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    for rpc in [
        "Init",
        "Log",
        "LogStream",
        "DefineMetric",
        "UpdateConfig",
        "UpdateSummary",
        "Alert",
        "SaveFiles",
        "Heartbeat",
        "MarkPreempting",
        "Finish",
        "GetRun",
        "ListRuns",
        "ScanHistory",
    ] {
        assert!(
            rpcs.contains(&rpc.to_string()),
            "{rpc} missing from {rpcs:?}"
        );
    }
}

#[tokio::test]
async fn sigterm_flushes_and_exits_zero() {
    let mut s = Sidecar::start_with(Transport::Tcp, &["--shutdown-grace", "0.5"]);
    let mut c = s.client().await;
    start_run(&mut c, "t1").await;
    for i in 0..3 {
        c.log(log_req("t1", &[("x", i as f64)], None, None))
            .await
            .unwrap();
    }
    assert_eq!(s.terminate(), Some(0));
    let rows = read_jsonl(&s.run_dir("p", "t1").join("history.jsonl"));
    assert_eq!(steps(&rows), vec![0, 1, 2]);
    // Its client did not finish it within the grace period.
    assert_eq!(run_json_state(&s.run_dir("p", "t1")), "killed");
    // The socket of a unix sidecar and the lock are released: a new sidecar starts on the same dir.
    let root = s.root.clone();
    let s2 = Sidecar::start_in(&root, Transport::Tcp, &[]);
    let mut c2 = s2.client().await;
    let run = c2
        .get_run(runcore::proto::v1::GetRunRequest {
            run_id: "t1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(run.run.unwrap().step, 3);
}

#[tokio::test]
async fn two_sidecars_share_a_data_dir_but_not_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let a_root = tmp.path().join("a");
    let b_root = tmp.path().join("b");
    std::fs::create_dir_all(&a_root).unwrap();
    std::fs::create_dir_all(&b_root).unwrap();
    let data = tmp.path().join("shared-data");
    let data_arg = data.display().to_string();
    // Sharing a data dir is opt-in: without the flag the second sidecar exits.
    let shared = ["--data-dir", data_arg.as_str(), "--shared-data-dir"];
    let a = Sidecar::start_in(&a_root, Transport::Tcp, &shared);
    let b = Sidecar::start_in(&b_root, Transport::Tcp, &shared);
    let (mut ca, mut cb) = (a.client().await, b.client().await);
    start_run(&mut ca, "in-a").await;
    start_run(&mut cb, "in-b").await;
    ca.log(log_req("in-a", &[("x", 1.0)], None, None))
        .await
        .unwrap();
    cb.log(log_req("in-b", &[("x", 2.0)], None, None))
        .await
        .unwrap();
    // A run open in one sidecar cannot be opened or logged to through the other.
    let err = cb
        .init(runcore::proto::v1::InitRequest {
            id: "in-a".into(),
            resume: runcore::proto::v1::Resume::Allow as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("open in another runcore sidecar"),
        "{}",
        err.message()
    );
    let err = cb
        .log(log_req("in-a", &[("x", 3.0)], None, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    // Both runs land in the one store.
    let ls = std::process::Command::new(BIN)
        .args(["runs", "ls", "--data-dir", &data_arg])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(text.contains("in-a") && text.contains("in-b"), "{text}");
}

#[test]
fn bad_flags_exit_with_a_clear_message() {
    for (args, expect) in [
        (vec!["serve", "--listen", "tcp://0.0.0.0:1"], "--auth-token"),
        (vec!["serve", "--listen", "nonsense"], "tcp://IP:PORT"),
        (vec!["serve", "--fsync", "sometimes"], "always"),
        (vec!["serve", "--flush-interval", "0"], "--flush-interval"),
    ] {
        let out = std::process::Command::new(BIN)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}

#[test]
fn runcore_health_exits_zero_only_when_serving() {
    let s = Sidecar::start_with(Transport::Unix, &[]);
    let out = std::process::Command::new(BIN)
        .args(["health", "--address", &s.addr])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "SERVING");
    let gone = format!("{}.gone", s.addr);
    let out = std::process::Command::new(BIN)
        .args(["health", "--address", &gone])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
}

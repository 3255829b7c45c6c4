//! Security: bearer-token auth (wrong, missing, health exempt), the non-loopback
//! rule, TLS with a self-signed certificate made in the test, SaveFiles confinement
//! over TCP (path traversal, symlink escape, non-regular files, size cap), the unix
//! socket's permissions, the per-client cap on open runs, and tokens kept out of logs.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use runcore::proto::v1::run_service_client::RunServiceClient;
use runcore::proto::v1::{ClientInfo, FinishRequest, InitRequest, SaveFilesRequest};
use support::*;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Code;

const TOKEN: &str = "test-token-0123456789abcdef";

fn bearer(
    token: &'static str,
) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    move |mut req: tonic::Request<()>| {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        Ok(req)
    }
}

#[tokio::test]
async fn a_token_is_required_except_for_health() {
    let s = Sidecar::start_with(Transport::Tcp, &["--auth-token", TOKEN]);
    let ch = channel(&s.addr).await;
    let mut none = RunServiceClient::new(ch.clone());
    let err = none.init(InitRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message().contains("missing authorization"),
        "{}",
        err.message()
    );
    let mut wrong =
        RunServiceClient::with_interceptor(ch.clone(), bearer("test-token-0123456789abcdeX"));
    let err = wrong.init(InitRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message().contains("invalid bearer token"),
        "{}",
        err.message()
    );
    // Health probes need no token.
    let mut h = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let st = h
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        st.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let mut ok = RunServiceClient::with_interceptor(ch, bearer(TOKEN));
    let run = ok
        .init(InitRequest {
            id: "authed".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(run.run.unwrap().id, "authed");
}

#[test]
fn non_loopback_needs_a_token() {
    let out = Command::new(BIN)
        .args(["serve", "--listen", "tcp://0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--auth-token") && err.contains("reachable from other machines"),
        "{err}"
    );
    let out = Command::new(BIN)
        .args(["serve", "--auth-token", "short"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16 characters"));
    // With a token it starts (listening on every interface; the test talks to loopback).
    let s = Sidecar::start_with(
        Transport::Tcp,
        &["--listen", "tcp://0.0.0.0:0", "--auth-token", TOKEN],
    );
    assert!(s.addr.starts_with("tcp://0.0.0.0:"), "{}", s.addr);
}

#[tokio::test]
async fn tls_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // A leaf, not a CA: webpki refuses a CA certificate as the server's own.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success(), "openssl could not make a certificate");
    let (c, k) = (cert.display().to_string(), key.display().to_string());
    let s = Sidecar::start_with(Transport::Tcp, &["--tls-cert", &c, "--tls-key", &k]);
    let port = s.addr.rsplit(':').next().unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(&cert).unwrap()))
        .domain_name("localhost");
    let ch: Channel = Endpoint::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("TLS connect");
    let mut client = RunServiceClient::new(ch);
    let run = client
        .init(InitRequest {
            id: "tls".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(run.run.unwrap().id, "tls");
    // A plaintext client gets nowhere.
    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await;
    if let Ok(ch) = plain {
        assert!(RunServiceClient::new(ch)
            .init(InitRequest::default())
            .await
            .is_err());
    }
}

fn save(glob: &str) -> SaveFilesRequest {
    SaveFilesRequest {
        run_id: "conf".into(),
        glob: glob.into(),
        policy: "now".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn over_tcp_saves_stay_under_the_files_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("ok.txt"), "fine").unwrap();
    std::fs::write(root.join("big.bin"), vec![0u8; 100]).unwrap();
    std::fs::write(outside.join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("sub/escape.txt")).unwrap();
    assert!(Command::new("mkfifo")
        .arg(root.join("pipe"))
        .status()
        .unwrap()
        .success());
    let r = root.display().to_string();
    let s = Sidecar::start_with(
        Transport::Tcp,
        &["--files-root", &r, "--max-file-bytes", "50"],
    );
    let mut c = s.client().await;
    c.init(InitRequest {
        id: "conf".into(),
        project: "p".into(),
        working_dir: r.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        c.save_files(save("ok.txt"))
            .await
            .unwrap()
            .into_inner()
            .saved,
        ["ok.txt"]
    );
    let cases = [
        (
            outside.join("secret.txt").display().to_string(),
            Code::PermissionDenied,
            "outside the directories",
        ),
        (
            "sub/escape.txt".to_string(),
            Code::PermissionDenied,
            "outside the directories",
        ),
        (
            "sub/*".to_string(),
            Code::PermissionDenied,
            "outside the directories",
        ),
        (
            "../outside/secret.txt".to_string(),
            Code::InvalidArgument,
            "'..'",
        ),
        (
            "pipe".to_string(),
            Code::InvalidArgument,
            "not a regular file",
        ),
        (
            "big.bin".to_string(),
            Code::ResourceExhausted,
            "over the limit of 50 bytes",
        ),
    ];
    for (glob, code, text) in cases {
        let err = c.save_files(save(&glob)).await.unwrap_err();
        assert_eq!(err.code(), code, "{glob}: {}", err.message());
        assert!(err.message().contains(text), "{glob}: {}", err.message());
    }
    // A pattern skips the fifo; nothing outside the root was copied.
    let saved = c
        .save_files(save("*.txt"))
        .await
        .unwrap()
        .into_inner()
        .saved;
    assert_eq!(saved, ["ok.txt"]);
    c.finish(FinishRequest {
        run_id: "conf".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let files = s.run_dir("p", "conf").join("files");
    assert!(!files.join("sub/escape.txt").exists() && !files.join("secret.txt").exists());
}

#[tokio::test]
async fn over_a_unix_socket_any_regular_file_may_be_saved() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("anywhere.txt"), "ok").unwrap();
    let s = Sidecar::start_with(Transport::Unix, &[]);
    let mut c = s.client().await;
    c.init(InitRequest {
        id: "conf".into(),
        project: "p".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let saved = c
        .save_files(save(&tmp.path().join("anywhere.txt").display().to_string()))
        .await
        .unwrap()
        .into_inner()
        .saved;
    assert_eq!(saved.len(), 1);
}

#[tokio::test]
async fn a_socket_group_opens_the_socket_to_that_group() {
    let gid = String::from_utf8(Command::new("id").arg("-g").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_owned();
    let s = Sidecar::start_with(Transport::Unix, &["--socket-group", &gid]);
    let path = s.addr.strip_prefix("unix://").unwrap();
    let meta = std::fs::metadata(path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.gid().to_string(), gid);
}

#[tokio::test]
async fn one_client_process_may_hold_only_so_many_open_runs() {
    let s = Sidecar::start_with(Transport::Tcp, &["--max-runs-per-client", "2"]);
    let mut c = s.client().await;
    let me = ClientInfo {
        pid: 4242,
        hostname: "trainer-host".into(),
        boot_id: "b".into(),
    };
    let init = |id: &str| InitRequest {
        id: id.into(),
        project: "p".into(),
        client: Some(me.clone()),
        ..Default::default()
    };
    c.init(init("r1")).await.unwrap();
    c.init(init("r2")).await.unwrap();
    let err = c.init(init("r3")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("--max-runs-per-client"),
        "{}",
        err.message()
    );
    c.finish(FinishRequest {
        run_id: "r1".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    c.init(init("r3")).await.unwrap();
}

#[test]
fn tokens_stay_out_of_logs_and_help() {
    let tmp = tempfile::tempdir().unwrap();
    let help = Command::new(BIN)
        .args(["serve", "--help"])
        .env("RUNCORE_AUTH_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains(TOKEN));
    // The log goes to a file: a pipe nobody reads would fill up and stall the sidecar.
    let log_path = tmp.path().join("sidecar.log");
    let child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "tcp://127.0.0.1:0",
            "--backend",
            "mlflow",
            "--mlflow-tracking-uri",
            "http://127.0.0.1:9",
        ])
        .arg("--port-file")
        .arg(tmp.path().join("port"))
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .env("RUNCORE_AUTH_TOKEN", TOKEN)
        .env("MLFLOW_TRACKING_TOKEN", "mlflow-secret-credential")
        .env("RUNCORE_LOG", "trace")
        .args(["--shutdown-grace", "1"])
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let addr = wait_for(|| {
        std::fs::read_to_string(tmp.path().join("port"))
            .ok()
            .filter(|s| !s.is_empty())
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ch = channel(addr.trim()).await;
        let mut wrong =
            RunServiceClient::with_interceptor(ch.clone(), bearer("wrong-token-0123456789abcdef"));
        assert!(wrong.init(InitRequest::default()).await.is_err());
        let mut ok = RunServiceClient::with_interceptor(ch, bearer(TOKEN));
        ok.init(InitRequest {
            id: "logged".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        ok.log(log_req("logged", &[("x", 1.0)], None, None))
            .await
            .unwrap();
        // Let the forwarder try (and fail) against the unreachable MLflow.
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    });
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut child = child;
    child.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("delivery failed"),
        "the forwarder logged its attempts: {log}"
    );
    assert!(!log.contains(TOKEN), "the auth token leaked into the log");
    assert!(
        !log.contains("mlflow-secret-credential"),
        "the MLflow token leaked into the log"
    );
}

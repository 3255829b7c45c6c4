//! Adversarial clients (issue 14): one that never reads its acks, one that keeps a
//! connection open and silent, one that sends more keys than a run can hold or
//! bytes that are not protobuf, and a second sidecar on a data dir in use. Each
//! may fail itself; none may block, grow or break the others.

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runcore::limits::{MAX_KEYS_PER_BATCH, MAX_KEYS_PER_RUN};
use runcore::proto::v1::run_service_client::RunServiceClient;
use runcore::proto::v1::{
    value::Kind, DefineMetricRequest, GetRunRequest, InitRequest, LogBatch, LogRequest, MapValue,
    Row, UpdateSummaryRequest, Value,
};
use support::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

fn expect<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, text: &str) {
    let err = r.expect_err("should fail");
    assert_eq!(err.code(), code, "{}", err.message());
    assert!(
        err.message().contains(text),
        "{:?} lacks {text:?}",
        err.message()
    );
}

fn batch(run: &str, seq: u64) -> LogBatch {
    LogBatch {
        run_id: run.into(),
        seq,
        keys: vec!["x".into()],
        rows: vec![Row {
            scalar_keys: vec![0],
            scalar_values: vec![seq as f64],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A client whose HTTP/2 stream window is 1 KiB: it reads almost nothing.
async fn stingy_client(s: &Sidecar) -> RunServiceClient<tonic::transport::Channel> {
    let addr = s.addr.strip_prefix("tcp://").unwrap();
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .initial_stream_window_size(Some(1024))
        .connect()
        .await
        .unwrap();
    RunServiceClient::new(ch)
}

async fn history_rows(c: &mut RunServiceClient<tonic::transport::Channel>, id: &str) -> i64 {
    let mut req = tonic::Request::new(GetRunRequest { run_id: id.into() });
    req.set_timeout(Duration::from_secs(2));
    match c.get_run(req).await {
        Ok(r) => r.into_inner().run.map(|r| r.history_rows).unwrap_or(0),
        Err(_) => -1,
    }
}

/// Starts a stream that sends `n` batches and never reads an ack.
async fn unread_stream(
    s: &Sidecar,
    run: &str,
    n: u64,
) -> (
    tonic::Streaming<runcore::proto::v1::LogAck>,
    tokio::task::JoinHandle<()>,
) {
    let mut slow = stingy_client(s).await;
    let (tx, rx) = mpsc::channel(16);
    let acks = slow
        .log_stream(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let run = run.to_owned();
    let feeder = tokio::spawn(async move {
        let _keep = slow;
        for seq in 1..=n {
            if tx.send(batch(&run, seq)).await.is_err() {
                return;
            }
        }
        // Hold the stream open: the client is alive, it just does not read.
        std::future::pending::<()>().await;
    });
    (acks, feeder)
}

/// Batches a stingy client sends: more acks than the sidecar's ack queue and the
/// HTTP/2 send buffer (400 KiB) hold, with a long run id making each ack big.
const FLOOD: u64 = 12_000;

#[tokio::test]
async fn a_client_that_never_reads_its_acks_blocks_neither_its_run_nor_others() {
    let s = Sidecar::start();
    let mut c = s.client().await;
    let id = format!("slow-{}", "x".repeat(59));
    start_run(&mut c, &id).await;
    let (mut acks, feeder) = unread_stream(&s, &id, FLOOD).await;
    // Let the stream get going.
    wait_for_async(|| {
        let (mut c, id) = (c.clone(), id.clone());
        async move { (history_rows(&mut c, &id).await >= 64).then_some(()) }
    })
    .await;
    // Another client logs to the same run.
    let mut probe = log_req(&id, &[("probe", 1.0)], None, None);
    probe.seq = 0;
    let mut req = tonic::Request::new(probe);
    req.set_timeout(PATIENCE);
    c.log(req).await.expect("the run is not blocked");
    // Wait until the sidecar stopped taking the stream's batches (its rows stay
    // the same for 3 s), then read.
    let mut last = -1;
    let deadline = Instant::now() + PATIENCE * 3;
    loop {
        let rows = history_rows(&mut c, &id).await;
        if rows == last || Instant::now() > deadline {
            break;
        }
        last = rows;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    // The stingy stream was ended, not served forever: reading it now gives
    // what was queued and then RESOURCE_EXHAUSTED.
    let mut got = 0;
    let end = loop {
        match tokio::time::timeout(PATIENCE, acks.message()).await {
            Ok(Ok(Some(_))) => got += 1,
            Ok(Ok(None)) => break None,
            Ok(Err(e)) => break Some(e),
            Err(_) => panic!("the ack stream neither ended nor went on"),
        }
    };
    let e = end.expect("the stream ends with an error");
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    assert!(e.message().contains("acknowledgements"), "{}", e.message());
    assert!(got < FLOOD, "{got} acks: the stream was never ended");
    feeder.abort();
}

#[tokio::test]
async fn shutdown_keeps_to_its_grace_whatever_a_client_does() {
    let mut s = Sidecar::start_with(Transport::Tcp, &["--shutdown-grace", "2"]);
    let mut c = s.client().await;
    start_run(&mut c, "stuck").await;
    let (_acks, feeder) = unread_stream(&s, "stuck", 3000).await;
    wait_for_async(|| {
        let mut c = c.clone();
        async move { (history_rows(&mut c, "stuck").await >= 64).then_some(()) }
    })
    .await;
    let started = Instant::now();
    let code = tokio::task::spawn_blocking(move || s.terminate())
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    assert!(started.elapsed() < PATIENCE);
    feeder.abort();
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    use tokio::io::AsyncReadExt;
    let s = Sidecar::start_with(Transport::Tcp, &["--idle-timeout", "1"]);
    let addr = s.addr.strip_prefix("tcp://").unwrap();
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match raw.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "a connection that sent nothing is still open"
    );
    // A client that talks is served as before.
    let mut c = s.client().await;
    start_run(&mut c, "alive").await;
}

fn many(prefix: &str, n: usize) -> BTreeMap<String, Value> {
    (0..n)
        .map(|i| (format!("{prefix}{i}"), double(i as f64)))
        .collect()
}

#[tokio::test]
async fn keys_per_batch_and_per_run_are_bounded() {
    let s = Sidecar::start();
    let mut c = s.client().await;
    start_run(&mut c, "keys").await;
    expect(
        c.log(LogRequest {
            run_id: "keys".into(),
            data: many("k", MAX_KEYS_PER_BATCH + 1),
            ..Default::default()
        })
        .await,
        Code::ResourceExhausted,
        "keys",
    );
    let mut big = BTreeMap::new();
    big.insert(
        "nested".to_owned(),
        Value {
            kind: Some(Kind::MapValue(MapValue {
                fields: many("n", runcore::limits::MAX_NESTED_ENTRIES + 1),
            })),
        },
    );
    expect(
        c.log(LogRequest {
            run_id: "keys".into(),
            data: big,
            ..Default::default()
        })
        .await,
        Code::ResourceExhausted,
        "entries",
    );
    c.log(LogRequest {
        run_id: "keys".into(),
        data: many("a", MAX_KEYS_PER_RUN),
        ..Default::default()
    })
    .await
    .unwrap();
    expect(
        c.log(log_req("keys", &[("one_more", 1.0)], None, None))
            .await,
        Code::ResourceExhausted,
        "keys",
    );
    // Keys the run holds are still welcome.
    c.log(log_req("keys", &[("a1", 1.0)], None, None))
        .await
        .unwrap();
    expect(
        c.update_summary(UpdateSummaryRequest {
            run_id: "keys".into(),
            summary: many("s", MAX_KEYS_PER_BATCH + 1),
            ..Default::default()
        })
        .await,
        Code::ResourceExhausted,
        "keys",
    );
    let run = c
        .get_run(GetRunRequest {
            run_id: "keys".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(run.run.unwrap().history_rows, 2);
}

#[tokio::test]
async fn get_run_fits_a_default_client_whatever_the_run_holds() {
    let s = Sidecar::start();
    let mut c = s.client().await;
    start_run(&mut c, "fat").await;
    for i in 0..6 {
        let mut m = BTreeMap::new();
        m.insert(format!("blob{i}"), string("x".repeat(1024 * 1024)));
        c.update_summary(UpdateSummaryRequest {
            run_id: "fat".into(),
            summary: m,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    // A client with gRPC's default 4 MiB receive limit.
    let mut small = RunServiceClient::new(channel(&s.addr).await);
    let reply = small
        .get_run(GetRunRequest {
            run_id: "fat".into(),
        })
        .await
        .expect("GetRun fits in 4 MiB");
    let omitted = reply
        .metadata()
        .get("runcore-omitted")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(omitted.contains("summary.blob"), "{omitted:?}");
    let run = reply.into_inner();
    assert!(run.summary.len() < 7, "{}", run.summary.len());
    assert_eq!(run.run.unwrap().id, "fat");
}

#[tokio::test]
async fn names_and_keys_with_control_characters_are_refused_and_quoted_briefly() {
    let s = Sidecar::start();
    let mut c = s.client().await;
    for (req, what) in [
        (
            InitRequest {
                entity: "../x".into(),
                ..Default::default()
            },
            "entity",
        ),
        (
            InitRequest {
                name: "a\0b".into(),
                ..Default::default()
            },
            "control",
        ),
        (
            InitRequest {
                group: "g\u{7}".into(),
                ..Default::default()
            },
            "control",
        ),
    ] {
        expect(c.init(req).await, Code::InvalidArgument, what);
    }
    let err = c
        .init(InitRequest {
            id: "x".repeat(100_000),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().len() < 600, "{} bytes", err.message().len());
    start_run(&mut c, "ctl").await;
    expect(
        c.log(log_req("ctl", &[("a\nb", 1.0)], None, None)).await,
        Code::InvalidArgument,
        "control",
    );
    let mut nested = BTreeMap::new();
    nested.insert(
        "ok".to_owned(),
        Value {
            kind: Some(Kind::MapValue(MapValue {
                fields: BTreeMap::from([("bad\0key".to_owned(), double(1.0))]),
            })),
        },
    );
    expect(
        c.log(LogRequest {
            run_id: "ctl".into(),
            data: nested,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "control",
    );
    expect(
        c.define_metric(DefineMetricRequest {
            run_id: "ctl".into(),
            name: "m\u{1b}[31m".into(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "control",
    );
}

/// A gRPC codec of raw bytes, to send what is not protobuf.
#[derive(Default, Clone)]
struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use prost::bytes::Buf;
        let mut v = vec![0u8; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

#[tokio::test]
async fn bytes_that_are_not_protobuf_are_invalid_argument() {
    let s = Sidecar::start();
    let mut grpc = tonic::client::Grpc::new(channel(&s.addr).await);
    for method in ["Log", "Init", "GetRun"] {
        grpc.ready().await.unwrap();
        let path = format!("/runcore.v1.RunService/{method}").parse().unwrap();
        let err = grpc
            .unary(tonic::Request::new(vec![0xff, 0xff, 0xff, 0xff]), path, Raw)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{method}: {err:?}");
    }
}

#[tokio::test]
async fn concurrent_inits_of_one_id_have_exactly_one_winner() {
    let s = Sidecar::start();
    let c = s.client().await;
    let calls = (0..16).map(|_| {
        let mut c = c.clone();
        tokio::spawn(async move {
            c.init(InitRequest {
                id: "race".into(),
                project: "p".into(),
                ..Default::default()
            })
            .await
        })
    });
    let results: Vec<_> = futures_join(calls).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1);
    for r in results.into_iter().filter_map(Result::err) {
        assert_eq!(r.code(), Code::AlreadyExists, "{}", r.message());
    }
}

async fn futures_join<T>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks.collect::<Vec<_>>() {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn sidecars_sharing_a_data_dir_on_purpose_race_inits_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data").display().to_string();
    let roots = [tmp.path().join("a"), tmp.path().join("b")];
    for r in &roots {
        std::fs::create_dir_all(r).unwrap();
    }
    let flags = ["--data-dir", &data, "--shared-data-dir"];
    let a = Sidecar::start_in(&roots[0], Transport::Tcp, &flags);
    let b = Sidecar::start_in(&roots[1], Transport::Tcp, &flags);
    let (ca, cb) = (a.client().await, b.client().await);
    for round in 0..10 {
        let id = format!("r{round}");
        let calls = (0..8).map(|i| {
            let mut c = if i % 2 == 0 { ca.clone() } else { cb.clone() };
            let id = id.clone();
            tokio::spawn(async move {
                c.init(InitRequest {
                    id,
                    project: "p".into(),
                    ..Default::default()
                })
                .await
            })
        });
        let results = futures_join(calls).await;
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{id}");
        for r in results.into_iter().filter_map(Result::err) {
            assert_eq!(r.code(), Code::AlreadyExists, "{id}: {}", r.message());
        }
    }
}

/// Runs `runcore ARGS` to its end (killed after PATIENCE); (exit code, stderr).
fn run_to_end(args: &[&str]) -> (Option<i32>, String, String) {
    let child = Command::new(BIN)
        .args(args)
        .env("RUNCORE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            // A watchdog over a separate process polls it.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(Duration::from_millis(50));
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return false;
            }
        }
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        true
    });
    let out = child.wait_with_output().unwrap();
    let killed = watchdog.join().unwrap();
    assert!(!killed, "runcore {args:?} did not exit by itself");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_second_sidecar_on_a_data_dir_in_use_exits_naming_the_first() {
    let s = Sidecar::start();
    let data = s.data_dir.display().to_string();
    let sock = s.root.join("second.sock").display().to_string();
    let (code, _, err) = run_to_end(&[
        "serve",
        "--data-dir",
        &data,
        "--listen",
        &format!("unix://{sock}"),
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains(&s.pid().to_string()), "{err}");
    assert!(err.contains("--shared-data-dir"), "{err}");
}

#[tokio::test]
async fn a_listen_path_that_is_not_a_socket_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, "keep me").unwrap();
    let data = tmp.path().join("data").display().to_string();
    let (code, _, err) = run_to_end(&[
        "serve",
        "--data-dir",
        &data,
        "--listen",
        &format!("unix://{}", file.display()),
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    // A socket the sidecar makes is 0600 from the start, and nothing is left
    // beside it.
    let s = Sidecar::start_with(Transport::Unix, &[]);
    let path = std::path::PathBuf::from(s.addr.strip_prefix("unix://").unwrap());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[tokio::test]
async fn runs_ls_and_show_agree_and_name_what_they_cannot_read() {
    let tmp = tempfile::tempdir().unwrap();
    let data = {
        let mut s = Sidecar::start_in(tmp.path(), Transport::Tcp, &[]);
        let mut c = s.client().await;
        start_run(&mut c, "stale").await;
        s.kill();
        s.data_dir.clone()
    };
    // Its sidecar died long ago: the heartbeat is old.
    let run_json = data.join("p/stale/run.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&run_json).unwrap()).unwrap();
    v["last_heartbeat"] = serde_json::json!(1000.0);
    std::fs::write(&run_json, v.to_string()).unwrap();
    // A live run's heartbeats are run.json's time: that is old too.
    let long_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000);
    std::fs::File::open(&run_json)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    // A run dir whose run.json is garbage.
    std::fs::create_dir_all(data.join("p/broken")).unwrap();
    std::fs::write(data.join("p/broken/run.wal"), b"").unwrap();
    std::fs::write(data.join("p/broken/run.json"), b"{not json").unwrap();
    let d = data.display().to_string();
    let (_, ls, ls_err) = run_to_end(&["runs", "ls", "--data-dir", &d]);
    let stale_line = ls.lines().find(|l| l.starts_with("stale")).unwrap_or("");
    assert!(stale_line.contains("crashed"), "{ls}");
    let both = format!("{ls}{ls_err}");
    assert!(both.contains("p/broken"), "{both}");
    let (_, show, _) = run_to_end(&["runs", "show", "stale", "--data-dir", &d]);
    let state = show.lines().find(|l| l.starts_with("state")).unwrap_or("");
    assert!(state.contains("crashed"), "{show}");
}

#[test]
fn sync_to_an_unreachable_backend_gives_up_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p/offline");
    std::fs::create_dir_all(&dir).unwrap();
    {
        let mut w = runcore::wal::WalWriter::create(&dir.join("run.wal")).unwrap();
        w.append(&runcore::proto::wal::Record {
            time: 1.0,
            kind: Some(runcore::proto::wal::record::Kind::Start(InitRequest {
                id: "offline".into(),
                project: "p".into(),
                ..Default::default()
            })),
        })
        .unwrap();
    }
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = dir.display().to_string();
    let uri = format!("http://127.0.0.1:{port}");
    let (code, out, err) = run_to_end(&[
        "sync",
        &d,
        "--backend",
        "mlflow",
        "--mlflow-tracking-uri",
        &uri,
        "--give-up-after",
        "2s",
    ]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("gave up"), "{err}");
}

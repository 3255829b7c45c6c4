//! Shared by the integration tests: start the real `runcore` binary on a temp dir,
//! connect a gRPC client over TCP or a unix socket, and read the local store.

#![allow(dead_code, unused_imports)]
// Polling for a child process (its port file, its exit) is what a test of a separate
// process has to do; library code may not sleep (clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runcore::proto::v1::run_service_client::RunServiceClient;
use runcore::proto::v1::{value::Kind, InitRequest, InitResponse, LogRequest, Value};
use tonic::transport::Channel;

pub use runcore::value::{double, int, string};

pub const BIN: &str = env!("CARGO_BIN_EXE_runcore");

/// How long a test waits for something that should happen in well under a second.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct Sidecar {
    child: Option<Child>,
    pub addr: String,
    pub data_dir: PathBuf,
    pub root: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

#[derive(Clone, Copy, PartialEq)]
pub enum Transport {
    Tcp,
    Unix,
}

impl Sidecar {
    /// A sidecar on a fresh temp dir, over loopback TCP.
    pub fn start() -> Self {
        Self::start_with(Transport::Tcp, &[])
    }

    pub fn start_with(transport: Transport, extra: &[&str]) -> Self {
        Self::start_with_env(transport, extra, &[])
    }

    /// A sidecar on a fresh temp dir with extra environment variables of its own.
    pub fn start_with_env(transport: Transport, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().to_owned();
        let mut s = Self::start_in_env(&root, transport, extra, env);
        s._tmp = Some(tmp);
        s
    }

    /// A sidecar whose data lives under `root` (which outlives it, for restarts).
    pub fn start_in(root: &Path, transport: Transport, extra: &[&str]) -> Self {
        Self::start_in_env(root, transport, extra, &[])
    }

    /// [`Sidecar::start_in`] with extra environment variables for the sidecar alone
    /// (credentials), leaving the test process's environment as it is.
    pub fn start_in_env(
        root: &Path,
        transport: Transport,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let data_dir = extra
            .iter()
            .position(|a| *a == "--data-dir")
            .and_then(|i| extra.get(i + 1))
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("data"));
        let port_file = root.join("port");
        let _ = std::fs::remove_file(&port_file);
        let listen = match transport {
            Transport::Tcp => "tcp://127.0.0.1:0".to_owned(),
            Transport::Unix => format!("unix://{}", root.join("runcore.sock").display()),
        };
        let mut args: Vec<String> = vec!["serve".into()];
        if !extra.contains(&"--listen") {
            args.extend(["--listen".to_owned(), listen]);
        }
        // Quick defaults for tests, unless the test sets its own.
        let data_arg = data_dir.display().to_string();
        // Over TCP saved files are confined to --files-root; tests keep theirs in
        // temp dirs.
        let tmp_root = std::env::temp_dir()
            .canonicalize()
            .unwrap()
            .display()
            .to_string();
        let files_root = match transport {
            Transport::Tcp => tmp_root.as_str(),
            Transport::Unix => "",
        };
        if !files_root.is_empty()
            && !extra.contains(&"--files-root")
            && !extra.contains(&"--listen")
        {
            args.extend(["--files-root".to_owned(), files_root.to_owned()]);
        }
        for (flag, value) in [
            ("--flush-interval", "0.1"),
            ("--shutdown-grace", "5"),
            ("--data-dir", data_arg.as_str()),
        ] {
            if !extra.contains(&flag) {
                args.extend([flag.to_owned(), value.to_owned()]);
            }
        }
        let child = Command::new(BIN)
            .args(&args)
            .arg("--port-file")
            .arg(&port_file)
            .args(extra)
            .env("RUNCORE_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn runcore");
        let addr = wait_for(|| {
            std::fs::read_to_string(&port_file)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        });
        Sidecar {
            child: Some(child),
            addr,
            data_dir,
            root: root.to_owned(),
            _tmp: None,
        }
    }

    pub async fn client(&self) -> RunServiceClient<Channel> {
        RunServiceClient::new(channel(&self.addr).await).max_decoding_message_size(usize::MAX)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let c = self.child.as_ref()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        self.wait_exit()
    }

    /// Waits for the sidecar to exit by itself; returns the exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("runcore did not exit within {PATIENCE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The directory of run `id` in project `project`.
    pub fn run_dir(&self, project: &str, id: &str) -> PathBuf {
        self.data_dir.join(project).join(id)
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A sidecar served inside the test's own runtime (`runcore::server::serve` on
/// 127.0.0.1:0 with a shutdown future): for behaviour that needs no separate
/// process. Crash, signal, liveness and security tests spawn the binary
/// ([`Sidecar`]). The same settings as [`Sidecar::start`]: flush every 0.1 s, saved
/// files confined to the temp dir.
pub struct InProcess {
    pub addr: String,
    pub data_dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<Result<(), runcore::server::ServeError>>>,
    _tmp: tempfile::TempDir,
}

impl InProcess {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// With settings changed by `change` (the struct, never the environment).
    pub async fn start_with(change: impl FnOnce(&mut runcore::config::ServeConfig)) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().join("data");
        let mut config = runcore::config::ServeConfig::new(data_dir.clone());
        config.flush_interval = Duration::from_millis(100);
        config.shutdown_grace = Duration::from_secs(5);
        let root = std::env::temp_dir().canonicalize().expect("temp dir");
        config.files.roots = Some(vec![root]);
        change(&mut config);
        let listener = runcore::listen::Listener::bind(&config.listen, None)
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(runcore::server::serve(listener, config, async move {
            let _ = stopped.await;
        }));
        InProcess {
            addr,
            data_dir,
            stop: Some(stop),
            served: Some(served),
            _tmp: tmp,
        }
    }

    pub async fn client(&self) -> RunServiceClient<Channel> {
        RunServiceClient::new(channel(&self.addr).await).max_decoding_message_size(usize::MAX)
    }

    /// The directory of run `id` in project `project`.
    pub fn run_dir(&self, project: &str, id: &str) -> PathBuf {
        self.data_dir.join(project).join(id)
    }

    /// Stops it as SIGTERM would (open runs become killed) and waits.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served
                .await
                .expect("serve task")
                .expect("serve returned an error");
        }
    }
}

/// A channel to a `tcp://` or `unix://` address.
pub async fn channel(addr: &str) -> Channel {
    runcore::client::connect(&addr.parse().expect("address"))
        .await
        .expect("connect to the sidecar")
}

/// Polls `f` until it returns Some, failing the test after [`PATIENCE`].
pub fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Async version of [`wait_for`].
pub async fn wait_for_async<T, F: std::future::Future<Output = Option<T>>>(
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn init(client: &mut RunServiceClient<Channel>, req: InitRequest) -> InitResponse {
    client.init(req).await.expect("init").into_inner()
}

/// Starts a run with an id in project "p".
pub async fn start_run(client: &mut RunServiceClient<Channel>, id: &str) -> InitResponse {
    init(
        client,
        InitRequest {
            id: id.into(),
            project: "p".into(),
            ..Default::default()
        },
    )
    .await
}

/// A `data` map of numbers.
pub fn data(pairs: &[(&str, f64)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), double(*v)))
        .collect()
}

pub fn log_req(
    run: &str,
    pairs: &[(&str, f64)],
    step: Option<i64>,
    commit: Option<bool>,
) -> LogRequest {
    LogRequest {
        run_id: run.into(),
        data: data(pairs),
        step,
        commit,
        seq: 0,
        timestamp: 0.0,
        writer_id: String::new(),
    }
}

/// Reads a JSON-lines file of the store with Python's NaN/Infinity tokens.
pub fn read_jsonl(path: &Path) -> Vec<BTreeMap<String, Value>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            runcore::value::parse_json_map(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}"))
        })
        .collect()
}

pub fn read_json(path: &Path) -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    runcore::value::parse_json_map(&text).unwrap()
}

pub fn num(v: &Value) -> f64 {
    runcore::value::as_f64(v).unwrap_or_else(|| panic!("not a number: {v:?}"))
}

pub fn get<'a>(m: &'a BTreeMap<String, Value>, k: &str) -> &'a Value {
    m.get(k)
        .unwrap_or_else(|| panic!("no key {k:?} in {:?}", m.keys().collect::<Vec<_>>()))
}

pub fn as_map(v: &Value) -> &BTreeMap<String, Value> {
    match &v.kind {
        Some(Kind::MapValue(m)) => &m.fields,
        other => panic!("not a map: {other:?}"),
    }
}

pub fn as_str(v: &Value) -> &str {
    match &v.kind {
        Some(Kind::StringValue(s)) => s,
        other => panic!("not a string: {other:?}"),
    }
}

/// Steps of each history row, in order.
pub fn steps(rows: &[BTreeMap<String, Value>]) -> Vec<i64> {
    rows.iter().map(|r| num(get(r, "_step")) as i64).collect()
}

/// ClientInfo naming process `pid` on this host.
pub fn local_client(pid: u32) -> runcore::proto::v1::ClientInfo {
    let host = runcore::liveness::local_host();
    runcore::proto::v1::ClientInfo {
        pid: i64::from(pid),
        hostname: host.hostname.clone(),
        boot_id: host.boot_id.clone(),
    }
}

/// A stand-in client process: it sleeps until killed.
pub fn client_process() -> Child {
    Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("spawn sleep")
}

/// The state recorded in run.json.
pub fn run_json_state(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("run.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["state"].as_str().unwrap_or_default().to_owned()
}
pub mod artifacts;
pub mod mlflow;
pub mod wandb;
pub mod wandb_sdk;

/// CPU seconds (user + system) a process has used so far, from /proc.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process's stat");
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat has a name") + 2..]
        .split(' ')
        .collect();
    // utime and stime are fields 14 and 15 of the line; the name was field 2.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Settings for a run actor driven directly by a test (no sidecar): no file
/// roots, a 1 MiB file cap, no memory limit and no indexing queue.
pub fn run_settings(
    flush: Duration,
    heartbeat: Duration,
    fsync: runcore::wal::FsyncPolicy,
) -> std::sync::Arc<runcore::run::RunSettings> {
    std::sync::Arc::new(runcore::run::RunSettings {
        flush_interval: flush,
        heartbeat_interval: heartbeat,
        fsync,
        files: runcore::config::FilesPolicy {
            roots: None,
            max_bytes: 1 << 20,
        },
        finish_timeout: Duration::from_secs(1),
        budget: runcore::memory::Budget::unlimited(),
        ended: None,
    })
}

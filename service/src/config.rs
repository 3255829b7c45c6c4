//! `runcore serve` settings: each is a flag, else an environment variable, else a
//! default, parsed into one typed [`ServeConfig`] and validated before anything
//! starts. Tests build a `ServeConfig` directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::backend::mlflow::MlflowSettings;
use crate::backend::wandb::{WandbSettings, DEFAULT_BASE_URL as DEFAULT_WANDB_BASE_URL};
use crate::backend::BackendSettings;
pub use crate::run::files::FilesPolicy;
use crate::run::RunSettings;
pub use crate::wal::FsyncPolicy;

use crate::env::*;

/// Where the sidecar listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix://") {
            if path.is_empty() {
                return Err("unix:// needs a socket path, e.g. unix:///tmp/runcore.sock".into());
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        let hostport = s.strip_prefix("tcp://").unwrap_or(s);
        let hostport = hostport.replace("localhost:", "127.0.0.1:");
        hostport
            .parse::<SocketAddr>()
            .map(ListenAddr::Tcp)
            .map_err(|_| {
                format!("{s:?} is not tcp://IP:PORT (port 0 picks a free one) or unix:///PATH")
            })
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "tcp://{a}"),
            ListenAddr::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

// Every default, once: clap's flags and ServeConfig::new read these.
pub const DEFAULT_LOG_FORMAT: LogFormat = LogFormat::Text;
pub const DEFAULT_FSYNC: FsyncPolicy = FsyncPolicy::Batch;
pub const DEFAULT_SHUTDOWN_GRACE: f64 = 30.0;
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// The smallest `--memory-budget`: room for a few runs and one message.
pub const MIN_MEMORY_BUDGET: usize = 1024 * 1024;
pub const DEFAULT_FLUSH_INTERVAL: f64 = 1.0;
pub const DEFAULT_CLIENT_TIMEOUT: f64 = 60.0;
pub const DEFAULT_HEARTBEAT_INTERVAL: f64 = 30.0;
pub const DEFAULT_FINISH_TIMEOUT: f64 = 60.0;
pub const DEFAULT_MAX_FILE_BYTES: u64 = 10 * 1024 * 1024 * 1024;
pub const DEFAULT_MAX_RUNS_PER_CLIENT: usize = 64;
pub const DEFAULT_IDLE_TIMEOUT: f64 = 300.0;

/// Where runs go besides the local store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// The local store only.
    Local,
    /// An MLflow tracking server (MLFLOW_TRACKING_URI).
    Mlflow,
    /// W&B cloud or W&B Server (WANDB_BASE_URL, WANDB_API_KEY).
    Wandb,
}

/// How to reach a remote backend: flags and the backend's own environment
/// variables. Shared by `serve`, `sync` and `reap`.
#[derive(Debug, Clone, Args)]
pub struct BackendArgs {
    /// Remote backend each run is forwarded to (the local store is always written).
    #[arg(long, env = ENV_BACKEND, value_enum, default_value = "local")]
    pub backend: BackendKind,
    /// MLflow tracking server URL; MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME
    /// and MLFLOW_TRACKING_PASSWORD, authenticate (read from the environment only).
    #[arg(long, env = ENV_MLFLOW_URI)]
    pub mlflow_tracking_uri: Option<String>,
    /// W&B server URL; WANDB_API_KEY authenticates (read from the environment only).
    #[arg(long, env = ENV_WANDB_BASE_URL, default_value = DEFAULT_WANDB_BASE_URL)]
    pub wandb_base_url: String,
}

impl BackendArgs {
    pub fn settings(&self) -> Result<BackendSettings, ConfigError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        match self.backend {
            BackendKind::Local => Ok(BackendSettings::Local),
            BackendKind::Mlflow => {
                let uri = self
                    .mlflow_tracking_uri
                    .clone()
                    .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
                    .ok_or(ConfigError::MlflowUri)?;
                Ok(BackendSettings::Mlflow(MlflowSettings {
                    uri,
                    token: env(ENV_MLFLOW_TOKEN),
                    username: env(ENV_MLFLOW_USERNAME),
                    password: env(ENV_MLFLOW_PASSWORD),
                }))
            }
            BackendKind::Wandb => {
                let base_url = self.wandb_base_url.trim_end_matches('/').to_owned();
                let url_ok = reqwest::Url::parse(&base_url)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base());
                if !url_ok {
                    return Err(ConfigError::WandbBaseUrl(base_url));
                }
                Ok(BackendSettings::Wandb(WandbSettings {
                    base_url,
                    api_key: env(ENV_WANDB_API_KEY).ok_or(ConfigError::WandbApiKey)?,
                }))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `runcore serve` flags.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on: tcp://HOST:PORT (port 0 picks one) or unix:///PATH.
    /// Only loopback TCP addresses are accepted.
    #[arg(long, env = ENV_LISTEN, default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// Write the bound address (tcp://IP:PORT or unix:///PATH) to this file once
    /// listening, for programs that spawn the sidecar.
    #[arg(long, env = ENV_PORT_FILE)]
    pub port_file: Option<PathBuf>,
    /// Directory of the local store: <data-dir>/<project>/<run_id>/.
    #[arg(long, env = ENV_DATA_DIR, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Log line format on stderr.
    #[arg(long, env = ENV_LOG_FORMAT, value_enum, default_value_t = DEFAULT_LOG_FORMAT)]
    pub log_format: LogFormat,
    /// When to fsync each run's transaction log.
    #[arg(long, env = ENV_FSYNC, value_enum, default_value_t = DEFAULT_FSYNC)]
    pub fsync: FsyncPolicy,
    /// Seconds SIGINT/SIGTERM may take: streams are ended, every run is flushed and
    /// synced; past this the sidecar exits anyway (the logs hold every
    /// acknowledged record).
    #[arg(long, env = ENV_SHUTDOWN_GRACE, default_value_t = DEFAULT_SHUTDOWN_GRACE)]
    pub shutdown_grace: f64,
    /// Largest request message accepted, in bytes; larger ones get RESOURCE_EXHAUSTED.
    #[arg(long, env = ENV_MAX_MESSAGE_BYTES, default_value_t = DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,
    /// Bytes of run state (config, summaries, rows not yet committed, open runs)
    /// and of requests in flight the sidecar may hold; a request past it gets
    /// RESOURCE_EXHAUSTED (Finish and reads never do). Half the memory limit of
    /// the sidecar's container is a safe value.
    #[arg(long, env = ENV_MEMORY_BUDGET, default_value_t = crate::memory::DEFAULT_BUDGET_BYTES)]
    pub memory_budget: usize,
    /// Seconds a run's written store lines (and, with --fsync batch, its log) wait
    /// at most for a flush (and sync); also how often `live` saved files are checked
    /// for changes.
    #[arg(long, env = ENV_FLUSH_INTERVAL, default_value_t = DEFAULT_FLUSH_INTERVAL)]
    pub flush_interval: f64,
    /// Seconds without a sign of life from a run's client (any RPC, or Heartbeat)
    /// after which the run is crashed; a run's Init may set its own.
    #[arg(long, env = ENV_CLIENT_TIMEOUT, default_value_t = DEFAULT_CLIENT_TIMEOUT)]
    pub client_timeout: f64,
    /// Seconds between the heartbeats the sidecar records for a live run
    /// (last_heartbeat in run.json, and to remote backends).
    #[arg(long, env = ENV_HEARTBEAT_INTERVAL, default_value_t = DEFAULT_HEARTBEAT_INTERVAL)]
    pub heartbeat_interval: f64,
    /// Exit when this process exits, marking open runs crashed (for SDKs that spawn
    /// a private sidecar).
    #[arg(long, env = ENV_PARENT_PID)]
    pub parent_pid: Option<u32>,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Seconds Finish waits for the remote backend to receive the run; what is still
    /// pending then is delivered in the background (and after a restart).
    #[arg(long, env = ENV_FINISH_TIMEOUT, default_value_t = DEFAULT_FINISH_TIMEOUT)]
    pub finish_timeout: f64,
    /// Clients must send `authorization: Bearer <token>` (health checks are exempt).
    /// Required to listen on a TCP address other than loopback. Prefer the env var:
    /// a flag shows in the process list.
    #[arg(long, env = ENV_AUTH_TOKEN, hide_env_values = true)]
    pub auth_token: Option<String>,
    /// PEM certificate (chain) for TLS on a TCP listener; needs --tls-key.
    #[arg(long, env = ENV_TLS_CERT, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = ENV_TLS_KEY, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Group (name or gid) that may connect to a unix socket: the socket becomes
    /// mode 0660 with that group instead of 0600.
    #[arg(long, env = ENV_SOCKET_GROUP)]
    pub socket_group: Option<String>,
    /// Over TCP, SaveFiles and media may read only files under these directories
    /// (repeatable; default: the sidecar's working directory). Over a unix socket any
    /// regular file the sidecar can read may be saved.
    #[arg(long, env = ENV_FILES_ROOT, value_delimiter = ':')]
    pub files_root: Vec<PathBuf>,
    /// Largest file SaveFiles or a media value may copy, in bytes.
    #[arg(long, env = ENV_MAX_FILE_BYTES, default_value_t = DEFAULT_MAX_FILE_BYTES)]
    pub max_file_bytes: u64,
    /// Most runs one client process (its pid and host in Init) may have open at once.
    #[arg(long, env = ENV_MAX_RUNS_PER_CLIENT, default_value_t = DEFAULT_MAX_RUNS_PER_CLIENT)]
    pub max_runs_per_client: usize,
    /// Also speak the W&B service protocol here, so that the unchanged `wandb` SDK
    /// logs into runcore: unix:///PATH or tcp://127.0.0.1:PORT (loopback only; the
    /// protocol has no authentication). Off by default. Point the SDK at it with
    /// WANDB_SERVICE (`runcore wandb-env`).
    #[arg(long, env = ENV_WANDB_LISTEN)]
    pub wandb_listen: Option<String>,
    /// Write the W&B listener's bound address to this file once listening.
    #[arg(long, env = ENV_WANDB_PORT_FILE, requires = "wandb_listen")]
    pub wandb_port_file: Option<PathBuf>,
    /// Also serve the web UI (as `runcore ui` does) on http://IP:PORT, showing
    /// this sidecar's data dir, live runs included. Off loopback it needs
    /// --auth-token, which the UI then asks for too.
    #[arg(long, env = ENV_UI_LISTEN)]
    pub ui_listen: Option<String>,
    /// Seconds a connection may send nothing before it is closed. The sidecar
    /// pings clients (HTTP/2 keepalive) every third of this, so a live client's
    /// idle connection stays open; a dead or silent one is let go.
    #[arg(long, env = ENV_IDLE_TIMEOUT, default_value_t = DEFAULT_IDLE_TIMEOUT)]
    pub idle_timeout: f64,
    /// Share the data dir with other sidecars started with this flag (each run is
    /// open in one of them at a time). Without it the data dir is locked to this
    /// sidecar, and a second one exits naming the first.
    #[arg(long, env = ENV_SHARED_DATA_DIR)]
    pub shared_data_dir: bool,
    /// Build the web UI's chart index of each run that ends here, in the
    /// background at the lowest CPU priority, so that `runcore ui` opens it at
    /// full resolution at once. `false`: the UI indexes a run when first opened.
    #[arg(long, env = ENV_INDEX_FINISHED_RUNS, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub index_finished_runs: bool,
}

/// Validated settings of a sidecar.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: ListenAddr,
    pub port_file: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    pub fsync: FsyncPolicy,
    /// How long shutdown waits for open streams before it stops them.
    pub shutdown_grace: Duration,
    pub max_message_bytes: usize,
    /// The memory budget's limit, bytes (`crate::memory`).
    pub memory_budget: usize,
    /// How often each run flushes its store files, (with `--fsync batch`) syncs its
    /// log and checks its `live` files; the local store lags the log by at most
    /// this much, and a changed live file is copied once it has been unchanged for
    /// one interval.
    pub flush_interval: Duration,
    /// Default client timeout of a run (Init may override it).
    pub client_timeout: Duration,
    /// How often a live run's heartbeat is recorded.
    pub heartbeat_interval: Duration,
    /// The process whose exit ends the sidecar.
    pub parent_pid: Option<u32>,
    /// The remote backend runs are forwarded to.
    pub backend: BackendSettings,
    /// How long Finish waits for the remote backend.
    pub finish_timeout: Duration,
    /// The bearer token clients must present; None: no authentication.
    pub auth_token: Option<Secret>,
    /// TLS certificate and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Group allowed to connect to a unix socket.
    pub socket_group: Option<String>,
    /// Which files SaveFiles and media may read.
    pub files: FilesPolicy,
    /// Most open runs per client process.
    pub max_runs_per_client: usize,
    /// Where the W&B service protocol is served (the unchanged `wandb` SDK); None: off.
    pub wandb_listen: Option<ListenAddr>,
    /// Written with the W&B listener's bound address.
    pub wandb_port_file: Option<PathBuf>,
    /// Where the web UI is served too, if anywhere.
    pub ui_listen: Option<SocketAddr>,
    /// How long a connection may stay silent (keepalive pings every third).
    pub idle_timeout: Duration,
    /// Whether other sidecars may share the data dir.
    pub shared_data_dir: bool,
    /// Whether the sidecar indexes each run that ends for the web UI.
    pub index_finished_runs: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--listen: {0}")]
    Listen(String),
    #[error("--listen {0} is reachable from other machines: set --auth-token (or {ENV_AUTH_TOKEN}) so that only clients with the token get in, or listen on 127.0.0.1 or a unix socket")]
    NotLoopback(SocketAddr),
    #[error("--auth-token must be at least {MIN_TOKEN} characters (e.g. `openssl rand -hex 32`)")]
    ShortToken,
    #[error("--tls-cert/--tls-key apply to a TCP listener, not a unix socket")]
    TlsOnUnix,
    #[error("--files-root {path}: {source}")]
    FilesRoot {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--shutdown-grace must be seconds in 0..={max}, got {0}", max = crate::limits::MAX_SECONDS)]
    Grace(f64),
    #[error("--max-message-bytes must be at least 1024, got {0}")]
    MessageSize(usize),
    #[error("--memory-budget must be at least {MIN_MEMORY_BUDGET} bytes, got {0}")]
    MemoryBudget(usize),
    #[error("--flush-interval must be seconds between 0.01 and 60, got {0}")]
    FlushInterval(f64),
    #[error("--{0} must be seconds > 0 and at most {max}, got {1}", max = crate::limits::MAX_SECONDS)]
    Seconds(&'static str, f64),
    #[error("--parent-pid {0}: no such process")]
    ParentPid(u32),
    #[error(
        "--backend mlflow needs --mlflow-tracking-uri or MLFLOW_TRACKING_URI (http:// or https://)"
    )]
    MlflowUri,
    #[error("--wandb-base-url / WANDB_BASE_URL must be an http:// or https:// URL, got {0:?}")]
    WandbBaseUrl(String),
    #[error("--wandb-listen: {0}")]
    WandbListen(String),
    #[error("--wandb-listen {0} is reachable from other machines, and the W&B service protocol has no authentication: listen on 127.0.0.1 or a unix socket")]
    WandbNotLoopback(SocketAddr),
    #[error("--backend wandb needs WANDB_API_KEY in the environment (your key from the W&B settings page)")]
    WandbApiKey,
    #[error(transparent)]
    Ui(#[from] crate::ui::config::UiConfigError),
}

/// The directories SaveFiles may read over TCP (None: any, over a unix socket).
fn files_roots(
    listen: &ListenAddr,
    given: Vec<PathBuf>,
) -> Result<Option<Vec<PathBuf>>, ConfigError> {
    if let ListenAddr::Unix(_) = listen {
        return Ok(None);
    }
    let given = if given.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        given
    };
    let mut roots = Vec::new();
    for path in given {
        let real = path
            .canonicalize()
            .map_err(|source| ConfigError::FilesRoot { path, source })?;
        roots.push(real);
    }
    Ok(Some(roots))
}

impl ServeArgs {
    pub fn into_config(self) -> Result<ServeConfig, ConfigError> {
        let listen: ListenAddr = self.listen.parse().map_err(ConfigError::Listen)?;
        let auth_token = Secret::token(self.auth_token).map_err(|_| ConfigError::ShortToken)?;
        if let ListenAddr::Tcp(addr) = listen {
            if !addr.ip().is_loopback() && auth_token.is_none() {
                return Err(ConfigError::NotLoopback(addr));
            }
        }
        let ui_listen = self
            .ui_listen
            .as_deref()
            .map(|a| crate::ui::config::parse_listen("--ui-listen", a, auth_token.as_ref()))
            .transpose()?;
        let tls = self.tls_cert.zip(self.tls_key);
        if tls.is_some() && matches!(listen, ListenAddr::Unix(_)) {
            return Err(ConfigError::TlsOnUnix);
        }
        let roots = files_roots(&listen, self.files_root)?;
        let grace = Duration::try_from_secs_f64(self.shutdown_grace)
            .ok()
            .filter(|_| self.shutdown_grace <= crate::limits::MAX_SECONDS)
            .ok_or(ConfigError::Grace(self.shutdown_grace))?;
        if self.max_message_bytes < 1024 {
            return Err(ConfigError::MessageSize(self.max_message_bytes));
        }
        if self.memory_budget < MIN_MEMORY_BUDGET {
            return Err(ConfigError::MemoryBudget(self.memory_budget));
        }
        if !(0.01..=60.0).contains(&self.flush_interval) {
            return Err(ConfigError::FlushInterval(self.flush_interval));
        }
        let secs = |name: &'static str, v: f64| {
            Duration::try_from_secs_f64(v)
                .ok()
                .filter(|d| !d.is_zero() && v <= crate::limits::MAX_SECONDS)
                .ok_or(ConfigError::Seconds(name, v))
        };
        let client_timeout = secs("client-timeout", self.client_timeout)?;
        let heartbeat_interval = secs("heartbeat-interval", self.heartbeat_interval)?;
        let finish_timeout = secs("finish-timeout", self.finish_timeout)?;
        let idle_timeout = secs("idle-timeout", self.idle_timeout)?;
        let wandb_listen = wandb_listen(self.wandb_listen.as_deref())?;
        let gone = |&pid: &u32| crate::liveness::Process::find(pid).is_none();
        if let Some(pid) = self.parent_pid.filter(gone) {
            return Err(ConfigError::ParentPid(pid));
        }
        Ok(ServeConfig {
            listen,
            port_file: self.port_file,
            data_dir: self.data_dir,
            log_format: self.log_format,
            fsync: self.fsync,
            shutdown_grace: grace,
            max_message_bytes: self.max_message_bytes,
            memory_budget: self.memory_budget,
            flush_interval: crate::liveness::seconds(self.flush_interval),
            client_timeout,
            heartbeat_interval,
            parent_pid: self.parent_pid,
            backend: self.backend.settings()?,
            finish_timeout,
            auth_token,
            tls,
            socket_group: self.socket_group,
            files: FilesPolicy {
                roots,
                max_bytes: self.max_file_bytes,
            },
            max_runs_per_client: self.max_runs_per_client.max(1),
            wandb_listen,
            wandb_port_file: self.wandb_port_file,
            ui_listen,
            idle_timeout,
            shared_data_dir: self.shared_data_dir,
            index_finished_runs: self.index_finished_runs,
        })
    }
}

/// The W&B listener's address: loopback TCP or a unix socket (the W&B service
/// protocol has no authentication).
fn wandb_listen(text: Option<&str>) -> Result<Option<ListenAddr>, ConfigError> {
    let Some(text) = text.filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let addr: ListenAddr = text.parse().map_err(ConfigError::WandbListen)?;
    if let ListenAddr::Tcp(t) = addr {
        if !t.ip().is_loopback() {
            return Err(ConfigError::WandbNotLoopback(t));
        }
    }
    Ok(Some(addr))
}

impl ServeConfig {
    /// What each run's actor needs of these settings; `ended` is told each run
    /// that ends (`RunSettings::ended`).
    pub fn run_settings(&self, ended: Option<tokio::sync::mpsc::Sender<PathBuf>>) -> RunSettings {
        RunSettings {
            flush_interval: self.flush_interval,
            heartbeat_interval: self.heartbeat_interval,
            fsync: self.fsync,
            files: self.files.clone(),
            finish_timeout: self.finish_timeout,
            budget: crate::memory::Budget::new(self.memory_budget),
            ended,
        }
    }

    /// Defaults, with the given data dir (for tests and embedding).
    pub fn new(data_dir: PathBuf) -> Self {
        ServeConfig {
            listen: ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))),
            port_file: None,
            data_dir,
            log_format: DEFAULT_LOG_FORMAT,
            fsync: DEFAULT_FSYNC,
            shutdown_grace: Duration::from_secs_f64(DEFAULT_SHUTDOWN_GRACE),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            memory_budget: crate::memory::DEFAULT_BUDGET_BYTES,
            flush_interval: Duration::from_secs_f64(DEFAULT_FLUSH_INTERVAL),
            client_timeout: Duration::from_secs_f64(DEFAULT_CLIENT_TIMEOUT),
            heartbeat_interval: Duration::from_secs_f64(DEFAULT_HEARTBEAT_INTERVAL),
            parent_pid: None,
            backend: BackendSettings::Local,
            finish_timeout: Duration::from_secs_f64(DEFAULT_FINISH_TIMEOUT),
            auth_token: None,
            tls: None,
            socket_group: None,
            files: FilesPolicy {
                roots: None,
                max_bytes: DEFAULT_MAX_FILE_BYTES,
            },
            max_runs_per_client: DEFAULT_MAX_RUNS_PER_CLIENT,
            wandb_listen: None,
            wandb_port_file: None,
            ui_listen: None,
            idle_timeout: Duration::from_secs_f64(DEFAULT_IDLE_TIMEOUT),
            shared_data_dir: false,
            index_finished_runs: true,
        }
    }
}

#[cfg(test)]
mod tests;

//! The command line: `runcore serve`, and `runcore runs ls|show`, which read the
//! local store directly (no sidecar needed).

use std::io::{self, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod exec;
mod reap;
mod runs;
mod sync;

pub use self::exec::{exec, wandb_env, ExecArgs};
pub use self::reap::reap;
pub use self::runs::{runs_ls, runs_show, runs_stop};
pub use self::sync::sync;

use crate::config::{BackendArgs, ConfigError, ListenAddr, ServeArgs};
use crate::env::{DEFAULT_DATA_DIR, DEFAULT_LISTEN, ENV_DATA_DIR, ENV_WANDB_LISTEN};

use crate::store::StoreError;

/// The address of a running sidecar, for clients and `runcore runs stop`.
pub const ENV_ADDRESS: &str = "RUNCORE_ADDRESS";

#[derive(Debug, Parser)]
#[command(
    name = "runcore",
    version,
    about = "gRPC sidecar for ML experiment tracking (W&B Run semantics, local store by default)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sidecar: serve runcore.v1.RunService until SIGINT/SIGTERM.
    Serve(Box<ServeArgs>),
    /// Ask a sidecar whether it is serving (grpc.health.v1): exit 0 when SERVING, 1
    /// otherwise. For container health checks and Kubernetes exec probes.
    Health {
        /// The sidecar: tcp://HOST:PORT or unix:///PATH.
        #[arg(long, env = ENV_ADDRESS, default_value = DEFAULT_LISTEN)]
        address: String,
        /// The service to ask about; empty for the server as a whole.
        #[arg(long, default_value = "runcore.v1.RunService")]
        service: String,
    },
    /// Print the WANDB_SERVICE value that points the unchanged wandb SDK at a
    /// sidecar's W&B listener: `export WANDB_SERVICE=$(runcore wandb-env ...)`.
    WandbEnv {
        /// The sidecar's W&B listener (its --wandb-listen): unix:///PATH or
        /// tcp://127.0.0.1:PORT.
        #[arg(long, env = ENV_WANDB_LISTEN)]
        wandb_listen: Option<String>,
        /// Or read the address from the sidecar's --wandb-port-file.
        #[arg(long)]
        port_file: Option<PathBuf>,
        /// Print `export WANDB_SERVICE='...'` (for eval) instead of the bare value.
        #[arg(long)]
        export: bool,
    },
    /// Run a command (a wandb or runcore script) with WANDB_SERVICE and
    /// RUNCORE_ADDRESS pointing at a sidecar, and exit with its exit code. Uses the
    /// sidecar at --address/--wandb-listen if both answer, else starts a private
    /// one for the command (stopped after it). Sets WANDB_MODE=offline unless set.
    Exec {
        /// An existing sidecar's gRPC address.
        #[arg(long, env = ENV_ADDRESS)]
        address: Option<String>,
        /// That sidecar's W&B listener.
        #[arg(long, env = ENV_WANDB_LISTEN)]
        wandb_listen: Option<String>,
        /// Data dir of a sidecar started for the command.
        #[arg(long, env = ENV_DATA_DIR, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// The command and its arguments (after `--`).
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Serve the web UI over the local store: projects, runs tables, charts,
    /// compare, live updates. It changes no store file (it writes only its chart
    /// index, <run>/.ui-index/); stops on SIGINT/SIGTERM.
    Ui(Box<crate::ui::UiArgs>),
    /// Inspect runs in the local store.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Deliver runs' transaction logs to a remote backend: runs written offline, or
    /// what a stopped sidecar left undelivered. Resumable and idempotent: each run's
    /// cursor says what the backend already has.
    Sync {
        /// Run directories (<data-dir>/<project>/<run_id>).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        #[command(flatten)]
        backend: BackendArgs,
        /// Give up when the backend has taken nothing for this long (it is down or
        /// unreachable): 90s, 5m, 2h or seconds. What was delivered is kept; run
        /// sync again later to go on.
        #[arg(long, default_value = "2m")]
        give_up_after: String,
    },
    /// Mark MLflow runs that runcore created, that are still RUNNING, and whose
    /// runcore.heartbeat tag is older than --stale, as FAILED with runcore.state=crashed.
    Reap {
        #[command(flatten)]
        backend: BackendArgs,
        /// Age of the last heartbeat after which a run is reaped: 90s, 5m, 2h or seconds.
        #[arg(long, default_value = "5m")]
        stale: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs: id, name, project, state, steps, start time, duration.
    Ls {
        /// Only this project's runs.
        #[arg(long)]
        project: Option<String>,
        /// Directory of the local store.
        #[arg(long, env = ENV_DATA_DIR, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Show one run: identity, state, config, summary and files.
    Show {
        /// The run id.
        id: String,
        /// Directory of the local store.
        #[arg(long, env = ENV_DATA_DIR, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Ask a run's client to stop: its next Heartbeat reply says should_stop.
    Stop {
        /// The run id.
        id: String,
        /// The sidecar holding the run: tcp://HOST:PORT or unix:///PATH.
        #[arg(long, env = ENV_ADDRESS, default_value = DEFAULT_LISTEN)]
        address: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("no run {id:?} in {data_dir}")]
    NoRun { id: String, data_dir: PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("--address: {0}")]
    Address(String),
    #[error(transparent)]
    Connect(#[from] crate::client::ConnectError),
    #[error("{}", .0.message())]
    Rpc(#[from] tonic::Status),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("{dir}: {why}")]
    Sync { dir: PathBuf, why: String },
    #[error(transparent)]
    Backend(#[from] crate::backend::retry::BackendError),
}

/// Parses `90s`, `5m`, `2h`, `1d` or plain seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, CliError> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| CliError::Usage(format!("{text:?} is not a duration like 90s, 5m, 2h")))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => {
            return Err(CliError::Usage(format!(
                "{text:?}: unit must be s, m, h or d"
            )))
        }
    };
    let max = crate::limits::MAX_SECONDS;
    if !(secs.is_finite() && secs >= 0.0 && secs <= max) {
        return Err(CliError::Usage(format!(
            "{text:?} is not a duration in 0..={max} seconds"
        )));
    }
    Ok(crate::liveness::seconds(secs))
}

/// `runcore health`: true when the sidecar answers SERVING.
pub async fn health(address: &str, service: &str, out: &mut impl Write) -> Result<bool, CliError> {
    use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient};
    let addr: ListenAddr = address.parse().map_err(CliError::Address)?;
    let channel = crate::client::connect(&addr).await?;
    let reply = HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?
        .into_inner();
    let status = ServingStatus::try_from(reply.status).unwrap_or(ServingStatus::Unknown);
    writeln!(out, "{}", status.as_str_name())?;
    Ok(status == ServingStatus::Serving)
}

/// `1h02m03s`, `2m03s`, `4.5s`.
pub fn format_duration(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let s = secs as u64;
    if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m{:02}s", s / 3600, s % 3600 / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_are_refused() {
        assert!(parse_duration("1e300s").is_err());
        assert!(parse_duration("inf").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("5m").unwrap().as_secs(), 300);
        assert_eq!(parse_duration("2h").unwrap().as_secs(), 7200);
        assert_eq!(parse_duration("12").unwrap().as_secs(), 12);
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1m").is_err());
    }

    #[test]
    fn durations_format() {
        assert_eq!(format_duration(4.54), "4.5s");
        assert_eq!(format_duration(123.0), "2m03s");
        assert_eq!(format_duration(3723.0), "1h02m03s");
    }
}

//! The command line: `runcore serve`, and `runcore runs ls|show`, which read the
//! local store directly (no sidecar needed).

use std::io::{self, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod reap;
mod runs;
mod sync;

pub use self::reap::reap;
pub use self::runs::{runs_ls, runs_show, runs_stop};
pub use self::sync::sync;

use crate::config::{
    BackendArgs, ConfigError, ListenAddr, ServeArgs, DEFAULT_DATA_DIR, DEFAULT_LISTEN, ENV_DATA_DIR,
};

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
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(CliError::Usage(format!("{text:?} is not a duration >= 0")));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
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

/// `runcore runs stop ID`.
/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn format_time(unix: f64) -> String {
    let secs = unix.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
    fn durations_parse() {
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("5m").unwrap().as_secs(), 300);
        assert_eq!(parse_duration("2h").unwrap().as_secs(), 7200);
        assert_eq!(parse_duration("12").unwrap().as_secs(), 12);
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1m").is_err());
    }

    #[test]
    fn times_format_in_utc() {
        assert_eq!(format_time(0.0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_795_000_000.0), "2026-11-18 11:06:40");
        assert_eq!(format_time(951_782_400.0), "2000-02-29 00:00:00");
        assert_eq!(format_duration(4.54), "4.5s");
        assert_eq!(format_duration(123.0), "2m03s");
        assert_eq!(format_duration(3723.0), "1h02m03s");
    }
}

//! The command line: `runcore serve`, and `runcore runs ls|show`, which read the
//! local store directly (no sidecar needed).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::backend::forward::{ForwardStatus, Forwarder, Stopped};
use crate::backend::BackendSettings;
use crate::config::{
    BackendArgs, ConfigError, ListenAddr, ServeArgs, DEFAULT_DATA_DIR, DEFAULT_LISTEN, ENV_DATA_DIR,
};

/// The address of a running sidecar, for clients and `runcore runs stop`.
pub const ENV_ADDRESS: &str = "RUNCORE_ADDRESS";
use crate::proto::v1::Value;
use crate::store::{self, RunFile, StoreError};
use crate::value;

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

fn progress_line(name: &str, s: &ForwardStatus) -> String {
    let total = s.total_records.max(s.delivered_records);
    let width = 30;
    let filled = if total == 0 {
        width
    } else {
        (s.delivered_records as usize * width / total as usize).min(width)
    };
    format!(
        "{name} [{}{}] {}/{} records",
        "#".repeat(filled),
        ".".repeat(width - filled),
        s.delivered_records,
        total
    )
}

/// `runcore sync DIR...`.
pub async fn sync(
    dirs: &[PathBuf],
    backend: &BackendArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    use std::io::IsTerminal;
    let settings = backend.settings()?;
    if matches!(settings, BackendSettings::Local) {
        return Err(CliError::Usage(
            "runcore sync needs a remote backend: --backend mlflow or --backend wandb (the local store is already written)".into(),
        ));
    }
    let tty = io::stderr().is_terminal();
    for dir in dirs {
        let fail = |why: String| CliError::Sync {
            dir: dir.clone(),
            why,
        };
        if !dir.join(store::WAL).is_file() {
            return Err(fail("not a run directory (no run.wal)".into()));
        }
        // A sidecar that has the run open forwards it itself.
        if crate::wal::is_locked(&dir.join(store::WAL)) {
            return Err(fail(
                "a running sidecar has this run open and forwards it itself".into(),
            ));
        }
        let backend = settings
            .make()
            .ok_or_else(|| fail("no remote backend".into()))?;
        let name = dir.display().to_string();
        let (forwarder, mut status) = Forwarder::for_sync(dir, backend);
        let mut shutdown = crate::shutdown::Shutdown::new();
        let work = tokio::spawn(forwarder.forward(shutdown.token()));
        let printer = {
            let name = name.clone();
            let mut status = status.clone();
            tokio::spawn(async move {
                while status.changed().await.is_ok() {
                    if tty {
                        eprint!("\r{}", progress_line(&name, &status.borrow()));
                    }
                }
            })
        };
        let result = tokio::select! {
            r = work => r.map_err(|e| fail(e.to_string()))?,
            _ = tokio::signal::ctrl_c() => {
                shutdown.signal();
                Stopped::Shutdown
            }
        };
        printer.abort();
        if tty {
            eprintln!();
        }
        let s = status.borrow_and_update().clone();
        match result {
            Stopped::Done => writeln!(
                out,
                "{}: synced, {} records delivered",
                name, s.delivered_records
            )?,
            Stopped::Shutdown => {
                writeln!(
                    out,
                    "{}: interrupted after {} records; run sync again to go on",
                    name, s.delivered_records
                )?;
                return Ok(());
            }
            Stopped::Unauthorized(e) | Stopped::Failed(e) => return Err(fail(e)),
            Stopped::Busy => return Err(fail("another process is delivering this run".into())),
        }
        if !s.last_error.is_empty() {
            writeln!(
                out,
                "{name}: the backend refused part of it: {}",
                s.last_error
            )?;
        }
    }
    Ok(())
}

/// `runcore reap`.
pub async fn reap(
    backend: &BackendArgs,
    stale: &str,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let stale = parse_duration(stale)?;
    let BackendSettings::Mlflow(settings) = backend.settings()? else {
        return Err(CliError::Usage(
            "runcore reap works on --backend mlflow".into(),
        ));
    };
    let marked = crate::backend::mlflow::reap(settings, stale).await?;
    for id in &marked {
        writeln!(out, "marked MLflow run {id} FAILED (runcore.state=crashed)")?;
    }
    writeln!(out, "{} stale run(s) reaped", marked.len())?;
    Ok(())
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
pub async fn runs_stop(address: &str, id: &str, out: &mut impl Write) -> Result<(), CliError> {
    let addr: ListenAddr = address.parse().map_err(CliError::Address)?;
    let channel = crate::client::connect(&addr).await?;
    let mut client = crate::proto::v1::run_service_client::RunServiceClient::new(channel);
    let reply = client
        .stop_run(crate::proto::v1::StopRunRequest {
            run_id: id.to_owned(),
        })
        .await?
        .into_inner();
    let path = reply.run.map(|r| r.path).unwrap_or_else(|| id.to_owned());
    writeln!(
        out,
        "asked run {path} to stop; its client sees should_stop on its next heartbeat"
    )?;
    Ok(())
}

/// `runcore runs ls`.
pub fn runs_ls(
    data_dir: &Path,
    project: Option<&str>,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let now = crate::run::now();
    let mut runs: Vec<RunFile> = store::all_runs(data_dir)
        .iter()
        .filter_map(|dir| store::read_run_file(dir).ok())
        .filter(|r| project.is_none_or(|p| r.project == p))
        .collect();
    runs.sort_by(|a, b| b.start_time.total_cmp(&a.start_time));
    writeln!(
        out,
        "{:<10} {:<24} {:<16} {:<10} {:>8} {:<20} {:>10}",
        "ID", "NAME", "PROJECT", "STATE", "STEPS", "STARTED", "DURATION"
    )?;
    for r in &runs {
        let end = r.end_time.unwrap_or(now);
        writeln!(
            out,
            "{:<10} {:<24} {:<16} {:<10} {:>8} {:<20} {:>10}",
            r.id,
            r.name,
            r.project,
            r.shown_state(now),
            r.history_rows,
            format_time(r.start_time),
            format_duration(end - r.start_time)
        )?;
    }
    if runs.is_empty() {
        writeln!(out, "(no runs in {})", data_dir.display())?;
    }
    Ok(())
}

/// `runcore runs show ID`.
pub fn runs_show(data_dir: &Path, id: &str, out: &mut impl Write) -> Result<(), CliError> {
    let dir = store::find_run(data_dir, id).ok_or_else(|| CliError::NoRun {
        id: id.to_owned(),
        data_dir: data_dir.to_owned(),
    })?;
    let r = store::read_run_file(&dir)?;
    let path = crate::run::state::run_path(&r.entity, &r.project, &r.id);
    writeln!(out, "run       {path}")?;
    writeln!(out, "name      {}", r.name)?;
    for (label, v) in [
        ("group", &r.group),
        ("job_type", &r.job_type),
        ("notes", &r.notes),
    ] {
        if !v.is_empty() {
            writeln!(out, "{label:<9} {v}")?;
        }
    }
    if !r.tags.is_empty() {
        writeln!(out, "tags      {}", r.tags.join(", "))?;
    }
    let exit = r
        .exit_code
        .map(|c| format!(" (exit code {c})"))
        .unwrap_or_default();
    writeln!(out, "state     {}{exit}", r.state)?;
    writeln!(out, "started   {}", format_time(r.start_time))?;
    if let Some(end) = r.end_time {
        writeln!(
            out,
            "ended     {} ({})",
            format_time(end),
            format_duration(end - r.start_time)
        )?;
    }
    writeln!(
        out,
        "steps     {} rows, next step {}",
        r.history_rows, r.step
    )?;
    writeln!(out, "dir       {}", dir.display())?;
    for (title, file) in [
        ("config", store::CONFIG_JSON),
        ("summary", store::SUMMARY_JSON),
    ] {
        let map = store::read_json_map(&dir.join(file))?;
        writeln!(out, "{title}:")?;
        if map.is_empty() {
            writeln!(out, "  (empty)")?;
        }
        for (k, v) in &map {
            writeln!(out, "  {k}: {}", render(v))?;
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir.join("forward")) {
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            let Some(backend) = file.strip_suffix(".json") else {
                continue;
            };
            let backend: &'static str = match backend {
                "mlflow" => "mlflow",
                "wandb" => "wandb",
                _ => continue,
            };
            let s = crate::backend::forward::status_from_disk(&dir, backend);
            if s.pending_records == 0 {
                writeln!(out, "{backend:<9} delivered")?;
            } else {
                writeln!(
                    out,
                    "{backend:<9} {} records ({} bytes) not yet delivered",
                    s.pending_records, s.pending_bytes
                )?;
            }
        }
    }
    let files = store::list_files(&dir);
    writeln!(out, "files:")?;
    if files.is_empty() {
        writeln!(out, "  (none)")?;
    }
    for f in files {
        writeln!(out, "  {f}")?;
    }
    Ok(())
}

fn render(v: &Value) -> String {
    let mut s = String::new();
    value::write_json(&mut s, v);
    s
}

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

//! `runcore sync`: replays run logs to a remote backend, with progress.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use std::time::Duration;

use super::CliError;
use crate::backend::forward::{ForwardStatus, Forwarder, Stopped};
use crate::backend::BackendSettings;
use crate::config::BackendArgs;
use crate::store;

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

/// Resolves once delivery has made no progress for `limit` (the backend is
/// down or unreachable), with the last error the backend gave.
async fn stalled(
    mut status: tokio::sync::watch::Receiver<ForwardStatus>,
    limit: Duration,
) -> String {
    let mut delivered = status.borrow().delivered_records;
    let mut since = tokio::time::Instant::now();
    loop {
        let wake = tokio::time::sleep_until(since + limit);
        tokio::select! {
            changed = status.changed() => {
                if changed.is_err() {
                    std::future::pending::<()>().await;
                }
                let now = status.borrow().delivered_records;
                if now != delivered {
                    delivered = now;
                    since = tokio::time::Instant::now();
                }
            }
            _ = wake => {
                let e = status.borrow().last_error.clone();
                return if e.is_empty() { "no answer".into() } else { e };
            }
        }
    }
}

/// `runcore sync DIR...`.
pub async fn sync(
    dirs: &[PathBuf],
    backend: &BackendArgs,
    give_up: Duration,
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
        if !sync_one(dir, &settings, tty, give_up, out).await? {
            return Ok(());
        }
    }
    Ok(())
}

/// Whether `dir` is a run this command may sync.
fn check_dir(dir: &Path) -> Result<(), String> {
    if !dir.join(store::WAL).is_file() {
        return Err("not a run directory (no run.wal)".into());
    }
    // A sidecar that has the run open forwards it itself.
    if crate::wal::is_locked(&dir.join(store::WAL)) {
        return Err("a running sidecar has this run open and forwards it itself".into());
    }
    Ok(())
}

/// Syncs one run directory; false when interrupted (nothing more is synced).
async fn sync_one(
    dir: &Path,
    settings: &BackendSettings,
    tty: bool,
    give_up: Duration,
    out: &mut impl Write,
) -> Result<bool, CliError> {
    let fail = |why: String| CliError::Sync {
        dir: dir.to_owned(),
        why,
    };
    check_dir(dir).map_err(fail)?;
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
    let mut work = work;
    let result = tokio::select! {
        r = &mut work => r.map_err(|e| fail(e.to_string()))?,
        _ = tokio::signal::ctrl_c() => {
            shutdown.signal();
            Stopped::Shutdown
        }
        why = stalled(status.clone(), give_up) => {
            shutdown.signal();
            let _ = tokio::time::timeout(Duration::from_secs(5), work).await;
            let s = status.borrow().clone();
            return Err(fail(format!(
                "gave up after {:.0} s without progress: the backend did not take anything ({why}); {} records were delivered before, run sync again when the backend is reachable",
                give_up.as_secs_f64(),
                s.delivered_records
            )));
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
            return Ok(false);
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
    Ok(true)
}

//! `runcore runs ls|show|stop`: the local store read directly, and a stop
//! request to a running sidecar.

use std::io::Write;
use std::path::Path;

use super::{format_duration, CliError};
use crate::clock::format_time;
use crate::config::ListenAddr;
use crate::proto::v1::Value;
use crate::store::{self, RunFile};
use crate::value;

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
    let now = crate::clock::now();
    let mut unreadable = Vec::new();
    let mut runs: Vec<RunFile> = store::all_runs(data_dir)
        .iter()
        .filter_map(|dir| match store::read_run_file(dir) {
            Ok(r) => Some(r),
            Err(e) => {
                unreadable.push((dir.clone(), e));
                None
            }
        })
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
    if runs.is_empty() && unreadable.is_empty() {
        writeln!(out, "(no runs in {})", data_dir.display())?;
    }
    for (dir, e) in &unreadable {
        writeln!(
            out,
            "cannot read run dir {}: {e} (`runcore runs show` or GetRun replays its log)",
            dir.display()
        )?;
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
    let path = crate::semantics::state::run_path(&r.entity, &r.project, &r.id);
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
    // As `runs ls` shows it: a run left open by a dead sidecar is crashed.
    let now = crate::clock::now();
    let stale = if r.is_stale(now) {
        format!(
            " (recorded as {}, but its last heartbeat was at {}: its sidecar stopped without ending it)",
            r.state,
            format_time(r.last_heartbeat)
        )
    } else {
        String::new()
    };
    writeln!(out, "state     {}{exit}{stale}", r.shown_state(now))?;
    if let Some(why) = &r.end_reason {
        for (i, line) in why.lines().enumerate() {
            let label = if i == 0 { "why" } else { "" };
            writeln!(out, "{label:<9} {line}")?;
        }
    }
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
    let problems = crate::run::recovery::problems(&dir);
    if !problems.is_empty() {
        writeln!(out, "problems:")?;
        for p in problems {
            writeln!(out, "  {p}")?;
        }
    }
    show_maps(&dir, out)?;
    show_backends(&dir, out)?;
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

/// The run's config and summary.
fn show_maps(dir: &Path, out: &mut impl Write) -> Result<(), CliError> {
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
    Ok(())
}

/// Each remote backend's delivery, from its cursor.
fn show_backends(dir: &Path, out: &mut impl Write) -> Result<(), CliError> {
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
            let s = crate::backend::forward::status_from_disk(dir, backend);
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
    Ok(())
}

fn render(v: &Value) -> String {
    let mut s = String::new();
    value::write_json(&mut s, v);
    s
}

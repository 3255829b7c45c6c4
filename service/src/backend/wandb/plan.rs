//! What one batch of events asks of W&B, and the lines it becomes.

use std::collections::BTreeMap;

use crate::backend::{media_paths, uploads_on_save, Batch, Event};
use crate::proto::v1::{RunState, Value};
use crate::proto::wal::ArtifactRecord;
use crate::value::{self, write_json_str};

/// What one batch asks of W&B.
#[derive(Default)]
pub(super) struct Plan {
    pub(super) start: bool,
    /// The run was edited (UpdateRun): upsert its identity (and summary) again.
    pub(super) edit: bool,
    pub(super) config: Option<String>,
    pub(super) history: Vec<String>,
    pub(super) events: Vec<String>,
    pub(super) summary: Option<String>,
    /// (title, text, severity) of each alert runcore sent (not throttled).
    pub(super) alerts: Vec<(String, String, String)>,
    /// output.log lines: `<UTC time> <line>`, as W&B's console shows them.
    pub(super) output: Vec<String>,
    /// Saved files and media files to upload (unless unchanged), in order.
    pub(super) uploads: Vec<String>,
    /// What the run did with artifacts, in log order.
    pub(super) artifacts: Vec<ArtifactRecord>,
    pub(super) preempting: bool,
    /// The run ended in this batch.
    pub(super) ended: bool,
    /// `complete` with this exit code.
    pub(super) exit_code: Option<i32>,
}

/// The config in W&B's form: `{key: {"value": v}}`.
pub(super) fn wandb_config(config: &BTreeMap<String, Value>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in config.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(&mut out, k);
        out.push_str(":{\"value\":");
        value::write_json(&mut out, v);
        out.push('}');
    }
    out.push('}');
    out
}

/// A history line, as the local store writes it.
pub(super) fn history_line(
    values: &[(String, Value)],
    step: i64,
    runtime: f64,
    timestamp: f64,
) -> String {
    let mut line = String::new();
    value::write_history_line(
        &mut line,
        values.iter().map(|(k, v)| (k, v)),
        step,
        runtime,
        timestamp,
    );
    line
}

/// An events line: each metric as `system.<key>`, then `_wandb`, `_runtime`,
/// `_timestamp`.
pub(super) fn events_line(metrics: &[(String, f64)], runtime: f64, timestamp: f64) -> String {
    let mut line = String::new();
    let metrics = metrics.iter().map(|(k, v)| (k.as_str(), *v));
    value::write_events_line(&mut line, metrics, "\"_wandb\":true,", runtime, timestamp);
    line
}

/// W&B's alert severity for a runcore level.
pub(super) fn severity(level: &str) -> &'static str {
    match level {
        "WARN" => "WARN",
        "ERROR" => "ERROR",
        _ => "INFO",
    }
}

/// The exit code W&B is told for a run that ended this way; None for a run that
/// just stops beating (crashed, preempted), which W&B marks itself.
pub(super) fn exit_code_of(state: RunState, code: Option<i32>) -> Option<i32> {
    match state {
        RunState::Finished => Some(code.unwrap_or(0)),
        RunState::Failed => Some(code.unwrap_or(1)),
        RunState::Killed => Some(code.unwrap_or(255)),
        _ => None,
    }
}

impl Plan {
    pub(super) fn of(batch: &Batch<'_>) -> Plan {
        let mut p = Plan::default();
        let start_time = batch.run.start_time;
        for event in &batch.events {
            match event {
                Event::Start => {
                    p.start = true;
                    p.ended = false;
                    p.exit_code = None;
                }
                Event::Config(c) => p.config = Some(wandb_config(c)),
                Event::History {
                    step,
                    timestamp,
                    runtime,
                    values,
                } => {
                    // A media value's file goes up with the line that names it.
                    p.uploads.extend(media_paths(values));
                    p.history
                        .push(history_line(values, *step, *runtime, *timestamp))
                }
                Event::Artifact(a) => p.artifacts.push((**a).clone()),
                Event::System { timestamp, metrics } => p.events.push(events_line(
                    metrics,
                    (timestamp - start_time).max(0.0),
                    *timestamp,
                )),
                Event::Summary(s) => p.summary = Some(value::map_to_json(s).trim_end().to_owned()),
                Event::Alert {
                    title,
                    text,
                    level,
                    sent,
                    ..
                } => {
                    if *sent {
                        p.alerts
                            .push((title.clone(), text.clone(), severity(level).to_owned()));
                    }
                }
                Event::Files(files) => p.uploads.extend(uploads_on_save(files)),
                Event::Edit => p.edit = true,
                Event::Output { timestamp, lines } => {
                    let (date, time) = crate::clock::utc(*timestamp);
                    p.output
                        .extend(lines.iter().map(|l| format!("{date}T{time} {l}")));
                }
                Event::State {
                    state, exit_code, ..
                } => {
                    if *state == RunState::Preempting {
                        p.preempting = true;
                    }
                    if crate::semantics::state::is_terminal(*state) {
                        p.ended = true;
                        p.exit_code = exit_code_of(*state, *exit_code);
                        p.uploads.extend(batch.uploads_at_end());
                    }
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        p.uploads.retain(|n| seen.insert(n.clone()));
        p
    }
}

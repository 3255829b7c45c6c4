//! A run's state and the rules that change it, as a pure function of the run's
//! transaction-log records: `apply` is used both live (after each append) and to
//! replay a log, so a recovered run is exactly the run that was acknowledged.
//!
//! Log step/commit rules (W&B's `run.log`):
//! - no step: the data joins the pending row, which is committed at the current step
//!   unless `commit=false`; a commit advances the step;
//! - step > current: the pending row (if any) is committed first, then the step jumps
//!   and the data starts a new pending row; commit defaults to false;
//! - step == current: the data merges into the pending row;
//! - step < current: the row is dropped and reported back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use indexmap::IndexMap;

use super::metrics::Metrics;
use super::shared::OpenRows;
use super::summary::{LastRow, Summary};
use super::writers::{self, Writers};
use crate::limits::{MAX_KEYS_PER_RUN, MAX_STEP};
use crate::memory::{self, row_bytes};
use crate::proto::v1::SystemMetricsSettings;
use crate::proto::v1::{
    AlertRequest, AlertResponse, ClientInfo, DroppedRow, InitRequest, LogBatch, MetricDefinition,
    Row, RunInfo, RunState as State, Value,
};
use crate::proto::wal::{
    artifact_record, record::Kind, ArtifactRecord, Record, SavedFile, StateChange, SystemSample,
};
use crate::value;

mod edit;

/// Default alert throttle window, seconds (W&B's).
pub const DEFAULT_ALERT_WAIT: f64 = 60.0;

/// A committed history row, as handed to a [`Sink`].
pub struct CommittedRow<'a> {
    pub step: i64,
    pub runtime: f64,
    pub timestamp: f64,
    pub values: &'a IndexMap<Arc<str>, Value>,
}

/// An alert and what became of it.
pub struct AlertEvent<'a> {
    pub request: &'a AlertRequest,
    pub time: f64,
    pub runtime: f64,
    pub sent: bool,
    pub throttled_until: f64,
}

/// A system-metrics sample, as handed to a [`Sink`].
pub struct SystemEvent<'a> {
    pub time: f64,
    pub runtime: f64,
    pub sample: &'a SystemSample,
}

impl SystemEvent<'_> {
    /// The sample's metrics, keyed as its writer's label says (`cpu/l:rank-3`).
    pub fn metrics(&self) -> impl Iterator<Item = (std::borrow::Cow<'_, str>, f64)> {
        let label = self.sample.label.as_str();
        self.sample
            .keys
            .iter()
            .map(move |k| writers::labelled(k, label))
            .zip(self.sample.values.iter().copied())
    }
}

/// A writer joined the run, or ended while the run goes on.
pub struct WriterEvent<'a> {
    pub time: f64,
    pub runtime: f64,
    pub writer: &'a writers::Writer,
    /// true: it joined (or re-joined); false: it ended.
    pub joined: bool,
}

/// Lines the client's console printed, as handed to a [`Sink`].
pub struct OutputEvent<'a> {
    pub time: f64,
    pub runtime: f64,
    pub lines: &'a [String],
}

/// Where applied records' outputs go: the local store live and on recovery, a
/// collector for ScanHistory, the forwarder's events.
pub trait Sink {
    fn history(&mut self, row: &CommittedRow<'_>);
    fn alert(&mut self, _alert: &AlertEvent<'_>) {}
    fn system(&mut self, _sample: &SystemEvent<'_>) {}
    fn output(&mut self, _output: &OutputEvent<'_>) {}
    fn writer(&mut self, _event: &WriterEvent<'_>) {}
}

/// A sink that keeps nothing: for replays that want only the state.
pub struct NoSink;

impl Sink for NoSink {
    fn history(&mut self, _row: &CommittedRow<'_>) {}
}

/// What applying one record produced, for the reply to its request.
#[derive(Debug, Default)]
pub enum Outcome {
    #[default]
    Nothing,
    Log {
        dropped: Vec<DroppedRow>,
    },
    Alert(AlertResponse),
    Metric(MetricDefinition),
}

/// Whether a state ends the run.
pub fn is_terminal(state: State) -> bool {
    matches!(
        state,
        State::Finished | State::Failed | State::Crashed | State::Killed | State::Preempted
    )
}

/// The run-state name used in run.json and the CLI.
pub fn state_name(state: State) -> &'static str {
    match state {
        State::Unspecified => "unknown",
        State::Running => "running",
        State::Finished => "finished",
        State::Failed => "failed",
        State::Crashed => "crashed",
        State::Killed => "killed",
        State::Preempting => "preempting",
        State::Preempted => "preempted",
    }
}

pub fn state_from_name(name: &str) -> State {
    [
        State::Running,
        State::Finished,
        State::Failed,
        State::Crashed,
        State::Killed,
        State::Preempting,
        State::Preempted,
    ]
    .into_iter()
    .find(|s| state_name(*s) == name)
    .unwrap_or(State::Unspecified)
}

#[derive(Debug, Default)]
pub struct RunState {
    pub info: RunInfo,
    pub config: BTreeMap<String, Value>,
    /// Where relative SaveFiles globs and media paths resolve.
    pub working_dir: String,
    pub client: Option<ClientInfo>,
    /// How the run's system metrics are sampled (from Init).
    pub system_metrics: Option<SystemMetricsSettings>,
    /// Everyone who wrote the run; seqs are per writer.
    pub writers: Writers,
    /// Saved files by their name under files/.
    pub saved: IndexMap<String, SavedFile>,
    pub metrics: Metrics,
    /// The latest system-metrics sample and its time of each writer label (one
    /// entry without labelled writers), for W&B's `run.system_metrics`.
    pub last_system: IndexMap<String, (f64, SystemSample)>,
    /// Why the run ended without its client (the last console lines of a W&B SDK
    /// script whose connection closed without an exit); empty otherwise.
    pub end_reason: String,
    summary: Summary,
    keys: HashSet<Arc<str>>,
    /// The row at the current step, not yet committed (a run with one writer).
    pub(super) pending: IndexMap<Arc<str>, Value>,
    /// Time of the latest call merged into the pending row.
    pub(super) pending_time: f64,
    /// A shared run's rows not yet committed, by step.
    pub(super) open: OpenRows,
    /// Last committed value of each step metric, for step_sync.
    step_metric_last: HashMap<String, Value>,
    /// Title -> time of the last alert sent with it.
    alerts_sent: HashMap<String, f64>,
    /// Artifact versions ("name:vN") the run logged and used, in log order (the
    /// versions themselves are in the artifact store).
    pub logged_artifacts: Vec<String>,
    pub used_artifacts: Vec<String>,
    /// What `config`, `pending` and `keys` hold in memory, for the memory
    /// budget (the summary and the open rows keep their own).
    config_bytes: usize,
    pub(super) pending_bytes: usize,
    keys_bytes: usize,
}

impl RunState {
    pub fn state(&self) -> State {
        self.info.state()
    }

    pub fn is_open(&self) -> bool {
        !is_terminal(self.state()) && self.state() != State::Unspecified
    }

    /// Whether a batch with this seq of writer `writer` was already applied.
    pub fn is_duplicate(&self, writer: &str, seq: u64) -> bool {
        seq != 0 && seq <= self.writers.last_seq(writer)
    }

    pub fn summary(&mut self) -> BTreeMap<String, Value> {
        self.summary.to_map(&mut self.metrics)
    }

    pub fn apply(&mut self, record: &Record, sink: &mut impl Sink) -> Outcome {
        let time = record.time;
        match &record.kind {
            None => Outcome::Nothing,
            Some(Kind::Start(init)) => {
                self.start(init, time, sink);
                Outcome::Nothing
            }
            Some(Kind::Resume(init)) => {
                self.resume(init);
                self.join(init, time, sink);
                Outcome::Nothing
            }
            Some(Kind::Log(batch)) => self.log_batch(batch, time, sink),
            Some(Kind::DefineMetric(req)) => match self.metrics.define(req) {
                Ok(def) => Outcome::Metric(def.to_proto()),
                Err(e) => {
                    tracing::warn!(run = %self.info.id, "skipping a logged metric definition: {e}");
                    Outcome::Nothing
                }
            },
            Some(Kind::Config(req)) => {
                self.change_config(&req.remove, &req.config);
                Outcome::Nothing
            }
            Some(Kind::Summary(req)) => {
                self.change_summary(&req.remove, &req.summary);
                Outcome::Nothing
            }
            Some(Kind::Alert(req)) => Outcome::Alert(self.alert(req, time, sink)),
            Some(Kind::SavedFiles(files)) => {
                for f in &files.files {
                    self.saved.insert(f.name.clone(), f.clone());
                }
                Outcome::Nothing
            }
            Some(Kind::State(change)) => {
                self.change_state(change, time, sink);
                Outcome::Nothing
            }
            Some(Kind::Stop(_)) => {
                self.info.stop_requested = true;
                Outcome::Nothing
            }
            Some(Kind::Artifact(rec)) => {
                self.artifact(rec);
                Outcome::Nothing
            }
            Some(Kind::System(sample)) => {
                self.system(sample, time, sink);
                Outcome::Nothing
            }
            Some(Kind::Edit(edit)) => {
                self.edit(edit);
                Outcome::Nothing
            }
            Some(Kind::Output(out)) => {
                sink.output(&OutputEvent {
                    time,
                    runtime: (time - self.info.start_time).max(0.0),
                    lines: &out.lines,
                });
                Outcome::Nothing
            }
            Some(Kind::WriterEnd(end)) => {
                self.writer_end(end, time, sink);
                Outcome::Nothing
            }
        }
    }

    /// A system-metrics sample: to the sink, and kept as its label's latest.
    fn system(&mut self, sample: &SystemSample, time: f64, sink: &mut impl Sink) {
        sink.system(&SystemEvent {
            time,
            runtime: (time - self.info.start_time).max(0.0),
            sample,
        });
        self.last_system
            .insert(sample.label.clone(), (time, sample.clone()));
    }

    fn start(&mut self, init: &InitRequest, time: f64, sink: &mut impl Sink) {
        let dir = std::mem::take(&mut self.info.dir);
        self.info = RunInfo {
            id: init.id.clone(),
            name: init.name.clone(),
            entity: init.entity.clone(),
            project: init.project.clone(),
            group: init.group.clone(),
            job_type: init.job_type.clone(),
            tags: init.tags.clone(),
            notes: init.notes.clone(),
            path: run_path(&init.entity, &init.project, &init.id),
            dir,
            start_time: time,
            last_heartbeat: time,
            client_timeout: init.client_timeout.unwrap_or_default(),
            ..Default::default()
        };
        self.info.set_state(State::Running);
        self.config = init.config.clone();
        self.config_changed();
        self.working_dir = init.working_dir.clone();
        self.client = init.client.clone();
        self.system_metrics = init.system_metrics.clone();
        self.join(init, time, sink);
    }

    fn resume(&mut self, init: &InitRequest) {
        let info = &mut self.info;
        let set = |field: &mut String, v: &String| {
            if !v.is_empty() {
                field.clone_from(v);
            }
        };
        set(&mut info.name, &init.name);
        set(&mut info.group, &init.group);
        set(&mut info.job_type, &init.job_type);
        set(&mut info.notes, &init.notes);
        set(&mut self.working_dir, &init.working_dir);
        if !init.tags.is_empty() {
            info.tags.clone_from(&init.tags);
        }
        for (k, v) in &init.config {
            self.config.insert(k.clone(), v.clone());
        }
        self.config_bytes = memory::map_bytes(&self.config);
        if init.client.is_some() {
            self.client.clone_from(&init.client);
        }
        if let Some(t) = init.client_timeout {
            info.client_timeout = t;
        }
        if init.system_metrics.is_some() {
            self.system_metrics.clone_from(&init.system_metrics);
        }
        info.resumed = true;
        // Re-attaching to an open run (a client reconnecting) keeps its state, a
        // pending preemption and an operator's stop request; an ended run runs again.
        if is_terminal(info.state()) {
            info.stop_requested = false;
            info.set_state(State::Running);
            info.end_time = 0.0;
            info.exit_code = None;
            self.end_reason.clear();
        }
    }

    pub(super) fn intern(&mut self, key: &str) -> Arc<str> {
        match self.keys.get(key) {
            Some(k) => k.clone(),
            None => {
                let k: Arc<str> = Arc::from(key);
                self.keys.insert(k.clone());
                self.keys_bytes += memory::entry_bytes(key);
                k
            }
        }
    }

    fn log_batch(&mut self, batch: &LogBatch, time: f64, sink: &mut impl Sink) -> Outcome {
        let step = self.info.step;
        let writer = self.writers.ensure(&batch.writer_id, time, step);
        writer.last_seq = writer.last_seq.max(batch.seq);
        let keys: Vec<Arc<str>> = batch.keys.iter().map(|k| self.intern(k)).collect();
        let mut dropped = Vec::new();
        for (i, row) in batch.rows.iter().enumerate() {
            let d = if self.info.shared {
                self.shared_row(&batch.writer_id, &keys, row, time)
            } else {
                self.log_row(&keys, row, time, sink)
            };
            if let Some(mut d) = d {
                d.row_index = i as u32;
                dropped.push(d);
            }
        }
        if self.info.shared {
            self.advance(sink);
        }
        Outcome::Log { dropped }
    }

    fn log_row(
        &mut self,
        keys: &[Arc<str>],
        row: &Row,
        time: f64,
        sink: &mut impl Sink,
    ) -> Option<DroppedRow> {
        let commit = match row.step {
            None if self.info.step > MAX_STEP => {
                return Some(self.past_max(self.info.step));
            }
            Some(step) if step > MAX_STEP => return Some(self.past_max(step)),
            None => row.commit.unwrap_or(true),
            Some(step) if step < self.info.step => {
                return Some(DroppedRow {
                    row_index: 0,
                    step,
                    current_step: self.info.step,
                    reason: format!(
                        "step {step} is smaller than the run's current step {}; W&B drops such rows, log with a step >= {} or without one",
                        self.info.step, self.info.step
                    ),
                });
            }
            Some(step) => {
                if step > self.info.step {
                    self.commit(sink);
                    self.info.step = step;
                }
                row.commit.unwrap_or(false)
            }
        };
        for (k, v) in row.scalar_keys.iter().zip(&row.scalar_values) {
            // Indices were checked against the key table before the append.
            if let Some(key) = keys.get(*k as usize) {
                self.pending.insert(key.clone(), value::double(*v));
            }
        }
        self.pending_bytes += row_bytes(row);
        for (k, v) in &row.values {
            let key = self.intern(k);
            self.pending.insert(key, v.clone());
        }
        self.pending_time = if row.timestamp > 0.0 {
            row.timestamp
        } else {
            time
        };
        if commit {
            self.commit(sink);
        }
        None
    }

    /// Commits the pending row (if any) at the current step and advances the step.
    fn commit(&mut self, sink: &mut impl Sink) {
        if self.pending.is_empty() {
            return;
        }
        // Taken and put back, so the row's allocation is reused.
        let mut values = std::mem::take(&mut self.pending);
        self.commit_values(self.info.step, &mut values, self.pending_time, sink);
        values.clear();
        self.pending = values;
        self.pending_bytes = 0;
        // Saturating: a log written by another version must not wrap the step
        // (rows past MAX_STEP are dropped, so it stays far below i64::MAX).
        self.info.step = self.info.step.saturating_add(1);
    }

    /// Commits one history row: step_sync fills, the sink writes it, the summary
    /// observes it.
    pub(super) fn commit_values(
        &mut self,
        step: i64,
        values: &mut IndexMap<Arc<str>, Value>,
        timestamp: f64,
        sink: &mut impl Sink,
    ) {
        if self.metrics.has_step_metrics() {
            self.sync_step_metrics(values);
        }
        let row = CommittedRow {
            step,
            runtime: (timestamp - self.info.start_time).max(0.0),
            timestamp,
            values,
        };
        sink.history(&row);
        let last = LastRow {
            step: row.step,
            runtime: row.runtime,
            timestamp,
        };
        for (k, v) in values.iter() {
            self.summary.observe(k, v);
            if self.metrics.has_step_metrics() && self.metrics.is_step_metric(k) {
                self.step_metric_last.insert(k.to_string(), v.clone());
            }
        }
        self.summary.set_last_row(last);
        self.info.history_rows = self.info.history_rows.saturating_add(1);
    }

    /// Fills each synced step metric's last value into a row where a key it
    /// governs is present and the step metric is not.
    fn sync_step_metrics(&mut self, values: &mut IndexMap<Arc<str>, Value>) {
        let mut fill: Vec<String> = Vec::new();
        for k in values.keys() {
            if let Some(def) = self.metrics.lookup(k) {
                if let (true, Some(sm)) = (def.step_sync, &def.step_metric) {
                    if !values.contains_key(sm.as_str()) && !fill.contains(sm) {
                        fill.push(sm.clone());
                    }
                }
            }
        }
        for sm in fill {
            if let Some(v) = self.step_metric_last.get(&sm).cloned() {
                let key = self.intern(&sm);
                values.insert(key, v);
            }
        }
    }

    fn alert(&mut self, req: &AlertRequest, time: f64, sink: &mut impl Sink) -> AlertResponse {
        let wait = req.wait_duration.unwrap_or(DEFAULT_ALERT_WAIT);
        if self.alerts_sent.len() >= MAX_KEYS_PER_RUN {
            // Bounded memory: forget titles whose window (by this alert's
            // wait) has passed.
            self.alerts_sent.retain(|_, last| time < *last + wait);
        }
        let reply = match self.alerts_sent.get(&req.title) {
            Some(&last) if time < last + wait => AlertResponse {
                sent: false,
                throttled: true,
                throttled_until: last + wait,
            },
            _ => {
                self.alerts_sent.insert(req.title.clone(), time);
                AlertResponse {
                    sent: true,
                    throttled: false,
                    throttled_until: time + wait,
                }
            }
        };
        sink.alert(&AlertEvent {
            request: req,
            time,
            runtime: (time - self.info.start_time).max(0.0),
            sent: reply.sent,
            throttled_until: reply.throttled_until,
        });
        reply
    }

    fn artifact(&mut self, rec: &ArtifactRecord) {
        let (list, a) = match &rec.kind {
            Some(artifact_record::Kind::Logged(a)) => (&mut self.logged_artifacts, a),
            Some(artifact_record::Kind::Used(a)) => (&mut self.used_artifacts, a),
            _ => return,
        };
        let key = format!("{}:{}", a.name, a.version);
        if !list.contains(&key) {
            list.push(key);
        }
    }

    fn change_state(&mut self, change: &StateChange, time: f64, sink: &mut impl Sink) {
        let state = change.state();
        if is_terminal(state) {
            self.commit(sink);
            self.commit_open(sink);
            self.info.end_time = time;
            self.info.exit_code = change.exit_code;
            self.writers.end_all(state, change.exit_code, time);
            self.end_reason.clone_from(&change.reason);
        }
        self.info.set_state(state);
    }
}

/// W&B's run path: entity/project/id, or project/id without an entity.
pub fn run_path(entity: &str, project: &str, id: &str) -> String {
    if entity.is_empty() {
        format!("{project}/{id}")
    } else {
        format!("{entity}/{project}/{id}")
    }
}

mod limits;

#[cfg(test)]
mod tests;

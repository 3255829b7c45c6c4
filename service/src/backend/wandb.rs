//! The W&B backend, over the HTTP protocol W&B's open-source SDK speaks (HTTP
//! basic auth, user `api`, the API key as password).
//!
//! run -> GraphQL `UpsertBucket` (name = the runcore id, display name, group, job
//! type, tags, notes, host, program, config as `{key: {"value": v}}`), again when
//! the config changes, at most every [`CONFIG_EVERY`] (a change inside that window
//! waits for the next delivery after it, a heartbeat, or the end of the run);
//! history -> `wandb-history.jsonl` lines on the file_stream endpoint
//! (`POST /files/{entity}/{project}/{run}/file_stream`) at contiguous offsets;
//! system metrics -> `wandb-events.jsonl` lines with `system.*` keys; summary ->
//! `wandb-summary.json` (the whole summary, one line at offset 0); preempting ->
//! `preempting`; the end -> `complete` and `exitcode` (finished, failed, killed;
//! a crashed or preempted run just stops beating, as a dead SDK process would,
//! and W&B marks it so); heartbeats -> an empty file_stream request when nothing
//! else was streamed since the last one, plus the `RunStoppedStatus` query, whose
//! `"stopped": true` asks the run's client to stop; saved files ->
//! `CreateRunFiles` and a PUT of each file to its signed URL with `Content-MD5`,
//! skipped when the same content was already uploaded, then reported in
//! file_stream's `uploaded`; alerts -> `NotifyScriptableRunAlert` (runcore has
//! throttled them already).
//!
//! Exactly once: each history line, events line and alert has a number, its
//! position in the run. The state saved with the forwarder's cursor says which
//! numbers the server has, and is checkpointed after every acknowledged request,
//! so a retry or a restart in the middle of a batch goes on at the next offset
//! and sends nothing twice.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use tokio::time::Instant;

use super::retry::{self, BackendError};
use super::{http_client, uploads_on_save, Backend, Batch, Event};
use crate::proto::v1::{RunInfo, RunState, Value};
use crate::store;
use crate::value::{self, write_json_str};

pub const DEFAULT_BASE_URL: &str = "https://api.wandb.ai";

/// The file_stream files.
pub const HISTORY_FILE: &str = "wandb-history.jsonl";
pub const EVENTS_FILE: &str = "wandb-events.jsonl";
pub const SUMMARY_FILE: &str = "wandb-summary.json";

/// Lines in one file_stream request at most.
const MAX_LINES: usize = 1000;
/// Bytes of lines in one file_stream request at most (W&B takes up to 10 MiB).
const MAX_REQUEST_BYTES: usize = 4 << 20;
/// The longest line W&B's file_stream accepts; longer ones are skipped.
const MAX_LINE_BYTES: usize = (10 << 20) - (100 << 10);
/// Config changes reach W&B at most this often.
const CONFIG_EVERY: Duration = Duration::from_secs(10);
/// A live run's deliveries at most this often: W&B's SDK paces its file_stream
/// requests too, and what arrives meanwhile rides along.
const PACE: Duration = Duration::from_secs(2);

const UPSERT_BUCKET: &str = "mutation UpsertBucket($name: String, $project: String, \
$entity: String, $groupName: String, $displayName: String, $notes: String, \
$config: JSONString, $host: String, $program: String, $jobType: String, $tags: [String!]) {
  upsertBucket(input: {name: $name, modelName: $project, entityName: $entity, \
groupName: $groupName, displayName: $displayName, notes: $notes, config: $config, \
host: $host, jobProgram: $program, jobType: $jobType, tags: $tags}) {
    bucket { id name displayName project { id name entity { id name } } }
    inserted
  }
}";

const CREATE_RUN_FILES: &str = "mutation CreateRunFiles($entity: String!, $project: String!, \
$run: String!, $files: [String!]!) {
  createRunFiles(input: {entityName: $entity, projectName: $project, runName: $run, files: $files}) {
    runID
    uploadHeaders
    files { name uploadUrl }
  }
}";

const NOTIFY_ALERT: &str = "mutation NotifyScriptableRunAlert($entityName: String!, \
$projectName: String!, $runName: String!, $title: String!, $text: String!, \
$severity: AlertSeverity = INFO) {
  notifyScriptableRunAlert(input: {entityName: $entityName, projectName: $projectName, \
runName: $runName, title: $title, text: $text, severity: $severity}) {
    success
  }
}";

const RUN_STOPPED: &str = "query RunStoppedStatus($entityName: String, $projectName: String, \
$runId: String!) {
  project(name: $projectName, entityName: $entityName) {
    run(name: $runId) { stopped }
  }
}";

/// Where W&B is and the API key (WANDB_BASE_URL, WANDB_API_KEY).
#[derive(Clone, Default)]
pub struct WandbSettings {
    pub base_url: String,
    pub api_key: String,
}

impl fmt::Debug for WandbSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WandbSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

/// How far one numbered stream (history lines, events lines, alerts) has come.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Numbered {
    /// Items before the batch being delivered (the forwarder's cursor).
    base: u64,
    /// Items of the run the server has, or that were given up (a refused batch, a
    /// line too long): the batch goes on after them.
    done: u64,
    /// Items the server acknowledged: the next file_stream offset.
    sent: u64,
}

impl Numbered {
    /// The batch of `n` items is over (delivered, or refused for good).
    fn close_batch(&mut self, n: usize) {
        self.base += n as u64;
        self.done = self.base;
    }
}

/// What the backend remembers across deliveries (saved in the cursor).
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The entity the run lives in: the run's own, or the API key's default one
    /// (from UpsertBucket's reply).
    entity: String,
    /// UpsertBucket has made the run.
    created: bool,
    /// The client's host and program, from metadata.json (sent with each upsert).
    host: String,
    program: String,
    /// The config (W&B's form, as JSON) the server has.
    config_sent: String,
    /// A newer config, waiting for CONFIG_EVERY to pass.
    config_pending: Option<String>,
    history: Numbered,
    events: Numbered,
    alerts: Numbered,
    /// Saved files uploaded: name -> base64 MD5 of the content uploaded.
    uploaded: BTreeMap<String, String>,
    /// Uploads not yet reported in file_stream's `uploaded`.
    unreported: Vec<String>,
    #[serde(skip)]
    last_upsert: Option<Instant>,
    /// A file_stream request went out since the last heartbeat.
    #[serde(skip)]
    streamed: bool,
}

pub struct Wandb {
    settings: WandbSettings,
    http: reqwest::Client,
    st: State,
}

/// What one batch asks of W&B.
#[derive(Default)]
struct Plan {
    start: bool,
    config: Option<String>,
    history: Vec<String>,
    events: Vec<String>,
    summary: Option<String>,
    /// (title, text, severity) of each alert runcore sent (not throttled).
    alerts: Vec<(String, String, String)>,
    /// Saved files to upload (unless unchanged), in order.
    uploads: Vec<String>,
    preempting: bool,
    /// The run ended in this batch.
    ended: bool,
    /// `complete` with this exit code.
    exit_code: Option<i32>,
}

/// The config in W&B's form: `{key: {"value": v}}`.
fn wandb_config(config: &BTreeMap<String, Value>) -> String {
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
fn history_line(values: &[(String, Value)], step: i64, runtime: f64, timestamp: f64) -> String {
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
fn events_line(metrics: &[(String, f64)], runtime: f64, timestamp: f64) -> String {
    let mut line = String::new();
    let metrics = metrics.iter().map(|(k, v)| (k.as_str(), *v));
    value::write_events_line(&mut line, metrics, "\"_wandb\":true,", runtime, timestamp);
    line
}

/// W&B's alert severity for a runcore level.
fn severity(level: &str) -> &'static str {
    match level {
        "WARN" => "WARN",
        "ERROR" => "ERROR",
        _ => "INFO",
    }
}

/// The exit code W&B is told for a run that ended this way; None for a run that
/// just stops beating (crashed, preempted), which W&B marks itself.
fn exit_code_of(state: RunState, code: Option<i32>) -> Option<i32> {
    match state {
        RunState::Finished => Some(code.unwrap_or(0)),
        RunState::Failed => Some(code.unwrap_or(1)),
        RunState::Killed => Some(code.unwrap_or(255)),
        _ => None,
    }
}

impl Plan {
    fn of(batch: &Batch<'_>) -> Plan {
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
                } => p
                    .history
                    .push(history_line(values, *step, *runtime, *timestamp)),
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
                Event::State {
                    state, exit_code, ..
                } => {
                    if *state == RunState::Preempting {
                        p.preempting = true;
                    }
                    if crate::run::state::is_terminal(*state) {
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

/// Numbered lines of one file still to send: (number, line), skipping those the
/// server has and those too long for it.
fn pending<'a>(lines: &'a [String], n: &Numbered, file: &str) -> Vec<(u64, &'a str)> {
    lines
        .iter()
        .enumerate()
        .map(|(k, l)| (n.base + k as u64, l.as_str()))
        .filter(|(i, l)| {
            if *i < n.done {
                return false;
            }
            if l.len() > MAX_LINE_BYTES {
                tracing::warn!(
                    "a {file} line of {} bytes is over W&B's limit of {MAX_LINE_BYTES}; not sent (it is in the local store)",
                    l.len()
                );
                return false;
            }
            true
        })
        .collect()
}

/// Lines with their numbers.
type NumberedLines<'a> = [(u64, &'a str)];

/// The text of numbered lines.
fn content<'a>(lines: &NumberedLines<'a>) -> Vec<&'a str> {
    lines.iter().map(|(_, l)| *l).collect()
}

/// Takes lines for one request from the front of `history` and `events`.
fn take_chunk<'a>(
    history: &mut &'a NumberedLines<'a>,
    events: &mut &'a NumberedLines<'a>,
) -> (&'a NumberedLines<'a>, &'a NumberedLines<'a>) {
    let mut lines = 0;
    let mut bytes = 0;
    let mut fit = |list: &[(u64, &str)]| {
        let mut k = 0;
        for (_, l) in list {
            if lines >= MAX_LINES || (lines > 0 && bytes + l.len() > MAX_REQUEST_BYTES) {
                break;
            }
            lines += 1;
            bytes += l.len() + 4;
            k += 1;
        }
        k
    };
    let h = fit(history);
    let e = fit(events);
    let (hc, hr) = history.split_at(h);
    let (ec, er) = events.split_at(e);
    *history = hr;
    *events = er;
    (hc, ec)
}

/// The MD5 of a file, base64 (Content-MD5), read in pieces.
fn md5_of(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut ctx = md5::Context::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.consume(&buf[..n]);
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(ctx.finalize().0))
}

impl Wandb {
    pub fn new(settings: WandbSettings) -> Self {
        Wandb {
            settings,
            http: http_client(Duration::from_secs(120)),
            st: State::default(),
        }
    }

    /// `base_url` plus path segments (each escaped).
    fn url(&self, segments: &[&str]) -> Result<reqwest::Url, BackendError> {
        let bad = || BackendError::Rejected {
            reason: format!(
                "W&B base URL {:?} cannot take a path",
                self.settings.base_url
            ),
        };
        let mut url = reqwest::Url::parse(&self.settings.base_url).map_err(|_| bad())?;
        url.path_segments_mut()
            .map_err(|_| bad())?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// POSTs JSON with the API key; the JSON reply (Null when empty).
    async fn post(&self, url: reqwest::Url, body: &Json) -> Result<Json, BackendError> {
        let resp = self
            .http
            .post(url)
            .basic_auth("api", Some(&self.settings.api_key))
            .json(body)
            .send()
            .await
            .map_err(|e| retry::transport(&e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(|e| retry::transport(&e))?;
        if let Some(err) = retry::classify(status, &headers, &text) {
            return Err(err);
        }
        Ok(serde_json::from_str(&text).unwrap_or(Json::Null))
    }

    /// A GraphQL operation; its `data`.
    async fn graphql(&self, op: &str, query: &str, variables: Json) -> Result<Json, BackendError> {
        let body = json!({"operationName": op, "query": query, "variables": variables});
        let reply = self.post(self.url(&["graphql"])?, &body).await?;
        if let Some(errors) = reply["errors"].as_array().filter(|e| !e.is_empty()) {
            let messages: Vec<&str> = errors
                .iter()
                .filter_map(|e| e["message"].as_str())
                .collect();
            return Err(BackendError::Rejected {
                reason: format!("W&B {op}: {}", messages.join("; ")),
            });
        }
        Ok(reply["data"].clone())
    }

    async fn file_stream(&mut self, run: &RunInfo, body: &Json) -> Result<Json, BackendError> {
        let url = self.url(&[
            "files",
            &self.st.entity,
            &run.project,
            &run.id,
            "file_stream",
        ])?;
        let reply = self.post(url, body).await?;
        self.st.streamed = true;
        Ok(reply)
    }

    /// Host and program for UpsertBucket, from the run's metadata.json.
    async fn read_metadata(&mut self, dir: &Path) {
        let text = tokio::fs::read_to_string(dir.join(store::METADATA_JSON))
            .await
            .unwrap_or_default();
        let meta: Json = serde_json::from_str(&text).unwrap_or(Json::Null);
        let host = meta["client"]["hostname"]
            .as_str()
            .filter(|h| !h.is_empty())
            .or_else(|| meta["host"].as_str());
        self.st.host = host.unwrap_or_default().to_owned();
        self.st.program = meta["program"].as_str().unwrap_or_default().to_owned();
    }

    /// Creates or updates the run with its identity and `config`.
    async fn upsert(&mut self, run: &RunInfo, config: &str) -> Result<(), BackendError> {
        let opt = |s: &str| if s.is_empty() { Json::Null } else { json!(s) };
        let entity = if self.st.entity.is_empty() {
            &run.entity
        } else {
            &self.st.entity
        };
        let vars = json!({
            "name": run.id,
            "project": run.project,
            "entity": opt(entity),
            "displayName": opt(&run.name),
            "groupName": opt(&run.group),
            "jobType": opt(&run.job_type),
            "notes": opt(&run.notes),
            "tags": run.tags,
            "config": config,
            "host": opt(&self.st.host),
            "program": opt(&self.st.program),
        });
        let data = self.graphql("UpsertBucket", UPSERT_BUCKET, vars).await?;
        let given = data["upsertBucket"]["bucket"]["project"]["entity"]["name"]
            .as_str()
            .unwrap_or_default();
        if !given.is_empty() {
            self.st.entity = given.to_owned();
        } else if self.st.entity.is_empty() {
            self.st.entity.clone_from(&run.entity);
        }
        if self.st.entity.is_empty() {
            return Err(BackendError::Rejected {
                reason: "W&B UpsertBucket: the reply names no entity for the run".into(),
            });
        }
        self.st.created = true;
        self.st.config_sent = config.to_owned();
        if self.st.config_pending.as_deref() == Some(config) {
            self.st.config_pending = None;
        }
        self.st.last_upsert = Some(Instant::now());
        Ok(())
    }

    /// Sends a waiting config change once CONFIG_EVERY has passed, or now with
    /// `force`.
    async fn flush_config(&mut self, run: &RunInfo, force: bool) -> Result<(), BackendError> {
        let Some(config) = self.st.config_pending.clone() else {
            return Ok(());
        };
        if config == self.st.config_sent {
            self.st.config_pending = None;
            return Ok(());
        }
        let due = self
            .st
            .last_upsert
            .is_none_or(|at| at.elapsed() >= CONFIG_EVERY);
        if force || due {
            self.upsert(run, &config).await?;
        }
        Ok(())
    }

    /// Uploads saved files whose content W&B does not have yet.
    async fn upload(&mut self, batch: &Batch<'_>, names: &[String]) -> Result<(), BackendError> {
        if names.is_empty() {
            return Ok(());
        }
        let files_dir = batch.dir.join(store::FILES_DIR);
        // Hash off the runtime; skip what is uploaded already.
        let hashed = {
            let names = names.to_vec();
            let files_dir = files_dir.clone();
            tokio::task::spawn_blocking(move || {
                names
                    .into_iter()
                    .map(|n| {
                        let md5 = md5_of(&files_dir.join(&n));
                        (n, md5)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| BackendError::retryable(e.to_string()))?
        };
        let mut todo: Vec<String> = Vec::new();
        for (name, md5) in hashed {
            match md5 {
                Ok(md5) if self.st.uploaded.get(&name) == Some(&md5) => {}
                Ok(_) => todo.push(name),
                Err(e) => tracing::warn!(
                    run = %batch.run.id,
                    "saved file {name} not uploaded to W&B: {}: {e}",
                    files_dir.join(&name).display()
                ),
            }
        }
        if todo.is_empty() {
            return Ok(());
        }
        let data = self
            .graphql(
                "CreateRunFiles",
                CREATE_RUN_FILES,
                json!({
                    "entity": self.st.entity,
                    "project": batch.run.project,
                    "run": batch.run.id,
                    "files": todo,
                }),
            )
            .await?;
        let created = &data["createRunFiles"];
        let headers: Vec<(String, String)> = created["uploadHeaders"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| {
                let (k, v) = h.as_str()?.split_once(':')?;
                Some((k.trim().to_owned(), v.trim().to_owned()))
            })
            .collect();
        let urls: BTreeMap<&str, &str> = created["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| Some((f["name"].as_str()?, f["uploadUrl"].as_str()?)))
            .collect();
        for name in &todo {
            let Some(url) = urls.get(name.as_str()) else {
                tracing::warn!(run = %batch.run.id, "W&B gave no upload URL for saved file {name}; not uploaded");
                continue;
            };
            let path: PathBuf = files_dir.join(name);
            let bytes = match tokio::fs::read(&path).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(run = %batch.run.id, "saved file {} not uploaded to W&B: {e}", path.display());
                    continue;
                }
            };
            let md5 = base64::engine::general_purpose::STANDARD.encode(md5::compute(&bytes).0);
            let mut req = self.http.put(*url).header("Content-MD5", &md5).body(bytes);
            for (k, v) in &headers {
                req = req.header(k, v);
            }
            let resp = req.send().await.map_err(|e| retry::transport(&e))?;
            let status = resp.status();
            let resp_headers = resp.headers().clone();
            let text = resp.text().await.unwrap_or_default();
            match retry::classify(status, &resp_headers, &text) {
                None => {
                    self.st.uploaded.insert(name.clone(), md5);
                    self.st.unreported.push(name.clone());
                    batch.checkpoint.save(self.save());
                }
                Some(e @ BackendError::Retryable { .. }) => return Err(e),
                // A refused signed URL is about this file, not the API key.
                Some(e) => {
                    tracing::warn!(run = %batch.run.id, "saved file {name} not uploaded to W&B: the storage refused it: {e}")
                }
            }
        }
        Ok(())
    }

    /// Sends what a batch asks for, acknowledging each part as it goes.
    async fn send(&mut self, batch: &Batch<'_>, plan: &Plan) -> Result<(), BackendError> {
        let run = batch.run;
        if !self.st.created || plan.start {
            self.read_metadata(batch.dir).await;
            let config = plan
                .config
                .clone()
                .or_else(|| self.st.config_pending.clone())
                .unwrap_or_else(|| {
                    if self.st.config_sent.is_empty() {
                        "{}".to_owned()
                    } else {
                        self.st.config_sent.clone()
                    }
                });
            self.upsert(run, &config).await?;
        }
        if let Some(config) = &plan.config {
            if *config != self.st.config_sent {
                self.st.config_pending = Some(config.clone());
            }
        }
        self.flush_config(run, plan.ended).await?;
        self.upload(batch, &plan.uploads).await?;
        for (k, (title, text, severity)) in plan.alerts.iter().enumerate() {
            let number = self.st.alerts.base + k as u64;
            if number < self.st.alerts.done {
                continue;
            }
            self.graphql(
                "NotifyScriptableRunAlert",
                NOTIFY_ALERT,
                json!({
                    "entityName": self.st.entity,
                    "projectName": run.project,
                    "runName": run.id,
                    "title": title,
                    "text": text,
                    "severity": severity,
                }),
            )
            .await?;
            self.st.alerts.done = number + 1;
            self.st.alerts.sent += 1;
            batch.checkpoint.save(self.save());
        }
        let history = pending(&plan.history, &self.st.history, HISTORY_FILE);
        let events = pending(&plan.events, &self.st.events, EVENTS_FILE);
        let (mut h_left, mut e_left) = (history.as_slice(), events.as_slice());
        loop {
            let (h, e) = take_chunk(&mut h_left, &mut e_left);
            let last = h_left.is_empty() && e_left.is_empty();
            let mut files = serde_json::Map::new();
            if !h.is_empty() {
                files.insert(
                    HISTORY_FILE.into(),
                    json!({"offset": self.st.history.sent, "content": content(h)}),
                );
            }
            if !e.is_empty() {
                files.insert(
                    EVENTS_FILE.into(),
                    json!({"offset": self.st.events.sent, "content": content(e)}),
                );
            }
            let mut body = serde_json::Map::new();
            let mut reported = 0;
            if last {
                if let Some(summary) = &plan.summary {
                    if summary.len() <= MAX_LINE_BYTES {
                        files.insert(
                            SUMMARY_FILE.into(),
                            json!({"offset": 0, "content": [summary]}),
                        );
                    } else {
                        tracing::warn!(run = %run.id, "the summary is over W&B's line limit of {MAX_LINE_BYTES} bytes; not sent");
                    }
                }
                if !self.st.unreported.is_empty() {
                    reported = self.st.unreported.len();
                    body.insert("uploaded".into(), json!(self.st.unreported));
                }
                if plan.preempting {
                    body.insert("preempting".into(), json!(true));
                }
                if let Some(code) = plan.exit_code {
                    body.insert("complete".into(), json!(true));
                    body.insert("exitcode".into(), json!(code));
                }
            }
            if !files.is_empty() {
                body.insert("files".into(), Json::Object(files));
            }
            if body.is_empty() {
                break;
            }
            self.file_stream(run, &Json::Object(body)).await?;
            if let Some((i, _)) = h.last() {
                self.st.history.sent += h.len() as u64;
                self.st.history.done = i + 1;
            }
            if let Some((i, _)) = e.last() {
                self.st.events.sent += e.len() as u64;
                self.st.events.done = i + 1;
            }
            self.st.unreported.drain(..reported);
            batch.checkpoint.save(self.save());
            if last {
                break;
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Backend for Wandb {
    fn name(&self) -> &'static str {
        "wandb"
    }

    fn restore(&mut self, state: Json) {
        if let Ok(st) = serde_json::from_value::<State>(state) {
            self.st = st;
            for n in [
                &mut self.st.history,
                &mut self.st.events,
                &mut self.st.alerts,
            ] {
                n.done = n.done.max(n.base);
            }
        }
    }

    fn save(&self) -> Json {
        serde_json::to_value(&self.st).unwrap_or(Json::Null)
    }

    async fn deliver(&mut self, batch: &Batch<'_>) -> Result<(), BackendError> {
        let plan = Plan::of(batch);
        let result = self.send(batch, &plan).await;
        // Unless the batch is to be tried again, the next one is numbered after it.
        if !matches!(
            result,
            Err(BackendError::Retryable { .. } | BackendError::Unauthorized { .. })
        ) {
            self.st.history.close_batch(plan.history.len());
            self.st.events.close_batch(plan.events.len());
            self.st.alerts.close_batch(plan.alerts.len());
        }
        result
    }

    async fn heartbeat(&mut self, run: &RunInfo) -> Result<bool, BackendError> {
        if !self.st.created {
            return Ok(false);
        }
        self.flush_config(run, false).await?;
        if !std::mem::take(&mut self.st.streamed) {
            self.file_stream(run, &json!({"complete": false, "failed": false}))
                .await?;
            self.st.streamed = false;
        }
        let data = self
            .graphql(
                "RunStoppedStatus",
                RUN_STOPPED,
                json!({"entityName": self.st.entity, "projectName": run.project, "runId": run.id}),
            )
            .await;
        match data {
            Ok(d) => Ok(d["project"]["run"]["stopped"].as_bool().unwrap_or(false)),
            Err(e @ BackendError::Unauthorized { .. }) => Err(e),
            Err(e) => {
                tracing::debug!(run = %run.id, "W&B stop status not read: {e}");
                Ok(false)
            }
        }
    }

    fn min_interval(&self) -> Duration {
        PACE
    }

    async fn flush(&mut self, run: &RunInfo) -> Result<(), BackendError> {
        if self.st.created {
            self.flush_config(run, true).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_takes_wandbs_value_form() {
        let config = BTreeMap::from([
            ("lr".to_string(), value::double(0.5)),
            (
                "model".to_string(),
                value::map(BTreeMap::from([("layers".to_string(), value::int(4))])),
            ),
        ]);
        let text = wandb_config(&config);
        let parsed: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            json!({"lr": {"value": 0.5}, "model": {"value": {"layers": 4}}})
        );
    }

    #[test]
    fn lines_carry_the_reserved_keys() {
        let h = history_line(&[("loss".into(), value::double(f64::NAN))], 3, 1.5, 10.0);
        assert_eq!(
            h,
            "{\"loss\":NaN,\"_step\":3,\"_runtime\":1.5,\"_timestamp\":10.0}"
        );
        let e = events_line(&[("cpu".into(), 50.0)], 2.0, 12.0);
        let parsed: Json = serde_json::from_str(&e).unwrap();
        assert_eq!(
            parsed,
            json!({"system.cpu": 50.0, "_wandb": true, "_runtime": 2.0, "_timestamp": 12.0})
        );
    }

    #[test]
    fn chunks_respect_the_limits_and_skip_what_is_done() {
        let lines: Vec<String> = (0..2500).map(|i| format!("{{\"i\":{i}}}")).collect();
        let n = Numbered {
            base: 100,
            done: 600,
            sent: 590,
        };
        let todo = pending(&lines, &n, HISTORY_FILE);
        assert_eq!(todo.first().map(|t| t.0), Some(600));
        assert_eq!(todo.len(), 2000);
        let (mut h, mut e): (&NumberedLines, &NumberedLines) = (&todo, &[]);
        let mut sizes = Vec::new();
        while !h.is_empty() {
            let (hc, _) = take_chunk(&mut h, &mut e);
            sizes.push(hc.len());
        }
        assert_eq!(sizes, [MAX_LINES, MAX_LINES]);
    }

    #[test]
    fn debug_output_hides_the_key() {
        let s = WandbSettings {
            base_url: DEFAULT_BASE_URL.into(),
            api_key: "secret-key-123".into(),
        };
        assert!(!format!("{s:?}").contains("secret-key-123"));
    }

    #[test]
    fn end_states_map_to_exit_codes() {
        assert_eq!(exit_code_of(RunState::Finished, Some(0)), Some(0));
        assert_eq!(exit_code_of(RunState::Failed, Some(3)), Some(3));
        assert_eq!(exit_code_of(RunState::Killed, None), Some(255));
        assert_eq!(exit_code_of(RunState::Crashed, None), None);
        assert_eq!(exit_code_of(RunState::Preempted, None), None);
    }
}

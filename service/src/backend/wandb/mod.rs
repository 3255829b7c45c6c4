//! The W&B backend, over the HTTP protocol W&B's open-source SDK speaks (HTTP
//! basic auth, user `api`, the API key as password).
//!
//! run -> GraphQL `UpsertBucket` (name = the runcore id, display name, group, job
//! type, tags, notes, host, program, config as `{key: {"value": v}}`), again after
//! an edit (UpdateRun; with the summary as `summaryMetrics`), again when
//! the config changes, at most every `CONFIG_EVERY` (a change inside that window
//! waits for the next delivery after it, a heartbeat, or the end of the run);
//! history -> `wandb-history.jsonl` lines on the file_stream endpoint
//! (`POST /files/{entity}/{project}/{run}/file_stream`) at contiguous offsets;
//! system metrics -> `wandb-events.jsonl` lines with `system.*` keys; summary ->
//! `wandb-summary.json` (the whole summary, one line at offset 0); console lines
//! (a W&B SDK's output) -> `output.log` lines at contiguous offsets; preempting ->
//! `preempting`; the end -> `complete` and `exitcode` (finished, failed, killed;
//! a crashed or preempted run just stops beating, as a dead SDK process would,
//! and W&B marks it so); heartbeats -> an empty file_stream request when nothing
//! else was streamed since the last one, plus the `RunStoppedStatus` query, whose
//! `"stopped": true` asks the run's client to stop; saved files ->
//! `CreateRunFiles` and a PUT of each file to its signed URL with `Content-MD5`,
//! skipped when the same content was already uploaded, then reported in
//! file_stream's `uploaded`; alerts -> `NotifyScriptableRunAlert` (runcore has
//! throttled them already); artifacts -> W&B's artifact protocol ([`artifacts`]:
//! `CreateArtifact`, the manifest, `CreateArtifactFiles` and PUTs with
//! Content-MD5, `CommitArtifact`, `UseArtifact`, `LinkArtifact`); media values'
//! files -> run files uploaded with the history lines that name them.
//!
//! A shared run (several writers, maybe through several sidecars): file_stream
//! requests carry `X-WANDB-USE-ASYNC-FILESTREAM: true`, as the W&B SDK's shared
//! mode sends them; each writer's system metrics are keyed with its label
//! (`system.cpu/l:rank-3`); a sidecar whose writers may not end the run (a
//! `local_only` end) sends no `complete`.
//!
//! Exactly once: each history line, events line and alert has a number, its
//! position in the run. The state saved with the forwarder's cursor says which
//! numbers the server has, and is checkpointed after every acknowledged request,
//! so a retry or a restart in the middle of a batch goes on at the next offset
//! and sends nothing twice.

mod artifacts;
mod file_stream;
mod graphql;
mod plan;
mod uploads;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use tokio::time::Instant;

use self::graphql::RUN_STOPPED;
use self::plan::Plan;
use super::retry::{self, BackendError};
use super::{http_client, Backend, Batch};
use crate::proto::v1::RunInfo;

pub const DEFAULT_BASE_URL: &str = "https://api.wandb.ai";

/// The file_stream files.
pub const HISTORY_FILE: &str = "wandb-history.jsonl";
pub const EVENTS_FILE: &str = "wandb-events.jsonl";
pub const SUMMARY_FILE: &str = "wandb-summary.json";
pub const OUTPUT_FILE: &str = "output.log";
/// The header the W&B SDK's shared mode sends on file_stream requests.
pub const ASYNC_FILESTREAM_HEADER: &str = "X-WANDB-USE-ASYNC-FILESTREAM";

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
    /// Console lines (output.log); absent in cursors written before it existed.
    #[serde(default)]
    output: Numbered,
    /// Saved files uploaded: name -> base64 MD5 of the content uploaded.
    uploaded: BTreeMap<String, String>,
    /// Uploads not yet reported in file_stream's `uploaded`.
    unreported: Vec<String>,
    /// Artifact versions ("name:vN") W&B has, and their W&B ids.
    #[serde(default)]
    artifacts: BTreeMap<String, String>,
    /// Artifact records of the run delivered (uses, links), by position in the run.
    #[serde(default)]
    artifact_records: Numbered,
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
        self.post_as(url, body, false).await
    }

    /// [`Wandb::post`]; `shared`: a file_stream request of a run several processes
    /// write, as the W&B SDK's shared mode sends it (the server appends each
    /// writer's lines instead of expecting one writer's offsets).
    async fn post_as(
        &self,
        url: reqwest::Url,
        body: &Json,
        shared: bool,
    ) -> Result<Json, BackendError> {
        let mut req = self
            .http
            .post(url)
            .basic_auth("api", Some(&self.settings.api_key));
        if shared {
            req = req.header(ASYNC_FILESTREAM_HEADER, "true");
        }
        let resp = req
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

    /// Sends what a batch asks for, acknowledging each part as it goes.
    async fn send(&mut self, batch: &Batch<'_>, plan: &Plan) -> Result<(), BackendError> {
        let run = batch.run;
        if !self.st.created || plan.start || plan.edit {
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
            let summary = plan.summary.as_deref().filter(|_| plan.edit);
            self.upsert(run, &config, summary).await?;
        }
        if let Some(config) = &plan.config {
            if *config != self.st.config_sent {
                self.st.config_pending = Some(config.clone());
            }
        }
        self.flush_config(run, plan.ended).await?;
        self.upload(batch, &plan.uploads).await?;
        self.artifacts(batch, &plan.artifacts).await?;
        self.notify_alerts(batch, plan).await?;
        self.stream(batch, plan).await
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
                &mut self.st.artifact_records,
                &mut self.st.output,
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
            self.st.artifact_records.close_batch(plan.artifacts.len());
            self.st.output.close_batch(plan.output.len());
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
    use super::file_stream::*;
    use super::plan::*;
    use super::*;
    use crate::proto::v1::RunState;
    use crate::value;

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
        let mut left: [&NumberedLines; 3] = [&todo, &[], &[]];
        let mut sizes = Vec::new();
        while !left[0].is_empty() {
            let [hc, _, _] = take_chunk(&mut left);
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

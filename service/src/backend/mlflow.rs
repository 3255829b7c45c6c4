//! The MLflow backend, over MLflow's tracking REST API.
//!
//! project -> experiment (got or created); run -> MLflow run (found again by its
//! `runcore.run_id` tag, so a retried create never makes two); config -> params
//! (flattened with '.', over-long values truncated and listed in a tag, a changed
//! value recorded as a tag instead of an error loop); history -> metrics with step
//! and timestamp (non-numeric values skipped, one warning per key); system metrics
//! -> `system/...` metrics; summary -> `summary.json` artifact; alerts ->
//! `alerts.jsonl` artifact and a tag; saved files -> artifacts (proxied artifact
//! API); end -> status FINISHED / FAILED / KILLED plus tag `runcore.state`;
//! heartbeats -> tag `runcore.heartbeat`. Requests respect log-batch's limits.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super::retry::{self, BackendError};
use super::{http_client, uploads_on_save, Backend, Batch, Event};
use crate::proto::v1::{value::Kind, RunInfo, RunState, Value};
use crate::run::state::state_name;
use crate::store;
use crate::value;

/// log-batch limits (MLflow's).
const MAX_METRICS: usize = 1000;
const MAX_PARAMS: usize = 100;
const MAX_TAGS: usize = 100;
const MAX_ENTITIES: usize = 1000;
/// Longest param value MLflow stores.
const MAX_PARAM_VALUE: usize = 6000;
/// Longest tag value we send.
const MAX_TAG_VALUE: usize = 5000;
/// Longest key MLflow accepts.
const MAX_KEY: usize = 250;
/// The summary artifact is uploaded at most this often (and at the end).
const SUMMARY_EVERY: f64 = 10.0;

pub const TAG_RUN_ID: &str = "runcore.run_id";
pub const TAG_STATE: &str = "runcore.state";
pub const TAG_HEARTBEAT: &str = "runcore.heartbeat";

/// Where the MLflow server is and how to authenticate (as MLflow's own clients
/// read them: MLFLOW_TRACKING_URI, MLFLOW_TRACKING_TOKEN, MLFLOW_TRACKING_USERNAME,
/// MLFLOW_TRACKING_PASSWORD).
#[derive(Clone, Default)]
pub struct MlflowSettings {
    pub uri: String,
    pub token: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for MlflowSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("MlflowSettings")
            .field("uri", &self.uri)
            .field("token", &redact(&self.token))
            .field("username", &self.username)
            .field("password", &redact(&self.password))
            .finish()
    }
}

/// What the backend remembers across deliveries (saved in the cursor).
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    experiment_id: String,
    run_id: String,
    artifact_uri: String,
    /// Params as sent: a param cannot change in MLflow.
    params: BTreeMap<String, String>,
    /// Keys already warned about (non-numeric metrics, changed params).
    warned: BTreeSet<String>,
    system_step: i64,
    #[serde(skip)]
    last_summary_upload: f64,
}

pub struct Mlflow {
    settings: MlflowSettings,
    http: reqwest::Client,
    st: State,
}

/// A log-batch being filled.
#[derive(Default)]
struct LogBatch {
    metrics: Vec<Json>,
    params: Vec<Json>,
    tags: Vec<Json>,
}

impl LogBatch {
    fn full(&self) -> bool {
        self.metrics.len() >= MAX_METRICS
            || self.params.len() >= MAX_PARAMS
            || self.tags.len() >= MAX_TAGS
            || self.metrics.len() + self.params.len() + self.tags.len() >= MAX_ENTITIES
    }

    fn is_empty(&self) -> bool {
        self.metrics.is_empty() && self.params.is_empty() && self.tags.is_empty()
    }
}

/// A key MLflow accepts: alphanumerics, '_', '-', '.', ' ', '/'.
fn key(k: &str) -> String {
    let mut s: String = k
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "_-. /".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        s.push('_');
    }
    s.chars().take(MAX_KEY).collect()
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn ms(t: f64) -> i64 {
    (t * 1000.0).round() as i64
}

/// A double as MLflow's JSON takes it (non-finite values as their names).
fn number(v: f64) -> Json {
    if v.is_nan() {
        json!("NaN")
    } else if v.is_infinite() {
        json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(v)
    }
}

/// Flattens nested maps into `prefix.key` leaves.
fn flatten<'a>(prefix: &str, v: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match &v.kind {
        Some(Kind::MapValue(m)) => {
            for (k, inner) in &m.fields {
                flatten(&format!("{prefix}.{k}"), inner, out);
            }
        }
        _ => out.push((prefix.to_owned(), v)),
    }
}

/// A param's text: strings as they are, anything else as JSON.
fn param_text(v: &Value) -> String {
    match &v.kind {
        Some(Kind::StringValue(s)) => s.clone(),
        _ => {
            let mut s = String::new();
            value::write_json(&mut s, v);
            s
        }
    }
}

fn metric_value(v: &Value) -> Option<f64> {
    match v.kind {
        Some(Kind::DoubleValue(x)) => Some(x),
        Some(Kind::IntValue(x)) => Some(x as f64),
        Some(Kind::BoolValue(b)) => Some(if b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// MLflow's status for a run state.
fn status_of(state: RunState) -> &'static str {
    match state {
        RunState::Finished => "FINISHED",
        RunState::Killed => "KILLED",
        RunState::Running | RunState::Preempting | RunState::Unspecified => "RUNNING",
        RunState::Failed | RunState::Crashed | RunState::Preempted => "FAILED",
    }
}

impl Mlflow {
    pub fn new(settings: MlflowSettings) -> Self {
        Mlflow {
            settings,
            http: http_client(Duration::from_secs(60)),
            st: State::default(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.uri.trim_end_matches('/'))
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, self.url(path));
        match (&self.settings.token, &self.settings.username) {
            (Some(token), _) => req.bearer_auth(token),
            (None, Some(user)) => req.basic_auth(user, self.settings.password.as_deref()),
            (None, None) => req,
        }
    }

    /// Sends a request; returns the status and the JSON body (Null when empty).
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Json, String), BackendError> {
        let resp = req.send().await.map_err(|e| retry::transport(&e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(|e| retry::transport(&e))?;
        if let Some(err) = retry::classify(status, &headers, &text) {
            let code = serde_json::from_str::<Json>(&text)
                .ok()
                .and_then(|j| j["error_code"].as_str().map(str::to_owned))
                .unwrap_or_default();
            // Callers that expect an error code get it through the body.
            if !code.is_empty() && matches!(err, BackendError::Rejected { .. }) {
                return Ok((status, json!({ "error_code": code, "message": text }), text));
            }
            return Err(err);
        }
        let body = if text.trim().is_empty() {
            Json::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Json::Null)
        };
        Ok((status, body, text))
    }

    /// A JSON call that must succeed.
    async fn call(&self, method: Method, path: &str, body: &Json) -> Result<Json, BackendError> {
        let req = self.request(method.clone(), path);
        let req = if method == Method::GET {
            req
        } else {
            req.json(body)
        };
        let (status, json, text) = self.send(req).await?;
        if !status.is_success() {
            return Err(BackendError::Rejected {
                reason: format!(
                    "MLflow {path}: HTTP {}: {}",
                    status.as_u16(),
                    truncate(&text, 300)
                ),
            });
        }
        Ok(json)
    }

    async fn experiment(&mut self, name: &str) -> Result<String, BackendError> {
        if !self.st.experiment_id.is_empty() {
            return Ok(self.st.experiment_id.clone());
        }
        for _ in 0..2 {
            let req = self
                .request(Method::GET, "/api/2.0/mlflow/experiments/get-by-name")
                .query(&[("experiment_name", name)]);
            let (status, body, text) = self.send(req).await?;
            if status.is_success() {
                if let Some(id) = body["experiment"]["experiment_id"].as_str() {
                    self.st.experiment_id = id.to_owned();
                    return Ok(id.to_owned());
                }
            } else if body["error_code"] != "RESOURCE_DOES_NOT_EXIST" {
                return Err(BackendError::Rejected {
                    reason: format!("MLflow experiment {name:?}: {}", truncate(&text, 300)),
                });
            }
            let req = self
                .request(Method::POST, "/api/2.0/mlflow/experiments/create")
                .json(&json!({ "name": name }));
            let (status, body, text) = self.send(req).await?;
            if status.is_success() {
                if let Some(id) = body["experiment_id"].as_str() {
                    self.st.experiment_id = id.to_owned();
                    return Ok(id.to_owned());
                }
            } else if body["error_code"] != "RESOURCE_ALREADY_EXISTS" {
                return Err(BackendError::Rejected {
                    reason: format!(
                        "creating MLflow experiment {name:?}: {}",
                        truncate(&text, 300)
                    ),
                });
            }
            // Created meanwhile by someone else: look it up again.
        }
        Err(BackendError::retryable(format!(
            "MLflow experiment {name:?} could not be got or created"
        )))
    }

    /// The MLflow run of `run`: found by its runcore id, else created.
    async fn ensure_run(&mut self, run: &RunInfo) -> Result<(), BackendError> {
        if !self.st.run_id.is_empty() {
            return Ok(());
        }
        let exp = self.experiment(&run.project).await?;
        let found = self
            .call(
                Method::POST,
                "/api/2.0/mlflow/runs/search",
                &json!({
                    "experiment_ids": [exp],
                    "filter": format!("tags.`{TAG_RUN_ID}` = '{}'", run.id),
                    "max_results": 1,
                }),
            )
            .await?;
        let info = if let Some(r) = found["runs"].as_array().and_then(|r| r.first()) {
            r["info"].clone()
        } else {
            let mut tags = vec![
                json!({"key": TAG_RUN_ID, "value": run.id}),
                json!({"key": "mlflow.runName", "value": run.name}),
                json!({"key": "mlflow.source.name", "value": "runcore"}),
            ];
            for (k, v) in [
                ("runcore.entity", &run.entity),
                ("runcore.group", &run.group),
                ("runcore.job_type", &run.job_type),
                ("mlflow.note.content", &run.notes),
            ] {
                if !v.is_empty() {
                    tags.push(json!({"key": k, "value": truncate(v, MAX_TAG_VALUE)}));
                }
            }
            if !run.tags.is_empty() {
                tags.push(json!({"key": "runcore.tags", "value": truncate(&run.tags.join(","), MAX_TAG_VALUE)}));
                for t in &run.tags {
                    tags.push(json!({"key": format!("tag.{}", key(t)), "value": "true"}));
                }
            }
            let created = self
                .call(
                    Method::POST,
                    "/api/2.0/mlflow/runs/create",
                    &json!({
                        "experiment_id": exp,
                        "run_name": run.name,
                        "start_time": ms(run.start_time),
                        "tags": tags,
                    }),
                )
                .await?;
            created["run"]["info"].clone()
        };
        let id = info["run_id"].as_str().unwrap_or_default().to_owned();
        if id.is_empty() {
            return Err(BackendError::retryable(
                "MLflow returned a run without an id",
            ));
        }
        self.st.run_id = id;
        self.st.artifact_uri = info["artifact_uri"].as_str().unwrap_or_default().to_owned();
        Ok(())
    }

    async fn log_batch(&self, b: &mut LogBatch) -> Result<(), BackendError> {
        if b.is_empty() {
            return Ok(());
        }
        let body = json!({
            "run_id": self.st.run_id,
            "metrics": std::mem::take(&mut b.metrics),
            "params": std::mem::take(&mut b.params),
            "tags": std::mem::take(&mut b.tags),
        });
        self.call(Method::POST, "/api/2.0/mlflow/runs/log-batch", &body)
            .await
            .map(|_| ())
    }

    async fn push(&self, b: &mut LogBatch) -> Result<(), BackendError> {
        if b.full() {
            self.log_batch(b).await?;
        }
        Ok(())
    }

    async fn set_tag(&self, k: &str, v: &str) -> Result<(), BackendError> {
        self.call(
            Method::POST,
            "/api/2.0/mlflow/runs/set-tag",
            &json!({"run_id": self.st.run_id, "key": k, "value": truncate(v, MAX_TAG_VALUE)}),
        )
        .await
        .map(|_| ())
    }

    /// Uploads bytes as artifact `path` through the proxied artifact API.
    async fn upload(&mut self, path: &str, bytes: Vec<u8>) -> Result<(), BackendError> {
        let Some(root) = self.st.artifact_uri.strip_prefix("mlflow-artifacts:") else {
            if self.st.warned.insert("artifacts".into()) {
                tracing::warn!(
                    artifact_uri = %self.st.artifact_uri,
                    "MLflow run's artifacts are not served by the tracking server (start it with --artifacts-destination); artifacts are not uploaded"
                );
            }
            return Ok(());
        };
        let root = root.trim_start_matches('/');
        let url = format!(
            "/api/2.0/mlflow-artifacts/artifacts/{root}/{}",
            path.trim_start_matches('/')
        );
        let (status, _, text) = self
            .send(self.request(Method::PUT, &url).body(bytes))
            .await?;
        if !status.is_success() {
            return Err(BackendError::Rejected {
                reason: format!("uploading artifact {path}: {}", truncate(&text, 300)),
            });
        }
        Ok(())
    }

    async fn upload_file(&mut self, dir: &std::path::Path, name: &str) -> Result<(), BackendError> {
        let path = dir.join(store::FILES_DIR).join(name);
        match tokio::fs::read(&path).await {
            Ok(bytes) => self.upload(name, bytes).await,
            Err(e) => {
                tracing::warn!("saved file {} not uploaded to MLflow: {e}", path.display());
                Ok(())
            }
        }
    }

    fn params(
        &mut self,
        config: &BTreeMap<String, Value>,
        b: &mut LogBatch,
        tags: &mut Vec<(String, String)>,
    ) {
        let mut leaves = Vec::new();
        for (k, v) in config {
            flatten(k, v, &mut leaves);
        }
        let mut truncated = Vec::new();
        for (k, v) in leaves {
            let k = key(&k);
            let mut text = param_text(v);
            if text.chars().count() > MAX_PARAM_VALUE {
                text = truncate(&text, MAX_PARAM_VALUE);
                truncated.push(k.clone());
            }
            match self.st.params.get(&k) {
                Some(old) if *old == text => {}
                Some(_) => {
                    if self.st.warned.insert(format!("param:{k}")) {
                        tracing::warn!(param = %k, "config value changed after it was logged; MLflow params cannot change, so the new value goes to tag runcore.param_changed.{k}");
                    }
                    tags.push((format!("runcore.param_changed.{k}"), text));
                }
                None => {
                    self.st.params.insert(k.clone(), text.clone());
                    b.params.push(json!({"key": k, "value": text}));
                }
            }
        }
        if !truncated.is_empty() {
            tags.push(("runcore.truncated_params".into(), truncated.join(",")));
        }
    }
}

#[async_trait::async_trait]
impl Backend for Mlflow {
    fn name(&self) -> &'static str {
        "mlflow"
    }

    fn restore(&mut self, state: Json) {
        if let Ok(st) = serde_json::from_value(state) {
            self.st = st;
        }
    }

    fn save(&self) -> Json {
        serde_json::to_value(&self.st).unwrap_or(Json::Null)
    }

    async fn deliver(&mut self, batch: &Batch<'_>) -> Result<(), BackendError> {
        self.ensure_run(batch.run).await?;
        let mut b = LogBatch::default();
        let mut tags: Vec<(String, String)> = Vec::new();
        let mut uploads: Vec<String> = Vec::new();
        let mut summary: Option<&BTreeMap<String, Value>> = None;
        let mut alerts = false;
        let mut end: Option<(RunState, f64)> = None;
        for event in &batch.events {
            match event {
                Event::Start => {
                    if batch.run.resumed {
                        tags.push((TAG_STATE.into(), "running".into()));
                    }
                }
                Event::Config(config) => self.params(config, &mut b, &mut tags),
                Event::History {
                    step,
                    timestamp,
                    values,
                    ..
                } => {
                    let mut leaves = Vec::new();
                    for (k, v) in values {
                        flatten(k, v, &mut leaves);
                    }
                    for (k, v) in leaves {
                        match metric_value(v) {
                            Some(x) => {
                                b.metrics.push(json!({"key": key(&k), "value": number(x), "timestamp": ms(*timestamp), "step": step}));
                                self.push(&mut b).await?;
                            }
                            None => {
                                if self.st.warned.insert(format!("metric:{k}")) {
                                    tracing::warn!(key = %k, "non-numeric value not sent to MLflow as a metric (it is in the local store)");
                                }
                            }
                        }
                    }
                }
                Event::System { timestamp, metrics } => {
                    let step = self.st.system_step;
                    self.st.system_step += 1;
                    for (k, v) in metrics {
                        b.metrics.push(json!({"key": key(&format!("system/{k}")), "value": number(*v), "timestamp": ms(*timestamp), "step": step}));
                        self.push(&mut b).await?;
                    }
                }
                Event::Summary(s) => summary = Some(s),
                Event::Alert {
                    title,
                    text,
                    level,
                    sent,
                    ..
                } => {
                    alerts = true;
                    if *sent {
                        tags.push(("runcore.alert".into(), format!("[{level}] {title}: {text}")));
                    }
                }
                Event::Files(files) => uploads.extend(uploads_on_save(files)),
                Event::State {
                    state, timestamp, ..
                } => {
                    tags.push((TAG_STATE.into(), state_name(*state).into()));
                    if crate::run::state::is_terminal(*state) {
                        end = Some((*state, *timestamp));
                        uploads.extend(batch.uploads_at_end());
                    }
                }
            }
        }
        for (k, v) in tags {
            b.tags
                .push(json!({"key": k, "value": truncate(&v, MAX_TAG_VALUE)}));
            self.push(&mut b).await?;
        }
        self.log_batch(&mut b).await?;
        uploads.sort();
        uploads.dedup();
        for name in uploads {
            self.upload_file(batch.dir, &name).await?;
        }
        if alerts {
            let bytes = tokio::fs::read(batch.dir.join(store::ALERTS_JSONL))
                .await
                .unwrap_or_default();
            self.upload(store::ALERTS_JSONL, bytes).await?;
        }
        if let Some(s) = summary {
            let now = crate::run::now();
            if end.is_some() || now - self.st.last_summary_upload >= SUMMARY_EVERY {
                self.upload(store::SUMMARY_JSON, value::map_to_json(s).into_bytes())
                    .await?;
                self.st.last_summary_upload = now;
            }
        }
        if let Some((state, at)) = end {
            self.call(
                Method::POST,
                "/api/2.0/mlflow/runs/update",
                &json!({"run_id": self.st.run_id, "status": status_of(state), "end_time": ms(at)}),
            )
            .await?;
        } else if batch.events.iter().any(|e| matches!(e, Event::Start)) && batch.run.resumed {
            self.call(
                Method::POST,
                "/api/2.0/mlflow/runs/update",
                &json!({"run_id": self.st.run_id, "status": "RUNNING"}),
            )
            .await?;
        }
        Ok(())
    }

    async fn heartbeat(&mut self, run: &RunInfo) -> Result<bool, BackendError> {
        self.ensure_run(run).await?;
        self.set_tag(TAG_HEARTBEAT, &format!("{:.3}", crate::run::now()))
            .await?;
        Ok(false)
    }
}

/// `runcore reap`: marks MLflow runs that runcore created, are still RUNNING and
/// whose heartbeat is older than `stale` as FAILED with `runcore.state=crashed`.
/// Returns the MLflow run ids it marked.
pub async fn reap(settings: MlflowSettings, stale: Duration) -> Result<Vec<String>, BackendError> {
    let m = Mlflow::new(settings);
    let exps = m
        .call(
            Method::POST,
            "/api/2.0/mlflow/experiments/search",
            &json!({"max_results": 1000}),
        )
        .await?;
    let ids: Vec<String> = exps["experiments"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["experiment_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let now = crate::run::now();
    let mut marked = Vec::new();
    let mut page_token = String::new();
    loop {
        let mut body = json!({
            "experiment_ids": ids,
            "filter": "attributes.status = 'RUNNING'",
            "max_results": 1000,
        });
        if !page_token.is_empty() {
            body["page_token"] = json!(page_token);
        }
        let found = m
            .call(Method::POST, "/api/2.0/mlflow/runs/search", &body)
            .await?;
        for run in found["runs"].as_array().into_iter().flatten() {
            let tags = run["data"]["tags"].as_array().cloned().unwrap_or_default();
            let tag = |k: &str| {
                tags.iter()
                    .find(|t| t["key"] == k)
                    .and_then(|t| t["value"].as_str().map(str::to_owned))
            };
            if tag(TAG_RUN_ID).is_none() {
                continue; // not a runcore run
            }
            let start = run["info"]["start_time"].as_f64().unwrap_or(0.0) / 1000.0;
            let beat = tag(TAG_HEARTBEAT)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(start);
            if now - beat < stale.as_secs_f64() {
                continue;
            }
            let Some(id) = run["info"]["run_id"].as_str() else {
                continue;
            };
            m.call(
                Method::POST,
                "/api/2.0/mlflow/runs/set-tag",
                &json!({"run_id": id, "key": TAG_STATE, "value": "crashed"}),
            )
            .await?;
            m.call(
                Method::POST,
                "/api/2.0/mlflow/runs/update",
                &json!({"run_id": id, "status": "FAILED", "end_time": ms(now)}),
            )
            .await?;
            marked.push(id.to_owned());
        }
        match found["next_page_token"].as_str() {
            Some(t) if !t.is_empty() => page_token = t.to_owned(),
            _ => break,
        }
    }
    Ok(marked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_params_and_numbers() {
        assert_eq!(key("val/acc"), "val/acc");
        assert_eq!(key("a:b@c"), "a_b_c");
        assert_eq!(key(""), "_");
        assert_eq!(number(f64::NAN), json!("NaN"));
        assert_eq!(number(f64::NEG_INFINITY), json!("-Infinity"));
        assert_eq!(number(0.5), json!(0.5));
        let mut leaves = Vec::new();
        let v = value::map(
            [
                ("b".to_string(), value::int(1)),
                ("c".to_string(), value::string("x")),
            ]
            .into(),
        );
        flatten("a", &v, &mut leaves);
        let got: Vec<(String, String)> = leaves
            .iter()
            .map(|(k, v)| (k.clone(), param_text(v)))
            .collect();
        assert_eq!(
            got,
            [
                ("a.b".to_string(), "1".to_string()),
                ("a.c".to_string(), "x".to_string())
            ]
        );
        assert_eq!(status_of(RunState::Crashed), "FAILED");
        assert_eq!(status_of(RunState::Killed), "KILLED");
    }

    #[test]
    fn log_batches_respect_the_limits() {
        let b = LogBatch {
            params: vec![json!({}); MAX_PARAMS],
            ..Default::default()
        };
        assert!(b.full());
        let b = LogBatch {
            metrics: vec![json!({}); 950],
            tags: vec![json!({}); 50],
            ..Default::default()
        };
        assert!(b.full());
        assert!(!LogBatch::default().full());
    }

    #[test]
    fn debug_output_hides_credentials() {
        let s = MlflowSettings {
            uri: "http://127.0.0.1:5000".into(),
            token: Some("secret-token".into()),
            username: Some("me".into()),
            password: Some("hunter2".into()),
        };
        let text = format!("{s:?}");
        assert!(
            !text.contains("secret-token") && !text.contains("hunter2"),
            "{text}"
        );
    }
}

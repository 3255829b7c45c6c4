//! The MLflow backend, over MLflow's tracking REST API.
//!
//! project -> experiment (got or created); run -> MLflow run (found again by its
//! `runcore.run_id` tag, so a retried create never makes two); config -> params
//! (flattened with '.', over-long values truncated and listed in a tag, a changed
//! value recorded as a tag instead of an error loop); history -> metrics with step
//! and timestamp (non-numeric values skipped, one warning per key); system metrics
//! -> `system/...` metrics; summary -> `summary.json` artifact; alerts ->
//! `alerts.jsonl` artifact and a tag; console lines -> `output.log` artifact (at
//! most every 10 s, and at the end); saved files -> artifacts (proxied artifact
//! API); end -> status FINISHED / FAILED / KILLED plus tag `runcore.state`;
//! heartbeats -> tag `runcore.heartbeat`; an edit (UpdateRun) -> the run renamed
//! (`runs/update` run_name), its identity tags set again and dropped `tag.<t>`
//! deleted; media values' files -> artifacts at their `media/...` paths;
//! artifacts -> [`artifacts`] (run artifacts, logged models, registered model
//! versions, dataset inputs). Requests respect log-batch's limits.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

mod artifacts;
mod batch;
mod convert;
mod identity;
mod run;

use self::batch::Todo;
pub use self::convert::ms;
use self::convert::truncate;
use super::retry::{self, BackendError};
use super::{http_client, Backend, Batch};
use crate::proto::v1::RunInfo;
use crate::store;

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
    /// The run's tags as MLflow has them (`tag.<t>`), so an edit can remove the
    /// ones it dropped.
    #[serde(default)]
    tags: Vec<String>,
    #[serde(skip)]
    last_summary_upload: f64,
    /// Artifact versions ("name:vN") whose files were uploaded.
    #[serde(default)]
    artifacts_sent: BTreeSet<String>,
    /// Artifact version -> the MLflow logged model made of it.
    #[serde(default)]
    models: BTreeMap<String, String>,
    /// Console lines came since output.log was last uploaded.
    #[serde(default)]
    output_pending: bool,
    #[serde(skip)]
    last_output_upload: f64,
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
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: &Json,
    ) -> Result<Json, BackendError> {
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

    /// Uploads bytes as the run's artifact `path` through the proxied artifact API.
    async fn upload(&mut self, path: &str, bytes: Vec<u8>) -> Result<(), BackendError> {
        let root = self.st.artifact_uri.clone();
        self.upload_to(&root, path, bytes).await
    }

    /// Uploads bytes as `path` under an artifact root (a run's, a logged model's).
    async fn upload_to(
        &mut self,
        uri: &str,
        path: &str,
        bytes: Vec<u8>,
    ) -> Result<(), BackendError> {
        let Some(root) = uri.strip_prefix("mlflow-artifacts:") else {
            if self.st.warned.insert("artifacts".into()) {
                tracing::warn!(
                    artifact_uri = %uri,
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
        let mut todo = Todo::default();
        for event in &batch.events {
            self.event(batch, event, &mut b, &mut todo).await?;
        }
        for (k, v) in std::mem::take(&mut todo.tags) {
            b.tags
                .push(json!({"key": k, "value": truncate(&v, MAX_TAG_VALUE)}));
            self.push(&mut b).await?;
        }
        self.log_batch(&mut b).await?;
        self.finish_batch(batch, todo).await
    }

    async fn heartbeat(&mut self, run: &RunInfo) -> Result<bool, BackendError> {
        self.ensure_run(run).await?;
        self.set_tag(TAG_HEARTBEAT, &format!("{:.3}", crate::clock::now()))
            .await?;
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::convert::*;
    use super::*;
    use crate::proto::v1::RunState;
    use crate::value;

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

//! One batch of events in MLflow requests: params from the config, metrics from
//! history and system samples, tags, then uploads, the summary and the status.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::json;

use super::convert::{flatten, key, metric_value, ms, number, param_text, status_of, truncate};
use super::identity::identity_tags;
use super::{LogBatch, Mlflow, MAX_PARAM_VALUE, SUMMARY_EVERY, TAG_STATE};
use crate::backend::retry::BackendError;
use crate::backend::{media_paths, uploads_on_save, Batch, Event};
use crate::proto::v1::{RunState, Value};
use crate::proto::wal::ArtifactRecord;
use crate::semantics::state::state_name;
use crate::store;
use crate::value;

impl Mlflow {
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
    /// Adds one event to the log-batch (sending it when full) or to what is left
    /// to do after it.
    pub(super) async fn event<'a>(
        &mut self,
        batch: &Batch<'_>,
        event: &'a Event,
        b: &mut LogBatch,
        todo: &mut Todo<'a>,
    ) -> Result<(), BackendError> {
        match event {
            Event::Start => {
                if batch.run.resumed {
                    todo.tags.push((TAG_STATE.into(), "running".into()));
                }
            }
            Event::Config(config) => self.params(config, b, &mut todo.tags),
            Event::History {
                step,
                timestamp,
                values,
                ..
            } => {
                todo.uploads.extend(media_paths(values));
                self.history(*step, *timestamp, values, b).await?
            }
            Event::Artifact(a) => todo.artifacts.push(a),
            Event::System { timestamp, metrics } => {
                let step = self.st.system_step;
                self.st.system_step += 1;
                for (k, v) in metrics {
                    b.metrics.push(json!({"key": key(&format!("system/{k}")), "value": number(*v), "timestamp": ms(*timestamp), "step": step}));
                    self.push(b).await?;
                }
            }
            Event::Summary(s) => todo.summary = Some(s),
            Event::Alert {
                title,
                text,
                level,
                sent,
                ..
            } => {
                todo.alerts = true;
                if *sent {
                    todo.tags
                        .push(("runcore.alert".into(), format!("[{level}] {title}: {text}")));
                }
            }
            Event::Files(files) => todo.uploads.extend(uploads_on_save(files)),
            Event::Edit => {
                todo.edited = true;
                todo.tags.extend(identity_tags(batch.run));
            }
            Event::Output { .. } => todo.output = true,
            Event::State {
                state, timestamp, ..
            } => {
                todo.tags
                    .push((TAG_STATE.into(), state_name(*state).into()));
                if crate::semantics::state::is_terminal(*state) {
                    todo.end = Some((*state, *timestamp));
                    todo.uploads.extend(batch.uploads_at_end());
                }
            }
        }
        Ok(())
    }

    /// A history row's numeric leaves as metrics.
    async fn history(
        &mut self,
        step: i64,
        timestamp: f64,
        values: &[(String, Value)],
        b: &mut LogBatch,
    ) -> Result<(), BackendError> {
        let mut leaves = Vec::new();
        for (k, v) in values {
            flatten(k, v, &mut leaves);
        }
        for (k, v) in leaves {
            match metric_value(v) {
                Some(x) => {
                    b.metrics.push(json!({"key": key(&k), "value": number(x), "timestamp": ms(timestamp), "step": step}));
                    self.push(b).await?;
                }
                None => {
                    if self.st.warned.insert(format!("metric:{k}")) {
                        tracing::warn!(key = %k, "non-numeric value not sent to MLflow as a metric (it is in the local store)");
                    }
                }
            }
        }
        Ok(())
    }

    /// After the batch's metrics, params and tags: uploads, alerts, the summary
    /// and the run's status.
    pub(super) async fn finish_batch(
        &mut self,
        batch: &Batch<'_>,
        todo: Todo<'_>,
    ) -> Result<(), BackendError> {
        let mut uploads = todo.uploads;
        uploads.sort();
        uploads.dedup();
        for name in uploads {
            self.upload_file(batch.dir, &name).await?;
        }
        for a in todo.artifacts {
            self.artifact(batch, a).await?;
        }
        if todo.alerts {
            let bytes = tokio::fs::read(batch.dir.join(store::ALERTS_JSONL))
                .await
                .unwrap_or_default();
            self.upload(store::ALERTS_JSONL, bytes).await?;
        }
        if todo.edited {
            self.edited(batch.run).await?;
        }
        self.upload_output(batch, todo.output, todo.end.is_some())
            .await?;
        if let Some(s) = todo.summary {
            let now = crate::clock::now();
            let due = now - self.st.last_summary_upload >= SUMMARY_EVERY;
            if todo.end.is_some() || todo.edited || due {
                self.upload(store::SUMMARY_JSON, value::map_to_json(s).into_bytes())
                    .await?;
                self.st.last_summary_upload = now;
            }
        }
        if let Some((state, at)) = todo.end {
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
}

impl Mlflow {
    /// The run's console (output.log in its directory) as an artifact, when lines
    /// came: at most every SUMMARY_EVERY while the run is open, and at its end.
    async fn upload_output(
        &mut self,
        batch: &Batch<'_>,
        changed: bool,
        end: bool,
    ) -> Result<(), BackendError> {
        self.st.output_pending |= changed;
        let now = crate::clock::now();
        if !self.st.output_pending || !(end || now - self.st.last_output_upload >= SUMMARY_EVERY) {
            return Ok(());
        }
        let bytes = tokio::fs::read(batch.dir.join(store::OUTPUT_LOG))
            .await
            .unwrap_or_default();
        self.upload(store::OUTPUT_LOG, bytes).await?;
        self.st.last_output_upload = now;
        self.st.output_pending = false;
        Ok(())
    }
}

/// What a batch leaves to do after its metrics, params and tags.
#[derive(Default)]
pub(super) struct Todo<'a> {
    pub(super) tags: Vec<(String, String)>,
    pub(super) uploads: Vec<String>,
    pub(super) summary: Option<&'a BTreeMap<String, Value>>,
    pub(super) alerts: bool,
    /// What the run did with artifacts, in log order.
    pub(super) artifacts: Vec<&'a ArtifactRecord>,
    /// The run was edited: rename it, drop removed tags, upload the summary now.
    pub(super) edited: bool,
    /// Console lines arrived: output.log is uploaded (at most every SUMMARY_EVERY,
    /// and at the end).
    pub(super) output: bool,
    /// The run ended: its state and when.
    pub(super) end: Option<(RunState, f64)>,
}

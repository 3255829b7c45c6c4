//! W&B's GraphQL API: the run (`UpsertBucket`), alerts
//! (`NotifyScriptableRunAlert`), file uploads (`CreateRunFiles`) and whether the
//! run was stopped (`RunStoppedStatus`).

use std::path::Path;

use serde_json::{json, Value as Json};
use tokio::time::Instant;

use super::plan::Plan;
use super::{Wandb, CONFIG_EVERY};
use crate::backend::retry::BackendError;
use crate::backend::{Backend, Batch};
use crate::proto::v1::RunInfo;
use crate::store;

pub(super) const UPSERT_BUCKET: &str = "mutation UpsertBucket($name: String, $project: String, \
$entity: String, $groupName: String, $displayName: String, $notes: String, \
$config: JSONString, $host: String, $program: String, $jobType: String, $tags: [String!], \
$summaryMetrics: JSONString) {
  upsertBucket(input: {name: $name, modelName: $project, entityName: $entity, \
groupName: $groupName, displayName: $displayName, notes: $notes, config: $config, \
host: $host, jobProgram: $program, jobType: $jobType, tags: $tags, \
summaryMetrics: $summaryMetrics}) {
    bucket { id name displayName project { id name entity { id name } } }
    inserted
  }
}";

pub(super) const CREATE_RUN_FILES: &str = "mutation CreateRunFiles($entity: String!, $project: String!, \
$run: String!, $files: [String!]!) {
  createRunFiles(input: {entityName: $entity, projectName: $project, runName: $run, files: $files}) {
    runID
    uploadHeaders
    files { name uploadUrl }
  }
}";

pub(super) const NOTIFY_ALERT: &str = "mutation NotifyScriptableRunAlert($entityName: String!, \
$projectName: String!, $runName: String!, $title: String!, $text: String!, \
$severity: AlertSeverity = INFO) {
  notifyScriptableRunAlert(input: {entityName: $entityName, projectName: $projectName, \
runName: $runName, title: $title, text: $text, severity: $severity}) {
    success
  }
}";

pub(super) const RUN_STOPPED: &str =
    "query RunStoppedStatus($entityName: String, $projectName: String, \
$runId: String!) {
  project(name: $projectName, entityName: $entityName) {
    run(name: $runId) { stopped }
  }
}";

impl Wandb {
    /// A GraphQL operation; its `data`.
    pub(super) async fn graphql(
        &self,
        op: &str,
        query: &str,
        variables: Json,
    ) -> Result<Json, BackendError> {
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

    /// Host and program for UpsertBucket, from the run's metadata.json.
    pub(super) async fn read_metadata(&mut self, dir: &Path) {
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

    /// Creates or updates the run with its identity and `config` (and, after an
    /// edit, its summary: W&B's public API edits a run's summary this way).
    pub(super) async fn upsert(
        &mut self,
        run: &RunInfo,
        config: &str,
        summary: Option<&str>,
    ) -> Result<(), BackendError> {
        let opt = |s: &str| if s.is_empty() { Json::Null } else { json!(s) };
        let entity = if self.st.entity.is_empty() {
            &run.entity
        } else {
            &self.st.entity
        };
        let mut vars = json!({
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
        if let Some(summary) = summary {
            vars["summaryMetrics"] = json!(summary);
        }
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
    pub(super) async fn flush_config(
        &mut self,
        run: &RunInfo,
        force: bool,
    ) -> Result<(), BackendError> {
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
            self.upsert(run, &config, None).await?;
        }
        Ok(())
    }

    /// Sends the batch's alerts that the server does not have yet.
    pub(super) async fn notify_alerts(
        &mut self,
        batch: &Batch<'_>,
        plan: &Plan,
    ) -> Result<(), BackendError> {
        let run = batch.run;
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
            batch.checkpoint.save(self.save()).await;
        }
        Ok(())
    }
}

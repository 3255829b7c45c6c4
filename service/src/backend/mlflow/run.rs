//! The MLflow run of a runcore run: found again by its `runcore.run_id` tag, else
//! created, so a retried create never makes two.
//!
//! A shared run may be forwarded by several sidecars (one per host) at once, and
//! two of them may both find nothing and create. So a shared run's MLflow start
//! time is the moment it is created (not the local run's start, which another
//! host's sidecar may have earlier but create later), and after creating, the
//! sidecar looks again: every run with the tag, oldest first; the oldest is the
//! run, and a sidecar whose own run is not it deletes its own and uses the oldest.
//! A sidecar sees its own run and every run created before it, so all settle on
//! the same one, as long as the hosts' clocks agree to better than the time
//! between two creates (two creates in the same millisecond could still split).

use reqwest::Method;
use serde_json::{json, Value as Json};

use super::convert::{ms, truncate};
use super::identity::identity_tags;
use super::{Mlflow, MAX_TAG_VALUE, TAG_RUN_ID};
use crate::backend::retry::BackendError;
use crate::proto::v1::RunInfo;

impl Mlflow {
    /// The MLflow run of `run`: found by its runcore id, else created.
    pub(super) async fn ensure_run(&mut self, run: &RunInfo) -> Result<(), BackendError> {
        if !self.st.run_id.is_empty() {
            return Ok(());
        }
        let exp = self.experiment(&run.project).await?;
        let info = match self.tagged(&exp, &run.id).await?.first() {
            Some(found) => found["info"].clone(),
            None => {
                let created = self.create(&exp, run).await?;
                if run.shared {
                    self.oldest(&exp, run, created).await?
                } else {
                    created
                }
            }
        };
        let id = info["run_id"].as_str().unwrap_or_default().to_owned();
        if id.is_empty() {
            return Err(BackendError::retryable(
                "MLflow returned a run without an id",
            ));
        }
        self.st.run_id = id;
        self.st.tags.clone_from(&run.tags);
        self.st.artifact_uri = info["artifact_uri"].as_str().unwrap_or_default().to_owned();
        Ok(())
    }

    /// The live MLflow runs tagged with runcore id `id`, oldest first.
    async fn tagged(&self, exp: &str, id: &str) -> Result<Vec<Json>, BackendError> {
        let found = self
            .call(
                Method::POST,
                "/api/2.0/mlflow/runs/search",
                &json!({
                    "experiment_ids": [exp],
                    "filter": format!("tags.`{TAG_RUN_ID}` = '{id}'"),
                    "order_by": ["attributes.start_time ASC"],
                    "max_results": 100,
                }),
            )
            .await?;
        Ok(found["runs"].as_array().cloned().unwrap_or_default())
    }

    /// After creating a shared run's MLflow run: the oldest run with its tag is the
    /// run; ours, if it is another, is deleted.
    async fn oldest(&self, exp: &str, run: &RunInfo, created: Json) -> Result<Json, BackendError> {
        let all = self.tagged(exp, &run.id).await?;
        let Some(first) = all.first().map(|r| r["info"].clone()) else {
            return Ok(created);
        };
        if first["run_id"] != created["run_id"] {
            tracing::info!(run = %run.id, "another sidecar created this shared run's MLflow run first: using it");
            self.call(
                Method::POST,
                "/api/2.0/mlflow/runs/delete",
                &json!({"run_id": created["run_id"]}),
            )
            .await?;
        }
        Ok(first)
    }

    /// Creates the MLflow run, with its tags. A shared run's start time is now
    /// (see the module doc).
    async fn create(&self, exp: &str, run: &RunInfo) -> Result<Json, BackendError> {
        let mut tags = vec![
            json!({"key": TAG_RUN_ID, "value": run.id}),
            json!({"key": "mlflow.source.name", "value": "runcore"}),
        ];
        if !run.entity.is_empty() {
            tags.push(
                json!({"key": "runcore.entity", "value": truncate(&run.entity, MAX_TAG_VALUE)}),
            );
        }
        for (k, v) in identity_tags(run)
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
        {
            tags.push(json!({"key": k, "value": truncate(&v, MAX_TAG_VALUE)}));
        }
        let start = if run.shared {
            crate::clock::now()
        } else {
            run.start_time
        };
        let body = json!({"experiment_id": exp, "run_name": run.name, "start_time": ms(start), "tags": tags});
        let created = self
            .call(Method::POST, "/api/2.0/mlflow/runs/create", &body)
            .await?;
        Ok(created["run"]["info"].clone())
    }
}

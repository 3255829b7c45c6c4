//! A run's identity in MLflow tags (name, group, job type, notes, tags), sent when
//! the run is created and again after an edit (UpdateRun), which also renames the
//! MLflow run and deletes the `tag.<t>` of tags the edit dropped.

use reqwest::Method;
use serde_json::json;

use super::convert::{key, truncate};
use super::{Mlflow, MAX_TAG_VALUE};
use crate::backend::retry::BackendError;
use crate::proto::v1::RunInfo;

/// The identity tags of a run (empty values included: an edit that clears the
/// notes clears the tag).
pub(super) fn identity_tags(run: &RunInfo) -> Vec<(String, String)> {
    let mut tags = vec![
        ("mlflow.runName".to_owned(), run.name.clone()),
        ("runcore.group".to_owned(), run.group.clone()),
        ("runcore.job_type".to_owned(), run.job_type.clone()),
        ("mlflow.note.content".to_owned(), run.notes.clone()),
        (
            "runcore.tags".to_owned(),
            truncate(&run.tags.join(","), MAX_TAG_VALUE),
        ),
    ];
    tags.extend(
        run.tags
            .iter()
            .map(|t| (format!("tag.{}", key(t)), "true".to_owned())),
    );
    tags
}

impl Mlflow {
    /// After an edit: renames the MLflow run and deletes the tags it dropped (the
    /// identity tags themselves went with the batch's log-batch).
    pub(super) async fn edited(&mut self, run: &RunInfo) -> Result<(), BackendError> {
        self.call(
            Method::POST,
            "/api/2.0/mlflow/runs/update",
            &json!({"run_id": self.st.run_id, "run_name": run.name}),
        )
        .await?;
        let dropped: Vec<String> = self
            .st
            .tags
            .iter()
            .filter(|t| !run.tags.contains(t))
            .cloned()
            .collect();
        for t in dropped {
            let req = self
                .request(Method::POST, "/api/2.0/mlflow/runs/delete-tag")
                .json(&json!({"run_id": self.st.run_id, "key": format!("tag.{}", key(&t))}));
            // A tag MLflow no longer has is what we want: its error is not one.
            self.send(req).await?;
        }
        self.st.tags.clone_from(&run.tags);
        Ok(())
    }
}

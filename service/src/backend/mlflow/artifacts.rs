//! Artifacts in MLflow. A logged version's files become run artifacts under
//! `artifacts/<name>/<version>/` (with runcore's manifest beside them); a version
//! of type `model` also becomes an MLflow logged model (found again by its
//! `runcore.artifact` tag, so a retry never makes two). A link into a registry
//! collection becomes a version of the registered model of that name, made from
//! the version's logged model (found again by its source) and given the link's
//! aliases (MLflow reserves `latest`). A used version becomes a dataset input of
//! the run. Changed aliases of an artifact have nothing to map to.

use reqwest::Method;
use serde_json::{json, Value as Json};

use super::convert::truncate;
use super::Mlflow;
use crate::artifacts::manifest::Manifest;
use crate::backend::retry::BackendError;
use crate::backend::Batch;
use crate::proto::v1::{Artifact, LinkedArtifact};
use crate::proto::wal::{artifact_record::Kind, ArtifactRecord};

/// The tag a logged model carries: the artifact version it was made of.
const TAG_ARTIFACT: &str = "runcore.artifact";

fn key(a: &Artifact) -> String {
    format!("{}:{}", a.name, a.version)
}

/// The artifact root of a URI as the proxied API names it.
fn root_of(uri: &str) -> &str {
    uri.trim_end_matches('/')
}

impl Mlflow {
    pub(super) async fn artifact(
        &mut self,
        batch: &Batch<'_>,
        rec: &ArtifactRecord,
    ) -> Result<(), BackendError> {
        match &rec.kind {
            Some(Kind::Logged(a)) => self.logged(batch, a).await,
            Some(Kind::Used(a)) => self.used(a).await,
            Some(Kind::Linked(l)) => self.linked(batch, l).await,
            Some(Kind::Aliased(_)) | None => Ok(()),
        }
    }

    /// Uploads a version's stored files under `prefix` of the artifact root `uri`.
    async fn upload_files(
        &mut self,
        batch: &Batch<'_>,
        m: &Manifest,
        uri: &str,
        prefix: &str,
    ) -> Result<(), BackendError> {
        for (path, e) in m.files.iter().filter(|(_, e)| !e.sha256.is_empty()) {
            let blob = crate::artifacts::blob_path(batch.artifacts, &e.sha256);
            match tokio::fs::read(&blob).await {
                Ok(bytes) => {
                    self.upload_to(uri, &format!("{prefix}{path}"), bytes)
                        .await?
                }
                // A file:// reference read only for its digest: nothing stored.
                Err(_) if !e.reference.is_empty() => {}
                Err(err) => {
                    return Err(BackendError::Rejected {
                        reason: format!("artifact file {path}: {}: {err}", blob.display()),
                    })
                }
            }
        }
        Ok(())
    }

    async fn logged(&mut self, batch: &Batch<'_>, a: &Artifact) -> Result<(), BackendError> {
        let k = key(a);
        if self.st.artifacts_sent.contains(&k) {
            return Ok(());
        }
        let m = batch.manifest(a).await?;
        let uri = self.st.artifact_uri.clone();
        let prefix = format!("artifacts/{}/{}/", a.name, a.version);
        self.upload_files(batch, &m, &uri, &prefix).await?;
        self.upload(&format!("{prefix}runcore_manifest.json"), m.to_bytes())
            .await?;
        if a.r#type == "model" {
            self.logged_model(batch, a).await?;
        }
        self.st.artifacts_sent.insert(k);
        Ok(())
    }

    /// The MLflow logged model of a version: found by its tag, else made (its
    /// files uploaded, then marked ready).
    async fn logged_model(
        &mut self,
        batch: &Batch<'_>,
        a: &Artifact,
    ) -> Result<String, BackendError> {
        let k = key(a);
        if let Some(id) = self.st.models.get(&k) {
            return Ok(id.clone());
        }
        let found = self
            .call(
                Method::POST,
                "/api/2.0/mlflow/logged-models/search",
                &json!({
                    "experiment_ids": [self.st.experiment_id],
                    "filter": format!("tags.`{TAG_ARTIFACT}` = '{k}'"),
                    "max_results": 1,
                }),
            )
            .await?;
        let ready = |m: &Json| m["info"]["status"] == "LOGGED_MODEL_READY";
        let model = match found["models"].as_array().and_then(|m| m.first()) {
            Some(m) if ready(m) => m["info"].clone(),
            _ => self.make_model(batch, a, &k).await?,
        };
        let id = model["model_id"].as_str().unwrap_or_default().to_owned();
        if id.is_empty() {
            return Err(BackendError::retryable(
                "MLflow returned a logged model without an id",
            ));
        }
        self.st.models.insert(k, id.clone());
        Ok(id)
    }

    async fn make_model(
        &mut self,
        batch: &Batch<'_>,
        a: &Artifact,
        k: &str,
    ) -> Result<Json, BackendError> {
        let created = self
            .call(
                Method::POST,
                "/api/2.0/mlflow/logged-models",
                &json!({
                    "experiment_id": self.st.experiment_id,
                    "name": a.name,
                    "source_run_id": self.st.run_id,
                    "tags": [{"key": TAG_ARTIFACT, "value": k},
                             {"key": "runcore.digest", "value": a.digest}],
                }),
            )
            .await?;
        let info = created["model"]["info"].clone();
        let id = info["model_id"].as_str().unwrap_or_default().to_owned();
        let uri = root_of(info["artifact_uri"].as_str().unwrap_or_default()).to_owned();
        let m = batch.manifest(a).await?;
        self.upload_files(batch, &m, &uri, "").await?;
        self.call(
            Method::PATCH,
            &format!("/api/2.0/mlflow/logged-models/{id}"),
            &json!({"model_id": id, "status": "LOGGED_MODEL_READY"}),
        )
        .await?;
        Ok(info)
    }

    /// A used version: a dataset input of the run.
    async fn used(&mut self, a: &Artifact) -> Result<(), BackendError> {
        let dataset = json!({
            "name": truncate(&a.name, 500),
            "digest": truncate(&a.digest, 36),
            "source_type": "runcore",
            "source": key(a),
        });
        self.call(
            Method::POST,
            "/api/2.0/mlflow/runs/log-inputs",
            &json!({
                "run_id": self.st.run_id,
                "datasets": [{"dataset": dataset, "tags": [{"key": "mlflow.data.context", "value": a.r#type}]}],
            }),
        )
        .await
        .map(|_| ())
    }

    /// A link: a version of the registered model named as the collection.
    async fn linked(&mut self, batch: &Batch<'_>, l: &LinkedArtifact) -> Result<(), BackendError> {
        let Some(a) = &l.artifact else { return Ok(()) };
        let model_id = self.logged_model(batch, a).await?;
        let name = &l.collection;
        let req = self
            .request(Method::POST, "/api/2.0/mlflow/registered-models/create")
            .json(&json!({"name": name}));
        let (status, body, text) = self.send(req).await?;
        if !status.is_success() && body["error_code"] != "RESOURCE_ALREADY_EXISTS" {
            return Err(BackendError::Rejected {
                reason: format!(
                    "creating MLflow registered model {name:?}: {}",
                    truncate(&text, 300)
                ),
            });
        }
        let source = format!("models:/{model_id}");
        let version = match self.find_version(name, &source).await? {
            Some(v) => v,
            None => {
                let made = self
                    .call(
                        Method::POST,
                        "/api/2.0/mlflow/model-versions/create",
                        &json!({"name": name, "source": source, "run_id": self.st.run_id,
                                "model_id": model_id,
                                "tags": [{"key": TAG_ARTIFACT, "value": key(a)}]}),
                    )
                    .await?;
                made["model_version"]["version"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            }
        };
        for alias in l.aliases.iter().filter(|a| *a != "latest") {
            self.call(
                Method::POST,
                "/api/2.0/mlflow/registered-models/alias",
                &json!({"name": name, "alias": alias, "version": version}),
            )
            .await?;
        }
        Ok(())
    }

    /// The version of registered model `name` made from `source`, if any.
    async fn find_version(&self, name: &str, source: &str) -> Result<Option<String>, BackendError> {
        let req = self
            .request(Method::GET, "/api/2.0/mlflow/model-versions/search")
            .query(&[("filter", format!("name='{}'", name.replace('\'', "''")))]);
        let (_, body, _) = self.send(req).await?;
        Ok(body["model_versions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["source"] == source)
            .and_then(|v| v["version"].as_str().map(str::to_owned)))
    }
}

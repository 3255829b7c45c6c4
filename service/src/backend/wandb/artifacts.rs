//! Artifacts through W&B's artifact protocol. A version W&B does not have yet:
//! `CreateArtifact` (with the manifest digest W&B computes, so content it has
//! is deduplicated and comes back COMMITTED), `CreateArtifactManifest`,
//! `CreateArtifactFiles` for upload URLs (none for content W&B has), a PUT of
//! each file with its Content-MD5, the manifest (`wandb_manifest.json`) PUT to
//! its URL, `CommitArtifact`. A use is `UseArtifact`, a link `LinkArtifact` (of
//! the version, made first if W&B lacks it). Each artifact record of the run has
//! a number, like alerts, so a retry or restart never repeats one; the W&B id of
//! each version sent is kept in the cursor. Changed aliases are not sent.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{json, Value as Json};

use super::Wandb;
use crate::artifacts::manifest::{self, Manifest};
use crate::backend::retry::{self, BackendError};
use crate::backend::{Backend, Batch};
use crate::proto::v1::{Artifact, LinkedArtifact};
use crate::proto::wal::{artifact_record::Kind, ArtifactRecord};

const CREATE_ARTIFACT: &str = "mutation CreateArtifact($entityName: String!, \
$projectName: String!, $artifactTypeName: String!, $artifactCollectionName: String!, \
$runName: String, $digest: String!, $description: String, $aliases: [ArtifactAliasInput!], \
$metadata: JSONString, $distributedID: String, $clientID: ID!, $sequenceClientID: ID!) {
  createArtifact(input: {entityName: $entityName, projectName: $projectName, \
artifactTypeName: $artifactTypeName, artifactCollectionName: $artifactCollectionName, \
runName: $runName, digest: $digest, digestAlgorithm: MANIFEST_MD5, description: $description, \
aliases: $aliases, metadata: $metadata, enableDigestDeduplication: true, \
distributedID: $distributedID, clientID: $clientID, sequenceClientID: $sequenceClientID}) {
    artifact { id state artifactSequence { latestArtifact { id } } }
  }
}";

const CREATE_MANIFEST: &str = "mutation CreateArtifactManifest($artifactID: ID!, \
$baseArtifactID: ID, $name: String!, $digest: String!, $entityName: String!, \
$projectName: String!, $runName: String!, $includeUpload: Boolean!) {
  createArtifactManifest(input: {artifactID: $artifactID, baseArtifactID: $baseArtifactID, \
name: $name, digest: $digest, entityName: $entityName, projectName: $projectName, \
runName: $runName, type: FULL}) {
    artifactManifest { id file { id uploadUrl @include(if: $includeUpload) \
uploadHeaders @include(if: $includeUpload) } }
  }
}";

const CREATE_FILES: &str = "mutation CreateArtifactFiles($input: CreateArtifactFilesInput!) {
  createArtifactFiles(input: $input) {
    files { edges { node { uploadUrl uploadHeaders artifact { id } } } }
  }
}";

const COMMIT: &str = "mutation CommitArtifact($artifactID: ID!) {
  commitArtifact(input: {artifactID: $artifactID}) { artifact { id digest } }
}";

const USE: &str = "mutation UseArtifact($input: UseArtifactInput!) {
  useArtifact(input: $input) { artifact { id } }
}";

const LINK: &str = "mutation LinkArtifact($artifactPortfolioName: String!, \
$entityName: String!, $projectName: String!, $aliases: [ArtifactAliasInput!], $artifactId: ID) {
  linkArtifact(input: {artifactPortfolioName: $artifactPortfolioName, entityName: $entityName, \
projectName: $projectName, aliases: $aliases, artifactID: $artifactId}) { versionIndex }
}";

/// Files per CreateArtifactFiles request.
const FILES_PER_REQUEST: usize = 1000;
const MANIFEST_NAME: &str = "wandb_manifest.json";

fn key(a: &Artifact) -> String {
    format!("{}:{}", a.name, a.version)
}

/// W&B's manifest digest: hex MD5 over a header and each "path:digest" line in
/// path order (a file's digest is its base64 MD5; an unread reference's, the
/// reference).
pub(super) fn wandb_digest(m: &Manifest) -> String {
    let mut ctx = md5::Context::new();
    ctx.consume(b"wandb-artifact-manifest-v1\n");
    for (path, e) in &m.files {
        ctx.consume(format!("{path}:{}\n", e.md5).as_bytes());
    }
    format!("{:x}", ctx.finalize())
}

/// `wandb_manifest.json`: each file's digest, size, reference and the artifact
/// W&B first stored its content in.
pub(super) fn wandb_manifest(m: &Manifest, births: &BTreeMap<String, String>) -> Vec<u8> {
    let contents: serde_json::Map<String, Json> = m
        .files
        .iter()
        .map(|(path, e)| {
            let mut entry = json!({"digest": e.md5, "size": e.size});
            if !e.reference.is_empty() {
                entry["ref"] = json!(e.reference);
            }
            if let Some(b) = births.get(path) {
                entry["birthArtifactID"] = json!(b);
            }
            if !e.extra.is_empty() {
                entry["extra"] = Json::Object(e.extra.clone());
            }
            (path.clone(), entry)
        })
        .collect();
    serde_json::to_vec(&json!({
        "version": 1,
        "storagePolicy": "wandb-storage-policy-v1",
        "storagePolicyConfig": {"storageLayout": "V2"},
        "contents": contents,
    }))
    .unwrap_or_default()
}

fn client_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// "Key:Value" headers as W&B hands them out.
fn headers_of(v: &Json) -> Vec<(String, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| {
            let (k, v) = h.as_str()?.split_once(':')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

impl Wandb {
    /// Delivers the batch's artifact records that W&B does not have yet.
    pub(super) async fn artifacts(
        &mut self,
        batch: &Batch<'_>,
        records: &[ArtifactRecord],
    ) -> Result<(), BackendError> {
        for (k, rec) in records.iter().enumerate() {
            let number = self.st.artifact_records.base + k as u64;
            if number < self.st.artifact_records.done {
                continue;
            }
            match &rec.kind {
                Some(Kind::Logged(a)) => {
                    self.ensure_artifact(batch, a).await?;
                }
                Some(Kind::Used(a)) => self.use_artifact(batch, a).await?,
                Some(Kind::Linked(l)) => self.link_artifact(batch, l).await?,
                Some(Kind::Aliased(a)) => {
                    tracing::debug!(run = %batch.run.id, "aliases of {} changed; not sent to W&B", key(a))
                }
                None => {}
            }
            self.st.artifact_records.done = number + 1;
            self.st.artifact_records.sent += 1;
            batch.checkpoint.save(self.save()).await;
        }
        Ok(())
    }

    /// The W&B id of a version, creating and uploading it if W&B lacks it.
    async fn ensure_artifact(
        &mut self,
        batch: &Batch<'_>,
        a: &Artifact,
    ) -> Result<String, BackendError> {
        if let Some(id) = self.st.artifacts.get(&key(a)) {
            return Ok(id.clone());
        }
        let m = batch.manifest(a).await?;
        let run = batch.run;
        let aliases: Vec<Json> = a
            .aliases
            .iter()
            .map(|al| json!({"artifactCollectionName": a.name, "alias": al}))
            .collect();
        let opt = |s: &str| if s.is_empty() { Json::Null } else { json!(s) };
        let data = self
            .graphql(
                "CreateArtifact",
                CREATE_ARTIFACT,
                json!({
                    "entityName": self.st.entity, "projectName": run.project,
                    "artifactTypeName": a.r#type, "artifactCollectionName": a.name,
                    "runName": run.id, "digest": wandb_digest(&m),
                    "description": opt(&a.description), "aliases": aliases,
                    "metadata": Json::Object(manifest::to_json_map(&a.metadata)).to_string(),
                    "distributedID": opt(&a.distributed_id),
                    "clientID": client_id(), "sequenceClientID": client_id(),
                }),
            )
            .await?;
        let created = &data["createArtifact"]["artifact"];
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        if id.is_empty() {
            return Err(BackendError::retryable("W&B CreateArtifact returned no id"));
        }
        if created["state"] != "COMMITTED" {
            let base = created["artifactSequence"]["latestArtifact"]["id"].clone();
            self.upload_artifact(batch, &m, &id, base).await?;
        }
        self.st.artifacts.insert(key(a), id.clone());
        batch.checkpoint.save(self.save()).await;
        Ok(id)
    }

    /// Uploads a pending version's files and manifest, then commits it.
    async fn upload_artifact(
        &mut self,
        batch: &Batch<'_>,
        m: &Manifest,
        id: &str,
        base: Json,
    ) -> Result<(), BackendError> {
        let entity = self.st.entity.clone();
        let vars = |digest: &str, upload: bool| {
            json!({
                "artifactID": id, "baseArtifactID": base, "name": MANIFEST_NAME, "digest": digest,
                "entityName": entity, "projectName": batch.run.project,
                "runName": batch.run.id, "includeUpload": upload,
            })
        };
        let made = self
            .graphql("CreateArtifactManifest", CREATE_MANIFEST, vars("", false))
            .await?;
        let manifest_id = made["createArtifactManifest"]["artifactManifest"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let births = self.put_artifact_files(batch, m, id, &manifest_id).await?;
        let text = wandb_manifest(m, &births);
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::compute(&text).0);
        let made = self
            .graphql("CreateArtifactManifest", CREATE_MANIFEST, vars(&md5, true))
            .await?;
        let file = &made["createArtifactManifest"]["artifactManifest"]["file"];
        let url = file["uploadUrl"].as_str().unwrap_or_default().to_owned();
        self.put(&url, &headers_of(&file["uploadHeaders"]), text)
            .await?;
        self.graphql("CommitArtifact", COMMIT, json!({"artifactID": id}))
            .await?;
        Ok(())
    }

    /// Asks for upload URLs of the stored files and PUTs those W&B lacks; returns
    /// each file's birth artifact.
    async fn put_artifact_files(
        &mut self,
        batch: &Batch<'_>,
        m: &Manifest,
        id: &str,
        manifest_id: &str,
    ) -> Result<BTreeMap<String, String>, BackendError> {
        let stored: Vec<(&String, &manifest::Entry)> = m
            .files
            .iter()
            .filter(|(_, e)| e.reference.is_empty())
            .collect();
        let mut births = BTreeMap::new();
        for group in stored.chunks(FILES_PER_REQUEST) {
            let specs: Vec<Json> = group
                .iter()
                .map(|(path, e)| {
                    json!({"artifactID": id, "name": path, "md5": e.md5, "artifactManifestID": manifest_id})
                })
                .collect();
            let data = self
                .graphql(
                    "CreateArtifactFiles",
                    CREATE_FILES,
                    json!({"input": {"artifactFiles": specs, "storageLayout": "V2"}}),
                )
                .await?;
            let edges = data["createArtifactFiles"]["files"]["edges"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if edges.len() != group.len() {
                return Err(BackendError::retryable(format!(
                    "W&B CreateArtifactFiles answered {} files for {}",
                    edges.len(),
                    group.len()
                )));
            }
            for ((path, e), edge) in group.iter().zip(edges) {
                let node = &edge["node"];
                if let Some(b) = node["artifact"]["id"].as_str() {
                    births.insert((*path).clone(), b.to_owned());
                }
                let Some(url) = node["uploadUrl"].as_str() else {
                    continue; // W&B has this content already
                };
                let blob = crate::artifacts::blob_path(batch.artifacts, &e.sha256);
                let bytes = tokio::fs::read(&blob)
                    .await
                    .map_err(|err| BackendError::Rejected {
                        reason: format!("artifact file {path}: {}: {err}", blob.display()),
                    })?;
                self.put(url, &headers_of(&node["uploadHeaders"]), bytes)
                    .await?;
            }
        }
        Ok(births)
    }

    /// PUTs bytes to a signed URL with their Content-MD5.
    async fn put(
        &self,
        url: &str,
        headers: &[(String, String)],
        bytes: Vec<u8>,
    ) -> Result<(), BackendError> {
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::compute(&bytes).0);
        let mut req = self.http.put(url).header("Content-MD5", md5).body(bytes);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| retry::transport(&e))?;
        let status = resp.status();
        let resp_headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        match retry::classify(status, &resp_headers, &text) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    async fn use_artifact(&mut self, batch: &Batch<'_>, a: &Artifact) -> Result<(), BackendError> {
        let id = self.ensure_artifact(batch, a).await?;
        self.graphql(
            "UseArtifact",
            USE,
            json!({"input": {"entityName": self.st.entity, "projectName": batch.run.project,
                             "runName": batch.run.id, "artifactID": id}}),
        )
        .await
        .map(|_| ())
    }

    async fn link_artifact(
        &mut self,
        batch: &Batch<'_>,
        l: &LinkedArtifact,
    ) -> Result<(), BackendError> {
        let Some(a) = &l.artifact else { return Ok(()) };
        let id = self.ensure_artifact(batch, a).await?;
        let parts: Vec<&str> = l.target_path.split('/').collect();
        let (entity, project) = match parts.as_slice() {
            [e, p, _] => ((*e).to_owned(), (*p).to_owned()),
            [p, _] => (self.st.entity.clone(), (*p).to_owned()),
            _ => (self.st.entity.clone(), batch.run.project.clone()),
        };
        let aliases: Vec<Json> = l
            .aliases
            .iter()
            .filter(|al| *al != "latest")
            .map(|al| json!({"artifactCollectionName": l.collection, "alias": al}))
            .collect();
        self.graphql(
            "LinkArtifact",
            LINK,
            json!({"artifactPortfolioName": l.collection, "entityName": entity,
                   "projectName": project, "aliases": aliases, "artifactId": id}),
        )
        .await
        .map(|_| ())
    }
}

//! Saved files: `CreateRunFiles` for signed URLs, then a PUT of each file with
//! its `Content-MD5`, skipped when W&B has the same content already.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::json;

use super::graphql::CREATE_RUN_FILES;
use super::Wandb;
use crate::backend::retry::{self, BackendError};
use crate::backend::{Backend, Batch};
use crate::store;

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
    /// Uploads saved files whose content W&B does not have yet.
    pub(super) async fn upload(
        &mut self,
        batch: &Batch<'_>,
        names: &[String],
    ) -> Result<(), BackendError> {
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
        self.put_files(batch, &todo).await
    }

    /// Asks W&B for signed URLs for `todo` and uploads each file.
    async fn put_files(&mut self, batch: &Batch<'_>, todo: &[String]) -> Result<(), BackendError> {
        let files_dir = batch.dir.join(store::FILES_DIR);
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
        for name in todo {
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
                    batch.checkpoint.save(self.save()).await;
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
}

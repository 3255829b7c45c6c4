//! The artifact store, `<data-dir>/artifacts/`:
//!
//! ```text
//! blobs/sha256/ab/cdef...   each file's content once, by SHA-256, read-only ([`blobs`])
//! tmp/                      uploads in progress (a dead one's files are swept)
//! <name>/v<N>.json          a version's manifest: path -> digest, size, reference,
//!                           and its type, description, metadata ([`manifest`])
//! <name>/index.json         the name's versions, aliases and lineage ([`index`])
//! registry/<coll>.json      linked versions of a registry collection ([`registry`])
//! ```
//!
//! Logging is a draft ([`drafts`]) whose files go into the blobs as they arrive,
//! then a commit that writes the manifest and lists the version in the index under
//! the name's lock: a version is visible only when all its files are in, the same
//! content gives the existing version, and concurrent writers get distinct
//! versions. [`download`] places a version's files under a directory; [`names`]
//! checks names, aliases and paths. File work runs on blocking threads.

pub mod blobs;
pub mod download;
pub mod drafts;
pub mod error;
pub mod index;
pub mod manifest;
pub mod names;
pub mod registry;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use self::blobs::{BlobWriter, Put};
pub use self::download::Placed;
pub use self::drafts::Draft;
pub use self::error::ArtifactError;
use self::index::{Index, Names, NewVersion};
use self::manifest::{Entry, Manifest};
use self::names::{Reference, Selector};
use self::registry::Registry;
use crate::limits::quote;
use crate::proto::v1::{
    Artifact, ArtifactFile, CreateArtifactRequest, LinkedArtifact, ListArtifactsRequest,
    ListArtifactsResponse,
};
use crate::run::files::{self, FilesPolicy};

/// The store's directory under the data dir.
pub const DIR: &str = "artifacts";

/// The artifact store of a data dir.
pub fn root_of(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR)
}

/// The artifact store of the data dir a run directory (`<data-dir>/<project>/<id>`)
/// is in.
pub fn root_of_run(run_dir: &Path) -> PathBuf {
    let absolute = std::path::absolute(run_dir).unwrap_or_else(|_| run_dir.to_owned());
    let data_dir = absolute
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    root_of(data_dir)
}

/// Reads a version's manifest from a store root (for forwarders). Blocking.
pub fn read_manifest(root: &Path, name: &str, version: u32) -> Result<Manifest, ArtifactError> {
    index::read_manifest(&root.join(name), version)
}

/// A blob's path under a store root.
pub fn blob_path(root: &Path, sha256: &str) -> PathBuf {
    let (head, tail) = sha256.split_at(sha256.len().min(2));
    root.join("blobs").join("sha256").join(head).join(tail)
}

struct Inner {
    blobs: blobs::Blobs,
    names: Names,
    registry: Registry,
    drafts: drafts::Drafts,
    /// Which source files and download roots may be touched.
    files: FilesPolicy,
    /// The data dir, canonical: no download goes inside it.
    data_dir: PathBuf,
}

/// The store, as the API uses it. Cheap to clone.
#[derive(Clone)]
pub struct Artifacts {
    inner: Arc<Inner>,
}

impl Artifacts {
    /// Opens (or creates) the store of `data_dir`. `durable` fsyncs what it
    /// writes. Blocking.
    pub fn open(data_dir: &Path, files: FilesPolicy, durable: bool) -> Result<Self, ArtifactError> {
        let root = root_of(data_dir);
        let blobs = blobs::Blobs::open(&root, durable)?;
        let data_dir = std::fs::canonicalize(data_dir).map_err(error::io_err(data_dir))?;
        Ok(Artifacts {
            inner: Arc::new(Inner {
                blobs,
                names: Names::new(&root, durable),
                registry: Registry::new(&root, durable),
                drafts: drafts::Drafts::default(),
                files,
                data_dir,
            }),
        })
    }

    /// Runs `f` on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, ArtifactError> + Send + 'static,
    ) -> Result<T, ArtifactError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(ArtifactError::crashed_task)?
    }

    /// Opens a draft for run `run_path` (whose id is `req.run_id`).
    pub async fn create(
        &self,
        req: CreateArtifactRequest,
        run_path: String,
    ) -> Result<(String, u64), ArtifactError> {
        let name = names::plain_name(&req.name)?;
        names::check_type(&req.r#type)?;
        for a in &req.aliases {
            names::check_alias(a)?;
        }
        self.blocking(move |s| {
            if let Some(index) = s.names.read(&name)? {
                if index.ty != req.r#type {
                    return Err(ArtifactError::TypeMismatch {
                        name,
                        existing: index.ty,
                        asked: req.r#type,
                    });
                }
            }
            let files = if req.base.is_empty() {
                Default::default()
            } else {
                let r = names::parse_reference(&req.base)?;
                let (index, v) = s.resolve(&r)?;
                index::read_manifest(&s.names.dir(&index.name), v)?.files
            };
            s.drafts.open(Draft {
                name,
                ty: req.r#type,
                description: req.description,
                metadata: manifest::to_json_map(&req.metadata),
                aliases: req.aliases,
                run_id: req.run_id,
                runs: vec![run_path],
                distributed_id: req.distributed_id,
                files,
            })
        })
        .await
    }

    /// A draft as it stands.
    pub fn draft(&self, id: &str) -> Result<Draft, ArtifactError> {
        self.inner.drafts.get(id)
    }

    /// Adds a file on this host by path (checked against `sha256` when given);
    /// returns what was stored and the draft's file count.
    pub async fn add_file(
        &self,
        draft: String,
        path: String,
        source: String,
        sha256: String,
    ) -> Result<(Put, u64), ArtifactError> {
        names::check_path(&path)?;
        self.inner.drafts.touch(&draft)?;
        self.blocking(move |s| {
            if !Path::new(&source).is_absolute() {
                return Err(ArtifactError::Invalid(format!(
                    "artifact file {}: source {} must be an absolute path on the sidecar's host",
                    quote(&path),
                    quote(&source)
                )));
            }
            let opened = files::admit(&s.files, Path::new(&source))?;
            let put = s.blobs.put_file(opened, &path, &sha256)?;
            let n = s.drafts.insert(&draft, path, entry_of(&put))?;
            Ok((put, n))
        })
        .await
    }

    /// Adds a reference (not stored). A `file://` one is read for its digest.
    pub async fn add_reference(
        &self,
        draft: String,
        f: ArtifactFile,
    ) -> Result<u64, ArtifactError> {
        names::check_path(&f.path)?;
        self.inner.drafts.touch(&draft)?;
        let scheme = f.r#ref.split_once("://").map(|(s, _)| s).unwrap_or("");
        if !["file", "s3", "gs", "http", "https"].contains(&scheme) {
            return Err(ArtifactError::Invalid(format!(
                "artifact reference {} must be a file://, s3://, gs://, http:// or https:// URI",
                quote(&f.r#ref)
            )));
        }
        self.blocking(move |s| {
            let mut e = Entry {
                sha256: f.sha256.to_ascii_lowercase(),
                md5: if f.md5.is_empty() {
                    f.r#ref.clone()
                } else {
                    f.md5.clone()
                },
                size: f.size,
                reference: f.r#ref.clone(),
                extra: manifest::to_json_map(&f.extra),
            };
            if let Some(local) = f.r#ref.strip_prefix("file://") {
                let mut opened = files::admit(&s.files, Path::new(local))?;
                let d = s.blobs.digest_file(&mut opened)?;
                if !e.sha256.is_empty() && e.sha256 != d.sha256 {
                    return Err(ArtifactError::DigestMismatch {
                        path: f.path,
                        expected: e.sha256,
                        actual: d.sha256,
                    });
                }
                (e.sha256, e.md5, e.size) = (d.sha256, d.md5, d.size);
            }
            s.drafts.insert(&draft, f.path, e)
        })
        .await
    }

    pub fn remove(&self, draft: &str, path: &str) -> Result<u64, ArtifactError> {
        self.inner.drafts.remove(draft, path)
    }

    /// Starts a file whose bytes are streamed.
    pub async fn writer(&self, draft: &str, path: &str) -> Result<BlobWriter, ArtifactError> {
        names::check_path(path)?;
        self.inner.drafts.touch(draft)?;
        self.blocking(|s| s.blobs.writer()).await
    }

    /// Appends streamed bytes to a file being written.
    pub async fn write(
        &self,
        mut w: BlobWriter,
        data: Vec<u8>,
    ) -> Result<BlobWriter, ArtifactError> {
        let limit = self.inner.files.max_bytes;
        if w.len().saturating_add(data.len() as u64) > limit {
            // Dropping the writer removes what was written of the file.
            return Err(ArtifactError::TooLarge(format!(
                "a streamed artifact file is over the limit of {limit} bytes (--max-file-bytes); nothing of it was kept"
            )));
        }
        tokio::task::spawn_blocking(move || w.write(&data).map(|_| w))
            .await
            .map_err(ArtifactError::crashed_task)?
    }

    /// Ends a streamed file (checked against `sha256` when given) and adds it.
    pub async fn finish_file(
        &self,
        draft: String,
        path: String,
        w: BlobWriter,
        sha256: String,
    ) -> Result<(Put, u64), ArtifactError> {
        self.blocking(move |s| {
            let put = w.finish(&s.blobs, &path, &sha256)?;
            let n = s.drafts.insert(&draft, path, entry_of(&put))?;
            Ok((put, n))
        })
        .await
    }

    /// Commits a draft, `by` (a run path) logging it.
    pub async fn commit(&self, id: String, by: String) -> Result<(Artifact, bool), ArtifactError> {
        self.blocking(move |s| {
            let d = s.drafts.get(&id)?;
            let mut logged_by = vec![by.clone()];
            logged_by.extend(d.runs.iter().filter(|r| **r != by).cloned());
            let done = s.names.commit(NewVersion {
                name: d.name,
                ty: d.ty,
                description: d.description,
                metadata: d.metadata,
                aliases: d.aliases,
                logged_by,
                distributed_id: d.distributed_id,
                files: d.files,
                created_at: crate::clock::now(),
            })?;
            s.drafts.close(&id);
            Ok(done)
        })
        .await
    }

    /// A version, optionally of one type, optionally with its files.
    pub async fn get(
        &self,
        reference: String,
        ty: String,
        files: bool,
    ) -> Result<Artifact, ArtifactError> {
        let r = names::parse_reference(&reference)?;
        self.blocking(move |s| {
            let (index, v) = s.resolve(&r)?;
            s.describe(&index, v, &ty, files)
        })
        .await
    }

    /// Records that run `run_path` used a version; the version.
    pub async fn use_version(
        &self,
        reference: String,
        ty: String,
        run_path: String,
        files: bool,
    ) -> Result<Artifact, ArtifactError> {
        let r = names::parse_reference(&reference)?;
        self.blocking(move |s| {
            let (index, v) = s.resolve(&r)?;
            s.describe(&index, v, &ty, false)?;
            s.names
                .record_use(&index.name, &Selector::Version(v), &run_path)?;
            let (index, v) = s.names.resolve(&index.name, &Selector::Version(v))?;
            s.describe(&index, v, "", files)
        })
        .await
    }

    /// Links a version into a registry collection.
    pub async fn link(
        &self,
        reference: String,
        target: String,
        aliases: Vec<String>,
        by: String,
    ) -> Result<LinkedArtifact, ArtifactError> {
        let r = names::parse_reference(&reference)?;
        let collection = names::collection_of(&target)?;
        for a in &aliases {
            names::check_alias(a)?;
        }
        self.blocking(move |s| {
            let (index, v) = s.resolve(&r)?;
            let artifact = s.describe(&index, v, "", false)?;
            let (c, link) = s.registry.link(
                &collection,
                &target,
                &artifact,
                &aliases,
                &by,
                crate::clock::now(),
            )?;
            Ok(c.to_proto(&link, artifact))
        })
        .await
    }

    /// Adds and removes custom aliases of a version.
    pub async fn set_aliases(
        &self,
        reference: String,
        add: Vec<String>,
        remove: Vec<String>,
    ) -> Result<Artifact, ArtifactError> {
        let r = names::parse_reference(&reference)?;
        for a in add.iter().chain(&remove) {
            names::check_alias(a)?;
        }
        self.blocking(move |s| {
            let (index, v) = s.resolve(&r)?;
            s.names
                .change_aliases(&index.name, &Selector::Version(v), &add, &remove)
        })
        .await
    }

    /// Versions as ListArtifacts asks: of a name or every name, of a type, logged
    /// or used by `run_path`; or a registry collection's links.
    pub async fn list(
        &self,
        req: ListArtifactsRequest,
        run_path: Option<String>,
    ) -> Result<ListArtifactsResponse, ArtifactError> {
        self.blocking(move |s| s.list(&req, run_path.as_deref()))
            .await
    }

    /// Places a version's files under `root` on this host.
    pub async fn download(
        &self,
        reference: String,
        root: String,
        copy: bool,
        only: Vec<String>,
    ) -> Result<Vec<Placed>, ArtifactError> {
        let r = names::parse_reference(&reference)?;
        self.blocking(move |s| {
            let root = download::prepare_root(&root, &s.files, &s.data_dir)?;
            let (index, v) = s.resolve(&r)?;
            let m = index::read_manifest(&s.names.dir(&index.name), v)?;
            download::place_all(&s.blobs, &s.files, &m, &root, copy, &only)
        })
        .await
    }

    /// A version's manifest (to stream its files).
    pub async fn manifest(&self, reference: String) -> Result<Manifest, ArtifactError> {
        let r = names::parse_reference(&reference)?;
        self.blocking(move |s| {
            let (index, v) = s.resolve(&r)?;
            index::read_manifest(&s.names.dir(&index.name), v)
        })
        .await
    }

    /// Where a blob lives.
    pub fn blob(&self, sha256: &str) -> PathBuf {
        self.inner.blobs.path(sha256)
    }
}

/// A manifest entry for stored content.
fn entry_of(put: &Put) -> Entry {
    Entry {
        sha256: put.digests.sha256.clone(),
        md5: put.digests.md5.clone(),
        size: put.digests.size,
        ..Default::default()
    }
}

impl Inner {
    /// The index and version a reference names (through the registry for a
    /// registry path).
    fn resolve(&self, r: &Reference) -> Result<(Index, u32), ArtifactError> {
        if !r.registry {
            return self.names.resolve(&r.name, &r.selector);
        }
        let c = self.registry.existing(&r.name)?;
        let link = c.select(&r.selector).ok_or_else(|| {
            ArtifactError::NotFound(format!(
                "registry collection {:?} has no version {}",
                r.name, r.selector
            ))
        })?;
        self.names
            .resolve(&link.artifact, &Selector::Version(link.artifact_version))
    }

    /// The API's view of a version, checked against `ty` (when given).
    fn describe(
        &self,
        index: &Index,
        v: u32,
        ty: &str,
        files: bool,
    ) -> Result<Artifact, ArtifactError> {
        if !ty.is_empty() && ty != index.ty {
            return Err(ArtifactError::TypeMismatch {
                name: index.name.clone(),
                existing: index.ty.clone(),
                asked: ty.to_owned(),
            });
        }
        let dir = self.names.dir(&index.name);
        let info = index.version(v).cloned().unwrap_or_default();
        let mut a = index.to_proto(&info, &dir);
        if files {
            a.files = index::read_manifest(&dir, v)?.files_proto();
        }
        Ok(a)
    }

    fn list(
        &self,
        req: &ListArtifactsRequest,
        run: Option<&str>,
    ) -> Result<ListArtifactsResponse, ArtifactError> {
        let mut out = ListArtifactsResponse::default();
        if !req.collection.is_empty() {
            let c = self
                .registry
                .existing(&names::collection_of(&req.collection)?)?;
            for link in &c.links {
                let (index, v) = self
                    .names
                    .resolve(&link.artifact, &Selector::Version(link.artifact_version))?;
                let a = self.describe(&index, v, "", false)?;
                out.artifacts.push(a.clone());
                out.links.push(c.to_proto(link, a));
            }
            return Ok(out);
        }
        let names = if req.name.is_empty() {
            self.names.all()
        } else {
            vec![names::plain_name(&req.name)?]
        };
        for name in names {
            let index = if req.name.is_empty() {
                match self.names.read(&name)? {
                    Some(i) => i,
                    None => continue,
                }
            } else {
                self.names.existing(&name)?
            };
            if !req.r#type.is_empty() && req.r#type != index.ty {
                continue;
            }
            let dir = self.names.dir(&name);
            for info in &index.versions {
                if let Some(run) = run {
                    let logged = info.logged_by.iter().any(|r| r == run);
                    let used = info.used_by.iter().any(|r| r == run);
                    let keep = match req.direction.as_str() {
                        "logged" => logged,
                        "used" => used,
                        _ => logged || used,
                    };
                    if !keep {
                        continue;
                    }
                }
                out.artifacts.push(index.to_proto(info, &dir));
            }
        }
        Ok(out)
    }
}

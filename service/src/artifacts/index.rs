//! Each name's versions: `<name>/index.json` lists the committed versions (digest,
//! size, who logged and used each), the name's type and its aliases. A version is
//! visible once it is in the index; its manifest (`v<N>.json`) is written first.
//! Writers of a name hold `<name>/.lock` (an exclusive file lock, so sidecars
//! sharing a data dir serialise too), which gives concurrent writers distinct
//! versions; readers need no lock (the index is replaced atomically). Blocking.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::error::{io_err, ArtifactError};
use super::manifest::{self, Entry, Manifest};
use super::names::{version_name, Selector, LATEST};
use crate::proto::v1::Artifact;

const INDEX: &str = "index.json";
const LOCK: &str = ".lock";

/// A committed version, as the index lists it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VersionInfo {
    pub version: u32,
    pub digest: String,
    pub size: u64,
    pub file_count: u64,
    pub created_at: f64,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub metadata: serde_json::Map<String, Json>,
    /// Run paths that logged this content; the first made the version.
    #[serde(default)]
    pub logged_by: Vec<String>,
    /// Run paths that used it.
    #[serde(default)]
    pub used_by: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub distributed_id: String,
}

/// `<name>/index.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub versions: Vec<VersionInfo>,
    /// Alias -> version; an alias names one version of the name at a time.
    pub aliases: BTreeMap<String, u32>,
}

impl Index {
    pub fn version(&self, v: u32) -> Option<&VersionInfo> {
        self.versions.iter().find(|i| i.version == v)
    }

    fn version_mut(&mut self, v: u32) -> Option<&mut VersionInfo> {
        self.versions.iter_mut().find(|i| i.version == v)
    }

    /// The version a selector names.
    pub fn select(&self, sel: &Selector) -> Option<u32> {
        match sel {
            Selector::Version(v) => self.version(*v).map(|i| i.version),
            Selector::Alias(a) => self.aliases.get(a).copied(),
        }
    }

    /// Aliases of a version, `latest` first.
    pub fn aliases_of(&self, v: u32) -> Vec<String> {
        let mut out: Vec<String> = self
            .aliases
            .iter()
            .filter(|(_, to)| **to == v)
            .map(|(a, _)| a.clone())
            .collect();
        out.sort_by_key(|a| (a != LATEST, a.clone()));
        out
    }

    /// Points each alias at `v` (moving it off another version).
    pub fn set_aliases(&mut self, v: u32, aliases: &[String]) {
        for a in aliases {
            self.aliases.insert(a.clone(), v);
        }
    }

    /// The API's view of a version (without its files).
    pub fn to_proto(&self, info: &VersionInfo, dir: &Path) -> Artifact {
        Artifact {
            name: self.name.clone(),
            r#type: self.ty.clone(),
            version: version_name(info.version),
            version_index: info.version,
            aliases: self.aliases_of(info.version),
            description: info.description.clone(),
            metadata: manifest::from_json_map(&info.metadata),
            digest: info.digest.clone(),
            size: info.size,
            file_count: info.file_count,
            logged_by: info.logged_by.clone(),
            used_by: info.used_by.clone(),
            created_at: info.created_at,
            manifest_path: manifest_path(dir, info.version).display().to_string(),
            files: Vec::new(),
            distributed_id: info.distributed_id.clone(),
        }
    }
}

pub fn manifest_path(dir: &Path, version: u32) -> PathBuf {
    dir.join(format!("{}.json", version_name(version)))
}

/// A version to commit: everything but its number.
pub struct NewVersion {
    pub name: String,
    pub ty: String,
    pub description: String,
    pub metadata: serde_json::Map<String, Json>,
    pub aliases: Vec<String>,
    /// Run paths that logged it (the committing run first).
    pub logged_by: Vec<String>,
    pub distributed_id: String,
    pub files: BTreeMap<String, Entry>,
    pub created_at: f64,
}

/// The names' directories under `<data-dir>/artifacts/`.
pub struct Names {
    root: PathBuf,
    durable: bool,
}

/// A name's write lock; released when dropped (closing the file unlocks it).
pub struct NameLock {
    _file: File,
}

impl Names {
    pub fn new(root: &Path, durable: bool) -> Self {
        Names {
            root: root.to_owned(),
            durable,
        }
    }

    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Takes `name`'s write lock, waiting for another writer to finish.
    pub fn lock(&self, name: &str) -> Result<NameLock, ArtifactError> {
        let dir = self.dir(name);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(LOCK);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.lock().map_err(io_err(&path))?;
        Ok(NameLock { _file: file })
    }

    /// A name's index; None when nothing was ever committed under it.
    pub fn read(&self, name: &str) -> Result<Option<Index>, ArtifactError> {
        let path = self.dir(name).join(INDEX);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| ArtifactError::Corrupt {
                        path,
                        problem: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// The index of `name`, or NOT_FOUND saying so.
    pub fn existing(&self, name: &str) -> Result<Index, ArtifactError> {
        self.read(name)?.ok_or_else(|| {
            ArtifactError::NotFound(format!(
                "no artifact named {name:?} in this sidecar's store; log it first (run.log_artifact)"
            ))
        })
    }

    /// Replaces a name's index (caller holds the lock).
    pub fn write(&self, index: &Index, _lock: &NameLock) -> Result<(), ArtifactError> {
        let path = self.dir(&index.name).join(INDEX);
        let mut bytes = serde_json::to_vec_pretty(index).unwrap_or_default();
        bytes.push(b'\n');
        write_file(&path, &bytes, self.durable)
    }

    /// Every name with an index.
    pub fn all(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut out: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().join(INDEX).is_file())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        out.sort();
        out
    }

    /// Commits a version: the existing one when the content is the same (its
    /// aliases added, the run recorded as logging it), else the next number. Its
    /// manifest is written before the index lists it.
    pub fn commit(&self, new: NewVersion) -> Result<(Artifact, bool), ArtifactError> {
        let lock = self.lock(&new.name)?;
        let dir = self.dir(&new.name);
        let mut index = self.read(&new.name)?.unwrap_or_else(|| Index {
            name: new.name.clone(),
            ty: new.ty.clone(),
            ..Default::default()
        });
        if index.ty != new.ty {
            return Err(ArtifactError::TypeMismatch {
                name: new.name,
                existing: index.ty,
                asked: new.ty,
            });
        }
        let digest = manifest::digest_of(&new.files);
        if let Some(v) = index
            .versions
            .iter()
            .find(|i| i.digest == digest)
            .map(|i| i.version)
        {
            if let Some(info) = index.version_mut(v) {
                for run in &new.logged_by {
                    if !info.logged_by.contains(run) {
                        info.logged_by.push(run.clone());
                    }
                }
            }
            index.set_aliases(v, &new.aliases);
            self.write(&index, &lock)?;
            let info = index.version(v).cloned().unwrap_or_default();
            return Ok((index.to_proto(&info, &dir), true));
        }
        let version = index
            .versions
            .iter()
            .map(|i| i.version + 1)
            .max()
            .unwrap_or(0);
        let m = Manifest {
            format: manifest::FORMAT.into(),
            name: new.name.clone(),
            ty: new.ty.clone(),
            version,
            digest: digest.clone(),
            description: new.description.clone(),
            metadata: new.metadata.clone(),
            created_at: new.created_at,
            logged_by: new.logged_by.first().cloned().unwrap_or_default(),
            distributed_id: new.distributed_id.clone(),
            size: new.files.values().map(|e| e.size).sum(),
            file_count: new.files.len() as u64,
            files: new.files,
        };
        write_file(&manifest_path(&dir, version), &m.to_bytes(), self.durable)?;
        let info = VersionInfo {
            version,
            digest,
            size: m.size,
            file_count: m.file_count,
            created_at: m.created_at,
            description: m.description,
            metadata: m.metadata,
            logged_by: new.logged_by,
            used_by: Vec::new(),
            distributed_id: new.distributed_id,
        };
        index.versions.push(info.clone());
        index.set_aliases(version, &[LATEST.to_owned()]);
        index.set_aliases(version, &new.aliases);
        self.write(&index, &lock)?;
        Ok((index.to_proto(&info, &dir), false))
    }

    /// Resolves a selector of `name` to its index and version.
    pub fn resolve(&self, name: &str, sel: &Selector) -> Result<(Index, u32), ArtifactError> {
        let index = self.existing(name)?;
        let v = index.select(sel).ok_or_else(|| {
            ArtifactError::NotFound(format!(
                "artifact {name:?} has no version {sel} (versions v0..v{}, aliases {})",
                index.versions.len().saturating_sub(1),
                index.aliases.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        Ok((index, v))
    }

    /// Records that run `run` used a version.
    pub fn record_use(
        &self,
        name: &str,
        sel: &Selector,
        run: &str,
    ) -> Result<Artifact, ArtifactError> {
        let lock = self.lock(name)?;
        let (mut index, v) = self.resolve(name, sel)?;
        if let Some(info) = index.version_mut(v) {
            if !run.is_empty() && !info.used_by.iter().any(|r| r == run) {
                info.used_by.push(run.to_owned());
                self.write(&index, &lock)?;
            }
        }
        let info = index.version(v).cloned().unwrap_or_default();
        Ok(index.to_proto(&info, &self.dir(name)))
    }

    /// Adds and removes custom aliases of a version.
    pub fn change_aliases(
        &self,
        name: &str,
        sel: &Selector,
        add: &[String],
        remove: &[String],
    ) -> Result<Artifact, ArtifactError> {
        if remove.iter().chain(add).any(|a| a == LATEST) {
            return Err(ArtifactError::Invalid(
                "the alias \"latest\" moves to the newest version by itself; it cannot be set or removed".into(),
            ));
        }
        let lock = self.lock(name)?;
        let (mut index, v) = self.resolve(name, sel)?;
        for a in remove {
            if index.aliases.get(a) == Some(&v) {
                index.aliases.remove(a);
            }
        }
        index.set_aliases(v, add);
        self.write(&index, &lock)?;
        let info = index.version(v).cloned().unwrap_or_default();
        Ok(index.to_proto(&info, &self.dir(name)))
    }
}

/// Writes a file atomically (and durably when asked).
pub(super) fn write_file(path: &Path, bytes: &[u8], durable: bool) -> Result<(), ArtifactError> {
    crate::store::write_atomic(path, bytes, durable).map_err(|e| match e {
        crate::store::StoreError::Io { path, source } => ArtifactError::Io { path, source },
        crate::store::StoreError::Json { path, problem } => {
            ArtifactError::Corrupt { path, problem }
        }
    })
}

/// Reads a version's manifest.
pub fn read_manifest(dir: &Path, version: u32) -> Result<Manifest, ArtifactError> {
    Manifest::read(&manifest_path(dir, version))
}

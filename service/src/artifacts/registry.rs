//! The registry: collections of linked versions (W&B's portfolios, the model
//! registry's registered models), one file per collection,
//! `registry/<collection>.json`. A link has its own version in the collection
//! (v0, v1, ...) and its own aliases; `latest` moves to the newest link. Linking
//! the same version again gives the existing link. Writers hold
//! `registry/.lock`. Blocking.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{io_err, ArtifactError};
use super::names::{version_name, Selector, LATEST};
use crate::proto::v1::{Artifact, LinkedArtifact};

const DIR: &str = "registry";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Link {
    pub version: u32,
    /// The artifact version linked.
    pub artifact: String,
    pub artifact_version: u32,
    pub digest: String,
    pub linked_at: f64,
    #[serde(default)]
    pub linked_by: String,
}

/// `registry/<collection>.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Collection {
    pub collection: String,
    /// The target path it was first linked with ("model-registry/resnet").
    pub target_path: String,
    pub links: Vec<Link>,
    pub aliases: BTreeMap<String, u32>,
}

impl Collection {
    pub fn link(&self, v: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.version == v)
    }

    pub fn select(&self, sel: &Selector) -> Option<&Link> {
        match sel {
            Selector::Version(v) => self.link(*v),
            Selector::Alias(a) => self.aliases.get(a).and_then(|v| self.link(*v)),
        }
    }

    fn aliases_of(&self, v: u32) -> Vec<String> {
        let mut out: Vec<String> = self
            .aliases
            .iter()
            .filter(|(_, to)| **to == v)
            .map(|(a, _)| a.clone())
            .collect();
        out.sort_by_key(|a| (a != LATEST, a.clone()));
        out
    }

    /// A link as the API shows it, with the artifact version it points at.
    pub fn to_proto(&self, link: &Link, artifact: Artifact) -> LinkedArtifact {
        LinkedArtifact {
            collection: self.collection.clone(),
            target_path: self.target_path.clone(),
            version: version_name(link.version),
            version_index: link.version,
            aliases: self.aliases_of(link.version),
            artifact: Some(artifact),
            linked_at: link.linked_at,
            linked_by: link.linked_by.clone(),
        }
    }
}

pub struct Registry {
    dir: PathBuf,
    durable: bool,
}

impl Registry {
    pub fn new(root: &Path, durable: bool) -> Self {
        Registry {
            dir: root.join(DIR),
            durable,
        }
    }

    fn path(&self, collection: &str) -> PathBuf {
        self.dir.join(format!("{collection}.json"))
    }

    fn lock(&self) -> Result<File, ArtifactError> {
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let path = self.dir.join(".lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        f.lock().map_err(io_err(&path))?;
        Ok(f)
    }

    pub fn read(&self, collection: &str) -> Result<Option<Collection>, ArtifactError> {
        let path = self.path(collection);
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| ArtifactError::Corrupt {
                    path,
                    problem: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    pub fn existing(&self, collection: &str) -> Result<Collection, ArtifactError> {
        self.read(collection)?.ok_or_else(|| {
            ArtifactError::NotFound(format!(
                "no registry collection {collection:?}; link a version to it first (run.link_model / link_artifact)"
            ))
        })
    }

    /// Links `artifact` into `collection` with `aliases`; returns the collection
    /// and the link.
    pub fn link(
        &self,
        collection: &str,
        target_path: &str,
        artifact: &Artifact,
        aliases: &[String],
        by: &str,
        at: f64,
    ) -> Result<(Collection, Link), ArtifactError> {
        let _lock = self.lock()?;
        let mut c = self.read(collection)?.unwrap_or_else(|| Collection {
            collection: collection.to_owned(),
            target_path: target_path.to_owned(),
            ..Default::default()
        });
        let found = c
            .links
            .iter()
            .find(|l| l.artifact == artifact.name && l.artifact_version == artifact.version_index)
            .cloned();
        let link = match found {
            Some(l) => l,
            None => {
                let l = Link {
                    version: c.links.iter().map(|l| l.version + 1).max().unwrap_or(0),
                    artifact: artifact.name.clone(),
                    artifact_version: artifact.version_index,
                    digest: artifact.digest.clone(),
                    linked_at: at,
                    linked_by: by.to_owned(),
                };
                c.links.push(l.clone());
                c.aliases.insert(LATEST.to_owned(), l.version);
                l
            }
        };
        for a in aliases {
            c.aliases.insert(a.clone(), link.version);
        }
        let mut bytes = serde_json::to_vec_pretty(&c).unwrap_or_default();
        bytes.push(b'\n');
        super::index::write_file(&self.path(collection), &bytes, self.durable)?;
        Ok((c, link))
    }

    /// Every collection.
    pub fn all(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_owned();
                name.strip_suffix(".json").map(str::to_owned)
            })
            .collect();
        out.sort();
        out
    }
}

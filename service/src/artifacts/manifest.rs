//! A version on disk: `<name>/v<N>.json`, the manifest (path -> content digest,
//! size, reference) with the version's type, description, metadata and who logged
//! it. Written once, atomically, before the version is listed in the name's index.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::error::{io_err, ArtifactError};
use crate::proto::v1::{value::Kind, Artifact, ArtifactFile, ListValue, MapValue, Value};
use crate::value;

pub const FORMAT: &str = "runcore.artifact/1";

/// One file of a version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Hex SHA-256; empty for a reference that was not read.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// Base64 MD5 (W&B's manifest digest); for an unread reference, the reference.
    #[serde(default)]
    pub md5: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reference: String,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, Json>,
}

impl Entry {
    /// What identifies the content: its SHA-256, or the reference.
    pub fn content_key(&self) -> &str {
        if self.sha256.is_empty() {
            &self.reference
        } else {
            &self.sha256
        }
    }

    pub fn to_proto(&self, path: &str) -> ArtifactFile {
        ArtifactFile {
            path: path.to_owned(),
            sha256: self.sha256.clone(),
            md5: self.md5.clone(),
            size: self.size,
            r#ref: self.reference.clone(),
            extra: from_json_map(&self.extra),
        }
    }
}

/// `<name>/v<N>.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub version: u32,
    pub digest: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub metadata: serde_json::Map<String, Json>,
    pub created_at: f64,
    /// The run path that made this version.
    #[serde(default)]
    pub logged_by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub distributed_id: String,
    pub size: u64,
    pub file_count: u64,
    pub files: BTreeMap<String, Entry>,
}

/// The digest of a set of files: hex SHA-256 over each path, its content key and
/// its size, in path order. Equal digests, equal content.
pub fn digest_of(files: &BTreeMap<String, Entry>) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"runcore-artifact-manifest-v1\n");
    for (path, e) in files {
        ctx.update(format!("{path}\t{}\t{}\n", e.content_key(), e.size).as_bytes());
    }
    super::blobs::hex(ctx.finish().as_ref())
}

impl Manifest {
    /// Reads `<dir>/v<N>.json`. Blocking.
    pub fn read(path: &Path) -> Result<Self, ArtifactError> {
        let text = std::fs::read(path).map_err(io_err(path))?;
        serde_json::from_slice(&text).map_err(|e| ArtifactError::Corrupt {
            path: path.to_owned(),
            problem: e.to_string(),
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// The files as proto entries, in path order.
    pub fn files_proto(&self) -> Vec<ArtifactFile> {
        self.files.iter().map(|(p, e)| e.to_proto(p)).collect()
    }

    /// The version as the API shows it; aliases and lineage come from the index.
    pub fn to_proto(&self, manifest_path: &Path) -> Artifact {
        Artifact {
            name: self.name.clone(),
            r#type: self.ty.clone(),
            version: super::names::version_name(self.version),
            version_index: self.version,
            description: self.description.clone(),
            metadata: from_json_map(&self.metadata),
            digest: self.digest.clone(),
            size: self.size,
            file_count: self.file_count,
            logged_by: vec![self.logged_by.clone()],
            created_at: self.created_at,
            manifest_path: manifest_path.display().to_string(),
            distributed_id: self.distributed_id.clone(),
            ..Default::default()
        }
    }
}

/// A logged value as plain JSON (metadata, extras): histograms and media as their
/// `_type`-tagged objects; NaN and the infinities as the strings "NaN",
/// "Infinity", "-Infinity" (JSON has no numbers for them).
pub fn to_json(v: &Value) -> Json {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::DoubleValue(x)) => serde_json::Number::from_f64(*x)
            .map(Json::Number)
            .unwrap_or_else(|| {
                let mut s = String::new();
                value::write_json_f64(&mut s, *x);
                Json::String(s)
            }),
        Some(Kind::IntValue(i)) => Json::from(*i),
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::MapValue(m)) => Json::Object(to_json_map(&m.fields)),
        Some(Kind::ListValue(l)) => Json::Array(l.values.iter().map(to_json).collect()),
        Some(Kind::Histogram(_)) | Some(Kind::Media(_)) => {
            let mut s = String::new();
            value::write_json(&mut s, v);
            serde_json::from_str(&s).unwrap_or(Json::Null)
        }
    }
}

pub fn to_json_map(m: &BTreeMap<String, Value>) -> serde_json::Map<String, Json> {
    m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()
}

pub fn from_json(j: &Json) -> Value {
    let kind = match j {
        Json::Null => Kind::NullValue(true),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Kind::IntValue(i),
            None => Kind::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(from_json).collect(),
        }),
        Json::Object(o) => Kind::MapValue(MapValue {
            fields: from_json_map(o),
        }),
    };
    Value { kind: Some(kind) }
}

pub fn from_json_map(m: &serde_json::Map<String, Json>) -> BTreeMap<String, Value> {
    m.iter().map(|(k, v)| (k.clone(), from_json(v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sha: &str, size: u64) -> Entry {
        Entry {
            sha256: sha.into(),
            size,
            ..Default::default()
        }
    }

    #[test]
    fn the_digest_depends_on_paths_and_content_only() {
        let mut a = BTreeMap::new();
        a.insert("x".to_string(), entry("aa", 1));
        a.insert("y".to_string(), entry("bb", 2));
        let mut b = a.clone();
        b.get_mut("x").unwrap().md5 = "ignored".into();
        assert_eq!(digest_of(&a), digest_of(&b));
        b.get_mut("y").unwrap().sha256 = "cc".into();
        assert_ne!(digest_of(&a), digest_of(&b));
        let mut c = BTreeMap::new();
        c.insert("z".to_string(), entry("aa", 1));
        c.insert("y".to_string(), entry("bb", 2));
        assert_ne!(digest_of(&a), digest_of(&c));
    }

    #[test]
    fn metadata_round_trips_through_json() {
        let mut m = BTreeMap::new();
        m.insert("n".to_string(), value::int(3));
        m.insert("x".to_string(), value::double(0.5));
        m.insert("nan".to_string(), value::double(f64::NAN));
        let j = to_json_map(&m);
        assert_eq!(j["nan"], Json::String("NaN".into()));
        let back = from_json_map(&j);
        assert_eq!(back["n"], value::int(3));
        assert_eq!(back["x"], value::double(0.5));
    }
}

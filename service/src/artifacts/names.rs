//! Names in the artifact store: artifact names and types, aliases, versions,
//! paths inside an artifact, registry collections, and the references clients
//! write ("name:alias", "entity/project/name:v3", "model-registry/resnet:latest").

use std::path::{Component, Path};

use super::error::ArtifactError;
use crate::limits::{quote, MAX_PATH_BYTES, MAX_PATH_COMPONENT};

/// The alias every new version gets; it moves to the newest version.
pub const LATEST: &str = "latest";
/// Longest name, type or alias.
const MAX_NAME: usize = 128;
/// Names the store uses for itself under `<data-dir>/artifacts/`.
const RESERVED: &[&str] = &["blobs", "tmp", "registry"];
/// Project names that mean a registry rather than an artifact's project.
const REGISTRY_PROJECTS: &[&str] = &["model-registry"];
const REGISTRY_PREFIX: &str = "wandb-registry-";

fn invalid(msg: String) -> ArtifactError {
    ArtifactError::Invalid(msg)
}

fn plain_chars(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Checks an artifact name (also a registry collection's): letters, digits, '-',
/// '_' and '.', not starting with '.', not a name the store uses itself.
pub fn check_name(name: &str) -> Result<(), ArtifactError> {
    if name.is_empty() || name.len() > MAX_NAME || name.starts_with('.') || !plain_chars(name) {
        return Err(invalid(format!(
            "artifact name {} must be 1..{MAX_NAME} letters, digits, '-', '_' and '.', not starting with '.'",
            quote(name),
        )));
    }
    if RESERVED.contains(&name) {
        return Err(invalid(format!(
            "artifact name {} is reserved by the store; choose another",
            quote(name),
        )));
    }
    Ok(())
}

/// Checks an artifact type ("dataset", "model", ...).
pub fn check_type(ty: &str) -> Result<(), ArtifactError> {
    if ty.is_empty() || ty.len() > MAX_NAME || !plain_chars(ty) {
        return Err(invalid(format!(
            "artifact type {} must be 1..{MAX_NAME} letters, digits, '-', '_' and '.' (e.g. \"dataset\", \"model\")",
            quote(ty),
        )));
    }
    Ok(())
}

/// Checks a custom alias: not empty, no ':' or '/', and not a version ("v3").
pub fn check_alias(alias: &str) -> Result<(), ArtifactError> {
    if alias.is_empty()
        || alias.len() > MAX_NAME
        || alias.contains([':', '/'])
        || alias.chars().any(char::is_control)
    {
        return Err(invalid(format!(
            "alias {} must be 1..{MAX_NAME} characters without ':', '/' or control characters",
            quote(alias),
        )));
    }
    if parse_version(alias).is_some() {
        return Err(invalid(format!(
            "alias {} looks like a version; versions (v0, v1, ...) are given by the store",
            quote(alias),
        )));
    }
    Ok(())
}

/// "v3" -> 3.
pub fn parse_version(s: &str) -> Option<u32> {
    let digits = s.strip_prefix('v')?;
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub fn version_name(index: u32) -> String {
    format!("v{index}")
}

/// Checks a path inside an artifact: relative, '/'-separated, no empty, '.' or
/// '..' parts, so that placing it under a root can never leave the root.
pub fn check_path(path: &str) -> Result<(), ArtifactError> {
    let bad = |why: &str| {
        invalid(format!(
            "artifact path {} {why}; name files relative to the artifact's root, e.g. \"data/train.csv\"",
            quote(path)
        ))
    };
    if path.is_empty() || path.len() > MAX_PATH_BYTES {
        return Err(bad(&format!(
            "is empty or longer than {MAX_PATH_BYTES} bytes"
        )));
    }
    if path.starts_with('/') || path.contains('\\') {
        return Err(bad("is absolute or holds '\\'"));
    }
    if path.chars().any(char::is_control) {
        return Err(bad("holds a control character"));
    }
    if path.split('/').any(|part| part.len() > MAX_PATH_COMPONENT) {
        return Err(bad(&format!(
            "has a component longer than {MAX_PATH_COMPONENT} bytes"
        )));
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(bad("has an empty, '.' or '..' component"));
    }
    if Path::new(path)
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(bad("escapes the artifact's root"));
    }
    Ok(())
}

/// Checks a hex SHA-256 a client gives (empty: none given).
pub fn check_sha256(what: &str, sha256: &str) -> Result<(), ArtifactError> {
    if sha256.is_empty() || (sha256.len() == 64 && sha256.chars().all(|c| c.is_ascii_hexdigit())) {
        return Ok(());
    }
    Err(invalid(format!(
        "{what}: sha256 {} must be 64 hex digits (or empty)",
        quote(sha256)
    )))
}

/// Which version of a name a reference asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Version(u32),
    Alias(String),
}

impl Selector {
    fn parse(text: &str) -> Result<Self, ArtifactError> {
        if let Some(v) = parse_version(text) {
            return Ok(Selector::Version(v));
        }
        check_alias(text)?;
        Ok(Selector::Alias(text.to_owned()))
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Version(v) => write!(f, "v{v}"),
            Selector::Alias(a) => f.write_str(a),
        }
    }
}

/// A parsed reference to a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The artifact's name, or the registry collection's with `registry`.
    pub name: String,
    pub selector: Selector,
    /// The reference names a registry collection ("model-registry/NAME").
    pub registry: bool,
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.registry {
            write!(f, "{}/", REGISTRY_PROJECTS[0])?;
        }
        write!(f, "{}:{}", self.name, self.selector)
    }
}

/// Whether a project name stands for a registry.
fn is_registry_project(project: &str) -> bool {
    REGISTRY_PROJECTS.contains(&project) || project.starts_with(REGISTRY_PREFIX)
}

/// Parses "name", "name:alias", "name:v3", with an optional "project/" or
/// "entity/project/" prefix (ignored: names are unique per data dir), or a
/// registry path ("model-registry/NAME:alias", "wandb-registry-model/NAME").
/// Without a selector, `latest`.
pub fn parse_reference(text: &str) -> Result<Reference, ArtifactError> {
    let parts: Vec<&str> = text.split('/').collect();
    let prefix_bad = parts[..parts.len() - 1].iter().any(|p| p.contains(':'));
    if parts.len() > 3 || prefix_bad || parts.iter().any(|p| p.is_empty()) {
        return Err(invalid(format!(
            "artifact reference {} must be \"name:alias\", \"name:vN\" or \"entity/project/name:alias\"",
            quote(text),
        )));
    }
    let last = parts[parts.len() - 1];
    let registry = parts.len() >= 2 && is_registry_project(parts[parts.len() - 2]);
    let (name, selector) = match last.split_once(':') {
        Some((n, s)) => (n, Selector::parse(s)?),
        None => (last, Selector::Alias(LATEST.to_owned())),
    };
    check_name(name)?;
    Ok(Reference {
        name: name.to_owned(),
        selector,
        registry,
    })
}

/// The collection a link target names: its last component ("model-registry/resnet"
/// -> "resnet"); the target may have one or two components before it.
pub fn collection_of(target: &str) -> Result<String, ArtifactError> {
    let parts: Vec<&str> = target.split('/').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(invalid(format!(
            "link target {} must be \"collection\", \"project/collection\" or \"entity/project/collection\"",
            quote(target),
        )));
    }
    let name = parts[parts.len() - 1];
    if name.contains(':') {
        return Err(invalid(format!(
            "link target {} names a collection, not a version; leave out the ':'",
            quote(target),
        )));
    }
    check_name(name)?;
    Ok(name.to_owned())
}

/// An artifact name given by a client, with an "entity/project/" prefix removed.
pub fn plain_name(text: &str) -> Result<String, ArtifactError> {
    let parts: Vec<&str> = text.split('/').collect();
    let name = parts[parts.len() - 1];
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty() || p.starts_with('.')) {
        return Err(invalid(format!(
            "artifact name {} must be \"name\" or \"entity/project/name\", with no part empty or starting with '.'",
            quote(text),
        )));
    }
    if text.contains(':') {
        return Err(invalid(format!(
            "artifact name {} holds ':'; give the name alone (aliases go in `aliases`)",
            quote(text),
        )));
    }
    check_name(name)?;
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_wandb_writes_them() {
        let r = parse_reference("mnist").unwrap();
        assert_eq!(
            (r.name.as_str(), &r.selector, r.registry),
            ("mnist", &Selector::Alias("latest".into()), false)
        );
        let r = parse_reference("team/proj/mnist:v12").unwrap();
        assert_eq!(
            (r.name.as_str(), &r.selector),
            ("mnist", &Selector::Version(12))
        );
        let r = parse_reference("model-registry/resnet:production").unwrap();
        assert!(r.registry);
        assert_eq!(r.to_string(), "model-registry/resnet:production");
        assert!(
            parse_reference("wandb-registry-model/resnet")
                .unwrap()
                .registry
        );
        assert!(parse_reference("a/b/c/d:v1").is_err());
        assert!(parse_reference("x:bad/alias").is_err());
        assert!(parse_reference("blobs:v0").is_err());
    }

    #[test]
    fn paths_never_leave_the_root() {
        for ok in ["a.txt", "data/train/0001.png", "x..y/z"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/.",
            "a\\b",
            "a\nb",
            "tab\there",
            &"x".repeat(256),
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn aliases_and_names() {
        assert!(check_alias("best").is_ok());
        assert!(check_alias("v3").is_err());
        assert!(check_alias("a:b").is_err());
        assert!(check_name("my-model_1.0").is_ok());
        assert!(check_name(".hidden").is_err());
        assert!(check_name("a b").is_err());
        assert_eq!(
            collection_of("team/model-registry/resnet").unwrap(),
            "resnet"
        );
        assert!(collection_of("resnet:v1").is_err());
        assert_eq!(plain_name("team/proj/mnist").unwrap(), "mnist");
        assert!(plain_name("../up").is_err());
    }
}

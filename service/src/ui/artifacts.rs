//! A run's artifacts for the run page: the versions it logged and used, read from
//! the store's `artifacts/<name>/index.json` files, each with its lineage (the
//! runs that logged it and the runs that used it). Read-only; blocking.

use std::path::Path;

use serde::Serialize;
use serde_json::Value as Json;

use crate::artifacts::index::{Index, Names, VersionInfo};
use crate::artifacts::names::version_name;

/// A version as the Artifacts tab shows it.
#[derive(Debug, Serialize)]
pub struct ArtifactRow {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub version: String,
    pub aliases: Vec<String>,
    pub digest: String,
    pub size: u64,
    pub file_count: u64,
    pub created_at: f64,
    pub description: String,
    pub metadata: serde_json::Map<String, Json>,
    /// Runs that logged this content, the first the one that made the version.
    pub logged_by: Vec<RunRef>,
    /// Runs that used it.
    pub used_by: Vec<RunRef>,
}

/// A run named in lineage: its path as the store records it, and the project and
/// id the UI's run page is found under.
#[derive(Debug, Serialize)]
pub struct RunRef {
    pub path: String,
    pub project: String,
    pub id: String,
}

impl RunRef {
    /// `entity/project/id` or `project/id`.
    fn parse(path: &str) -> RunRef {
        let mut parts = path.rsplit('/');
        let id = parts.next().unwrap_or_default().to_owned();
        let project = parts.next().unwrap_or_default().to_owned();
        RunRef {
            path: path.to_owned(),
            project,
            id,
        }
    }
}

/// What a run logged and used.
#[derive(Debug, Default, Serialize)]
pub struct RunArtifacts {
    pub logged: Vec<ArtifactRow>,
    pub used: Vec<ArtifactRow>,
}

/// The versions whose lineage names `run_path`, oldest first. An index that
/// cannot be read is skipped (the page shows what it can).
pub fn of_run(data_dir: &Path, run_path: &str) -> RunArtifacts {
    let names = Names::new(&crate::artifacts::root_of(data_dir), false);
    let mut out = RunArtifacts::default();
    for name in names.all() {
        let Ok(Some(index)) = names.read(&name) else {
            continue;
        };
        for info in &index.versions {
            if info.logged_by.iter().any(|r| r == run_path) {
                out.logged.push(row(&index, info));
            }
            if info.used_by.iter().any(|r| r == run_path) {
                out.used.push(row(&index, info));
            }
        }
    }
    for list in [&mut out.logged, &mut out.used] {
        list.sort_by(|a, b| a.created_at.total_cmp(&b.created_at));
    }
    out
}

fn row(index: &Index, info: &VersionInfo) -> ArtifactRow {
    let refs = |paths: &[String]| paths.iter().map(|p| RunRef::parse(p)).collect();
    ArtifactRow {
        name: index.name.clone(),
        ty: index.ty.clone(),
        version: version_name(info.version),
        aliases: index.aliases_of(info.version),
        digest: info.digest.clone(),
        size: info.size,
        file_count: info.file_count,
        created_at: info.created_at,
        description: info.description.clone(),
        metadata: info.metadata.clone(),
        logged_by: refs(&info.logged_by),
        used_by: refs(&info.used_by),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineage_paths_name_the_run_page() {
        let r = RunRef::parse("team/digits/abc");
        assert_eq!((r.project.as_str(), r.id.as_str()), ("digits", "abc"));
        let r = RunRef::parse("digits/abc");
        assert_eq!((r.project.as_str(), r.id.as_str()), ("digits", "abc"));
    }
}

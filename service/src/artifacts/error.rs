//! What can go wrong with artifacts. `api::status` maps each to a gRPC status.

use std::io;
use std::path::{Path, PathBuf};

use crate::run::files::FilesError;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A request the client must change (names, aliases, paths, types).
    #[error("{0}")]
    Invalid(String),
    /// No such artifact, version, alias, draft or registry collection.
    #[error("{0}")]
    NotFound(String),
    #[error("artifact file {path:?}: the content's SHA-256 is {actual}, not {expected} as the client said; nothing of it was kept")]
    DigestMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("artifact {name:?} has type {existing:?}, not {asked:?}; log it with type {existing:?} or choose another name")]
    TypeMismatch {
        name: String,
        existing: String,
        asked: String,
    },
    #[error(
        "{0} changed while it was being added to the artifact; add it again once it is written"
    )]
    Changed(PathBuf),
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error("artifact store {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("artifact store {path}: unreadable: {problem}")]
    Corrupt { path: PathBuf, problem: String },
    /// A blocking task crashed: a bug, not something a retry fixes.
    #[error("internal error in the artifact store: {0}")]
    Internal(String),
}

impl ArtifactError {
    pub fn crashed_task(e: tokio::task::JoinError) -> Self {
        ArtifactError::Internal(format!("a blocking task failed: {e}"))
    }
}

/// Wraps an I/O error with the path it happened on.
pub fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io {
        path: path.to_owned(),
        source,
    }
}

//! What can go wrong with artifacts. `api::status` maps each to a gRPC status.

use std::io;
use std::path::{Path, PathBuf};

use crate::limits::quote;
use crate::run::files::FilesError;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A request the client must change (names, aliases, paths, types).
    #[error("{0}")]
    Invalid(String),
    /// Past a size or count limit (`crate::limits`).
    #[error("{0}")]
    TooLarge(String),
    /// No such artifact, version, alias, draft or registry collection.
    #[error("{0}")]
    NotFound(String),
    #[error("artifact file {}: the content's SHA-256 is {actual}, not {expected} as the client said; nothing of it was kept", quote(path))]
    DigestMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("artifact {} has type {existing:?}, not {}; log it with type {existing:?} or choose another name", quote(name), quote(asked))]
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
    /// Whether the disk is full (or over quota): the client can only wait.
    pub fn is_disk_full(&self) -> bool {
        let io = match self {
            ArtifactError::Io { source, .. } => source,
            ArtifactError::Files(FilesError::Copy { source, .. }) => source,
            _ => return false,
        };
        matches!(
            io.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        )
    }

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

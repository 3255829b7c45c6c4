//! The one place where errors become gRPC statuses.

use tonic::{Code, Status};

use super::validate::Invalid;
use crate::artifacts::ArtifactError;
use crate::run::files::FilesError;
use crate::run::RunError;
use crate::runs::RegistryError;

impl From<Invalid> for Status {
    fn from(e: Invalid) -> Self {
        Status::invalid_argument(e.0)
    }
}

impl From<RegistryError> for Status {
    fn from(e: RegistryError) -> Self {
        let msg = e.to_string();
        match e {
            RegistryError::NotFound(_) => Status::not_found(msg),
            RegistryError::AlreadyExists { .. } => Status::already_exists(msg),
            RegistryError::ProjectMismatch { .. } => Status::failed_precondition(msg),
            RegistryError::TooManyRuns(_) => Status::resource_exhausted(msg),
            RegistryError::Artifacts(e) => e.into(),
            RegistryError::Run(e) => e.into(),
        }
    }
}

impl From<RunError> for Status {
    fn from(e: RunError) -> Self {
        let msg = e.to_string();
        match e {
            RunError::Ended { .. } => Status::failed_precondition(msg),
            RunError::Closed => Status::unavailable(msg),
            RunError::Internal(_) => Status::internal(msg),
            RunError::StreamBroken { .. } => Status::aborted(msg),
            RunError::Metric(_) => Status::invalid_argument(msg),
            RunError::Files(f) => files_status(&f, msg),
            RunError::Wal(crate::wal::WalError::InUse(_)) => Status::failed_precondition(msg),
            RunError::Wal(_) | RunError::Store(_) => Status::internal(msg),
        }
    }
}

/// Reading a client's file: unreadable -> FAILED_PRECONDITION, outside the
/// allowed roots -> PERMISSION_DENIED, too large -> RESOURCE_EXHAUSTED, a bad
/// path or pattern -> INVALID_ARGUMENT.
fn files_status(e: &FilesError, msg: String) -> Status {
    match e {
        FilesError::Copy { .. } => Status::failed_precondition(msg),
        FilesError::OutsideRoots { .. } => Status::permission_denied(msg),
        FilesError::TooLarge { .. } => Status::resource_exhausted(msg),
        _ => Status::invalid_argument(msg),
    }
}

impl From<ArtifactError> for Status {
    fn from(e: ArtifactError) -> Self {
        let msg = e.to_string();
        match e {
            ArtifactError::Invalid(_)
            | ArtifactError::DigestMismatch { .. }
            | ArtifactError::TypeMismatch { .. } => Status::invalid_argument(msg),
            ArtifactError::NotFound(_) => Status::not_found(msg),
            ArtifactError::Changed(_) => Status::failed_precondition(msg),
            ArtifactError::Files(f) => files_status(&f, msg),
            ArtifactError::Io { .. }
            | ArtifactError::Corrupt { .. }
            | ArtifactError::Internal(_) => Status::internal(msg),
        }
    }
}

/// The message a client gets for a request over the size limit.
pub fn too_large_message(limit: usize) -> String {
    format!(
        "request message is larger than the limit of {limit} bytes; send smaller messages (split LogStream batches) or start the sidecar with a larger --max-message-bytes"
    )
}

/// tonic reports an oversized request as OUT_OF_RANGE; gRPC says
/// RESOURCE_EXHAUSTED. The handlers never return OUT_OF_RANGE themselves.
pub fn is_too_large(status: &Status) -> bool {
    status.code() == Code::OutOfRange && status.message().contains("message length too large")
}

/// A stream's read error, with the size limit's status corrected.
pub fn stream_error(status: Status, limit: usize) -> Status {
    if is_too_large(&status) {
        Status::resource_exhausted(too_large_message(limit))
    } else {
        status
    }
}

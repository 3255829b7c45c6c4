//! The one place where errors become gRPC statuses.

use tonic::{Code, Status};

use super::validate::Invalid;
use crate::artifacts::ArtifactError;
use crate::run::files::FilesError;
use crate::run::RunError;
use crate::runs::RegistryError;

impl From<Invalid> for Status {
    fn from(e: Invalid) -> Self {
        if e.too_large() {
            Status::resource_exhausted(e.to_string())
        } else {
            Status::invalid_argument(e.to_string())
        }
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
            RegistryError::Open { .. } | RegistryError::Delivering { .. } => {
                Status::failed_precondition(msg)
            }
            RegistryError::NoSuchFile { .. } => Status::not_found(msg),
            RegistryError::FileOutsideRun { .. } => Status::permission_denied(msg),
            RegistryError::PastEnd { .. } => Status::invalid_argument(msg),
            RegistryError::Run(e) => e.into(),
        }
    }
}

impl From<RunError> for Status {
    fn from(e: RunError) -> Self {
        let msg = e.to_string();
        if e.is_disk_full() {
            return Status::resource_exhausted(format!(
                "{msg}; the disk is full: free space, then retry"
            ));
        }
        match e {
            RunError::Ended { .. } => Status::failed_precondition(msg),
            RunError::AcksNotRead(_)
            | RunError::OverBudget(_)
            | RunError::TooManyKeys { .. }
            | RunError::TooManyWriters { .. } => Status::resource_exhausted(msg),
            RunError::StepLimit { .. } => Status::invalid_argument(msg),
            RunError::Closed => Status::unavailable(msg),
            RunError::Internal(_) => Status::internal(msg),
            RunError::StreamBroken { .. } => Status::aborted(msg),
            RunError::WriterConflict { .. }
            | RunError::WriterEnded { .. }
            | RunError::UnknownWriter { .. } => Status::failed_precondition(msg),
            RunError::Metric(_) => Status::invalid_argument(msg),
            RunError::Files(f) => files_status(&f, msg),
            RunError::Wal(crate::wal::WalError::InUse(_)) => Status::failed_precondition(msg),
            RunError::Wal(crate::wal::WalError::NoRecords { .. }) => Status::data_loss(msg),
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
        FilesError::TooLarge { .. } | FilesError::GlobTooLarge { .. } => {
            Status::resource_exhausted(msg)
        }
        _ => Status::invalid_argument(msg),
    }
}

impl From<ArtifactError> for Status {
    fn from(e: ArtifactError) -> Self {
        let msg = e.to_string();
        if e.is_disk_full() {
            return Status::resource_exhausted(format!(
                "{msg}; the disk is full: free space, then retry"
            ));
        }
        match e {
            ArtifactError::TooLarge(_) => Status::resource_exhausted(msg),
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

/// tonic reports a request that is not valid protobuf as INTERNAL; it is the
/// client's: INVALID_ARGUMENT.
pub fn is_decode_error(code: Code, message: &str) -> bool {
    code == Code::Internal
        && (message.contains("failed to decode Protobuf message")
            || message.contains("failed%20to%20decode%20Protobuf%20message"))
}

/// The message a client gets for a request that is not valid protobuf.
pub const DECODE_MESSAGE: &str = "the request is not a valid protobuf message of this RPC's request type (or is nested too deeply); check the client's stubs against proto/runcore/v1/runcore.proto";

/// A stream's read error, with the size limit's and bad protobuf's statuses
/// corrected.
pub fn stream_error(status: Status, limit: usize) -> Status {
    if is_too_large(&status) {
        Status::resource_exhausted(too_large_message(limit))
    } else if is_decode_error(status.code(), status.message()) {
        Status::invalid_argument(DECODE_MESSAGE)
    } else {
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_resource_exhausted() {
        let e = RunError::Wal(crate::wal::WalError::Io {
            path: "run.wal".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        });
        assert_eq!(Status::from(e).code(), Code::ResourceExhausted);
        let e = RunError::Store(crate::store::StoreError::Io {
            path: "history.jsonl".into(),
            source: std::io::Error::from_raw_os_error(28),
        });
        assert_eq!(Status::from(e).code(), Code::ResourceExhausted);
    }

    #[test]
    fn bad_protobuf_is_invalid_argument() {
        let s = stream_error(
            Status::internal("failed to decode Protobuf message: invalid varint"),
            1024,
        );
        assert_eq!(s.code(), Code::InvalidArgument);
    }
}

//! What can go wrong inside a run's actor. The registry's own errors (unknown
//! run, id taken, ...) are the registry's `RegistryError`; `api::status` maps both.

use super::files::FilesError;
use crate::semantics::metrics::MetricError;
use crate::store::StoreError;
use crate::wal::WalError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("run {id:?} has ended ({state}); Init it with resume=\"allow\" to log to it again")]
    Ended { id: String, state: &'static str },
    /// The actor stopped because the sidecar is stopping: the client reconnects.
    #[error("the sidecar is shutting down; reconnect to it (or a new one) and resume the run")]
    Closed,
    #[error(transparent)]
    OverBudget(#[from] crate::memory::OverBudget),
    #[error("not applied: batch {seq} of this stream failed; open a new stream and resend from batch {seq}")]
    StreamBroken { seq: u64 },
    /// Another live writer has the run open, and this one did not ask to share it.
    #[error("run {id:?} is open by another live writer, {other}; two processes write one run only in shared mode: Init with settings mode=\"shared\" (WriterSettings.shared) in every process, or a run per process (group them with `group`)")]
    WriterConflict { id: String, other: String },
    /// The writer's rows come after it ended (its Finish, or it was found dead).
    #[error("run {id:?}: {writer} has ended ({state}); its rows are not recorded. Init the run again (resume=\"allow\") to write more")]
    WriterEnded {
        id: String,
        writer: String,
        state: &'static str,
    },
    #[error("run {id:?} has no writer {writer:?}: Init the run with this writer_id before logging with it")]
    UnknownWriter { id: String, writer: String },
    /// A stream's client let its acknowledgements pile up: the stream is ended,
    /// the run goes on.
    #[error("this stream's client did not read its acknowledgements ({0} waiting), so the stream was ended; the run goes on: read acks as they come, open a new stream and resend from the first unacknowledged batch")]
    AcksNotRead(usize),
    #[error("run {id:?} reached the largest step, {max}; it takes no more rows (start a new run)", max = crate::limits::MAX_STEP)]
    StepLimit { id: String },
    #[error("run {id:?} holds {held} {what}, and this request would put it past the limit of {limit}; reuse keys (nest related values under one key) or start a new run", limit = crate::limits::MAX_KEYS_PER_RUN)]
    TooManyKeys {
        id: String,
        what: &'static str,
        held: usize,
    },
    #[error("run {id:?} has had {held} writers, the limit of {limit}; reuse writer ids (one per process, kept across its Inits) or start a new run", limit = crate::limits::MAX_WRITERS_PER_RUN)]
    TooManyWriters { id: String, held: usize },
    /// A blocking task crashed or the actor reached a state it never should: a bug,
    /// not something a retry fixes.
    #[error("internal error in the sidecar: {0}")]
    Internal(String),
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error(transparent)]
    Metric(#[from] MetricError),
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RunError {
    /// A blocking task that panicked or was cancelled.
    pub fn crashed_task(what: &str, e: tokio::task::JoinError) -> Self {
        RunError::Internal(format!("{what}: {e}"))
    }

    /// Whether the disk is full (or over quota): the client can only wait.
    pub fn is_disk_full(&self) -> bool {
        let io = match self {
            RunError::Wal(WalError::Io { source, .. }) => source,
            RunError::Store(StoreError::Io { source, .. }) => source,
            RunError::Files(FilesError::Copy { source, .. }) => source,
            _ => return false,
        };
        matches!(
            io.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        )
    }
}

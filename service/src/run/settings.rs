//! What a run's actor needs to know of the sidecar's settings.

use std::sync::Arc;
use std::time::Duration;

use super::files::FilesPolicy;
use crate::memory::Budget;
use crate::wal::FsyncPolicy;

/// The sidecar settings a run's actor uses (built from `ServeConfig`).
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// How long buffered store writes wait at most for a flush; how often live
    /// files are checked.
    pub flush_interval: Duration,
    /// How often a live run's heartbeat is recorded in run.json.
    pub heartbeat_interval: Duration,
    /// When the log is synced to disk.
    pub fsync: FsyncPolicy,
    /// Which files SaveFiles and media may read.
    pub files: FilesPolicy,
    /// How long Finish waits for the remote backend.
    pub finish_timeout: Duration,
    /// The sidecar's one memory budget, which every run and command charges.
    pub budget: Arc<Budget>,
}

//! What a run's actor needs to know of the sidecar's settings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

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
    /// Told the directory of each run that ended here, once its files are
    /// flushed and its log let go (the sidecar indexes it for the UI). Never
    /// waited on: a full queue is skipped, and the UI indexes that run itself.
    pub ended: Option<mpsc::Sender<PathBuf>>,
}

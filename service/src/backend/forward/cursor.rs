//! The forwarder's persisted cursor (`forward/<backend>.json` in the run
//! directory): log offset, records delivered, the backend's own state.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ForwardStatus;
use crate::proto::v1::BackendStatus;
use crate::store;
use crate::wal::WalReader;

/// The persisted cursor.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Cursor {
    pub(super) offset: u64,
    pub(super) records: u64,
    #[serde(default)]
    pub(super) state: serde_json::Value,
}

pub(super) fn cursor_path(dir: &Path, backend: &str) -> PathBuf {
    dir.join("forward").join(format!("{backend}.json"))
}

/// Writes a cursor atomically; an error is logged (delivery would repeat after a
/// restart, which backends tolerate).
pub(super) fn write_cursor(run: &str, path: &Path, cursor: &Cursor) {
    let result = std::fs::create_dir_all(path.parent().unwrap_or(path))
        .map_err(store::io_err(path))
        .and_then(|_| {
            let text = serde_json::to_vec(cursor).unwrap_or_default();
            store::write_atomic(path, &text, false)
        });
    if let Err(e) = result {
        tracing::error!(run = %run, "cursor not saved (delivery would repeat after a restart): {e}");
    }
}

/// Saves a backend's state while a batch is being delivered: the cursor stays
/// before the batch (it is delivered again after a crash), with the state the
/// backend passes, which tells it what of the batch the server already has.
pub struct Checkpoint {
    pub(super) run: String,
    pub(super) path: PathBuf,
    pub(super) offset: u64,
    pub(super) records: u64,
}

impl Checkpoint {
    /// Saves `state` with the cursor before the batch, on a blocking thread.
    pub async fn save(&self, state: serde_json::Value) {
        let cursor = Cursor {
            offset: self.offset,
            records: self.records,
            state,
        };
        let (run, path) = (self.run.clone(), self.path.clone());
        let _ = tokio::task::spawn_blocking(move || write_cursor(&run, &path, &cursor)).await;
    }
}

pub(super) fn read_cursor(dir: &Path, backend: &str) -> Cursor {
    std::fs::read_to_string(cursor_path(dir, backend))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Bytes of `dir`'s log that `backend` has not acknowledged (for start-up and
/// `runs show`).
pub fn pending_bytes(dir: &Path, backend: &str) -> u64 {
    let len = std::fs::metadata(dir.join(store::WAL))
        .map(|m| m.len())
        .unwrap_or(0);
    len.saturating_sub(read_cursor(dir, backend).offset)
}

/// Whether delivery of `dir` to `backend` was ever started (a forwarder writes its
/// cursor when it starts). A sidecar resumes only those at start-up: switching a
/// data dir to a remote backend does not upload its old runs (`runcore sync` does).
pub fn started(dir: &Path, backend: &str) -> bool {
    cursor_path(dir, backend).is_file()
}

/// A run's delivery status read from its log and cursor (no forwarder running).
pub fn status_from_disk(dir: &Path, backend: &'static str) -> BackendStatus {
    let cursor = read_cursor(dir, backend);
    let wal = dir.join(store::WAL);
    let mut pending = 0;
    if let Ok(mut r) = WalReader::open_at(&wal, cursor.offset) {
        while let Ok(Some(_)) = r.next_record() {
            pending += 1;
        }
    }
    ForwardStatus {
        backend,
        delivered_offset: cursor.offset,
        delivered_records: cursor.records,
        total_records: cursor.records + pending,
        log_len: std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0),
        ..Default::default()
    }
    .to_proto()
}

//! Whole store files replaced atomically, and the blocking job a run's actor hands
//! its rewrites and fsyncs to.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::{io_err, StoreError};

/// Writes a file by renaming a finished temporary copy over it, so readers never
/// see half of it. `durable` fsyncs the copy first and the directory after the
/// rename, so the new name survives a power cut too. Blocking.
pub fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<(), StoreError> {
    write_stamped(path, bytes, durable, None)
}

/// [`write_atomic`], the new file's modification time set to `modified` when
/// given (run.json's is the run's last heartbeat).
pub(super) fn write_stamped(
    path: &Path,
    bytes: &[u8],
    durable: bool,
    modified: Option<SystemTime>,
) -> Result<(), StoreError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    if let Some(t) = modified {
        f.set_modified(t).map_err(io_err(&tmp))?;
    }
    if durable {
        f.sync_data().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if durable {
        let parent = path.parent().unwrap_or(Path::new("."));
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io_err(parent))?;
    }
    Ok(())
}

/// Store writes prepared on a run's actor and done on a blocking thread: whole
/// files replaced with [`write_atomic`], line files fsynced.
#[derive(Default)]
pub struct Rewrites {
    /// Each file's path, new content and modification time to set, if any.
    files: Vec<(PathBuf, Vec<u8>, Option<SystemTime>)>,
    sync: Vec<(PathBuf, Arc<File>)>,
    durable: bool,
}

impl Rewrites {
    /// `durable`: fsync what is written (finish, shutdown).
    pub fn new(durable: bool) -> Self {
        Rewrites {
            durable,
            ..Default::default()
        }
    }

    /// Replaces `path` with `bytes`.
    pub fn file(&mut self, path: PathBuf, bytes: impl Into<Vec<u8>>) {
        self.files.push((path, bytes.into(), None));
    }

    /// Replaces a run's run.json with `bytes`, its modification time the run's
    /// last heartbeat (see [`super::stamp_heartbeat`]).
    pub fn run_file(&mut self, dir: &Path, bytes: Vec<u8>, last_heartbeat: f64) {
        let stamp = Some(super::system_time(last_heartbeat));
        self.files.push((dir.join(super::RUN_JSON), bytes, stamp));
    }

    /// Also fsyncs these (already flushed) files.
    pub fn sync(&mut self, files: Vec<(PathBuf, Arc<File>)>) {
        self.sync.extend(files);
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.sync.is_empty()
    }

    /// Does the writes. Blocking. Every write is tried; the errors are returned.
    pub fn apply(self) -> Vec<StoreError> {
        let mut errors = Vec::new();
        for (path, bytes, modified) in self.files {
            if let Err(e) = write_stamped(&path, &bytes, self.durable, modified) {
                errors.push(e);
            }
        }
        for (path, file) in self.sync {
            if let Err(e) = file.sync_data() {
                errors.push(io_err(&path)(e));
            }
        }
        errors
    }

    /// Does the writes on a blocking thread.
    pub async fn run(self) -> Vec<StoreError> {
        if self.is_empty() {
            return Vec::new();
        }
        tokio::task::spawn_blocking(move || self.apply())
            .await
            .unwrap_or_else(|e| {
                vec![StoreError::Io {
                    path: PathBuf::new(),
                    source: io::Error::other(format!("store writer task failed: {e}")),
                }]
            })
    }
}

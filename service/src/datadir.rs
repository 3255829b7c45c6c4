//! One sidecar per data dir: `<data-dir>/.runcore.lock`, locked for as long as
//! the sidecar runs, names its pid. A second sidecar exits naming the first.
//! Sidecars that share a data dir on purpose (each locks the runs it has open)
//! all start with `--shared-data-dir`, which takes a shared lock instead.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = ".runcore.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("data dir {dir} is in use by another runcore sidecar (pid {pid}); stop it, use another --data-dir, or start every sidecar that shares this one with --shared-data-dir")]
    InUse { dir: PathBuf, pid: String },
    #[error("data dir lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Held while the sidecar runs; dropping it (or the process dying) unlocks.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Locks `dir` for this sidecar: exclusively, or `shared` with other sidecars
/// that share it too.
pub fn lock(dir: &Path, shared: bool) -> Result<DataDirLock, LockError> {
    let path = dir.join(LOCK_FILE);
    let err = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(err)?;
    let locked = if shared {
        file.try_lock_shared()
    } else {
        file.try_lock()
    };
    match locked {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(LockError::InUse {
                dir: dir.to_owned(),
                pid: if pid.is_empty() {
                    "unknown".into()
                } else {
                    pid.to_owned()
                },
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(err(e)),
    }
    // Best effort: the pid is only what the message names.
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    Ok(DataDirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_owner_or_many_sharers() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path(), false).unwrap();
        let e = lock(dir.path(), false).unwrap_err().to_string();
        assert!(e.contains(&std::process::id().to_string()), "{e}");
        assert!(lock(dir.path(), true).is_err());
        drop(first);
        let a = lock(dir.path(), true).unwrap();
        let _b = lock(dir.path(), true).unwrap();
        assert!(lock(dir.path(), false).is_err());
        drop(a);
    }
}

//! One forwarder per run and backend, across processes: a forwarder holds
//! `<run dir>/forward/<backend>.lock` while it delivers.

use std::path::Path;
use std::time::Duration;

use super::{Forwarders, Stopped};

/// Pause between tries to take a delivery lock held by a retiring forwarder.
const LOCK_RETRY: Duration = Duration::from_millis(20);
/// Tries a sidecar's forwarder makes before it leaves the run to the holder.
const LOCK_TRIES: u32 = 50;

/// Takes the delivery lock of a run. A sidecar's forwarder (`registry`: its
/// registry and run id) waits a moment for a lock held by the run's previous
/// forwarder, which lets go of it as it retires (an edit of an ended run starts a
/// new one just then); when the lock stays taken, it leaves the registry.
pub(super) async fn lock_delivery(
    dir: &Path,
    backend: &str,
    registry: Option<(&Forwarders, &str)>,
) -> Result<std::fs::File, Stopped> {
    let lock_path = dir.join("forward").join(format!("{backend}.lock"));
    let file = std::fs::create_dir_all(dir.join("forward"))
        .and_then(|_| std::fs::File::create(&lock_path))
        .map_err(|e| Stopped::Failed(format!("{}: {e}", lock_path.display())))?;
    let mut tries = if registry.is_some() { LOCK_TRIES } else { 1 };
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if tries > 1 => {
                tries -= 1;
                tokio::time::sleep(LOCK_RETRY).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                if let Some((reg, id)) = registry {
                    reg.lock().remove(id);
                }
                return Err(Stopped::Busy);
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Stopped::Failed(e.to_string())),
        }
    }
}

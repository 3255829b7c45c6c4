//! The one tokio runtime the crate's blocking calls and streams run on.
//!
//! It survives `fork()`: a forked child has none of the parent's runtime threads,
//! so a process whose pid differs from the pid that built the runtime builds its own
//! and never touches the parent's. The parent's is leaked there, not dropped:
//! dropping it would wait for worker threads that do not exist in the child.

use std::sync::Mutex;

use tokio::runtime::Runtime;

/// Worker threads: the runtime only moves bytes between sockets and the callers'
/// threads, which do the encoding.
const WORKERS: usize = 2;

/// The runtime and the pid of the process that built it. The lock is held only to
/// read or replace this pair, never while building a runtime, so a fork cannot
/// leave it locked for long enough to matter.
static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

/// This process's runtime, built on first use (and again in a forked child).
pub(crate) fn runtime() -> &'static Runtime {
    let pid = std::process::id();
    if let Some(runtime) = current(pid) {
        return runtime;
    }
    let built = build();
    let mut slot = RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match *slot {
        Some((owner, runtime)) if owner == pid => {
            // Another thread of this process won the race: use its runtime.
            drop(slot);
            built.shutdown_background();
            runtime
        }
        _ => {
            let runtime: &'static Runtime = Box::leak(Box::new(built));
            *slot = Some((pid, runtime));
            runtime
        }
    }
}

fn current(pid: u32) -> Option<&'static Runtime> {
    let slot = RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    slot.filter(|(owner, _)| *owner == pid)
        .map(|(_, runtime)| runtime)
}

fn build() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .thread_name("runcore-io")
        .enable_all()
        .build()
        // Only fails when the OS refuses threads or an epoll instance: nothing a
        // caller could do about it, and no call could run without it.
        .expect("runcore-client: cannot start its tokio runtime (threads or epoll refused)")
}

//! Is a run's client still there? A client on this host is watched by its pid (its
//! exit is noticed within [`PID_CHECK`]); every client must also show a sign of life
//! (any RPC, or Heartbeat) at least every client timeout. A run whose client is gone
//! without Finish is crashed (preempted if it was preempting).
//!
//! One watch per client process, whatever the number of its runs: [`Clients`]
//! reads a client's `/proc/<pid>/stat` every [`PID_CHECK`] on one task, and tells
//! each run that watches it when it exits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::proto::v1::ClientInfo;

/// How often a client process is checked: its exit is noticed within this (the
/// issue's bound is 1 s), at two /proc reads a second per client process (not per
/// run: its runs share the check).
pub const PID_CHECK: Duration = Duration::from_millis(500);

/// This host's identity, to tell whether a client runs beside the sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostId {
    pub hostname: String,
    pub boot_id: String,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// This host, read once.
pub fn local_host() -> &'static HostId {
    static HOST: OnceLock<HostId> = OnceLock::new();
    HOST.get_or_init(|| HostId {
        hostname: read_trimmed("/proc/sys/kernel/hostname"),
        boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
    })
}

/// A process on this host, identified by pid and start time (so a reused pid is
/// not mistaken for the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Process {
    pub pid: u32,
    start_ticks: u64,
}

/// The state letter and start time of a pid from /proc/PID/stat.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 22 of the whole line is the start time; `rest` begins at field 3.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

impl Process {
    /// The live process `pid`, if there is one.
    pub fn find(pid: u32) -> Option<Process> {
        match stat(pid)? {
            ('Z' | 'X', _) => None,
            (_, start_ticks) => Some(Process { pid, start_ticks }),
        }
    }

    /// Whether the process is still running (not exited, not a zombie, not reused).
    pub fn alive(&self) -> bool {
        Process::find(self.pid).is_some_and(|p| p.start_ticks == self.start_ticks)
    }
}

/// The client process to watch, when the client runs on this host.
pub fn local_client(client: Option<&ClientInfo>) -> Option<Process> {
    let c = client?;
    let host = local_host();
    let same_host = c.hostname == host.hostname
        && (c.boot_id.is_empty() || host.boot_id.is_empty() || c.boot_id == host.boot_id);
    if !same_host || c.pid <= 0 {
        return None;
    }
    Process::find(u32::try_from(c.pid).ok()?)
}

/// Whether a client that announced itself on this host is known to be gone: same
/// host and boot, and no such process. (A client on another host is never known
/// gone; its timeout decides.)
pub fn client_gone(client: Option<&ClientInfo>) -> bool {
    let Some(c) = client else { return false };
    let host = local_host();
    c.pid > 0
        && c.hostname == host.hostname
        && !c.boot_id.is_empty()
        && c.boot_id == host.boot_id
        && u32::try_from(c.pid).ok().and_then(Process::find).is_none()
}

/// How a run knows its client is there.
#[derive(Debug, Clone, Copy)]
pub enum ClientWatch {
    /// On this host: its pid is watched (and its timeout applies).
    Pid(Process),
    /// On this host and already gone (a run recovered after its client died).
    Gone,
    /// Elsewhere, or unknown: only the timeout applies.
    Remote,
}

impl ClientWatch {
    /// How to watch the client a run's Init (or resume) named.
    pub fn of(client: Option<&ClientInfo>) -> Self {
        match local_client(client) {
            Some(p) => ClientWatch::Pid(p),
            None if client_gone(client) => ClientWatch::Gone,
            None => ClientWatch::Remote,
        }
    }

    /// The watched pid, when the client is on this host.
    pub fn pid(&self) -> Option<u32> {
        self.process().map(|p| p.pid)
    }

    /// The watched process, when the client is on this host.
    pub fn process(&self) -> Option<Process> {
        match self {
            ClientWatch::Pid(p) => Some(*p),
            ClientWatch::Gone | ClientWatch::Remote => None,
        }
    }

    /// When the client counts as gone unless it shows a sign of life first: now
    /// for a client known gone, else `client_timeout` after `last_contact` (a
    /// watched process's exit is told by [`Clients`], not by this deadline).
    pub fn deadline(
        &self,
        last_contact: tokio::time::Instant,
        client_timeout: f64,
    ) -> tokio::time::Instant {
        match self {
            ClientWatch::Gone => last_contact,
            ClientWatch::Pid(_) | ClientWatch::Remote => {
                last_contact + seconds(client_timeout.max(0.001))
            }
        }
    }

    fn gone(&self) -> bool {
        match self {
            ClientWatch::Pid(p) => !p.alive(),
            ClientWatch::Gone => true,
            ClientWatch::Remote => false,
        }
    }

    /// Why the client counts as gone (its process exited, or it showed no sign of
    /// life since `last_contact` for `client_timeout` seconds); None while it is
    /// there.
    pub fn gone_why(
        &self,
        last_contact: tokio::time::Instant,
        client_timeout: f64,
    ) -> Option<&'static str> {
        if self.gone() {
            return Some("its client process exited without Finish");
        }
        let timeout = seconds(client_timeout.max(0.001));
        (last_contact.elapsed() > timeout)
            .then_some("no sign of life from its client within the client timeout")
    }
}

/// The runs watching one client process: each is told once when it exits.
type Subscribers = Vec<(u64, mpsc::Sender<()>)>;

#[derive(Default)]
struct Watched {
    /// Each watched process and its runs. An entry is removed by its check task
    /// only (when the process exits or nobody watches it any more), so there is
    /// never more than one task per process.
    procs: HashMap<Process, Subscribers>,
    next_id: u64,
}

/// The sidecar's client processes, each checked by one task shared by all the runs
/// it holds. Cheap to clone; every clone shares the same checks.
#[derive(Clone, Default)]
pub struct Clients {
    inner: Arc<Mutex<Watched>>,
}

impl Clients {
    pub fn new() -> Clients {
        Clients::default()
    }

    fn lock(&self) -> MutexGuard<'_, Watched> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells `tx` (once, without waiting: a full channel has been told already)
    /// when `process` exits, until the guard is dropped. Starts the process's check
    /// task unless one runs. Must be called within the runtime.
    pub fn watch(&self, process: Process, tx: mpsc::Sender<()>) -> ClientGuard {
        let mut w = self.lock();
        let id = w.next_id;
        w.next_id += 1;
        let subs = w.procs.entry(process).or_insert_with(|| {
            // The task's stop path: it ends when the process exits or when no
            // run watches it any more (checked at each tick).
            tokio::spawn(check(process, self.clone()));
            Vec::new()
        });
        subs.push((id, tx));
        ClientGuard {
            clients: self.clone(),
            process,
            id,
        }
    }

    /// How many client processes are checked (one task each).
    pub fn checked(&self) -> usize {
        self.lock().procs.len()
    }
}

/// Checks `process` every [`PID_CHECK`] until it exits (then tells its runs) or no
/// run watches it.
async fn check(process: Process, clients: Clients) {
    let mut tick = tokio::time::interval(PID_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // A read of procfs: short, never waits on a disk.
        let alive = process.alive();
        let mut w = clients.lock();
        let Some(subs) = w.procs.get(&process) else {
            return;
        };
        if !alive {
            for (_, tx) in subs {
                let _ = tx.try_send(());
            }
        }
        if !alive || subs.is_empty() {
            w.procs.remove(&process);
            return;
        }
    }
}

/// Keeps a run's watch of a client process; dropping it ends the watch.
pub struct ClientGuard {
    clients: Clients,
    process: Process,
    id: u64,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        let mut w = self.clients.lock();
        if let Some(subs) = w.procs.get_mut(&self.process) {
            subs.retain(|(id, _)| *id != self.id);
        }
    }
}

/// A duration of `secs` seconds, saturating at about 100 years (a client's
/// timeout is checked by the API; this never panics whatever the log holds).
pub fn seconds(secs: f64) -> Duration {
    const MAX: f64 = 100.0 * 365.0 * 86400.0;
    Duration::from_secs_f64(if secs.is_finite() {
        secs.clamp(0.0, MAX)
    } else {
        MAX
    })
}

/// A run is stale when its last recorded heartbeat is older than this: what
/// `runcore runs ls` shows as crashed although nothing marked it.
pub fn stale_after(client_timeout: f64, heartbeat_interval: f64) -> f64 {
    client_timeout.max(2.0 * heartbeat_interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        let me = Process::find(std::process::id()).expect("self");
        assert!(me.alive());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let p = Process::find(child.id()).expect("child");
        assert!(p.alive());
        child.kill().unwrap();
        // Killed but not yet reaped: a zombie counts as gone.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while p.alive() {
            assert!(std::time::Instant::now() < deadline, "child still alive");
            std::thread::yield_now();
        }
        child.wait().unwrap();
        assert!(!p.alive());
    }

    #[test]
    fn only_clients_on_this_host_are_watched() {
        let host = local_host();
        let mine = ClientInfo {
            pid: i64::from(std::process::id()),
            hostname: host.hostname.clone(),
            boot_id: host.boot_id.clone(),
        };
        assert!(local_client(Some(&mine)).is_some());
        assert!(!client_gone(Some(&mine)));
        let remote = ClientInfo {
            hostname: "elsewhere".into(),
            ..mine.clone()
        };
        assert!(local_client(Some(&remote)).is_none());
        assert!(!client_gone(Some(&remote)));
        let dead = ClientInfo {
            pid: i64::from(u32::MAX >> 2),
            ..mine
        };
        assert!(client_gone(Some(&dead)) || host.boot_id.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn runs_of_one_client_share_one_check_and_hear_of_its_exit() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let p = Process::find(child.id()).expect("child");
        let clients = Clients::new();
        let (tx_a, mut rx_a) = mpsc::channel(1);
        let (tx_b, mut rx_b) = mpsc::channel(1);
        let _a = clients.watch(p, tx_a);
        let _b = clients.watch(p, tx_b);
        assert_eq!(clients.checked(), 1, "one check for both runs");
        tokio::time::sleep(PID_CHECK * 4).await;
        assert!(rx_a.try_recv().is_err(), "told of an exit while alive");
        child.kill().unwrap();
        child.wait().unwrap();
        // (Paused time runs ahead to the next check.)
        rx_a.recv().await.expect("a told");
        rx_b.recv().await.expect("b told");
        assert_eq!(clients.checked(), 0, "the check ended with the process");
        // A run that watches it after its exit is told too.
        let (tx_c, mut rx_c) = mpsc::channel(1);
        let _c = clients.watch(p, tx_c);
        rx_c.recv().await.expect("c told");
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_ends_when_no_run_watches_its_client() {
        let me = Process::find(std::process::id()).expect("self");
        let clients = Clients::new();
        let (tx, _rx) = mpsc::channel(1);
        let guard = clients.watch(me, tx.clone());
        let again = clients.watch(me, tx);
        drop(guard);
        tokio::time::sleep(PID_CHECK * 2).await;
        assert_eq!(clients.checked(), 1, "one run still watches");
        drop(again);
        tokio::time::sleep(PID_CHECK * 2).await;
        assert_eq!(clients.checked(), 0);
    }
}

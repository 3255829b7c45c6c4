//! Is a run's client still there? A client on this host is watched by its pid (its
//! exit is noticed within [`PID_CHECK`]); every client must also show a sign of life
//! (any RPC, or Heartbeat) at least every client timeout. A run whose client is gone
//! without Finish is crashed (preempted if it was preempting).

use std::sync::OnceLock;
use std::time::Duration;

use crate::proto::v1::ClientInfo;

/// How often a run checks its client's pid and its timeout: a client's exit is
/// noticed within this (the bound is 1 s), at a few /proc reads per second
/// per open run.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
        match self {
            ClientWatch::Pid(p) => Some(p.pid),
            ClientWatch::Gone | ClientWatch::Remote => None,
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
}

//! When an actor wakes up without a command: a flush armed only while something
//! waits to be flushed, and a liveness check at the next moment a writer could
//! count as gone or a heartbeat is due. An idle run (nothing buffered, its
//! client's process watched by the shared check in `liveness`) takes no timer
//! wake-up between them.

use tokio::time::Instant;

use super::actor::Actor;
use crate::clock::now;
use crate::liveness::{self, PID_CHECK};
use crate::wal::FsyncPolicy;

/// The actor's two deadlines.
#[derive(Debug, Default)]
pub(super) struct Timers {
    /// When the pending writes are flushed; None while nothing is pending.
    flush_at: Option<Instant>,
    /// The log's length at the last timed flush: every store line comes from a
    /// record appended to the log, so a longer log means lines to flush.
    flushed_len: u64,
    /// The last liveness check: checks are at least [`PID_CHECK`] apart, so a
    /// check that cannot end a gone writer (a full disk) is not retried in a loop.
    checked: Option<Instant>,
}

impl Timers {
    /// The armed flush fires, with the log `log_len` long.
    pub(super) fn flushing(&mut self, log_len: u64) {
        self.flush_at = None;
        self.flushed_len = log_len;
    }

    /// A liveness check is done now.
    pub(super) fn checked(&mut self) {
        self.checked = Some(Instant::now());
    }
}

/// Waits until `at`; never, for None.
pub(super) async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Actor {
    /// When to flush: a flush interval after something began to wait for one
    /// (kept while more arrives, so the wait is never longer than the interval).
    pub(super) fn flush_deadline(&self, timers: &mut Timers) -> Option<Instant> {
        if timers.flush_at.is_none() && self.needs_flush(timers.flushed_len) {
            timers.flush_at = Some(Instant::now() + self.config.flush_interval);
        }
        timers.flush_at
    }

    /// Whether a flush has work: records logged since the last (store lines to
    /// write), a log to sync (`--fsync batch`), summary.json or run.json behind
    /// the state, or live files to check for changes (only a periodic look finds
    /// those).
    fn needs_flush(&self, flushed_len: u64) -> bool {
        self.wal.len() != flushed_len
            || self.summary_dirty
            || (self.config.fsync == FsyncPolicy::Batch && self.wal.unsynced())
            || !self.live.is_empty()
            || self.written.as_ref() != Some(&self.state.info)
    }

    /// When to check the writers: when the first could count as gone (its client
    /// timeout from its last sign of life) or the next heartbeat is due, whichever
    /// is first; never for an ended run. A process's exit is told apart.
    pub(super) fn check_deadline(&self, timers: &Timers) -> Option<Instant> {
        if !self.state.is_open() {
            return None;
        }
        let beat = Instant::now() + liveness::seconds(self.heartbeat_due_in());
        let at = self
            .links
            .deadline(self.state.info.client_timeout)
            .map_or(beat, |gone| gone.min(beat));
        Some(match timers.checked {
            Some(last) => at.max(last + PID_CHECK),
            None => at,
        })
    }

    /// Seconds until the next heartbeat is due (0: due).
    fn heartbeat_due_in(&self) -> f64 {
        let interval = self.config.heartbeat_interval.as_secs_f64();
        (self.state.info.last_heartbeat + interval - now()).max(0.0)
    }

    /// Records a heartbeat (`last_heartbeat`, written to run.json by the next
    /// flush) when one is due: at most one per heartbeat interval, so signs of
    /// life more frequent than that do not rewrite run.json each time.
    pub(super) fn beat(&mut self) {
        if self.state.is_open() && self.heartbeat_due_in() <= 0.0 {
            self.state.info.last_heartbeat = now();
        }
    }
}

//! When an actor wakes up without a command: a flush armed only while something
//! waits to be flushed, and a liveness check at the next moment a writer could
//! count as gone or a heartbeat is due. An idle run (nothing buffered, its
//! client's process watched by the shared check in `liveness`) takes no timer
//! wake-up between them. Each is one timer kept for the actor's life and moved
//! only earlier (a busy run does not re-register it with each command).

use std::pin::Pin;

use tokio::time::{Instant, Sleep};

use super::actor::Actor;
use crate::clock::now;
use crate::liveness::{self, PID_CHECK};
use crate::store;
use crate::wal::FsyncPolicy;

/// One timer: fires once at its deadline, when armed.
pub(super) struct Alarm {
    sleep: Pin<Box<Sleep>>,
    armed: bool,
}

impl Alarm {
    fn new() -> Self {
        Alarm {
            sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
            armed: false,
        }
    }

    /// Fires no later than `at` (an armed alarm due earlier stays as it is).
    fn arm_by(&mut self, at: Instant) {
        if !self.armed || at < self.sleep.deadline() {
            self.sleep.as_mut().reset(at);
        }
        self.armed = true;
    }

    fn disarm(&mut self) {
        self.armed = false;
    }

    /// Returns at the deadline (then disarmed); never while disarmed.
    pub(super) async fn fired(&mut self) {
        if !self.armed {
            return std::future::pending().await;
        }
        self.sleep.as_mut().await;
        self.armed = false;
    }
}

/// The actor's two timers.
pub(super) struct Timers {
    /// Flushes what waits; armed while something does.
    pub(super) flush: Alarm,
    /// Checks the writers and records the heartbeat; armed while the run is open.
    pub(super) check: Alarm,
    /// The log's length at the last timed flush: every store line comes from a
    /// record appended to the log, so a longer log means lines to flush.
    flushed_len: u64,
    /// The last liveness check: checks are at least [`PID_CHECK`] apart, so a
    /// check that cannot end a gone writer (a full disk) is not retried in a loop.
    checked: Option<Instant>,
}

impl Timers {
    pub(super) fn new() -> Self {
        Timers {
            flush: Alarm::new(),
            check: Alarm::new(),
            flushed_len: 0,
            checked: None,
        }
    }

    /// A timed flush begins, with the log `log_len` long.
    pub(super) fn flushing(&mut self, log_len: u64) {
        self.flushed_len = log_len;
    }

    /// A system-metrics sample took the log from `before` to `after` bytes; its
    /// store line is already written, so it leaves nothing to flush.
    pub(super) fn sampled(&mut self, before: u64, after: u64) {
        if self.flushed_len == before {
            self.flushed_len = after;
        }
    }

    /// A liveness check is done now.
    pub(super) fn checked(&mut self) {
        self.checked = Some(Instant::now());
    }
}

impl Actor {
    /// Arms the timers for what waits: a flush one flush interval after something
    /// began to wait for one (kept while more arrives, so nothing waits longer),
    /// the next liveness check while the run is open.
    pub(super) fn set_timers(&self, timers: &mut Timers) {
        if !timers.flush.armed && self.needs_flush(timers.flushed_len) {
            timers
                .flush
                .arm_by(Instant::now() + self.config.flush_interval);
        }
        match self.check_deadline(timers.checked) {
            Some(at) => timers.check.arm_by(at),
            None => timers.check.disarm(),
        }
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
    /// is first, and not within [`PID_CHECK`] of the last check; never for an
    /// ended run. A watched process's exit is told apart (`LinkEvent::Exited`).
    fn check_deadline(&self, checked: Option<Instant>) -> Option<Instant> {
        if !self.state.is_open() {
            return None;
        }
        let beat = Instant::now() + liveness::seconds(self.heartbeat_due_in());
        let at = self
            .links
            .deadline(self.state.info.client_timeout)
            .map_or(beat, |gone| gone.min(beat));
        Some(match checked {
            Some(last) => at.max(last + PID_CHECK),
            None => at,
        })
    }

    /// Seconds until the next heartbeat is due (0: due).
    fn heartbeat_due_in(&self) -> f64 {
        let interval = self.config.heartbeat_interval.as_secs_f64();
        (self.state.info.last_heartbeat + interval - now()).max(0.0)
    }

    /// Records a heartbeat when one is due (at most one per heartbeat interval,
    /// however often the client shows signs of life): `last_heartbeat`, and
    /// run.json's modification time, so no rewrite of the file is needed for it
    /// (readers take the later of the two; see [`store::stamp_heartbeat`]).
    pub(super) fn beat(&mut self) {
        if !self.state.is_open() || self.heartbeat_due_in() > 0.0 {
            return;
        }
        let time = now();
        self.state.info.last_heartbeat = time;
        match store::stamp_heartbeat(self.store.dir(), time) {
            Ok(()) => {
                if let Some(written) = &mut self.written {
                    written.last_heartbeat = time;
                }
            }
            // The next flush rewrites run.json with it.
            Err(e) => tracing::debug!(run = %self.state.info.id, "heartbeat not stamped: {e}"),
        }
        self.publish();
    }
}

//! The background sender: packs queued rows into `LogBatch` messages and streams
//! them to the sidecar over LogStream (a port of the Python client's `_sender.py`).
//!
//! - [`Sender::put`] appends a row to the queue; nothing else happens on the
//!   caller's thread unless the queue is full, when it blocks (rows are never
//!   dropped for lack of room).
//! - The sender thread sleeps until a batch worth of rows is queued, someone
//!   flushes or closes, or `batch_interval` passed since the oldest queued row;
//!   then it sends everything queued in batches of at most `batch_rows` rows (and
//!   about [`MAX_BATCH_BYTES`](batch::MAX_BATCH_BYTES)), each numbered with the next
//!   seq, at most `max_in_flight` unacknowledged.
//! - A thread per stream reads the acks in order and retires batches. Batches stay
//!   unacked until acknowledged; when the stream breaks, what happens is the client
//!   contract's ([`classify`], kind Stream): reconnect and resend every unacked
//!   batch on a new stream (the sidecar acks a seq it holds as a duplicate, so each
//!   row lands once), drop a refused batch, re-Init a run the sidecar lost, or give
//!   up (a run the sidecar ended, a wrong token...).
//! - A heartbeat thread shows a sign of life every `heartbeat_every`.
//!
//! The sender knows its run only through a [`Link`]; no lock is held while it is
//! called.
//!
//! Files: this one holds the caller's side and the shared state; `pump.rs` the
//! sender thread's loop, `repair.rs` what a broken stream leads to, `stream.rs` one
//! LogStream call and its ack thread, `acks.rs` what an ack changes, `heartbeat.rs`
//! the heartbeat thread, `batch.rs` rows and their encoding.

mod acks;
mod batch;
mod heartbeat;
mod link;
mod pump;
mod repair;
mod settings;
mod stream;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use batch::Row;
pub use link::{AttachError, Link};
pub use settings::{SenderSettings, SenderStats};

use crate::connection::Connection;
use crate::status::Status;
use batch::Sent;
use stream::Stream;

/// Streams a run's rows to the sidecar on threads of its own. Dropping it asks it
/// to send what it holds and stop, without waiting: call [`Sender::close`] to wait.
pub struct Sender {
    shared: Arc<Shared>,
}

/// What the caller's side, the sender thread, the ack threads and the heartbeat
/// thread share.
struct Shared {
    run_id: String,
    writer_id: String,
    settings: SenderSettings,
    link: Arc<dyn Link>,
    state: Mutex<State>,
    /// Wakes the sender thread: rows to send, a flush or close, an ack, a break.
    wake_sender: Condvar,
    /// Wakes callers waiting for room, acks, the end: flush, close, a full put.
    progress: Condvar,
    /// Wakes the heartbeat thread: a new interval, or the end.
    wake_heartbeat: Condvar,
}

struct State {
    /// The connection streams and heartbeats use (replaced by `Link::recover`).
    connection: Connection,
    rows: VecDeque<Row>,
    /// When the oldest queued row was queued: it waits at most `batch_interval`.
    oldest_row_at: Option<Instant>,
    unacked: BTreeMap<u64, Sent>,
    next_seq: u64,
    stream: Option<Stream>,
    /// Generation of the last stream opened.
    generation: u64,
    /// The current stream ended and was not yet handled: its error, if any.
    broken: Option<Option<Status>>,
    /// The current stream ended after its half-close.
    stream_done: bool,
    /// Send what is queued now, without waiting for a full batch.
    flush_wanted: bool,
    closing: bool,
    /// The sender thread ended (closed, or gave up).
    finished: bool,
    /// Since when streams break without an ack in between, and how many did.
    failing_since: Option<Instant>,
    failures: u32,
    /// Breaks in a row whose action is RetryLimited.
    limited: u32,
    /// Since when batches wait for acks, and the (acks, stream) it was noted at.
    waiting_since: Option<(Instant, u64, u64)>,
    heartbeat_every: Duration,
    stats: SenderStats,
}

impl State {
    /// The sender gave up or ended: rows put now are lost.
    fn stopped(&self) -> bool {
        self.finished || self.stats.dead.is_some()
    }

    /// A `put` now waits for room (a stopped sender takes rows at once, as lost).
    fn is_full(&self, settings: &SenderSettings) -> bool {
        self.rows.len() >= settings.queue_size && !self.stopped()
    }
}

/// The sender stops for good, for this reason.
struct GiveUp(String);

impl Sender {
    /// Starts sending for run `run_id` as writer `writer_id`, numbering batches from
    /// `first_seq` (one after the last seq the run holds from this writer).
    pub fn start(
        connection: Connection,
        run_id: String,
        writer_id: String,
        first_seq: u64,
        settings: SenderSettings,
        link: Arc<dyn Link>,
    ) -> Sender {
        let heartbeat_every = settings.heartbeat_every;
        let shared = Arc::new(Shared {
            run_id,
            writer_id,
            settings,
            link,
            state: Mutex::new(State {
                connection,
                rows: VecDeque::new(),
                oldest_row_at: None,
                unacked: BTreeMap::new(),
                next_seq: first_seq,
                stream: None,
                generation: 0,
                broken: None,
                stream_done: false,
                flush_wanted: false,
                closing: false,
                finished: false,
                failing_since: None,
                failures: 0,
                limited: 0,
                waiting_since: None,
                heartbeat_every,
                // queued and next_seq are read from the state when asked.
                stats: SenderStats::default(),
            }),
            wake_sender: Condvar::new(),
            progress: Condvar::new(),
            wake_heartbeat: Condvar::new(),
        });
        spawn_thread("runcore-sender", &shared, Shared::run);
        spawn_thread("runcore-heartbeat", &shared, heartbeat::run);
        Sender { shared }
    }

    /// Queues a row. Returns at once unless the queue holds `queue_size` rows, then
    /// blocks until there is room. After the sender gave up (or closed), the row is
    /// counted lost.
    pub fn put(&self, row: Row) {
        let shared = &self.shared;
        let mut state = shared.lock();
        while state.is_full(&shared.settings) {
            shared.wake_sender.notify_one();
            state = shared.wait(&shared.progress, state, None);
        }
        shared.queue(&mut state, row);
    }

    /// Queues a row as `put` does when that returns at once; gives the row back
    /// instead of blocking when the queue is full. One lock, for callers that must
    /// not block (e.g. a thread holding Python's GIL).
    pub fn try_put(&self, row: Row) -> Result<(), Row> {
        let shared = &self.shared;
        let mut state = shared.lock();
        if state.is_full(&shared.settings) {
            return Err(row);
        }
        shared.queue(&mut state, row);
        Ok(())
    }

    /// Rows queued and not yet acknowledged (or given up on).
    pub fn pending(&self) -> u64 {
        let state = self.shared.lock();
        state.stats.rows_queued - state.stats.rows_acked - state.stats.rows_lost
    }

    /// Waits until every row queued so far is acknowledged or lost; false when
    /// `timeout` passed first (or the sender ended with rows unaccounted for).
    pub fn flush(&self, timeout: Option<Duration>) -> bool {
        let shared = &self.shared;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = shared.lock();
        let target = state.stats.rows_queued;
        state.flush_wanted = true;
        shared.wake_sender.notify_one();
        loop {
            let accounted = state.stats.rows_acked + state.stats.rows_lost;
            if accounted >= target {
                return true;
            }
            if state.finished || deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            state = shared.wait(&shared.progress, state, deadline);
        }
    }

    /// Sends everything queued, waits for the acks, and half-closes the stream; at
    /// most `timeout` (the sender goes on in the background after that).
    pub fn close(&self, timeout: Option<Duration>) {
        let shared = &self.shared;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = shared.lock();
        state.closing = true;
        shared.wake_sender.notify_one();
        while !state.finished && deadline.is_none_or(|d| Instant::now() < d) {
            state = shared.wait(&shared.progress, state, deadline);
        }
    }

    pub fn stats(&self) -> SenderStats {
        let state = self.shared.lock();
        SenderStats {
            queued: state.rows.len(),
            next_seq: state.next_seq,
            ..state.stats.clone()
        }
    }

    /// Heartbeats from now on every `every` (e.g. a third of the run's client
    /// timeout, once the sidecar said what it is).
    pub fn set_heartbeat_every(&self, every: Duration) {
        self.shared.lock().heartbeat_every = every;
        self.shared.wake_heartbeat.notify_all();
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake_sender.notify_one();
    }
}

fn spawn_thread(name: &str, shared: &Arc<Shared>, body: fn(&Arc<Shared>)) {
    let for_thread = Arc::clone(shared);
    let started = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || body(&for_thread));
    if let Err(e) = started {
        shared.give_up(format!("cannot start the {name} thread: {e}"));
        shared.finish();
    }
}

impl Shared {
    /// `put`'s second half, under the lock: the row queued (or counted lost when
    /// the sender stopped), the sender woken when it has something to do.
    fn queue(&self, state: &mut State, row: Row) {
        state.stats.rows_queued += 1;
        if state.stopped() {
            state.stats.rows_lost += 1;
            return;
        }
        state.rows.push_back(row);
        let queued = state.rows.len();
        if queued == 1 {
            state.oldest_row_at = Some(Instant::now());
        }
        if queued == 1 || queued == self.settings.batch_rows {
            self.wake_sender.notify_one();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held is reported by the sender thread's exit;
        // the counters themselves stay consistent (updated in one place each).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits on `condvar` until notified or `deadline`.
    fn wait<'a>(
        &self,
        condvar: &Condvar,
        state: MutexGuard<'a, State>,
        deadline: Option<Instant>,
    ) -> MutexGuard<'a, State> {
        match deadline {
            None => condvar
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                condvar
                    .wait_timeout(state, left)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0
            }
        }
    }

    /// Rows queued and unacked are lost; later puts count lost too.
    fn give_up(&self, why: String) {
        let mut state = self.lock();
        let unacked: usize = state.unacked.values().map(|sent| sent.rows).sum();
        let lost = state.rows.len() + unacked;
        state.rows.clear();
        state.oldest_row_at = None;
        state.unacked.clear();
        state.stats.rows_lost += lost as u64;
        state.stats.dead = Some(why.clone());
        if let Some(mut stream) = state.stream.take() {
            stream.cancel();
        }
        drop(state);
        self.progress.notify_all();
        self.link.warn(
            "sender-gave-up",
            &format!(
                "runcore: run {}: {why}; {lost} logged rows could not be delivered and later \
                 rows are discarded",
                self.run_id
            ),
        );
    }

    /// The sender thread ends: wake everyone who waits for it, stop heartbeats.
    fn finish(&self) {
        self.lock().finished = true;
        self.progress.notify_all();
        self.wake_heartbeat.notify_all();
    }
}

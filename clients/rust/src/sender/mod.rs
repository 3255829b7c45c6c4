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

mod batch;
mod heartbeat;
mod link;
mod settings;
mod stream;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use batch::Row;
pub use link::{AttachError, Link};
pub use settings::{SenderSettings, SenderStats};

use crate::connection::Connection;
use crate::contract::{classify, Action, Kind, RETRY_LIMITED_ATTEMPTS};
use crate::proto;
use crate::status::{code_name, Status};
use batch::Sent;
use stream::{AckSink, Stream};

/// The first wait between reconnects; it doubles from the second failure in a row.
const FIRST_BACK_OFF: Duration = Duration::from_millis(50);
const LONGEST_BACK_OFF: Duration = Duration::from_secs(2);
/// How long closing waits for the sidecar to end a half-closed stream.
const HALF_CLOSE_WAIT: Duration = Duration::from_secs(5);

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
}

/// The sender stops for good, for this reason.
struct GiveUp(String);

/// What the sender thread does next.
enum Work {
    Repair(Option<Status>),
    Open,
    Send(Vec<Row>),
    Drain,
}

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
                stats: SenderStats {
                    next_seq: first_seq,
                    ..SenderStats::default()
                },
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
        while state.rows.len() >= shared.settings.queue_size && !state.stopped() {
            shared.wake_sender.notify_one();
            state = shared.wait(&shared.progress, state, None);
        }
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
        if queued == 1 || queued == shared.settings.batch_rows {
            shared.wake_sender.notify_one();
        }
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

    // -- the sender thread ---------------------------------------------------------

    fn run(self: &Arc<Self>) {
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.send_until_closed()));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(GiveUp(why))) => self.give_up(why),
            // A bug here must not leave flush() and close() waiting forever.
            Err(panic) => self.give_up(format!(
                "the sender thread failed: {}",
                panic_message(&*panic)
            )),
        }
        self.finish();
    }

    fn send_until_closed(self: &Arc<Self>) -> Result<(), GiveUp> {
        loop {
            match self.next_work()? {
                Work::Repair(error) => self.repair(error)?,
                Work::Open => self.open(false)?,
                Work::Send(rows) => self.send(rows),
                Work::Drain => {
                    self.half_close();
                    return Ok(());
                }
            }
        }
    }

    /// Sleeps until there is something to do, and says what.
    fn next_work(&self) -> Result<Work, GiveUp> {
        let settings = &self.settings;
        let mut state = self.lock();
        loop {
            if state.closing && state.rows.is_empty() && state.unacked.is_empty() {
                // Everything is acked: a stream that broke meanwhile needs no repair.
                state.broken = None;
                return Ok(Work::Drain);
            }
            if let Some(error) = state.broken.take() {
                return Ok(Work::Repair(error));
            }
            if state.stream.is_none() {
                return Ok(Work::Open);
            }
            let room = state.unacked.len() < settings.max_in_flight;
            let now = Instant::now();
            let send_by = state.oldest_row_at.map(|t| t + settings.batch_interval);
            let due = state.rows.len() >= settings.batch_rows
                || state.flush_wanted
                || state.closing
                || send_by.is_some_and(|t| t <= now);
            if room && !state.rows.is_empty() && due {
                let rows = take_batch(&mut state, settings.batch_rows);
                self.progress.notify_all(); // room in the queue
                return Ok(Work::Send(rows));
            }
            if state.rows.is_empty() {
                state.flush_wanted = false;
            }
            let ack_due = self.check_progress(&mut state, now)?;
            let rows_due = send_by.filter(|_| room);
            let deadline = match (rows_due, ack_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            state = self.wait(&self.wake_sender, state, deadline);
        }
    }

    /// Gives up when batches wait for acks that do not come (a hung sidecar) for
    /// reconnect_timeout; otherwise returns when to look again.
    fn check_progress(&self, state: &mut State, now: Instant) -> Result<Option<Instant>, GiveUp> {
        if state.unacked.is_empty() {
            state.waiting_since = None;
            return Ok(None);
        }
        let mark = (state.stats.batches_acked, state.generation);
        let since = match state.waiting_since {
            Some((since, acked, generation)) if (acked, generation) == mark => since,
            _ => {
                state.waiting_since = Some((now, mark.0, mark.1));
                now
            }
        };
        let waited = now - since;
        if waited > self.settings.reconnect_timeout {
            return Err(GiveUp(format!(
                "the sidecar acknowledged nothing for {:.0} s ({} batches waiting)",
                waited.as_secs_f64(),
                state.unacked.len()
            )));
        }
        // Just past the limit, so that the look then sees it passed.
        Ok(Some(
            since + self.settings.reconnect_timeout + Duration::from_millis(1),
        ))
    }

    fn send(&self, rows: Vec<Row>) {
        let count = rows.len();
        let mut state = self.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        drop(state);
        let encoded = batch::encode(&self.run_id, &self.writer_id, seq, rows);
        let mut state = self.lock();
        if let Some(stream) = &state.stream {
            stream.send(encoded.clone());
        }
        state.unacked.insert(
            seq,
            Sent {
                encoded,
                rows: count,
            },
        );
        state.stats.batches_sent += 1;
    }

    /// At close, everything acked: half-close the stream and wait (a little) for
    /// the sidecar to end it.
    fn half_close(&self) {
        let mut state = self.lock();
        state.stream_done = false;
        if let Some(stream) = state.stream.as_mut() {
            stream.half_close();
        }
        let deadline = Instant::now() + HALF_CLOSE_WAIT;
        while !state.stream_done && state.broken.is_none() && Instant::now() < deadline {
            state = self.wait(&self.wake_sender, state, Some(deadline));
        }
        if let Some(mut stream) = state.stream.take() {
            stream.cancel();
        }
    }

    /// The stream broke: back off, do what the contract says, open a new one.
    fn repair(self: &Arc<Self>, error: Option<Status>) -> Result<(), GiveUp> {
        if let Some(mut stream) = self.lock().stream.take() {
            stream.cancel();
        }
        self.back_off(error.as_ref())?;
        let recover = self.handle_break(error)?;
        self.open(recover)
    }

    /// Spaces out reconnects that make no progress, and gives up after
    /// reconnect_timeout without an ack.
    fn back_off(&self, error: Option<&Status>) -> Result<(), GiveUp> {
        let now = Instant::now();
        let mut state = self.lock();
        let since = match state.failing_since {
            Some(since) => since,
            None => {
                state.failing_since = Some(now);
                state.failures = 0;
                now
            }
        };
        state.failures += 1;
        let failing_for = now - since;
        if failing_for > self.settings.reconnect_timeout {
            let what = error.map_or("the stream ended".to_owned(), Status::to_string);
            return Err(GiveUp(format!(
                "the log stream kept failing for {:.0} s ({what})",
                failing_for.as_secs_f64()
            )));
        }
        if state.failures > 1 {
            let doublings = (state.failures - 2).min(16);
            let pause = (FIRST_BACK_OFF * 2u32.pow(doublings)).min(LONGEST_BACK_OFF);
            let until = now + pause;
            while Instant::now() < until {
                state = self.wait(&self.wake_sender, state, Some(until));
            }
        }
        Ok(())
    }

    /// What a broken stream means (the contract's action for its status); true when
    /// the sidecar must be reached again (and the run re-attached) before resending.
    fn handle_break(&self, error: Option<Status>) -> Result<bool, GiveUp> {
        // The sidecar ended the stream without an error: reconnect.
        let Some(error) = error else { return Ok(true) };
        match classify(error.code, Kind::Stream) {
            Action::Retry => Ok(true),
            Action::RetryLimited => {
                let mut state = self.lock();
                state.limited += 1;
                if state.limited >= RETRY_LIMITED_ATTEMPTS {
                    return Err(GiveUp(format!(
                        "the log stream failed {} times in a row ({error})",
                        state.limited
                    )));
                }
                Ok(true)
            }
            action @ (Action::Reinit | Action::Ended) => {
                // Ask the sidecar about the run now: a run it does not know is
                // Init-ed again (and the batches resent); one it ended is over.
                match self.link.attach(true) {
                    Err(AttachError::Ended(why)) | Err(AttachError::GaveUp(why)) => {
                        Err(GiveUp(why))
                    }
                    Err(AttachError::Rpc(_)) => Ok(true), // cannot be asked: reconnect first
                    Ok(()) if action == Action::Reinit => Ok(false),
                    Ok(()) => Err(GiveUp(format!(
                        "the sidecar refused the log stream: {error}"
                    ))),
                }
            }
            Action::DropBatch => {
                self.drop_oldest_batch(&error);
                Ok(false)
            }
            Action::None | Action::Fail | Action::Stop => Err(GiveUp(format!(
                "the sidecar refused the log stream: {error}"
            ))),
        }
    }

    fn drop_oldest_batch(&self, error: &Status) {
        let mut state = self.lock();
        let Some((seq, sent)) = state.unacked.pop_first() else {
            return;
        };
        state.stats.rows_lost += sent.rows as u64;
        drop(state);
        self.progress.notify_all();
        self.link.warn(
            &format!("rejected-{}", code_name(error.code)),
            &format!(
                "runcore: the sidecar refused a batch of {} logged rows (seq {seq}) and they were \
                 not recorded: {error}",
                sent.rows
            ),
        );
    }

    /// Opens a new stream (reaching the sidecar again first when `recover`) and
    /// resends every unacked batch on it.
    fn open(self: &Arc<Self>, mut recover: bool) -> Result<(), GiveUp> {
        let deadline = Instant::now() + self.settings.reconnect_timeout;
        let mut recovered = false;
        loop {
            if recover {
                let left = deadline.saturating_duration_since(Instant::now());
                let connection = self
                    .link
                    .recover(left.max(Duration::from_millis(100)))
                    .map_err(|why| {
                        GiveUp(format!("the sidecar could not be reached again: {why}"))
                    })?;
                self.lock().connection = connection;
                recovered = true;
            }
            match self.link.attach(false) {
                Ok(()) => break,
                Err(AttachError::Ended(why)) | Err(AttachError::GaveUp(why)) => {
                    return Err(GiveUp(why))
                }
                Err(AttachError::Rpc(status)) => {
                    if classify(status.code, Kind::Unary) == Action::Retry
                        && Instant::now() < deadline
                    {
                        recover = true;
                        continue;
                    }
                    return Err(GiveUp(format!("re-attaching the run failed: {status}")));
                }
            }
        }
        self.start_stream(recovered);
        Ok(())
    }

    fn start_stream(self: &Arc<Self>, resend_counts: bool) {
        let mut state = self.lock();
        state.generation += 1;
        let generation = state.generation;
        let connection = state.connection.clone();
        drop(state);
        let sink: Arc<dyn AckSink> = Arc::clone(self) as Arc<dyn AckSink>;
        let opened = Stream::open(&connection, generation, sink);
        let mut state = self.lock();
        let stream = match opened {
            Ok(stream) => stream,
            Err(error) => {
                state.broken = Some(Some(error));
                return;
            }
        };
        for sent in state.unacked.values() {
            stream.send(sent.encoded.clone());
        }
        if resend_counts {
            state.stats.batches_resent += state.unacked.len() as u64;
        }
        state.stream = Some(stream);
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

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic")
}

/// Pops the rows of the next batch: at most `batch_rows`, and about
/// MAX_BATCH_BYTES (at least one row).
fn take_batch(state: &mut State, batch_rows: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut size = 0;
    while rows.len() < batch_rows && size < batch::MAX_BATCH_BYTES {
        let Some(row) = state.rows.pop_front() else {
            break;
        };
        size += row.size();
        rows.push(row);
    }
    if state.rows.is_empty() {
        state.oldest_row_at = None;
    }
    rows
}

impl AckSink for Shared {
    fn on_ack(&self, ack: proto::LogAck) {
        // Drops are reported before the batch is retired: a flush that returns has
        // seen them.
        for dropped in &ack.dropped {
            self.link.on_dropped(dropped);
        }
        let mut state = self.lock();
        if let Some(sent) = state.unacked.remove(&ack.seq) {
            state.stats.rows_acked += sent.rows as u64;
            state.stats.batches_acked += 1;
        }
        state.stats.last_ack_time = unix_now();
        state.failing_since = None;
        state.limited = 0;
        drop(state);
        self.progress.notify_all();
        self.wake_sender.notify_one();
    }

    fn on_stream_end(&self, generation: u64, error: Option<Status>) {
        let mut state = self.lock();
        if state.stream.as_ref().map(|s| s.generation) != Some(generation) {
            return; // a stream replaced or cancelled meanwhile
        }
        if error.is_none() && state.closing && state.unacked.is_empty() {
            state.stream_done = true; // the normal end after close
        } else {
            state.broken = Some(error);
        }
        drop(state);
        self.wake_sender.notify_one();
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

//! The history rows of one connection's runs on their way to the runs' actors.
//!
//! Rows are gathered by whichever side reads them: the socket's reader thread
//! takes the common `run.log` frame itself ([`RowIntake`]), the connection's
//! router any other row. Either sends what it gathered when it must go: before
//! any other record of the run is applied, when [`LINGER`] has passed since the
//! first row waiting, at [`MAX_BATCH_ROWS`], or when the socket has nothing more
//! to read. So in a burst of `run.log` calls the reader reads, packs and sends
//! rows without waking the connection's task, and a run's actor gets one batch
//! (one log record) per [`LINGER`] rather than one per read.
//!
//! Order: rows read after a record the router has not finished with must not
//! overtake it, so while the router holds frames ([`Rows::handed`]) the reader
//! hands it every frame; it takes rows again once the router has caught up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::{Mutex, MutexGuard};

use super::history::{Entry, PendingLog};
use super::row_frame::{self, RowFrame};
use super::stream::CALL_TIMEOUT;
use crate::proto::v1::LogBatch;
use crate::run::{Command, LogReply, RunHandle};

/// Longest a row waits in the sidecar for others to go to its run with: the SDK
/// waits for no acknowledgement, so this is the delay before the row is in the
/// run's log, and what it buys is fewer, larger log records.
pub const LINGER: Duration = Duration::from_millis(100);

/// Rows gathered before they go to the actors whatever else waits.
pub const MAX_BATCH_ROWS: usize = 1024;

/// One connection's rows waiting to be sent, shared by its reader and its router.
pub struct Rows {
    pending: Mutex<Pending>,
    /// Batches of frames handed to the router and not yet handled.
    handed: AtomicUsize,
}

impl Rows {
    pub fn new() -> Arc<Self> {
        Arc::new(Rows {
            pending: Mutex::new(Pending::default()),
            handed: AtomicUsize::new(0),
        })
    }

    /// The rows, for the router (a task).
    pub async fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().await
    }

    /// The router has handled a batch of frames the reader handed it (and sent
    /// the rows among them).
    pub fn handled(&self) {
        self.handed.fetch_sub(1, Ordering::Release);
    }
}

/// The rows waiting, by the SDK's stream id.
#[derive(Default)]
pub struct Pending {
    /// One per stream with an open run (a connection rarely has more than one
    /// or two, so they are found by comparing ids).
    runs: Vec<Sink>,
    /// Rows waiting, over every run.
    rows: usize,
    /// When the first of them was gathered.
    since: Option<Instant>,
    /// The connection is closing: rows are no longer taken.
    closed: bool,
}

/// A run's rows and where they go.
struct Sink {
    stream_id: String,
    run: RunHandle,
    log: PendingLog,
}

impl Pending {
    /// Rows of stream `stream_id` go to `run` from now on, as writer `writer_id`.
    pub fn open(&mut self, stream_id: &str, run: RunHandle, run_id: &str, writer_id: &str) {
        self.remove(stream_id);
        self.runs.push(Sink {
            stream_id: stream_id.to_owned(),
            run,
            log: PendingLog::new(run_id, writer_id),
        });
    }

    /// Stream `stream_id` takes no more rows (its run exited); what it gathered
    /// must have been sent.
    pub fn remove(&mut self, stream_id: &str) {
        self.runs.retain(|s| s.stream_id != stream_id);
    }

    /// Adds one `run.log` call to its run's rows; false when the stream has no
    /// open run (or the connection is closing).
    pub fn push<'a>(
        &mut self,
        stream_id: &[u8],
        items: impl IntoIterator<Item = Entry<'a>>,
        step: Option<i64>,
        commit: Option<bool>,
    ) -> bool {
        if self.closed {
            return false;
        }
        let sink = self
            .runs
            .iter_mut()
            .find(|s| s.stream_id.as_bytes() == stream_id);
        let Some(sink) = sink else {
            return false;
        };
        sink.log.push(items, step, commit);
        self.rows += 1;
        self.since.get_or_insert_with(Instant::now);
        true
    }

    /// A row read in place from its frame.
    pub fn push_frame(&mut self, row: &RowFrame<'_>) -> bool {
        self.push(
            row.stream_id,
            row.items.iter().map(|&(k, x)| Entry::Plain(k, x)),
            row.step,
            row.commit,
        )
    }

    /// Whether rows wait to be sent.
    pub fn waiting(&self) -> bool {
        self.rows > 0
    }

    /// Whether the rows waiting should go now: [`MAX_BATCH_ROWS`] of them, or the
    /// first has waited [`LINGER`].
    pub fn due(&self, now: Instant) -> bool {
        self.rows >= MAX_BATCH_ROWS || self.since.is_some_and(|t| now >= t + LINGER)
    }

    /// Sends every run's rows to its actor, each run's as one batch.
    pub async fn send(&mut self) {
        if self.rows == 0 {
            return;
        }
        for sink in &mut self.runs {
            if let Some(batch) = sink.log.take() {
                deliver(&sink.run, batch).await;
            }
        }
        self.rows = 0;
        self.since = None;
    }

    /// The connection is closing: sends what waits and takes no more.
    pub async fn close(&mut self) {
        self.send().await;
        self.closed = true;
    }
}

/// Sends a batch of rows to a run's actor. Nobody waits for the outcome (the SDK
/// does not): the actor logs rows it drops. Its bounded queue slows the sender,
/// and the SDK with it, when the disk is slower than the script.
async fn deliver(run: &RunHandle, batch: LogBatch) {
    let run_id = batch.run_id.clone();
    let cmd = Command::Log {
        batch,
        reply: LogReply::Unwatched,
    };
    match tokio::time::timeout(CALL_TIMEOUT, run.send(cmd)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(run = %run_id, "logged rows were refused, and are lost: {e}"),
        Err(_) => tracing::error!(
            run = %run_id,
            "the run did not take logged rows within {} s; they are lost",
            CALL_TIMEOUT.as_secs()
        ),
    }
}

/// The reader thread's side: takes the rows at the front of what it read while
/// the router holds no frames, and sends them when they are due.
pub struct RowIntake {
    rows: Arc<Rows>,
    runtime: tokio::runtime::Handle,
}

impl RowIntake {
    /// Made on the runtime whose actors the rows go to.
    pub fn new(rows: Arc<Rows>) -> Self {
        RowIntake {
            rows,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Takes the leading row frames of `frames` whose runs are open, in order,
    /// and returns how many. At the first frame it does not take, what it
    /// gathered is sent first: the router applies that frame after those rows.
    /// Takes none while the router holds frames, or once the connection closes.
    pub fn take(&mut self, frames: &[BytesMut]) -> usize {
        if self.rows.handed.load(Ordering::Acquire) > 0 {
            return 0;
        }
        let mut pending = self.rows.pending.blocking_lock();
        let mut taken = 0;
        let mut items = Vec::new();
        for frame in frames {
            let Some(row) = row_frame::scan_into(frame, items) else {
                break;
            };
            if !pending.push_frame(&row) {
                break;
            }
            taken += 1;
            items = row.items;
        }
        if taken < frames.len() || pending.due(Instant::now()) {
            self.runtime.block_on(pending.send());
        }
        taken
    }

    /// Whether rows wait to be sent: the reader reads without blocking first.
    pub fn waiting(&self) -> bool {
        self.rows.handed.load(Ordering::Acquire) == 0 && self.rows.pending.blocking_lock().waiting()
    }

    /// The socket has nothing to read now: sends what waits (unless the router
    /// holds frames: it sends the rows once it has handled them).
    pub fn idle(&mut self) {
        if self.rows.handed.load(Ordering::Acquire) > 0 {
            return;
        }
        let mut pending = self.rows.pending.blocking_lock();
        self.runtime.block_on(pending.send());
    }

    /// The reader hands frames to the router.
    pub fn hand(&self) {
        self.rows.handed.fetch_add(1, Ordering::AcqRel);
    }
}

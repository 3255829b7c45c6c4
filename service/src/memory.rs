//! The sidecar's memory budget (`--memory-budget`): one limit on the bytes that
//! clients can make it hold. `--max-message-bytes` bounds one message and the
//! limits in [`crate::limits`] bound counts; neither bounds memory, since every
//! open run keeps the last value of each key it has seen and every request queued
//! for a run is held until its actor takes it.
//!
//! What is charged, each as an over-estimate of what it holds in memory:
//! - each open run: a fixed cost ([`RUN_BASE_BYTES`]) plus its state (config,
//!   summary, rows not yet committed, key names), settled after every command;
//! - each command on its way to a run: its values and the most they can add to
//!   the run's state, from the moment it is queued until its actor has taken it;
//! - each request body being received: the largest gRPC message it has announced
//!   (the decoder keeps a buffer of that size for the life of the stream).
//!
//! A charge that does not fit is refused (RESOURCE_EXHAUSTED) before anything is
//! queued or written; commands that add nothing (Finish, heartbeats, reads) are
//! never refused, so runs can always end and give their memory back. A log
//! batch first waits, up to [`ROOM_WAIT`], for room to be given back
//! ([`Budget::charge_waiting`]): the batches queued ahead of it free theirs as
//! their run's actor applies them, so a client that logs faster than the actor
//! applies is slowed down rather than refused.

use std::collections::BTreeMap;
use std::mem::size_of;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::proto::v1::{value::Kind, LogBatch, Row, Value};

/// The default budget: half the Kubernetes manifest's 256 MiB limit, leaving the
/// rest to the runtime, allocator slack, connection buffers and replies.
pub const DEFAULT_BUDGET_BYTES: usize = 128 * 1024 * 1024;

/// What one open run costs before it holds anything: its actor, command queue,
/// log and store writers' buffers and status (docs/BENCHMARKS.md, "Idle cost":
/// 100 open runs hold 7.5 MiB more than one, about 78 KiB each).
pub const RUN_BASE_BYTES: usize = 96 * 1024;

/// Bytes of a map entry besides its key's text and its value: the key's `String`
/// and the map's own bookkeeping.
pub const ENTRY_BYTES: usize = size_of::<String>() + 32;

/// Bytes of one value besides what it owns.
pub const VALUE_BYTES: usize = size_of::<Value>();

/// A buffer each open run reuses (its log record, its store line) is given back
/// after a record or line longer than this, rather than kept at its size.
pub const SCRATCH_BYTES: usize = 256 * 1024;

/// Bytes of an entry in a row being built besides its value (its key is the
/// run's interned name, counted once).
pub const ROW_ENTRY_BYTES: usize = 32;

/// How long a log batch that does not fit waits for room before it is refused.
/// Room held by queued batches comes back as their actor applies them: at most
/// a queue of batches' worth of work, seconds even for a debug sidecar and wide
/// rows; so a batch still waiting after 30 s waits on memory that is not coming
/// back soon (run state of open runs, request bodies of long streams) and is
/// refused as before. It is also half the 60 s the W&B-protocol service gives a
/// run to take a batch (`wandb_service::stream::CALL_TIMEOUT`), so a refusal is
/// reported there as one rather than as a timeout.
pub const ROOM_WAIT: Duration = Duration::from_secs(30);

/// What charges waiting for room may hold already (their decoded batches),
/// besides the limit: a quarter of it. A waiting batch cannot be charged what it
/// holds (the budget is full: that is why it waits), yet it is in memory; so
/// the sidecar may hold up to 1.25 times its budget (160 MiB at the default,
/// under the manifest's 256 MiB), and a batch that would pass this share is
/// refused at once, as before batches waited.
pub const WAITING_SHARE: usize = 4;

/// The budget shared by everything that charges it.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
    /// Woken whenever bytes are given back, for charges waiting for room.
    released: Notify,
    /// Bytes that charges waiting for room hold already (their decoded
    /// batches), outside `used`: at most [`WAITING_SHARE`] of the limit.
    waiting: AtomicUsize,
}

/// A charge that did not fit.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("the sidecar is at its memory budget: it holds {used} bytes of run state and requests in flight, and this needs {wanted} more, past the limit of {limit} (--memory-budget); finish runs, log smaller values, or raise the budget")]
pub struct OverBudget {
    pub wanted: usize,
    pub used: usize,
    pub limit: usize,
}

impl Budget {
    pub fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            used: AtomicUsize::new(0),
            released: Notify::new(),
            waiting: AtomicUsize::new(0),
        })
    }

    /// A budget that refuses nothing (tools and tests that serve no clients).
    pub fn unlimited() -> Arc<Budget> {
        Budget::new(usize::MAX)
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// A charge of `bytes`, when it fits.
    pub fn charge(self: &Arc<Self>, bytes: usize) -> Result<Charge, OverBudget> {
        let mut c = Charge::empty(self);
        c.grow(bytes)?;
        Ok(c)
    }

    /// A charge of `bytes`, waiting up to `bound` for room when it does not fit
    /// now. Refused at once when it could never fit (more than the whole
    /// limit) or when what the caller holds already while it waits (`held`, a
    /// decoded batch) would pass the share of the limit that waiting charges
    /// may hold ([`WAITING_SHARE`]); refused after `bound` when there is still
    /// no room. The caller is held back while it waits: a LogStream handler
    /// reads no further messages, so HTTP/2 flow control holds its client back
    /// (the backpressure of a client that logs faster than its run applies).
    /// Charges are not served in order: a small one may fit before a large one
    /// that waits longer, up to `bound`.
    pub async fn charge_waiting(
        self: &Arc<Self>,
        bytes: usize,
        held: usize,
        bound: Duration,
    ) -> Result<Charge, OverBudget> {
        let err = match self.charge(bytes) {
            Ok(c) => return Ok(c),
            Err(e) => e,
        };
        if bytes > self.limit {
            return Err(err);
        }
        let share = self.limit / WAITING_SHARE;
        if self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                w.checked_add(held).filter(|&n| n <= share)
            })
            .is_err()
        {
            return Err(err);
        }
        let _waiting = Waiting { budget: self, held };
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            // Registered before trying, so a release between the try and the
            // wait still wakes it.
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            match self.charge(bytes) {
                Ok(c) => return Ok(c),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => {}
            }
            // Past the deadline, one last try above.
            let _ = tokio::time::timeout_at(deadline, released).await;
        }
    }

    fn try_add(&self, bytes: usize) -> Result<(), OverBudget> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&n| n <= self.limit)
            })
            .map(drop)
            .map_err(|used| OverBudget {
                wanted: bytes,
                used,
                limit: self.limit,
            })
    }

    fn add(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::AcqRel);
    }

    fn sub(&self, bytes: usize) {
        if bytes > 0 {
            self.used.fetch_sub(bytes, Ordering::AcqRel);
            self.released.notify_waiters();
        }
    }
}

/// What a charge waiting for room holds already, counted in
/// [`Budget::waiting`] until it stops waiting.
struct Waiting<'a> {
    budget: &'a Budget,
    held: usize,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.budget.waiting.fetch_sub(self.held, Ordering::AcqRel);
    }
}

/// Bytes held against a [`Budget`], given back when dropped.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Charge {
    pub fn empty(budget: &Arc<Budget>) -> Charge {
        Charge {
            budget: budget.clone(),
            bytes: 0,
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Holds `more` bytes besides, when they fit.
    pub fn grow(&mut self, more: usize) -> Result<(), OverBudget> {
        self.budget.try_add(more)?;
        self.bytes += more;
        Ok(())
    }

    /// Takes over what `other` holds (both of one budget: the sidecar has one).
    pub fn absorb(&mut self, mut other: Charge) {
        let moved = std::mem::take(&mut other.bytes);
        if !Arc::ptr_eq(&self.budget, &other.budget) {
            other.budget.sub(moved);
            self.budget.add(moved);
        }
        self.bytes += moved;
    }

    /// Holds exactly `bytes` from now on: what was measured once a command was
    /// applied. Never refused (the bytes are held already); a measure above the
    /// estimate that was charged is taken as it is.
    pub fn settle(&mut self, bytes: usize) {
        if bytes > self.bytes {
            self.budget.add(bytes - self.bytes);
        } else {
            self.budget.sub(self.bytes - bytes);
        }
        self.bytes = bytes;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.sub(self.bytes);
    }
}

/// Bytes `v` holds in memory, over-estimated: its struct and all it owns.
pub fn value_bytes(v: &Value) -> usize {
    VALUE_BYTES
        + match &v.kind {
            Some(Kind::StringValue(s)) => s.len(),
            Some(Kind::MapValue(m)) => map_bytes(&m.fields),
            Some(Kind::ListValue(l)) => l.values.iter().map(value_bytes).sum(),
            Some(Kind::Histogram(h)) => {
                size_of::<f64>() * (h.bins.len() + h.counts.len() + h.values.len())
            }
            Some(Kind::Media(m)) => {
                m.path.len() + m.caption.len() + m.sha256.len() + map_bytes(&m.extra)
            }
            _ => 0,
        }
}

/// Bytes a map of values holds: each entry's key, value and bookkeeping.
pub fn map_bytes(m: &BTreeMap<String, Value>) -> usize {
    m.iter().map(|(k, v)| entry_bytes(k) + value_bytes(v)).sum()
}

/// Bytes of a map entry keyed `key`, its value aside.
pub fn entry_bytes(key: &str) -> usize {
    ENTRY_BYTES + key.len()
}

/// Bytes one logged row adds to the row it joins: an entry per value.
pub fn row_bytes(row: &Row) -> usize {
    row.scalar_keys.len() * (ROW_ENTRY_BYTES + VALUE_BYTES)
        + row
            .values
            .values()
            .map(|v| ROW_ENTRY_BYTES + value_bytes(v))
            .sum::<usize>()
}

/// Bytes of a list of strings.
pub fn strings_bytes(s: &[String]) -> usize {
    s.iter().map(|s| size_of::<String>() + s.len()).sum()
}

/// Bytes a decoded `LogBatch` holds: its key table and, per row, the row's
/// struct, its packed scalars (an index and a double each, as they are in
/// memory, not the varint and 8 bytes on the wire) and its other values.
pub fn batch_bytes(batch: &LogBatch) -> usize {
    size_of::<LogBatch>()
        + batch.run_id.len()
        + batch.writer_id.len()
        + strings_bytes(&batch.keys)
        + batch
            .rows
            .iter()
            .map(|r| {
                size_of::<Row>()
                    + r.scalar_keys.len() * size_of::<u32>()
                    + r.scalar_values.len() * size_of::<f64>()
                    + map_bytes(&r.values)
            })
            .sum::<usize>()
}

/// Longest text of a number in a store line (`-1.7976931348623157e+308`).
pub const NUMBER_TEXT_BYTES: usize = 24;

/// Bytes of a history line besides its entries: braces, `_step`, `_runtime`
/// and `_timestamp`.
pub const LINE_BYTES: usize = 128;

/// Bytes of the store line (history.jsonl) of `row`, whose scalars' keys are
/// in `keys`: per entry its quoted key, a colon, a comma and its value's text,
/// a value's text counted as [`value_bytes`] (JSON escapes of control
/// characters, up to 6 bytes each, are not counted: they are rare).
pub fn line_bytes(keys: &[String], row: &Row) -> usize {
    let scalars: usize = row
        .scalar_keys
        .iter()
        .map(|&k| keys.get(k as usize).map_or(0, String::len) + 4 + NUMBER_TEXT_BYTES)
        .sum();
    let values: usize = row
        .values
        .iter()
        .map(|(k, v)| k.len() + 4 + value_bytes(v))
        .sum();
    LINE_BYTES + scalars + values
}

/// Most a key can add to a run's summary when its value takes `value` bytes:
/// the entry, its first and last value, and its aggregates (min, max, sum,
/// count). A key already in the summary adds at most `value` (a new last).
pub fn summary_entry_bytes(key: &str, value: usize) -> usize {
    entry_bytes(key) + 2 * VALUE_BYTES + 4 * size_of::<f64>() + 2 * value
}

/// Bytes a LogStream or Log batch can make its run hold while it is applied,
/// over-estimated, for the charge it takes before it is queued. Each part is
/// a bound on one place the batch's data is held at once:
/// - the decoded batch itself ([`batch_bytes`]), from when it is queued until
///   it has been applied;
/// - its log record's encoding: the log encodes a record into one buffer
///   (prost `encoded_len` bytes, about what came over the wire) and writes it
///   to the file, nothing more;
/// - the row being built. Rows are folded into it one at a time and each
///   committed row leaves it, so at most one row's entries, or, when rows are
///   merged without committing, one entry per key of the batch's key table plus
///   the rows' other values. A shared run (`shared`) keeps rows open by step
///   until every writer is past it, so there every row may be held ([`row_bytes`]
///   of each);
/// - the summary and the run's key names: they grow by at most one entry per
///   distinct key, not one per row ([`summary_entry_bytes`], [`entry_bytes`]);
///   each key of the key table is one scalar key, and each other value is
///   counted as a new key (an over-estimate when rows repeat keys);
/// - the store line: one history line is built and written at a time, so the
///   longest row's ([`line_bytes`]); the files' write buffers are part of
///   [`RUN_BASE_BYTES`].
///
/// A batch of 232 rows of 1,000 scalars (2.3 MB encoded) is charged 5.9 MB
/// (39 MB in a shared run; the charge before this estimate was 213 MB); one row
/// with a 1 MiB string about 6 MiB: the value in the batch, the record, the
/// row, the summary's first and last, the line.
pub fn log_bytes(batch: &LogBatch, shared: bool) -> usize {
    let scalar_entry = ROW_ENTRY_BYTES + VALUE_BYTES;
    let rows: usize = batch.rows.iter().map(row_bytes).sum();
    let other_values: usize = rows
        - batch
            .rows
            .iter()
            .map(|r| r.scalar_keys.len() * scalar_entry)
            .sum::<usize>();
    let building = if shared {
        rows
    } else {
        rows.min(batch.keys.len() * scalar_entry + other_values)
    };
    let scalar_keys: usize = batch
        .keys
        .iter()
        .map(|k| summary_entry_bytes(k, VALUE_BYTES) + entry_bytes(k))
        .sum();
    let value_keys: usize = batch
        .rows
        .iter()
        .flat_map(|r| &r.values)
        .map(|(k, v)| summary_entry_bytes(k, value_bytes(v)) + entry_bytes(k))
        .sum();
    let line = batch
        .rows
        .iter()
        .map(|r| line_bytes(&batch.keys, r))
        .max()
        .unwrap_or(0);
    batch_bytes(batch)
        + prost::Message::encoded_len(batch)
        + building
        + scalar_keys
        + value_keys
        + line
}

#[cfg(test)]
mod tests;

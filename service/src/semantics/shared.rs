//! Steps of a shared run (README "Distributed training"): what `RunState::apply`
//! does with the rows of several writers.
//!
//! - Each writer has its own step counter. A new writer starts at the run's
//!   current step (the lowest step not yet written to history: 0 for a new run).
//!   Its rows follow W&B's step/commit table against its own counter: without
//!   `step` a row goes to the writer's step (a commit advances it); a larger
//!   `step` jumps; the same step merges; a smaller one is dropped and reported.
//! - Rows of every writer at one step merge into one history row (a key logged by
//!   two writers at one step keeps the later value).
//! - A step's row is held open until every attached writer's counter has moved
//!   past it, then written, in step order. A writer that finishes or dies holds
//!   nothing. At most [`MAX_OPEN_STEPS`] steps are held: past that the oldest is
//!   written, and writers still at or below it continue after it (a later row
//!   with an explicit step that was written is dropped and reported).
//! - A run becomes shared when a writer joins with `shared`; its pending row then
//!   becomes the open row of the current step.

use std::collections::BTreeMap;
use std::sync::Arc;

use indexmap::IndexMap;

use super::state::{RunState, Sink, WriterEvent};
use crate::limits::MAX_STEP;
use crate::memory::row_bytes;
use crate::proto::v1::{DroppedRow, InitRequest, Row, RunState as State, Value};
use crate::proto::wal::WriterEnd;
use crate::value;

/// Steps a shared run holds open at most, waiting for a slow writer.
pub const MAX_OPEN_STEPS: usize = 10_000;

/// A shared run's rows not yet written to history, by step.
#[derive(Debug, Default)]
pub struct OpenRows {
    rows: BTreeMap<i64, OpenRow>,
    /// Emptied rows kept for reuse, so a steady stream of steps does not allocate
    /// a map per step.
    spare: Vec<IndexMap<Arc<str>, Value>>,
    /// What the open rows hold in memory, for the memory budget.
    bytes: usize,
}

/// Emptied rows kept at most.
const SPARE_ROWS: usize = 64;

#[derive(Debug, Default)]
struct OpenRow {
    values: IndexMap<Arc<str>, Value>,
    /// Time of the latest row merged into it.
    time: f64,
    /// What `values` holds in memory (counted per value merged in).
    bytes: usize,
}

impl OpenRows {
    /// Steps held open.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Bytes the open rows hold in memory (an over-estimate).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes the open row of `step` out, or the first when `step` is None.
    fn take(&mut self, step: Option<i64>) -> Option<(i64, OpenRow)> {
        let taken = match step {
            Some(step) => self.rows.remove(&step).map(|row| (step, row)),
            None => self.rows.pop_first(),
        };
        if let Some((_, row)) = &taken {
            self.bytes -= row.bytes;
        }
        taken
    }

    /// The open row of `step`, made (from a spare) if there is none.
    fn at(&mut self, step: i64) -> &mut OpenRow {
        let spare = &mut self.spare;
        self.rows.entry(step).or_insert_with(|| OpenRow {
            values: spare.pop().unwrap_or_default(),
            time: 0.0,
            bytes: 0,
        })
    }

    /// Keeps a written row's map for reuse.
    fn recycle(&mut self, mut values: IndexMap<Arc<str>, Value>) {
        if self.spare.len() < SPARE_ROWS {
            values.clear();
            self.spare.push(values);
        }
    }
}

impl RunState {
    /// The writer of a Start or Resume record joins (its Init was admitted).
    pub(super) fn join(&mut self, init: &InitRequest, time: f64, sink: &mut impl Sink) {
        if init.writer.as_ref().is_some_and(|w| w.shared) {
            self.make_shared();
        }
        let step = self.info.step;
        self.writers.join(init, time, step);
        if !self.info.shared {
            return;
        }
        if let Some(writer) = self.writers.get(&init.writer_id) {
            sink.writer(&WriterEvent {
                time,
                runtime: (time - self.info.start_time).max(0.0),
                writer,
                joined: true,
            });
        }
    }

    /// From now on the run is written by several writers: the pending row becomes
    /// the open row of the current step, and every writer continues from it.
    fn make_shared(&mut self) {
        if self.info.shared {
            return;
        }
        self.info.shared = true;
        let step = self.info.step;
        if !self.pending.is_empty() {
            let values = std::mem::take(&mut self.pending);
            let time = self.pending_time;
            let bytes = std::mem::take(&mut self.pending_bytes);
            self.open.bytes += bytes;
            self.open.rows.insert(
                step,
                OpenRow {
                    values,
                    time,
                    bytes,
                },
            );
        }
        for w in self.writers.iter_mut() {
            w.step = w.step.max(step);
        }
    }

    /// One writer ended while the run goes on: it holds no step any more.
    pub(super) fn writer_end(&mut self, end: &WriterEnd, time: f64, sink: &mut impl Sink) {
        let runtime = (time - self.info.start_time).max(0.0);
        if let Some(w) = self.writers.get_mut(&end.writer_id) {
            w.state = end.state();
            w.exit_code = end.exit_code;
            w.reason.clone_from(&end.reason);
            w.ended = time;
        }
        if let Some(writer) = self.writers.get(&end.writer_id) {
            sink.writer(&WriterEvent {
                time,
                runtime,
                writer,
                joined: false,
            });
        }
        if self.info.shared {
            self.advance(sink);
        }
    }

    /// Merges one row of `writer` into the open row of its step; a step smaller
    /// than the writer's own is dropped and reported.
    pub(super) fn shared_row(
        &mut self,
        writer: &str,
        keys: &[Arc<str>],
        row: &Row,
        time: f64,
    ) -> Option<DroppedRow> {
        let frontier = self.info.step;
        let w = self.writers.ensure(writer, time, frontier);
        let (step, commit) = match row.step {
            None if w.step > MAX_STEP => {
                let s = w.step;
                return Some(self.past_max(s));
            }
            Some(s) if s > MAX_STEP => return Some(self.past_max(s)),
            None => (w.step, row.commit.unwrap_or(true)),
            Some(s) if s < w.step => {
                return Some(DroppedRow {
                    row_index: 0,
                    step: s,
                    current_step: w.step,
                    reason: format!(
                        "step {s} is smaller than this writer's current step {} in the shared run; W&B drops such rows, log with a step >= {} or without one",
                        w.step, w.step
                    ),
                });
            }
            Some(s) => (s, row.commit.unwrap_or(false)),
        };
        w.step = if commit { step + 1 } else { step };
        let values: Vec<(Arc<str>, Value)> = row
            .values
            .iter()
            .map(|(k, v)| (self.intern(k), v.clone()))
            .collect();
        let added = row_bytes(row);
        self.open.bytes += added;
        let open = self.open.at(step);
        open.bytes += added;
        for (k, v) in row.scalar_keys.iter().zip(&row.scalar_values) {
            // Indices were checked against the key table before the append.
            if let Some(key) = keys.get(*k as usize) {
                open.values.insert(key.clone(), value::double(*v));
            }
        }
        open.values.extend(values);
        open.time = if row.timestamp > 0.0 {
            row.timestamp
        } else {
            time
        };
        None
    }

    /// Writes the open rows no attached writer can still reach (and the oldest
    /// beyond [`MAX_OPEN_STEPS`]); every attached writer continues at or after the
    /// run's current step.
    pub(super) fn advance(&mut self, sink: &mut impl Sink) {
        let limit = self.writers.attached().map(|w| w.step).min();
        while let Some(&step) = self.open.rows.keys().next() {
            if limit.is_some_and(|l| step >= l) && self.open.rows.len() <= MAX_OPEN_STEPS {
                break;
            }
            let Some((_, mut row)) = self.open.take(Some(step)) else {
                break;
            };
            self.commit_values(step, &mut row.values, row.time, sink);
            self.open.recycle(row.values);
            self.info.step = self.info.step.max(step + 1);
        }
        if let Some(l) = limit {
            let first_open = self.open.rows.keys().next().copied().unwrap_or(l);
            self.info.step = self.info.step.max(l.min(first_open));
        }
        let current = self.info.step;
        for w in self.writers.iter_mut().filter(|w| w.is_attached()) {
            w.step = w.step.max(current);
        }
    }

    /// Writes every open row (the run ends).
    pub(super) fn commit_open(&mut self, sink: &mut impl Sink) {
        while let Some((step, mut row)) = self.open.take(None) {
            self.commit_values(step, &mut row.values, row.time, sink);
            self.info.step = self.info.step.max(step + 1);
        }
    }

    /// The step writer `id`'s next row without a step goes to: its own counter in
    /// a shared run, the run's otherwise (what a log's acknowledgement reports).
    pub fn step_of(&self, id: &str) -> i64 {
        match self.writers.get(id) {
            Some(w) if self.info.shared => w.step,
            _ => self.info.step,
        }
    }

    /// The writer `id` as GetRun shows it: in a run with one writer at a time its
    /// step is the run's.
    pub fn writer_info(&self, id: &str) -> Option<crate::proto::v1::WriterInfo> {
        let mut info = self.writers.get(id)?.to_proto();
        if !self.info.shared && info.state == State::Running as i32 {
            info.step = self.info.step;
        }
        Some(info)
    }

    /// Every writer as GetRun shows it.
    pub fn writer_infos(&self) -> Vec<crate::proto::v1::WriterInfo> {
        self.writers
            .iter()
            .filter_map(|w| self.writer_info(&w.id))
            .collect()
    }
}

#[cfg(test)]
#[path = "shared_tests.rs"]
mod tests;

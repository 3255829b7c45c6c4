//! The run's side of `crate::limits`: rows past the largest step, history,
//! config and summary keys past the per-run bound, and what the run holds in
//! memory (`crate::memory`).

use std::collections::HashSet;

use super::RunState;
use crate::limits::{MAX_KEYS_PER_RUN, MAX_STEP};
use crate::memory;
use crate::proto::v1::{DroppedRow, LogBatch};

impl RunState {
    /// A row that would land past the largest step: dropped, and said so.
    pub(in crate::semantics) fn past_max(&self, step: i64) -> DroppedRow {
        DroppedRow {
            row_index: 0,
            step,
            current_step: self.info.step,
            reason: format!(
                "step {step} is past the largest step, {MAX_STEP}; the run takes no more rows"
            ),
        }
    }

    /// Whether the next row of writer `writer` would be past the largest step (in
    /// a shared run each writer has its own step).
    pub fn at_step_limit(&self, writer: &str) -> bool {
        self.step_of(writer) > MAX_STEP
    }

    /// The keys of `batch` the run does not hold yet, when taking them would put
    /// it past [`MAX_KEYS_PER_RUN`] history keys; None when they fit.
    pub fn keys_over_limit(&self, batch: &LogBatch) -> Option<usize> {
        let named: usize =
            batch.keys.len() + batch.rows.iter().map(|r| r.values.len()).sum::<usize>();
        if self.keys.len() + named <= MAX_KEYS_PER_RUN {
            return None;
        }
        let mut new: HashSet<&str> = HashSet::new();
        let names = batch.keys.iter().map(String::as_str).chain(
            batch
                .rows
                .iter()
                .flat_map(|r| r.values.keys().map(String::as_str)),
        );
        for k in names {
            if !self.keys.contains(k) {
                new.insert(k);
            }
        }
        (self.keys.len() + new.len() > MAX_KEYS_PER_RUN).then_some(self.keys.len())
    }

    /// For a config (`summary` false) or explicit summary update adding `keys`:
    /// what the run holds, when the new ones would put it past
    /// [`MAX_KEYS_PER_RUN`]; None when they fit.
    pub fn map_over_limit<'a>(
        &self,
        summary: bool,
        keys: impl Iterator<Item = &'a String>,
    ) -> Option<usize> {
        let (held, new) = if summary {
            let new = keys.filter(|k| !self.summary.is_explicit(k)).count();
            (self.summary.explicit_len(), new)
        } else {
            let new = keys.filter(|k| !self.config.contains_key(*k)).count();
            (self.config.len(), new)
        };
        (held + new > MAX_KEYS_PER_RUN).then_some(held)
    }
}

/// Bytes of one saved file, metric definition, writer, alert title or artifact
/// name the run keeps (an over-estimate: names are usually far shorter).
const ITEM_BYTES: usize = 512;

/// Bytes of one writer's latest system-metrics sample (about 100 named values
/// with a GPU or two).
const SAMPLE_BYTES: usize = 8 * 1024;

impl RunState {
    /// After `config` changed: what it holds, measured again.
    pub(super) fn config_changed(&mut self) {
        self.config_bytes = memory::map_bytes(&self.config);
    }

    /// Bytes the run's state holds in memory, over-estimated: config, summary,
    /// rows not yet committed, key names, and the run's smaller lists by count.
    pub fn retained_bytes(&self) -> usize {
        let items = self.saved.len()
            + self.alerts_sent.len()
            + self.metrics.len()
            + self.writers.len()
            + self.step_metric_last.len()
            + self.logged_artifacts.len()
            + self.used_artifacts.len();
        self.summary.bytes()
            + self.config_bytes
            + self.pending_bytes
            + self.keys_bytes
            + self.open.bytes()
            + items * ITEM_BYTES
            + self.last_system.len() * SAMPLE_BYTES
    }
}

//! The run's side of `crate::limits`: rows past the largest step, and history,
//! config and summary keys past the per-run bound.

use std::collections::HashSet;

use super::RunState;
use crate::limits::{MAX_KEYS_PER_RUN, MAX_STEP};
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

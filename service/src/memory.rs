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
//! never refused, so runs can always end and give their memory back.

use std::collections::BTreeMap;
use std::mem::size_of;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::proto::v1::{value::Kind, Row, Value};

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

/// The budget shared by everything that charges it.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
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
        self.used.fetch_sub(bytes, Ordering::AcqRel);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value;

    #[test]
    fn charges_are_refused_past_the_limit_and_given_back_when_dropped() {
        let b = Budget::new(1000);
        let a = b.charge(600).unwrap();
        let err = b.charge(500).unwrap_err();
        assert_eq!(
            err,
            OverBudget {
                wanted: 500,
                used: 600,
                limit: 1000
            }
        );
        assert!(err.to_string().contains("--memory-budget"), "{err}");
        let c = b.charge(400).unwrap();
        assert_eq!(b.used(), 1000);
        drop(a);
        assert_eq!(b.used(), 400);
        drop(c);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn a_settled_charge_holds_what_was_measured() {
        let b = Budget::new(1000);
        let mut state = b.charge(100).unwrap();
        let reserved = b.charge(500).unwrap();
        state.absorb(reserved);
        assert_eq!((state.bytes(), b.used()), (600, 600));
        state.settle(150);
        assert_eq!((state.bytes(), b.used()), (150, 150));
        // A measure above the limit is taken (the memory is held already).
        state.settle(1200);
        assert_eq!(b.used(), 1200);
        assert!(b.charge(1).is_err());
        drop(state);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn an_absorbed_charge_from_another_budget_moves_here() {
        let here = Budget::new(1000);
        let there = Budget::new(1000);
        let mut a = here.charge(10).unwrap();
        a.absorb(there.charge(90).unwrap());
        assert_eq!((here.used(), there.used()), (100, 0));
    }

    #[test]
    fn a_string_counts_its_text_and_a_map_its_keys() {
        let s = value::string("x".repeat(1000));
        assert_eq!(value_bytes(&s), VALUE_BYTES + 1000);
        let mut m = BTreeMap::new();
        m.insert("key".to_owned(), s.clone());
        m.insert("n".to_owned(), value::double(1.0));
        assert_eq!(
            map_bytes(&m),
            entry_bytes("key") + VALUE_BYTES + 1000 + entry_bytes("n") + VALUE_BYTES
        );
    }
}

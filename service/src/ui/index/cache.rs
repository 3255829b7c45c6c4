//! Memory the charts reuse between requests, bounded:
//!
//! - [`AxisCache`]: x axes that every row has (`_step`, `_runtime`, `_timestamp`),
//!   decoded to one value per row. Every chart of a page reads the same axis, so
//!   it is read from disk once; least recently used axes are dropped beyond the
//!   budget.
//! - [`with_column_bytes`]: each blocking thread keeps one buffer to read metric
//!   columns into, instead of a fresh allocation (and its page faults) per request.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::column::{read_raw, Records};
use super::{ColumnMeta, IndexError, Manifest};

/// Default memory for cached axes.
pub const DEFAULT_AXIS_BUDGET: usize = 256 << 20;
/// A thread's read buffer is dropped after a read that grew it beyond this.
const KEEP_BUFFER: usize = 64 << 20;

/// What identifies an axis' content: its file, its length, and the indexed source
/// (a rebuilt index may reuse a file name and a length).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    file: PathBuf,
    count: u64,
    source_len: u64,
    tail: String,
}

#[derive(Default)]
struct Entries {
    map: HashMap<Key, (Arc<Vec<f64>>, u64)>,
    bytes: usize,
    clock: u64,
}

/// Decoded dense axes, least recently used dropped first.
pub struct AxisCache {
    budget: usize,
    entries: Mutex<Entries>,
}

impl AxisCache {
    pub fn new(budget: usize) -> Self {
        AxisCache {
            budget,
            entries: Mutex::new(Entries::default()),
        }
    }

    /// The values of `col`, a column every row has, by row. Blocking.
    pub fn dense(
        &self,
        dir: &Path,
        col: &ColumnMeta,
        m: &Manifest,
    ) -> Result<Arc<Vec<f64>>, IndexError> {
        let key = Key {
            file: dir.join(&col.file),
            count: col.count,
            source_len: m.source_len,
            tail: m.tail.clone(),
        };
        if let Ok(mut e) = self.entries.lock() {
            e.clock += 1;
            let now = e.clock;
            if let Some((values, used)) = e.map.get_mut(&key) {
                *used = now;
                return Ok(values.clone());
            }
        }
        let values = with_column_bytes(&key.file, col.count, |recs| {
            (0..recs.len()).map(|i| recs.value(i)).collect::<Vec<f64>>()
        })?;
        let values = Arc::new(values);
        if let Ok(mut e) = self.entries.lock() {
            let size = values.len() * 8;
            let now = e.clock;
            if e.map.insert(key, (values.clone(), now)).is_none() {
                e.bytes += size;
            }
            while e.bytes > self.budget && e.map.len() > 1 {
                let Some(oldest) = e
                    .map
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                if let Some((v, _)) = e.map.remove(&oldest) {
                    e.bytes -= v.len() * 8;
                }
            }
        }
        Ok(values)
    }
}

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Reads the first `count` records of the column file `path` into this thread's
/// buffer and runs `f` over them.
pub fn with_column_bytes<T>(
    path: &Path,
    count: u64,
    f: impl FnOnce(Records<'_>) -> T,
) -> Result<T, IndexError> {
    BUFFER.with(|cell| {
        let mut buf = cell.borrow_mut();
        read_raw(path, count, &mut buf).map_err(|e| IndexError::io(path, e))?;
        let out = f(Records(&buf));
        if buf.capacity() > KEEP_BUFFER {
            *buf = Vec::new();
        }
        Ok(out)
    })
}

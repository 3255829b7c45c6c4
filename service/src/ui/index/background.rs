//! Indexing big runs off the request path. A run whose index is more than
//! [`INLINE_BYTES`] behind its files is indexed by a background job, in steps of
//! [`STEP_BYTES`] (the index's lock is released between steps, so chart requests
//! of other runs and other processes get their turn), while its charts are drawn
//! from a [`Preview`] of sampled lines. A run at most that far behind (a live
//! run between two polls, a small run) is brought up to date inline, as before.
//!
//! Progress is read from the index's manifests, which each step saves, so it
//! shows the work of any process (another `runcore ui`, the sidecar).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::task::JoinHandle;

use super::preview::Preview;
use super::{IndexError, RunIndex, Source};

/// Bytes of history left to index that a request indexes itself (about 0.1 s).
pub const INLINE_BYTES: u64 = 16 << 20;
/// Bytes a background job indexes under the lock at a time.
pub const STEP_BYTES: u64 = 64 << 20;
/// Lines read for a preview.
pub const PREVIEW_LINES: usize = 1000;

/// How far a run's background indexing has got.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Progress {
    /// Bytes of history.jsonl and events.jsonl indexed, of `total_bytes`.
    pub indexed_bytes: u64,
    pub total_bytes: u64,
    /// 0..=100, rounded down.
    pub percent: u64,
}

/// The background jobs of one UI server, and their runs' previews.
#[derive(Default)]
pub struct Indexer {
    /// Set once at shutdown: jobs stop after their current step.
    stop: Arc<AtomicBool>,
    jobs: Mutex<HashMap<PathBuf, JoinHandle<()>>>,
    /// Dropped when the run's job ends.
    previews: Mutex<HashMap<(PathBuf, Source), Arc<Preview>>>,
}

impl Indexer {
    /// None when the run's index can be read now (current, or little enough
    /// behind to catch up inline, and no job of this server at work on it);
    /// otherwise makes sure a job is indexing it and says how far it has got.
    /// Blocking; call it on a blocking thread of the runtime.
    pub fn pending(self: &Arc<Self>, run_dir: &Path, index: &RunIndex) -> Option<Progress> {
        let (hi, ht) = index.progress(Source::History);
        let (ei, et) = index.progress(Source::Events);
        let behind = (ht - hi) + (et - ei);
        let running = self.start_if(run_dir, behind > INLINE_BYTES);
        if !running {
            return None;
        }
        let (indexed_bytes, total_bytes) = (hi + ei, ht + et);
        Some(Progress {
            indexed_bytes,
            total_bytes,
            percent: (indexed_bytes * 100)
                .checked_div(total_bytes)
                .unwrap_or(100),
        })
    }

    /// Whether a job is at work on `run_dir` (after starting one when `start`).
    fn start_if(self: &Arc<Self>, run_dir: &Path, start: bool) -> bool {
        let Ok(mut jobs) = self.jobs.lock() else {
            return false;
        };
        jobs.retain(|_, job| !job.is_finished());
        if jobs.contains_key(run_dir) {
            return true;
        }
        if !start || self.stop.load(Ordering::Relaxed) {
            return false;
        }
        let me = self.clone();
        let dir = run_dir.to_owned();
        let job = tokio::task::spawn_blocking(move || {
            if let Err(e) = build(&dir, &me.stop) {
                tracing::warn!("ui: indexing {} in the background: {e}", dir.display());
            }
            if let Ok(mut previews) = me.previews.lock() {
                previews.retain(|(d, _), _| d != &dir);
            }
        });
        jobs.insert(run_dir.to_owned(), job);
        true
    }

    /// A preview of `source` of the run, sampled again once the file has grown
    /// by more than 1% since. Blocking.
    pub fn preview(&self, run_dir: &Path, source: Source) -> Result<Arc<Preview>, IndexError> {
        let path = run_dir.join(source.file());
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        let key = (run_dir.to_owned(), source);
        if let Some(p) = self.previews.lock().ok().and_then(|m| m.get(&key).cloned()) {
            if len <= p.source_len + p.source_len / 100 {
                return Ok(p);
            }
        }
        let p =
            Arc::new(Preview::sample(&path, PREVIEW_LINES).map_err(|e| IndexError::io(&path, e))?);
        if let Ok(mut m) = self.previews.lock() {
            m.insert(key, p.clone());
        }
        Ok(p)
    }

    /// Stops the jobs after their current step (what they indexed is kept, and
    /// the next open goes on from there) and waits for them.
    pub async fn shut_down(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let jobs: Vec<JoinHandle<()>> = match self.jobs.lock() {
            Ok(mut jobs) => jobs.drain().map(|(_, j)| j).collect(),
            Err(_) => Vec::new(),
        };
        for job in jobs {
            let _ = job.await;
        }
    }
}

/// Indexes a run's history, then its system metrics and definitions, a step at
/// a time until done or `stop`. Blocking.
pub fn build(run_dir: &Path, stop: &AtomicBool) -> Result<(), IndexError> {
    build_in_steps(run_dir, stop, STEP_BYTES, || {}).map(drop)
}

/// [`build`] in steps of `step_bytes`, calling `after_step` after each; returns
/// whether the index is complete (false: stopped). Blocking.
pub fn build_in_steps(
    run_dir: &Path,
    stop: &AtomicBool,
    step_bytes: u64,
    mut after_step: impl FnMut(),
) -> Result<bool, IndexError> {
    let index = RunIndex::open(run_dir)?;
    for source in [Source::History, Source::Events] {
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            let current = index.step(source, step_bytes)?;
            after_step();
            if current {
                break;
            }
        }
    }
    index.definitions().map(|_| true)
}

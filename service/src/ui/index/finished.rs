//! Indexing runs as they finish, in the sidecar (`runcore serve`): a run's actor
//! names its directory once the run has ended and its files are flushed and its
//! log let go, and one thread builds the run's chart index with
//! [`background::build_in_steps`], one run at a time, at the lowest CPU priority.
//! A finished run then opens at full resolution in `runcore ui` at once, instead
//! of from a preview while the UI indexes it.
//!
//! Nothing here is on the write path: a run's actor only hands its directory to
//! a bounded queue ([`QUEUE`]) without waiting. At shutdown the thread stops after
//! its current step; what it indexed is kept, and the UI goes on from there.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::background;

/// Finished runs waiting to be indexed. Past it a run is not queued (its actor
/// does not wait), and the UI indexes it when it is first opened.
pub const QUEUE: usize = 1024;
/// The thread's nice value: the lowest priority, so that compiling, training and
/// the sidecar's own work come first.
const NICE: i32 = 19;

/// What the indexing thread has done, for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    /// Index steps taken, of every run.
    pub steps: u64,
    /// Runs whose index is complete.
    pub runs: u64,
}

/// The sidecar's indexing thread of finished runs.
pub struct FinishedIndexer {
    /// Where run actors send the directory of a run that ended; one clone per
    /// run's settings. Also wakes the thread at shutdown.
    tx: mpsc::Sender<PathBuf>,
    /// Set once at shutdown: the thread stops after its current step.
    stop: Arc<AtomicBool>,
    /// Closed when the thread has ended (taken by `shut_down`).
    done: Option<oneshot::Receiver<()>>,
    activity: watch::Receiver<Activity>,
}

impl FinishedIndexer {
    /// Starts the thread, indexing `step_bytes` of a run's history at a time
    /// ([`background::STEP_BYTES`] in the sidecar).
    pub fn start(step_bytes: u64) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done) = oneshot::channel();
        let (activity_tx, activity) = watch::channel(Activity::default());
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("runcore-index".into())
            .spawn(move || {
                work(rx, &flag, step_bytes, &activity_tx);
                drop(done_tx);
            })?;
        Ok(FinishedIndexer {
            tx,
            stop,
            done: Some(done),
            activity,
        })
    }

    /// The queue for run actors (`run::RunSettings::ended`).
    pub fn sender(&self) -> mpsc::Sender<PathBuf> {
        self.tx.clone()
    }

    /// What the thread has done so far, and a way to wait for more.
    pub fn activity(&self) -> watch::Receiver<Activity> {
        self.activity.clone()
    }

    /// Tells the thread to stop after its current step; runs queued or ended
    /// from now on are left to the UI.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes a thread waiting for a run; a full queue means it is not waiting.
        let _ = self.tx.try_send(PathBuf::new());
    }

    /// Stops the thread and waits for it until `deadline` (0.1 s at least);
    /// false when it was still on a step then (it ends with that step).
    pub async fn shut_down(mut self, deadline: tokio::time::Instant) -> bool {
        self.stop();
        let soonest = tokio::time::Instant::now() + std::time::Duration::from_millis(100);
        let deadline = deadline.max(soonest);
        let Some(done) = self.done.take() else {
            return true;
        };
        let ended = tokio::time::timeout_at(deadline, done).await.is_ok();
        if !ended {
            tracing::warn!("the index of a finished run was still being written at shutdown; `runcore ui` completes it");
        }
        ended
    }
}

impl Drop for FinishedIndexer {
    /// A sidecar that stops without `shut_down` (a failed start) stops the
    /// thread too.
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread: indexes each run it is sent until stopped.
fn work(
    mut rx: mpsc::Receiver<PathBuf>,
    stop: &AtomicBool,
    step_bytes: u64,
    activity: &watch::Sender<Activity>,
) {
    if let Err(e) = rustix::process::setpriority_process(None, NICE) {
        tracing::debug!("indexing finished runs at normal priority (setpriority: {e})");
    }
    while let Some(dir) = rx.blocking_recv() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let step = || activity.send_modify(|a| a.steps += 1);
        match background::build_in_steps(&dir, stop, step_bytes, step) {
            Ok(true) => {
                activity.send_modify(|a| a.runs += 1);
                tracing::debug!(run_dir = %dir.display(), "indexed a finished run for the UI");
            }
            Ok(false) => return,
            Err(e) => warn(&dir, &e),
        }
    }
}

fn warn(dir: &Path, e: &super::IndexError) {
    if !dir.exists() {
        tracing::debug!(run_dir = %dir.display(), "a finished run was deleted before it was indexed");
        return;
    }
    tracing::warn!(
        "indexing finished run {} for the UI: {e}; `runcore ui` indexes it when it is opened",
        dir.display()
    );
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::ui::index::{RunIndex, Source};

    /// A run directory with `rows` history lines and an empty log.
    fn run_dir(rows: usize) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().expect("temp dir");
        let file = std::fs::File::create(tmp.path().join(crate::store::HISTORY_JSONL));
        let mut w = io::BufWriter::new(file.expect("history.jsonl"));
        for i in 0..rows {
            writeln!(
                w,
                r#"{{"_step":{i},"loss":{},"acc":{}}}"#,
                1.0 / (i + 1) as f64,
                i % 7
            )
            .expect("write");
        }
        w.flush().expect("flush");
        std::fs::File::create(tmp.path().join(crate::store::WAL)).expect("run.wal");
        tmp
    }

    /// Shut down while indexing, the thread stops after the step it is on: the
    /// index is left part-built (and resumable), not finished first.
    #[tokio::test]
    async fn shutdown_stops_between_steps() {
        let run = run_dir(200_000);
        let indexer = FinishedIndexer::start(4 << 10).expect("thread");
        let mut activity = indexer.activity();
        indexer
            .sender()
            .try_send(run.path().to_owned())
            .expect("queued");
        activity
            .wait_for(|a| a.steps >= 1)
            .await
            .expect("indexing started");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        assert!(indexer.shut_down(deadline).await, "the thread ended");
        let (indexed, total) = RunIndex::open(run.path())
            .expect("index")
            .progress(Source::History);
        assert!(
            indexed > 0 && indexed < total,
            "stopped part way: {indexed} of {total} bytes"
        );
        assert_eq!(activity.borrow().runs, 0);
    }

    /// A run deleted before its turn is skipped, its directory not brought back.
    #[tokio::test]
    async fn a_deleted_run_is_not_brought_back() {
        let run = run_dir(10);
        let gone = run.path().join("deleted");
        let indexer = FinishedIndexer::start(4 << 10).expect("thread");
        let mut activity = indexer.activity();
        for dir in [gone.clone(), run.path().to_owned()] {
            indexer.sender().try_send(dir).expect("queued");
        }
        let indexed = activity.wait_for(|a| a.runs >= 1);
        let indexed = tokio::time::timeout(std::time::Duration::from_secs(60), indexed);
        indexed.await.expect("indexed in time").expect("indexed");
        assert!(!gone.exists());
    }

    /// A stop with nothing to index ends the waiting thread.
    #[tokio::test]
    async fn an_idle_thread_stops() {
        let indexer = FinishedIndexer::start(4 << 10).expect("thread");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        assert!(indexer.shut_down(deadline).await);
    }
}

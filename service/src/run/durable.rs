//! Making records durable: append to the log (fsync as `--fsync` says), apply
//! to the state, flush the store's files, publish the run's status.

use super::actor::Actor;
use super::error::RunError;
use crate::clock::now;
use crate::proto::wal::{record::Kind, Record};
use crate::semantics::state::Outcome;
use crate::store::{self, Rewrites};
use crate::value;
use crate::wal::{FsyncPolicy, WalError};

impl Actor {
    /// Appends a record (syncing it first with `--fsync always`) and applies it.
    pub(super) async fn commit(&mut self, kind: Kind) -> Result<Outcome, RunError> {
        let record = Record {
            time: now(),
            kind: Some(kind),
        };
        self.append(&record).await?;
        Ok(self.state.apply(&record, &mut self.store))
    }

    /// Appends a record to the log (synced first with `--fsync always`) and tells
    /// the forwarder.
    pub(super) async fn append(&mut self, record: &Record) -> Result<(), RunError> {
        self.wal.append(record)?;
        if self.config.fsync == FsyncPolicy::Always {
            self.sync_wal().await?;
        }
        if let Some(f) = &self.forward {
            f.wake();
        }
        Ok(())
    }

    /// Appends a record no client waits for (a system-metrics sample): no sync
    /// of its own under any `--fsync` policy (the next one covers it), and the
    /// forwarder is told.
    pub(super) fn append_unwaited(&mut self, record: &Record) -> Result<(), RunError> {
        self.wal.append_unwaited(record)?;
        if let Some(f) = &self.forward {
            f.wake();
        }
        Ok(())
    }

    pub(super) async fn sync_wal(&mut self) -> Result<(), RunError> {
        match self.sync_file.clone() {
            Some(file) => {
                let synced = tokio::task::spawn_blocking(move || file.sync_data()).await;
                self.wal.mark_synced();
                match synced {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(WalError::Io {
                        path: self.store.dir().join(store::WAL),
                        source: e,
                    }
                    .into()),
                    Err(_) => Ok(()),
                }
            }
            None => Ok(self.wal.sync()?),
        }
    }

    /// Every flush interval: flush the store, copy changed live files.
    pub(super) async fn tick(&mut self) {
        self.flush(false).await;
        self.copy_live_files().await;
    }

    /// Writes what is buffered or stale to the store; `durable` also syncs the log
    /// and the store files (finish, shutdown). The rewrites and fsyncs run on a
    /// blocking thread; the actor waits for them, so its commands stay in order.
    pub(super) async fn flush(&mut self, durable: bool) {
        self.store.flush();
        let dir = self.store.dir().to_owned();
        let mut job = Rewrites::new(durable);
        if durable {
            job.sync(self.store.line_files());
        }
        if self.summary_dirty || durable {
            job.file(
                dir.join(store::SUMMARY_JSON),
                value::map_to_json(&self.state.summary()),
            );
            self.summary_dirty = false;
        }
        let write_run = durable || self.written.as_ref() != Some(&self.state.info);
        if write_run {
            let hb = self.config.heartbeat_interval.as_secs_f64();
            match store::run_json(&self.state, hb) {
                Ok(text) => job.run_file(&dir, text, self.state.info.last_heartbeat),
                Err(e) => tracing::error!(run = %self.state.info.id, "run.json: {e}"),
            }
        }
        let errors = job.run().await;
        if write_run {
            // A failed write is tried again at the next flush.
            self.written = errors.is_empty().then(|| self.state.info.clone());
        }
        let id = self.state.info.id.clone();
        for e in errors {
            tracing::error!(run = %id, "{e}");
        }
        // A timed flush syncs what a client waits for (`--fsync batch`); a
        // durable one everything, unwaited samples included.
        let sync = if durable {
            self.wal.behind()
        } else {
            self.config.fsync == FsyncPolicy::Batch && self.wal.unsynced()
        };
        if sync {
            if let Err(e) = self.sync_wal().await {
                tracing::error!(run = %id, "{e}");
            }
        }
        if let Some(e) = self.store.take_error() {
            self.store_behind = true;
            tracing::error!(run = %id, "{e}; the transaction log still holds the data, and the file is rebuilt from it when the run ends or is next opened");
        }
        self.publish();
    }

    /// Replaces one store file (config.json, summary.json) on a blocking thread.
    pub(super) async fn rewrite(&self, name: &str, text: String) -> Result<(), RunError> {
        let mut job = Rewrites::new(false);
        job.file(self.store.dir().join(name), text);
        match job.run().await.into_iter().next() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    pub(super) fn publish(&self) {
        self.status.send_if_modified(|info| {
            if *info == self.state.info {
                false
            } else {
                info.clone_from(&self.state.info);
                true
            }
        });
    }
}

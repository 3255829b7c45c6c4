//! The actor's answer to each request: log, define_metric, config, summary,
//! alert, save, preempting, finish, resume, get, stop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::actor::Actor;
use super::actor::LiveFile;
use super::error::RunError;
use super::files::{self, FilesError, SavePolicy};
use crate::proto::v1::{
    AlertRequest, AlertResponse, DefineMetricRequest, DroppedRow, FinishResponse, GetRunResponse,
    InitRequest, InitResponse, LogAck, LogBatch, MetricDefinition, RunInfo, RunState as State,
    SaveFilesRequest, UpdateConfigRequest, UpdateSummaryRequest, Value,
};
use crate::proto::wal::{
    record::Kind, ArtifactRecord, ConsoleOutput, SavedFiles, StateChange, StopRequest,
};
use crate::semantics::state::{self, Outcome};
use crate::store;
use crate::value;

impl Actor {
    /// Ends an open run in `state` without its client: the pending row is committed,
    /// live and end files are copied, the state change is logged and synced.
    pub(super) async fn end(&mut self, state: State, reason: String) -> Result<RunInfo, RunError> {
        self.close(state, None, reason, false).await?;
        Ok(self.state.info.clone())
    }

    /// Ends an open run (finish, or without its client): sampling stops, the live
    /// and end files are copied, the state change (which commits the pending row)
    /// is logged, and everything is flushed and synced. Nothing for an ended run.
    /// `local_only`: the run ends on this sidecar only (see `StateChange`).
    pub(super) async fn close(
        &mut self,
        state: State,
        exit_code: Option<i32>,
        reason: String,
        local_only: bool,
    ) -> Result<(), RunError> {
        self.links.clear();
        if self.state.is_open() {
            self.copy_final_files().await;
            self.commit(Kind::State(StateChange {
                state: state as i32,
                exit_code,
                reason,
                local_only,
            }))
            .await?;
            self.flush(true).await;
            if self.store_behind {
                self.rebuild_store().await;
            }
        }
        Ok(())
    }

    /// Writes config.json; a write the disk refused leaves the store behind the
    /// log (which holds the config) until it is rebuilt.
    /// Rewrites config.json on a blocking thread. The log holds the change; a
    /// store file the disk refused is rebuilt from it.
    async fn write_config(&mut self) {
        let text = value::map_to_json(&self.state.config);
        if let Err(e) = self.rewrite(store::CONFIG_JSON, text).await {
            self.store_behind = true;
            tracing::error!(run = %self.state.info.id, "{e}");
        }
    }

    /// Rebuilds the store's line files from the log (they missed writes the disk
    /// refused); on failure they stay behind, and the next open rebuilds them.
    pub(super) async fn rebuild_store(&mut self) {
        let dir = self.store.dir().to_owned();
        match tokio::task::spawn_blocking(move || super::open::rebuild_store(&dir)).await {
            Ok(Ok(store)) => {
                self.store = store;
                self.store_behind = false;
                self.write_config().await;
                tracing::info!(run = %self.state.info.id, "store files rebuilt from the transaction log");
            }
            Ok(Err(e)) => {
                tracing::error!(run = %self.state.info.id, "store files not rebuilt: {e}")
            }
            Err(e) => tracing::error!(run = %self.state.info.id, "store files not rebuilt: {e}"),
        }
    }

    pub(super) async fn stop(&mut self) -> Result<RunInfo, RunError> {
        self.ensure_open()?;
        if !self.state.info.stop_requested {
            self.commit(Kind::Stop(StopRequest {})).await?;
            self.publish();
        }
        Ok(self.state.info.clone())
    }

    pub(super) fn ensure_open(&self) -> Result<(), RunError> {
        if self.state.is_open() {
            Ok(())
        } else {
            Err(RunError::Ended {
                id: self.state.info.id.clone(),
                state: state::state_name(self.state.state()),
            })
        }
    }

    /// Logs a batch. Rows whose media cannot be read are dropped and reported
    /// (`per_row`, a stream's batch) or fail the call (a unary Log's one row).
    pub(super) async fn log(
        &mut self,
        mut batch: LogBatch,
        per_row: bool,
    ) -> Result<LogAck, RunError> {
        self.ensure_open()?;
        self.ensure_writer(&batch.writer_id)?;
        let seq = batch.seq;
        if self.state.is_duplicate(&batch.writer_id, seq) {
            return Ok(LogAck {
                run_id: self.state.info.id.clone(),
                seq,
                duplicate: true,
                step: self.state.step_of(&batch.writer_id),
                dropped: Vec::new(),
            });
        }
        self.check_limits(&batch)?;
        let mut media_dropped = Vec::new();
        let mut kept: Option<Vec<u32>> = None;
        if batch
            .rows
            .iter()
            .any(|r| r.values.values().any(files::has_media))
        {
            let (copied, failures) = self.copy_media(batch).await?;
            batch = copied;
            if !failures.is_empty() {
                if !per_row {
                    let (_, e) = failures.into_iter().next().expect("one failure");
                    return Err(e.into());
                }
                // Keep the rows whose media copied; report the others.
                let failed: Vec<u32> = failures.iter().map(|(i, _)| *i).collect();
                let mut index = Vec::new();
                let mut rows = Vec::new();
                for (i, row) in std::mem::take(&mut batch.rows).into_iter().enumerate() {
                    if !failed.contains(&(i as u32)) {
                        index.push(i as u32);
                        rows.push(row);
                    }
                }
                batch.rows = rows;
                kept = Some(index);
                media_dropped = failures
                    .into_iter()
                    .map(|(i, e)| DroppedRow {
                        row_index: i,
                        step: self.state.info.step,
                        current_step: self.state.info.step,
                        reason: e.to_string(),
                    })
                    .collect();
            }
        }
        let writer_id = batch.writer_id.clone();
        let outcome = self.commit(Kind::Log(batch)).await?;
        self.summary_dirty = true;
        let mut dropped = match outcome {
            Outcome::Log { dropped } => dropped,
            _ => Vec::new(),
        };
        if let Some(index) = kept {
            for d in &mut dropped {
                d.row_index = index[d.row_index as usize];
            }
            dropped.extend(media_dropped);
            dropped.sort_by_key(|d| d.row_index);
        }
        Ok(LogAck {
            run_id: self.state.info.id.clone(),
            seq,
            duplicate: false,
            step: self.state.step_of(&writer_id),
            dropped,
        })
    }

    /// Refuses a batch past the run's largest step or its key limit.
    fn check_limits(&self, batch: &LogBatch) -> Result<(), RunError> {
        let id = || self.state.info.id.clone();
        if self.state.at_step_limit(&batch.writer_id) && !batch.rows.is_empty() {
            return Err(RunError::StepLimit { id: id() });
        }
        if let Some(held) = self.state.keys_over_limit(batch) {
            return Err(RunError::TooManyKeys {
                id: id(),
                what: "history keys",
                held,
            });
        }
        Ok(())
    }

    /// Copies the batch's media into files/media/; returns the batch and the rows
    /// (by index) whose media could not be copied.
    pub(super) async fn copy_media(
        &mut self,
        mut batch: LogBatch,
    ) -> Result<(LogBatch, Vec<(u32, FilesError)>), RunError> {
        let step = self.state.info.step;
        let wd = self.state.working_dir.clone();
        let files_dir = self.files_dir.clone();
        let policy = self.config.files.clone();
        tokio::task::spawn_blocking(move || {
            let mut failures = Vec::new();
            for (i, row) in batch.rows.iter_mut().enumerate() {
                let row_step = row.step.unwrap_or(step);
                for (key, v) in row.values.iter_mut() {
                    if let Err(e) = files::copy_media(key, v, row_step, &wd, &files_dir, &policy) {
                        failures.push((i as u32, e));
                        break;
                    }
                }
            }
            (batch, failures)
        })
        .await
        .map_err(|e| RunError::crashed_task("copying media", e))
    }

    pub(super) async fn define_metric(
        &mut self,
        req: DefineMetricRequest,
    ) -> Result<MetricDefinition, RunError> {
        self.ensure_open()?;
        let held = self.state.metrics.all().len();
        if held >= crate::limits::MAX_KEYS_PER_RUN {
            return Err(RunError::TooManyKeys {
                id: self.state.info.id.clone(),
                what: "metric definitions",
                held,
            });
        }
        self.state.metrics.check(&req)?;
        match self.commit(Kind::DefineMetric(req)).await? {
            Outcome::Metric(def) => {
                self.summary_dirty = true;
                Ok(def)
            }
            _ => Err(RunError::Internal(
                "a metric definition did not define a metric".into(),
            )),
        }
    }

    pub(super) async fn update_config(
        &mut self,
        req: UpdateConfigRequest,
    ) -> Result<BTreeMap<String, Value>, RunError> {
        self.ensure_open()?;
        if let Some(held) = self.state.map_over_limit(false, req.config.keys()) {
            return Err(RunError::TooManyKeys {
                id: self.state.info.id.clone(),
                what: "config keys",
                held,
            });
        }
        self.commit(Kind::Config(req)).await?;
        self.write_config().await;
        Ok(self.state.config.clone())
    }

    pub(super) async fn update_summary(
        &mut self,
        req: UpdateSummaryRequest,
    ) -> Result<BTreeMap<String, Value>, RunError> {
        self.ensure_open()?;
        if let Some(held) = self.state.map_over_limit(true, req.summary.keys()) {
            return Err(RunError::TooManyKeys {
                id: self.state.info.id.clone(),
                what: "summary keys",
                held,
            });
        }
        self.commit(Kind::Summary(req)).await?;
        let summary = self.state.summary();
        // The log holds the update; a store file the disk refused is rebuilt.
        if let Err(e) = self
            .rewrite(store::SUMMARY_JSON, value::map_to_json(&summary))
            .await
        {
            self.store_behind = true;
            tracing::error!(run = %self.state.info.id, "{e}");
        }
        self.summary_dirty = false;
        Ok(summary)
    }

    pub(super) async fn alert(&mut self, req: AlertRequest) -> Result<AlertResponse, RunError> {
        self.ensure_open()?;
        match self.commit(Kind::Alert(req)).await? {
            Outcome::Alert(reply) => Ok(reply),
            _ => Err(RunError::Internal("an alert had no outcome".into())),
        }
    }

    pub(super) async fn save_files(
        &mut self,
        req: SaveFilesRequest,
    ) -> Result<Vec<String>, RunError> {
        self.ensure_open()?;
        let wd = if req.working_dir.is_empty() {
            self.state.working_dir.clone()
        } else {
            req.working_dir.clone()
        };
        let files_dir = self.files_dir.clone();
        let policy = self.config.files.clone();
        let saved = tokio::task::spawn_blocking(move || {
            let found = files::expand(&req.glob, &req.base_path, &wd, &req.policy, &policy)?;
            let mut out = Vec::with_capacity(found.len());
            for f in found {
                let print = if SavePolicy::of(&f) == SavePolicy::End {
                    None
                } else {
                    files::copy_admitted(&policy, Path::new(&f.source), &files_dir.join(&f.name))?
                };
                out.push((f, print));
            }
            Ok::<_, FilesError>(out)
        })
        .await
        .map_err(|e| RunError::crashed_task("saving files", e))??;
        let names = saved.iter().map(|(f, _)| f.name.clone()).collect();
        for (f, print) in &saved {
            if SavePolicy::of(f) == SavePolicy::Live {
                self.live.insert(
                    f.name.clone(),
                    LiveFile {
                        source: PathBuf::from(&f.source),
                        copied: *print,
                        seen: *print,
                    },
                );
            } else {
                self.live.remove(&f.name);
            }
        }
        let files = saved.into_iter().map(|(f, _)| f).collect();
        self.commit(Kind::SavedFiles(SavedFiles { files })).await?;
        Ok(names)
    }

    /// Appends what the run did with an artifact version (the store has it).
    pub(super) async fn record_artifact(&mut self, record: ArtifactRecord) -> Result<(), RunError> {
        self.ensure_open()?;
        self.commit(Kind::Artifact(record)).await?;
        Ok(())
    }

    /// Appends console lines (output.log).
    pub(super) async fn output(&mut self, lines: Vec<String>) -> Result<(), RunError> {
        self.ensure_open()?;
        if !lines.is_empty() {
            self.commit(Kind::Output(ConsoleOutput { lines })).await?;
        }
        Ok(())
    }

    pub(super) async fn mark_preempting(&mut self) -> Result<RunInfo, RunError> {
        self.ensure_open()?;
        self.commit(Kind::State(StateChange {
            state: State::Preempting as i32,
            exit_code: None,
            ..Default::default()
        }))
        .await?;
        self.publish();
        Ok(self.state.info.clone())
    }

    /// Finishes the run; in a shared run, a writer that does not decide the run's
    /// end (W&B's x_primary and x_update_finish_state both false) ends only
    /// itself. Finish without a writer id, or of a writer the run never had, ends
    /// the run.
    pub(super) async fn finish(
        &mut self,
        exit_code: i32,
        writer_id: &str,
    ) -> Result<FinishResponse, RunError> {
        let state = if exit_code == 0 {
            State::Finished
        } else {
            State::Failed
        };
        let writer = self.state.writers.get(writer_id);
        let alone = self.state.info.shared && writer.is_some_and(|w| !w.decides());
        if !alone {
            self.close(state, Some(exit_code), String::new(), false)
                .await?;
        } else if writer.is_some_and(|w| w.is_attached()) && self.state.is_open() {
            self.end_writer(writer_id, state, Some(exit_code), "")
                .await?;
            self.flush(false).await;
        }
        let backends = match self.forward.as_mut() {
            Some(f) => vec![
                f.wait_delivered(self.wal.len(), self.config.finish_timeout)
                    .await,
            ],
            None => Vec::new(),
        };
        Ok(FinishResponse {
            run: Some(self.state.info.clone()),
            summary: self.state.summary(),
            backends,
            writer: self.state.writer_info(writer_id),
        })
    }

    /// Init of the open run: its writer joins, unless another live writer has the
    /// run and this one did not ask to share it.
    pub(super) async fn resume(&mut self, init: InitRequest) -> Result<InitResponse, RunError> {
        let held = self.state.writers.len();
        if held >= crate::limits::MAX_WRITERS_PER_RUN
            && self.state.writers.get(&init.writer_id).is_none()
        {
            return Err(RunError::TooManyWriters {
                id: self.state.info.id.clone(),
                held,
            });
        }
        if self.state.is_open() {
            self.admit(&init).await?;
        }
        let writer_id = init.writer_id.clone();
        self.commit(Kind::Resume(init)).await?;
        self.links
            .link(&self.state, &writer_id, self.monitor.as_ref());
        self.publish();
        self.write_config().await;
        let writer = self.state.writer_info(&writer_id).unwrap_or_default();
        Ok(InitResponse {
            run: Some(self.state.info.clone()),
            resumed: true,
            starting_step: writer.step,
            last_seq: writer.last_seq,
            writer_id,
        })
    }

    pub(super) async fn get(&mut self) -> GetRunResponse {
        let dir = self.store.dir().to_owned();
        let files = tokio::task::spawn_blocking(move || store::list_files(&dir))
            .await
            .unwrap_or_default();
        GetRunResponse {
            run: Some(self.state.info.clone()),
            config: self.state.config.clone(),
            summary: self.state.summary(),
            metrics: self
                .state
                .metrics
                .all()
                .iter()
                .map(|d| d.to_proto())
                .collect(),
            files,
            backends: self.forward.iter().map(|f| f.status()).collect(),
            system_metrics: self.state.system_metrics(),
            writers: self.state.writer_infos(),
        }
    }
}

//! Reads: GetRun, ListRuns and ScanHistory, from the open run or the store.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::{blocking_err, RegistryError, Runs, SCAN_CHUNK};
use crate::backend::forward;
use crate::proto::v1::{GetRunResponse, HistoryRow, RunInfo, ScanHistoryRequest, Value};
use crate::run::{self, recovery, Command};
use crate::semantics::state::{CommittedRow, NoSink, Sink};
use crate::store;
use crate::value;

impl Runs {
    /// A run's details: from its actor when open, else replayed from its log.
    pub async fn get(&self, id: &str) -> Result<GetRunResponse, RegistryError> {
        Ok(self.get_checked(id).await?.0)
    }

    /// [`Runs::get`], with the problems found with the run's files (a corrupt
    /// log, a history kept aside), for the reply to say.
    pub async fn get_checked(
        &self,
        id: &str,
    ) -> Result<(GetRunResponse, Vec<String>), RegistryError> {
        let dir = self.dir_of(id);
        if let Some(h) = self.active(id) {
            if let Ok(r) = h.call(|reply| Command::Get { reply }).await {
                let problems = match dir {
                    Ok(dir) => tokio::task::spawn_blocking(move || recovery::problems(&dir))
                        .await
                        .unwrap_or_default(),
                    Err(_) => Vec::new(),
                };
                return Ok((r, problems));
            }
        }
        let dir = dir?;
        let live = self.forwarders.status(id);
        let backend = self.forwarders.backend_name();
        tokio::task::spawn_blocking(move || {
            let (mut state, reader) = run::replay_log(&dir, &mut NoSink)?;
            let mut problems = recovery::problems(&dir);
            problems.extend(recovery::describe(&reader).map(|p| {
                format!("{p} (when read now; the log is repaired when the run is resumed)")
            }));
            let backends = match live {
                Some(s) => vec![s.to_proto()],
                None if backend != "local" => vec![forward::status_from_disk(&dir, backend)],
                None => Vec::new(),
            };
            let reply = GetRunResponse {
                backends,
                summary: state.summary(),
                metrics: state.metrics.all().iter().map(|d| d.to_proto()).collect(),
                config: std::mem::take(&mut state.config),
                files: store::list_files(&dir),
                system_metrics: state.system_metrics(),
                run: Some(state.info),
            };
            Ok((reply, problems))
        })
        .await
        .map_err(blocking_err)?
    }

    pub(super) fn dir_of(&self, id: &str) -> Result<PathBuf, RegistryError> {
        store::find_run(&self.config.data_dir, id)
            .ok_or_else(|| RegistryError::NotFound(id.to_owned()))
    }

    /// Every run in the store (of one project, if given), newest first.
    pub async fn list(&self, project: &str) -> Result<Vec<RunInfo>, RegistryError> {
        let data_dir = self.config.data_dir.clone();
        let project = project.to_owned();
        let mut infos = tokio::task::spawn_blocking(move || {
            store::all_runs(&data_dir)
                .into_iter()
                .filter(|dir| {
                    project.is_empty()
                        || dir.parent().and_then(Path::file_name) == Some(project.as_ref())
                })
                .filter_map(|dir| Some(store::read_run_file(&dir).ok()?.to_info(&dir)))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(blocking_err)?;
        for info in &mut infos {
            if let Some(h) = self.active(&info.id) {
                *info = h.info();
            }
        }
        infos.sort_by(|a, b| b.start_time.total_cmp(&a.start_time));
        Ok(infos)
    }

    /// Streams a run's committed history (replayed from its log) in chunks.
    pub fn scan(
        &self,
        req: ScanHistoryRequest,
        out: mpsc::Sender<Result<Vec<HistoryRow>, RegistryError>>,
    ) -> Result<(), RegistryError> {
        let dir = self.dir_of(&req.run_id)?;
        // Ends when the replay does, or early when the client goes away.
        tokio::task::spawn_blocking(move || {
            let mut sink = ScanSink {
                req,
                chunk: Vec::new(),
                out: out.clone(),
                gone: false,
            };
            let result = run::replay(&dir, &mut sink);
            if !sink.gone {
                if !sink.chunk.is_empty() {
                    let _ = out.blocking_send(Ok(std::mem::take(&mut sink.chunk)));
                }
                if let Err(e) = result {
                    let _ = out.blocking_send(Err(e.into()));
                }
            }
        });
        Ok(())
    }
}

struct ScanSink {
    req: ScanHistoryRequest,
    chunk: Vec<HistoryRow>,
    out: mpsc::Sender<Result<Vec<HistoryRow>, RegistryError>>,
    /// The client stopped reading.
    gone: bool,
}

impl Sink for ScanSink {
    fn history(&mut self, row: &CommittedRow<'_>) {
        if self.gone
            || self.req.min_step.is_some_and(|m| row.step < m)
            || self.req.max_step.is_some_and(|m| row.step >= m)
        {
            return;
        }
        let keys = &self.req.keys;
        if !keys.iter().all(|k| row.values.contains_key(k.as_str())) {
            return;
        }
        let mut values: std::collections::BTreeMap<String, Value> = if keys.is_empty() {
            row.values
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        } else {
            keys.iter()
                .filter_map(|k| Some((k.clone(), row.values.get(k.as_str())?.clone())))
                .collect()
        };
        values.insert("_step".into(), value::int(row.step));
        values.insert("_runtime".into(), value::double(row.runtime));
        values.insert("_timestamp".into(), value::double(row.timestamp));
        self.chunk.push(HistoryRow {
            step: row.step,
            values,
        });
        let page = match self.req.page_size {
            0 => SCAN_CHUNK,
            n => n as usize,
        };
        if self.chunk.len() >= page
            && self
                .out
                .blocking_send(Ok(std::mem::take(&mut self.chunk)))
                .is_err()
        {
            self.gone = true;
        }
    }
}

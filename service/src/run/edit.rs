//! Editing and deleting a run (UpdateRun, DeleteRun).
//!
//! An edit is a record like any other: an open run's actor appends and applies it
//! ([`Actor::update`]); a run with no actor (ended) is edited by [`edit_stored`],
//! which holds the run's log lock while it replays the log, appends and syncs the
//! edit, and rewrites run.json, config.json and summary.json. The lock keeps
//! another sidecar sharing the data dir out; the registry holds its Init lock
//! around the call, so a resume in this sidecar cannot start in between.
//! [`delete_stored`] removes a run's directory under the same lock.

use std::path::Path;

use super::actor::Actor;
use super::error::RunError;
use super::open::replay;
use crate::clock::now;
use crate::proto::v1::{UpdateRunRequest, UpdateRunResponse};
use crate::proto::wal::{record::Kind, Record};
use crate::semantics::state::{NoSink, RunState};
use crate::store::{self, Rewrites, RunFile, StoreError};
use crate::value;
use crate::wal::{WalLock, WalWriter};

/// Which store files an edit changes besides run.json.
struct Touches {
    config: bool,
    summary: bool,
}

impl Touches {
    fn of(req: &UpdateRunRequest) -> Self {
        Touches {
            config: !req.config.is_empty() || !req.config_remove.is_empty(),
            summary: !req.summary.is_empty() || !req.summary_remove.is_empty(),
        }
    }
}

impl Actor {
    /// Appends an edit to the open run's log and rewrites the store files it
    /// changes (run.json with the next flush, which happens now).
    pub(super) async fn update(
        &mut self,
        req: UpdateRunRequest,
    ) -> Result<UpdateRunResponse, RunError> {
        let touches = Touches::of(&req);
        self.commit(Kind::Edit(req)).await?;
        if touches.config {
            self.rewrite(store::CONFIG_JSON, value::map_to_json(&self.state.config))
                .await?;
        }
        let summary = self.state.summary();
        if touches.summary {
            self.rewrite(store::SUMMARY_JSON, value::map_to_json(&summary))
                .await?;
        }
        self.flush(false).await;
        Ok(UpdateRunResponse {
            run: Some(self.state.info.clone()),
            config: self.state.config.clone(),
            summary,
        })
    }
}

/// Edits a run that has no actor: under its log's lock, replays the log, appends
/// the edit (synced before the reply) and rewrites the store files. Blocking.
pub fn edit_stored(
    dir: &Path,
    req: UpdateRunRequest,
    heartbeat_interval: f64,
) -> Result<UpdateRunResponse, RunError> {
    let lock = WalLock::acquire(&dir.join(store::WAL))?;
    let (mut state, valid_len) = replay(dir, &mut NoSink)?;
    let mut wal = WalWriter::open_truncated(lock, valid_len)?;
    let record = Record {
        time: now(),
        kind: Some(Kind::Edit(req)),
    };
    wal.append(&record)?;
    wal.sync()?;
    state.apply(&record, &mut NoSink);
    let summary = state.summary();
    let mut job = Rewrites::new(true);
    job.file(
        dir.join(store::CONFIG_JSON),
        value::map_to_json(&state.config),
    );
    job.file(dir.join(store::SUMMARY_JSON), value::map_to_json(&summary));
    let run = edited_run_file(dir, &state, heartbeat_interval);
    let text = serde_json::to_vec_pretty(&run).map_err(|e| StoreError::Json {
        path: dir.join(store::RUN_JSON),
        problem: e.to_string(),
    })?;
    // Its time stays the last heartbeat: an edit is no sign of life.
    job.run_file(dir, text, run.last_heartbeat);
    if let Some(e) = job.apply().into_iter().next() {
        return Err(e.into());
    }
    Ok(UpdateRunResponse {
        run: Some(state.info),
        config: state.config,
        summary,
    })
}

/// run.json after an edit: the file as it is with the edited identity (a replay
/// does not know what only run.json holds, such as the last heartbeat), or made
/// afresh from the state when it is missing or unreadable.
fn edited_run_file(dir: &Path, state: &RunState, heartbeat_interval: f64) -> RunFile {
    let info = &state.info;
    match store::read_run_file(dir) {
        Ok(mut f) => {
            f.name.clone_from(&info.name);
            f.notes.clone_from(&info.notes);
            f.tags.clone_from(&info.tags);
            f.group.clone_from(&info.group);
            f.job_type.clone_from(&info.job_type);
            f
        }
        Err(_) => RunFile::from_state(state, heartbeat_interval),
    }
}

/// Removes a run's directory, holding its log's lock (so no other sidecar has the
/// run open). The log goes first: from then on the directory is no run to the
/// store, even if removing the rest is cut short. Blocking.
pub fn delete_stored(dir: &Path) -> Result<(), RunError> {
    let wal = dir.join(store::WAL);
    let _lock = WalLock::acquire(&wal)?;
    std::fs::remove_file(&wal).map_err(store::io_err(&wal))?;
    // Moved out of its place first: a web UI indexing the run (the sidecar's
    // thread of finished runs, `runcore ui`) then adds no file to it while it is
    // removed (the index never creates a run directory).
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let doomed = dir.with_file_name(format!(".deleted-{name}"));
    // One left by a delete cut short before would block the rename.
    let _ = std::fs::remove_dir_all(&doomed);
    std::fs::rename(dir, &doomed).map_err(store::io_err(dir))?;
    std::fs::remove_dir_all(&doomed).map_err(store::io_err(&doomed))?;
    Ok(())
}

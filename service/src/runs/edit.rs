//! UpdateRun and DeleteRun: an open run's actor takes the edit; a run without one
//! (ended) is opened briefly under its log's lock ([`run::edit_stored`],
//! [`run::delete_stored`]). Both hold the registry's Init lock, so a resume of the
//! run cannot start in between; another sidecar sharing the data dir is kept out
//! by the log's lock (FAILED_PRECONDITION while it has the run open).

use std::time::Duration;

use super::{blocking_err, RegistryError, Runs};
use crate::backend::forward;
use crate::proto::v1::{UpdateRunRequest, UpdateRunResponse};
use crate::run::{self, Command, RunError, RunHandle};
use crate::semantics::state;
use crate::wal::WalError;

/// How long an edit or delete waits for an actor that is ending (its run just
/// finished) to let go of the run's log.
const ACTOR_GONE: Duration = Duration::from_secs(5);
/// Pause between attempts to take the log of a run whose actor just stopped.
const LOCK_RETRY: Duration = Duration::from_millis(20);

impl Runs {
    /// Applies an edit to run `req.run_id`, open or ended, and forwards it.
    pub async fn update(&self, req: UpdateRunRequest) -> Result<UpdateRunResponse, RegistryError> {
        let _guard = self.init_lock.lock().await;
        let id = req.run_id.clone();
        let mut had_actor = false;
        if let Some(h) = self.active(&id) {
            match h
                .call(|reply| Command::Update {
                    req: req.clone(),
                    reply,
                })
                .await
            {
                // The run ended meanwhile and its actor is going: edit it stored.
                Err(RunError::Closed) if self.token().is_ok() => {
                    had_actor = true;
                    self.await_gone(&h).await;
                }
                other => return Ok(other?),
            }
        }
        let dir = self.dir_of(&id)?;
        let hb = self.config.heartbeat_interval.as_secs_f64();
        let backend = self.forwarders.backend_name();
        let (resp, deliver) = self
            .retry_locked(had_actor, || {
                let (dir, req) = (dir.clone(), req.clone());
                move || {
                    let resp = run::edit_stored(&dir, req, hb)?;
                    Ok((resp, backend != "local" && forward::started(&dir, backend)))
                }
            })
            .await?;
        // A run whose delivery had started gets the edit too (an ended run's
        // forwarder has retired: this starts one, which sends what is new).
        if deliver {
            self.forwarders.ensure(&id, &dir, self.token()?);
        }
        tracing::info!(run = %id, "run edited");
        Ok(resp)
    }

    /// Deletes an ended run's directory. `delete_artifacts` changes nothing yet:
    /// runcore keeps no artifacts.
    pub async fn delete(&self, id: &str) -> Result<(), RegistryError> {
        let _guard = self.init_lock.lock().await;
        let mut had_actor = false;
        if let Some(h) = self.active(id) {
            let st = h.info().state();
            if !state::is_terminal(st) {
                return Err(RegistryError::Open {
                    id: id.to_owned(),
                    state: state::state_name(st),
                });
            }
            had_actor = true;
            self.await_gone(&h).await;
        }
        if let Some(s) = self.forwarders.status(id).filter(|s| !s.caught_up()) {
            let p = s.to_proto();
            return Err(RegistryError::Delivering {
                id: id.to_owned(),
                backend: s.backend,
                pending: p.pending_records.max(1),
            });
        }
        let dir = self.dir_of(id)?;
        self.retry_locked(had_actor, || {
            let dir = dir.clone();
            move || run::delete_stored(&dir)
        })
        .await?;
        tracing::info!(run = %id, dir = %dir.display(), "run deleted");
        Ok(())
    }

    /// Waits (a little) for an ending actor to stop.
    async fn await_gone(&self, h: &RunHandle) {
        let _ = tokio::time::timeout(ACTOR_GONE, h.closed()).await;
    }

    /// Runs a blocking job on a run's directory; when the run's actor just
    /// stopped (`had_actor`), a log still locked by it is tried again until
    /// ACTOR_GONE has passed, since the actor lets go of it as it ends.
    async fn retry_locked<T: Send + 'static, F>(
        &self,
        had_actor: bool,
        make: impl Fn() -> F,
    ) -> Result<T, RegistryError>
    where
        F: FnOnce() -> Result<T, RunError> + Send + 'static,
    {
        let deadline = crate::clock::instant() + ACTOR_GONE;
        loop {
            let result = tokio::task::spawn_blocking(make())
                .await
                .map_err(blocking_err)?;
            match result {
                Err(RunError::Wal(WalError::InUse(_)))
                    if had_actor && crate::clock::instant() < deadline =>
                {
                    tokio::time::sleep(LOCK_RETRY).await;
                }
                other => return Ok(other?),
            }
        }
    }
}

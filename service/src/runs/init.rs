//! Init: start a new run, or resume one that is open or in the store.

use std::path::{Path, PathBuf};

use super::{
    blocking_err, count_runs, random_id, random_name, RegistryError, Runs, DEFAULT_PROJECT,
};
use crate::memory;
use crate::metadata;
use crate::proto::v1::{InitRequest, InitResponse, Resume};
use crate::run::{self, Command, RunError, RunHandle};
use crate::semantics::state;
use crate::store;
use crate::wal::WalError;

impl Runs {
    /// Starts or resumes a run. Fields were validated by the API layer.
    pub async fn init(&self, mut req: InitRequest) -> Result<InitResponse, RegistryError> {
        let _guard = self.init_lock.lock().await;
        let shared = req.writer.as_ref().is_some_and(|w| w.shared);
        let resume = match req.resume() {
            // W&B's shared mode: every process Inits the one run id, whichever
            // came first made it.
            Resume::Unspecified | Resume::Never if shared => Resume::Allow,
            Resume::Unspecified => Resume::Never,
            r => r,
        };
        if req.id.is_empty() {
            req.id = self.fresh_id();
        }
        if let Some(handle) = self.active(&req.id) {
            return self.resume_open(handle, req, resume).await;
        }
        self.check_memory(&req)?;
        if let Some(dir) = store::find_run(&self.config.data_dir, &req.id) {
            return self.resume_stored(dir, req, resume).await;
        }
        if resume == Resume::Must {
            return Err(RegistryError::NotFound(req.id));
        }
        self.check_client_cap(&req)?;
        self.create(req).await
    }

    /// A new run id that no run has.
    fn fresh_id(&self) -> String {
        loop {
            let id = random_id();
            if self.active(&id).is_none() && store::find_run(&self.config.data_dir, &id).is_none() {
                return id;
            }
        }
    }

    /// Resumes a run whose actor is running.
    async fn resume_open(
        &self,
        handle: RunHandle,
        mut req: InitRequest,
        resume: Resume,
    ) -> Result<InitResponse, RegistryError> {
        let info = handle.info();
        check_project(&req, &info.project)?;
        if resume == Resume::Never {
            return Err(RegistryError::AlreadyExists {
                id: info.id,
                project: info.project,
            });
        }
        req.project = info.project;
        Ok(handle
            .call(|reply| Command::Resume {
                init: Box::new(req),
                reply,
            })
            .await?)
    }

    /// Resumes a run from its directory in the store.
    async fn resume_stored(
        &self,
        dir: PathBuf,
        mut req: InitRequest,
        resume: Resume,
    ) -> Result<InitResponse, RegistryError> {
        let project = dir
            .parent()
            .and_then(Path::file_name)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        check_project(&req, &project)?;
        if resume == Resume::Never {
            return Err(RegistryError::AlreadyExists {
                id: req.id,
                project,
            });
        }
        req.project = project;
        let hb = self.config.heartbeat_interval.as_secs_f64();
        let opened = tokio::task::spawn_blocking(move || run::open(&dir, hb))
            .await
            .map_err(blocking_err)??;
        let handle = self.spawn(opened)?;
        self.lock().insert(req.id.clone(), handle.clone());
        Ok(handle
            .call(|reply| Command::Resume {
                init: Box::new(req),
                reply,
            })
            .await?)
    }

    /// Refuses to open a run when its base cost and config do not fit the memory
    /// budget (a run being opened is then charged what it holds).
    fn check_memory(&self, req: &InitRequest) -> Result<(), RegistryError> {
        let bytes = memory::RUN_BASE_BYTES + 2 * memory::map_bytes(&req.config);
        self.run_settings
            .budget
            .charge(bytes)
            .map(drop)
            .map_err(|e| RegistryError::Run(e.into()))
    }

    /// Refuses a run past the client process's cap of open runs.
    fn check_client_cap(&self, req: &InitRequest) -> Result<(), RegistryError> {
        let Some(c) = req.client.as_ref().filter(|c| c.pid > 0) else {
            return Ok(());
        };
        let key = (c.hostname.clone(), c.pid);
        let open = self
            .lock()
            .values()
            .filter(|h| !h.is_closed() && h.client() == Some(&key))
            .filter(|h| !state::is_terminal(h.info().state()))
            .count();
        if open >= self.config.max_runs_per_client {
            return Err(RegistryError::TooManyRuns(self.config.max_runs_per_client));
        }
        Ok(())
    }

    /// Creates a new run: its directory, metadata and first record.
    async fn create(&self, mut req: InitRequest) -> Result<InitResponse, RegistryError> {
        if req.client_timeout.is_none() {
            req.client_timeout = Some(self.config.client_timeout.as_secs_f64());
        }
        if req.project.is_empty() {
            req.project = DEFAULT_PROJECT.to_owned();
        }
        let dir = store::run_dir(&self.config.data_dir, &req.project, &req.id);
        if req.name.is_empty() {
            req.name = random_name(dir.parent().map(count_runs).unwrap_or(0) + 1);
        }
        let hb = self.config.heartbeat_interval.as_secs_f64();
        let writer_id = req.writer_id.clone();
        // Probing the hardware (NVML, statfs, /proc) blocks.
        let (id, project) = (req.id.clone(), req.project.clone());
        let opened = tokio::task::spawn_blocking(move || {
            let metadata = metadata::collect(&req);
            run::create(&dir, req, &metadata, hb)
        })
        .await
        .map_err(blocking_err)?
        .map_err(|e| match e {
            // Another sidecar sharing the data dir created it first.
            RunError::Wal(WalError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                RegistryError::AlreadyExists { id, project }
            }
            e => e.into(),
        })?;
        let info = opened.state().info.clone();
        let handle = self.spawn(opened)?;
        self.lock().insert(info.id.clone(), handle);
        tracing::info!(run = %info.id, project = %info.project, name = %info.name, "run started");
        Ok(InitResponse {
            run: Some(info),
            resumed: false,
            starting_step: 0,
            last_seq: 0,
            writer_id,
        })
    }
}

/// Init named a project, and the run lives in another.
fn check_project(req: &InitRequest, actual: &str) -> Result<(), RegistryError> {
    if !req.project.is_empty() && req.project != actual {
        return Err(RegistryError::ProjectMismatch {
            id: req.id.clone(),
            actual: actual.to_owned(),
            asked: req.project.clone(),
        });
    }
    Ok(())
}

//! The registry of runs: starts, resumes and finds run actors, recovers unfinished
//! runs when the sidecar starts, and answers questions about ended runs from the
//! local store.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::artifacts::{ArtifactError, Artifacts};
use crate::backend::forward::{self, Forwarders};
use crate::config::ServeConfig;
use crate::liveness::Clients;
use crate::monitor::Monitor;
use crate::run::{self, Command, RunError, RunHandle};
use crate::semantics::state;
use crate::shutdown::ShutdownToken;
use crate::store;
use crate::store::StoreError;
use crate::wal::WalError;

mod edit;
mod files;
mod init;
mod read;

pub const DEFAULT_PROJECT: &str = "uncategorized";
/// Rows per ScanHistory message unless the request asks for another page size.
const SCAN_CHUNK: usize = 256;

pub struct Runs {
    config: Arc<ServeConfig>,
    /// What each run's actor needs of `config`.
    run_settings: Arc<run::RunSettings>,
    forwarders: Arc<Forwarders>,
    /// One system-metrics sampler for every run.
    monitor: Monitor,
    /// One liveness check per client process, shared by its runs.
    clients: Clients,
    active: Mutex<HashMap<String, RunHandle>>,
    /// Serialises Init, so two calls with one id cannot both create the run.
    init_lock: tokio::sync::Mutex<()>,
    /// Cloned into each run actor; taken at shutdown so no new run starts.
    token: Mutex<Option<ShutdownToken>>,
    /// The data dir's artifact store.
    artifacts: Artifacts,
}

/// What the registry can answer instead of a run.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("run {0:?} not found; Init it first (ids are unique per data dir)")]
    NotFound(String),
    #[error("run {id:?} already exists in project {project:?}; resume it with resume=\"allow\" or \"must\", or choose another id")]
    AlreadyExists { id: String, project: String },
    #[error("run {id:?} belongs to project {actual:?}, not {asked:?}")]
    ProjectMismatch {
        id: String,
        actual: String,
        asked: String,
    },
    #[error("this client process already has {0} open runs (the sidecar's --max-runs-per-client); finish some first")]
    TooManyRuns(usize),
    #[error("opening the artifact store: {0}")]
    Artifacts(#[from] ArtifactError),
    #[error("run {id:?} is open ({state}); finish it (or ask its client to stop with `runcore runs stop {id}`) before deleting it")]
    Open { id: String, state: &'static str },
    #[error("run {id:?} is still being delivered to {backend} ({pending} records pending); delete it once GetRun shows nothing pending, or with the sidecar stopped")]
    Delivering {
        id: String,
        backend: &'static str,
        pending: u64,
    },
    #[error("run {id:?} has no file {name:?}; ListFiles names its files")]
    NoSuchFile { id: String, name: String },
    #[error("file {name:?} of run {id:?} resolves outside the run's files directory (a symbolic link); only files inside it are served")]
    FileOutsideRun { id: String, name: String },
    #[error("offset {offset} is past the end of file {name:?} ({size} bytes); read from an offset up to {size}")]
    PastEnd {
        name: String,
        offset: u64,
        size: u64,
    },
    /// What the run itself answered (or opening it failed with).
    #[error(transparent)]
    Run(#[from] RunError),
}

impl From<WalError> for RegistryError {
    fn from(e: WalError) -> Self {
        RegistryError::Run(e.into())
    }
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        RegistryError::Run(e.into())
    }
}

fn blocking_err(e: tokio::task::JoinError) -> RegistryError {
    RunError::crashed_task("a registry task", e).into()
}

impl Runs {
    /// Opens the registry, recovering every run the store holds that had not ended:
    /// its files are rebuilt from its log and it is open for logging again. Each
    /// run that ends is named on `ended` (`run::RunSettings::ended`).
    pub async fn start(
        config: Arc<ServeConfig>,
        token: ShutdownToken,
        ended: Option<tokio::sync::mpsc::Sender<std::path::PathBuf>>,
    ) -> Result<Arc<Self>, RegistryError> {
        let (data_dir, files) = (config.data_dir.clone(), config.files.clone());
        let durable = config.fsync != crate::wal::FsyncPolicy::Never;
        let artifacts =
            tokio::task::spawn_blocking(move || Artifacts::open(&data_dir, files, durable))
                .await
                .map_err(blocking_err)??;
        let runs = Arc::new(Runs {
            artifacts,
            forwarders: Forwarders::new(config.backend.clone(), config.heartbeat_interval),
            monitor: Monitor::new(None),
            clients: Clients::new(),
            run_settings: Arc::new(config.run_settings(ended)),
            config: config.clone(),
            active: Mutex::new(HashMap::new()),
            init_lock: tokio::sync::Mutex::new(()),
            token: Mutex::new(Some(token)),
        });
        let data_dir = config.data_dir.clone();
        let dirs = tokio::task::spawn_blocking(move || {
            store::all_runs(&data_dir)
                .into_iter()
                .map(|dir| {
                    let ended = store::read_run_file(&dir)
                        .map(|r| state::is_terminal(state::state_from_name(&r.state)))
                        .unwrap_or(false);
                    (dir, ended)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(blocking_err)?;
        let backend = runs.forwarders.backend_name();
        for (dir, ended) in dirs {
            if ended {
                // An ended run whose remote delivery was cut short: finish it.
                if backend != "local"
                    && forward::started(&dir, backend)
                    && forward::pending_bytes(&dir, backend) > 0
                {
                    if let Some(id) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) {
                        runs.forwarders.ensure(&id, &dir, runs.token()?);
                    }
                }
                continue;
            }
            let path = dir.clone();
            let hb = config.heartbeat_interval.as_secs_f64();
            // One run's data never stops the sidecar from starting: a run that
            // cannot be opened (or whose replay panics) is reported and skipped.
            let opened = match tokio::task::spawn_blocking(move || run::open(&path, hb)).await {
                Ok(Ok(o)) => o,
                Ok(Err(RunError::Wal(WalError::InUse(_)))) => {
                    tracing::info!(dir = %dir.display(), "run is open in another sidecar; left to it");
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::error!(dir = %dir.display(), "run not recovered, skipped: {e}");
                    continue;
                }
                Err(e) => {
                    tracing::error!(dir = %dir.display(), "run not recovered, skipped: reading it failed: {e}");
                    continue;
                }
            };
            let info = opened.state().info.clone();
            if !opened.state().is_open() {
                continue;
            }
            tracing::info!(run = %info.id, project = %info.project, step = info.step, "recovered an unfinished run");
            let handle = runs.spawn(opened)?;
            runs.lock().insert(info.id, handle);
        }
        Ok(runs)
    }

    /// The artifact store.
    pub fn artifacts(&self) -> &Artifacts {
        &self.artifacts
    }

    /// A run's path (entity/project/id): the open run's, else its run.json's.
    pub fn run_path(&self, id: &str) -> Result<String, RegistryError> {
        if let Some(h) = self.active(id) {
            return Ok(h.info().path);
        }
        let dir = store::find_run(&self.config.data_dir, id)
            .ok_or_else(|| RegistryError::NotFound(id.to_owned()))?;
        let r = store::read_run_file(&dir)?;
        Ok(state::run_path(&r.entity, &r.project, &r.id))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunHandle>> {
        // A panic while holding this lock cannot leave the map half-changed.
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A shutdown token for a new task (a run actor, a stream reader); none once
    /// the sidecar is shutting down.
    pub fn token(&self) -> Result<ShutdownToken, RegistryError> {
        self.token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(RegistryError::Run(RunError::Closed))
    }

    fn spawn(&self, opened: run::OpenedRun) -> Result<RunHandle, RegistryError> {
        let info = &opened.state().info;
        let dir = Path::new(&info.dir)
            .parent()
            .unwrap_or(Path::new(&info.dir))
            .to_owned();
        let link = self
            .forwarders
            .ensure(&info.id, &dir, self.token()?)
            .map(|l| Box::new(l) as Box<dyn run::Delivery>);
        Ok(run::spawn(
            opened,
            self.run_settings.clone(),
            self.token()?,
            link,
            Some(self.monitor.clone()),
            &self.clients,
        ))
    }

    /// The sidecar's memory budget (`crate::memory`).
    pub fn budget(&self) -> &std::sync::Arc<crate::memory::Budget> {
        &self.run_settings.budget
    }

    /// Stops new runs and streams from starting (shutdown).
    pub fn close(&self) {
        self.token.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// The open run `id`, if its actor is alive.
    fn active(&self, id: &str) -> Option<RunHandle> {
        let mut active = self.lock();
        match active.get(id) {
            Some(h) if h.is_closed() => {
                active.remove(id);
                None
            }
            Some(h) => Some(h.clone()),
            None => None,
        }
    }

    /// The open run `id`; an ended or unknown run is an error that says which.
    pub fn handle(&self, id: &str) -> Result<RunHandle, RegistryError> {
        if let Some(h) = self.active(id) {
            return Ok(h);
        }
        match store::find_run(&self.config.data_dir, id) {
            Some(dir) if crate::wal::is_locked(&dir.join(store::WAL)) => {
                Err(WalError::InUse(dir).into())
            }
            Some(dir) => {
                let state = store::read_run_file(&dir)
                    .map(|r| state::state_name(state::state_from_name(&r.state)))
                    .unwrap_or("unknown");
                Err(RunError::Ended {
                    id: id.to_owned(),
                    state,
                }
                .into())
            }
            None => Err(RegistryError::NotFound(id.to_owned())),
        }
    }

    /// Ids of the runs that are open now.
    pub fn open_runs(&self) -> Vec<String> {
        let active: Vec<(String, RunHandle)> = self
            .lock()
            .iter()
            .map(|(id, h)| (id.clone(), h.clone()))
            .collect();
        active
            .into_iter()
            .filter(|(_, h)| !h.is_closed() && !state::is_terminal(h.info().state()))
            .map(|(id, _)| id)
            .collect()
    }

    /// Ends every open run in `state` (killed at shutdown, crashed when the
    /// sidecar's parent is gone), all at once, giving up at `deadline` on a run
    /// whose actor does not answer (its log holds every acknowledged record).
    pub async fn end_open(
        &self,
        state: crate::proto::v1::RunState,
        deadline: tokio::time::Instant,
    ) {
        let ends = self.open_runs().into_iter().filter_map(|id| {
            let h = self.active(&id)?;
            Some(async move {
                let call = h.call(|reply| Command::End {
                    state,
                    reason: String::new(),
                    writer_id: String::new(),
                    reply,
                });
                match tokio::time::timeout_at(deadline, call).await {
                    Ok(Ok(info)) => {
                        tracing::warn!(run = %id, "run {} at shutdown", state::state_name(info.state()))
                    }
                    Ok(Err(e)) => tracing::error!(run = %id, "could not end the run: {e}"),
                    Err(_) => tracing::error!(run = %id, "the run did not end within the shutdown grace (it is wedged); its log holds every acknowledged record, and the next start recovers it"),
                }
            })
        });
        let ends: Vec<_> = ends.collect();
        let mut set = tokio::task::JoinSet::new();
        for end in ends {
            set.spawn(end);
        }
        while set.join_next().await.is_some() {}
    }

    /// The open runs whose actor has been on one request for longer than
    /// `limit`: wedged (a blocked disk, a bug).
    pub fn wedged(&self, limit: std::time::Duration) -> Vec<String> {
        let now = tokio::time::Instant::now();
        self.lock()
            .iter()
            .filter(|(_, h)| !h.is_closed())
            .filter(|(_, h)| {
                h.busy_since()
                    .is_some_and(|t| now.duration_since(t) > limit)
            })
            .map(|(id, _)| id.clone())
            .collect()
    }
}

fn count_runs(project_dir: &Path) -> usize {
    std::fs::read_dir(project_dir)
        .map(|d| d.flatten().count())
        .unwrap_or(0)
}

/// 8 characters of [a-z0-9], as W&B generates run ids.
pub fn random_id() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..8)
        .map(|_| CHARS[fastrand::usize(..CHARS.len())] as char)
        .collect()
}

/// A W&B-style display name: adjective-noun-N, N the run's number in its project.
pub fn random_name(n: usize) -> String {
    const ADJ: &[&str] = &[
        "amber", "brisk", "calm", "daring", "eager", "fancy", "gentle", "hardy", "icy", "jolly",
        "keen", "lucky", "misty", "noble", "olive", "proud", "quiet", "rapid", "silver", "tidy",
        "upbeat", "vivid", "wild", "young", "zesty",
    ];
    const NOUN: &[&str] = &[
        "river", "meadow", "comet", "forest", "harbor", "island", "lake", "mountain", "nebula",
        "ocean", "pine", "quartz", "rain", "sky", "thunder", "valley", "wave", "wind", "dune",
        "glade", "field", "star", "moon", "cloud", "breeze",
    ];
    format!(
        "{}-{}-{n}",
        ADJ[fastrand::usize(..ADJ.len())],
        NOUN[fastrand::usize(..NOUN.len())]
    )
}

//! The registry of runs: starts, resumes and finds run actors, recovers unfinished
//! runs when the sidecar starts, and answers questions about ended runs from the
//! local store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::backend::forward::{self, Forwarders};
use crate::config::ServeConfig;
use crate::metadata;
use crate::monitor::Monitor;
use crate::proto::v1::{
    GetRunResponse, HistoryRow, InitRequest, InitResponse, Resume, RunInfo, ScanHistoryRequest,
    Value,
};
use crate::run::state::{self, CommittedRow, Sink};
use crate::run::{self, Command, RunError, RunHandle};
use crate::shutdown::ShutdownToken;
use crate::store;
use crate::value;

pub const DEFAULT_PROJECT: &str = "uncategorized";
/// Rows per ScanHistory message.
const SCAN_CHUNK: usize = 256;

pub struct Runs {
    config: Arc<ServeConfig>,
    forwarders: Arc<Forwarders>,
    /// One system-metrics sampler for every run.
    monitor: Monitor,
    active: Mutex<HashMap<String, RunHandle>>,
    /// Serialises Init, so two calls with one id cannot both create the run.
    init_lock: tokio::sync::Mutex<()>,
    /// Cloned into each run actor; taken at shutdown so no new run starts.
    token: Mutex<Option<ShutdownToken>>,
}

fn blocking_err(_: tokio::task::JoinError) -> RunError {
    RunError::Closed
}

impl Runs {
    /// Opens the registry, recovering every run the store holds that had not ended:
    /// its files are rebuilt from its log and it is open for logging again.
    pub async fn start(
        config: Arc<ServeConfig>,
        token: ShutdownToken,
    ) -> Result<Arc<Self>, RunError> {
        let runs = Arc::new(Runs {
            forwarders: Forwarders::new(config.backend.clone(), config.heartbeat_interval),
            monitor: Monitor::new(None),
            config: config.clone(),
            active: Mutex::new(HashMap::new()),
            init_lock: tokio::sync::Mutex::new(()),
            token: Mutex::new(Some(token)),
        });
        let data_dir = config.data_dir.clone();
        let dirs = tokio::task::spawn_blocking(move || store::all_runs(&data_dir))
            .await
            .map_err(blocking_err)?;
        let backend = runs.forwarders.backend_name();
        for dir in dirs {
            let ended = store::read_run_file(&dir)
                .map(|r| state::is_terminal(state::state_from_name(&r.state)))
                .unwrap_or(false);
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
            let opened = match tokio::task::spawn_blocking(move || run::open(&path, hb))
                .await
                .map_err(blocking_err)?
            {
                Ok(o) => o,
                Err(RunError::Wal(crate::wal::WalError::InUse(_))) => {
                    tracing::info!(dir = %dir.display(), "run is open in another sidecar; left to it");
                    continue;
                }
                Err(e) => {
                    tracing::error!(dir = %dir.display(), "run not recovered: {e}");
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunHandle>> {
        // A panic while holding this lock cannot leave the map half-changed.
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A shutdown token for a new task (a run actor, a stream reader); none once
    /// the sidecar is shutting down.
    pub fn token(&self) -> Result<ShutdownToken, RunError> {
        self.token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(RunError::Closed)
    }

    fn spawn(&self, opened: run::OpenedRun) -> Result<RunHandle, RunError> {
        let info = &opened.state().info;
        let dir = Path::new(&info.dir)
            .parent()
            .unwrap_or(Path::new(&info.dir))
            .to_owned();
        let link = self.forwarders.ensure(&info.id, &dir, self.token()?);
        Ok(run::spawn(
            opened,
            self.config.clone(),
            self.token()?,
            link,
            Some(self.monitor.clone()),
        ))
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
    pub fn handle(&self, id: &str) -> Result<RunHandle, RunError> {
        if let Some(h) = self.active(id) {
            return Ok(h);
        }
        match store::find_run(&self.config.data_dir, id) {
            Some(dir) if crate::wal::is_locked(&dir.join(store::WAL)) => {
                Err(crate::wal::WalError::InUse(dir).into())
            }
            Some(dir) => {
                let state = store::read_run_file(&dir)
                    .map(|r| state::state_name(state::state_from_name(&r.state)))
                    .unwrap_or("unknown");
                Err(RunError::Ended {
                    id: id.to_owned(),
                    state,
                })
            }
            None => Err(RunError::NotFound(id.to_owned())),
        }
    }

    /// Starts or resumes a run. Fields were validated by the API layer.
    pub async fn init(&self, mut req: InitRequest) -> Result<InitResponse, RunError> {
        let _guard = self.init_lock.lock().await;
        let resume = match req.resume() {
            Resume::Unspecified => Resume::Never,
            r => r,
        };
        let data_dir = self.config.data_dir.clone();
        if req.id.is_empty() {
            req.id = loop {
                let id = random_id();
                if self.active(&id).is_none() && store::find_run(&data_dir, &id).is_none() {
                    break id;
                }
            };
        }
        let asked_project = req.project.clone();
        let check_project = |actual: &str| -> Result<(), RunError> {
            if !asked_project.is_empty() && asked_project != actual {
                return Err(RunError::ProjectMismatch {
                    id: req.id.clone(),
                    actual: actual.to_owned(),
                    asked: asked_project.clone(),
                });
            }
            Ok(())
        };
        if let Some(handle) = self.active(&req.id) {
            let info = handle.info();
            check_project(&info.project)?;
            if resume == Resume::Never {
                return Err(RunError::AlreadyExists {
                    id: info.id,
                    project: info.project,
                });
            }
            req.project = info.project;
            return handle
                .call(|reply| Command::Resume {
                    init: Box::new(req),
                    reply,
                })
                .await;
        }
        if let Some(dir) = store::find_run(&data_dir, &req.id) {
            let project = dir
                .parent()
                .and_then(Path::file_name)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            check_project(&project)?;
            if resume == Resume::Never {
                return Err(RunError::AlreadyExists {
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
            return handle
                .call(|reply| Command::Resume {
                    init: Box::new(req),
                    reply,
                })
                .await;
        }
        if resume == Resume::Must {
            return Err(RunError::NotFound(req.id));
        }
        if let Some(c) = req.client.as_ref().filter(|c| c.pid > 0) {
            let key = (c.hostname.clone(), c.pid);
            let open = self
                .lock()
                .values()
                .filter(|h| !h.is_closed() && h.client() == Some(&key))
                .filter(|h| !state::is_terminal(h.info().state()))
                .count();
            if open >= self.config.max_runs_per_client {
                return Err(RunError::TooManyRuns(self.config.max_runs_per_client));
            }
        }
        if req.client_timeout.is_none() {
            req.client_timeout = Some(self.config.client_timeout.as_secs_f64());
        }
        if req.project.is_empty() {
            req.project = DEFAULT_PROJECT.to_owned();
        }
        let dir = store::run_dir(&data_dir, &req.project, &req.id);
        if req.name.is_empty() {
            req.name = random_name(dir.parent().map(count_runs).unwrap_or(0) + 1);
        }
        let hb = self.config.heartbeat_interval.as_secs_f64();
        // Probing the hardware (NVML, statfs, /proc) blocks.
        let opened = tokio::task::spawn_blocking(move || {
            let metadata = metadata::collect(&req);
            run::create(&dir, req, &metadata, hb)
        })
        .await
        .map_err(blocking_err)??;
        let info = opened.state().info.clone();
        let handle = self.spawn(opened)?;
        self.lock().insert(info.id.clone(), handle);
        tracing::info!(run = %info.id, project = %info.project, name = %info.name, "run started");
        Ok(InitResponse {
            run: Some(info),
            resumed: false,
            starting_step: 0,
            last_seq: 0,
        })
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
    /// sidecar's parent is gone).
    pub async fn end_open(&self, state: crate::proto::v1::RunState) {
        for id in self.open_runs() {
            if let Some(h) = self.active(&id) {
                match h.call(|reply| Command::End { state, reply }).await {
                    Ok(info) => {
                        tracing::warn!(run = %id, "run {} at shutdown", state::state_name(info.state()))
                    }
                    Err(e) => tracing::error!(run = %id, "could not end the run: {e}"),
                }
            }
        }
    }

    /// A run's details: from its actor when open, else replayed from its log.
    pub async fn get(&self, id: &str) -> Result<GetRunResponse, RunError> {
        if let Some(h) = self.active(id) {
            if let Ok(r) = h.call(|reply| Command::Get { reply }).await {
                return Ok(r);
            }
        }
        let dir = self.dir_of(id)?;
        let live = self.forwarders.status(id);
        let backend = self.forwarders.backend_name();
        tokio::task::spawn_blocking(move || {
            let (mut state, _) = run::replay(&dir, &mut NoSink)?;
            let backends = match live {
                Some(s) => vec![s.to_proto()],
                None if backend != "local" => vec![forward::status_from_disk(&dir, backend)],
                None => Vec::new(),
            };
            Ok(GetRunResponse {
                backends,
                summary: state.summary(),
                metrics: state.metrics.all().iter().map(|d| d.to_proto()).collect(),
                config: std::mem::take(&mut state.config),
                files: store::list_files(&dir),
                run: Some(state.info),
            })
        })
        .await
        .map_err(blocking_err)?
    }

    fn dir_of(&self, id: &str) -> Result<PathBuf, RunError> {
        store::find_run(&self.config.data_dir, id).ok_or_else(|| RunError::NotFound(id.to_owned()))
    }

    /// Every run in the store (of one project, if given), newest first.
    pub async fn list(&self, project: &str) -> Result<Vec<RunInfo>, RunError> {
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
        out: mpsc::Sender<Result<Vec<HistoryRow>, RunError>>,
    ) -> Result<(), RunError> {
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
                    let _ = out.blocking_send(Err(e));
                }
            }
        });
        Ok(())
    }
}

struct NoSink;

impl Sink for NoSink {
    fn history(&mut self, _row: &CommittedRow<'_>) {}
}

struct ScanSink {
    req: ScanHistoryRequest,
    chunk: Vec<HistoryRow>,
    out: mpsc::Sender<Result<Vec<HistoryRow>, RunError>>,
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
        if self.chunk.len() >= SCAN_CHUNK
            && self
                .out
                .blocking_send(Ok(std::mem::take(&mut self.chunk)))
                .is_err()
        {
            self.gone = true;
        }
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

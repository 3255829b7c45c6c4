//! The per-run actor. Each open run is one task that owns its state, its
//! transaction log and its store writer; gRPC handlers send it [`Command`]s that
//! carry their reply channel. A record is appended to the log before it is applied
//! and acknowledged.

pub mod files;
pub mod metrics;
pub mod state;
pub mod summary;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};

use self::files::{FilesError, Fingerprint};
use self::metrics::MetricError;
use self::state::{Outcome, RunState, Sink};
use crate::backend::forward::ForwardLink;
use crate::config::{FsyncPolicy, ServeConfig};
use crate::liveness::{self, Process};
use crate::monitor::{Monitor, Sample, Watch, WatchGuard};
use crate::proto::v1::{
    AlertRequest, AlertResponse, DefineMetricRequest, DroppedRow, FinishResponse, GetRunResponse,
    HeartbeatResponse, InitRequest, InitResponse, LogAck, LogBatch, MetricDefinition, RunInfo,
    RunState as State, SaveFilesRequest, UpdateConfigRequest, UpdateSummaryRequest, Value,
};
use crate::proto::wal::{
    record::Kind, Record, SavedFile, SavedFiles, StateChange, StopRequest, SystemSample,
};
use crate::shutdown::ShutdownToken;
use crate::store::{self, StoreError, StoreWriter};
use crate::wal::{WalError, WalLock, WalReader, WalWriter};

/// Commands queued per run before senders wait: a burst of batches from several
/// streams fits, and a client that outpaces the disk is slowed down, not dropped.
const COMMAND_BUFFER: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
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
    #[error("run {id:?} has ended ({state}); Init it with resume=\"allow\" to log to it again")]
    Ended { id: String, state: &'static str },
    #[error("the sidecar is shutting down; reconnect to it (or a new one) and resume the run")]
    Closed,
    #[error("this client process already has {0} open runs (the sidecar's --max-runs-per-client); finish some first")]
    TooManyRuns(usize),
    #[error("not applied: batch {seq} of this stream failed; open a new stream and resend from batch {seq}")]
    StreamBroken { seq: u64 },
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error(transparent)]
    Metric(#[from] MetricError),
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Reply<T> = oneshot::Sender<Result<T, RunError>>;

/// Where a log acknowledgement goes: a unary call's one reply, or a stream's
/// ordered acknowledgements.
pub enum LogReply {
    Unary(Reply<LogAck>),
    /// A stream's ack channel, and the seq of the stream's first failed batch (0:
    /// none), shared by all the runs the stream feeds.
    Stream(mpsc::Sender<Result<LogAck, RunError>>, Arc<AtomicU64>),
}

pub enum Command {
    Log {
        batch: LogBatch,
        reply: LogReply,
    },
    DefineMetric {
        req: DefineMetricRequest,
        reply: Reply<MetricDefinition>,
    },
    UpdateConfig {
        req: UpdateConfigRequest,
        reply: Reply<BTreeMap<String, Value>>,
    },
    UpdateSummary {
        req: UpdateSummaryRequest,
        reply: Reply<BTreeMap<String, Value>>,
    },
    Alert {
        req: AlertRequest,
        reply: Reply<AlertResponse>,
    },
    SaveFiles {
        req: SaveFilesRequest,
        reply: Reply<Vec<String>>,
    },
    Heartbeat {
        reply: Reply<HeartbeatResponse>,
    },
    MarkPreempting {
        reply: Reply<RunInfo>,
    },
    Finish {
        exit_code: i32,
        reply: Reply<FinishResponse>,
    },
    Get {
        reply: Reply<GetRunResponse>,
    },
    Resume {
        init: Box<InitRequest>,
        reply: Reply<InitResponse>,
    },
    /// An operator asks the run to stop (the client learns it from Heartbeat).
    Stop {
        reply: Reply<RunInfo>,
    },
    /// Ends an open run without its client: crashed (or preempted, if it was
    /// preempting) when the client is gone, killed at shutdown.
    End {
        state: State,
        reply: Reply<RunInfo>,
    },
}

/// A handle on an open run's actor.
#[derive(Clone)]
pub struct RunHandle {
    tx: mpsc::Sender<Command>,
    status: watch::Receiver<RunInfo>,
    /// The client process (host, pid) that opened the run, for the per-client cap.
    client: Option<(String, i64)>,
}

impl RunHandle {
    /// Sends a command and waits for its reply.
    pub async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, RunError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| RunError::Closed)?;
        rx.await.map_err(|_| RunError::Closed)?
    }

    /// Queues a command whose reply goes elsewhere (a stream's ack channel).
    pub async fn send(&self, cmd: Command) -> Result<(), RunError> {
        self.tx.send(cmd).await.map_err(|_| RunError::Closed)
    }

    /// The run as last published (at most one flush interval old).
    pub fn info(&self) -> RunInfo {
        self.status.borrow().clone()
    }

    /// The client process (host, pid) that opened the run.
    pub fn client(&self) -> Option<&(String, i64)> {
        self.client.as_ref()
    }

    /// Whether the actor has stopped (the run ended or the sidecar is stopping).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A run loaded into memory, ready to become an actor.
pub struct OpenedRun {
    state: RunState,
    wal: WalWriter,
    store: StoreWriter,
}

impl OpenedRun {
    pub fn state(&self) -> &RunState {
        &self.state
    }
}

/// Creates a new run directory with its first record. Blocking.
pub fn create(
    dir: &Path,
    init: InitRequest,
    metadata: &str,
    heartbeat_interval: f64,
) -> Result<OpenedRun, RunError> {
    std::fs::create_dir_all(dir).map_err(store::io_err(dir))?;
    let mut wal = WalWriter::create(&dir.join(store::WAL))?;
    let mut store = StoreWriter::open(dir, true)?;
    let mut state = RunState::default();
    state.info.dir = dir.join(store::FILES_DIR).display().to_string();
    let record = Record {
        time: now(),
        kind: Some(Kind::Start(init)),
    };
    wal.append(&record)?;
    state.apply(&record, &mut store);
    store.write_metadata(metadata)?;
    store.write_config(&state.config)?;
    store.write_run(&state, heartbeat_interval, false)?;
    Ok(OpenedRun { state, wal, store })
}

/// Replays a run's log into its state, sending committed rows to `sink`; returns
/// the state and the length of the log's valid prefix. Blocking.
pub fn replay(dir: &Path, sink: &mut impl Sink) -> Result<(RunState, u64), RunError> {
    let path = dir.join(store::WAL);
    let mut reader = WalReader::open(&path)?;
    let mut state = RunState::default();
    state.info.dir = dir.join(store::FILES_DIR).display().to_string();
    while let Some(record) = reader.next_record()? {
        state.apply(&record, sink);
    }
    if reader.torn_bytes() > 0 {
        tracing::warn!(
            log = %path.display(),
            "transaction log ends in {} bytes of a torn or corrupt record; they are cut off",
            reader.torn_bytes()
        );
    }
    Ok((state, reader.valid_len()))
}

/// Opens an existing run: replays its log, rewrites its store files from it and
/// cuts a torn tail. Blocking.
pub fn open(dir: &Path, heartbeat_interval: f64) -> Result<OpenedRun, RunError> {
    // Lock first: another sidecar sharing the data dir may have the run open.
    let lock = WalLock::acquire(&dir.join(store::WAL))?;
    let mut store = StoreWriter::open(dir, true)?;
    let (mut state, valid_len) = replay(dir, &mut store)?;
    let wal = WalWriter::open_truncated(lock, valid_len)?;
    store.flush();
    if let Some(e) = store.take_error() {
        return Err(e.into());
    }
    store.write_config(&state.config)?;
    store.write_summary(&state.summary(), false)?;
    store.write_run(&state, heartbeat_interval, false)?;
    Ok(OpenedRun { state, wal, store })
}

/// A file saved with policy `live`: copied again when it changes.
struct LiveFile {
    source: PathBuf,
    /// As it was when last copied (None: not copied since the sidecar started).
    copied: Option<Fingerprint>,
    /// As it was at the previous check: a copy waits until it stops changing.
    seen: Option<Fingerprint>,
}

/// How a run knows its client is there.
#[derive(Debug, Clone, Copy)]
enum ClientWatch {
    /// On this host: its pid is watched (and its timeout applies).
    Pid(Process),
    /// On this host and already gone (a run recovered after its client died).
    Gone,
    /// Elsewhere, or unknown: only the timeout applies.
    Remote,
}

impl ClientWatch {
    fn of(state: &RunState) -> Self {
        match liveness::local_client(state.client.as_ref()) {
            Some(p) => ClientWatch::Pid(p),
            None if liveness::client_gone(state.client.as_ref()) => ClientWatch::Gone,
            None => ClientWatch::Remote,
        }
    }

    fn gone(&self) -> bool {
        match self {
            ClientWatch::Pid(p) => !p.alive(),
            ClientWatch::Gone => true,
            ClientWatch::Remote => false,
        }
    }
}

/// Spawns the actor of an opened run.
pub fn spawn(
    opened: OpenedRun,
    config: Arc<ServeConfig>,
    token: ShutdownToken,
    forward: Option<ForwardLink>,
    monitor: Option<Monitor>,
) -> RunHandle {
    let (tx, rx) = mpsc::channel(COMMAND_BUFFER);
    let (status_tx, status) = watch::channel(opened.state.info.clone());
    let live = opened
        .state
        .saved
        .values()
        .filter(|f| f.policy == files::POLICY_LIVE)
        .map(|f| {
            (
                f.name.clone(),
                LiveFile {
                    source: PathBuf::from(&f.source),
                    copied: None,
                    seen: None,
                },
            )
        })
        .collect();
    let sync_file = opened.wal.try_clone_file();
    let watch = ClientWatch::of(&opened.state);
    let client = opened
        .state
        .client
        .as_ref()
        .filter(|c| c.pid > 0)
        .map(|c| (c.hostname.clone(), c.pid));
    let mut actor = Actor {
        forward,
        monitor,
        sampling: None,
        watch,
        last_contact: Instant::now(),
        files_dir: opened.store.dir().join(store::FILES_DIR),
        state: opened.state,
        wal: opened.wal,
        store: opened.store,
        sync_file,
        config,
        status: status_tx,
        summary_dirty: false,
        written: None,
        live,
    };
    actor.start_sampling();
    tokio::spawn(actor.run(rx, token));
    RunHandle { tx, status, client }
}

struct Actor {
    state: RunState,
    wal: WalWriter,
    store: StoreWriter,
    /// A second handle on the log, fsynced on a blocking thread.
    sync_file: Option<Arc<File>>,
    files_dir: PathBuf,
    config: Arc<ServeConfig>,
    status: watch::Sender<RunInfo>,
    summary_dirty: bool,
    /// run.json as last written, to skip unchanged rewrites.
    written: Option<RunInfo>,
    live: HashMap<String, LiveFile>,
    watch: ClientWatch,
    /// The client's last sign of life.
    last_contact: Instant,
    /// The forwarder to the remote backend, if one is configured.
    forward: Option<ForwardLink>,
    /// The sidecar's system-metrics sampler.
    monitor: Option<Monitor>,
    /// This run's samples while it is open; dropping the guard stops them.
    sampling: Option<(WatchGuard, mpsc::Receiver<Sample>)>,
}

/// Samples queued per run before the sampler drops one (it never waits).
const SAMPLE_BUFFER: usize = 16;

/// The next sample, or never without sampling.
async fn next_sample(
    sampling: &mut Option<(WatchGuard, mpsc::Receiver<Sample>)>,
) -> Option<Sample> {
    match sampling {
        Some((_, rx)) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, mut token: ShutdownToken) {
        let mut tick = tokio::time::interval(self.config.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut check = tokio::time::interval(liveness::PID_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Whether the run ended here: ending it already flushed and synced it.
        let ended = loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => {
                        if self.handle(cmd).await {
                            break true;
                        }
                    }
                    None => break false,
                },
                _ = tick.tick() => self.tick().await,
                _ = check.tick() => {
                    if self.check_client().await {
                        break true;
                    }
                }
                sample = next_sample(&mut self.sampling) => match sample {
                    Some(sample) => self.record_sample(sample).await,
                    None => self.sampling = None,
                },
                _ = token.stopping() => break false,
            }
        };
        rx.close();
        if !ended {
            self.flush(true).await;
        }
        drop(token);
    }

    /// Handles one command; true when the actor should stop (the run ended).
    async fn handle(&mut self, cmd: Command) -> bool {
        if !matches!(
            cmd,
            Command::Get { .. } | Command::Stop { .. } | Command::End { .. }
        ) {
            self.last_contact = Instant::now();
            if self.state.is_open() {
                self.state.info.last_heartbeat = now();
            }
        }
        match cmd {
            Command::Log { batch, reply } => match reply {
                LogReply::Unary(tx) => {
                    let _ = tx.send(self.log(batch, false).await);
                }
                LogReply::Stream(tx, failed) => {
                    // After a batch of a stream failed, the stream's later batches are
                    // refused too: the client resends from the failed one, and the seq
                    // high-water mark must not have moved past it.
                    let earlier = failed.load(Ordering::Acquire);
                    let result = if earlier != 0 {
                        Err(RunError::StreamBroken { seq: earlier })
                    } else {
                        let seq = batch.seq.max(1);
                        let r = self.log(batch, true).await;
                        if r.is_err() {
                            failed.store(seq, Ordering::Release);
                        }
                        r
                    };
                    // A stream whose client stopped reading holds up this run:
                    // that is the backpressure a bounded ack channel gives.
                    let _ = tx.send(result).await;
                }
            },
            Command::DefineMetric { req, reply } => {
                let r = self.define_metric(req).await;
                let _ = reply.send(r);
            }
            Command::UpdateConfig { req, reply } => {
                let r = self.update_config(req).await;
                let _ = reply.send(r);
            }
            Command::UpdateSummary { req, reply } => {
                let r = self.update_summary(req).await;
                let _ = reply.send(r);
            }
            Command::Alert { req, reply } => {
                let r = self.alert(req).await;
                let _ = reply.send(r);
            }
            Command::SaveFiles { req, reply } => {
                let r = self.save_files(req).await;
                let _ = reply.send(r);
            }
            Command::Heartbeat { reply } => {
                let backend_stop = self
                    .forward
                    .as_ref()
                    .is_some_and(|f| f.status().stop_requested);
                let _ = reply.send(Ok(HeartbeatResponse {
                    state: self.state.info.state,
                    should_stop: self.state.info.stop_requested || backend_stop,
                }));
            }
            Command::MarkPreempting { reply } => {
                let r = self.mark_preempting().await;
                let _ = reply.send(r);
            }
            Command::Finish { exit_code, reply } => {
                let r = self.finish(exit_code).await;
                let ended = r.is_ok();
                let _ = reply.send(r);
                return ended;
            }
            Command::Get { reply } => {
                let _ = reply.send(Ok(self.get()));
            }
            Command::Resume { init, reply } => {
                let r = self.resume(*init).await;
                let _ = reply.send(r);
            }
            Command::Stop { reply } => {
                let r = self.stop().await;
                let _ = reply.send(r);
            }
            Command::End { state, reply } => {
                let r = self.end(state).await;
                let ended = r.is_ok();
                let _ = reply.send(r);
                return ended;
            }
        }
        false
    }

    /// Starts (or restarts, for a new client) sampling system metrics for the run,
    /// unless Init turned them off.
    fn start_sampling(&mut self) {
        self.sampling = None;
        let Some(monitor) = &self.monitor else { return };
        let settings = self.state.system_metrics.clone().unwrap_or_default();
        if settings.disabled || !self.state.is_open() {
            return;
        }
        let interval = if settings.interval > 0.0 {
            std::time::Duration::from_secs_f64(settings.interval)
        } else {
            crate::monitor::DEFAULT_INTERVAL
        };
        let pid = match self.watch {
            ClientWatch::Pid(p) => Some(p.pid),
            ClientWatch::Gone | ClientWatch::Remote => None,
        };
        let (tx, rx) = mpsc::channel(SAMPLE_BUFFER);
        let watch = Watch {
            pid,
            interval,
            per_cpu: settings.per_cpu,
            disk_paths: settings.disk_paths.iter().map(PathBuf::from).collect(),
        };
        self.sampling = Some((monitor.watch(watch, tx), rx));
    }

    /// Logs a system-metrics sample (through the log, like every record).
    async fn record_sample(&mut self, sample: Sample) {
        if !self.state.is_open() || sample.metrics.is_empty() {
            return;
        }
        let (keys, values) = sample.metrics.into_iter().unzip();
        let record = Record {
            time: sample.time,
            kind: Some(Kind::System(SystemSample { keys, values })),
        };
        if let Err(e) = self.append(&record).await {
            tracing::error!(run = %self.state.info.id, "system-metrics sample not recorded: {e}");
            return;
        }
        self.state.apply(&record, &mut self.store);
    }

    /// Checks that the client is still there; ends the run (true) when it is not.
    /// While it is, records a heartbeat at least every heartbeat interval.
    async fn check_client(&mut self) -> bool {
        if !self.state.is_open() {
            return false;
        }
        let timeout = std::time::Duration::from_secs_f64(self.state.info.client_timeout.max(0.001));
        let why = if self.watch.gone() {
            "its client process exited without Finish"
        } else if self.last_contact.elapsed() > timeout {
            "no sign of life from its client within the client timeout"
        } else {
            let t = now();
            if t - self.state.info.last_heartbeat >= self.config.heartbeat_interval.as_secs_f64() {
                self.state.info.last_heartbeat = t;
            }
            return false;
        };
        let state = if self.state.state() == State::Preempting {
            State::Preempted
        } else {
            State::Crashed
        };
        tracing::warn!(run = %self.state.info.id, "run {}: {why}", state::state_name(state));
        match self.end(state).await {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(run = %self.state.info.id, "could not end the run: {e}");
                false
            }
        }
    }

    /// Ends an open run in `state` without its client: the pending row is committed,
    /// live and end files are copied, the state change is logged and synced.
    async fn end(&mut self, state: State) -> Result<RunInfo, RunError> {
        self.close(state, None).await?;
        Ok(self.state.info.clone())
    }

    /// Ends an open run (finish, or without its client): sampling stops, the live
    /// and end files are copied, the state change (which commits the pending row)
    /// is logged, and everything is flushed and synced. Nothing for an ended run.
    async fn close(&mut self, state: State, exit_code: Option<i32>) -> Result<(), RunError> {
        self.sampling = None;
        if self.state.is_open() {
            self.copy_final_files().await;
            self.commit(Kind::State(StateChange {
                state: state as i32,
                exit_code,
            }))
            .await?;
            self.flush(true).await;
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<RunInfo, RunError> {
        self.ensure_open()?;
        if !self.state.info.stop_requested {
            self.commit(Kind::Stop(StopRequest {})).await?;
            self.publish();
        }
        Ok(self.state.info.clone())
    }

    fn ensure_open(&self) -> Result<(), RunError> {
        if self.state.is_open() {
            Ok(())
        } else {
            Err(RunError::Ended {
                id: self.state.info.id.clone(),
                state: state::state_name(self.state.state()),
            })
        }
    }

    /// Appends a record (syncing it first with `--fsync always`) and applies it.
    async fn commit(&mut self, kind: Kind) -> Result<Outcome, RunError> {
        let record = Record {
            time: now(),
            kind: Some(kind),
        };
        self.append(&record).await?;
        Ok(self.state.apply(&record, &mut self.store))
    }

    /// Appends a record to the log (synced first with `--fsync always`) and tells
    /// the forwarder.
    async fn append(&mut self, record: &Record) -> Result<(), RunError> {
        self.wal.append(record)?;
        if self.config.fsync == FsyncPolicy::Always {
            self.sync_wal().await?;
        }
        if let Some(f) = &self.forward {
            f.wake();
        }
        Ok(())
    }

    async fn sync_wal(&mut self) -> Result<(), RunError> {
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

    /// Logs a batch. Rows whose media cannot be read are dropped and reported
    /// (`per_row`, a stream's batch) or fail the call (a unary Log's one row).
    async fn log(&mut self, mut batch: LogBatch, per_row: bool) -> Result<LogAck, RunError> {
        self.ensure_open()?;
        let seq = batch.seq;
        if self.state.is_duplicate(seq) {
            return Ok(LogAck {
                run_id: self.state.info.id.clone(),
                seq,
                duplicate: true,
                step: self.state.info.step,
                dropped: Vec::new(),
            });
        }
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
            step: self.state.info.step,
            dropped,
        })
    }

    /// Copies the batch's media into files/media/; returns the batch and the rows
    /// (by index) whose media could not be copied.
    async fn copy_media(
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
        .map_err(|_| RunError::Closed)
    }

    async fn define_metric(
        &mut self,
        req: DefineMetricRequest,
    ) -> Result<MetricDefinition, RunError> {
        self.ensure_open()?;
        metrics::check(&req)?;
        match self.commit(Kind::DefineMetric(req)).await? {
            Outcome::Metric(def) => {
                self.summary_dirty = true;
                Ok(def)
            }
            _ => Err(RunError::Closed),
        }
    }

    async fn update_config(
        &mut self,
        req: UpdateConfigRequest,
    ) -> Result<BTreeMap<String, Value>, RunError> {
        self.ensure_open()?;
        self.commit(Kind::Config(req)).await?;
        self.store.write_config(&self.state.config)?;
        Ok(self.state.config.clone())
    }

    async fn update_summary(
        &mut self,
        req: UpdateSummaryRequest,
    ) -> Result<BTreeMap<String, Value>, RunError> {
        self.ensure_open()?;
        self.commit(Kind::Summary(req)).await?;
        let summary = self.state.summary();
        self.store.write_summary(&summary, false)?;
        self.summary_dirty = false;
        Ok(summary)
    }

    async fn alert(&mut self, req: AlertRequest) -> Result<AlertResponse, RunError> {
        self.ensure_open()?;
        match self.commit(Kind::Alert(req)).await? {
            Outcome::Alert(reply) => Ok(reply),
            _ => Err(RunError::Closed),
        }
    }

    async fn save_files(&mut self, req: SaveFilesRequest) -> Result<Vec<String>, RunError> {
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
                let print = if f.policy == files::POLICY_END {
                    None
                } else {
                    files::copy_into(Path::new(&f.source), &files_dir.join(&f.name))?
                };
                out.push((f, print));
            }
            Ok::<_, FilesError>(out)
        })
        .await
        .map_err(|_| RunError::Closed)??;
        let names = saved.iter().map(|(f, _)| f.name.clone()).collect();
        for (f, print) in &saved {
            if f.policy == files::POLICY_LIVE {
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

    async fn mark_preempting(&mut self) -> Result<RunInfo, RunError> {
        self.ensure_open()?;
        self.commit(Kind::State(StateChange {
            state: State::Preempting as i32,
            exit_code: None,
        }))
        .await?;
        self.publish();
        Ok(self.state.info.clone())
    }

    async fn finish(&mut self, exit_code: i32) -> Result<FinishResponse, RunError> {
        let state = if exit_code == 0 {
            State::Finished
        } else {
            State::Failed
        };
        self.close(state, Some(exit_code)).await?;
        let backends = match self.forward.as_mut() {
            Some(f) => vec![f
                .wait_delivered(self.wal.len(), self.config.finish_timeout)
                .await
                .to_proto()],
            None => Vec::new(),
        };
        Ok(FinishResponse {
            run: Some(self.state.info.clone()),
            summary: self.state.summary(),
            backends,
        })
    }

    async fn resume(&mut self, init: InitRequest) -> Result<InitResponse, RunError> {
        self.commit(Kind::Resume(init)).await?;
        self.watch = ClientWatch::of(&self.state);
        self.last_contact = Instant::now();
        self.start_sampling();
        self.publish();
        self.store.write_config(&self.state.config)?;
        Ok(InitResponse {
            run: Some(self.state.info.clone()),
            resumed: true,
            starting_step: self.state.info.step,
            last_seq: self.state.last_seq,
        })
    }

    fn get(&mut self) -> GetRunResponse {
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
            files: store::list_files(self.store.dir()),
            backends: self.forward.iter().map(|f| f.status().to_proto()).collect(),
        }
    }

    /// Copies `live` and `end` files one last time (at finish).
    async fn copy_final_files(&mut self) {
        let files: Vec<SavedFile> = self
            .state
            .saved
            .values()
            .filter(|f| f.policy != files::POLICY_NOW)
            .cloned()
            .collect();
        if files.is_empty() {
            return;
        }
        let files_dir = self.files_dir.clone();
        let id = self.state.info.id.clone();
        let policy = self.config.files.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for f in files {
                if let Err(e) =
                    files::copy_admitted(&policy, Path::new(&f.source), &files_dir.join(&f.name))
                {
                    tracing::warn!(run = %id, "saved file {} not copied at finish: {e}", f.name);
                }
            }
        })
        .await;
        self.live.clear();
    }

    /// Copies `live` files that changed and have since stopped changing.
    async fn copy_live_files(&mut self) {
        if self.live.is_empty() {
            return;
        }
        let checks: Vec<(String, PathBuf, Option<Fingerprint>, Option<Fingerprint>)> = self
            .live
            .iter()
            .map(|(n, l)| (n.clone(), l.source.clone(), l.copied, l.seen))
            .collect();
        let files_dir = self.files_dir.clone();
        let id = self.state.info.id.clone();
        let policy = self.config.files.clone();
        let Ok(results) = tokio::task::spawn_blocking(move || {
            checks
                .into_iter()
                .map(|(name, source, copied, seen)| {
                    let now = files::fingerprint(&source);
                    let mut copied = copied;
                    if now.is_some() && now != copied && now == seen {
                        match files::copy_admitted(&policy, &source, &files_dir.join(&name)) {
                            Ok(print) => copied = print,
                            Err(e) => tracing::warn!(run = %id, "live file {name} not copied: {e}"),
                        }
                    }
                    (name, copied, now)
                })
                .collect::<Vec<_>>()
        })
        .await
        else {
            return;
        };
        for (name, copied, seen) in results {
            if let Some(l) = self.live.get_mut(&name) {
                l.copied = copied;
                l.seen = seen;
            }
        }
    }

    async fn tick(&mut self) {
        self.flush(false).await;
        self.copy_live_files().await;
    }

    /// Writes what is buffered or stale to the store; `durable` also syncs the log
    /// and the store files (finish, shutdown).
    async fn flush(&mut self, durable: bool) {
        self.store.flush();
        if durable {
            self.store.sync();
        }
        let id = self.state.info.id.clone();
        if self.summary_dirty || durable {
            if let Err(e) = self.store.write_summary(&self.state.summary(), durable) {
                tracing::error!(run = %id, "{e}");
            }
            self.summary_dirty = false;
        }
        if durable || self.written.as_ref() != Some(&self.state.info) {
            match self.store.write_run(
                &self.state,
                self.config.heartbeat_interval.as_secs_f64(),
                durable,
            ) {
                Ok(()) => self.written = Some(self.state.info.clone()),
                Err(e) => tracing::error!(run = %id, "{e}"),
            }
        }
        if (durable && self.config.fsync != FsyncPolicy::Always
            || self.config.fsync == FsyncPolicy::Batch)
            && self.wal.unsynced()
        {
            if let Err(e) = self.sync_wal().await {
                tracing::error!(run = %id, "{e}");
            }
        }
        if let Some(e) = self.store.take_error() {
            tracing::error!(run = %id, "{e}; the transaction log still holds the data, and the file is rebuilt from it when the run is next opened");
        }
        self.publish();
    }

    fn publish(&self) {
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

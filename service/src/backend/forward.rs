//! The forwarder: one task per run and remote backend. It replays the run's
//! transaction log into [`Event`]s (the same `RunState::apply` the run uses, so the
//! backend sees exactly the rows the local store has), delivers them in batches
//! with retries, and persists a cursor (`forward/<backend>.json` in the run
//! directory: log offset, records delivered, the backend's own ids) after each
//! delivery. A restart replays the log up to the cursor without sending and goes
//! on from there, so nothing is sent twice and nothing is skipped. A backend that
//! needs several requests for one batch saves its own progress in between
//! ([`Checkpoint`]); one that wants fewer, larger requests gets a pace
//! (`Backend::min_interval`) that Finish and state changes skip. The backend's
//! heartbeat runs every heartbeat interval while the run is open, idle or busy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::retry::{BackendError, Backoff};
use super::{Backend, BackendSettings, Batch, Event};
use crate::proto::v1::BackendStatus;
use crate::proto::wal::{record::Kind, Record};
use crate::run::state::{AlertEvent, CommittedRow, RunState, Sink, SystemEvent};
use crate::shutdown::ShutdownToken;
use crate::store;
use crate::wal::{WalError, WalReader};

/// Records read per delivery at most.
const MAX_RECORDS: usize = 2000;
/// How long a woken forwarder waits for more records before it delivers.
const LINGER: Duration = Duration::from_millis(200);
/// A forwarder with nothing to do still looks at the log this often.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// How far delivery has come.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ForwardStatus {
    pub backend: &'static str,
    pub delivered_offset: u64,
    pub delivered_records: u64,
    /// Records in the log, as far as the forwarder knows.
    pub total_records: u64,
    pub log_len: u64,
    pub last_error: String,
    pub last_success: f64,
    /// The backend asked the run to stop.
    pub stop_requested: bool,
}

impl ForwardStatus {
    pub fn caught_up(&self) -> bool {
        self.delivered_offset >= self.log_len
    }

    pub fn to_proto(&self) -> BackendStatus {
        BackendStatus {
            backend: self.backend.to_owned(),
            pending_records: self.total_records.saturating_sub(self.delivered_records),
            pending_bytes: self.log_len.saturating_sub(self.delivered_offset),
            last_error: self.last_error.clone(),
            last_success: self.last_success,
        }
    }
}

/// A run actor's handle on its forwarder.
#[derive(Clone)]
pub struct ForwardLink {
    wake: Arc<Notify>,
    /// Someone waits for delivery (Finish): the backend's min_interval no longer
    /// applies.
    hurry: Arc<Notify>,
    status: watch::Receiver<ForwardStatus>,
}

impl ForwardLink {
    /// Tells the forwarder the log grew.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn status(&self) -> ForwardStatus {
        self.status.borrow().clone()
    }

    /// Waits until everything up to `log_len` is delivered, or `timeout`.
    pub async fn wait_delivered(&mut self, log_len: u64, timeout: Duration) -> ForwardStatus {
        self.wake();
        self.hurry.notify_one();
        let _ = tokio::time::timeout(
            timeout,
            self.status.wait_for(|s| s.delivered_offset >= log_len),
        )
        .await;
        self.status()
    }
}

/// The persisted cursor.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    offset: u64,
    records: u64,
    #[serde(default)]
    state: serde_json::Value,
}

fn cursor_path(dir: &Path, backend: &str) -> PathBuf {
    dir.join("forward").join(format!("{backend}.json"))
}

/// Writes a cursor atomically; an error is logged (delivery would repeat after a
/// restart, which backends tolerate).
fn write_cursor(run: &str, path: &Path, cursor: &Cursor) {
    let result = std::fs::create_dir_all(path.parent().unwrap_or(path))
        .map_err(store::io_err(path))
        .and_then(|_| {
            let text = serde_json::to_vec(cursor).unwrap_or_default();
            store::write_atomic(path, &text, false)
        });
    if let Err(e) = result {
        tracing::error!(run = %run, "cursor not saved (delivery would repeat after a restart): {e}");
    }
}

/// Saves a backend's state while a batch is being delivered: the cursor stays
/// before the batch (it is delivered again after a crash), with the state the
/// backend passes, which tells it what of the batch the server already has.
pub struct Checkpoint {
    run: String,
    path: PathBuf,
    offset: u64,
    records: u64,
}

impl Checkpoint {
    pub fn save(&self, state: serde_json::Value) {
        let cursor = Cursor {
            offset: self.offset,
            records: self.records,
            state,
        };
        write_cursor(&self.run, &self.path, &cursor);
    }
}

fn read_cursor(dir: &Path, backend: &str) -> Cursor {
    std::fs::read_to_string(cursor_path(dir, backend))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Bytes of `dir`'s log that `backend` has not acknowledged (for start-up and
/// `runs show`).
pub fn pending_bytes(dir: &Path, backend: &str) -> u64 {
    let len = std::fs::metadata(dir.join(store::WAL))
        .map(|m| m.len())
        .unwrap_or(0);
    len.saturating_sub(read_cursor(dir, backend).offset)
}

/// Whether delivery of `dir` to `backend` was ever started (a forwarder writes its
/// cursor when it starts). A sidecar resumes only those at start-up: switching a
/// data dir to a remote backend does not upload its old runs (`runcore sync` does).
pub fn started(dir: &Path, backend: &str) -> bool {
    cursor_path(dir, backend).is_file()
}

/// A run's delivery status read from its log and cursor (no forwarder running).
pub fn status_from_disk(dir: &Path, backend: &'static str) -> BackendStatus {
    let cursor = read_cursor(dir, backend);
    let wal = dir.join(store::WAL);
    let mut pending = 0;
    if let Ok(mut r) = WalReader::open_at(&wal, cursor.offset) {
        while let Ok(Some(_)) = r.next_record() {
            pending += 1;
        }
    }
    ForwardStatus {
        backend,
        delivered_offset: cursor.offset,
        delivered_records: cursor.records,
        total_records: cursor.records + pending,
        log_len: std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0),
        ..Default::default()
    }
    .to_proto()
}

/// Turns applied records into events.
#[derive(Default)]
struct EventSink {
    events: Vec<Event>,
}

impl Sink for EventSink {
    fn history(&mut self, row: &CommittedRow<'_>) {
        self.events.push(Event::History {
            step: row.step,
            timestamp: row.timestamp,
            runtime: row.runtime,
            values: row
                .values
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        });
    }

    fn system(&mut self, e: &SystemEvent<'_>) {
        self.events.push(Event::System {
            timestamp: e.time,
            metrics: e
                .sample
                .keys
                .iter()
                .cloned()
                .zip(e.sample.values.iter().copied())
                .collect(),
        });
    }

    fn alert(&mut self, a: &AlertEvent<'_>) {
        self.events.push(Event::Alert {
            title: a.request.title.clone(),
            text: a.request.text.clone(),
            level: a.request.level.clone(),
            timestamp: a.time,
            sent: a.sent,
        });
    }
}

struct NoSink;

impl Sink for NoSink {
    fn history(&mut self, _row: &CommittedRow<'_>) {}
}

/// Reads up to `max` whole records after `offset`; returns them with the offset
/// after the last.
fn read_from(path: &Path, offset: u64, max: usize) -> Result<(Vec<Record>, u64), WalError> {
    let mut reader = WalReader::open_at(path, offset)?;
    let mut out = Vec::new();
    while out.len() < max {
        match reader.next_record()? {
            Some(r) => out.push(r),
            None => break,
        }
    }
    Ok((out, reader.valid_len()))
}

/// Every running forwarder, by run id.
pub struct Forwarders {
    settings: BackendSettings,
    heartbeat_interval: Duration,
    running: Mutex<HashMap<String, ForwardLink>>,
}

impl Forwarders {
    pub fn new(settings: BackendSettings, heartbeat_interval: Duration) -> Arc<Self> {
        Arc::new(Forwarders {
            settings,
            heartbeat_interval,
            running: Mutex::new(HashMap::new()),
        })
    }

    pub fn backend_name(&self) -> &'static str {
        self.settings.name()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ForwardLink>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The forwarder of run `id`, started if none runs; None without a remote
    /// backend.
    pub fn ensure(
        self: &Arc<Self>,
        id: &str,
        dir: &Path,
        token: ShutdownToken,
    ) -> Option<ForwardLink> {
        let backend = self.settings.make()?;
        let mut running = self.lock();
        if let Some(link) = running.get(id) {
            link.wake();
            return Some(link.clone());
        }
        let (status_tx, status) = watch::channel(ForwardStatus {
            backend: backend.name(),
            ..Default::default()
        });
        let link = ForwardLink {
            wake: Arc::new(Notify::new()),
            hurry: Arc::new(Notify::new()),
            status,
        };
        running.insert(id.to_owned(), link.clone());
        let forwarder = Forwarder {
            id: id.to_owned(),
            dir: dir.to_owned(),
            backend,
            wake: link.wake.clone(),
            hurry: link.hurry.clone(),
            status: status_tx,
            heartbeat_interval: self.heartbeat_interval,
            registry: Some(self.clone()),
        };
        tokio::spawn(forwarder.run(token));
        Some(link)
    }

    /// The status of run `id`'s forwarder, if one runs.
    pub fn status(&self, id: &str) -> Option<ForwardStatus> {
        self.lock().get(id).map(ForwardLink::status)
    }

    /// Ends run `id`'s forwarder if everything is delivered; false if the log grew
    /// meanwhile (the forwarder goes on).
    fn retire(&self, id: &str, dir: &Path, offset: u64) -> bool {
        let mut running = self.lock();
        let len = std::fs::metadata(dir.join(store::WAL))
            .map(|m| m.len())
            .unwrap_or(0);
        if len > offset {
            return false;
        }
        running.remove(id);
        true
    }
}

/// Delivers one run's log to one backend.
pub struct Forwarder {
    id: String,
    dir: PathBuf,
    backend: Box<dyn Backend>,
    wake: Arc<Notify>,
    hurry: Arc<Notify>,
    status: watch::Sender<ForwardStatus>,
    heartbeat_interval: Duration,
    /// Where to retire when done; None for `runcore sync`, which simply returns.
    registry: Option<Arc<Forwarders>>,
}

/// Why a forwarder stopped.
#[derive(Debug, PartialEq)]
pub enum Stopped {
    /// Everything in the log is delivered and the run has ended.
    Done,
    /// The sidecar is shutting down; the cursor holds what was delivered.
    Shutdown,
    /// The backend refused the credentials; nothing more is sent.
    Unauthorized(String),
    /// Reading the log failed.
    Failed(String),
    /// Another forwarder (another sidecar, or `runcore sync`) is delivering this run.
    Busy,
}

impl Forwarder {
    /// A forwarder for `runcore sync`: delivers what the log holds, then returns.
    pub fn for_sync(
        dir: &Path,
        backend: Box<dyn Backend>,
    ) -> (Self, watch::Receiver<ForwardStatus>) {
        let (status, rx) = watch::channel(ForwardStatus {
            backend: backend.name(),
            ..Default::default()
        });
        (
            Forwarder {
                id: dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                dir: dir.to_owned(),
                backend,
                wake: Arc::new(Notify::new()),
                hurry: Arc::new(Notify::new()),
                status,
                heartbeat_interval: Duration::from_secs(3600 * 24),
                registry: None,
            },
            rx,
        )
    }

    async fn run(self, token: ShutdownToken) {
        let id = self.id.clone();
        match self.forward(token).await {
            Stopped::Done | Stopped::Shutdown => {}
            Stopped::Busy => tracing::info!(run = %id, "another process is delivering this run"),
            Stopped::Unauthorized(e) => {
                tracing::error!(run = %id, "delivery stopped: the backend refused the credentials: {e}")
            }
            Stopped::Failed(e) => tracing::error!(run = %id, "delivery stopped: {e}"),
        }
    }

    fn save_cursor(&self, offset: u64, records: u64) {
        let cursor = Cursor {
            offset,
            records,
            state: self.backend.save(),
        };
        write_cursor(
            &self.id,
            &cursor_path(&self.dir, self.backend.name()),
            &cursor,
        );
    }

    /// Delivers until the run has ended and its log is delivered (or, without a
    /// registry, until the end of the log), or shutdown.
    pub async fn forward(mut self, mut token: ShutdownToken) -> Stopped {
        let wal = self.dir.join(store::WAL);
        // One forwarder per run and backend, across processes.
        let lock_path = self
            .dir
            .join("forward")
            .join(format!("{}.lock", self.backend.name()));
        let _lock = match std::fs::create_dir_all(self.dir.join("forward"))
            .and_then(|_| std::fs::File::create(&lock_path))
        {
            Ok(f) => match f.try_lock() {
                Ok(()) => f,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if let Some(reg) = &self.registry {
                        reg.lock().remove(&self.id);
                    }
                    return Stopped::Busy;
                }
                Err(std::fs::TryLockError::Error(e)) => return Stopped::Failed(e.to_string()),
            },
            Err(e) => return Stopped::Failed(format!("{}: {e}", lock_path.display())),
        };
        let cursor = read_cursor(&self.dir, self.backend.name());
        self.backend.restore(cursor.state.clone());
        // Rebuild the run as of the cursor, sending nothing; count the whole log.
        let prefix = {
            let wal = wal.clone();
            let dir = self.dir.clone();
            let upto = cursor.offset;
            tokio::task::spawn_blocking(move || -> Result<(RunState, u64, u64), WalError> {
                let mut reader = WalReader::open(&wal)?;
                let mut state = RunState::default();
                state.info.dir = dir.join(store::FILES_DIR).display().to_string();
                let mut total = 0;
                let mut reached = 0;
                while let Some(r) = reader.next_record()? {
                    total += 1;
                    if reader.valid_len() <= upto {
                        state.apply(&r, &mut NoSink);
                        reached = reader.valid_len();
                    }
                }
                Ok((state, total, reached))
            })
            .await
        };
        let (mut mirror, total, mut offset) = match prefix {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Stopped::Failed(e.to_string()),
            Err(e) => return Stopped::Failed(e.to_string()),
        };
        let mut delivered = cursor.records.min(total);
        if !started(&self.dir, self.backend.name()) {
            // Mark delivery as started, so a restart resumes it even before the
            // first batch is acknowledged.
            self.save_cursor(offset, delivered);
        }
        self.status.send_modify(|s| {
            s.delivered_offset = offset;
            s.delivered_records = delivered;
            s.total_records = total;
            s.log_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        });
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let mut next_beat = Instant::now() + self.heartbeat_interval;
        let min_interval = self.backend.min_interval();
        let mut last_delivery: Option<Instant> = None;
        // Set once someone waits for delivery (Finish): no more pacing.
        let mut hurried = false;
        loop {
            if token.is_stopping() {
                return Stopped::Shutdown;
            }
            let read = {
                let wal = wal.clone();
                tokio::task::spawn_blocking(move || read_from(&wal, offset, MAX_RECORDS)).await
            };
            let (records, end) = match read {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => return Stopped::Failed(e.to_string()),
                Err(e) => return Stopped::Failed(e.to_string()),
            };
            let log_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(end);
            self.status.send_modify(|s| {
                s.log_len = log_len;
                s.total_records = s.total_records.max(delivered + records.len() as u64);
            });
            if records.is_empty() {
                if !mirror.is_open() {
                    match &self.registry {
                        None => return Stopped::Done,
                        Some(reg) if reg.retire(&self.id, &self.dir, offset) => {
                            return Stopped::Done
                        }
                        Some(_) => continue,
                    }
                }
                if self.registry.is_none() {
                    // `runcore sync` of a run that never ended: deliver what there is.
                    if let Err(e) = self.backend.flush(&mirror.info).await {
                        self.status.send_modify(|s| s.last_error = e.to_string());
                    }
                    self.save_cursor(offset, delivered);
                    return Stopped::Done;
                }
                tokio::select! {
                    _ = self.wake.notified() => tokio::time::sleep(LINGER).await,
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = tokio::time::sleep_until(next_beat) => {
                        self.heartbeat(&mirror).await;
                        next_beat = Instant::now() + self.heartbeat_interval;
                    }
                    _ = token.stopping() => return Stopped::Shutdown,
                }
                continue;
            }
            // Pace a live run's deliveries when the backend asks for it: what arrives
            // meanwhile joins this batch. A state change (preempting, the end) or a
            // full batch goes at once.
            let pace_until = last_delivery.map(|at| at + min_interval).filter(|due| {
                !hurried
                    && self.registry.is_some()
                    && *due > Instant::now()
                    && records.len() < MAX_RECORDS
                    && !records
                        .iter()
                        .any(|r| matches!(r.kind, Some(Kind::State(_))))
            });
            if let Some(due) = pace_until {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = self.hurry.notified() => hurried = true,
                    _ = token.stopping() => return Stopped::Shutdown,
                }
                continue;
            }
            let n = records.len() as u64;
            let batch_events = events_of(&mut mirror, &records);
            let checkpoint = Checkpoint {
                run: self.id.clone(),
                path: cursor_path(&self.dir, self.backend.name()),
                offset,
                records: delivered,
            };
            let batch = Batch {
                run: &mirror.info,
                dir: &self.dir,
                saved: &mirror.saved.values().cloned().collect::<Vec<_>>(),
                events: batch_events,
                checkpoint: &checkpoint,
            };
            backoff.reset();
            loop {
                match self.backend.deliver(&batch).await {
                    Ok(()) => {
                        self.status.send_modify(|s| {
                            s.last_error.clear();
                            s.last_success = crate::run::now();
                        });
                        break;
                    }
                    Err(BackendError::Retryable { reason, after }) => {
                        let wait = backoff.next(after);
                        tracing::warn!(run = %self.id, backend = self.backend.name(), "delivery failed, retrying in {:.1} s: {reason}", wait.as_secs_f64());
                        self.status.send_modify(|s| s.last_error = reason.clone());
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = token.stopping() => return Stopped::Shutdown,
                        }
                    }
                    Err(BackendError::Unauthorized { reason }) => {
                        self.status.send_modify(|s| s.last_error = reason.clone());
                        if self.registry.is_none() {
                            return Stopped::Unauthorized(reason);
                        }
                        tracing::error!(run = %self.id, backend = self.backend.name(), "{reason}: delivery stops until the sidecar is restarted with working credentials");
                        token.stopping().await;
                        return Stopped::Unauthorized(reason);
                    }
                    Err(BackendError::Rejected { reason }) => {
                        // Retrying cannot help; holding back everything after it
                        // would lose more. The batch is skipped and reported.
                        tracing::error!(run = %self.id, backend = self.backend.name(), "the backend refused a batch of {n} records, skipped: {reason}");
                        self.status.send_modify(|s| s.last_error = reason.clone());
                        break;
                    }
                }
            }
            offset = end;
            delivered += n;
            last_delivery = Some(Instant::now());
            self.save_cursor(offset, delivered);
            self.status.send_modify(|s| {
                s.delivered_offset = offset;
                s.delivered_records = delivered;
            });
            // A run that never goes idle still beats.
            if Instant::now() >= next_beat {
                self.heartbeat(&mirror).await;
                next_beat = Instant::now() + self.heartbeat_interval;
            }
        }
    }

    async fn heartbeat(&mut self, mirror: &RunState) {
        if !mirror.is_open() || mirror.info.id.is_empty() {
            return;
        }
        match self.backend.heartbeat(&mirror.info).await {
            Ok(stop) => {
                if stop {
                    self.status.send_modify(|s| s.stop_requested = true);
                }
            }
            Err(e) => {
                tracing::warn!(run = %self.id, backend = self.backend.name(), "heartbeat failed: {e}")
            }
        }
    }
}

/// Applies records to the mirror and turns them into events.
fn events_of(mirror: &mut RunState, records: &[Record]) -> Vec<Event> {
    let mut sink = EventSink::default();
    let mut config = false;
    let mut summary = false;
    for r in records {
        mirror.apply(r, &mut sink);
        match &r.kind {
            Some(Kind::Start(_)) | Some(Kind::Resume(_)) => {
                sink.events.push(Event::Start);
                config = true;
            }
            Some(Kind::Config(_)) => config = true,
            Some(Kind::Log(_)) | Some(Kind::Summary(_)) | Some(Kind::DefineMetric(_)) => {
                summary = true
            }
            Some(Kind::SavedFiles(f)) => sink.events.push(Event::Files(f.files.clone())),
            Some(Kind::State(change)) => {
                summary = true;
                sink.events.push(Event::State {
                    state: change.state(),
                    exit_code: change.exit_code,
                    timestamp: r.time,
                });
            }
            _ => {}
        }
    }
    let mut events = sink.events;
    // Before a final state, so the backend has them when the run ends.
    let at = events
        .iter()
        .rposition(|e| matches!(e, Event::State { .. }))
        .unwrap_or(events.len());
    if summary {
        events.insert(at, Event::Summary(mirror.summary()));
    }
    if config {
        events.insert(at, Event::Config(mirror.config.clone()));
    }
    events
}

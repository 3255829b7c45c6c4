//! The forwarder: one task per run and remote backend. It replays the run's
//! transaction log into `Event`s (`events.rs`: the same `RunState::apply` the run
//! uses, so the backend sees exactly the rows the local store has), delivers them
//! in batches with the shared retry policy ([`super::retry`]), and persists a
//! cursor (`cursor.rs`) after each delivery. A restart replays the log up to the
//! cursor without sending and goes on from there, so nothing is sent twice and
//! nothing is skipped. A backend that needs several requests for one batch saves
//! its own progress in between ([`Checkpoint`]); one that wants fewer, larger
//! requests gets a pace (`Backend::min_interval`) that Finish and state changes
//! skip. The backend's heartbeat runs every heartbeat interval while the run is
//! open, idle or busy.
//!
//! A run's actor sees its forwarder as a [`crate::run::Delivery`].

mod cursor;
mod events;
mod lock;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use self::cursor::{cursor_path, read_cursor, write_cursor, Cursor};
pub use self::cursor::{pending_bytes, started, status_from_disk, Checkpoint};
use self::events::{events_of, read_from};
use super::retry::{self, Backoff, Delivered};
use super::{Backend, BackendSettings, Batch};
use crate::clock;
use crate::proto::v1::BackendStatus;
use crate::proto::wal::{record::Kind, Record};
use crate::run::Delivery;
use crate::semantics::state::{NoSink, RunState};
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
    /// Where delivery stands.
    pub fn current(&self) -> ForwardStatus {
        self.status.borrow().clone()
    }
}

#[async_trait::async_trait]
impl Delivery for ForwardLink {
    fn wake(&self) {
        self.wake.notify_one();
    }

    fn status(&self) -> BackendStatus {
        self.current().to_proto()
    }

    fn stop_requested(&self) -> bool {
        self.status.borrow().stop_requested
    }

    async fn wait_delivered(&mut self, log_len: u64, timeout: Duration) -> BackendStatus {
        self.wake.notify_one();
        self.hurry.notify_one();
        let _ = tokio::time::timeout(
            timeout,
            self.status.wait_for(|s| s.delivered_offset >= log_len),
        )
        .await;
        self.current().to_proto()
    }
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

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ForwardLink>> {
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
            link.wake.notify_one();
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
            artifacts: crate::artifacts::root_of_run(dir),
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
        self.lock().get(id).map(ForwardLink::current)
    }

    /// Ends run `id`'s forwarder if everything is delivered; false if the log grew
    /// meanwhile (the forwarder goes on).
    pub(super) fn retire(&self, id: &str, dir: &Path, offset: u64) -> bool {
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
    /// The artifact store of the run's data dir.
    artifacts: PathBuf,
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
                artifacts: crate::artifacts::root_of_run(dir),
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

    /// Saves the cursor on a blocking thread (the returned future borrows nothing).
    fn save_cursor(
        &self,
        offset: u64,
        records: u64,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let cursor = Cursor {
            offset,
            records,
            state: self.backend.save(),
        };
        let id = self.id.clone();
        let path = cursor_path(&self.dir, self.backend.name());
        async move {
            let _ = tokio::task::spawn_blocking(move || write_cursor(&id, &path, &cursor)).await;
        }
    }

    /// Delivers until the run has ended and its log is delivered (or, without a
    /// registry, until the end of the log), or shutdown.
    pub async fn forward(mut self, mut token: ShutdownToken) -> Stopped {
        let registry = self.registry.as_deref().map(|r| (r, self.id.as_str()));
        let _lock = match lock::lock_delivery(&self.dir, self.backend.name(), registry).await {
            Ok(lock) => lock,
            Err(stopped) => return stopped,
        };
        let mut at = match self.resume().await {
            Ok(at) => at,
            Err(stopped) => return stopped,
        };
        loop {
            if token.is_stopping() {
                return Stopped::Shutdown;
            }
            let (records, end) = match self.next_batch(&mut at, &mut token).await {
                Next::Batch(records, end) => (records, end),
                Next::Again => continue,
                Next::Stop(stopped) => return stopped,
            };
            if let Some(stopped) = self.deliver(&mut at, &records, &mut token).await {
                return stopped;
            }
            at.offset = end;
            at.delivered += records.len() as u64;
            at.last_delivery = Some(Instant::now());
            self.save_cursor(at.offset, at.delivered).await;
            self.status.send_modify(|s| {
                s.delivered_offset = at.offset;
                s.delivered_records = at.delivered;
            });
            // A run that never goes idle still beats.
            if Instant::now() >= at.next_beat {
                self.heartbeat(&at.mirror).await;
                at.next_beat = Instant::now() + self.heartbeat_interval;
            }
        }
    }

    /// Rebuilds the run as of the saved cursor, sending nothing, and counts the
    /// whole log.
    async fn resume(&mut self) -> Result<Progress, Stopped> {
        let wal = self.dir.join(store::WAL);
        let cursor = {
            let (dir, name) = (self.dir.clone(), self.backend.name());
            tokio::task::spawn_blocking(move || read_cursor(&dir, name))
                .await
                .unwrap_or_default()
        };
        self.backend.restore(cursor.state.clone());
        let prefix = {
            let wal = wal.clone();
            let dir = self.dir.clone();
            let upto = cursor.offset;
            tokio::task::spawn_blocking(move || replay_upto(&wal, &dir, upto)).await
        };
        let (mirror, total, offset) = match prefix {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Err(Stopped::Failed(e.to_string())),
            Err(e) => return Err(Stopped::Failed(e.to_string())),
        };
        let delivered = cursor.records.min(total);
        if !started(&self.dir, self.backend.name()) {
            // Mark delivery as started, so a restart resumes it even before the
            // first batch is acknowledged.
            self.save_cursor(offset, delivered).await;
        }
        self.status.send_modify(|s| {
            s.delivered_offset = offset;
            s.delivered_records = delivered;
            s.total_records = total;
            s.log_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        });
        Ok(Progress {
            wal,
            mirror,
            offset,
            delivered,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(10)),
            next_beat: Instant::now() + self.heartbeat_interval,
            last_delivery: None,
            hurried: false,
        })
    }

    /// Reads the next records to deliver; waits while there are none (beating
    /// meanwhile) or while the backend's pace says to.
    async fn next_batch(&mut self, at: &mut Progress, token: &mut ShutdownToken) -> Next {
        let read = {
            let wal = at.wal.clone();
            let offset = at.offset;
            tokio::task::spawn_blocking(move || read_from(&wal, offset, MAX_RECORDS)).await
        };
        let (records, end) = match read {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Next::Stop(Stopped::Failed(e.to_string())),
            Err(e) => return Next::Stop(Stopped::Failed(e.to_string())),
        };
        let log_len = std::fs::metadata(&at.wal).map(|m| m.len()).unwrap_or(end);
        let known = at.delivered + records.len() as u64;
        self.status.send_modify(|s| {
            s.log_len = log_len;
            s.total_records = s.total_records.max(known);
        });
        if records.is_empty() {
            return self.idle(at, token).await;
        }
        // Pace a live run's deliveries when the backend asks for it: what arrives
        // meanwhile joins this batch. A state change (preempting, the end) or a
        // full batch goes at once.
        let min_interval = self.backend.min_interval();
        let pace_until = at.last_delivery.map(|t| t + min_interval).filter(|due| {
            !at.hurried
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
                _ = self.hurry.notified() => at.hurried = true,
                _ = token.stopping() => return Next::Stop(Stopped::Shutdown),
            }
            return Next::Again;
        }
        Next::Batch(records, end)
    }

    /// Nothing new in the log: done when the run has ended, else wait for more.
    async fn idle(&mut self, at: &mut Progress, token: &mut ShutdownToken) -> Next {
        if !at.mirror.is_open() {
            return match &self.registry {
                None => Next::Stop(Stopped::Done),
                Some(reg) if reg.retire(&self.id, &self.dir, at.offset) => {
                    Next::Stop(Stopped::Done)
                }
                Some(_) => Next::Again,
            };
        }
        if self.registry.is_none() {
            // `runcore sync` of a run that never ended: deliver what there is.
            if let Err(e) = self.backend.flush(&at.mirror.info).await {
                self.status.send_modify(|s| s.last_error = e.to_string());
            }
            self.save_cursor(at.offset, at.delivered).await;
            return Next::Stop(Stopped::Done);
        }
        tokio::select! {
            _ = self.wake.notified() => tokio::time::sleep(LINGER).await,
            _ = tokio::time::sleep(IDLE_POLL) => {}
            _ = tokio::time::sleep_until(at.next_beat) => {
                self.heartbeat(&at.mirror).await;
                at.next_beat = Instant::now() + self.heartbeat_interval;
            }
            _ = token.stopping() => return Next::Stop(Stopped::Shutdown),
        }
        Next::Again
    }

    /// Delivers one batch with the shared retry policy; Some when the forwarder
    /// must stop.
    async fn deliver(
        &mut self,
        at: &mut Progress,
        records: &[Record],
        token: &mut ShutdownToken,
    ) -> Option<Stopped> {
        let n = records.len();
        let events = events_of(&mut at.mirror, records);
        let checkpoint = Checkpoint {
            run: self.id.clone(),
            path: cursor_path(&self.dir, self.backend.name()),
            offset: at.offset,
            records: at.delivered,
        };
        let saved: Vec<_> = at.mirror.saved.values().cloned().collect();
        let batch = Batch {
            run: &at.mirror.info,
            dir: &self.dir,
            artifacts: &self.artifacts,
            saved: &saved,
            events,
            checkpoint: &checkpoint,
        };
        let status = &self.status;
        let (id, name) = (self.id.as_str(), self.backend.name());
        let outcome = retry::deliver(self.backend.as_mut(), &batch, &mut at.backoff, token, |e| {
            status.send_modify(|s| s.last_error = e.to_owned())
        })
        .await;
        match outcome {
            Delivered::Yes => {
                self.status.send_modify(|s| {
                    s.last_error.clear();
                    s.last_success = clock::now();
                });
                None
            }
            Delivered::Skipped(reason) => {
                // Retrying cannot help; holding back everything after it would
                // lose more. The batch is skipped and reported.
                tracing::error!(run = %id, backend = name, "the backend refused a batch of {n} records, skipped: {reason}");
                None
            }
            Delivered::Shutdown => Some(Stopped::Shutdown),
            Delivered::Unauthorized(reason) => {
                if self.registry.is_some() {
                    tracing::error!(run = %id, backend = name, "{reason}: delivery stops until the sidecar is restarted with working credentials");
                    token.stopping().await;
                }
                Some(Stopped::Unauthorized(reason))
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

/// Where a forwarder's delivery stands between steps.
struct Progress {
    wal: PathBuf,
    /// The run as of `offset`.
    mirror: RunState,
    /// The log offset delivered up to.
    offset: u64,
    /// Records delivered.
    delivered: u64,
    backoff: Backoff,
    next_beat: Instant,
    last_delivery: Option<Instant>,
    /// Set once someone waits for delivery (Finish): no more pacing.
    hurried: bool,
}

/// What the next step of a forwarder is.
enum Next {
    Batch(Vec<Record>, u64),
    Again,
    Stop(Stopped),
}

/// The run as of log offset `upto`, the number of records in the whole log, and
/// the offset reached. Blocking.
fn replay_upto(wal: &Path, dir: &Path, upto: u64) -> Result<(RunState, u64, u64), WalError> {
    let mut reader = WalReader::open(wal)?;
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
}

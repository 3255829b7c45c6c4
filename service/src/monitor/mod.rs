//! System metrics: one sampler per sidecar, shared by all runs, on its own thread.
//!
//! A run registers a [`Watch`] (its client's pid, an interval, options) with the
//! sidecar's [`Monitor`] and receives [`Sample`]s on a bounded channel until it drops
//! the [`WatchGuard`]. The sampler thread starts with the first watch and ends with
//! the last; it never runs on the async runtime, because sysinfo and NVML block.
//!
//! Watches with the same interval are due together: every watch's samples fall on
//! one schedule (multiples of its interval since the monitor was made), so one
//! wake-up and one reading of the host serve every run due, however many runs are
//! open and whenever they started.
//!
//! # Layout
//! - [`names`]: every metric key, in one table (W&B's keys without `system.`).
//! - [`sampler`]: the synchronous engine that turns one tick into samples.
//! - [`host`]: memory, network, disk I/O and disk usage of the host.
//! - [`process`]: the watched process tree (CPU, RSS, threads).
//! - [`cgroup`]: the container's CPU quota, cpuset and memory limit.
//! - [`gpu`]: the [`GpuSource`] trait and the per-device switch-off logic;
//!   [`nvml`] is the real source, [`fake`] the test one.
//! - [`info`]: hardware facts for `metadata.json`.
//!
//! # What the numbers mean
//! - `cpu`: CPU time of the tree over the interval, % of the cores available to it:
//!   the host's logical CPUs, lowered by the cgroup's CPU quota or cpuset.
//!   One busy core in a 4-CPU container reads 25.
//! - `memory_percent`: with a cgroup memory limit below the host's memory, the
//!   cgroup's use less reclaimable page cache over the limit; else the host's
//!   (total − available) over total. `proc.memory.percent` is the tree's RSS over
//!   the same total; `proc.memory.availableMB` the headroom (the lower of the
//!   cgroup's and the host's).
//! - `disk.in`/`disk.out` (MiB) and `network.sent`/`network.recv` (bytes) count
//!   from the watch's start, host-wide (all whole disks, all interfaces).
//! - `gpu.process.{i}.*` repeat `gpu.{i}.*` for the devices whose process lists
//!   hold a pid of the tree, as W&B does. NVML lists host pids: inside a container
//!   with its own pid namespace they do not match, and `gpu.process.*` is absent.

pub mod cgroup;
pub mod fake;
pub mod gpu;
pub mod host;
pub mod info;
pub mod names;
pub mod nvml;
pub mod process;
pub mod sampler;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

pub use self::gpu::{GpuError, GpuSource};
pub use self::info::system_info;
pub use self::sampler::Sampler;

/// Default time between samples.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// Shortest time between samples; shorter intervals are raised to it.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Watches due within this much of each other are sampled in one tick, sharing
/// one reading of the host and the GPUs (watches with the same interval are due
/// at the same moments; this also groups different intervals that meet).
const TICK_SLACK: Duration = Duration::from_millis(5);

/// What to sample for one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    /// The client's pid: it and its descendants are "the process". `None`: host and
    /// GPU metrics only.
    pub pid: Option<u32>,
    /// Time between samples, at least [`MIN_INTERVAL`].
    pub interval: Duration,
    /// Also report each host CPU's utilisation (`cpu.{i}.cpu_percent`).
    pub per_cpu: bool,
    /// Paths whose filesystem usage is reported; empty means `/`.
    pub disk_paths: Vec<PathBuf>,
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            pid: None,
            interval: DEFAULT_INTERVAL,
            per_cpu: false,
            disk_paths: vec![PathBuf::from("/")],
        }
    }
}

/// One sample of one watch.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Unix time of the reading, seconds.
    pub time: f64,
    /// Metric names without the `system.` prefix (see [`names`]), and values.
    pub metrics: Vec<(String, f64)>,
}

impl Sample {
    /// The value of `key`, if the sample has it.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.metrics.iter().find(|(k, _)| k == key).map(|&(_, v)| v)
    }
}

/// Counters of one watch, readable through its guard.
#[derive(Debug, Default)]
struct WatchStats {
    sent: AtomicU64,
    dropped: AtomicU64,
}

/// A registered watch, as the thread sees it.
struct Registration {
    watch: Watch,
    /// Bounded: a full channel drops the sample (counted, logged), it never blocks
    /// the sampler, which serves every run.
    tx: mpsc::Sender<Sample>,
    stats: Arc<WatchStats>,
    /// `None` until the thread has taken the watch's baselines.
    next_due: Option<Instant>,
}

struct Shared {
    watches: BTreeMap<u64, Registration>,
    next_id: u64,
    /// A sampler thread is alive and will see changes to `watches`.
    running: bool,
    /// The engine while no thread holds it (between the last and the next watch).
    sampler: Option<Sampler>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Inner {
    shared: Mutex<Shared>,
    /// The origin of every watch's schedule (see [`slot`]).
    epoch: Instant,
    /// Signalled when watches change, so the thread re-plans its sleep.
    wake: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sidecar's sampler. Cheap to clone; every clone feeds the same thread.
#[derive(Clone)]
pub struct Monitor {
    inner: Arc<Inner>,
}

impl Monitor {
    /// `gpu`: `None` probes real NVML (on the sampler thread, at its first tick);
    /// tests pass a [`fake::FakeGpus`]. Does no I/O.
    pub fn new(gpu: Option<Box<dyn GpuSource>>) -> Monitor {
        Monitor {
            inner: Arc::new(Inner {
                shared: Mutex::new(Shared {
                    watches: BTreeMap::new(),
                    next_id: 0,
                    running: false,
                    sampler: Some(Sampler::new(gpu)),
                    thread: None,
                }),
                epoch: Instant::now(),
                wake: Condvar::new(),
            }),
        }
    }

    /// Starts sampling `w` into `tx` until the guard is dropped. The first sample
    /// comes at the schedule's first moment at least half an interval from now
    /// (so between half an interval and one and a half from now), each next one an
    /// interval later. Starts the sampler thread if none runs. Does not
    /// block: baselines are taken on the sampler thread.
    pub fn watch(&self, mut w: Watch, tx: mpsc::Sender<Sample>) -> WatchGuard {
        w.interval = w.interval.max(MIN_INTERVAL);
        let stats = Arc::new(WatchStats::default());
        let mut sh = self.inner.lock();
        let id = sh.next_id;
        sh.next_id += 1;
        sh.watches.insert(
            id,
            Registration {
                watch: w,
                tx,
                stats: stats.clone(),
                next_due: None,
            },
        );
        if !sh.running {
            self.start(&mut sh);
        }
        drop(sh);
        self.inner.wake.notify_all();
        WatchGuard {
            inner: self.inner.clone(),
            id,
            stats,
        }
    }

    /// Whether the sampler thread is alive (it ends soon after the last watch).
    pub fn is_running(&self) -> bool {
        self.inner.lock().running
    }

    /// Waits up to `timeout` for the sampler thread to end, which it does once every
    /// watch is dropped (after finishing a sample in progress); true if it has.
    /// Blocking: for a shutdown drain, off the async runtime.
    pub fn wait_stopped(&self, timeout: Duration) -> bool {
        let sh = self.inner.lock();
        let (sh, _) = self
            .inner
            .wake
            .wait_timeout_while(sh, timeout, |sh| sh.running)
            .unwrap_or_else(PoisonError::into_inner);
        !sh.running
    }

    fn start(&self, sh: &mut Shared) {
        // A previous thread has handed the sampler back and is ending.
        if let Some(old) = sh.thread.take() {
            if old.is_finished() {
                let _ = old.join();
            }
        }
        let sampler = sh.sampler.take().unwrap_or_else(|| Sampler::new(None));
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name("runcore-monitor".into())
            .spawn(move || run(inner, sampler));
        match spawned {
            Ok(handle) => {
                sh.running = true;
                sh.thread = Some(handle);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the system-metrics thread: no system metrics");
                sh.sampler = Some(Sampler::new(None));
            }
        }
    }
}

/// Keeps a watch registered; dropping it stops the watch (without waiting).
pub struct WatchGuard {
    inner: Arc<Inner>,
    id: u64,
    stats: Arc<WatchStats>,
}

impl WatchGuard {
    /// Samples delivered into the channel.
    pub fn sent(&self) -> u64 {
        self.stats.sent.load(Ordering::Relaxed)
    }

    /// Samples dropped because the channel was full.
    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.inner.lock().watches.remove(&self.id);
        self.inner.wake.notify_all();
    }
}

/// Marks the thread as gone if it unwinds, so the next watch starts a new one.
struct ExitGuard(Arc<Inner>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut sh = self.0.lock();
            sh.running = false;
            if sh.sampler.is_none() {
                sh.sampler = Some(Sampler::new(None));
            }
            self.0.wake.notify_all();
            tracing::error!("the system-metrics thread panicked; it restarts with the next run");
        }
    }
}

/// What the thread does after planning under the lock.
struct Plan {
    /// Watches to take baselines for.
    new: Vec<(u64, Watch)>,
    /// Watches to sample now.
    due: Vec<(u64, mpsc::Sender<Sample>, Arc<WatchStats>)>,
}

/// The sampler thread: sleeps until the next watch is due, samples every watch due
/// then, sends without blocking, and ends when no watch is left.
fn run(inner: Arc<Inner>, mut sampler: Sampler) {
    let _exit = ExitGuard(inner.clone());
    let mut sh = inner.lock();
    loop {
        if sh.watches.is_empty() {
            sh.running = false;
            sh.sampler = Some(sampler);
            inner.wake.notify_all();
            return;
        }
        let now = Instant::now();
        let (plan, sleep) = plan_due(&mut sh.watches, inner.epoch, now);
        if plan.new.is_empty() && plan.due.is_empty() {
            let wait = sleep.map_or(DEFAULT_INTERVAL, |s| s.saturating_duration_since(now));
            sh = inner
                .wake
                .wait_timeout(sh, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            continue;
        }
        let live: Vec<u64> = sh.watches.keys().copied().collect();
        drop(sh);

        sampler.retain(|id| live.binary_search(&id).is_ok());
        for (id, w) in &plan.new {
            sampler.add(*id, w);
        }
        let closed = send_samples(&mut sampler, &plan.due);
        sh = inner.lock();
        for id in closed {
            // The run is gone without dropping its guard yet: stop sampling it.
            sh.watches.remove(&id);
            sampler.remove(id);
        }
    }
}

/// The first moment of the schedule `epoch + k × interval` (k ≥ 0) at or after `t`.
fn slot(epoch: Instant, interval: Duration, t: Instant) -> Instant {
    let step = interval.as_nanos().max(1);
    let k = t.saturating_duration_since(epoch).as_nanos().div_ceil(step);
    u64::try_from(k * step)
        .ok()
        .and_then(|ns| epoch.checked_add(Duration::from_nanos(ns)))
        .unwrap_or(t + interval)
}

/// Which watches are new and which are due at `now` (their next time moved on),
/// and when the next one is due otherwise. Every time due is on its interval's
/// schedule from `epoch`.
fn plan_due(
    watches: &mut BTreeMap<u64, Registration>,
    epoch: Instant,
    now: Instant,
) -> (Plan, Option<Instant>) {
    let mut plan = Plan {
        new: Vec::new(),
        due: Vec::new(),
    };
    let mut sleep = None::<Instant>;
    for (&id, r) in watches.iter_mut() {
        match r.next_due {
            None => {
                plan.new.push((id, r.watch.clone()));
                let interval = r.watch.interval;
                r.next_due = Some(slot(epoch, interval, now + interval / 2));
            }
            Some(due) if due <= now + TICK_SLACK => {
                plan.due.push((id, r.tx.clone(), r.stats.clone()));
                let interval = r.watch.interval;
                // After a slow tick, the next moment not yet past: skip rather
                // than burst.
                r.next_due = Some(slot(
                    epoch,
                    interval,
                    (due + interval).max(now + TICK_SLACK),
                ));
            }
            Some(due) => sleep = Some(sleep.map_or(due, |s: Instant| s.min(due))),
        }
    }
    (plan, sleep)
}

/// Samples the due watches and sends each its sample without blocking (a full
/// channel drops it and counts); returns the watches whose run is gone.
fn send_samples(
    sampler: &mut Sampler,
    due: &[(u64, mpsc::Sender<Sample>, Arc<WatchStats>)],
) -> Vec<u64> {
    let mut closed = Vec::new();
    if due.is_empty() {
        return closed;
    }
    let ids: Vec<u64> = due.iter().map(|(id, ..)| *id).collect();
    for (id, sample) in sampler.sample(&ids) {
        let Some((_, tx, stats)) = due.iter().find(|(d, ..)| *d == id) else {
            continue;
        };
        match tx.try_send(sample) {
            Ok(()) => {
                stats.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                let n = stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(
                        watch = id,
                        dropped = n,
                        "system-metrics channel full: sample dropped"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => closed.push(id),
        }
    }
    closed
}

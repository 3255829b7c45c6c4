//! The sampling engine, single-threaded and synchronous: [`Sampler`] keeps the
//! host, GPU and per-watch state across samples and turns one tick into one
//! [`Sample`] per due watch. [`super::Monitor`] drives it from its thread; the
//! benchmark drives it directly.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sysinfo::System;

use super::cgroup::{Cgroup, CgroupMemory};
use super::gpu::{GpuSampler, GpuSource};
use super::host::{Counters, Host, HostTick};
use super::names;
use super::process::ProcessTree;
use super::{Sample, Watch};

const MIB: f64 = (1u64 << 20) as f64;
const GIB: f64 = (1u64 << 30) as f64;

/// A configured disk path and where its filesystem is mounted.
struct DiskTarget {
    key_percent: String,
    key_gb: String,
    mount: PathBuf,
}

/// What one watch keeps between its samples.
struct WatchState {
    pid: Option<u32>,
    tree: Option<ProcessTree>,
    cgroup: Option<Cgroup>,
    /// Per-CPU utilisation since this watch's previous sample (`per_cpu` only).
    cpus: Option<System>,
    disks: Vec<DiskTarget>,
    /// Host counters when the watch started.
    base: Counters,
}

enum HostSlot {
    /// Built on first use, on the sampler's thread (it reads /proc and /sys).
    Unbuilt,
    /// `sysinfo` does not support this platform: GPU metrics only.
    Missing,
    Ready(Box<Host>),
}

/// The sampler's state: host readers, GPU source and every watch's baselines.
pub struct Sampler {
    host: HostSlot,
    gpu: GpuSampler,
    watches: HashMap<u64, WatchState>,
}

impl Sampler {
    /// No I/O here: the host lists and the GPU are read on first use.
    /// `gpu`: `None` probes real NVML on the first tick.
    pub fn new(gpu: Option<Box<dyn GpuSource>>) -> Sampler {
        Sampler {
            host: HostSlot::Unbuilt,
            gpu: GpuSampler::new(gpu),
            watches: HashMap::new(),
        }
    }

    fn host(&mut self) -> Option<&mut Host> {
        if let HostSlot::Unbuilt = self.host {
            self.host = match Host::new() {
                Ok(h) => HostSlot::Ready(Box::new(h)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read host metrics on this platform");
                    HostSlot::Missing
                }
            };
        }
        match &mut self.host {
            HostSlot::Ready(h) => Some(h.as_mut()),
            _ => None,
        }
    }

    /// Starts watch `id`: takes the baselines (process CPU times, host counters,
    /// per-CPU times) that its first sample is measured from. Blocking.
    pub fn add(&mut self, id: u64, watch: &Watch) {
        let default_disk = [PathBuf::from("/")];
        let paths: &[PathBuf] = if watch.disk_paths.is_empty() {
            &default_disk
        } else {
            &watch.disk_paths
        };
        let mut disks = Vec::new();
        let mut base = Counters::default();
        if let Some(host) = self.host() {
            base = host.counters();
            disks = resolve_disks(host, paths);
        }

        let tree = watch.pid.and_then(|pid| {
            let t = ProcessTree::new(pid);
            if t.is_none() {
                tracing::info!(pid, "watched process not found: no process metrics");
            }
            t
        });
        let cpus = if watch.per_cpu {
            System::new().ok().map(|mut s| {
                s.refresh_cpu_usage();
                s
            })
        } else {
            None
        };
        self.watches.insert(
            id,
            WatchState {
                pid: watch.pid,
                tree,
                cgroup: Cgroup::of(watch.pid),
                cpus,
                disks,
                base,
            },
        );
    }

    /// Forgets watch `id`.
    pub fn remove(&mut self, id: u64) {
        self.watches.remove(&id);
    }

    /// Forgets every watch for which `keep` is false.
    pub fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        self.watches.retain(|&id, _| keep(id));
    }

    /// One sample for each of `ids` (unknown ids are skipped), from one reading of
    /// the host and the GPUs. Blocking.
    pub fn sample(&mut self, ids: &[u64]) -> Vec<(u64, Sample)> {
        let host_tick = self.host().map(Host::tick);
        let want_processes = ids
            .iter()
            .any(|id| self.watches.get(id).is_some_and(|w| w.tree.is_some()));
        let gpu_tick = self.gpu.tick(want_processes);
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some(w) = self.watches.get_mut(&id) else {
                continue;
            };
            let mut metrics = Vec::with_capacity(64);
            let pids = match (&mut self.host, &host_tick) {
                (HostSlot::Ready(host), Some(tick)) => sample_watch(host, tick, w, &mut metrics),
                _ => None,
            };
            self.gpu.emit(&gpu_tick, pids.as_ref(), &mut metrics);
            out.push((id, Sample { time, metrics }));
        }
        out
    }
}

/// The disk targets of a watch's paths; a path that cannot be sampled gets one
/// info line and no metric.
fn resolve_disks(host: &mut Host, paths: &[PathBuf]) -> Vec<DiskTarget> {
    let mut disks = Vec::new();
    for path in paths {
        match host.resolve_disk(path) {
            Ok(mount) => {
                let shown = path.to_string_lossy();
                disks.push(DiskTarget {
                    key_percent: names::disk_usage_percent(&shown),
                    key_gb: names::disk_usage_gb(&shown),
                    mount,
                });
            }
            Err(why) => {
                tracing::info!(path = %path.display(), %why, "no disk usage metrics for this path")
            }
        }
    }
    disks
}

/// Host and process metrics of one watch; returns the tree's pids for the GPU's
/// `gpu.process.*`.
fn sample_watch(
    host: &mut Host,
    tick: &HostTick,
    w: &mut WatchState,
    out: &mut Vec<(String, f64)>,
) -> Option<HashSet<u32>> {
    let tree = match w.tree.as_mut().map(ProcessTree::sample) {
        Some(None) => {
            tracing::info!(pid = w.pid, "watched process exited: process metrics stop");
            w.tree = None;
            None
        }
        Some(s) => s,
        None => None,
    };
    let cores = available_cores(host.cpus, w.cgroup.as_ref());
    let mem = MemoryView::new(tick, w.cgroup.as_ref().and_then(Cgroup::memory));
    if let Some(t) = &tree {
        out.push((names::CPU.into(), t.cpu_percent / cores));
    }
    if let Some(sys) = &mut w.cpus {
        sys.refresh_cpu_usage();
        for (i, c) in sys.cpus().iter().enumerate() {
            out.push((names::cpu_core(i), c.usage() as f64));
        }
    }
    out.push((
        names::MEMORY_PERCENT.into(),
        percent(mem.used as f64, mem.total as f64),
    ));
    if let Some(t) = &tree {
        out.push((names::PROC_RSS_MB.into(), t.rss as f64 / MIB));
        out.push((
            names::PROC_MEMORY_PERCENT.into(),
            percent(t.rss as f64, mem.total as f64),
        ));
        out.push((names::PROC_AVAILABLE_MB.into(), mem.available as f64 / MIB));
        out.push((names::PROC_THREADS.into(), t.threads as f64));
    }
    for d in &w.disks {
        if let Some(u) = host.disk_usage(Path::new(&d.mount)) {
            out.push((
                d.key_percent.clone(),
                percent(u.used as f64, u.total as f64),
            ));
            out.push((d.key_gb.clone(), u.used as f64 / GIB));
        }
    }
    let c = tick.counters.since(w.base);
    out.push((names::DISK_IN.into(), c.disk_read as f64 / MIB));
    out.push((names::DISK_OUT.into(), c.disk_written as f64 / MIB));
    out.push((names::NETWORK_SENT.into(), c.net_sent as f64));
    out.push((names::NETWORK_RECV.into(), c.net_recv as f64));
    tree.map(|t| t.pids)
}

/// Memory as a watch sees it: its cgroup's limit when that is below the host's
/// memory, else the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryView {
    pub total: u64,
    pub used: u64,
    /// Headroom: the lower of the cgroup's and the host's.
    pub available: u64,
}

impl MemoryView {
    pub fn new(tick: &HostTick, cgroup: Option<CgroupMemory>) -> MemoryView {
        match cgroup.filter(|m| m.limit > 0 && m.limit < tick.memory_total) {
            Some(m) => MemoryView {
                total: m.limit,
                used: m.used,
                available: m.limit.saturating_sub(m.used).min(tick.memory_available),
            },
            None => MemoryView {
                total: tick.memory_total,
                used: tick.memory_total.saturating_sub(tick.memory_available),
                available: tick.memory_available,
            },
        }
    }
}

/// The CPUs a process may use: the host's, lowered by its cgroup's quota or cpuset
/// (a quota may be fractional); never below 0.01.
pub fn available_cores(host_cpus: usize, cgroup: Option<&Cgroup>) -> f64 {
    let host = host_cpus.max(1) as f64;
    cgroup
        .and_then(Cgroup::cpu_limit)
        .map_or(host, |l| l.min(host))
        .max(0.01)
}

fn percent(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        part / whole * 100.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn memory_follows_a_cgroup_limit_below_the_host() {
        let tick = HostTick {
            memory_total: 24 * GIB,
            memory_available: 20 * GIB,
            ..HostTick::default()
        };
        let host = MemoryView::new(&tick, None);
        assert_eq!(
            host,
            MemoryView {
                total: 24 * GIB,
                used: 4 * GIB,
                available: 20 * GIB
            }
        );
        let limited = MemoryView::new(
            &tick,
            Some(CgroupMemory {
                limit: 2 * GIB,
                used: GIB / 2,
            }),
        );
        assert_eq!(
            limited,
            MemoryView {
                total: 2 * GIB,
                used: GIB / 2,
                available: 3 * GIB / 2
            }
        );
        // v1's "no limit" is a huge number: the host's view stands.
        let unlimited = MemoryView::new(
            &tick,
            Some(CgroupMemory {
                limit: 9223372036854771712,
                used: GIB,
            }),
        );
        assert_eq!(unlimited, host);
        // The host can be tighter than the cgroup's headroom.
        let tight = HostTick {
            memory_available: GIB / 4,
            ..tick
        };
        let v = MemoryView::new(
            &tight,
            Some(CgroupMemory {
                limit: 2 * GIB,
                used: GIB / 2,
            }),
        );
        assert_eq!(v.available, GIB / 4);
    }

    #[test]
    fn cores_follow_the_cgroup_quota() {
        let t = tempfile::tempdir().unwrap();
        let (proc_root, cg) = (t.path().join("proc"), t.path().join("cg"));
        std::fs::create_dir_all(proc_root.join("self")).unwrap();
        std::fs::create_dir_all(&cg).unwrap();
        std::fs::write(proc_root.join("self/cgroup"), "0::/\n").unwrap();
        std::fs::write(cg.join("cgroup.controllers"), "cpu\n").unwrap();
        std::fs::write(cg.join("cpu.max"), "50000 100000\n").unwrap();
        let half = Cgroup::resolve(&proc_root, &cg, None);
        assert_eq!(available_cores(8, half.as_ref()), 0.5);
        std::fs::write(cg.join("cpu.max"), "1600000 100000\n").unwrap();
        assert_eq!(
            available_cores(8, half.as_ref()),
            8.0,
            "never above the host"
        );
        std::fs::write(cg.join("cpu.max"), "max 100000\n").unwrap();
        assert_eq!(available_cores(8, half.as_ref()), 8.0);
        assert_eq!(available_cores(0, None), 1.0);
    }
}

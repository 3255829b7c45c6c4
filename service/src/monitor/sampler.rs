//! The sampling engine, single-threaded and synchronous: [`Sampler`] keeps the
//! host, GPU and per-watch state across samples and turns one tick into one
//! [`Sample`] per due watch. [`super::Monitor`] drives it from its thread; the
//! benchmark drives it directly.
//!
//! Watches asking for the same thing (the same pid, interval and options: the runs
//! of one client) share one [`Source`]: its process tree, cgroup and disks are
//! read once per tick for all of them. Only the counters since each watch's start
//! (disk and network) are its own.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sysinfo::System;

use super::cgroup::{Cgroup, CgroupMemory};
use super::gpu::{GpuSampler, GpuSource};
use super::host::{Counters, Host, HostTick};
use super::names;
use super::nvml;
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

/// What the watches asking for the same thing keep between their samples.
struct Source {
    /// What they ask for.
    watch: Watch,
    /// How many watches share it; it is dropped with the last.
    users: usize,
    tree: Option<ProcessTree>,
    cgroup: Option<Cgroup>,
    /// Per-CPU utilisation since the previous sample (`per_cpu` only).
    cpus: Option<System>,
    disks: Vec<DiskTarget>,
}

/// One watch: its source and where its counters start.
struct WatchState {
    /// Key of its [`Source`] in `Sampler::sources`.
    source: u64,
    /// Host counters when the watch started.
    base: Counters,
}

/// A source's sample, shared by its due watches: the metrics before their own
/// counters, and the GPU metrics after them.
struct Shared {
    head: Vec<(String, f64)>,
    gpu: Vec<(String, f64)>,
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
    sources: HashMap<u64, Source>,
    next_source: u64,
}

impl Sampler {
    /// No I/O here: the host lists and the GPU are read on first use.
    /// `gpu`: `None` probes real NVML on the first tick.
    pub fn new(gpu: Option<Box<dyn GpuSource>>) -> Sampler {
        Sampler {
            host: HostSlot::Unbuilt,
            gpu: match gpu {
                Some(source) => GpuSampler::new(source),
                None => GpuSampler::probing(nvml::source),
            },
            watches: HashMap::new(),
            sources: HashMap::new(),
            next_source: 0,
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

    /// Starts watch `id`: takes the baselines (host counters; process CPU times
    /// and per-CPU times, unless a watch asking for the same thing has them) that
    /// its first sample is measured from. Blocking.
    pub fn add(&mut self, id: u64, watch: &Watch) {
        self.remove(id);
        let base = self.host().map(|h| h.counters()).unwrap_or_default();
        // (Not a source whose process has exited: its pid may be reused.)
        let shared = self
            .sources
            .iter_mut()
            .find(|(_, s)| s.watch == *watch && (s.tree.is_some() || watch.pid.is_none()));
        let source = match shared {
            Some((&key, s)) => {
                s.users += 1;
                key
            }
            None => {
                let s = self.new_source(watch);
                let key = self.next_source;
                self.next_source += 1;
                self.sources.insert(key, s);
                key
            }
        };
        self.watches.insert(id, WatchState { source, base });
    }

    /// A source's baselines. Blocking.
    fn new_source(&mut self, watch: &Watch) -> Source {
        let default_disk = [PathBuf::from("/")];
        let paths: &[PathBuf] = if watch.disk_paths.is_empty() {
            &default_disk
        } else {
            &watch.disk_paths
        };
        let disks = self
            .host()
            .map(|host| resolve_disks(host, paths))
            .unwrap_or_default();

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
        Source {
            watch: watch.clone(),
            users: 1,
            tree,
            cgroup: Cgroup::of(watch.pid),
            cpus,
            disks,
        }
    }

    /// Forgets watch `id` (and its source, with the last watch using it).
    pub fn remove(&mut self, id: u64) {
        let Some(w) = self.watches.remove(&id) else {
            return;
        };
        if let Some(s) = self.sources.get_mut(&w.source) {
            s.users -= 1;
            if s.users == 0 {
                self.sources.remove(&w.source);
            }
        }
    }

    /// Forgets every watch for which `keep` is false.
    pub fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        let gone: Vec<u64> = self
            .watches
            .keys()
            .copied()
            .filter(|&id| !keep(id))
            .collect();
        for id in gone {
            self.remove(id);
        }
    }

    /// How many sources the watches share (each read once per tick).
    pub fn sources(&self) -> usize {
        self.sources.len()
    }

    /// One sample for each of `ids` (unknown ids are skipped), from one reading of
    /// the host and the GPUs, and one of each source. Blocking.
    pub fn sample(&mut self, ids: &[u64]) -> Vec<(u64, Sample)> {
        let host_tick = self.host().map(Host::tick);
        let due: Vec<(u64, u64, Counters)> = ids
            .iter()
            .filter_map(|&id| self.watches.get(&id).map(|w| (id, w.source, w.base)))
            .collect();
        let want_processes = due
            .iter()
            .any(|(_, source, _)| self.sources.get(source).is_some_and(|s| s.tree.is_some()));
        let gpu_tick = self.gpu.tick(want_processes);
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut shared: HashMap<u64, Shared> = HashMap::new();
        let mut out = Vec::with_capacity(due.len());
        for (id, source, base) in due {
            let s = match shared.entry(source) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let Some(src) = self.sources.get_mut(&source) else {
                        continue;
                    };
                    let mut head = Vec::with_capacity(64);
                    let pids = match (&mut self.host, &host_tick) {
                        (HostSlot::Ready(host), Some(tick)) => {
                            sample_source(host, tick, src, &mut head)
                        }
                        _ => None,
                    };
                    let mut gpu = Vec::new();
                    self.gpu.emit(&gpu_tick, pids.as_ref(), &mut gpu);
                    e.insert(Shared { head, gpu })
                }
            };
            let mut metrics = Vec::with_capacity(s.head.len() + 4 + s.gpu.len());
            metrics.extend_from_slice(&s.head);
            if let Some(tick) = &host_tick {
                push_counters(tick.counters.since(base), &mut metrics);
            }
            metrics.extend_from_slice(&s.gpu);
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

/// Host and process metrics of one source (all but the counters since each
/// watch's start); returns the tree's pids for the GPU's `gpu.process.*`.
fn sample_source(
    host: &mut Host,
    tick: &HostTick,
    w: &mut Source,
    out: &mut Vec<(String, f64)>,
) -> Option<HashSet<u32>> {
    let tree = match w.tree.as_mut().map(ProcessTree::sample) {
        Some(None) => {
            tracing::info!(
                pid = w.watch.pid,
                "watched process exited: process metrics stop"
            );
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
    tree.map(|t| t.pids)
}

/// A watch's disk and network counters since it started.
fn push_counters(c: Counters, out: &mut Vec<(String, f64)>) {
    out.push((names::DISK_IN.into(), c.disk_read as f64 / MIB));
    out.push((names::DISK_OUT.into(), c.disk_written as f64 / MIB));
    out.push((names::NETWORK_SENT.into(), c.net_sent as f64));
    out.push((names::NETWORK_RECV.into(), c.net_recv as f64));
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

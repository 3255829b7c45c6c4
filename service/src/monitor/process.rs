//! The watched process tree: the client's pid and all its descendants, found through
//! `/proc/<pid>/task/<tid>/children` (every thread's, since a child belongs to the
//! thread that forked it), with CPU time and resident memory from `sysinfo`.
//!
//! CPU % is measured per pid between two samples of the same watch, so watches with
//! different intervals do not disturb each other. A pid that joins the tree between
//! samples counts all its CPU time (it was born in the interval); the CPU time a
//! child spends between the last sample and its exit is not seen.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// One reading of the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeSample {
    /// The root and its descendants.
    pub pids: HashSet<u32>,
    /// CPU used since the previous sample, % of one core (200 = two cores busy).
    pub cpu_percent: f64,
    /// Resident memory, summed over the tree (shared pages count once per process).
    pub rss: u64,
    pub threads: u64,
}

/// The state kept between samples of one watched tree.
pub struct ProcessTree {
    root: u32,
    /// Holds the tree's processes only: refreshed by pid, never the whole table.
    sys: System,
    /// (start time, CPU ms) per pid at the previous sample.
    prev: HashMap<u32, (u64, u64)>,
    last: Instant,
    /// Use the `children` files; false on kernels without them (full /proc scan).
    children_files: bool,
    /// The baseline is taken: CPU deltas are meaningful from now on.
    primed: bool,
}

impl ProcessTree {
    /// Takes the baseline reading; `None` when `root` is not a visible process.
    pub fn new(root: u32) -> Option<ProcessTree> {
        let proc_root = Path::new("/proc");
        if !proc_root.join(root.to_string()).is_dir() {
            return None;
        }
        let children_files = proc_root
            .join(format!("{root}/task/{root}/children"))
            .is_file();
        let mut t = ProcessTree {
            root,
            sys: System::new().ok()?,
            prev: HashMap::new(),
            last: Instant::now(),
            children_files,
            primed: false,
        };
        t.sample()?;
        t.primed = true;
        Some(t)
    }

    pub fn root(&self) -> u32 {
        self.root
    }

    /// Reads the tree; `None` once the root has exited.
    pub fn sample(&mut self) -> Option<TreeSample> {
        let proc_root = Path::new("/proc");
        let (pids, threads) = if self.children_files {
            descendants(proc_root, self.root)?
        } else {
            descendants_by_scan(proc_root, self.root)?
        };
        // Refresh the tree and the previous tree, so sysinfo forgets the dead.
        let mut list: Vec<Pid> = pids.iter().map(|&p| Pid::from_u32(p)).collect();
        list.extend(
            self.prev
                .keys()
                .filter(|p| !pids.contains(p))
                .map(|&p| Pid::from_u32(p)),
        );
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&list),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        let now = Instant::now();
        let wall_ms = now.duration_since(self.last).as_secs_f64() * 1000.0;
        let first = !self.primed;
        let mut cpu_ms = 0u64;
        let mut rss = 0u64;
        let mut next = HashMap::with_capacity(pids.len());
        for &pid in &pids {
            let Some(p) = self.sys.process(Pid::from_u32(pid)) else {
                continue;
            };
            rss += p.memory();
            let (start, cpu) = (p.start_time(), p.accumulated_cpu_time());
            cpu_ms += match self.prev.get(&pid) {
                Some(&(s, c)) if s == start => cpu.saturating_sub(c),
                _ if first => 0,
                _ => cpu,
            };
            next.insert(pid, (start, cpu));
        }
        if !next.contains_key(&self.root) {
            return None;
        }
        self.prev = next;
        self.last = now;
        let cpu_percent = if first || wall_ms <= 0.0 {
            0.0
        } else {
            cpu_ms as f64 / wall_ms * 100.0
        };
        Some(TreeSample {
            pids,
            cpu_percent,
            rss,
            threads,
        })
    }
}

/// The tree under `root` through the `children` file of each of its threads, with
/// the thread count; `None` when `root` is gone.
pub fn descendants(proc_root: &Path, root: u32) -> Option<(HashSet<u32>, u64)> {
    let mut seen = HashSet::from([root]);
    let mut stack = vec![root];
    let mut threads = 0u64;
    let mut root_seen = false;
    while let Some(pid) = stack.pop() {
        let task_dir = proc_root.join(pid.to_string()).join("task");
        let Ok(tasks) = std::fs::read_dir(&task_dir) else {
            continue;
        };
        root_seen |= pid == root;
        for task in tasks.flatten() {
            threads += 1;
            let Ok(text) = std::fs::read_to_string(task.path().join("children")) else {
                continue;
            };
            for child in text.split_whitespace().filter_map(|s| s.parse().ok()) {
                if seen.insert(child) {
                    stack.push(child);
                }
            }
        }
    }
    root_seen.then_some((seen, threads))
}

/// The same tree from every process's parent pid (`/proc/*/stat`), for kernels
/// without `children` files.
pub fn descendants_by_scan(proc_root: &Path, root: u32) -> Option<(HashSet<u32>, u64)> {
    let mut parent_of: HashMap<u32, Vec<(u32, u64)>> = HashMap::new();
    let mut root_threads = None;
    for entry in std::fs::read_dir(proc_root).ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command (which may hold spaces and parentheses).
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // state=0, ppid=1, ..., num_threads=17 (fields 3, 4 and 20 of proc(5)).
        let (Some(ppid), Some(nt)) = (
            fields.get(1).and_then(|s| s.parse::<u32>().ok()),
            fields.get(17).and_then(|s| s.parse::<u64>().ok()),
        ) else {
            continue;
        };
        if pid == root {
            root_threads = Some(nt);
        }
        parent_of.entry(ppid).or_default().push((pid, nt));
    }
    let mut threads = root_threads?;
    let mut seen = HashSet::from([root]);
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for &(child, nt) in parent_of.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            if seen.insert(child) {
                threads += nt;
                stack.push(child);
            }
        }
    }
    Some((seen, threads))
}

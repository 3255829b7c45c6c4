//! The container's limits: CPU quota, cpuset and memory limit of a process's
//! cgroup, v2 (unified) or v1, read from the cgroup filesystem.
//!
//! The process's cgroup path comes from `/proc/<pid>/cgroup`. Inside a container
//! without its own cgroup namespace that path names the host's hierarchy, which the
//! container does not see; then the mount root (the container's own cgroup) is used.
//! Limits apply at every level up to the mount root, so each level is read and the
//! tightest wins.

use std::path::{Path, PathBuf};

/// Memory of the cgroup level with the tightest limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupMemory {
    /// Bytes (v2 `memory.max`, v1 `memory.limit_in_bytes`); v1 reports "no limit" as a
    /// huge number, which callers drop by comparing with the host's memory.
    pub limit: u64,
    /// Bytes in use less reclaimable page cache (`inactive_file`), as `docker stats`
    /// and the kubelet's working set count it.
    pub used: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// The cgroup directories of one process, resolved once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    version: Version,
    /// CPU controller directories, leaf first, ending at the mount root.
    cpu: Vec<PathBuf>,
    /// Memory controller directories, leaf first.
    memory: Vec<PathBuf>,
    /// The cpuset controller's leaf directory.
    cpuset: Option<PathBuf>,
}

impl Cgroup {
    /// The cgroup of `pid` (this process when `None` or when `pid` is not visible).
    pub fn of(pid: Option<u32>) -> Option<Cgroup> {
        Cgroup::resolve(Path::new("/proc"), Path::new("/sys/fs/cgroup"), pid)
    }

    /// [`Cgroup::of`] against other roots (tests use fixture directories).
    pub fn resolve(proc_root: &Path, cgroup_root: &Path, pid: Option<u32>) -> Option<Cgroup> {
        let own = || std::fs::read_to_string(proc_root.join("self/cgroup")).ok();
        let text = match pid {
            Some(p) => std::fs::read_to_string(proc_root.join(p.to_string()).join("cgroup"))
                .ok()
                .or_else(own),
            None => own(),
        }?;
        let mut unified = None;
        let mut v1: Vec<(Vec<&str>, &str)> = Vec::new();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if id == "0" && controllers.is_empty() {
                unified = Some(path);
            } else {
                v1.push((controllers.split(',').collect(), path));
            }
        }
        let v1_path = |name: &str| {
            v1.iter()
                .find(|(cs, _)| cs.contains(&name))
                .map(|(_, p)| *p)
        };
        if cgroup_root.join("cgroup.controllers").is_file() {
            let path = unified.unwrap_or("/");
            let levels = levels(cgroup_root, path);
            return Some(Cgroup {
                version: Version::V2,
                cpuset: levels.first().cloned(),
                cpu: levels.clone(),
                memory: levels,
            });
        }
        let mount = |names: &[&str]| {
            names
                .iter()
                .map(|n| cgroup_root.join(n))
                .find(|d| d.is_dir())
        };
        let cpu = mount(&["cpu", "cpu,cpuacct", "cpuacct,cpu"])
            .map(|m| levels(&m, v1_path("cpu").unwrap_or("/")))
            .unwrap_or_default();
        let memory = mount(&["memory"])
            .map(|m| levels(&m, v1_path("memory").unwrap_or("/")))
            .unwrap_or_default();
        let cpuset = mount(&["cpuset"])
            .map(|m| levels(&m, v1_path("cpuset").unwrap_or("/")))
            .and_then(|l| l.into_iter().next());
        if cpu.is_empty() && memory.is_empty() && cpuset.is_none() {
            return None;
        }
        Some(Cgroup {
            version: Version::V1,
            cpu,
            memory,
            cpuset,
        })
    }

    /// CPUs the cgroup may use: the tightest quota (quota / period, fractional) and
    /// the size of the cpuset, whichever is smaller; `None` without either.
    pub fn cpu_limit(&self) -> Option<f64> {
        let quota = self
            .cpu
            .iter()
            .filter_map(|dir| match self.version {
                Version::V2 => {
                    let text = read(&dir.join("cpu.max"))?;
                    let mut it = text.split_whitespace();
                    let quota: f64 = it.next()?.parse().ok()?;
                    let period: f64 = it.next()?.parse().ok()?;
                    (quota > 0.0 && period > 0.0).then(|| quota / period)
                }
                Version::V1 => {
                    let quota: f64 = read(&dir.join("cpu.cfs_quota_us"))?.parse().ok()?;
                    let period: f64 = read(&dir.join("cpu.cfs_period_us"))?.parse().ok()?;
                    (quota > 0.0 && period > 0.0).then(|| quota / period)
                }
            })
            .reduce(f64::min);
        let cpuset = self.cpuset.as_ref().and_then(|dir| {
            let files: &[&str] = match self.version {
                Version::V2 => &["cpuset.cpus.effective"],
                Version::V1 => &["cpuset.effective_cpus", "cpuset.cpus"],
            };
            files
                .iter()
                .find_map(|f| read(&dir.join(f)))
                .and_then(|list| count_cpu_list(&list))
                .map(|n| n as f64)
        });
        match (quota, cpuset) {
            (Some(q), Some(s)) => Some(q.min(s)),
            (q, s) => q.or(s),
        }
    }

    /// The memory limit and use at the level with the tightest limit; `None` when
    /// no level sets one.
    pub fn memory(&self) -> Option<CgroupMemory> {
        let (limit_file, usage_file, inactive_key) = match self.version {
            Version::V2 => ("memory.max", "memory.current", "inactive_file"),
            Version::V1 => (
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                "total_inactive_file",
            ),
        };
        let (dir, limit) = self
            .memory
            .iter()
            .filter_map(|dir| {
                let limit: u64 = read(&dir.join(limit_file))?.parse().ok()?;
                Some((dir, limit))
            })
            .min_by_key(|&(_, limit)| limit)?;
        let usage: u64 = read(&dir.join(usage_file))?.parse().ok()?;
        let inactive = read(&dir.join("memory.stat"))
            .and_then(|stat| {
                stat.lines().find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == inactive_key).then(|| v.trim().parse::<u64>().ok())?
                })
            })
            .unwrap_or(0);
        Some(CgroupMemory {
            limit,
            used: usage.saturating_sub(inactive),
        })
    }
}

/// The directories from the process's cgroup up to the mount root; the root alone
/// when the process's path does not exist under this mount.
fn levels(mount: &Path, path: &str) -> Vec<PathBuf> {
    let leaf = mount.join(path.trim_start_matches('/'));
    if !leaf.is_dir() {
        return vec![mount.to_path_buf()];
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for dir in leaf.ancestors() {
        out.push(dir.to_path_buf());
        if dir == mount {
            break;
        }
    }
    out
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Counts the CPUs in a list such as `0-3,8,10-11`.
pub fn count_cpu_list(list: &str) -> Option<usize> {
    let mut n = 0;
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: usize = a.trim().parse().ok()?;
                let b: usize = b.trim().parse().ok()?;
                n += b.checked_sub(a)? + 1;
            }
            None => {
                part.trim().parse::<usize>().ok()?;
                n += 1;
            }
        }
    }
    (n > 0).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn cpu_lists_count() {
        assert_eq!(count_cpu_list("0-3,8,10-11\n"), Some(7));
        assert_eq!(count_cpu_list("5"), Some(1));
        assert_eq!(count_cpu_list(""), None);
        assert_eq!(count_cpu_list("3-1"), None);
    }

    #[test]
    fn v2_tightest_level_wins() {
        let t = tempfile::tempdir().unwrap();
        let (proc_root, cg) = (t.path().join("proc"), t.path().join("cg"));
        write(&proc_root, "42/cgroup", "0::/kubepods/pod1/ctr\n");
        write(&cg, "cgroup.controllers", "cpu memory cpuset\n");
        write(&cg, "kubepods/pod1/cpu.max", "400000 100000\n");
        write(&cg, "kubepods/pod1/ctr/cpu.max", "150000 100000\n");
        write(&cg, "kubepods/cpu.max", "max 100000\n");
        write(&cg, "kubepods/pod1/ctr/cpuset.cpus.effective", "0-7\n");
        write(&cg, "kubepods/pod1/memory.max", "1073741824\n");
        write(&cg, "kubepods/pod1/memory.current", "600000000\n");
        write(
            &cg,
            "kubepods/pod1/memory.stat",
            "anon 400000000\nfile 200000000\ninactive_file 100000000\n",
        );
        write(&cg, "kubepods/pod1/ctr/memory.max", "max\n");
        let c = Cgroup::resolve(&proc_root, &cg, Some(42)).unwrap();
        assert_eq!(c.cpu_limit(), Some(1.5));
        assert_eq!(
            c.memory(),
            Some(CgroupMemory {
                limit: 1 << 30,
                used: 500_000_000
            })
        );
        // The cpuset, when tighter than the quota, is the limit.
        write(&cg, "kubepods/pod1/ctr/cpuset.cpus.effective", "3\n");
        assert_eq!(c.cpu_limit(), Some(1.0));
    }

    #[test]
    fn v2_without_limits_and_with_a_path_the_container_cannot_see() {
        let t = tempfile::tempdir().unwrap();
        let (proc_root, cg) = (t.path().join("proc"), t.path().join("cg"));
        // Host path of the container; only the container's own root is mounted.
        write(
            &proc_root,
            "self/cgroup",
            "0::/system.slice/docker-abc.scope\n",
        );
        write(&cg, "cgroup.controllers", "cpu memory\n");
        write(&cg, "cpu.max", "200000 100000\n");
        write(&cg, "memory.max", "max\n");
        let c = Cgroup::resolve(&proc_root, &cg, None).unwrap();
        assert_eq!(c.cpu, vec![cg.clone()]);
        assert_eq!(c.cpu_limit(), Some(2.0));
        assert_eq!(c.memory(), None);
        // A pid that is not visible falls back to this process's cgroup.
        let c2 = Cgroup::resolve(&proc_root, &cg, Some(999_999)).unwrap();
        assert_eq!(c2, c);
    }

    #[test]
    fn v1_quota_and_memory_limit() {
        let t = tempfile::tempdir().unwrap();
        let (proc_root, cg) = (t.path().join("proc"), t.path().join("cg"));
        write(
            &proc_root,
            "7/cgroup",
            "11:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n3:cpuset:/docker/abc\n0::/\n",
        );
        write(&cg, "cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
        write(&cg, "cpu,cpuacct/cpu.cfs_period_us", "100000\n");
        write(&cg, "cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "50000\n");
        write(&cg, "cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
        write(&cg, "cpuset/docker/abc/cpuset.cpus", "0-1\n");
        write(&cg, "memory/memory.limit_in_bytes", "9223372036854771712\n");
        write(
            &cg,
            "memory/docker/abc/memory.limit_in_bytes",
            "2147483648\n",
        );
        write(
            &cg,
            "memory/docker/abc/memory.usage_in_bytes",
            "1000000000\n",
        );
        write(
            &cg,
            "memory/docker/abc/memory.stat",
            "cache 300000000\ninactive_file 1\ntotal_inactive_file 200000000\n",
        );
        let c = Cgroup::resolve(&proc_root, &cg, Some(7)).unwrap();
        assert_eq!(c.cpu_limit(), Some(0.5));
        assert_eq!(
            c.memory(),
            Some(CgroupMemory {
                limit: 2 << 30,
                used: 800_000_000
            })
        );
    }

    #[test]
    fn v1_unlimited_reports_the_huge_limit_and_no_quota() {
        let t = tempfile::tempdir().unwrap();
        let (proc_root, cg) = (t.path().join("proc"), t.path().join("cg"));
        write(&proc_root, "self/cgroup", "4:memory:/\n1:cpu:/\n0::/\n");
        write(&cg, "cpu/cpu.cfs_quota_us", "-1\n");
        write(&cg, "cpu/cpu.cfs_period_us", "100000\n");
        write(&cg, "memory/memory.limit_in_bytes", "9223372036854771712\n");
        write(&cg, "memory/memory.usage_in_bytes", "300000000\n");
        let c = Cgroup::resolve(&proc_root, &cg, None).unwrap();
        assert_eq!(c.cpu_limit(), None);
        assert_eq!(c.memory().unwrap().limit, 9223372036854771712);
    }

    #[test]
    fn this_machine_resolves_without_error() {
        // Whatever the host has, reading it must not fail or report nonsense.
        if let Some(c) = Cgroup::of(None) {
            if let Some(n) = c.cpu_limit() {
                assert!(n > 0.0);
            }
            if let Some(m) = c.memory() {
                assert!(m.limit > 0);
            }
        }
    }
}

//! Host-wide readings shared by every watch: memory (`sysinfo`), network counters
//! (`/proc/net/dev`, all interfaces as psutil counts them), block-device I/O
//! (`/proc/diskstats`, whole disks only, as psutil counts them) and filesystem usage
//! of configured paths (`sysinfo`'s disks, refreshed one filesystem at a time).
//!
//! The network counters are read from procfs rather than `sysinfo::Networks`:
//! its refresh reads several sysfs files per interface and cost ~370 µs per call on
//! the reference machine, against ~20 µs for the one procfs file.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use sysinfo::{CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, System};

/// Monotonic host counters; a watch keeps the values at its start and reports the
/// difference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub net_sent: u64,
    pub net_recv: u64,
    pub disk_read: u64,
    pub disk_written: u64,
}

impl Counters {
    /// `self - base`, never negative (an interface that went away lowers a sum).
    pub fn since(self, base: Counters) -> Counters {
        Counters {
            net_sent: self.net_sent.saturating_sub(base.net_sent),
            net_recv: self.net_recv.saturating_sub(base.net_recv),
            disk_read: self.disk_read.saturating_sub(base.disk_read),
            disk_written: self.disk_written.saturating_sub(base.disk_written),
        }
    }
}

/// Memory and counters read once per tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostTick {
    pub memory_total: u64,
    pub memory_available: u64,
    pub counters: Counters,
}

/// Usage of one filesystem, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    pub total: u64,
    /// Total less what an unprivileged user may still write (blocks reserved for
    /// root count as used).
    pub used: u64,
}

pub struct Host {
    /// Memory only; kept across samples.
    memory: System,
    disks: Disks,
    /// Names under /sys/block: whole disks, whose diskstats lines are summed
    /// (partitions would count the same I/O twice).
    whole_disks: HashSet<String>,
    /// diskstats names that are neither a whole disk nor a partition of one, already
    /// answered by a relist (so a permanent oddity does not relist every tick).
    odd_names: HashSet<String>,
    /// Usage read this tick, by mount point, so watches sharing a disk share a read.
    usage_cache: HashMap<PathBuf, Option<DiskUsage>>,
    /// Logical CPUs of the host.
    pub cpus: usize,
}

impl Host {
    /// Reads the lists once (mounts, interfaces, block devices, CPUs); blocking.
    /// Fails only where `sysinfo` does not support the platform.
    pub fn new() -> Result<Host, sysinfo::Error> {
        let mut cpu = System::new()?;
        cpu.refresh_cpu_list(CpuRefreshKind::nothing());
        let cpus = match cpu.cpus().len() {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Ok(Host {
            memory: System::new()?,
            disks: Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing())?,
            whole_disks: block_devices(),
            odd_names: HashSet::new(),
            usage_cache: HashMap::new(),
            cpus,
        })
    }

    /// The counters alone (a watch's baseline).
    pub fn counters(&mut self) -> Counters {
        let (net_recv, net_sent) = std::fs::read_to_string("/proc/net/dev")
            .map(|text| parse_net_dev(&text))
            .unwrap_or_default();
        let (disk_read, disk_written) = self.disk_io();
        Counters {
            net_sent,
            net_recv,
            disk_read,
            disk_written,
        }
    }

    /// Memory and counters, once per tick.
    pub fn tick(&mut self) -> HostTick {
        self.usage_cache.clear();
        self.memory
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        HostTick {
            memory_total: self.memory.total_memory(),
            memory_available: self.memory.available_memory(),
            counters: self.counters(),
        }
    }

    /// Bytes read and written by whole disks since boot.
    fn disk_io(&mut self) -> (u64, u64) {
        let Ok(text) = std::fs::read_to_string("/proc/diskstats") else {
            return (0, 0);
        };
        let (stats, unknown) = parse_diskstats(&text, &self.whole_disks);
        if unknown.iter().all(|n| self.odd_names.contains(*n)) {
            return stats;
        }
        // A device appeared: relist, then count again.
        self.odd_names.extend(unknown.iter().map(|n| n.to_string()));
        self.whole_disks = block_devices();
        parse_diskstats(&text, &self.whole_disks).0
    }

    /// The mount point whose filesystem holds `path`, or why there is none to read:
    /// the path does not exist, or its filesystem is one that `sysinfo` skips
    /// (network filesystems, whose statfs can hang, and pseudo filesystems).
    pub fn resolve_disk(&mut self, path: &Path) -> Result<PathBuf, String> {
        let real = path
            .canonicalize()
            .map_err(|e| format!("cannot resolve the path: {e}"))?;
        let mounts = std::fs::read_to_string("/proc/self/mounts")
            .map_err(|e| format!("cannot read /proc/self/mounts: {e}"))?;
        let (mount, fstype) =
            mount_of(&mounts, &real).ok_or_else(|| "no filesystem is mounted there".to_string())?;
        let listed = |disks: &Disks| disks.iter().any(|d| d.mount_point() == mount);
        if !listed(&self.disks) {
            self.disks
                .refresh_specifics(true, DiskRefreshKind::nothing());
        }
        if !listed(&self.disks) {
            return Err(format!(
                "{fstype} filesystem at {} is not sampled",
                mount.display()
            ));
        }
        Ok(mount)
    }

    /// Usage of the filesystem mounted at `mount` (from [`Host::resolve_disk`]), read
    /// at most once per tick.
    pub fn disk_usage(&mut self, mount: &Path) -> Option<DiskUsage> {
        if let Some(u) = self.usage_cache.get(mount) {
            return *u;
        }
        let usage = self
            .disks
            .iter_mut()
            .find(|d| d.mount_point() == mount)
            .and_then(|d| {
                d.refresh_specifics(DiskRefreshKind::nothing().with_storage())
                    .then(|| {
                        let total = d.total_space();
                        DiskUsage {
                            total,
                            used: total.saturating_sub(d.available_space()),
                        }
                    })
            });
        self.usage_cache.insert(mount.to_path_buf(), usage);
        usage
    }
}

fn block_devices() -> HashSet<String> {
    std::fs::read_dir("/sys/block")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Bytes received and sent, summed over the interfaces of `/proc/net/dev`.
pub fn parse_net_dev(text: &str) -> (u64, u64) {
    let (mut recv, mut sent) = (0u64, 0u64);
    for line in text.lines() {
        let Some((_, counters)) = line.split_once(':') else {
            continue;
        };
        let f: Vec<u64> = counters
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect();
        if f.len() >= 9 {
            recv += f[0];
            sent += f[8];
        }
    }
    (recv, sent)
}

/// Sums sectors read and written (fields 6 and 10, 512-byte units) over the whole
/// disks in `/proc/diskstats`; also returns the names that are neither a known disk
/// nor a partition of one (a sign that the device list is stale).
pub fn parse_diskstats<'a>(text: &'a str, whole: &HashSet<String>) -> ((u64, u64), Vec<&'a str>) {
    let (mut read, mut written, mut unknown) = (0u64, 0u64, Vec::new());
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(&name) = f.get(2) else {
            continue;
        };
        // /sys/block spells a '/' in a device name as '!'.
        if !whole.contains(&name.replace('/', "!")) {
            if !whole.iter().any(|d| name.starts_with(d.as_str())) {
                unknown.push(name);
            }
            continue;
        }
        let sectors = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        read += sectors(5) * 512;
        written += sectors(9) * 512;
    }
    ((read, written), unknown)
}

/// The mount (point, filesystem type) that holds `path`: the longest mount point
/// that is a prefix of it, the last mounted one when several are equal.
pub fn mount_of(mounts: &str, path: &Path) -> Option<(PathBuf, String)> {
    let mut best: Option<(PathBuf, String)> = None;
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(_), Some(point), Some(fstype)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let point = PathBuf::from(unescape_mount(point));
        if !path.starts_with(&point) {
            continue;
        }
        let longer = best
            .as_ref()
            .is_none_or(|(b, _)| point.components().count() >= b.components().count());
        if longer {
            best = Some((point, fstype.to_owned()));
        }
    }
    best
}

/// Undoes the octal escapes of /proc/mounts (`\040` for a space, ...).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let (b'\\', Some(d)) = (b[i], octal) {
            out.push(
                ((d[0] - b'0') as u16 * 64 + (d[1] - b'0') as u16 * 8 + (d[2] - b'0') as u16) as u8,
            );
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diskstats_sum_whole_disks_only() {
        let text = "\
 254       0 vda 204842 14683 14311026 397591 16249 50297 8523600 25043 0 16992 423811
 254       1 vda1 1000 0 2000 0 10 0 3000 0 0 0 0
   7       0 loop0 0 0 8 0 0 0 0 0 0 0 0
 259       0 nvme0n1 1 0 10 0 1 0 20 0 0 0 0
";
        let whole: HashSet<String> = ["vda", "loop0", "nvme0n1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let ((r, w), unknown) = parse_diskstats(text, &whole);
        assert_eq!(r, (14311026 + 8 + 10) * 512);
        assert_eq!(w, (8523600 + 20) * 512);
        assert!(unknown.is_empty());
        let ((_, _), unknown) = parse_diskstats("8 0 sdb 1 0 2 0 3 0 4 0 0 0 0\n", &whole);
        assert_eq!(unknown, ["sdb"]);
    }

    #[test]
    fn net_dev_sums_every_interface() {
        let text = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0:50000     300    0    0    0     0          0         0    7000      80    0    0    0     0       0          0
";
        assert_eq!(parse_net_dev(text), (51000, 8000));
    }

    #[test]
    fn mount_lookup_takes_the_longest_prefix() {
        let mounts = "\
/dev/vda / ext4 rw 0 0
proc /proc proc rw 0 0
srv:/export /data nfs4 rw 0 0
/dev/vdb /data/local\\040disk ext4 rw 0 0
";
        let m = |p: &str| mount_of(mounts, Path::new(p)).unwrap();
        assert_eq!(m("/home/u"), (PathBuf::from("/"), "ext4".into()));
        assert_eq!(m("/data/x"), (PathBuf::from("/data"), "nfs4".into()));
        assert_eq!(
            m("/data/local disk/y"),
            (PathBuf::from("/data/local disk"), "ext4".into())
        );
        // A path component is not a string prefix.
        assert_eq!(m("/database"), (PathBuf::from("/"), "ext4".into()));
    }

    #[test]
    fn host_reads_sane_values() {
        let mut h = Host::new().unwrap();
        assert!(h.cpus >= 1);
        let t = h.tick();
        assert!(t.memory_total > 0);
        assert!(t.memory_available > 0 && t.memory_available <= t.memory_total);
        let root = h.resolve_disk(Path::new("/")).expect("/ is sampled");
        let u = h.disk_usage(&root).expect("usage of /");
        assert!(u.total > 0 && u.used > 0 && u.used <= u.total);
        assert!(h.resolve_disk(Path::new("/no/such/path")).is_err());
        assert!(h.resolve_disk(Path::new("/proc/self")).is_err());
    }
}

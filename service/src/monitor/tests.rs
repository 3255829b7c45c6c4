//! The sampler's behaviour: fake GPUs (every key, switch-off, MIG, lost devices),
//! the real NVML path degrading cleanly, host and process-tree sanity against real
//! child processes, and the thread's lifecycle and backpressure.

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::cgroup::Cgroup;
use super::fake::{FakeGpu, FakeGpus};
use super::gpu::{DeviceRef, GpuError, GpuQuery, GpuSampler};
use super::host::Host;
use super::names::{self, GpuMetric};
use super::process::{descendants, descendants_by_scan};
use super::sampler::{available_cores, Sampler};
use super::*;

// ---------------------------------------------------------------- helpers

/// Log lines written while `f` runs on this thread.
fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf(Arc::new(Mutex::new(Vec::new())));
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

/// One GPU tick of `gpus`, emitted for a tree of `tree` pids.
fn gpu_sample(s: &mut GpuSampler, tree: &[u32]) -> Vec<(String, f64)> {
    let tick = s.tick(true);
    let tree: HashSet<u32> = tree.iter().copied().collect();
    let mut out = Vec::new();
    s.emit(&tick, Some(&tree), &mut out);
    out
}

fn keys(m: &[(String, f64)]) -> BTreeSet<String> {
    m.iter().map(|(k, _)| k.clone()).collect()
}

fn get(m: &[(String, f64)], key: &str) -> Option<f64> {
    m.iter().find(|(k, _)| k == key).map(|&(_, v)| v)
}

/// The value each [`FakeGpu::numbered`] reading should produce for device `i`.
fn expected(i: u32, m: GpuMetric) -> f64 {
    let i = i as f64;
    match m {
        GpuMetric::Gpu => 50.0 + i,
        GpuMetric::Memory => 20.0 + i,
        GpuMetric::MemoryAllocated => (10.0 + i) / 80.0 * 100.0,
        GpuMetric::MemoryAllocatedBytes => (10.0 + i) * (1u64 << 30) as f64,
        GpuMetric::Temp => 60.0 + i,
        GpuMetric::PowerWatts => 200.0 + i,
        GpuMetric::EnforcedPowerLimitWatts => 400.0,
        GpuMetric::PowerPercent => (200.0 + i) / 400.0 * 100.0,
        GpuMetric::SmClock => 1400.0 + i,
        GpuMetric::MemoryClock => 1500.0 + i,
        GpuMetric::GraphicsClock => 1600.0 + i,
        GpuMetric::CorrectedMemoryErrors => i,
        GpuMetric::UncorrectedMemoryErrors => 0.0,
        GpuMetric::FanSpeed => 30.0 + i,
        GpuMetric::EncoderUtilization => i,
        GpuMetric::PcieLinkGen => 4.0,
        GpuMetric::PcieLinkWidth => 16.0,
    }
}

/// A child process tree: `sh` running `python3 -c CODE` in the background and
/// waiting for it, so the watched pid (sh) has a descendant doing the work. Every
/// pid of the tree is killed on drop; the Python side also ends itself after 60 s.
struct Tree {
    sh: std::process::Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Tree {
    fn python(code: &str) -> Tree {
        let mut sh = Command::new("sh")
            .arg("-c")
            .arg("python3 -c \"$1\" & wait")
            .arg("sh")
            .arg(code)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("sh and python3 are needed by this test");
        let stdout = BufReader::new(sh.stdout.take().unwrap());
        Tree { sh, stdout }
    }

    fn pid(&self) -> u32 {
        self.sh.id()
    }

    /// Waits for the Python side to print a line.
    fn wait_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        if let Some((pids, _)) = descendants(Path::new("/proc"), self.pid()) {
            for pid in pids.iter().filter(|&&p| p != self.pid()) {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
        }
        let _ = self.sh.kill();
        let _ = self.sh.wait();
    }
}

/// Receives samples until `cond` holds for one, or panics at the deadline.
async fn recv_until(
    rx: &mut mpsc::Receiver<Sample>,
    deadline: Duration,
    what: &str,
    mut cond: impl FnMut(&Sample) -> bool,
) -> Sample {
    let end = tokio::time::Instant::now() + deadline;
    let mut last = None;
    loop {
        match tokio::time::timeout_at(end, rx.recv()).await {
            Ok(Some(s)) if cond(&s) => return s,
            Ok(Some(s)) => last = Some(s),
            Ok(None) => panic!("channel closed while waiting for {what}"),
            Err(_) => panic!("no sample with {what} within {deadline:?}; last: {last:?}"),
        }
    }
}

async fn recv(rx: &mut mpsc::Receiver<Sample>) -> Sample {
    recv_until(rx, Duration::from_secs(5), "any sample", |_| true).await
}

fn fast(pid: Option<u32>) -> Watch {
    Watch {
        pid,
        interval: Duration::from_millis(100),
        ..Watch::default()
    }
}

// ---------------------------------------------------------------- GPU

#[test]
fn fake_gpus_produce_every_gpu_key_with_its_value() {
    let fake = FakeGpus::new(2);
    fake.update(|d| d[1].pids = vec![4242]);
    let mut s = GpuSampler::new(Some(fake.boxed()));
    let out = gpu_sample(&mut s, &[1, 4242]);

    let mut want = BTreeSet::new();
    for i in 0..2u32 {
        for m in GpuMetric::ALL {
            let key = names::gpu_key(&i.to_string(), m);
            assert_eq!(get(&out, &key), Some(expected(i, m)), "{key}");
            want.insert(key);
        }
    }
    // The tree runs on device 1 only: its values repeat under gpu.process.1.
    for m in GpuMetric::ALL {
        let key = names::gpu_process_key("1", m);
        assert_eq!(get(&out, &key), Some(expected(1, m)), "{key}");
        want.insert(key);
    }
    assert_eq!(keys(&out), want);
    assert_eq!(out.len(), want.len(), "no key twice");
    assert_eq!(s.device_count(), 2);
    // Spot-check the literal W&B names.
    for key in [
        "gpu.0.gpu",
        "gpu.0.memory",
        "gpu.0.memoryAllocated",
        "gpu.0.memoryAllocatedBytes",
        "gpu.0.temp",
        "gpu.0.powerWatts",
        "gpu.0.enforcedPowerLimitWatts",
        "gpu.0.powerPercent",
        "gpu.0.smClock",
        "gpu.0.memoryClock",
        "gpu.0.graphicsClock",
        "gpu.0.correctedMemoryErrors",
        "gpu.0.uncorrectedMemoryErrors",
        "gpu.0.fanSpeed",
        "gpu.0.encoderUtilization",
        "gpu.0.pcieLinkGen",
        "gpu.0.pcieLinkWidth",
        "gpu.process.1.gpu",
        "gpu.process.1.memoryAllocated",
        "gpu.process.1.memoryAllocatedBytes",
    ] {
        assert!(want.contains(key), "{key}");
    }
}

#[test]
fn a_tree_on_no_device_gets_no_process_keys() {
    let fake = FakeGpus::new(2);
    fake.update(|d| d[0].pids = vec![7]);
    let mut s = GpuSampler::new(Some(fake.boxed()));
    let out = gpu_sample(&mut s, &[8, 9]);
    assert!(out.iter().all(|(k, _)| !k.starts_with("gpu.process.")));
    // Without a tree, the process lists are not even asked for.
    let tick = s.tick(false);
    let mut out = Vec::new();
    s.emit(&tick, None, &mut out);
    assert_eq!(out.len(), 2 * GpuMetric::ALL.len());
    assert_eq!(fake.calls(DeviceRef::gpu(0), GpuQuery::Processes), 1);
}

#[test]
fn a_failing_query_switches_off_only_its_metrics_with_one_line() {
    let fake = FakeGpus::new(2);
    fake.update(|d| {
        d[1].failing = vec![
            (GpuQuery::FanSpeed, GpuError::NotSupported),
            (
                GpuQuery::Temperature,
                GpuError::Failed("Unknown Error".into()),
            ),
            (GpuQuery::Power, GpuError::NotSupported),
        ];
    });
    let mut s = GpuSampler::new(Some(fake.boxed()));
    let (samples, logs) =
        capture_logs(|| (0..3).map(|_| gpu_sample(&mut s, &[])).collect::<Vec<_>>());

    let off = [
        GpuMetric::FanSpeed,
        GpuMetric::Temp,
        GpuMetric::PowerWatts,
        GpuMetric::PowerPercent,
    ];
    for out in &samples {
        for m in GpuMetric::ALL {
            assert_eq!(get(out, &names::gpu_key("0", m)), Some(expected(0, m)));
            let v = get(out, &names::gpu_key("1", m));
            if off.contains(&m) {
                assert_eq!(v, None, "{m:?} should be off on device 1");
            } else {
                assert_eq!(v, Some(expected(1, m)), "{m:?} should stay on device 1");
            }
        }
    }
    // Asked once, then never again; the healthy queries every tick.
    let dev1 = DeviceRef::gpu(1);
    assert_eq!(fake.calls(dev1, GpuQuery::FanSpeed), 1);
    assert_eq!(fake.calls(dev1, GpuQuery::Temperature), 1);
    assert_eq!(fake.calls(dev1, GpuQuery::Power), 1);
    assert_eq!(fake.calls(dev1, GpuQuery::PowerLimit), 3);
    assert_eq!(fake.calls(DeviceRef::gpu(0), GpuQuery::FanSpeed), 3);
    // One info line per switched-off query, naming device and metrics.
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("switched off"))
        .collect();
    assert_eq!(lines.len(), 3, "{logs}");
    assert!(lines
        .iter()
        .all(|l| l.contains("INFO") && l.contains("device=1")));
    assert!(lines.iter().any(|l| l.contains("fanSpeed")));
    assert!(lines
        .iter()
        .any(|l| l.contains("temp") && l.contains("Unknown Error")));
    assert!(lines.iter().any(|l| l.contains("powerWatts,powerPercent")));
}

#[test]
fn a_lost_gpu_is_dropped_whole_with_one_line() {
    let fake = FakeGpus::new(2);
    fake.update(|d| d[0].failing = vec![(GpuQuery::Memory, GpuError::Lost)]);
    let mut s = GpuSampler::new(Some(fake.boxed()));
    let (samples, logs) =
        capture_logs(|| (0..3).map(|_| gpu_sample(&mut s, &[])).collect::<Vec<_>>());
    for out in &samples {
        assert!(out.iter().all(|(k, _)| !k.starts_with("gpu.0.")), "{out:?}");
        assert_eq!(out.len(), GpuMetric::ALL.len());
    }
    assert_eq!(logs.matches("GPU lost").count(), 1, "{logs}");
    assert_eq!(fake.calls(DeviceRef::gpu(0), GpuQuery::Utilization), 1);
}

#[test]
fn mig_instances_report_memory_and_mark_their_gpu_in_use() {
    const GIB: u64 = 1 << 30;
    let mut gpu = FakeGpu::numbered(0);
    gpu.failing = vec![(GpuQuery::Utilization, GpuError::NotSupported)];
    for (slot, used, pids) in [(0, 2, vec![]), (2, 5, vec![77])] {
        let mut m = FakeGpu::numbered(0);
        m.memory.used = used * GIB;
        m.memory.total = 10 * GIB;
        m.pids = pids;
        gpu.mig.push((slot, m));
    }
    let fake = FakeGpus::with_devices(vec![gpu]);
    let mut s = GpuSampler::new(Some(fake.boxed()));
    let out = gpu_sample(&mut s, &[77]);
    assert_eq!(s.device_count(), 3);
    assert_eq!(get(&out, "gpu.0.mig.0.memoryAllocated"), Some(20.0));
    assert_eq!(get(&out, "gpu.0.mig.2.memoryAllocated"), Some(50.0));
    assert_eq!(
        get(&out, "gpu.0.mig.2.memoryAllocatedBytes"),
        Some((5 * GIB) as f64)
    );
    // Only memory is asked of an instance.
    assert!(keys(&out)
        .iter()
        .filter(|k| k.starts_with("gpu.0.mig."))
        .all(|k| k.ends_with(".memoryAllocated") || k.ends_with(".memoryAllocatedBytes")));
    assert_eq!(fake.calls(DeviceRef::mig(0, 2), GpuQuery::Temperature), 0);
    // The parent reports the rest, without the utilisation MIG mode hides.
    assert_eq!(get(&out, "gpu.0.gpu"), None);
    assert_eq!(get(&out, "gpu.0.temp"), Some(60.0));
    // pid 77 runs on instance 2: that instance and its GPU count as in use.
    assert_eq!(get(&out, "gpu.process.0.mig.2.memoryAllocated"), Some(50.0));
    assert_eq!(get(&out, "gpu.process.0.temp"), Some(60.0));
    assert_eq!(get(&out, "gpu.process.0.mig.0.memoryAllocated"), None);
}

#[test]
fn no_gpus_means_no_gpu_metrics_and_one_line() {
    let mut s = GpuSampler::new(Some(FakeGpus::new(0).boxed()));
    let (out, logs) = capture_logs(|| {
        let a = gpu_sample(&mut s, &[1]);
        let b = gpu_sample(&mut s, &[1]);
        [a, b].concat()
    });
    assert!(out.is_empty());
    assert_eq!(logs.lines().count(), 1, "{logs}");
    assert!(logs.contains("no GPU"), "{logs}");
}

#[test]
fn the_real_nvml_path_degrades_cleanly() {
    // Runs the real probe: on this machine (no driver) it finds nothing, logs at
    // most one line and yields no GPU metric; where a GPU exists it reads it.
    let probed = nvml::NvmlSource::probe().is_some();
    let mut s = GpuSampler::new(None);
    let (out, logs) = capture_logs(|| gpu_sample(&mut s, &[std::process::id()]));
    let gpu_keys = out.iter().filter(|(k, _)| k.starts_with("gpu.")).count();
    if probed {
        assert!(gpu_keys > 0 && get(&out, "gpu.0.memoryAllocatedBytes").is_some());
    } else {
        assert_eq!(gpu_keys, 0, "{out:?}");
        assert!(!logs.contains("ERROR") && !logs.contains("WARN"), "{logs}");
        let info = system_info();
        assert!(info.get("gpu_count").is_none(), "{info}");
    }
}

// ---------------------------------------------------------------- host and process

#[test]
fn host_metrics_are_sane() {
    let mut s = Sampler::new(Some(FakeGpus::new(1).boxed()));
    let w = Watch {
        pid: Some(std::process::id()),
        per_cpu: true,
        disk_paths: vec![PathBuf::from("/"), PathBuf::from("/no/such/dir")],
        ..Watch::default()
    };
    let (_, logs) = capture_logs(|| s.add(1, &w));
    assert!(
        logs.contains("no disk usage metrics") && logs.contains("/no/such/dir"),
        "{logs}"
    );

    // Loopback traffic between the baseline and the sample shows in network.*.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        std::io::copy(&mut c, &mut std::io::sink()).unwrap()
    });
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.write_all(&vec![7u8; 2 << 20]).unwrap();
    drop(c);
    assert_eq!(reader.join().unwrap(), 2 << 20);

    let (_, sample) = s.sample(&[1]).pop().unwrap();
    let m = &sample.metrics;
    let cpus = Host::new().unwrap().cpus;
    for (k, v) in m {
        assert!(v.is_finite() && *v >= 0.0, "{k} = {v}");
    }
    let pct = |k: &str| {
        let v = get(m, k).unwrap_or_else(|| panic!("{k} missing: {m:?}"));
        assert!((0.0..=100.0).contains(&v), "{k} = {v}");
        v
    };
    assert!(get(m, names::CPU).is_some());
    for i in 0..cpus {
        pct(&names::cpu_core(i));
    }
    assert!(pct(names::MEMORY_PERCENT) > 0.0);
    assert!(pct(names::PROC_MEMORY_PERCENT) > 0.0);
    assert!(pct("disk./.usagePercent") > 0.0);
    assert!(get(m, "disk./.usageGB").unwrap() > 0.0);
    assert!(get(m, names::PROC_RSS_MB).unwrap() > 1.0);
    assert!(get(m, names::PROC_AVAILABLE_MB).unwrap() > 1.0);
    assert!(get(m, names::PROC_THREADS).unwrap() >= 1.0);
    assert!(get(m, names::NETWORK_SENT).unwrap() >= (2 << 20) as f64);
    assert!(get(m, names::NETWORK_RECV).unwrap() >= (2 << 20) as f64);
    assert!(get(m, names::DISK_IN).is_some() && get(m, names::DISK_OUT).is_some());
    assert_eq!(get(m, "gpu.0.gpu"), Some(50.0));
    // Every key is one the name table makes.
    for (k, _) in m {
        let known = [
            names::CPU,
            names::MEMORY_PERCENT,
            names::PROC_RSS_MB,
            names::PROC_MEMORY_PERCENT,
            names::PROC_AVAILABLE_MB,
            names::PROC_THREADS,
            names::DISK_IN,
            names::DISK_OUT,
            names::NETWORK_SENT,
            names::NETWORK_RECV,
            "disk./.usagePercent",
            "disk./.usageGB",
        ]
        .contains(&k.as_str())
            || (k.starts_with("cpu.") && k.ends_with(".cpu_percent"))
            || k.starts_with("gpu.");
        assert!(known, "unexpected key {k}");
    }
    assert!(!m.iter().any(|(k, _)| k.contains("/no/such")));
}

#[test]
fn without_a_pid_there_are_host_metrics_only() {
    let mut s = Sampler::new(Some(FakeGpus::new(0).boxed()));
    s.add(1, &Watch::default());
    let (_, sample) = s.sample(&[1]).pop().unwrap();
    assert!(sample.get(names::MEMORY_PERCENT).is_some());
    assert!(sample.get(names::NETWORK_SENT).is_some());
    assert!(sample.get(names::CPU).is_none());
    assert!(sample.metrics.iter().all(|(k, _)| !k.starts_with("proc.")));
    assert!(sample.time > 1.6e9);
}

#[test]
fn a_child_burning_a_core_shows_one_cores_share() {
    let mut tree = Tree::python(
        "import sys, time\nprint('ready', flush=True)\nend = time.time() + 60\nwhile time.time() < end: pass",
    );
    assert_eq!(tree.wait_line().trim(), "ready");
    let cores = available_cores(
        Host::new().unwrap().cpus,
        Cgroup::of(Some(tree.pid())).as_ref(),
    );
    let one_core = 100.0 / cores.max(1.0);
    let monitor = Monitor::new(Some(FakeGpus::new(0).boxed()));
    let (tx, mut rx) = mpsc::channel(16);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = monitor.watch(
        Watch {
            interval: Duration::from_millis(250),
            ..fast(Some(tree.pid()))
        },
        tx,
    );
    rt.block_on(async {
        // The busy loop is the descendant, not the watched pid itself. A loaded
        // machine may give it a little less than a core.
        let s = recv_until(&mut rx, Duration::from_secs(8), "cpu near one core", |s| {
            s.get(names::CPU)
                .is_some_and(|c| c >= 0.6 * one_core && c <= 1.15 * one_core)
        })
        .await;
        assert!(s.get(names::PROC_THREADS).unwrap() >= 2.0, "{s:?}");
        // Never more than the tree can use.
        for _ in 0..3 {
            let s = recv(&mut rx).await;
            assert!(s.get(names::CPU).unwrap() <= 1.2 * one_core, "{s:?}");
        }
    });
}

#[test]
fn a_child_touching_200_mib_shows_in_rss() {
    let mut tree = Tree::python(
        "import sys, time\nb = b'x' * (200 << 20)\nprint('ready', flush=True)\ntime.sleep(60)",
    );
    let mut s = Sampler::new(Some(FakeGpus::new(0).boxed()));
    s.add(1, &fast(Some(tree.pid())));
    assert_eq!(tree.wait_line().trim(), "ready");
    let (_, sample) = s.sample(&[1]).pop().unwrap();
    let rss = sample.get(names::PROC_RSS_MB).unwrap();
    assert!((190.0..1024.0).contains(&rss), "rss {rss} MiB");
    let total_mb = rss / sample.get(names::PROC_MEMORY_PERCENT).unwrap() * 100.0;
    assert!(total_mb > rss, "memory total {total_mb} MiB");
    assert!(sample.get(names::PROC_AVAILABLE_MB).unwrap() < total_mb);
    assert_eq!(sample.get(names::PROC_THREADS), Some(2.0), "sh + python");
}

#[test]
fn process_metrics_stop_when_the_process_exits() {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("read x")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut s = Sampler::new(Some(FakeGpus::new(0).boxed()));
    s.add(1, &fast(Some(child.id())));
    let (_, first) = s.sample(&[1]).pop().unwrap();
    assert!(first.get(names::PROC_RSS_MB).is_some());
    drop(child.stdin.take());
    child.wait().unwrap();
    let (out, logs) = capture_logs(|| {
        let a = s.sample(&[1]).pop().unwrap().1;
        let b = s.sample(&[1]).pop().unwrap().1;
        (a, b)
    });
    for sample in [out.0, out.1] {
        assert!(sample.get(names::PROC_RSS_MB).is_none(), "{sample:?}");
        assert!(sample.get(names::CPU).is_none());
        assert!(sample.get(names::MEMORY_PERCENT).is_some());
    }
    assert_eq!(logs.matches("watched process exited").count(), 1, "{logs}");

    // A pid that never existed: host metrics, one line.
    let (_, logs) = capture_logs(|| s.add(2, &fast(Some(u32::MAX - 1))));
    assert!(logs.contains("watched process not found"), "{logs}");
    assert!(s.sample(&[2])[0].1.get(names::MEMORY_PERCENT).is_some());
}

#[test]
fn both_tree_walks_find_the_same_descendants() {
    let mut tree = Tree::python("import time\nprint('ready', flush=True)\ntime.sleep(60)");
    assert_eq!(tree.wait_line().trim(), "ready");
    let proc_root = Path::new("/proc");
    let (a, _) = descendants(proc_root, tree.pid()).unwrap();
    let (b, threads) = descendants_by_scan(proc_root, tree.pid()).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 2, "sh and python: {a:?}");
    assert!(threads >= 2);
    assert!(descendants(proc_root, u32::MAX - 1).is_none());
    assert!(descendants_by_scan(proc_root, u32::MAX - 1).is_none());
}

// ---------------------------------------------------------------- the thread

#[tokio::test]
async fn the_thread_runs_from_the_first_watch_to_the_last() {
    let monitor = Monitor::new(Some(FakeGpus::new(1).boxed()));
    assert!(!monitor.is_running());
    let (tx_a, mut rx_a) = mpsc::channel(16);
    let (tx_b, mut rx_b) = mpsc::channel(16);
    let a = monitor.watch(fast(None), tx_a);
    assert!(monitor.is_running());
    let b = monitor.watch(
        Watch {
            interval: Duration::from_millis(300),
            ..fast(None)
        },
        tx_b,
    );
    let b1 = recv(&mut rx_b).await;
    let b2 = recv(&mut rx_b).await;
    assert!(b2.time - b1.time >= 0.28, "{} -> {}", b1.time, b2.time);
    let mut n = 0;
    while let Ok(s) = rx_a.try_recv() {
        assert_eq!(s.get("gpu.0.gpu"), Some(50.0));
        n += 1;
    }
    assert!(
        n >= 4,
        "the 0.1 s watch got {n} samples in two 0.3 s periods"
    );
    assert!(a.sent() >= 3 && a.dropped() == 0);
    drop(a);
    drop(b);
    let m = monitor.clone();
    let stopped = tokio::task::spawn_blocking(move || m.wait_stopped(Duration::from_secs(2)));
    assert!(stopped.await.unwrap(), "the thread did not stop");
    assert!(!monitor.is_running());

    // A new watch starts a new thread, with the same (fake) GPUs.
    let (tx, mut rx) = mpsc::channel(16);
    let _c = monitor.watch(fast(None), tx);
    assert!(monitor.is_running());
    assert_eq!(recv(&mut rx).await.get("gpu.0.temp"), Some(60.0));
}

#[tokio::test]
async fn a_full_channel_drops_samples_without_stalling_others() {
    let monitor = Monitor::new(Some(FakeGpus::new(0).boxed()));
    let (tx_full, _rx_full) = mpsc::channel(1);
    let stuck = monitor.watch(fast(None), tx_full);
    let (tx, mut rx) = mpsc::channel(16);
    let ok = monitor.watch(fast(None), tx);
    for _ in 0..4 {
        recv(&mut rx).await;
    }
    // The first sample fills the channel; later ones are dropped and counted.
    assert!(stuck.dropped() >= 2, "dropped {}", stuck.dropped());
    assert_eq!(stuck.sent(), 1);
    // (The counter moves just after the send, so it may trail the receiver by one.)
    assert!(ok.sent() >= 3);
}

#[tokio::test]
async fn a_closed_channel_ends_its_watch() {
    let monitor = Monitor::new(Some(FakeGpus::new(0).boxed()));
    let (tx, rx) = mpsc::channel(4);
    let guard = monitor.watch(fast(None), tx);
    drop(rx);
    let m = monitor.clone();
    let stopped = tokio::task::spawn_blocking(move || m.wait_stopped(Duration::from_secs(2)));
    assert!(stopped.await.unwrap(), "the thread did not stop");
    assert!(!monitor.is_running());
    drop(guard);
}

#[tokio::test]
async fn intervals_below_the_minimum_are_raised() {
    let monitor = Monitor::new(Some(FakeGpus::new(0).boxed()));
    let (tx, mut rx) = mpsc::channel(16);
    let _g = monitor.watch(
        Watch {
            interval: Duration::ZERO,
            ..Watch::default()
        },
        tx,
    );
    let mut prev = recv(&mut rx).await.time;
    for _ in 0..3 {
        let t = recv(&mut rx).await.time;
        assert!(t - prev >= 0.09, "{prev} -> {t}");
        prev = t;
    }
}

// ---------------------------------------------------------------- metadata facts

#[test]
fn system_info_lists_fake_gpus_and_the_host() {
    let fake = FakeGpus::new(2);
    fake.update(|d| {
        let mut m = FakeGpu::numbered(0);
        m.name = "Fake MIG 1g.10gb".into();
        d[1].mig = vec![(3, m)];
    });
    let mut source = fake.clone();
    let v = info::system_info_with(Some(&mut source as &mut dyn GpuSource));
    assert_eq!(v["gpu_count"], 2);
    assert_eq!(v["gpu"], "Fake H100 80GB HBM3");
    assert_eq!(
        v["gpu_devices"][1]["uuid"],
        "GPU-00000000-0000-0000-0000-000000000001"
    );
    assert_eq!(v["gpu_devices"][0]["memory_total"], 80u64 << 30);
    assert_eq!(v["gpu_devices"][0]["architecture"], "Hopper");
    assert_eq!(v["gpu_devices"][1]["mig"][0]["slot"], 3);
    assert_eq!(v["gpu_devices"][1]["mig"][0]["name"], "Fake MIG 1g.10gb");
    assert_eq!(v["driver_version"], "550.54.15");
    assert_eq!(v["cuda_version"], "12.4");
    assert!(v["memory"]["total"].as_u64().unwrap() > 0);
    assert!(v["disk"]["/"]["total"].as_u64().unwrap() > 0);
}

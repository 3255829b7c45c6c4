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

mod process;
mod schedule;

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
    let mut s = GpuSampler::new(fake.boxed());
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
    let mut s = GpuSampler::new(fake.boxed());
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
    let mut s = GpuSampler::new(fake.boxed());
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
    let mut s = GpuSampler::new(fake.boxed());
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
    let mut s = GpuSampler::new(fake.boxed());
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
    let mut s = GpuSampler::new(FakeGpus::new(0).boxed());
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
    let mut s = GpuSampler::probing(nvml::source);
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

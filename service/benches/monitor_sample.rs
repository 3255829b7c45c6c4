//! CPU cost of one system-metrics sample: the real host (memory, network, disk I/O,
//! disk usage of `/`, the watched process tree, its cgroup) plus 8 fake GPUs, as the
//! sampler thread computes it. Run with `cargo bench --bench monitor_sample`.
//!
//! CPU time is the sampling thread's own (`/proc/thread-self/schedstat`, ns), so
//! other processes on the machine do not count; the process's user+system ticks
//! (`/proc/self/stat`) are printed as a cross-check.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runcore::monitor::fake::FakeGpus;
use runcore::monitor::{Sampler, Watch};

const SAMPLES: u32 = 2000;

/// CPU time of this thread, ns.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU of this process, clock ticks (10 ms on Linux).
fn process_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of proc(5): 11 and 12 after the command.
    let n = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

fn run(name: &str, gpus: u32, watch: Watch) {
    let mut sampler = Sampler::new(Some(FakeGpus::new(gpus).boxed()));
    sampler.add(1, &watch);
    // Warm up: first-use lists, GPU enumeration, allocator.
    let mut metrics = 0;
    for _ in 0..50 {
        metrics = sampler.sample(&[1])[0].1.metrics.len();
    }
    let (cpu0, ticks0, wall0) = (thread_cpu_ns(), process_ticks(), Instant::now());
    for _ in 0..SAMPLES {
        std::hint::black_box(sampler.sample(&[1]));
    }
    let (cpu, ticks, wall) = (
        thread_cpu_ns() - cpu0,
        process_ticks() - ticks0,
        wall0.elapsed(),
    );
    let per = |ns: f64| ns / SAMPLES as f64 / 1000.0;
    println!(
        "{name:<44} {metrics:>4} metrics  cpu {:>7.1} µs/sample  (process ticks {:>7.1} µs)  wall {:>7.1} µs",
        per(cpu as f64),
        per(ticks as f64 * 1e7),
        per(wall.as_nanos() as f64),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let me = std::process::id();
    let watch = |pid: Option<u32>, per_cpu: bool| Watch {
        pid,
        interval: Duration::from_millis(100),
        per_cpu,
        disk_paths: vec!["/".into()],
    };
    println!("{SAMPLES} samples each, after 50 warm-up samples");
    run(
        "host + process (this, 1 thread) + 8 fake GPUs",
        8,
        watch(Some(me), false),
    );
    run("same, per_cpu", 8, watch(Some(me), true));
    run("host + process, no GPU", 0, watch(Some(me), false));
    run("host only + 8 fake GPUs (no pid)", 8, watch(None, false));
    // A tree like a training job's: a parent with a 64-thread child.
    let child = Command::new("sh")
        .arg("-c")
        .arg("python3 -c \"$1\" & wait")
        .arg("sh")
        .arg(
            "import threading, time\n\
             ts = [threading.Thread(target=time.sleep, args=(30,), daemon=True) for _ in range(63)]\n\
             [t.start() for t in ts]\n\
             print('ready', flush=True)\n\
             time.sleep(30)",
        )
        .stdout(Stdio::piped())
        .spawn();
    if let Ok(mut child) = child {
        use std::io::BufRead;
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        if out.read_line(&mut line).is_ok() && line.trim() == "ready" {
            run(
                "host + tree (sh + 64-thread python) + 8 fake GPUs",
                8,
                watch(Some(child.id()), false),
            );
        }
        let tree = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()))
            .unwrap_or_default();
        for pid in tree.split_whitespace() {
            let _ = Command::new("kill").arg("-9").arg(pid).status();
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

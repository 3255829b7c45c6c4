//! The sampler on real processes and the host, its thread's lifecycle and
//! backpressure, and the metadata facts.

use super::*;

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
    let (cpu0, wall0) = (tree_cpu_seconds(tree.pid()), std::time::Instant::now());
    let _guard = monitor.watch(
        Watch {
            interval: Duration::from_millis(250),
            ..fast(Some(tree.pid()))
        },
        tx,
    );
    rt.block_on(async {
        // The busy loop is the descendant, not the watched pid itself. It gets a
        // core on an idle machine, less on a loaded one: the samples must show
        // what it really got (measured from /proc meanwhile), not a fixed figure.
        let s = recv_until(&mut rx, Duration::from_secs(8), "the tree's cpu", |s| {
            let got = 100.0 * (tree_cpu_seconds(tree.pid()) - cpu0)
                / wall0.elapsed().as_secs_f64()
                / cores.max(1.0);
            s.get(names::CPU)
                .is_some_and(|c| c >= 0.7 * got && c > 0.0 && c <= 1.15 * one_core)
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
    // Samples are due on a fixed schedule: one taken late is followed by one on
    // time, so single gaps vary with the machine's load; the span of four gaps
    // cannot be shorter than four minimum intervals less one late start.
    let first = recv(&mut rx).await.time;
    let mut last = first;
    for _ in 0..4 {
        last = recv(&mut rx).await.time;
    }
    assert!(last - first >= 0.3, "4 gaps in {:.3} s", last - first);
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

/// CPU seconds (user + system) the process tree under `root` has used, from /proc.
fn tree_cpu_seconds(root: u32) -> f64 {
    let (pids, _) = descendants(Path::new("/proc"), root).expect("the tree is alive");
    let ticks: u64 = pids
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .map(|stat| {
            let fields: Vec<&str> = stat[stat.rfind(')').unwrap_or(0) + 2..]
                .split(' ')
                .collect();
            // utime and stime: fields 14 and 15 of the line, the name was field 2.
            fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0)
        })
        .sum();
    ticks as f64 / 100.0
}

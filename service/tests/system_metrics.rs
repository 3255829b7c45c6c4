//! System metrics: the sidecar samples the host and the client's process tree for
//! each run at the run's interval, and the samples land in events.jsonl through the
//! transaction log.

mod support;

use std::process::{Child, Command};

use runcore::proto::v1::{FinishRequest, InitRequest, SystemMetricsSettings};
use support::*;
use tonic::Code;

const HOST_AND_PROCESS_KEYS: [&str; 12] = [
    "system.cpu",
    "system.memory_percent",
    "system.proc.memory.rssMB",
    "system.proc.memory.percent",
    "system.proc.memory.availableMB",
    "system.proc.cpu.threads",
    "system.disk./.usagePercent",
    "system.disk./.usageGB",
    "system.disk.in",
    "system.disk.out",
    "system.network.sent",
    "system.network.recv",
];

/// Kills a child process by pid when dropped.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
    }
}

fn python(code: &str) -> Child {
    Command::new("python3")
        .args(["-c", code])
        .spawn()
        .expect("python3")
}

async fn watched_run(s: &Sidecar, id: &str, client: &Child, interval: f64) {
    let mut c = s.client().await;
    c.init(InitRequest {
        id: id.into(),
        project: "p".into(),
        client: Some(local_client(client.id())),
        system_metrics: Some(SystemMetricsSettings {
            interval,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
}

/// Waits until events.jsonl has `n` samples, and returns them.
fn samples(
    s: &Sidecar,
    id: &str,
    n: usize,
) -> Vec<std::collections::BTreeMap<String, runcore::proto::v1::Value>> {
    let path = s.run_dir("p", id).join("events.jsonl");
    wait_for(|| {
        let rows = read_jsonl(&path);
        (rows.len() >= n).then_some(rows)
    })
}

#[tokio::test]
async fn a_busy_child_shows_one_cores_share_of_cpu() {
    let s = Sidecar::start();
    let mut busy = python("while True: pass");
    // Killed however the test ends: a failed assertion must not leave it spinning.
    let _reap = KillOnDrop(busy.id());
    let (cpu0, wall0) = (cpu_seconds(busy.id()), std::time::Instant::now());
    watched_run(&s, "busy", &busy, 0.5).await;
    let rows = samples(&s, "busy", 5);
    // The share of a core the child really got meanwhile: all of one on an idle
    // machine, less on a loaded one; the samples must show that, not a fixed figure.
    let got = 100.0 * (cpu_seconds(busy.id()) - cpu0) / wall0.elapsed().as_secs_f64();
    for key in HOST_AND_PROCESS_KEYS {
        assert!(
            rows[0].contains_key(key),
            "{key} missing from {:?}",
            rows[0].keys().collect::<Vec<_>>()
        );
    }
    assert!(
        !rows[0].keys().any(|k| k.starts_with("system.gpu")),
        "no GPU here, so no GPU keys"
    );
    for r in &rows {
        assert!(num(get(r, "_timestamp")) > 1.7e9 && num(get(r, "_runtime")) >= 0.0);
    }
    // One busy core, as a share of the cores available to it (cgroup-aware).
    let cores = std::thread::available_parallelism().unwrap().get() as f64;
    let share = 100.0 / cores;
    let cpu: Vec<f64> = rows[1..]
        .iter()
        .map(|r| num(get(r, "system.cpu")))
        .collect();
    let best = cpu.iter().cloned().fold(0.0, f64::max);
    let got = got / cores;
    assert!(
        best > 0.7 * got && best < 1.15 * share,
        "cpu {cpu:?}; the child got {got:.1}; one core is {share:.0}"
    );
    busy.kill().unwrap();
    busy.wait().unwrap();
}

#[tokio::test]
async fn a_child_that_allocates_200_mb_shows_it_in_rss() {
    let s = Sidecar::start();
    let mut fat = python("import time\nb = b'x' * (200 * 1024 * 1024)\ntime.sleep(60)");
    watched_run(&s, "fat", &fat, 0.5).await;
    let rss = wait_for(|| {
        let rows = read_jsonl(&s.run_dir("p", "fat").join("events.jsonl"));
        rows.iter()
            .map(|r| num(get(r, "system.proc.memory.rssMB")))
            .find(|mb| *mb >= 190.0)
    });
    assert!(rss < 400.0, "rss {rss} MB");
    fat.kill().unwrap();
    fat.wait().unwrap();
}

#[tokio::test]
async fn samples_go_through_the_log_and_stop_at_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Sidecar::start_in(tmp.path(), Transport::Tcp, &[]);
    let mut client = client_process();
    watched_run(&s, "logged", &client, 0.2).await;
    let before = samples(&s, "logged", 3).len();
    s.kill();
    // The restart rebuilds events.jsonl from the log: nothing acknowledged is lost.
    std::fs::remove_file(s.run_dir("p", "logged").join("events.jsonl")).unwrap();
    let s = Sidecar::start_in(tmp.path(), Transport::Tcp, &[]);
    let again = samples(&s, "logged", before).len();
    assert!(again >= before);
    let mut c = s.client().await;
    c.finish(FinishRequest {
        run_id: "logged".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let at_finish = read_jsonl(&s.run_dir("p", "logged").join("events.jsonl")).len();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        read_jsonl(&s.run_dir("p", "logged").join("events.jsonl")).len(),
        at_finish,
        "no samples after finish"
    );
    client.kill().unwrap();
    client.wait().unwrap();
}

#[tokio::test]
async fn a_samples_line_is_written_at_once_not_at_the_next_flush() {
    // A flush a minute apart: the samples' lines must not wait for it.
    let s = Sidecar::start_with(Transport::Tcp, &["--flush-interval", "60"]);
    let mut client = client_process();
    watched_run(&s, "quick", &client, 0.2).await;
    let rows = samples(&s, "quick", 2);
    assert!(
        rows.iter().all(|r| r.contains_key("system.cpu")),
        "{rows:?}"
    );
    client.kill().unwrap();
    client.wait().unwrap();
}

#[tokio::test]
async fn sampling_can_be_turned_off_and_bad_intervals_are_refused() {
    let s = Sidecar::start();
    let mut c = s.client().await;
    c.init(InitRequest {
        id: "quiet".into(),
        project: "p".into(),
        system_metrics: Some(SystemMetricsSettings {
            interval: 0.1,
            disabled: true,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    for i in 0..5 {
        c.log(log_req("quiet", &[("x", i as f64)], None, None))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    c.finish(FinishRequest {
        run_id: "quiet".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(read_jsonl(&s.run_dir("p", "quiet").join("events.jsonl")).is_empty());
    let err = c
        .init(InitRequest {
            project: "p".into(),
            system_metrics: Some(SystemMetricsSettings {
                interval: 0.05,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("at least 0.1"), "{}", err.message());
    // metadata.json describes the machine.
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.run_dir("p", "quiet").join("metadata.json")).unwrap(),
    )
    .unwrap();
    assert!(meta["cpu_count"].as_u64().unwrap() >= 1);
    assert!(meta["memory"]["total"].as_u64().unwrap() > 0);
}

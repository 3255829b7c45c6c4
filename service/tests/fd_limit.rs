//! At the file-descriptor limit (issue 14): a sidecar whose accept fails with
//! EMFILE while connections wait must back off, not spin on accept, and must go
//! on serving once descriptors are free again. The limit is lowered on the
//! running sidecar with `prlimit`, so nothing else about its start changes.

mod support;

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

/// The soft limit on open files, from /proc.
fn nofile(pid: u32) -> usize {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the sidecar's fds")
        .count()
}

/// Sets the soft limit on open files, keeping the hard one (which only a
/// privileged process could raise again).
fn set_nofile(pid: u32, limit: usize) {
    let status = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:"))
        .status()
        .expect("prlimit (util-linux)");
    assert!(status.success(), "prlimit --nofile={limit} failed");
}

#[tokio::test]
async fn out_of_descriptors_the_accept_loop_waits_and_recovers() {
    let s = Sidecar::start();
    let pid = s.pid();
    // A run first: its files are open, so the limit below leaves no room for it.
    let mut c = s.client().await;
    start_run(&mut c, "fd").await;
    let port: u16 = s.addr.rsplit(':').next().unwrap().parse().unwrap();

    // Room for two more descriptors: the next connections queue in the listen
    // backlog and every accept of them fails with EMFILE.
    let before = nofile(pid);
    let limit = open_files(pid) + 2;
    set_nofile(pid, limit);
    let waiting: Vec<TcpStream> = (0..16)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    let (cpu0, wall0) = (cpu_seconds(pid), Instant::now());
    // Let the accept loop meet the limit for a while (spinning, it would burn a
    // core all along; backing off up to 1 s between tries, it sleeps).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cpu = cpu_seconds(pid) - cpu0;
    let wall = wall0.elapsed().as_secs_f64();
    assert!(
        cpu < 0.25 * wall,
        "the sidecar used {cpu:.2} CPU s in {wall:.2} s at the descriptor limit: it spins on accept"
    );

    // Descriptors free again: the waiting connections go, and a new client is
    // served (the old channel's connection was open before the limit).
    drop(waiting);
    set_nofile(pid, before);
    let mut fresh = s.client().await;
    start_run(&mut fresh, "after").await;
    c.heartbeat(runcore::proto::v1::HeartbeatRequest {
        run_id: "fd".into(),
        ..Default::default()
    })
    .await
    .expect("the run opened before the limit is still served");
}

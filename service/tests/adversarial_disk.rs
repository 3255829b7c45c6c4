//! Disk faults (issue 14): a corrupt record in the middle of a run's log, store
//! files the disk refused to write, a disk that fills while a run logs (a small
//! tmpfs, mounted when the tests run as root, as CI's do). What was acknowledged is kept or recovered,
//! the damage is kept for inspection and reported, and the store ends up matching
//! the log.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use runcore::proto::v1::{FinishRequest, GetRunRequest, InitRequest};
use support::*;

/// Offsets of each frame of a log: (start, payload length).
fn frames(wal: &Path) -> Vec<(usize, usize)> {
    let bytes = std::fs::read(wal).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push((at, len));
        at += 8 + len;
    }
    out
}

fn files_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect()
}

/// A sidecar with run "c" in project "p" holding rows x=1, 2, 3 (one record each),
/// killed with the run open.
async fn three_rows(root: &Path) -> PathBuf {
    let mut s = Sidecar::start_in(root, Transport::Tcp, &[]);
    let mut c = s.client().await;
    init(
        &mut c,
        InitRequest {
            id: "c".into(),
            project: "p".into(),
            client_timeout: Some(3600.0),
            ..Default::default()
        },
    )
    .await;
    for x in [1.0, 2.0, 3.0] {
        c.log(log_req("c", &[("x", x)], None, None)).await.unwrap();
    }
    let dir = s.run_dir("p", "c");
    wait_for(|| (read_jsonl(&dir.join("history.jsonl")).len() == 3).then_some(()));
    s.kill();
    dir
}

#[tokio::test]
async fn a_corrupt_record_mid_log_is_kept_reported_and_what_follows_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = three_rows(tmp.path()).await;
    let wal = dir.join("run.wal");
    // Flip a byte inside the record of x=2 (frames: start, x=1, x=2, x=3).
    let f = frames(&wal);
    let (at, len) = f[2];
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes[at + 8 + len / 2] ^= 0xff;
    std::fs::write(&wal, &bytes).unwrap();

    let s = Sidecar::start_in(tmp.path(), Transport::Tcp, &[]);
    // The damaged log is kept as it was.
    let kept = files_starting(&dir, "run.wal.corrupt-");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(&kept[0]).unwrap(), bytes);
    // The rows before and after the bad record are there, and the run goes on.
    let mut c = s.client().await;
    c.log(log_req("c", &[("x", 4.0)], None, None))
        .await
        .unwrap();
    let done = c
        .finish(FinishRequest {
            run_id: "c".into(),
            exit_code: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let xs: Vec<f64> = read_jsonl(&dir.join("history.jsonl"))
        .iter()
        .map(|r| num(get(r, "x")))
        .collect();
    assert_eq!(xs, [1.0, 3.0, 4.0]);
    assert_eq!(done.run.unwrap().history_rows, 3);
    // The longer history the store had is not overwritten.
    let before = files_starting(&dir, "history.jsonl.before-recovery-");
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(read_jsonl(&before[0]).len(), 3);
    // GetRun and `runs show` say what happened.
    let reply = c
        .get_run(GetRunRequest { run_id: "c".into() })
        .await
        .unwrap();
    let problems = reply
        .metadata()
        .get("runcore-problems")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(problems.contains("corrupt"), "{problems:?}");
    let show = Command::new(BIN)
        .args(["runs", "show", "c", "--data-dir"])
        .arg(&s.data_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("corrupt"), "{text}");
}

#[tokio::test]
async fn store_files_the_disk_refused_are_rebuilt_from_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = three_rows(tmp.path()).await;
    // Every write to the history file now fails with ENOSPC.
    let history = dir.join("history.jsonl");
    std::fs::remove_file(&history).unwrap();
    std::os::unix::fs::symlink("/dev/full", &history).unwrap();
    let s = Sidecar::start_in(tmp.path(), Transport::Tcp, &[]);
    let mut c = s.client().await;
    c.log(log_req("c", &[("x", 4.0)], None, None))
        .await
        .expect("the run was recovered");
    c.finish(FinishRequest {
        run_id: "c".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(std::fs::symlink_metadata(&history).unwrap().is_file());
    let xs: Vec<f64> = read_jsonl(&history)
        .iter()
        .map(|r| num(get(r, "x")))
        .collect();
    assert_eq!(xs, [1.0, 2.0, 3.0, 4.0]);
}

/// A small tmpfs, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// Mounts a tmpfs of `bytes` at a new temp dir; None when this process may not
    /// mount (not root).
    fn mount(bytes: u64) -> Option<Self> {
        let uid = Command::new("id").arg("-u").output().expect("id -u");
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return None;
        }
        let dir = tempfile::tempdir().unwrap().keep();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount")
            .success();
        assert!(ok, "root, but mounting a tmpfs at {} failed", dir.display());
        Some(SmallDisk(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The disk fills while a run logs: the log append that does not fit is refused
/// with RESOURCE_EXHAUSTED (never acknowledged), every acknowledged row is in the
/// history exactly once after space is freed and the run finishes, and again after
/// a restart.
#[tokio::test]
async fn a_disk_that_fills_mid_run_loses_no_acknowledged_row() {
    let Some(disk) = SmallDisk::mount(4 << 20) else {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    };
    let data = disk.0.join("data");
    let tmp = tempfile::tempdir().unwrap();
    let data_arg = data.display().to_string();
    let mut s = Sidecar::start_in(tmp.path(), Transport::Tcp, &["--data-dir", &data_arg]);
    let mut c = s.client().await;
    init(
        &mut c,
        InitRequest {
            id: "full".into(),
            project: "p".into(),
            client_timeout: Some(3600.0),
            ..Default::default()
        },
    )
    .await;
    // Most of the disk taken by something else.
    let filler = disk.0.join("filler");
    std::fs::write(&filler, vec![0u8; 3 << 20]).unwrap();
    let text = "x".repeat(4096);
    let mut acked = Vec::new();
    let refused = loop {
        let n = acked.len() as f64;
        let mut req = log_req("full", &[("n", n)], None, None);
        req.data
            .insert("text".into(), runcore::value::string(&text));
        match c.log(req).await {
            Ok(_) => acked.push(n),
            Err(e) => break e,
        }
        assert!(acked.len() < 10_000, "the disk never filled");
    };
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("disk is full"),
        "{}",
        refused.message()
    );
    assert!(!acked.is_empty());
    eprintln!("{} rows acknowledged before the disk filled", acked.len());

    std::fs::remove_file(&filler).unwrap();
    c.finish(FinishRequest {
        run_id: "full".into(),
        ..Default::default()
    })
    .await
    .expect("finish once there is space again");
    let dir = s.run_dir("p", "full");
    let logged = |dir: &Path| -> Vec<f64> {
        read_jsonl(&dir.join("history.jsonl"))
            .iter()
            .map(|r| num(get(r, "n")))
            .collect()
    };
    assert_eq!(
        logged(&dir),
        acked,
        "every acknowledged row, once, in order"
    );
    s.terminate();
    let s = Sidecar::start_in(tmp.path(), Transport::Tcp, &["--data-dir", &data_arg]);
    assert_eq!(logged(&dir), acked, "and after a restart");
    drop(s);
}

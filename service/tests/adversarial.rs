//! Adversarial input, tried as an attacker would (issue 14): numbers out of range,
//! values nested to the decoder's limit, run ids that walk out of the data dir (in
//! every RPC, the read and edit ones included), symlinks swapped under SaveFiles.
//! Each must end in a status, never a panic, a lost row or a file read from
//! outside the allowed root.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use runcore::limits::{MAX_DEPTH, MAX_SEQ, MAX_STEP};
use runcore::proto::v1::{
    value::Kind, AlertRequest, DefineMetricRequest, DeleteRunRequest, FinishRequest, GetRunRequest,
    HeartbeatRequest, Histogram, InitRequest, ListFilesRequest, LogBatch, LogRequest, MapValue,
    MarkPreemptingRequest, ReadFileRequest, Row, SaveFilesRequest, ScanHistoryRequest,
    StopRunRequest, SystemMetricsSettings, UpdateConfigRequest, UpdateRunRequest,
    UpdateSummaryRequest, Value,
};
use runcore::proto::wal::{record::Kind as RecordKind, Record};
use support::*;
use tonic::Code;

fn expect<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, text: &str) {
    let err = r.expect_err("should fail");
    assert_eq!(err.code(), code, "{}", err.message());
    assert!(
        err.message().contains(text),
        "{:?} lacks {text:?}",
        err.message()
    );
}

fn hist(bins: Vec<f64>, counts: Vec<i64>) -> Value {
    Value {
        kind: Some(Kind::Histogram(Histogram {
            bins,
            counts,
            ..Default::default()
        })),
    }
}

fn one(key: &str, v: Value) -> BTreeMap<String, Value> {
    BTreeMap::from([(key.to_owned(), v)])
}

#[tokio::test]
async fn numbers_out_of_range_are_refused_and_the_run_goes_on() {
    let s = Sidecar::start();
    let mut c = s.client().await;
    let huge = 1e300;
    expect(
        c.init(InitRequest {
            id: "n".into(),
            client_timeout: Some(huge),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "client_timeout",
    );
    expect(
        c.init(InitRequest {
            id: "n".into(),
            system_metrics: Some(SystemMetricsSettings {
                interval: huge,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "interval",
    );
    start_run(&mut c, "n").await;
    expect(
        c.alert(AlertRequest {
            run_id: "n".into(),
            title: "t".into(),
            wait_duration: Some(huge),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "wait_duration",
    );
    for step in [MAX_STEP + 1, i64::MAX] {
        expect(
            c.log(log_req("n", &[("x", 1.0)], Some(step), None)).await,
            Code::InvalidArgument,
            "step",
        );
    }
    expect(
        c.log(LogRequest {
            seq: MAX_SEQ + 1,
            ..log_req("n", &[("x", 1.0)], None, None)
        })
        .await,
        Code::InvalidArgument,
        "seq",
    );
    expect(
        c.log(LogRequest {
            timestamp: huge,
            ..log_req("n", &[("x", 1.0)], None, None)
        })
        .await,
        Code::InvalidArgument,
        "timestamp",
    );
    for h in [
        hist(vec![0.0, f64::NAN], vec![1]),
        hist(vec![0.0, f64::INFINITY], vec![1]),
        hist(vec![0.0, 1.0], vec![-1]),
    ] {
        expect(
            c.log(LogRequest {
                run_id: "n".into(),
                data: one("h", h),
                ..Default::default()
            })
            .await,
            Code::InvalidArgument,
            "histogram",
        );
    }
    // The run took none of it and goes on.
    let ack = c
        .log(log_req("n", &[("x", 1.0)], None, None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.step, 1);
}

#[tokio::test]
async fn the_step_counter_stops_at_its_maximum() {
    let s = Sidecar::start();
    let mut c = s.client().await;
    start_run(&mut c, "edge").await;
    let ack = c
        .log(log_req("edge", &[("x", 1.0)], Some(MAX_STEP), Some(true)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.step, MAX_STEP + 1);
    expect(
        c.log(log_req("edge", &[("x", 2.0)], None, None)).await,
        Code::InvalidArgument,
        "largest step",
    );
    let done = c
        .finish(FinishRequest {
            run_id: "edge".into(),
            exit_code: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.run.unwrap().history_rows, 1);
    let rows = read_jsonl(&s.run_dir("p", "edge").join("history.jsonl"));
    assert_eq!(steps(&rows), [MAX_STEP]);
}

/// Writes a run's log by hand, as a sidecar with other rules might have.
fn write_log(dir: &std::path::Path, records: &[Record]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut w = runcore::wal::WalWriter::create(&dir.join("run.wal")).unwrap();
    for r in records {
        w.append(r).unwrap();
    }
}

fn start_record(id: &str) -> Record {
    Record {
        time: runcore::clock::now(),
        kind: Some(RecordKind::Start(InitRequest {
            id: id.into(),
            project: "p".into(),
            name: "poison".into(),
            client_timeout: Some(3600.0),
            ..Default::default()
        })),
    }
}

#[tokio::test]
async fn start_up_survives_a_run_it_cannot_open() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    {
        let s = Sidecar::start_in(root, Transport::Tcp, &[]);
        let mut c = s.client().await;
        init(
            &mut c,
            InitRequest {
                id: "good".into(),
                project: "p".into(),
                client_timeout: Some(3600.0),
                ..Default::default()
            },
        )
        .await;
        c.log(log_req("good", &[("x", 1.0)], None, None))
            .await
            .unwrap();
    }
    let data = root.join("data");
    // A log whose steps overflow the counter when replayed.
    let batch = LogBatch {
        run_id: "poison".into(),
        keys: vec!["x".into()],
        rows: vec![
            Row {
                scalar_keys: vec![0],
                scalar_values: vec![1.0],
                step: Some(i64::MAX),
                ..Default::default()
            },
            Row {
                scalar_keys: vec![0],
                scalar_values: vec![2.0],
                commit: Some(true),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    write_log(
        &data.join("p/poison"),
        &[
            start_record("poison"),
            Record {
                time: runcore::clock::now(),
                kind: Some(RecordKind::Log(batch)),
            },
        ],
    );
    // Logs that hold nothing: empty, and zeroed.
    std::fs::create_dir_all(data.join("p/empty")).unwrap();
    std::fs::write(data.join("p/empty/run.wal"), b"").unwrap();
    std::fs::create_dir_all(data.join("p/zeroed")).unwrap();
    std::fs::write(data.join("p/zeroed/run.wal"), vec![0u8; 4096]).unwrap();

    let s = Sidecar::start_in(root, Transport::Tcp, &[]);
    let mut c = s.client().await;
    let good = c
        .get_run(GetRunRequest {
            run_id: "good".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(good.run.unwrap().history_rows, 1);
    for id in ["empty", "zeroed"] {
        let err = c
            .get_run(GetRunRequest { run_id: id.into() })
            .await
            .expect_err("a log with no records is not an empty run");
        assert!(
            err.message().contains("transaction log"),
            "{id}: {}",
            err.message()
        );
    }
    // The overflowing run is open, and never wrapped its step.
    let poison = c
        .get_run(GetRunRequest {
            run_id: "poison".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    assert!(poison.step >= 0, "{poison:?}");
}

#[test]
fn huge_durations_on_the_command_line_are_refused_without_a_panic() {
    let out = Command::new(BIN)
        .args(["serve", "--shutdown-grace", "1e300"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--shutdown-grace"), "{err}");
    let out = Command::new(BIN)
        .args([
            "reap",
            "--backend",
            "mlflow",
            "--mlflow-tracking-uri",
            "http://127.0.0.1:9",
            "--stale",
            "1e300s",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A histogram inside `levels` maps.
fn nested(levels: usize) -> Value {
    let mut v = hist(vec![0.0, 1.0], vec![3]);
    for _ in 0..levels {
        v = Value {
            kind: Some(Kind::MapValue(MapValue {
                fields: one("k", v),
            })),
        };
    }
    v
}

#[tokio::test]
async fn a_value_at_the_nesting_limit_is_read_back_and_one_deeper_is_refused() {
    let s = Sidecar::start();
    let mut c = s.client().await;
    start_run(&mut c, "deep").await;
    c.log(log_req("deep", &[("a", 1.0)], None, None))
        .await
        .unwrap();
    c.log(LogRequest {
        run_id: "deep".into(),
        data: one("deep", nested(MAX_DEPTH)),
        ..Default::default()
    })
    .await
    .unwrap();
    expect(
        c.log(LogRequest {
            run_id: "deep".into(),
            data: one("deeper", nested(MAX_DEPTH + 1)),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "nested deeper",
    );
    expect(
        c.update_config(UpdateConfigRequest {
            run_id: "deep".into(),
            config: one("deeper", nested(MAX_DEPTH + 1)),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "nested deeper",
    );
    c.log(log_req("deep", &[("b", 2.0)], None, None))
        .await
        .unwrap();
    c.finish(FinishRequest {
        run_id: "deep".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    // An ended run is read back from its log.
    let run = c
        .get_run(GetRunRequest {
            run_id: "deep".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(run.run.unwrap().history_rows, 3);
    let mut scan = c
        .scan_history(ScanHistoryRequest {
            run_id: "deep".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut rows = Vec::new();
    while let Some(m) = scan.message().await.unwrap() {
        rows.extend(m.rows);
    }
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1].values.get("deep"), Some(&nested(MAX_DEPTH)));
}

#[tokio::test]
async fn every_rpc_checks_its_run_id_as_init_does() {
    let s = Sidecar::start();
    let mut c = s.client().await;
    start_run(&mut c, "inside").await;
    c.log(log_req("inside", &[("x", 1.0)], None, None))
        .await
        .unwrap();
    c.finish(FinishRequest {
        run_id: "inside".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    // A run directory outside the data dir.
    let outside = s.root.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::copy(
        s.run_dir("p", "inside").join("run.wal"),
        outside.join("run.wal"),
    )
    .unwrap();
    let long = "x".repeat(65);
    for id in [
        "../../outside",
        "../p/inside",
        "a/b",
        "a\0b",
        ".",
        long.as_str(),
    ] {
        let id = id.to_owned();
        let bad = |r: Result<(), tonic::Status>| {
            let e = r.expect_err(&id);
            assert_eq!(e.code(), Code::InvalidArgument, "{id:?}: {}", e.message());
        };
        bad(c
            .get_run(GetRunRequest { run_id: id.clone() })
            .await
            .map(drop));
        bad(c
            .scan_history(ScanHistoryRequest {
                run_id: id.clone(),
                ..Default::default()
            })
            .await
            .map(drop));
        bad(c
            .finish(FinishRequest {
                run_id: id.clone(),
                exit_code: None,
                ..Default::default()
            })
            .await
            .map(drop));
        bad(c
            .stop_run(StopRunRequest { run_id: id.clone() })
            .await
            .map(drop));
        bad(c
            .heartbeat(HeartbeatRequest {
                run_id: id.clone(),
                ..Default::default()
            })
            .await
            .map(drop));
        bad(c
            .mark_preempting(MarkPreemptingRequest { run_id: id.clone() })
            .await
            .map(drop));
        bad(c
            .log(log_req(&id, &[("x", 1.0)], None, None))
            .await
            .map(drop));
        bad(c
            .define_metric(DefineMetricRequest {
                run_id: id.clone(),
                name: "m".into(),
                ..Default::default()
            })
            .await
            .map(drop));
        bad(c
            .update_config(UpdateConfigRequest {
                run_id: id.clone(),
                ..Default::default()
            })
            .await
            .map(drop));
        bad(c
            .update_summary(UpdateSummaryRequest {
                run_id: id.clone(),
                ..Default::default()
            })
            .await
            .map(drop));
        bad(c
            .alert(AlertRequest {
                run_id: id.clone(),
                title: "t".into(),
                ..Default::default()
            })
            .await
            .map(drop));
        bad(c
            .save_files(SaveFilesRequest {
                run_id: id.clone(),
                glob: "/tmp/x".into(),
                ..Default::default()
            })
            .await
            .map(drop));
        bad(c
            .update_run(UpdateRunRequest {
                run_id: id.clone(),
                name: Some("renamed".into()),
                ..Default::default()
            })
            .await
            .map(drop));
        bad(c
            .delete_run(DeleteRunRequest {
                run_id: id.clone(),
                delete_artifacts: false,
            })
            .await
            .map(drop));
        bad(c
            .list_files(ListFilesRequest {
                run_id: id.clone(),
                ..Default::default()
            })
            .await
            .map(drop));
        bad(c
            .read_file(ReadFileRequest {
                run_id: id.clone(),
                name: "a.txt".into(),
                offset: 0,
            })
            .await
            .map(drop));
    }
    // Nothing outside the data dir was edited or deleted.
    let wal = std::fs::read(outside.join("run.wal")).unwrap();
    assert_eq!(
        wal,
        std::fs::read(s.run_dir("p", "inside").join("run.wal")).unwrap()
    );
}

fn save(run: &str, glob: &str) -> SaveFilesRequest {
    SaveFilesRequest {
        run_id: run.into(),
        glob: glob.into(),
        policy: "now".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn over_tcp_no_symlink_is_followed_even_when_swapped_in_mid_save() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("sub/f.txt"), "public").unwrap();
    std::fs::write(outside.join("f.txt"), "SECRET").unwrap();
    std::os::unix::fs::symlink(root.join("sub/f.txt"), root.join("link.txt")).unwrap();
    let r = root.display().to_string();
    let s = Sidecar::start_with(Transport::Tcp, &["--files-root", &r]);
    let mut c = s.client().await;
    c.init(InitRequest {
        id: "race".into(),
        project: "p".into(),
        working_dir: r.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    // A symlink inside the root is not followed either.
    expect(
        c.save_files(save("race", "link.txt")).await,
        Code::PermissionDenied,
        "outside the directories",
    );
    // Swap sub/ for a symlink to outside/ and back, as fast as possible, while
    // saving sub/f.txt: no copy may ever hold the outside file.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (root, outside, stop) = (root.clone(), outside.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::rename(root.join("sub"), root.join("sub.real"));
                let _ = std::os::unix::fs::symlink(&outside, root.join("sub"));
                let _ = std::fs::remove_file(root.join("sub"));
                let _ = std::fs::rename(root.join("sub.real"), root.join("sub"));
            }
        })
    };
    let copy = s.run_dir("p", "race").join("files/sub/f.txt");
    for _ in 0..300 {
        if c.save_files(save("race", "sub/f.txt")).await.is_ok() {
            let text = std::fs::read_to_string(&copy).unwrap_or_default();
            assert_ne!(text, "SECRET", "a file outside the root was copied");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
}

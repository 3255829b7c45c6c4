//! The MLflow backend against a real MLflow tracking server: a whole run read back
//! through MLflow's REST API and compared with the local store; a crashed run; an
//! outage of the server mid-run; `runcore sync` of an offline run; `runcore reap`.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use runcore::proto::v1::{
    AlertRequest, DefineMetricRequest, FinishRequest, InitRequest, SaveFilesRequest,
    UpdateConfigRequest,
};
use support::mlflow::{param, tag, MlflowServer, Rest};
use support::*;

fn mlflow_sidecar(uri: &str, extra: &[&str]) -> Sidecar {
    let mut args = vec!["--backend", "mlflow", "--mlflow-tracking-uri", uri];
    args.extend_from_slice(extra);
    Sidecar::start_with(Transport::Tcp, &args)
}

/// The local history of one key: (step, value).
fn local_history(s: &Sidecar, id: &str, key: &str) -> Vec<(i64, f64)> {
    read_jsonl(&s.run_dir("p", id).join("history.jsonl"))
        .iter()
        .filter_map(|r| Some((num(r.get("_step")?) as i64, num(r.get(key)?))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_run_reaches_mlflow_as_the_local_store_has_it() {
    let server = MlflowServer::shared();
    let s = mlflow_sidecar(&server.uri(), &[]);
    let mut c = s.client().await;
    let wd = tempfile::tempdir().unwrap();
    std::fs::write(wd.path().join("notes.txt"), "saved now").unwrap();
    std::fs::write(wd.path().join("model.bin"), "weights").unwrap();
    let mut config = data(&[("lr", 0.01)]);
    config.insert(
        "model".into(),
        runcore::value::map(BTreeMap::from([("layers".to_string(), int(4))])),
    );
    config.insert("long".into(), string("x".repeat(7000)));
    c.init(InitRequest {
        id: "full".into(),
        project: "p".into(),
        name: "full-run".into(),
        group: "g1".into(),
        notes: "a note".into(),
        tags: vec!["baseline".into()],
        config,
        working_dir: wd.path().display().to_string(),
        ..Default::default()
    })
    .await
    .unwrap();
    c.define_metric(DefineMetricRequest {
        run_id: "full".into(),
        name: "acc".into(),
        summary: "max".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    for i in 0..120 {
        let mut pairs = vec![("loss", 1.0 / (i as f64 + 1.0)), ("acc", i as f64 / 120.0)];
        if i % 10 == 0 {
            pairs.push(("val/loss", 2.0 / (i as f64 + 1.0)));
        }
        let mut req = log_req("full", &pairs, None, None);
        req.data.insert("phase".into(), string("train"));
        c.log(req).await.unwrap();
    }
    c.update_config(UpdateConfigRequest {
        run_id: "full".into(),
        config: data(&[("lr", 0.02)]),
        remove: vec![],
    })
    .await
    .unwrap();
    c.alert(AlertRequest {
        run_id: "full".into(),
        title: "done soon".into(),
        text: "almost".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    for (glob, policy) in [("notes.txt", "now"), ("model.bin", "end")] {
        c.save_files(SaveFilesRequest {
            run_id: "full".into(),
            glob: glob.into(),
            policy: policy.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let fin = c
        .finish(FinishRequest {
            run_id: "full".into(),
            exit_code: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fin.backends.len(), 1);
    let b = &fin.backends[0];
    assert_eq!(
        (b.backend.as_str(), b.pending_records, b.last_error.as_str()),
        ("mlflow", 0, ""),
        "{b:?}"
    );

    let rest = Rest::new(&server.uri());
    let run = rest
        .find_run("p", "full")
        .await
        .expect("the run is in MLflow");
    let mid = run["info"]["run_id"].as_str().unwrap().to_owned();
    assert_eq!(run["info"]["status"], "FINISHED");
    assert!(run["info"]["end_time"].as_i64().unwrap() > 0);
    for key in ["loss", "acc", "val/loss"] {
        let remote = rest.history(&mid, key).await;
        assert_eq!(remote, local_history(&s, "full", key), "{key}");
    }
    assert_eq!(rest.history(&mid, "loss").await.len(), 120);
    assert!(
        rest.history(&mid, "phase").await.is_empty(),
        "strings are not metrics"
    );
    assert_eq!(param(&run, "lr").as_deref(), Some("0.01"));
    assert_eq!(param(&run, "model.layers").as_deref(), Some("4"));
    assert_eq!(param(&run, "long").map(|v| v.len()), Some(6000));
    assert_eq!(
        tag(&run, "runcore.truncated_params").as_deref(),
        Some("long")
    );
    assert_eq!(
        tag(&run, "runcore.param_changed.lr").as_deref(),
        Some("0.02")
    );
    assert_eq!(tag(&run, "mlflow.runName").as_deref(), Some("full-run"));
    assert_eq!(tag(&run, "mlflow.note.content").as_deref(), Some("a note"));
    assert_eq!(tag(&run, "runcore.group").as_deref(), Some("g1"));
    assert_eq!(tag(&run, "runcore.tags").as_deref(), Some("baseline"));
    assert_eq!(tag(&run, "runcore.state").as_deref(), Some("finished"));
    assert_eq!(
        tag(&run, "runcore.alert").as_deref(),
        Some("[INFO] done soon: almost")
    );
    let mut files = rest.artifacts(&mid, "").await;
    files.sort();
    assert_eq!(
        files,
        ["alerts.jsonl", "model.bin", "notes.txt", "summary.json"]
    );
    assert_eq!(rest.artifact(&run, "model.bin").await, "weights");
    let summary =
        runcore::value::parse_json_map(&rest.artifact(&run, "summary.json").await).unwrap();
    assert_eq!(num(get(as_map(get(&summary, "acc")), "max")), 119.0 / 120.0);
    let alerts = rest.artifact(&run, "alerts.jsonl").await;
    assert!(alerts.contains("\"title\":\"done soon\""), "{alerts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_run_ends_failed_with_its_state_tag() {
    let server = MlflowServer::shared();
    let s = mlflow_sidecar(&server.uri(), &[]);
    let mut c = s.client().await;
    let mut client = client_process();
    c.init(InitRequest {
        id: "crashy".into(),
        project: "p".into(),
        client: Some(local_client(client.id())),
        ..Default::default()
    })
    .await
    .unwrap();
    for i in 0..10 {
        c.log(log_req("crashy", &[("x", i as f64)], None, None))
            .await
            .unwrap();
    }
    client.kill().unwrap();
    client.wait().unwrap();
    let rest = Rest::new(&server.uri());
    let run = wait_for_async(|| {
        let rest = &rest;
        async move {
            let run = rest.find_run("p", "crashy").await?;
            (run["info"]["status"] == "FAILED").then_some(run)
        }
    })
    .await;
    assert_eq!(tag(&run, "runcore.state").as_deref(), Some("crashed"));
    let mid = run["info"]["run_id"].as_str().unwrap();
    assert_eq!(
        rest.history(mid, "x").await,
        (0..10).map(|i| (i, i as f64)).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mlflow_outage_mid_run_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = MlflowServer::start(dir.path());
    let s = mlflow_sidecar(&server.uri(), &[]);
    let mut c = s.client().await;
    start_run(&mut c, "outage").await;
    for i in 0..50 {
        c.log(log_req("outage", &[("x", i as f64)], None, None))
            .await
            .unwrap();
    }
    let rest = Rest::new(&server.uri());
    // Wait until the first rows are in MLflow, then take it down for 20 s of logging.
    wait_for_async(|| {
        let rest = &rest;
        async move {
            let run = rest.find_run("p", "outage").await?;
            let n = rest
                .history(run["info"]["run_id"].as_str()?, "x")
                .await
                .len();
            (n == 50).then_some(())
        }
    })
    .await;
    server.stop();
    let down = std::time::Instant::now();
    let mut i = 50;
    while down.elapsed() < Duration::from_secs(20) {
        c.log(log_req("outage", &[("x", i as f64)], None, None))
            .await
            .unwrap();
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = c
        .get_run(runcore::proto::v1::GetRunRequest {
            run_id: "outage".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let lag = &got.backends[0];
    assert!(
        lag.pending_records > 0 && !lag.last_error.is_empty(),
        "the outage shows as lag: {lag:?}"
    );
    server.restart();
    let fin = c
        .finish(FinishRequest {
            run_id: "outage".into(),
            exit_code: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fin.backends[0].pending_records, 0, "{:?}", fin.backends[0]);
    let run = rest.find_run("p", "outage").await.unwrap();
    assert_eq!(run["info"]["status"], "FINISHED");
    let remote = rest
        .history(run["info"]["run_id"].as_str().unwrap(), "x")
        .await;
    assert_eq!(
        remote,
        (0..i).map(|k| (k, k as f64)).collect::<Vec<_>>(),
        "every row exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_delivers_an_offline_run_once() {
    let server = MlflowServer::shared();
    let s = Sidecar::start();
    let mut c = s.client().await;
    start_run(&mut c, "offline").await;
    for i in 0..30 {
        c.log(log_req("offline", &[("y", i as f64 * 2.0)], None, None))
            .await
            .unwrap();
    }
    let dir = s.run_dir("p", "offline");
    let sync = || {
        std::process::Command::new(BIN)
            .arg("sync")
            .arg(&dir)
            .args([
                "--backend",
                "mlflow",
                "--mlflow-tracking-uri",
                &server.uri(),
            ])
            .env("RUNCORE_LOG", "warn")
            .output()
            .unwrap()
    };
    // While a sidecar has the run open, sync refuses: that sidecar owns it.
    let refused = sync();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("running sidecar has this run open"));
    c.finish(FinishRequest {
        run_id: "offline".into(),
        exit_code: Some(2),
        ..Default::default()
    })
    .await
    .unwrap();
    drop(c);
    let mut s = s;
    s.terminate();
    let out = sync();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("synced"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let again = sync();
    assert!(again.status.success());
    let rest = Rest::new(&server.uri());
    let run = rest.find_run("p", "offline").await.unwrap();
    assert_eq!(run["info"]["status"], "FAILED");
    assert_eq!(tag(&run, "runcore.state").as_deref(), Some("failed"));
    let remote = rest
        .history(run["info"]["run_id"].as_str().unwrap(), "y")
        .await;
    assert_eq!(
        remote,
        (0..30).map(|k| (k, k as f64 * 2.0)).collect::<Vec<_>>()
    );
    let show = std::process::Command::new(BIN)
        .args(["runs", "show", "offline", "--data-dir"])
        .arg(&s.data_dir)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&show.stdout).contains("mlflow    delivered"),
        "{}",
        String::from_utf8_lossy(&show.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reap_fails_runs_whose_sidecar_died() {
    let server = MlflowServer::shared();
    let mut dead = mlflow_sidecar(&server.uri(), &["--heartbeat-interval", "0.2"]);
    let mut c = dead.client().await;
    start_run(&mut c, "reaped").await;
    c.log(log_req("reaped", &[("x", 1.0)], None, None))
        .await
        .unwrap();
    let rest = Rest::new(&server.uri());
    // Heartbeats are arriving.
    wait_for_async(|| {
        let rest = &rest;
        async move { tag(&rest.find_run("p", "reaped").await?, "runcore.heartbeat") }
    })
    .await;
    dead.kill();
    // A run whose sidecar lives keeps beating and is left alone.
    let alive = mlflow_sidecar(&server.uri(), &["--heartbeat-interval", "0.2"]);
    let mut c2 = alive.client().await;
    start_run(&mut c2, "alive").await;
    wait_for_async(|| {
        let rest = &rest;
        async move { tag(&rest.find_run("p", "alive").await?, "runcore.heartbeat") }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = std::process::Command::new(BIN)
        .args([
            "reap",
            "--backend",
            "mlflow",
            "--mlflow-tracking-uri",
            &server.uri(),
            "--stale",
            "1.5s",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reaped = rest.find_run("p", "reaped").await.unwrap();
    assert_eq!(reaped["info"]["status"], "FAILED");
    assert_eq!(tag(&reaped, "runcore.state").as_deref(), Some("crashed"));
    let alive_run = rest.find_run("p", "alive").await.unwrap();
    assert_eq!(alive_run["info"]["status"], "RUNNING");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(reaped["info"]["run_id"].as_str().unwrap())
    );
}

#[tokio::test]
async fn turning_a_backend_on_does_not_upload_old_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Sidecar::start_in(tmp.path(), Transport::Tcp, &[]);
    let mut c = s.client().await;
    start_run(&mut c, "old").await;
    c.log(log_req("old", &[("x", 1.0)], None, None))
        .await
        .unwrap();
    c.finish(FinishRequest {
        run_id: "old".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(s.terminate(), Some(0));
    // No forwarder is made for the run written without a backend (runcore sync is
    // the way to send it).
    let s = Sidecar::start_in(
        tmp.path(),
        Transport::Tcp,
        &[
            "--backend",
            "mlflow",
            "--mlflow-tracking-uri",
            "http://127.0.0.1:9",
        ],
    );
    // A forwarder would make forward/ at once; give one a second to show up.
    for _ in 0..20 {
        assert!(!s.run_dir("p", "old").join("forward").exists());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

//! The W&B backend against a fake W&B server built from the protocol's public
//! shapes (tests/support/wandb.rs), which checks every request: a whole run and
//! the shapes of its config, history, summary, events, files and alerts; idle
//! heartbeats, a stop from W&B and preemption; a 30 s outage and a rate limit
//! with every row arriving exactly once; a refused API key; `runcore sync` of an
//! offline run against what the live run sent; a SIGKILL in the middle of an
//! upload, and the restart going on from the cursor.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use runcore::proto::v1::run_service_client::RunServiceClient;
use runcore::proto::v1::{
    AlertRequest, DefineMetricRequest, FinishRequest, GetRunRequest, HeartbeatRequest, InitRequest,
    LogBatch, MarkPreemptingRequest, Row, SaveFilesRequest, SystemMetricsSettings,
    UpdateConfigRequest, UpdateSummaryRequest,
};
use serde_json::{json, Value as Json};
use support::wandb::{self, FakeWandb, API_KEY, DEFAULT_ENTITY};
use support::*;
use tonic::transport::Channel;

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn no_system_metrics() -> Option<SystemMetricsSettings> {
    Some(SystemMetricsSettings {
        disabled: true,
        ..Default::default()
    })
}

fn finish_req(run: &str, exit_code: Option<i32>) -> FinishRequest {
    FinishRequest {
        run_id: run.into(),
        exit_code,
        ..Default::default()
    }
}

fn alert(run: &str, title: &str, text: &str, level: &str) -> AlertRequest {
    AlertRequest {
        run_id: run.into(),
        title: title.into(),
        text: text.into(),
        level: level.into(),
        wait_duration: None,
    }
}

async fn should_stop(c: &mut RunServiceClient<Channel>, run: &str) -> bool {
    c.heartbeat(HeartbeatRequest {
        run_id: run.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .should_stop
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_run_reaches_wandb_in_its_shapes() {
    let fake = FakeWandb::start();
    let s = wandb::sidecar(&fake, &[]);
    let mut c = s.client().await;
    let wd = tempfile::tempdir().unwrap();
    std::fs::write(wd.path().join("notes.txt"), "saved now").unwrap();
    std::fs::write(wd.path().join("model.bin"), "weights").unwrap();
    std::fs::write(wd.path().join("live.txt"), "live text").unwrap();
    let mut config = data(&[("lr", 0.01)]);
    config.insert(
        "model".into(),
        runcore::value::map(BTreeMap::from([("layers".to_string(), int(4))])),
    );
    c.init(InitRequest {
        id: "full".into(),
        project: "p".into(),
        entity: "team".into(),
        name: "full-run".into(),
        group: "g1".into(),
        job_type: "train".into(),
        tags: vec!["baseline".into(), "v2".into()],
        notes: "a note".into(),
        config,
        working_dir: wd.path().display().to_string(),
        system_metrics: Some(SystemMetricsSettings {
            interval: 0.2,
            ..Default::default()
        }),
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
    for lr in [0.02, 0.03, 0.04] {
        c.update_config(UpdateConfigRequest {
            run_id: "full".into(),
            config: data(&[("lr", lr)]),
            remove: vec![],
        })
        .await
        .unwrap();
    }
    // The second alert with the same title is throttled by runcore: W&B gets one.
    for (title, text, level) in [
        ("done soon", "almost", ""),
        ("done soon", "again", ""),
        ("gpu hot", "91C", "WARN"),
    ] {
        c.alert(alert("full", title, text, level)).await.unwrap();
    }
    for (glob, policy) in [
        ("notes.txt", "now"),
        ("model.bin", "end"),
        ("live.txt", "live"),
    ] {
        c.save_files(SaveFilesRequest {
            run_id: "full".into(),
            glob: glob.into(),
            policy: policy.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    fake.wait_run("full", |v| v.events.len() >= 2).await;
    let fin = c
        .finish(finish_req("full", None))
        .await
        .unwrap()
        .into_inner();
    let b = &fin.backends[0];
    assert_eq!(
        (b.backend.as_str(), b.pending_records, b.last_error.as_str()),
        ("wandb", 0, ""),
        "{b:?}"
    );
    fake.assert_clean();
    let v = fake.run("full").expect("the run is in W&B");

    // UpsertBucket: identity, host and config in W&B's {key: {"value": v}} form.
    let first = &v.upserts[0];
    for (k, want) in [
        ("name", json!("full")),
        ("project", json!("p")),
        ("entity", json!("team")),
        ("displayName", json!("full-run")),
        ("groupName", json!("g1")),
        ("jobType", json!("train")),
        ("notes", json!("a note")),
        ("tags", json!(["baseline", "v2"])),
    ] {
        assert_eq!(first[k], want, "UpsertBucket {k}");
    }
    assert!(
        first["host"].as_str().is_some_and(|h| !h.is_empty()),
        "{first}"
    );
    let first_config: Json = serde_json::from_str(first["config"].as_str().unwrap()).unwrap();
    assert_eq!(
        first_config,
        json!({"lr": {"value": 0.01}, "model": {"value": {"layers": 4}}})
    );
    assert_eq!(v.config()["lr"], json!({"value": 0.04}), "the last config");
    assert!(
        v.upserts.len() <= 3,
        "three quick config changes are debounced, got {} upserts",
        v.upserts.len()
    );

    // History: exactly the local store's lines, in order.
    let dir = s.run_dir("p", "full");
    assert_eq!(v.history, lines_of(&dir.join("history.jsonl")));
    assert_eq!(v.history.len(), 120);
    // Summary: the whole summary, as the local store has it.
    let summary = runcore::value::parse_json_map(v.summary.as_deref().unwrap()).unwrap();
    assert_eq!(summary, read_json(&dir.join("summary.json")));
    assert_eq!(num(get(as_map(get(&summary, "acc")), "max")), 119.0 / 120.0);
    // Events: system.* keys, as many samples as the local store has.
    assert_eq!(v.events.len(), lines_of(&dir.join("events.jsonl")).len());
    for line in &v.events {
        let e: Json = serde_json::from_str(line).unwrap();
        assert_eq!(e["_wandb"], true);
        let keys = e.as_object().unwrap().keys();
        assert!(
            keys.filter(|k| k.starts_with("system.")).count() > 0,
            "{line}"
        );
    }
    // Files: each uploaded with its content; the unchanged live file only once.
    let content = |n: &str| String::from_utf8(v.files[n].clone()).unwrap();
    assert_eq!(content("notes.txt"), "saved now");
    assert_eq!(content("model.bin"), "weights");
    assert_eq!(content("live.txt"), "live text");
    let mut puts = v.puts.clone();
    puts.sort();
    assert_eq!(
        puts,
        ["live.txt", "model.bin", "notes.txt"],
        "no re-upload of unchanged content"
    );
    let mut reported = v.reported.clone();
    reported.sort();
    assert_eq!(reported, puts);
    // Alerts: what runcore sent, with W&B's severities.
    assert_eq!(
        v.alerts,
        [
            (
                "done soon".to_string(),
                "almost".to_string(),
                "INFO".to_string()
            ),
            ("gpu hot".to_string(), "91C".to_string(), "WARN".to_string())
        ]
    );
    assert_eq!((v.complete, v.exitcode), (Some(true), Some(0)));
    for r in fake.requests().iter().filter(|r| r.op == "file_stream") {
        assert_eq!(r.path, "/files/team/p/full/file_stream");
    }
    // The API key is never written to disk (cursor included).
    for f in files_under(&s.data_dir) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(API_KEY),
            "{} holds the API key",
            f.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_runs_beat_and_a_stop_from_wandb_reaches_the_client() {
    let fake = FakeWandb::start();
    let s = wandb::sidecar(&fake, &["--heartbeat-interval", "0.3"]);
    let mut c = s.client().await;
    c.init(InitRequest {
        id: "idle".into(),
        project: "p".into(),
        system_metrics: no_system_metrics(),
        ..Default::default()
    })
    .await
    .unwrap();
    c.log(log_req("idle", &[("x", 1.0)], None, None))
        .await
        .unwrap();
    let v = fake.wait_run("idle", |v| v.heartbeats >= 3).await;
    // No entity in Init: the key's default entity, as W&B's reply names it.
    assert_eq!(v.entity, DEFAULT_ENTITY);
    // The fake counts a request before it lists it: wait for the list too.
    let requests = wait_for_async(|| async {
        let requests = fake.requests();
        let beats = requests
            .iter()
            .filter(|r| r.op == "file_stream" && r.body.get("files").is_none())
            .count();
        (beats >= 3).then_some(requests)
    })
    .await;
    let beats: Vec<_> = requests
        .iter()
        .filter(|r| r.op == "file_stream" && r.body.get("files").is_none())
        .collect();
    for b in &beats {
        assert_eq!(b.body, json!({"complete": false, "failed": false}));
        assert_eq!(
            b.path,
            format!("/files/{DEFAULT_ENTITY}/p/idle/file_stream")
        );
    }
    assert!(requests.iter().any(|r| r.op == "RunStoppedStatus"));

    assert!(!should_stop(&mut c, "idle").await);
    // The Stop button in W&B's UI: the client's next heartbeats say should_stop.
    fake.stop_run("idle");
    let deadline = Instant::now() + PATIENCE;
    while !should_stop(&mut c, "idle").await {
        assert!(Instant::now() < deadline, "should_stop never came");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    c.mark_preempting(MarkPreemptingRequest {
        run_id: "idle".into(),
    })
    .await
    .unwrap();
    fake.wait_run("idle", |v| v.preempting).await;
    c.finish(finish_req("idle", Some(1))).await.unwrap();
    let v = fake.wait_run("idle", |v| v.complete.is_some()).await;
    assert_eq!((v.complete, v.exitcode), (Some(true), Some(1)));
    fake.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_and_a_rate_limit_lose_and_repeat_nothing() {
    let fake = FakeWandb::start();
    let s = wandb::sidecar(&fake, &[]);
    let mut c = s.client().await;
    c.init(InitRequest {
        id: "outage".into(),
        project: "p".into(),
        system_metrics: no_system_metrics(),
        ..Default::default()
    })
    .await
    .unwrap();
    for i in 0..50 {
        c.log(log_req("outage", &[("x", i as f64)], None, None))
            .await
            .unwrap();
    }
    fake.wait_run("outage", |v| v.history.len() == 50).await;
    // 30 s of 503s, then one 429 asking for 2 s.
    let outage = Duration::from_secs(30);
    fake.fail_for(outage, 503);
    fake.fail_times(1, 429, Some(2));
    let down = Instant::now();
    let mut i = 50;
    let mut lag = None;
    while down.elapsed() < outage {
        c.log(log_req("outage", &[("x", i as f64)], None, None))
            .await
            .unwrap();
        i += 1;
        if lag.is_none() {
            let got = c
                .get_run(GetRunRequest {
                    run_id: "outage".into(),
                })
                .await
                .unwrap()
                .into_inner();
            lag = got
                .backends
                .into_iter()
                .find(|b| b.pending_records > 0 && b.last_error.contains("503"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(lag.is_some(), "the outage never showed as lag in GetRun");
    let fin = c
        .finish(finish_req("outage", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fin.backends[0].pending_records, 0, "{:?}", fin.backends[0]);
    fake.assert_clean();
    let v = fake.run("outage").unwrap();
    let rows = v.history_rows();
    assert_eq!(
        rows.iter()
            .map(|r| num(get(r, "x")) as i64)
            .collect::<Vec<_>>(),
        (0..i).collect::<Vec<_>>(),
        "every row exactly once"
    );
    assert_eq!(steps(&rows), (0..i).collect::<Vec<_>>());
    assert_eq!(
        v.history,
        lines_of(&s.run_dir("p", "outage").join("history.jsonl"))
    );
    assert_eq!((v.complete, v.exitcode), (Some(true), Some(0)));
    // The 429's Retry-After was honoured.
    let requests = fake.requests();
    assert!(requests.iter().any(|r| r.status == 503));
    let k = requests
        .iter()
        .position(|r| r.status == 429)
        .expect("the 429 was sent");
    let next = requests.get(k + 1).expect("a request after the 429");
    assert!(
        next.at.duration_since(requests[k].at) >= Duration::from_secs(2),
        "retried {:?} after a 429 asking for 2 s",
        next.at.duration_since(requests[k].at)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_api_key_stops_delivery_and_is_reported() {
    let fake = FakeWandb::start();
    let tmp = tempfile::tempdir().unwrap();
    let s = wandb::sidecar_in(tmp.path(), &fake, "not-the-key", &["--finish-timeout", "1"]);
    let mut c = s.client().await;
    c.init(InitRequest {
        id: "denied".into(),
        project: "p".into(),
        system_metrics: no_system_metrics(),
        ..Default::default()
    })
    .await
    .unwrap();
    c.log(log_req("denied", &[("x", 1.0)], None, None))
        .await
        .unwrap();
    let status = wait_for_async(|| {
        let mut c = c.clone();
        async move {
            let got = c
                .get_run(GetRunRequest {
                    run_id: "denied".into(),
                })
                .await
                .ok()?
                .into_inner();
            got.backends
                .into_iter()
                .find(|b| b.last_error.contains("401"))
        }
    })
    .await;
    assert!(status.pending_records > 0, "{status:?}");
    // No retry: one request, refused, and nothing after it, even with more to send.
    c.log(log_req("denied", &[("x", 2.0)], None, None))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].status, 401);
    let fin = c
        .finish(finish_req("denied", None))
        .await
        .unwrap()
        .into_inner();
    assert!(fin.backends[0].last_error.contains("401"), "{fin:?}");
    assert!(fin.backends[0].pending_records > 0);
    assert_eq!(fake.requests().len(), 1);
    fake.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_of_an_offline_run_sends_what_a_live_run_sends() {
    let live = FakeWandb::start();
    let s = wandb::sidecar(&live, &[]);
    let mut c = s.client().await;
    let wd = tempfile::tempdir().unwrap();
    std::fs::write(wd.path().join("cfg.yaml"), "lr: 0.1\n").unwrap();
    c.init(InitRequest {
        id: "twin".into(),
        project: "p".into(),
        name: "twins".into(),
        tags: vec!["a".into()],
        config: data(&[("lr", 0.1)]),
        working_dir: wd.path().display().to_string(),
        system_metrics: Some(SystemMetricsSettings {
            interval: 0.2,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    for i in 0..40 {
        c.log(log_req("twin", &[("y", i as f64 * 2.0)], None, None))
            .await
            .unwrap();
    }
    c.update_config(UpdateConfigRequest {
        run_id: "twin".into(),
        config: data(&[("batch", 64.0)]),
        remove: vec![],
    })
    .await
    .unwrap();
    c.update_summary(UpdateSummaryRequest {
        run_id: "twin".into(),
        summary: data(&[("best", 1.0)]),
        remove: vec![],
    })
    .await
    .unwrap();
    c.alert(alert("twin", "twin alert", "from both", "ERROR"))
        .await
        .unwrap();
    c.save_files(SaveFilesRequest {
        run_id: "twin".into(),
        glob: "cfg.yaml".into(),
        policy: "now".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    live.wait_run("twin", |v| !v.events.is_empty()).await;
    c.finish(finish_req("twin", Some(3))).await.unwrap();

    // The same run, as written offline: its directory without the delivery cursor.
    let offline = tempfile::tempdir().unwrap();
    let copy = offline.path().join("data").join("p").join("twin");
    wandb::copy_run_offline(&s.run_dir("p", "twin"), &copy);
    let remote = FakeWandb::start();
    let out = wandb::sync(&copy, &remote);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("synced"), "{stdout}");
    live.assert_clean();
    remote.assert_clean();

    let a = live.run("twin").unwrap();
    let b = remote.run("twin").unwrap();
    assert_eq!(a.history.len(), 40);
    assert_eq!(a.history, b.history);
    assert_eq!(a.history_writes.first(), Some(&(0, a.history_writes[0].1)));
    assert!(!b.events.is_empty());
    assert_eq!(a.events, b.events);
    assert_eq!(a.summary, b.summary);
    // Identity and config (a live run names the entity W&B gave it after its
    // first upsert).
    let without_entity = |v: &wandb::RunView| {
        let mut u = v.upserts.last().unwrap().clone();
        u.as_object_mut().unwrap().remove("entity");
        u
    };
    assert_eq!(without_entity(&a), without_entity(&b));
    assert_eq!(a.entity, b.entity);
    assert_eq!(b.config()["batch"], json!({"value": 64.0}));
    assert_eq!(a.files, b.files);
    assert_eq!(a.reported, b.reported);
    assert_eq!(a.alerts, b.alerts);
    assert_eq!(
        (a.complete, a.exitcode, b.complete, b.exitcode),
        (Some(true), Some(3), Some(true), Some(3))
    );
    let ops = |f: &FakeWandb| {
        f.requests()
            .into_iter()
            .map(|r| r.op)
            .filter(|op| op != "RunStoppedStatus")
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(ops(&live), ops(&remote));

    // Again: everything is delivered, nothing is sent twice.
    let before = remote.requests().len();
    let again = wandb::sync(&copy, &remote);
    assert!(again.status.success());
    assert_eq!(remote.requests().len(), before);
    let show = std::process::Command::new(BIN)
        .args(["runs", "show", "twin", "--data-dir"])
        .arg(offline.path().join("data"))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(shown.contains("wandb     delivered"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_upload_resumes_from_the_cursor() {
    const ROWS: usize = 5000;
    let fake = FakeWandb::start();
    // Two history requests are acknowledged, the third is never answered.
    fake.hang_history_after(2);
    let tmp = tempfile::tempdir().unwrap();
    let mut s = wandb::sidecar_in(tmp.path(), &fake, API_KEY, &[]);
    let mut c = s.client().await;
    c.init(InitRequest {
        id: "killed".into(),
        project: "p".into(),
        system_metrics: no_system_metrics(),
        ..Default::default()
    })
    .await
    .unwrap();
    // One record of 5000 rows: five file_stream requests of 1000 lines.
    let batch = LogBatch {
        run_id: "killed".into(),
        seq: 1,
        keys: vec!["i".into()],
        rows: (0..ROWS)
            .map(|i| Row {
                scalar_keys: vec![0],
                scalar_values: vec![i as f64],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let mut acks = c
        .log_stream(tokio_stream::iter(vec![batch]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acks.message().await.unwrap().unwrap().seq, 1);
    wait_for_async(|| async { (fake.history_progress() == (2, 1)).then_some(()) }).await;
    s.kill();

    // The cursor is still before the batch, with the two acknowledged requests in
    // the backend's state.
    let dir = s.run_dir("p", "killed");
    let cursor: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("forward/wandb.json")).unwrap())
            .unwrap();
    let wal_len = std::fs::metadata(dir.join("run.wal")).unwrap().len();
    assert!(cursor["offset"].as_u64().unwrap() < wal_len, "{cursor}");
    assert_eq!(cursor["state"]["history"]["done"], 2000, "{cursor}");
    assert_eq!(cursor["state"]["history"]["sent"], 2000, "{cursor}");

    fake.release();
    let s2 = wandb::sidecar_in(tmp.path(), &fake, API_KEY, &[]);
    let v = fake.wait_run("killed", |v| v.history.len() == ROWS).await;
    fake.assert_clean();
    assert_eq!(
        v.history_writes,
        [
            (0, 1000),
            (1000, 1000),
            (2000, 1000),
            (3000, 1000),
            (4000, 1000)
        ],
        "the restart goes on at offset 2000"
    );
    let rows = v.history_rows();
    assert_eq!(steps(&rows), (0..ROWS as i64).collect::<Vec<_>>());
    assert!(rows
        .iter()
        .all(|r| num(get(r, "i")) == num(get(r, "_step"))));

    let mut c2 = s2.client().await;
    let fin = c2
        .finish(finish_req("killed", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fin.backends[0].pending_records, 0, "{:?}", fin.backends[0]);
    let v = fake.run("killed").unwrap();
    assert_eq!((v.complete, v.exitcode), (Some(true), Some(0)));
    assert_eq!(v.history.len(), ROWS);
    fake.assert_clean();
}

#[test]
fn a_missing_key_or_a_bad_url_is_refused_at_start() {
    for (url, key, expect) in [
        ("https://api.wandb.ai", None, "WANDB_API_KEY"),
        ("ftp://example.com", Some(API_KEY), "--wandb-base-url"),
    ] {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["serve", "--backend", "wandb", "--wandb-base-url", url])
            .env_remove("WANDB_API_KEY");
        if let Some(k) = key {
            cmd.env("WANDB_API_KEY", k);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{url}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{url}: {err}");
        assert!(!err.contains(API_KEY), "the key is never printed: {err}");
    }
}

//! One shared run written across hosts: each host's sidecar (here two sidecars on
//! their own data dirs) forwards its own writers to the same backend run. Against
//! a real MLflow server: one MLflow run (found by its runcore id tag, even when both
//! sidecars start it at once), every writer's metrics, no point twice, labelled
//! system metrics, the final state from the primary's sidecar only. Against the
//! fake W&B server: file_stream with the shared-mode header, each writer's lines
//! once, labelled events, `complete` from the primary's sidecar only.

mod support;

use runcore::proto::v1::run_service_client::RunServiceClient;
use runcore::proto::v1::{
    FinishRequest, InitRequest, LogRequest, Resume, SystemMetricsSettings, WriterSettings,
};
use support::mlflow::{tag, MlflowServer, Rest};
use support::wandb::{self, FakeWandb};
use support::*;
use tonic::transport::Channel;

const ROWS: usize = 50;

fn writer(writer_id: &str, label: &str, primary: bool) -> InitRequest {
    InitRequest {
        id: "across".into(),
        project: "p".into(),
        resume: Resume::Allow as i32,
        writer_id: writer_id.into(),
        client: Some(local_client(std::process::id())),
        writer: Some(WriterSettings {
            shared: true,
            label: label.into(),
            primary: Some(primary),
            update_finish_state: Some(primary),
        }),
        system_metrics: Some(SystemMetricsSettings {
            interval: 0.1,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Logs ROWS rows of `key` (values 0..ROWS, implicit steps) as `writer_id`.
async fn log_rows(c: &mut RunServiceClient<Channel>, writer_id: &str, key: &str) {
    for i in 0..ROWS {
        c.log(LogRequest {
            writer_id: writer_id.into(),
            ..log_req("across", &[(key, i as f64)], None, None)
        })
        .await
        .unwrap();
    }
}

/// Waits until the run on `s` has a system sample, so each writer's labelled
/// metrics are in its log before it finishes.
fn wait_sample(s: &Sidecar) {
    let events = s.run_dir("p", "across").join("events.jsonl");
    wait_for(|| {
        read_jsonl(&events)
            .iter()
            .any(|l| l.keys().any(|k| k.starts_with("system.")))
            .then_some(())
    });
}

/// Both writers join at once (each sidecar creates or finds the backend run), log,
/// and finish: the non-primary first (its sidecar's run ends there only), then the
/// primary (the run ends).
async fn write_across(s1: &Sidecar, s2: &Sidecar) {
    let (mut c1, mut c2) = (s1.client().await, s2.client().await);
    let (a, b) = tokio::join!(
        c1.init(writer("w0", "rank-0", true)),
        c2.init(writer("w1", "rank-1", false)),
    );
    a.unwrap();
    b.unwrap();
    tokio::join!(log_rows(&mut c1, "w0", "a"), log_rows(&mut c2, "w1", "b"));
    wait_sample(s1);
    wait_sample(s2);
    for (c, w) in [(&mut c2, "w1"), (&mut c1, "w0")] {
        c.finish(FinishRequest {
            run_id: "across".into(),
            writer_id: w.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sidecars_forward_one_shared_run_to_one_mlflow_run() {
    let server = MlflowServer::shared();
    let args = ["--backend", "mlflow", "--mlflow-tracking-uri"];
    let start = || {
        let mut a = args.to_vec();
        let uri = server.uri();
        a.push(Box::leak(uri.into_boxed_str()));
        Sidecar::start_with(Transport::Tcp, &a)
    };
    let (s1, s2) = (start(), start());
    write_across(&s1, &s2).await;
    let rest = Rest::new(&server.uri());
    // Both sidecars may have created a run at first; one is deleted at once.
    wait_for_async(|| async {
        let runs = rest.tagged_runs("p", "across").await?;
        let [run] = runs.as_slice() else { return None };
        let id = run["info"]["run_id"].as_str()?.to_owned();
        let done = run["info"]["status"] == "FINISHED"
            && rest.history(&id, "a").await.len() == ROWS
            && rest.history(&id, "b").await.len() == ROWS;
        done.then_some(())
    })
    .await;
    // find_run asserts there is one live MLflow run with the tag.
    let run = rest.find_run("p", "across").await.expect("the MLflow run");
    let id = run["info"]["run_id"].as_str().unwrap();
    let want: Vec<(i64, f64)> = (0..ROWS).map(|i| (i as i64, i as f64)).collect();
    assert_eq!(rest.history(id, "a").await, want, "no point twice");
    assert_eq!(rest.history(id, "b").await, want, "no point twice");
    for label in ["rank-0", "rank-1"] {
        let key = format!("system/memory_percent/l_{label}");
        let points = rest.history(id, &key).await;
        assert!(!points.is_empty(), "no {key}");
        let mut steps: Vec<i64> = points.iter().map(|p| p.0).collect();
        steps.dedup();
        assert_eq!(steps.len(), points.len(), "{key}: a sample twice");
    }
    assert_eq!(tag(&run, "runcore.state").as_deref(), Some("finished"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sidecars_stream_one_shared_run_to_wandb_with_labels() {
    let fake = FakeWandb::start();
    let (s1, s2) = (wandb::sidecar(&fake, &[]), wandb::sidecar(&fake, &[]));
    write_across(&s1, &s2).await;
    let view = fake
        .wait_run("across", |v| {
            v.complete == Some(true)
                && v.history.len() == 2 * ROWS
                && v.events.iter().any(|l| l.contains("/l:rank-1"))
        })
        .await;
    fake.assert_clean();
    assert_eq!(view.exitcode, Some(0));
    assert_eq!(
        view.sync_requests, 0,
        "every file_stream request is shared-mode"
    );
    assert!(view.async_requests > 0);
    let rows = view.history_rows();
    for key in ["a", "b"] {
        let mut got: Vec<f64> = rows.iter().filter_map(|r| r.get(key).map(num)).collect();
        got.sort_by(f64::total_cmp);
        let want: Vec<f64> = (0..ROWS).map(|i| i as f64).collect();
        assert_eq!(got, want, "{key}: every row once");
    }
    for label in ["rank-0", "rank-1"] {
        let key = format!("system.memory_percent/l:{label}");
        assert!(
            view.events.iter().any(|l| l.contains(&key)),
            "no {key} in the events"
        );
    }
    // Only the primary's sidecar ended the W&B run.
    let completes = fake
        .requests()
        .iter()
        .filter(|r| r.op == "file_stream" && r.body["complete"] == true)
        .count();
    assert_eq!(completes, 1);
}

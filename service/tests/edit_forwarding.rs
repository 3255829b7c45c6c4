//! Edits (UpdateRun) reach the remote backends, for a live run and for one that
//! has ended (its forwarder had retired: the edit starts one): a real MLflow
//! server sees the run renamed, its tags and notes replaced, new params and the
//! summary artifact; the fake W&B server gets UpsertBucket with the new identity,
//! config and (for the ended run) summary, and no protocol violation.

mod support;

use runcore::proto::v1::{
    FinishRequest, InitRequest, SystemMetricsSettings, Tags, UpdateRunRequest,
};
use serde_json::{json, Value as Json};
use support::mlflow::{param, tag, MlflowServer, Rest};
use support::wandb::{self, FakeWandb};
use support::*;

fn finish(id: &str) -> FinishRequest {
    FinishRequest {
        run_id: id.into(),
        exit_code: None,
        ..Default::default()
    }
}

fn tags(t: &[&str]) -> Option<Tags> {
    Some(Tags {
        tags: t.iter().map(|s| s.to_string()).collect(),
    })
}

fn no_system_metrics() -> Option<SystemMetricsSettings> {
    Some(SystemMetricsSettings {
        disabled: true,
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_of_an_ended_run_renames_and_retags_it_in_mlflow() {
    let server = MlflowServer::shared();
    let uri = server.uri();
    let s = Sidecar::start_with(
        Transport::Tcp,
        &["--backend", "mlflow", "--mlflow-tracking-uri", &uri],
    );
    let mut c = s.client().await;
    c.init(InitRequest {
        id: "edit-ml".into(),
        project: "p".into(),
        name: "before".into(),
        notes: "first note".into(),
        tags: vec!["keep".into(), "drop".into()],
        config: data(&[("lr", 0.1)]),
        system_metrics: no_system_metrics(),
        ..Default::default()
    })
    .await
    .unwrap();
    for i in 0..3 {
        c.log(log_req("edit-ml", &[("loss", i as f64)], None, None))
            .await
            .unwrap();
    }
    let fin = c.finish(finish("edit-ml")).await.unwrap().into_inner();
    assert_eq!(fin.backends[0].pending_records, 0, "{:?}", fin.backends);
    c.update_run(UpdateRunRequest {
        run_id: "edit-ml".into(),
        name: Some("after".into()),
        notes: Some("second note".into()),
        tags: tags(&["keep", "new"]),
        config: data(&[("lr", 0.2), ("extra", 1.0)]),
        summary: data(&[("acc", 0.75)]),
        ..Default::default()
    })
    .await
    .unwrap();

    // The summary goes last in a delivery: once MLflow has the edited one, it
    // has the rest of the edit too.
    let rest = Rest::new(&uri);
    let (run, summary) = wait_for_async(|| async {
        let run = rest.find_run("p", "edit-ml").await?;
        // Polled while the edit's delivery may be replacing it.
        let text = rest.try_artifact(&run, "summary.json").await.ok()?;
        text.contains("acc").then_some((run, text))
    })
    .await;
    let run = rest.find_run("p", "edit-ml").await.unwrap_or(run);
    let summary = runcore::value::parse_json_map(&summary).unwrap();
    assert_eq!(num(get(&summary, "acc")), 0.75);
    assert_eq!(run["info"]["run_name"], "after");
    assert_eq!(tag(&run, "mlflow.runName").as_deref(), Some("after"));
    assert_eq!(
        run["info"]["status"], "FINISHED",
        "an edit never reopens a run"
    );
    assert_eq!(
        tag(&run, "mlflow.note.content").as_deref(),
        Some("second note")
    );
    assert_eq!(tag(&run, "runcore.tags").as_deref(), Some("keep,new"));
    assert_eq!(tag(&run, "tag.new").as_deref(), Some("true"));
    assert_eq!(tag(&run, "tag.keep").as_deref(), Some("true"));
    assert_eq!(
        tag(&run, "tag.drop"),
        None,
        "a dropped tag is deleted: {}",
        run["data"]["tags"]
    );
    assert_eq!(param(&run, "extra").as_deref(), Some("1.0"));
    assert_eq!(
        param(&run, "lr").as_deref(),
        Some("0.1"),
        "params cannot change"
    );
    assert_eq!(
        tag(&run, "runcore.param_changed.lr").as_deref(),
        Some("0.2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_reach_wandb_as_upserts_live_and_after_the_end() {
    let fake = FakeWandb::start();
    let s = wandb::sidecar(&fake, &[]);
    let mut c = s.client().await;
    c.init(InitRequest {
        id: "edit-wb".into(),
        project: "p".into(),
        name: "before".into(),
        tags: vec!["x".into()],
        config: data(&[("lr", 0.1)]),
        system_metrics: no_system_metrics(),
        ..Default::default()
    })
    .await
    .unwrap();
    c.log(log_req("edit-wb", &[("loss", 1.0)], None, None))
        .await
        .unwrap();
    c.update_run(UpdateRunRequest {
        run_id: "edit-wb".into(),
        name: Some("during".into()),
        tags: tags(&["x", "y"]),
        ..Default::default()
    })
    .await
    .unwrap();
    fake.wait_run("edit-wb", |v| {
        v.upserts.iter().any(|u| u["displayName"] == "during")
    })
    .await;
    c.finish(finish("edit-wb")).await.unwrap();
    fake.wait_run("edit-wb", |v| v.complete == Some(true)).await;
    c.update_run(UpdateRunRequest {
        run_id: "edit-wb".into(),
        name: Some("after".into()),
        notes: Some("later".into()),
        config: data(&[("extra", 2.0)]),
        summary: data(&[("acc", 0.5)]),
        ..Default::default()
    })
    .await
    .unwrap();
    let view = fake
        .wait_run("edit-wb", |v| {
            v.upserts
                .last()
                .is_some_and(|u| u["displayName"] == "after")
        })
        .await;
    let last = view.upserts.last().unwrap();
    assert_eq!(last["tags"], json!(["x", "y"]));
    assert_eq!(last["notes"], "later");
    assert_eq!(
        view.config(),
        json!({"lr": {"value": 0.1}, "extra": {"value": 2.0}})
    );
    let summary: Json = serde_json::from_str(last["summaryMetrics"].as_str().unwrap()).unwrap();
    assert_eq!(summary["acc"], 0.5);
    assert_eq!(summary["loss"], 1.0, "the whole summary");
    assert!(view.summary.as_deref().unwrap().contains("\"acc\""));
    assert_eq!(view.complete, Some(true));
    assert_eq!(view.history.len(), 1, "an edit streams no history");
    fake.assert_clean();
}

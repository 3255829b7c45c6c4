//! Artifacts, models, media and tables forwarded to a real MLflow server: a
//! dataset's files as run artifacts under `artifacts/<name>/<version>/`, a model
//! as an MLflow logged model, a link as a registered model version with its
//! alias, a used version as a dataset input, media and table files as artifacts
//! at their `media/...` paths; `runcore sync` of the runs written offline adds
//! nothing twice.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use runcore::proto::v1::{
    value::Kind, FinishRequest, LinkArtifactRequest, LogRequest, Media, MediaKind,
    UseArtifactRequest, Value,
};
use serde_json::json;
use support::artifacts::{self as art, Client};
use support::mlflow::{MlflowServer, Rest};
use support::*;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

async fn finish(c: &mut Client, run: &str) {
    let fin = c
        .finish(FinishRequest {
            writer_id: String::new(),
            run_id: run.into(),
            exit_code: None,
        })
        .await
        .unwrap()
        .into_inner();
    let b = &fin.backends[0];
    assert_eq!((b.pending_records, b.last_error.as_str()), (0, ""), "{b:?}");
}

/// "train" logs a dataset, a model, an image and a table and links the model;
/// "eval" uses the model.
async fn log_runs(c: &mut Client, src: &Path) {
    start_run(c, "train").await;
    write(src, "data/a.csv", "x\n1\n");
    write(src, "data/b.csv", "x\n2\n");
    art::log_dir(c, "train", "data", "dataset", &src.join("data")).await;
    write(src, "model/weights.bin", "weights v1");
    art::log_dir(c, "train", "clf", "model", &src.join("model")).await;
    write(src, "pic.png", "png bytes");
    write(src, "t.json", r#"{"columns":["k"],"data":[[1]]}"#);
    let media = |p: &str, kind: MediaKind| Value {
        kind: Some(Kind::Media(Media {
            path: src.join(p).display().to_string(),
            kind: kind as i32,
            ..Default::default()
        })),
    };
    let data = BTreeMap::from([
        ("pic".to_string(), media("pic.png", MediaKind::Image)),
        ("tbl".to_string(), media("t.json", MediaKind::Table)),
    ]);
    c.log(LogRequest {
        run_id: "train".into(),
        data,
        ..Default::default()
    })
    .await
    .unwrap();
    c.link_artifact(LinkArtifactRequest {
        run_id: "train".into(),
        name: "clf:v0".into(),
        target_path: "model-registry/classifier".into(),
        aliases: vec!["production".into()],
    })
    .await
    .unwrap();
    finish(c, "train").await;
    start_run(c, "eval").await;
    c.use_artifact(UseArtifactRequest {
        run_id: "eval".into(),
        name: "clf:latest".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    finish(c, "eval").await;
}

/// Checks what MLflow holds after the runs.
async fn check(rest: &Rest) {
    let train = rest.find_run("p", "train").await.expect("train in MLflow");
    let id = train["info"]["run_id"].as_str().unwrap().to_owned();
    let mut data = rest.artifacts(&id, "artifacts/data/v0").await;
    data.sort();
    assert_eq!(
        data,
        [
            "artifacts/data/v0/a.csv",
            "artifacts/data/v0/b.csv",
            "artifacts/data/v0/runcore_manifest.json"
        ]
    );
    assert_eq!(
        rest.artifact(&train, "artifacts/clf/v0/weights.bin").await,
        "weights v1"
    );
    let images = rest.artifacts(&id, "media/images").await;
    assert_eq!(images.len(), 1, "{images:?}");
    let tables = rest.artifacts(&id, "media/table").await;
    assert!(tables[0].ends_with(".table.json"), "{tables:?}");

    let exp = train["info"]["experiment_id"].as_str().unwrap();
    let models = rest
        .post(
            "/api/2.0/mlflow/logged-models/search",
            json!({"experiment_ids": [exp], "filter": "tags.`runcore.artifact` = 'clf:v0'"}),
        )
        .await;
    let models = models["models"].as_array().cloned().unwrap_or_default();
    assert_eq!(models.len(), 1, "one logged model: {models:?}");
    let model = &models[0]["info"];
    assert_eq!(model["status"], "LOGGED_MODEL_READY");
    assert_eq!(model["source_run_id"], json!(id));
    let model_id = model["model_id"].as_str().unwrap();

    let versions = rest
        .get(
            "/api/2.0/mlflow/model-versions/search",
            &[("filter", "name='classifier'")],
        )
        .await;
    let versions = versions["model_versions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(versions[0]["source"], json!(format!("models:/{model_id}")));
    let alias = rest
        .get(
            "/api/2.0/mlflow/registered-models/alias",
            &[("name", "classifier"), ("alias", "production")],
        )
        .await;
    assert_eq!(alias["model_version"]["version"], versions[0]["version"]);

    let eval = rest.find_run("p", "eval").await.expect("eval in MLflow");
    let inputs = eval["inputs"]["dataset_inputs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(inputs.len(), 1, "{eval}");
    assert_eq!(inputs[0]["dataset"]["name"], "clf");
    assert_eq!(inputs[0]["dataset"]["source"], "clf:v0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_models_media_and_tables_reach_mlflow() {
    let server = MlflowServer::shared();
    let s = Sidecar::start_with(
        Transport::Tcp,
        &[
            "--backend",
            "mlflow",
            "--mlflow-tracking-uri",
            &server.uri(),
        ],
    );
    let mut c = s.client().await;
    let src = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    log_runs(&mut c, src.path()).await;
    let rest = Rest::new(&server.uri());
    check(&rest).await;

    // The same runs, offline, synced: found again, nothing made twice.
    let offline = tempfile::tempdir().unwrap();
    let copy = |from: &Path, to: &Path| {
        let out = std::process::Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .output()
            .unwrap();
        assert!(out.status.success());
    };
    copy(&s.data_dir, offline.path());
    let data = offline.path().join("data");
    for run in ["train", "eval"] {
        let _ = std::fs::remove_dir_all(data.join("p").join(run).join("forward"));
        let out = std::process::Command::new(BIN)
            .arg("sync")
            .arg(data.join("p").join(run))
            .args([
                "--backend",
                "mlflow",
                "--mlflow-tracking-uri",
                &server.uri(),
            ])
            .env("RUNCORE_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    check(&rest).await;
}

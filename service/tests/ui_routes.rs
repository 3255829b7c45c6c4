//! The web UI's HTTP routes, served in-process (`runcore::ui::serve` on
//! 127.0.0.1:0) over a store written by the real sidecar: the JSON API's
//! answers, the downsampled series with NaN/Inf kept, a live run's index growing,
//! status codes for bad input, the token and Host rules, and a run's artifacts
//! (lineage), media values and table pages.

mod support;

use std::path::{Path, PathBuf};

use runcore::env::Secret;
use runcore::proto::v1::{AlertRequest, DefineMetricRequest, FinishRequest, Value};
use serde_json::Value as Json;
use support::*;
use tokio::sync::oneshot;

/// A UI served in-process until dropped.
struct Ui {
    base: String,
    http: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

impl Ui {
    async fn start(data_dir: &Path, token: Option<&str>) -> Ui {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let dir = data_dir.to_owned();
        let token = token.map(Secret::new);
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            runcore::ui::serve(listener, dir, token, shutdown)
                .await
                .unwrap();
        });
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Ui {
            base,
            http,
            _stop: stop,
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn status(&self, path: &str) -> u16 {
        self.get(path).await.status().as_u16()
    }

    /// The JSON answer, None unless 200 (for polling a store still being flushed).
    async fn try_json(&self, path: &str) -> Option<Json> {
        let r = self.get(path).await;
        if r.status() == 200 {
            r.json().await.ok()
        } else {
            None
        }
    }

    async fn json(&self, path: &str) -> Json {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }
}

fn nested(pairs: &[(&str, Value)]) -> Value {
    runcore::value::map(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

/// A finished run "r1" in project "p": 40 rows of `loss` (a NaN at step 10, +Inf
/// at 20), nested `opt.lr`, a hidden `epoch` that is the step metric of `val/*`,
/// an alert and a saved file. Returns its directory.
async fn finished_run(sidecar: &Sidecar) -> PathBuf {
    let mut c = sidecar.client().await;
    start_run(&mut c, "r1").await;
    for (name, step_metric, hidden) in [("epoch", "", true), ("val/*", "epoch", false)] {
        c.define_metric(DefineMetricRequest {
            run_id: "r1".into(),
            name: name.into(),
            step_metric: step_metric.into(),
            hidden: Some(hidden),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    for step in 0..40 {
        let loss = match step {
            10 => f64::NAN,
            20 => f64::INFINITY,
            s => 1.0 / (1.0 + s as f64),
        };
        let mut req = log_req("r1", &[("loss", loss)], None, None);
        req.data.insert(
            "opt".into(),
            nested(&[("lr", double(0.1)), ("name", string("adam"))]),
        );
        if step % 10 == 9 {
            req.data.insert("epoch".into(), int(step / 10));
            req.data
                .insert("val/acc".into(), double(step as f64 / 40.0));
        }
        c.log(req).await.unwrap();
    }
    c.alert(AlertRequest {
        run_id: "r1".into(),
        title: "halfway".into(),
        text: "20 steps".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    c.finish(FinishRequest {
        run_id: "r1".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = sidecar.run_dir("p", "r1");
    std::fs::create_dir_all(dir.join("files/ckpt")).unwrap();
    std::fs::write(dir.join("files/ckpt/model.txt"), "weights").unwrap();
    dir
}

#[tokio::test]
async fn the_api_shows_projects_runs_metrics_and_series() {
    let sidecar = Sidecar::start();
    let dir = finished_run(&sidecar).await;
    let ui = Ui::start(&sidecar.data_dir, None).await;

    let projects = ui.json("/api/projects").await;
    assert_eq!(projects[0]["name"], "p");
    assert_eq!(projects[0]["states"]["finished"], 1);
    let runs = ui.json("/api/projects/p/runs").await;
    assert_eq!(runs[0]["id"], "r1");
    assert_eq!(runs[0]["state"], "finished");
    assert_eq!(runs[0]["steps"], 40);
    assert_eq!(runs[0]["summary"]["opt.name"], "adam");
    let run = ui.json("/api/runs/p/r1").await;
    assert_eq!(run["alerts"][0]["title"], "halfway");
    assert!(
        run["metadata"]["cpu_count"].is_number(),
        "{}",
        run["metadata"]
    );

    let m = ui.json("/api/runs/p/r1/metrics").await;
    assert_eq!(m["rows"], 40);
    let info = |key: &str| {
        m["history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["key"] == key)
            .unwrap_or_else(|| panic!("no {key} in {m}"))
            .clone()
    };
    assert_eq!(info("epoch")["hidden"], true);
    assert_eq!(info("val/acc")["step_metric"], "epoch");
    assert_eq!(info("val/acc")["section"], "val");
    assert_eq!(info("opt.lr")["section"], "opt");
    assert_eq!(info("loss")["nonfinite"], 2);
    assert!(m["x_axes"]
        .as_array()
        .unwrap()
        .contains(&Json::from("epoch")));

    let s = ui.json("/api/runs/p/r1/series?key=val/acc&x=epoch").await;
    assert_eq!(s["x"], serde_json::json!([0.0, 1.0, 2.0, 3.0]));
    assert_eq!(s["y"][3], 39.0 / 40.0);
    let s = ui.json("/api/runs/p/r1/series?key=loss&width=4").await;
    assert_eq!(s["total"], 40);
    assert_eq!(s["sampled"], true);
    let marks = s["marks"].as_array().unwrap();
    assert!(
        marks.contains(&serde_json::json!({"x": 10.0, "kind": "nan"})),
        "{s}"
    );
    assert!(
        marks.contains(&serde_json::json!({"x": 20.0, "kind": "inf"})),
        "{s}"
    );
    let ys = s["y"].as_array().unwrap();
    assert!(ys.iter().any(Json::is_null), "gaps, not numbers");
    assert!(
        ys.iter().all(|y| y.is_null() || y.as_f64().unwrap() > 0.0),
        "never zeros"
    );
    let s = ui
        .json("/api/runs/p/r1/series?key=loss&min=30&max=32")
        .await;
    assert_eq!(s["x"], serde_json::json!([29.0, 30.0, 31.0, 32.0, 33.0]));

    assert_eq!(
        ui.json("/api/runs/p/r1/files").await[0]["path"],
        "ckpt/model.txt"
    );
    let file = ui.get("/files/p/r1/ckpt/model.txt").await;
    assert_eq!(file.status(), 200);
    assert!(file.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("model.txt"));
    assert_eq!(file.text().await.unwrap(), "weights");
    assert_eq!(run["has_output"], false);
    let out = ui.json("/api/runs/p/r1/output").await;
    assert_eq!(
        (out["text"].as_str(), out["size"].as_u64()),
        (Some(""), Some(0))
    );
    std::fs::write(dir.join("output.log"), "epoch 1\nepoch 2\n").unwrap();
    assert_eq!(ui.json("/api/runs/p/r1").await["has_output"], true);
    let out = ui.json("/api/runs/p/r1/output?max=8").await;
    assert_eq!(
        (out["text"].as_str(), out["start"].as_u64()),
        (Some("epoch 2\n"), Some(8))
    );
    let out = ui.json("/api/runs/p/r1/output?from=6&max=4").await;
    assert_eq!(
        (out["text"].as_str(), out["end"].as_u64()),
        (Some("1\nep"), Some(10))
    );
    let page = ui.get("/runs/p/r1").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("/assets/app.js"));
    assert_eq!(ui.status("/assets/vendor/uPlot.iife.min.js").await, 200);
}

#[tokio::test]
async fn bad_input_is_a_404_or_400_never_a_crash() {
    let sidecar = Sidecar::start();
    finished_run(&sidecar).await;
    let ui = Ui::start(&sidecar.data_dir, None).await;
    for (path, code) in [
        ("/runs/p/nope", 404),
        ("/projects/nope", 404),
        ("/compare?runs=p/r1,p/nope", 404),
        ("/compare?runs=p", 400),
        ("/compare", 400),
        ("/no/such/page", 404),
        ("/assets/nope.js", 404),
        ("/runs/p/..%2F..", 400),
        ("/runs/.ui-index/r1", 400),
        ("/api/runs/p/nope", 404),
        ("/api/projects/nope/runs", 404),
        ("/api/runs/p/r1/series", 400),
        ("/api/runs/p/r1/series?key=nope", 404),
        ("/api/runs/p/r1/series?key=_step", 404),
        ("/api/runs/p/r1/series?key=loss&width=wide", 400),
        ("/api/runs/p/r1/series?key=loss&width=0", 400),
        ("/api/runs/p/r1/series?key=loss&width=99999", 400),
        ("/api/runs/p/r1/series?key=loss&min=inf", 400),
        ("/api/runs/p/r1/series?key=loss&x=nope", 400),
        ("/api/runs/p/r1/series?key=loss&source=gpu", 400),
        ("/api/runs/p/r1/output?max=0", 400),
        ("/api/runs/p/r1/output?from=-1", 400),
        ("/api/nothing", 404),
        ("/files/p/r1/nope.txt", 404),
        ("/files/p/r1/../run.json", 404),
        ("/files/p/r1/ckpt/..%2F..%2Frun.json", 400),
    ] {
        let r = ui.get(path).await;
        assert_eq!(r.status().as_u16(), code, "{path}");
        let api = path.starts_with("/api/");
        let ctype = r.headers()["content-type"].to_str().unwrap().to_owned();
        let body = r.text().await.unwrap();
        if api {
            assert_eq!(ctype, "application/json", "{path}");
            let j: Json = serde_json::from_str(&body).unwrap();
            assert!(j["error"].as_str().is_some_and(|e| !e.is_empty()), "{path}");
        } else {
            assert!(body.contains(&format!("{code} ")), "{path}: {body}");
        }
    }
    assert_eq!(ui.status("/api/projects").await, 200, "still serving");
}

#[tokio::test]
async fn a_live_runs_index_grows_with_its_history() {
    let sidecar = Sidecar::start();
    let mut c = sidecar.client().await;
    start_run(&mut c, "live").await;
    for _ in 0..5 {
        c.log(log_req("live", &[("loss", 0.5)], None, None))
            .await
            .unwrap();
    }
    let ui = Ui::start(&sidecar.data_dir, None).await;
    let url = "/api/runs/p/live/series?key=loss";
    let rows = |n: u64| {
        let ui = &ui;
        move || async move { ui.try_json(url).await.filter(|s| s["total"] == n) }
    };
    let first = wait_for_async(rows(5)).await;
    assert_eq!(first["y"][4], 0.5);
    assert_eq!(ui.json("/api/runs/p/live").await["run"]["state"], "running");
    for _ in 0..7 {
        c.log(log_req("live", &[("loss", 0.25), ("acc", 1.0)], None, None))
            .await
            .unwrap();
    }
    let s = wait_for_async(rows(12)).await;
    assert_eq!(s["y"][11], 0.25);
    let m = ui.json("/api/runs/p/live/metrics").await;
    assert_eq!(m["rows"], 12);
    assert!(m["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["key"] == "acc"));
    let manifest = sidecar
        .run_dir("p", "live")
        .join(".ui-index/history/manifest.json");
    assert!(manifest.is_file(), "the index is kept next to the run");
}

#[tokio::test]
async fn a_token_is_needed_and_a_cookie_keeps_it() {
    let sidecar = Sidecar::start();
    finished_run(&sidecar).await;
    let token = "0123456789abcdef0123";
    let ui = Ui::start(&sidecar.data_dir, Some(token)).await;
    assert_eq!(ui.status("/").await, 401);
    assert_eq!(ui.status("/api/projects").await, 401);
    assert_eq!(ui.status("/?token=wrong-token-0000000").await, 401);
    let r = ui.get(&format!("/runs/p/r1?token={token}&x=1")).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/runs/p/r1?x=1");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap().to_owned();
    let with_cookie = ui
        .http
        .get(format!("{}/runs/p/r1", ui.base))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status(), 200);
    let bearer = ui
        .http
        .get(format!("{}/api/projects", ui.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    assert_eq!(bearer.headers()["x-frame-options"], "DENY");
}

#[tokio::test]
async fn without_a_token_other_hosts_are_refused() {
    let sidecar = Sidecar::start();
    let ui = Ui::start(&sidecar.data_dir, None).await;
    let with_host = |host: &'static str| {
        ui.http
            .get(format!("{}/api/projects", ui.base))
            .header("host", host)
            .send()
    };
    assert_eq!(
        with_host("attacker.example:80").await.unwrap().status(),
        403
    );
    assert_eq!(with_host("localhost:6007").await.unwrap().status(), 200);
    assert_eq!(ui.json("/api/projects").await, serde_json::json!([]));
}

/// A media value of `kind` for the file at `path`.
fn media(path: &Path, kind: runcore::proto::v1::MediaKind) -> Value {
    Value {
        kind: Some(runcore::proto::v1::value::Kind::Media(
            runcore::proto::v1::Media {
                path: path.display().to_string(),
                kind: kind as i32,
                ..Default::default()
            },
        )),
    }
}

#[tokio::test]
async fn artifacts_with_lineage_media_and_table_pages() {
    use runcore::proto::v1::{MediaKind, UseArtifactRequest};
    let sidecar = Sidecar::start();
    let mut c = sidecar.client().await;
    start_run(&mut c, "maker").await;
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("ds")).unwrap();
    for i in 0..3 {
        std::fs::write(src.path().join(format!("ds/{i}.txt")), format!("row {i}")).unwrap();
    }
    support::artifacts::log_dir(&mut c, "maker", "digits", "dataset", &src.path().join("ds")).await;
    let rows: Vec<String> = (0..25)
        .map(|i| format!("[{i}, {}, \"n{:02}\"]", (i * 7) % 25, 24 - i))
        .collect();
    let table = src.path().join("t.table.json");
    std::fs::write(
        &table,
        format!(
            "{{\"columns\": [\"i\", \"score\", \"name\"], \"data\": [{}]}}",
            rows.join(",")
        ),
    )
    .unwrap();
    let png = src.path().join("sample.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    for _ in 0..2 {
        let mut req = log_req("maker", &[("loss", 0.5)], None, None);
        req.data
            .insert("preds".into(), media(&table, MediaKind::Table));
        req.data
            .insert("sample".into(), media(&png, MediaKind::Image));
        c.log(req).await.unwrap();
    }
    c.finish(FinishRequest {
        run_id: "maker".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    start_run(&mut c, "user").await;
    c.use_artifact(UseArtifactRequest {
        run_id: "user".into(),
        name: "digits:latest".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let ui = Ui::start(&sidecar.data_dir, None).await;

    let made = ui.json("/api/runs/p/maker/artifacts").await;
    let v0 = &made["logged"][0];
    assert_eq!(
        (&v0["name"], &v0["type"], &v0["version"]),
        (
            &Json::from("digits"),
            &Json::from("dataset"),
            &Json::from("v0")
        ),
        "{made}"
    );
    assert_eq!(v0["file_count"], 3);
    assert_eq!(v0["size"], 15);
    assert_eq!(v0["aliases"], serde_json::json!(["latest"]));
    assert_eq!(v0["digest"].as_str().map(str::len), Some(64));
    assert_eq!(v0["used_by"][0]["id"], "user");
    assert_eq!(made["used"], serde_json::json!([]));
    let used = ui.json("/api/runs/p/user/artifacts").await;
    assert_eq!(used["used"][0]["logged_by"][0]["project"], "p");
    assert_eq!(used["used"][0]["logged_by"][0]["id"], "maker");
    assert_eq!(used["logged"], serde_json::json!([]));

    let keys = wait_for_async(|| async {
        ui.try_json("/api/runs/p/maker/media")
            .await
            .filter(|k| k.as_array().is_some_and(|a| a.len() == 2))
    })
    .await;
    let by_key = |k: &str| {
        keys.as_array()
            .unwrap()
            .iter()
            .find(|m| m["key"] == k)
            .unwrap()
            .clone()
    };
    let preds = by_key("preds");
    assert_eq!(preds["type"], "table-file");
    assert_eq!(preds["items"].as_array().unwrap().len(), 2);
    assert_eq!(preds["items"][1]["step"], 1.0);
    let sample = by_key("sample");
    assert_eq!(sample["type"], "image-file");
    let image_path = sample["items"][1]["path"].as_str().unwrap().to_owned();
    let img = ui.get(&format!("/media/p/maker/{image_path}")).await;
    assert_eq!(img.status(), 200, "{image_path}");
    assert_eq!(img.headers()["content-type"], "image/png");
    assert!(img.bytes().await.unwrap().starts_with(b"\x89PNG"));

    let table_path = preds["items"][0]["path"].as_str().unwrap().to_owned();
    let q = |rest: &str| format!("/api/runs/p/maker/table?path={table_path}{rest}");
    let page = ui.json(&q("")).await;
    assert_eq!(page["total"], 25);
    assert_eq!(page["columns"], serde_json::json!(["i", "score", "name"]));
    assert_eq!(page["rows"].as_array().unwrap().len(), 25);
    let page = ui.json(&q("&sort=score&desc=true&offset=1&limit=3")).await;
    assert_eq!(
        page["rows"],
        serde_json::json!([[14, 23, "n10"], [21, 22, "n03"], [3, 21, "n21"]])
    );
    let page = ui.json(&q("&sort=name&limit=2")).await;
    assert_eq!(page["rows"][0], serde_json::json!([24, 18, "n00"]));
    let page = ui.json(&q("&offset=24&limit=10")).await;
    assert_eq!(page["rows"].as_array().unwrap().len(), 1);
    let missing = "/api/runs/p/maker/table?path=media/table/nope.table.json";
    for (path, code) in [
        (q("&sort=nope"), 400),
        (q("&limit=0"), 400),
        (q("&limit=5000"), 400),
        (q("&offset=-1"), 400),
        (q("&desc=maybe"), 400),
        ("/api/runs/p/maker/table".to_owned(), 400),
        (missing.to_owned(), 404),
        ("/api/runs/p/maker/table?path=../run.json".to_owned(), 400),
        (format!("/api/runs/p/maker/table?path={image_path}"), 400),
        ("/api/runs/p/nope/artifacts".to_owned(), 404),
        ("/api/runs/p/nope/media".to_owned(), 404),
        ("/api/runs/p/nope/table?path=x".to_owned(), 404),
    ] {
        let r = ui.get(&path).await;
        assert_eq!(r.status().as_u16(), code, "{path}");
        let j: Json = r.json().await.unwrap();
        assert!(j["error"].as_str().is_some_and(|e| !e.is_empty()), "{path}");
    }
    assert_eq!(
        ui.status(&format!("/media/p/maker/{table_path}")).await,
        400
    );
    assert_eq!(ui.status("/media/p/maker/media/images/nope.png").await, 404);
}

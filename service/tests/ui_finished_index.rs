//! The sidecar indexes each run that ends for the web UI (`--index-finished-runs`),
//! with no UI request, so that `runcore ui` opens it at full resolution at once.

mod support;

use runcore::proto::v1::FinishRequest;
use runcore::ui::index::{RunIndex, Source, INDEX_DIR};
use support::*;

/// Logs `rows` rows to run `id` and finishes it.
async fn log_and_finish(s: &InProcess, id: &str, rows: i64) {
    let mut c = s.client().await;
    start_run(&mut c, id).await;
    for step in 0..rows {
        let loss = 1.0 / (step + 1) as f64;
        c.log(log_req(
            id,
            &[("loss", loss), ("acc", 0.5)],
            Some(step),
            None,
        ))
        .await
        .expect("log");
    }
    c.finish(FinishRequest {
        run_id: id.into(),
        ..Default::default()
    })
    .await
    .expect("finish");
}

#[tokio::test]
async fn a_finished_run_is_indexed_without_a_ui_request() {
    let s = InProcess::start().await;
    log_and_finish(&s, "r", 300).await;
    let dir = s.run_dir("p", "r");
    let manifest = dir.join(INDEX_DIR).join("history").join("manifest.json");
    let history_len = std::fs::metadata(dir.join("history.jsonl"))
        .expect("history.jsonl")
        .len();
    assert!(history_len > 0);
    let (indexed, total) = wait_for_async(|| {
        let (manifest, dir) = (manifest.clone(), dir.clone());
        async move {
            if !manifest.exists() {
                return None;
            }
            let p = RunIndex::open(&dir).ok()?.progress(Source::History);
            (p.0 == p.1).then_some(p)
        }
    })
    .await;
    assert_eq!((indexed, total), (history_len, history_len));
    // The index answers a chart's request: every row's loss, against _step.
    let index = RunIndex::open(&dir).expect("index");
    let snapshot = index.snapshot(Source::History).expect("snapshot");
    let (loss, step) = (snapshot.column("loss"), snapshot.column("_step"));
    let points = snapshot
        .points(loss.expect("loss"), step.expect("_step"))
        .expect("points");
    assert_eq!(points.len(), 300);
    assert_eq!(points[9], (9.0, 0.1));
    s.stop().await;
}

#[tokio::test]
async fn with_index_finished_runs_false_nothing_is_indexed() {
    // A data dir that outlives the sidecar, to look at after it has stopped.
    let tmp = tempfile::tempdir().expect("temp dir");
    let data_dir = tmp.path().join("data");
    let s = InProcess::start_with(|c| {
        c.index_finished_runs = false;
        c.data_dir = data_dir.clone();
    })
    .await;
    log_and_finish(&s, "r", 50).await;
    // Stopping joins the indexing thread, had there been one.
    s.stop().await;
    let dir = data_dir.join("p").join("r");
    assert!(dir.join("history.jsonl").exists());
    assert!(
        !dir.join(INDEX_DIR).exists(),
        "no index was built for the finished run"
    );
}

//! SaveFiles: W&B's layouts, and the now / live / end policies.

mod support;

use std::path::Path;

use runcore::proto::v1::{FinishRequest, GetRunRequest, InitRequest, SaveFilesRequest};
use support::*;

fn touch(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn save(glob: &str, base: &str, policy: &str) -> SaveFilesRequest {
    SaveFilesRequest {
        run_id: "sf".into(),
        glob: glob.into(),
        base_path: base.into(),
        policy: policy.into(),
        working_dir: String::new(),
    }
}

async fn start(
    s: &Sidecar,
    wd: &Path,
) -> runcore::proto::v1::run_service_client::RunServiceClient<tonic::transport::Channel> {
    let mut c = s.client().await;
    c.init(InitRequest {
        id: "sf".into(),
        project: "p".into(),
        working_dir: wd.display().to_string(),
        ..Default::default()
    })
    .await
    .unwrap();
    c
}

#[tokio::test]
async fn layouts_follow_the_wandb_save_doc() {
    let s = Sidecar::start();
    let wd = tempfile::tempdir().unwrap();
    let w = wd.path();
    touch(w, "these/are/myfiles/a.txt", "a");
    touch(w, "these/are/myfiles/b.txt", "b");
    touch(w, "docs/run123/r.txt", "r");
    touch(w, "files/x/saveme.txt", "x");
    touch(w, "files/y/saveme.txt", "y");
    let mut c = start(&s, w).await;
    let saved = |req: SaveFilesRequest| {
        let mut c = c.clone();
        async move {
            let mut v = c.save_files(req).await.unwrap().into_inner().saved;
            v.sort();
            v
        }
    };
    assert_eq!(
        saved(save("these/are/myfiles/*", "", "now")).await,
        ["these/are/myfiles/a.txt", "these/are/myfiles/b.txt"]
    );
    assert_eq!(
        saved(save("these/are/myfiles/*", "these", "now")).await,
        ["are/myfiles/a.txt", "are/myfiles/b.txt"]
    );
    let abs = format!("{}/docs/run123/*.txt", w.display());
    assert_eq!(saved(save(&abs, "", "now")).await, ["run123/r.txt"]);
    assert_eq!(
        saved(save(&abs, &w.display().to_string(), "now")).await,
        ["docs/run123/r.txt"]
    );
    assert_eq!(
        saved(save("files/*/saveme.txt", "", "now")).await,
        ["files/x/saveme.txt", "files/y/saveme.txt"]
    );
    let files = s.run_dir("p", "sf").join("files");
    assert_eq!(
        std::fs::read_to_string(files.join("are/myfiles/b.txt")).unwrap(),
        "b"
    );
    assert_eq!(
        std::fs::read_to_string(files.join("run123/r.txt")).unwrap(),
        "r"
    );
    let got = c
        .get_run(GetRunRequest {
            run_id: "sf".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        got.files.contains(&"files/y/saveme.txt".to_string()),
        "{:?}",
        got.files
    );
}

#[tokio::test]
async fn policies_now_live_and_end() {
    let s = Sidecar::start();
    let wd = tempfile::tempdir().unwrap();
    let w = wd.path();
    touch(w, "now.txt", "now-1");
    touch(w, "live.txt", "live-1");
    touch(w, "end.txt", "end-1");
    let mut c = start(&s, w).await;
    c.save_files(save("now.txt", "", "now")).await.unwrap();
    c.save_files(save("live.txt", "", "live")).await.unwrap();
    c.save_files(save("end.txt", "", "end")).await.unwrap();
    let files = s.run_dir("p", "sf").join("files");
    let read = |n: &str| std::fs::read_to_string(files.join(n)).ok();
    assert_eq!(read("now.txt").as_deref(), Some("now-1"));
    assert_eq!(read("live.txt").as_deref(), Some("live-1"));
    assert_eq!(read("end.txt"), None, "end files wait for finish");
    touch(w, "now.txt", "now-2");
    touch(w, "live.txt", "live-2");
    // A live file is copied again once it has stopped changing (flush interval 0.1 s here).
    wait_for(|| (read("live.txt").as_deref() == Some("live-2")).then_some(()));
    touch(w, "live.txt", "live-3");
    touch(w, "end.txt", "end-2");
    c.finish(FinishRequest {
        run_id: "sf".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        read("now.txt").as_deref(),
        Some("now-1"),
        "now is copied once"
    );
    assert_eq!(
        read("live.txt").as_deref(),
        Some("live-3"),
        "live is copied at the end too"
    );
    assert_eq!(read("end.txt").as_deref(), Some("end-2"));
}

#[tokio::test]
async fn end_files_of_a_recovered_run_are_copied_at_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tempfile::tempdir().unwrap();
    touch(wd.path(), "model.pt", "weights");
    let mut s = Sidecar::start_in(tmp.path(), Transport::Tcp, &[]);
    let mut c = start(&s, wd.path()).await;
    c.save_files(save("model.pt", "", "end")).await.unwrap();
    s.kill();
    let s = Sidecar::start_in(tmp.path(), Transport::Tcp, &[]);
    let mut c = s.client().await;
    c.finish(FinishRequest {
        run_id: "sf".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let copied = std::fs::read_to_string(s.run_dir("p", "sf").join("files/model.pt")).unwrap();
    assert_eq!(copied, "weights");
}

//! Artifacts, media and tables forwarded to W&B (the fake server of
//! tests/support/wandb.rs, which checks the artifact protocol): a logged version
//! created, its files PUT with Content-MD5, its manifest and commit; the same
//! content from another run deduplicated by W&B; a use and a registry link;
//! media and table files uploaded as run files with the history lines naming
//! them; and `runcore sync` of the runs written offline sending the same.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use runcore::proto::v1::{
    value::Kind, FinishRequest, LinkArtifactRequest, LogRequest, Media, MediaKind,
    UseArtifactRequest, Value,
};
use support::artifacts::{self as art, Client};
use support::wandb::{self, FakeWandb};
use support::*;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn media(path: &Path, kind: MediaKind) -> Value {
    Value {
        kind: Some(Kind::Media(Media {
            path: path.display().to_string(),
            kind: kind as i32,
            ..Default::default()
        })),
    }
}

async fn finish(c: &mut Client, run: &str) {
    c.finish(FinishRequest {
        run_id: run.into(),
        ..Default::default()
    })
    .await
    .unwrap();
}

/// Copies a data dir without its runs' delivery cursors: written offline.
fn copy_offline(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_name() == "forward" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_offline(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Runs "maker" (logs ds, an image and a table), "user" (uses ds:v0, links it)
/// and "again" (logs the same content).
async fn log_runs(c: &mut Client, src: &Path) {
    start_run(c, "maker").await;
    for i in 0..3 {
        write(
            src,
            &format!("ds/part{i}.csv"),
            &format!("a,b\n{i},{}\n", i * i),
        );
    }
    let (done, _) = art::log_dir(c, "maker", "ds", "dataset", &src.join("ds")).await;
    assert_eq!(done.artifact.unwrap().version, "v0");
    write(src, "pic.png", "not really a png");
    write(src, "t.json", r#"{"columns":["a","b"],"data":[[1,2]]}"#);
    let mut data = BTreeMap::new();
    data.insert(
        "pic".to_string(),
        media(&src.join("pic.png"), MediaKind::Image),
    );
    data.insert(
        "tbl".to_string(),
        media(&src.join("t.json"), MediaKind::Table),
    );
    c.log(LogRequest {
        run_id: "maker".into(),
        data,
        ..Default::default()
    })
    .await
    .unwrap();
    finish(c, "maker").await;

    start_run(c, "user").await;
    c.use_artifact(UseArtifactRequest {
        run_id: "user".into(),
        name: "ds:v0".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    c.link_artifact(LinkArtifactRequest {
        run_id: "user".into(),
        name: "ds:latest".into(),
        target_path: "model-registry/golden".into(),
        aliases: vec!["prod".into()],
    })
    .await
    .unwrap();
    finish(c, "user").await;

    start_run(c, "again").await;
    let (done, _) = art::log_dir(c, "again", "ds", "dataset", &src.join("ds")).await;
    assert!(done.existing);
    finish(c, "again").await;
}

/// Checks what the fake holds after the three runs.
fn check(fake: &FakeWandb, src: &Path) {
    let arts = fake.artifacts();
    assert_eq!(arts.len(), 1, "one version at W&B: {arts:#?}");
    let a = &arts[0];
    assert_eq!(
        (a.state.as_str(), a.collection.as_str(), a.ty.as_str()),
        ("COMMITTED", "ds", "dataset")
    );
    assert_eq!(a.run, "maker");
    assert_eq!(
        a.creates, 3,
        "created by maker, then found by digest for the use and the re-log"
    );
    assert_eq!(a.files.len(), 3);
    assert_eq!(
        a.files["part1.csv"],
        std::fs::read(src.join("ds/part1.csv")).unwrap()
    );
    assert_eq!(a.used_by, ["user"]);
    let links = fake.links();
    assert_eq!(links.len(), 1);
    assert_eq!(
        (
            links[0].portfolio.as_str(),
            links[0].project.as_str(),
            links[0].aliases.clone()
        ),
        ("golden", "model-registry", vec!["prod".to_string()])
    );
    let maker = fake.run("maker").unwrap();
    let row = &maker.history_rows()[0];
    for (key, dir) in [("pic", "media/images/"), ("tbl", "media/table/")] {
        let Some(Kind::Media(m)) = &row[key].kind else {
            panic!("{key} is not media in W&B's history: {row:?}")
        };
        assert!(m.path.starts_with(dir), "{}", m.path);
        assert_eq!(
            m.sha256.len(),
            64,
            "the history reference names the content"
        );
        assert!(
            maker.files.contains_key(&m.path),
            "{} was not uploaded",
            m.path
        );
        assert!(maker.reported.contains(&m.path));
    }
    fake.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_media_and_tables_reach_wandb_and_sync_sends_the_same() {
    let fake = FakeWandb::start();
    let s = wandb::sidecar(&fake, &[]);
    let mut c = s.client().await;
    let src = tempfile::tempdir().unwrap();
    log_runs(&mut c, src.path()).await;
    for run in ["maker", "user", "again"] {
        fake.wait_run(run, |v| v.complete == Some(true)).await;
    }
    check(&fake, src.path());

    // The same runs written offline, then synced to a fresh W&B.
    let offline = tempfile::tempdir().unwrap();
    copy_offline(&s.data_dir, offline.path());
    let fresh = FakeWandb::start();
    for run in ["maker", "user", "again"] {
        let out = wandb::sync(&offline.path().join("p").join(run), &fresh);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    check(&fresh, src.path());
}

//! A sidecar SIGKILLed in the middle of an artifact upload: after a restart there
//! is no version (not even a half one), the draft is gone, and logging the same
//! name again starts at v0 with the content that was complete reused.

mod support;

use runcore::proto::v1::add_artifact_files_request::Item;
use runcore::proto::v1::{AddArtifactFilesRequest, ArtifactChunk, InitRequest, Resume};
use support::artifacts as art;
use support::*;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_upload_leaves_no_half_version() {
    let root = tempfile::tempdir().unwrap();
    let mut s = Sidecar::start_in(root.path(), Transport::Unix, &[]);
    let mut c = s.client().await;
    start_run(&mut c, "up").await;
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("done.txt"), "complete file").unwrap();
    let draft = art::create(&mut c, "up", "ds", "dataset").await.unwrap();
    art::add_paths(
        &mut c,
        &draft,
        &[("done.txt".into(), src.path().join("done.txt"))],
    )
    .await
    .unwrap();

    // A streamed file, half sent when the sidecar dies.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut c2 = s.client().await;
    let upload = tokio::spawn(async move {
        c2.add_artifact_files(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    tx.send(AddArtifactFilesRequest {
        draft_id: draft.clone(),
        item: Some(Item::Chunk(ArtifactChunk {
            path: "big.bin".into(),
            data: vec![7u8; 1 << 20],
            last: false,
            sha256: String::new(),
        })),
    })
    .await
    .unwrap();
    let tmp = s.data_dir.join("artifacts/tmp");
    wait_for(|| {
        art::files_under(&tmp)
            .iter()
            .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
            .then_some(())
    });
    s.kill();
    assert!(upload.await.unwrap().is_err(), "the upload cannot succeed");
    drop(tx);

    let mut s = Sidecar::start_in(root.path(), Transport::Unix, &[]);
    let mut c = s.client().await;
    let e = art::get(&mut c, "ds:latest", false).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(!s.data_dir.join("artifacts/ds/index.json").exists());
    let e = art::commit(&mut c, &draft).await.unwrap_err();
    assert_eq!(
        e.code(),
        Code::NotFound,
        "the draft died with the sidecar: {e:?}"
    );

    // Logging again: v0, the complete file's content reused.
    c.init(InitRequest {
        id: "up".into(),
        project: "p".into(),
        resume: Resume::Allow as i32,
        ..Default::default()
    })
    .await
    .unwrap();
    let (done, added) = art::log_dir(&mut c, "up", "ds", "dataset", src.path()).await;
    let v = done.artifact.unwrap();
    assert_eq!((v.version.as_str(), v.file_count), ("v0", 1));
    assert_eq!((added.bytes_stored, added.bytes_deduplicated), (0, 13));
    s.kill();
}

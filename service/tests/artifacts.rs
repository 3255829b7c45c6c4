//! The artifact store through its RPCs (sidecar in-process): versions, aliases
//! and lineage; the same content giving the existing version with no bytes
//! copied; a one-file change storing one file; downloads as hard links;
//! streamed files with digests checked; the registry; distributed drafts;
//! concurrent writers of one name; bad input refused with nothing half-written.

mod support;

use std::os::unix::fs::MetadataExt;

use runcore::proto::v1::add_artifact_files_request::Item;
use runcore::proto::v1::{
    AddArtifactFilesRequest, ArtifactFile, ArtifactFileSource, CreateArtifactRequest,
    FinishRequest, LinkArtifactRequest, ListArtifactsRequest, SetArtifactAliasesRequest,
    UseArtifactRequest,
};
use support::artifacts::{self as art, Client};
use support::*;
use tonic::Code;

fn write(dir: &std::path::Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// The status a failed call ended with.
fn code<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> Code {
    r.unwrap_err().code()
}

async fn use_artifact(c: &mut Client, run: &str, name: &str) -> runcore::proto::v1::Artifact {
    c.use_artifact(UseArtifactRequest {
        run_id: run.into(),
        name: name.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .artifact
    .unwrap()
}

#[tokio::test]
async fn versions_dedup_aliases_lineage_and_downloads() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    start_run(&mut c, "maker").await;
    let src = tempfile::tempdir().unwrap();
    for i in 0..20 {
        write(src.path(), &format!("data/{i:02}.txt"), &format!("row {i}"));
    }
    let (first, added) = art::log_dir(&mut c, "maker", "ds", "dataset", src.path()).await;
    let v0 = first.artifact.unwrap();
    assert_eq!((v0.version.as_str(), first.existing), ("v0", false));
    assert_eq!(
        (v0.file_count, v0.aliases.clone()),
        (20, vec!["latest".to_string()])
    );
    assert_eq!(added.bytes_deduplicated, 0);
    assert_eq!(v0.logged_by, ["p/maker"]);
    let blobs = art::blob_count(&s.data_dir);
    assert_eq!(blobs, 20);

    // The same content again: the existing version, nothing copied.
    let (again, added) = art::log_dir(&mut c, "maker", "ds", "dataset", src.path()).await;
    assert!(again.existing);
    assert_eq!(again.artifact.unwrap().version, "v0");
    assert_eq!(
        (added.bytes_stored, added.bytes_deduplicated > 0),
        (0, true)
    );
    assert_eq!(art::blob_count(&s.data_dir), blobs);

    // One file changed: a new version storing one file; latest moves.
    write(src.path(), "data/07.txt", "row seven, changed");
    let (second, added) = art::log_dir(&mut c, "maker", "ds", "dataset", src.path()).await;
    let v1 = second.artifact.unwrap();
    assert_eq!(v1.version, "v1");
    assert_eq!(added.bytes_stored, "row seven, changed".len() as u64);
    assert_eq!(art::blob_count(&s.data_dir), blobs + 1);
    assert_eq!(
        art::get(&mut c, "ds:latest", false).await.unwrap().version,
        "v1"
    );
    assert!(art::get(&mut c, "ds:v0", false)
        .await
        .unwrap()
        .aliases
        .is_empty());

    // Custom aliases move between versions; latest cannot be touched.
    let set = |name: &str, add: &[&str], remove: &[&str]| SetArtifactAliasesRequest {
        name: name.into(),
        add: add.iter().map(|a| a.to_string()).collect(),
        remove: remove.iter().map(|a| a.to_string()).collect(),
        run_id: String::new(),
    };
    c.set_artifact_aliases(set("ds:v0", &["best"], &[]))
        .await
        .unwrap();
    assert_eq!(
        art::get(&mut c, "ds:best", false).await.unwrap().version,
        "v0"
    );
    c.set_artifact_aliases(set("ds:v1", &["best"], &[]))
        .await
        .unwrap();
    assert_eq!(
        art::get(&mut c, "ds:best", false).await.unwrap().version,
        "v1"
    );
    let e = c
        .set_artifact_aliases(set("ds:v0", &[], &["latest"]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    // Another run uses v0 (lineage) and downloads it as hard links.
    start_run(&mut c, "user").await;
    let used = use_artifact(&mut c, "user", "team/p/ds:v0").await;
    assert_eq!(used.used_by, ["p/user"]);
    let root = tempfile::tempdir().unwrap();
    let placed = art::download(&mut c, "ds:v0", &root.path().display().to_string())
        .await
        .unwrap();
    assert_eq!(placed.len(), 20);
    assert!(placed.iter().all(|p| p.linked));
    let got = std::fs::read_to_string(root.path().join("data/07.txt")).unwrap();
    assert_eq!(got, "row 7");
    let meta = std::fs::metadata(root.path().join("data/07.txt")).unwrap();
    assert!(meta.nlink() >= 2 && meta.permissions().readonly());

    let list = |run: &str, dir: &str| ListArtifactsRequest {
        run_id: run.into(),
        direction: dir.into(),
        ..Default::default()
    };
    let logged = c
        .list_artifacts(list("maker", "logged"))
        .await
        .unwrap()
        .into_inner();
    let versions: Vec<_> = logged.artifacts.iter().map(|a| a.version.clone()).collect();
    assert_eq!(versions, ["v0", "v1"]);
    let used = c
        .list_artifacts(list("user", "used"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(used.artifacts.len(), 1);
    assert_eq!(used.artifacts[0].version, "v0");
    s.stop().await;
}

#[tokio::test]
async fn streamed_files_references_and_the_registry() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    start_run(&mut c, "r").await;
    let draft = art::create(&mut c, "r", "model", "model").await.unwrap();
    let weights = b"0123456789 weights".to_vec();
    let mut msgs = art::chunks(&draft, "weights.bin", &weights, &art::sha256(&weights));
    msgs.push(AddArtifactFilesRequest {
        draft_id: draft.clone(),
        item: Some(Item::Reference(ArtifactFile {
            path: "raw/data.csv".into(),
            r#ref: "s3://bucket/data.csv".into(),
            size: 99,
            ..Default::default()
        })),
    });
    let added = art::add(&mut c, msgs).await.unwrap();
    assert_eq!((added.added, added.file_count), (2, 2));
    let model = art::commit(&mut c, &draft).await.unwrap().artifact.unwrap();
    let files = art::get(&mut c, "model:v0", true).await.unwrap().files;
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].path, "raw/data.csv");
    assert_eq!(files[0].r#ref, "s3://bucket/data.csv");
    assert!(files[0].sha256.is_empty(), "a reference is not fetched");
    assert_eq!(files[1].sha256, art::sha256(&weights));

    // A reference is not fetched on download either.
    let root = tempfile::tempdir().unwrap();
    let placed = art::download(&mut c, "model:v0", &root.path().display().to_string())
        .await
        .unwrap();
    assert_eq!(placed[0].skipped_ref, "s3://bucket/data.csv");
    assert_eq!(
        std::fs::read(root.path().join("weights.bin")).unwrap(),
        weights
    );

    let link = |aliases: &[&str]| LinkArtifactRequest {
        run_id: "r".into(),
        name: "model:v0".into(),
        target_path: "model-registry/classifier".into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
    };
    let l = c
        .link_artifact(link(&["staging"]))
        .await
        .unwrap()
        .into_inner()
        .link
        .unwrap();
    assert_eq!(
        (l.collection.as_str(), l.version.as_str()),
        ("classifier", "v0")
    );
    assert_eq!(l.aliases, ["latest", "staging"]);
    // Linking it again: the same link, an alias more.
    let l = c
        .link_artifact(link(&["production"]))
        .await
        .unwrap()
        .into_inner()
        .link
        .unwrap();
    assert_eq!(l.version, "v0");
    let via = art::get(&mut c, "model-registry/classifier:production", false)
        .await
        .unwrap();
    assert_eq!(
        (via.name.as_str(), via.digest.as_str()),
        ("model", model.digest.as_str())
    );
    let listed = c
        .list_artifacts(ListArtifactsRequest {
            collection: "classifier".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.links.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn distributed_writers_share_one_draft_and_concurrent_writers_get_distinct_versions() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    let src = tempfile::tempdir().unwrap();
    let mut drafts = Vec::new();
    for w in 0..3 {
        let id = format!("w{w}");
        start_run(&mut c, &id).await;
        let draft = c
            .create_artifact(CreateArtifactRequest {
                run_id: id.clone(),
                name: "shards".into(),
                r#type: "dataset".into(),
                distributed_id: "job-1".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .draft_id;
        write(src.path(), &format!("shard{w}"), &format!("shard {w}"));
        art::add_paths(
            &mut c,
            &draft,
            &[(format!("shard{w}"), src.path().join(format!("shard{w}")))],
        )
        .await
        .unwrap();
        drafts.push(draft);
    }
    assert!(drafts.iter().all(|d| *d == drafts[0]));
    let done = art::commit(&mut c, &drafts[0])
        .await
        .unwrap()
        .artifact
        .unwrap();
    assert_eq!(done.file_count, 3);
    assert_eq!(done.logged_by, ["p/w0", "p/w1", "p/w2"]);

    // Eight writers of one name at once, each with its own content.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let addr = s.addr.clone();
        let dir = src.path().to_owned();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::new(channel(&addr).await);
            let id = format!("cw{w}");
            start_run(&mut c, &id).await;
            write(&dir, &format!("c{w}/f"), &format!("content {w}"));
            let (r, _) =
                art::log_dir(&mut c, &id, "busy", "dataset", &dir.join(format!("c{w}"))).await;
            r.artifact.unwrap().version_index
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    versions.sort();
    assert_eq!(versions, (0..8).collect::<Vec<u32>>());
    assert_eq!(
        art::get(&mut c, "busy:latest", false)
            .await
            .unwrap()
            .version,
        "v7"
    );
    s.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_and_leaves_nothing() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    start_run(&mut c, "b").await;
    assert_eq!(
        code(art::get(&mut c, "nothing:latest", false).await),
        Code::NotFound
    );
    assert_eq!(
        code(art::get(&mut c, "x:bad/alias", false).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(art::create(&mut c, "b", "../up", "dataset").await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(art::create(&mut c, "nobody", "n", "dataset").await),
        Code::NotFound
    );

    let src = tempfile::tempdir().unwrap();
    write(src.path(), "a.txt", "alpha");
    let draft = art::create(&mut c, "b", "ds", "dataset").await.unwrap();
    let escaping = vec![("../../etc/x".to_string(), src.path().join("a.txt"))];
    assert_eq!(
        code(art::add_paths(&mut c, &draft, &escaping).await),
        Code::InvalidArgument
    );
    let wrong = vec![AddArtifactFilesRequest {
        draft_id: draft.clone(),
        item: Some(Item::File(ArtifactFileSource {
            path: "a.txt".into(),
            source: src.path().join("a.txt").display().to_string(),
            sha256: "0".repeat(64),
        })),
    }];
    assert_eq!(code(art::add(&mut c, wrong).await), Code::InvalidArgument);
    let streamed = art::chunks(&draft, "b.bin", b"bytes", &"1".repeat(64));
    assert_eq!(
        code(art::add(&mut c, streamed).await),
        Code::InvalidArgument
    );
    // A stream that stops inside a file keeps nothing of it.
    let mut cut = art::chunks(&draft, "c.bin", b"half a file", "");
    cut.pop();
    assert_eq!(code(art::add(&mut c, cut).await), Code::InvalidArgument);
    let v = art::commit(&mut c, &draft).await.unwrap().artifact.unwrap();
    assert_eq!(
        v.file_count, 0,
        "nothing of the refused files is in the version"
    );
    assert_eq!(art::blob_count(&s.data_dir), 0);
    assert!(art::files_under(&s.data_dir.join("artifacts/tmp")).is_empty());

    // Another type under the same name; an unknown draft; an ended run.
    assert_eq!(
        code(art::create(&mut c, "b", "ds", "model").await),
        Code::InvalidArgument
    );
    assert_eq!(code(art::commit(&mut c, "feedbeef").await), Code::NotFound);
    c.finish(FinishRequest {
        run_id: "b".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        code(art::create(&mut c, "b", "ds", "dataset").await),
        Code::FailedPrecondition
    );
    // Over TCP, a download root outside --files-root.
    let e = art::download(&mut c, "ds:v0", "/").await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert_eq!(
        code(art::download(&mut c, "ds:v0", "relative/dir").await),
        Code::InvalidArgument
    );
    s.stop().await;
}

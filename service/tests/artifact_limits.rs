//! What the artifact RPCs refuse, as every hardened RPC does (sidecar in-process,
//! over TCP with files confined to the temp dir): names, paths and text with
//! control characters or past their lengths, quoted back at most 200 characters;
//! metadata held to config's value limits; streamed files to --max-file-bytes;
//! downloads that would go through a symlink under the root, into the data dir,
//! or outside --files-root; nothing written outside the download root; no run in
//! the store's own directory (project "artifacts").

mod support;

use std::collections::BTreeMap;

use runcore::proto::v1::add_artifact_files_request::Item;
use runcore::proto::v1::value::Kind;
use runcore::proto::v1::{
    AddArtifactFilesRequest, ArtifactFile, CreateArtifactRequest, GetArtifactRequest, InitRequest,
    ListValue, MapValue, Value,
};
use support::artifacts::{self as art, Client};
use support::*;
use tonic::{Code, Status};

fn refused<T: std::fmt::Debug>(r: Result<T, Status>, code: Code) -> String {
    let e = r.unwrap_err();
    assert_eq!(e.code(), code, "{e:?}");
    assert!(
        e.message().len() < 600,
        "message too long: {} bytes",
        e.message().len()
    );
    e.message().to_owned()
}

async fn create(c: &mut Client, req: CreateArtifactRequest) -> Result<String, Status> {
    Ok(c.create_artifact(req).await?.into_inner().draft_id)
}

fn create_req(name: &str) -> CreateArtifactRequest {
    CreateArtifactRequest {
        run_id: "r".into(),
        name: name.into(),
        r#type: "dataset".into(),
        ..Default::default()
    }
}

/// A value nested `depth` maps deep.
fn nested(depth: usize) -> Value {
    let mut v = Value {
        kind: Some(Kind::IntValue(1)),
    };
    for _ in 0..depth {
        v = Value {
            kind: Some(Kind::MapValue(MapValue {
                fields: BTreeMap::from([("k".to_string(), v)]),
            })),
        };
    }
    v
}

#[tokio::test]
async fn names_text_and_values_are_checked_with_short_messages() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    // The store's directory is no project's: a run there would share it.
    let store_project = InitRequest {
        id: "blobs".into(),
        project: "artifacts".into(),
        ..Default::default()
    };
    refused(c.init(store_project).await, Code::InvalidArgument);
    start_run(&mut c, "r").await;
    let long = "n".repeat(100_000);
    let msg = refused(
        create(&mut c, create_req(&long)).await,
        Code::InvalidArgument,
    );
    assert!(msg.contains("more characters"), "{msg}");
    refused(
        create(&mut c, create_req("a\u{7}b")).await,
        Code::InvalidArgument,
    );
    let mut bad_run = create_req("ds");
    bad_run.run_id = "../../etc".into();
    refused(create(&mut c, bad_run).await, Code::InvalidArgument);
    let mut deep = create_req("ds");
    deep.metadata.insert("m".into(), nested(100));
    refused(create(&mut c, deep).await, Code::InvalidArgument);
    let mut many_aliases = create_req("ds");
    many_aliases.aliases = (0..1000).map(|i| format!("a{i}")).collect();
    refused(create(&mut c, many_aliases).await, Code::ResourceExhausted);
    let mut bell = create_req("ds");
    bell.description = "ring\u{7}".into();
    refused(create(&mut c, bell).await, Code::InvalidArgument);
    let r = c
        .get_artifact(GetArtifactRequest {
            name: format!("ds:{long}"),
            ..Default::default()
        })
        .await;
    refused(r, Code::InvalidArgument);

    let draft = create(&mut c, create_req("ds")).await.unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("a"), "a").unwrap();
    for path in ["a\nb", "tab\there", &"x".repeat(300), &"d/".repeat(3000)] {
        let files = vec![(path.to_string(), src.path().join("a"))];
        refused(
            art::add_paths(&mut c, &draft, &files).await,
            Code::InvalidArgument,
        );
    }
    let list = Value {
        kind: Some(Kind::ListValue(ListValue {
            values: (0..200_000).map(|_| nested(0)).collect(),
        })),
    };
    let reference = |extra: BTreeMap<String, Value>, size: u64| AddArtifactFilesRequest {
        draft_id: draft.clone(),
        item: Some(Item::Reference(ArtifactFile {
            path: "r".into(),
            r#ref: "s3://bucket/key".into(),
            size,
            extra,
            ..Default::default()
        })),
    };
    refused(
        art::add(&mut c, vec![reference(BTreeMap::new(), u64::MAX)]).await,
        Code::InvalidArgument,
    );
    let big_extra = BTreeMap::from([("l".to_string(), list)]);
    refused(
        art::add(&mut c, vec![reference(big_extra, 1)]).await,
        Code::ResourceExhausted,
    );
    let v = art::commit(&mut c, &draft).await.unwrap().artifact.unwrap();
    assert_eq!(v.file_count, 0, "nothing refused is in the version");
    s.stop().await;
}

#[tokio::test]
async fn a_streamed_file_over_the_file_limit_leaves_nothing() {
    let s = InProcess::start_with(|c| c.files.max_bytes = 1000).await;
    let mut c = s.client().await;
    start_run(&mut c, "r").await;
    let draft = create(&mut c, create_req("ds")).await.unwrap();
    let msgs = art::chunks(&draft, "big.bin", &[7u8; 4000], "");
    refused(art::add(&mut c, msgs).await, Code::ResourceExhausted);
    assert_eq!(art::blob_count(&s.data_dir), 0);
    assert!(art::files_under(&s.data_dir.join("artifacts/tmp")).is_empty());
    s.stop().await;
}

#[tokio::test]
async fn downloads_stay_under_their_root_and_out_of_the_data_dir() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    start_run(&mut c, "r").await;
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("sub")).unwrap();
    std::fs::write(src.path().join("sub/x.txt"), "x").unwrap();
    std::fs::write(src.path().join("top.txt"), "top").unwrap();
    art::log_dir(&mut c, "r", "ds", "dataset", src.path()).await;

    // A symlink where the artifact needs a directory is not followed.
    let root = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), root.path().join("sub")).unwrap();
    let r = art::download(&mut c, "ds:v0", &root.path().display().to_string()).await;
    refused(r, Code::InvalidArgument);
    assert!(art::files_under(elsewhere.path()).is_empty());

    // A root reached through a symlink is outside --files-root over TCP.
    let linked_root = root.path().join("via-link");
    std::os::unix::fs::symlink(elsewhere.path(), &linked_root).unwrap();
    let r = art::download(&mut c, "ds:v0", &linked_root.display().to_string()).await;
    refused(r, Code::PermissionDenied);
    assert!(art::files_under(elsewhere.path()).is_empty());

    // Nothing goes into the data dir, where the runs' own files are.
    let into_run = s.run_dir("p", "r").display().to_string();
    refused(
        art::download(&mut c, "ds:v0", &into_run).await,
        Code::InvalidArgument,
    );

    // A plain directory gets the files; a file symlinked at a file's place is
    // replaced, not written through.
    let good = tempfile::tempdir().unwrap();
    let victim = elsewhere.path().join("victim.txt");
    std::fs::write(&victim, "keep").unwrap();
    std::os::unix::fs::symlink(&victim, good.path().join("top.txt")).unwrap();
    let placed = art::download(&mut c, "ds:v0", &good.path().display().to_string())
        .await
        .unwrap();
    assert_eq!(placed.len(), 2);
    assert_eq!(
        std::fs::read_to_string(good.path().join("sub/x.txt")).unwrap(),
        "x"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    assert!(!good.path().join("top.txt").is_symlink());
    s.stop().await;
}

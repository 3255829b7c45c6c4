//! The public read API's RPCs, in-process: ListFiles and ReadFile (chunks, offsets,
//! names confined to the run's files directory), DeleteRun (refused while the run
//! is open), GetRun's latest system metrics, ScanHistory's and ListFiles' page sizes.

mod support;

use runcore::proto::v1::run_service_client::RunServiceClient;
use runcore::proto::v1::{
    DeleteRunRequest, FinishRequest, GetRunRequest, InitRequest, ListFilesRequest, ListRunsRequest,
    ReadFileRequest, SaveFilesRequest, ScanHistoryRequest, SystemMetricsSettings,
};
use support::*;
use tonic::transport::Channel;
use tonic::Code;

async fn read_file(
    c: &mut RunServiceClient<Channel>,
    run: &str,
    name: &str,
    offset: u64,
) -> Result<(Vec<u8>, usize), tonic::Status> {
    let mut stream = c
        .read_file(ReadFileRequest {
            run_id: run.into(),
            name: name.into(),
            offset,
        })
        .await?
        .into_inner();
    let (mut bytes, mut chunks) = (Vec::new(), 0);
    while let Some(chunk) = stream.message().await? {
        assert_eq!(
            chunk.offset,
            offset + bytes.len() as u64,
            "contiguous chunks"
        );
        bytes.extend_from_slice(&chunk.data);
        chunks += 1;
    }
    Ok((bytes, chunks))
}

async fn finish(c: &mut RunServiceClient<Channel>, run: &str) {
    c.finish(FinishRequest {
        run_id: run.into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn files_are_listed_and_read_in_chunks_inside_the_run_only() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    let wd = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::create_dir(wd.path().join("ckpt")).unwrap();
    std::fs::write(wd.path().join("ckpt/model.bin"), &big).unwrap();
    std::fs::write(wd.path().join("notes.txt"), "hello").unwrap();
    std::fs::write(wd.path().join("empty.txt"), "").unwrap();
    init(
        &mut c,
        InitRequest {
            id: "files".into(),
            project: "p".into(),
            working_dir: wd.path().display().to_string(),
            ..Default::default()
        },
    )
    .await;
    for glob in ["ckpt/model.bin", "notes.txt", "empty.txt"] {
        c.save_files(SaveFilesRequest {
            run_id: "files".into(),
            glob: glob.into(),
            policy: "now".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let listed = c
        .list_files(ListFilesRequest {
            run_id: "files".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .files;
    let names: Vec<(&str, u64)> = listed.iter().map(|f| (f.name.as_str(), f.size)).collect();
    assert_eq!(
        names,
        [
            ("ckpt/model.bin", 600_000),
            ("empty.txt", 0),
            ("notes.txt", 5)
        ]
    );
    assert!(listed.iter().all(|f| f.updated_at > 1e9));

    let (bytes, chunks) = read_file(&mut c, "files", "ckpt/model.bin", 0)
        .await
        .unwrap();
    assert_eq!(bytes, big);
    assert_eq!(chunks, 3, "256 KiB chunks");
    let (tail, _) = read_file(&mut c, "files", "ckpt/model.bin", 599_990)
        .await
        .unwrap();
    assert_eq!(tail, big[599_990..]);
    let (empty, chunks) = read_file(&mut c, "files", "empty.txt", 0).await.unwrap();
    assert_eq!(
        (empty.len(), chunks),
        (0, 1),
        "one empty chunk says the size"
    );

    // A link inside files/ that leads out of it is not followed.
    let outside = wd.path().join("secret.txt");
    std::fs::write(&outside, "secret").unwrap();
    let files_dir = s.run_dir("p", "files").join("files");
    std::os::unix::fs::symlink(&outside, files_dir.join("link.txt")).unwrap();
    let long = "n/".repeat(2049);
    for (name, offset, code) in [
        (long.as_str(), 0, Code::InvalidArgument),
        ("a\0b", 0, Code::InvalidArgument),
        ("../run.json", 0, Code::InvalidArgument),
        ("/etc/passwd", 0, Code::InvalidArgument),
        ("", 0, Code::InvalidArgument),
        ("ckpt/../../run.json", 0, Code::InvalidArgument),
        ("nope.txt", 0, Code::NotFound),
        ("ckpt", 0, Code::NotFound),
        ("link.txt", 0, Code::PermissionDenied),
        ("notes.txt", 6, Code::InvalidArgument),
    ] {
        let err = read_file(&mut c, "files", name, offset).await.unwrap_err();
        assert_eq!(err.code(), code, "{name:?} at {offset}: {}", err.message());
        assert!(!err.message().is_empty());
        assert!(err.message().len() < 600, "input is quoted back bounded");
    }
    let err = read_file(&mut c, "ghost", "notes.txt", 0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());
    finish(&mut c, "files").await;
    let (bytes, _) = read_file(&mut c, "files", "notes.txt", 0).await.unwrap();
    assert_eq!(
        bytes, b"hello",
        "an ended run's files are read from the store"
    );
    s.stop().await;
}

#[tokio::test]
async fn delete_refuses_an_open_run_and_removes_an_ended_one() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    start_run(&mut c, "doomed").await;
    start_run(&mut c, "kept").await;
    c.log(log_req("doomed", &[("loss", 1.0)], None, None))
        .await
        .unwrap();
    let del = |id: &str| DeleteRunRequest {
        run_id: id.into(),
        delete_artifacts: true,
    };
    let err = c.delete_run(del("doomed")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("finish it"), "{}", err.message());
    assert!(s.run_dir("p", "doomed").join("run.wal").is_file());

    finish(&mut c, "doomed").await;
    c.delete_run(del("doomed")).await.unwrap();
    assert!(!s.run_dir("p", "doomed").exists());
    let err = c
        .get_run(GetRunRequest {
            run_id: "doomed".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let ids: Vec<String> = c
        .list_runs(ListRunsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .runs
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["kept"]);
    let err = c.delete_run(del("doomed")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // The id is free again.
    start_run(&mut c, "doomed").await;
    s.stop().await;
}

#[tokio::test]
async fn get_run_has_the_latest_system_sample_and_scan_pages_by_size() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    init(
        &mut c,
        InitRequest {
            id: "sys".into(),
            project: "p".into(),
            system_metrics: Some(SystemMetricsSettings {
                interval: 0.1,
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    for i in 0..10 {
        c.log(log_req("sys", &[("x", i as f64)], None, None))
            .await
            .unwrap();
    }
    let get = GetRunRequest {
        run_id: "sys".into(),
    };
    let live = wait_for_async(|| {
        let mut c = c.clone();
        let get = get.clone();
        async move {
            let m = c.get_run(get).await.ok()?.into_inner().system_metrics;
            (!m.is_empty()).then_some(m)
        }
    })
    .await;
    assert!(live.keys().any(|k| k.starts_with("system.")), "{live:?}");
    assert!(live["_timestamp"] > 1e9 && live["_runtime"] >= 0.0);
    finish(&mut c, "sys").await;
    let stored = c.get_run(get).await.unwrap().into_inner().system_metrics;
    assert!(stored.keys().any(|k| k.starts_with("system.")));

    let mut pages = Vec::new();
    let mut stream = c
        .scan_history(ScanHistoryRequest {
            run_id: "sys".into(),
            page_size: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(page) = stream.message().await.unwrap() {
        pages.push(page.rows.len());
    }
    assert_eq!(pages, [3, 3, 3, 1]);
    let err = c
        .scan_history(ScanHistoryRequest {
            run_id: "sys".into(),
            page_size: 20_000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    s.stop().await;
}

#[tokio::test]
async fn files_are_listed_in_pages_that_follow_on_from_a_token() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    init(
        &mut c,
        InitRequest {
            id: "many".into(),
            project: "p".into(),
            ..Default::default()
        },
    )
    .await;
    // Written straight into files/, as a run that saved many files leaves them.
    let files_dir = s.run_dir("p", "many").join("files");
    std::fs::create_dir_all(files_dir.join("sub")).unwrap();
    let mut want = Vec::new();
    for i in 0..2_345 {
        let name = if i % 10 == 0 {
            format!("sub/f{i:05}.txt")
        } else {
            format!("f{i:05}.txt")
        };
        std::fs::write(files_dir.join(&name), i.to_string()).unwrap();
        want.push(name);
    }
    want.sort();
    let page = |token: &str, size: u32| ListFilesRequest {
        run_id: "many".into(),
        page_size: size,
        page_token: token.into(),
    };
    let (mut got, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let resp = c.list_files(page(&token, 1000)).await.unwrap().into_inner();
        assert!(resp.files.len() <= 1000);
        pages += 1;
        got.extend(resp.files.into_iter().map(|f| (f.name, f.size)));
        if resp.next_page_token.is_empty() {
            break;
        }
        token = resp.next_page_token;
    }
    assert_eq!(pages, 3);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, want, "every file once, in name order");
    assert_eq!(got[0].1, 1, "f00001.txt holds \"1\"");

    // 0 is the default page (1000); an exact last page says there is no more.
    let first = c.list_files(page("", 0)).await.unwrap().into_inner();
    assert_eq!(first.files.len(), 1000);
    assert_eq!(first.next_page_token, want[999]);
    let last = c
        .list_files(page(&want[2_344 - 5], 5))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(last.files.len(), 5);
    assert!(last.next_page_token.is_empty());
    // A file added behind the cursor is not listed again; one ahead of it is.
    std::fs::write(files_dir.join("zz-new.txt"), "new").unwrap();
    let rest = c
        .list_files(page(&want[2_343], 10))
        .await
        .unwrap()
        .into_inner();
    let rest: Vec<&str> = rest.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(rest, [want[2_344].as_str(), "zz-new.txt"]);

    let err = c.list_files(page("", 10_001)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(err.message().contains("page_size"), "{}", err.message());
}

//! UpdateRun: an edit of an open and of an ended run is a record in the run's log:
//! the store files follow it, a restart (after a SIGKILL) and every replay
//! (GetRun, ListRuns, a resume) see it, and a resume racing edits of an ended run
//! loses none of them. Forwarding of edits to MLflow and W&B is tested in
//! `edit_forwarding.rs`.

mod support;

use runcore::proto::v1::run_service_client::RunServiceClient;
use runcore::proto::v1::{
    FinishRequest, GetRunRequest, GetRunResponse, InitRequest, ListRunsRequest, Resume, RunState,
    ScanHistoryRequest, Tags, UpdateRunRequest,
};
use support::*;
use tonic::transport::Channel;
use tonic::Code;

async fn get_run(c: &mut RunServiceClient<Channel>, id: &str) -> GetRunResponse {
    c.get_run(GetRunRequest { run_id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

async fn finish(c: &mut RunServiceClient<Channel>, id: &str) {
    c.finish(FinishRequest {
        run_id: id.into(),
        exit_code: None,
    })
    .await
    .unwrap();
}

fn tags(t: &[&str]) -> Option<Tags> {
    Some(Tags {
        tags: t.iter().map(|s| s.to_string()).collect(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_of_an_open_and_an_ended_run_survive_a_kill_and_replays() {
    let root = tempfile::tempdir().unwrap();
    let mut s = Sidecar::start_in(root.path(), Transport::Tcp, &[]);
    let mut c = s.client().await;
    init(
        &mut c,
        InitRequest {
            id: "ed".into(),
            project: "p".into(),
            name: "first".into(),
            tags: vec!["a".into(), "b".into()],
            config: data(&[("lr", 0.1), ("old", 1.0)]),
            ..Default::default()
        },
    )
    .await;
    for i in 0..5 {
        c.log(log_req("ed", &[("loss", i as f64)], None, None))
            .await
            .unwrap();
    }
    let live = c
        .update_run(UpdateRunRequest {
            run_id: "ed".into(),
            name: Some("second".into()),
            notes: Some("while running".into()),
            tags: tags(&["b", "c", "b"]),
            config: data(&[("lr", 0.2)]),
            config_remove: vec!["old".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let run = live.run.unwrap();
    assert_eq!(
        (run.name.as_str(), run.notes.as_str()),
        ("second", "while running")
    );
    assert_eq!(run.tags, ["b", "c"], "repeated tags are dropped");
    assert_eq!(run.state(), RunState::Running);
    assert_eq!(live.config.keys().collect::<Vec<_>>(), ["lr"]);
    let dir = s.run_dir("p", "ed");
    assert_eq!(num(get(&read_json(&dir.join("config.json")), "lr")), 0.2);
    wait_for(|| {
        let text = std::fs::read_to_string(dir.join("run.json")).ok()?;
        text.contains("\"second\"").then_some(())
    });
    finish(&mut c, "ed").await;

    let ended = c
        .update_run(UpdateRunRequest {
            run_id: "ed".into(),
            name: Some("third".into()),
            summary: data(&[("acc", 0.9)]),
            summary_remove: vec!["loss".into()],
            group: Some("g".into()),
            job_type: Some("eval".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let run = ended.run.unwrap();
    assert_eq!(
        run.state(),
        RunState::Finished,
        "an edit never reopens a run"
    );
    assert_eq!((run.name.as_str(), run.group.as_str()), ("third", "g"));
    assert_eq!(num(get(&ended.summary, "acc")), 0.9);
    assert!(!ended.summary.contains_key("loss"));
    let run_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["name"], "third");
    assert_eq!(run_json["job_type"], "eval");
    assert_eq!(run_json["state"], "finished");
    assert!(run_json["last_heartbeat"].as_f64().unwrap() > 0.0);
    assert_eq!(num(get(&read_json(&dir.join("summary.json")), "acc")), 0.9);

    s.kill();
    let s = Sidecar::start_in(root.path(), Transport::Tcp, &[]);
    let mut c = s.client().await;
    let after = get_run(&mut c, "ed").await;
    let run = after.run.unwrap();
    assert_eq!(
        (run.name.as_str(), run.notes.as_str(), run.group.as_str()),
        ("third", "while running", "g")
    );
    assert_eq!(run.tags, ["b", "c"]);
    assert_eq!(run.state(), RunState::Finished);
    assert_eq!(num(get(&after.config, "lr")), 0.2);
    assert!(!after.config.contains_key("old"));
    assert_eq!(num(get(&after.summary, "acc")), 0.9);
    assert!(!after.summary.contains_key("loss"));
    let listed = c
        .list_runs(ListRunsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert_eq!(listed[0].name, "third");
    let mut rows = 0;
    let mut scan = c
        .scan_history(ScanHistoryRequest {
            run_id: "ed".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(page) = scan.message().await.unwrap() {
        rows += page.rows.len();
    }
    assert_eq!(rows, 5, "edits add no history");
    // A resume keeps the edited identity (Init without a name keeps the name).
    let resumed = init(
        &mut c,
        InitRequest {
            id: "ed".into(),
            resume: Resume::Allow as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(resumed.run.unwrap().name, "third");
    assert_eq!(num(get(&get_run(&mut c, "ed").await.config, "lr")), 0.2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_of_an_ended_run_racing_a_resume_are_all_kept() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    start_run(&mut c, "race").await;
    finish(&mut c, "race").await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let mut edit = c.clone();
        tasks.push(tokio::spawn(async move {
            edit.update_run(UpdateRunRequest {
                run_id: "race".into(),
                config: data(&[(format!("k{i}").as_str(), i as f64)]),
                ..Default::default()
            })
            .await
            .map(|_| ())
        }));
        if i == 5 {
            let mut resume = c.clone();
            tasks.push(tokio::spawn(async move {
                resume
                    .init(InitRequest {
                        id: "race".into(),
                        resume: Resume::Allow as i32,
                        ..Default::default()
                    })
                    .await
                    .map(|_| ())
            }));
        }
    }
    for t in tasks {
        t.await.unwrap().expect("every edit and the resume succeed");
    }
    c.log(log_req("race", &[("x", 1.0)], None, None))
        .await
        .unwrap();
    finish(&mut c, "race").await;
    let after = get_run(&mut c, "race").await;
    for i in 0..12 {
        assert_eq!(num(get(&after.config, &format!("k{i}"))), i as f64, "k{i}");
    }
    assert_eq!(after.run.unwrap().history_rows, 1);
    s.stop().await;
}

#[tokio::test]
async fn bad_edits_say_what_to_change() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    let name = start_run(&mut c, "bad").await.run.unwrap().name;
    for (req, code, says) in [
        (
            UpdateRunRequest {
                run_id: "bad".into(),
                name: Some(String::new()),
                ..Default::default()
            },
            Code::InvalidArgument,
            "name must be",
        ),
        (
            UpdateRunRequest {
                run_id: "bad".into(),
                tags: tags(&[&"t".repeat(65)]),
                ..Default::default()
            },
            Code::InvalidArgument,
            "1..64",
        ),
        (
            UpdateRunRequest {
                run_id: "bad".into(),
                config: data(&[("", 1.0)]),
                ..Default::default()
            },
            Code::InvalidArgument,
            "empty key",
        ),
        (
            UpdateRunRequest {
                run_id: "bad".into(),
                name: Some("two\nlines".into()),
                ..Default::default()
            },
            Code::InvalidArgument,
            "control character",
        ),
        (
            UpdateRunRequest {
                run_id: "bad".into(),
                group: Some("g\u{7}".into()),
                ..Default::default()
            },
            Code::InvalidArgument,
            "control character",
        ),
        (
            UpdateRunRequest {
                run_id: "bad".into(),
                tags: tags(&["ok", "t\tab"]),
                ..Default::default()
            },
            Code::InvalidArgument,
            "control character",
        ),
        (
            UpdateRunRequest {
                run_id: "bad".into(),
                tags: Some(Tags {
                    tags: (0..10_001).map(|i| format!("t{i}")).collect(),
                }),
                ..Default::default()
            },
            Code::ResourceExhausted,
            "over the limit of 10000",
        ),
        (
            UpdateRunRequest {
                run_id: "bad".into(),
                summary_remove: vec!["a\u{0}b".into()],
                ..Default::default()
            },
            Code::InvalidArgument,
            "control character",
        ),
        (
            UpdateRunRequest {
                run_id: "bad".into(),
                config: (0..10_001)
                    .map(|i| (format!("k{i}"), runcore::value::int(i)))
                    .collect(),
                ..Default::default()
            },
            Code::ResourceExhausted,
            "over the limit of 10000",
        ),
        (
            UpdateRunRequest {
                run_id: "ghost".into(),
                name: Some("x".into()),
                ..Default::default()
            },
            Code::NotFound,
            "not found",
        ),
    ] {
        let err = c.update_run(req).await.unwrap_err();
        assert_eq!(err.code(), code, "{}", err.message());
        assert!(err.message().contains(says), "{}", err.message());
    }
    // Nothing of the refused edits was applied.
    let run = get_run(&mut c, "bad").await;
    let info = run.run.unwrap();
    assert_eq!(info.name, name);
    assert!(info.tags.is_empty() && info.group.is_empty(), "{info:?}");
    assert!(run.config.is_empty(), "{:?}", run.config);
    s.stop().await;
}

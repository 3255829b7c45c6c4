//! Finish: exit codes to states, the final summary, idempotence, run.json, and the
//! `runcore runs` CLI over the store.

mod support;

use runcore::proto::v1::{
    FinishRequest, GetRunRequest, ListRunsRequest, RunState, UpdateConfigRequest,
};
use support::*;

#[tokio::test]
async fn exit_codes_give_finished_or_failed() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    start_run(&mut c, "ok").await;
    start_run(&mut c, "bad").await;
    c.log(log_req("ok", &[("loss", 0.5)], Some(4), None))
        .await
        .unwrap();
    let fin = c
        .finish(FinishRequest {
            run_id: "ok".into(),
            exit_code: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let run = fin.run.unwrap();
    assert_eq!(run.state(), RunState::Finished);
    assert_eq!(run.exit_code, Some(0));
    assert!(run.end_time >= run.start_time && run.end_time > 0.0);
    assert_eq!(
        num(get(&fin.summary, "loss")),
        0.5,
        "the pending row is flushed at finish"
    );
    let fin = c
        .finish(FinishRequest {
            run_id: "bad".into(),
            exit_code: Some(3),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fin.run.as_ref().unwrap().state(), RunState::Failed);
    assert_eq!(fin.run.unwrap().exit_code, Some(3));
    // Finish again: the same answer, nothing changes.
    let again = c
        .finish(FinishRequest {
            run_id: "ok".into(),
            exit_code: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.run.as_ref().unwrap().state(), RunState::Finished);
    assert_eq!(num(get(&again.summary, "loss")), 0.5);

    let dir = s.run_dir("p", "ok");
    let run_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["state"], "finished");
    assert_eq!(run_json["exit_code"], 0);
    assert_eq!(run_json["step"], 5);
    for f in [
        "run.json",
        "config.json",
        "metadata.json",
        "history.jsonl",
        "summary.json",
        "events.jsonl",
        "alerts.jsonl",
        "run.wal",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert!(dir.join("files").is_dir());
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["os"], "linux");
    assert!(meta["cpu_count"].as_u64().unwrap() >= 1);

    let got = c
        .get_run(GetRunRequest {
            run_id: "bad".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.run.unwrap().state(), RunState::Failed);
    let list = c
        .list_runs(ListRunsRequest {
            project: "p".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut states: Vec<(String, RunState)> = list
        .runs
        .iter()
        .map(|r| (r.id.clone(), r.state()))
        .collect();
    states.sort();
    assert_eq!(
        states,
        [
            ("bad".to_string(), RunState::Failed),
            ("ok".to_string(), RunState::Finished)
        ]
    );
    assert!(c
        .list_runs(ListRunsRequest {
            project: "other".into()
        })
        .await
        .unwrap()
        .into_inner()
        .runs
        .is_empty());
}

#[tokio::test]
async fn runs_ls_and_show_read_the_store() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    c.init(runcore::proto::v1::InitRequest {
        id: "cli1".into(),
        name: "my-run".into(),
        project: "proj".into(),
        tags: vec!["a".into(), "b".into()],
        config: data(&[("lr", 0.01)]),
        ..Default::default()
    })
    .await
    .unwrap();
    c.update_config(UpdateConfigRequest {
        run_id: "cli1".into(),
        config: data(&[("batch", 32.0)]),
        remove: vec![],
    })
    .await
    .unwrap();
    for i in 0..4 {
        c.log(log_req("cli1", &[("acc", i as f64 / 4.0)], None, None))
            .await
            .unwrap();
    }
    c.finish(FinishRequest {
        run_id: "cli1".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(&s.data_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let ls = run(&["runs", "ls"]);
    let line = ls
        .lines()
        .find(|l| l.starts_with("cli1"))
        .unwrap_or_else(|| panic!("{ls}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cols[..5], ["cli1", "my-run", "proj", "finished", "4"]);
    assert!(ls.lines().next().unwrap().contains("DURATION"));
    assert!(!run(&["runs", "ls", "--project", "nope"]).contains("cli1"));
    let show = run(&["runs", "show", "cli1"]);
    for expect in [
        "run       proj/cli1",
        "state     finished (exit code 0)",
        "tags      a, b",
        "  lr: 0.01",
        "  batch: 32.0",
        "  acc: 0.75",
        "steps     4 rows",
    ] {
        assert!(show.contains(expect), "{expect:?} not in:\n{show}");
    }
    let out = std::process::Command::new(BIN)
        .args(["runs", "show", "nope", "--data-dir"])
        .arg(&s.data_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no run \"nope\""));
}

//! The W&B service protocol at the socket, against the real binary: every request
//! the SDK waits on gets a reply (also kinds runcore does not know), rows land in
//! the store, a connection closed without an exit crashes its run with the
//! console's last lines, a bad frame closes only its connection. The real `wandb`
//! SDK is driven by tests/wandb (scripts/test.sh runs both).

mod support;

use prost::Message;
use runcore::proto::wandb as wb;
use support::wandb_sdk::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use wb::record::Kind as Rec;
use wb::request::Kind as Ask;
use wb::server_response::Kind as Resp;

#[tokio::test]
async fn every_request_the_sdk_waits_on_gets_a_reply() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, sock) = sidecar(tmp.path(), &[]);
    let files = tmp.path().join("sdk-run").join("files");
    let mut sdk = Sdk::connect(&sock).await;
    sdk.start("r1", &files).await;

    // A top-level request kind runcore does not know (authenticate): an error reply.
    let unknown = wb::ServerRequest {
        request_id: "auth".into(),
        kind: None,
    };
    sdk.send_raw(&with_unknown_field(unknown.encode_to_vec(), 9))
        .await;
    let reply = sdk.reply().await;
    assert_eq!(reply.request_id, "auth");
    assert!(
        matches!(reply.kind, Some(Resp::ErrorResponse(e)) if e.message.contains("does not handle"))
    );

    // A record kind runcore ignores (telemetry) with a mailbox slot: an empty result.
    let telemetry = with_unknown_field(
        record("tel", "r1", Rec::Preempting(wb::Empty {})).encode_to_vec(),
        11,
    );
    let mut raw = Vec::new();
    prost::encoding::string::encode(10, &"tel".to_owned(), &mut raw);
    prost::encoding::bytes::encode(1, &telemetry, &mut raw);
    sdk.send_raw(&raw).await;
    sdk.result("tel").await;

    // A request kind runcore does not know (login, 5): an empty response.
    let login = wb::Record {
        kind: None,
        ..record("login", "r1", Rec::Preempting(wb::Empty {}))
    };
    let req = with_unknown_field(wb::Request::default().encode_to_vec(), 5);
    let mut rec = login.encode_to_vec();
    prost::encoding::bytes::encode(100, &req, &mut rec);
    let mut raw = Vec::new();
    prost::encoding::string::encode(10, &"login".to_owned(), &mut raw);
    prost::encoding::bytes::encode(1, &rec, &mut raw);
    sdk.send_raw(&raw).await;
    assert_eq!(sdk.answer("login").await, None);

    // Rows (published, no reply), then the questions the SDK waits on.
    for (i, loss) in ["1.0", "0.5", "NaN"].iter().enumerate() {
        sdk.record(
            "",
            "r1",
            log(
                vec![item("loss", loss), item("epoch", &i.to_string())],
                None,
            ),
        )
        .await;
    }
    sdk.record("", "r1", log(vec![item("late", "\"x\"")], Some(10)))
        .await;
    sdk.record("step", "r1", ask(Ask::HistoryStep(wb::Empty {})))
        .await;
    assert_eq!(
        sdk.answer("step").await,
        Some(wb::response::Kind::HistoryStepResponse(
            wb::HistoryStepResponse { step: 10 }
        ))
    );
    sdk.record("sum", "r1", ask(Ask::GetSummary(wb::Empty {})))
        .await;
    let Some(wb::response::Kind::GetSummaryResponse(summary)) = sdk.answer("sum").await else {
        panic!("no summary")
    };
    let epoch = summary.item.iter().find(|i| i.key == "epoch").unwrap();
    assert_eq!(epoch.value_json, "2");
    for (id, kind) in [
        ("stop", Ask::StopStatus(wb::Empty {})),
        ("keep", Ask::Keepalive(wb::Empty {})),
        ("msgs", Ask::InternalMessages(wb::Empty {})),
        ("ops", Ask::Operations(wb::Empty {})),
    ] {
        sdk.record(id, "r1", ask(kind)).await;
        assert!(sdk.answer(id).await.is_some(), "{id}");
    }

    // The exit, then what the SDK asks after it.
    sdk.record(
        "exit",
        "r1",
        Rec::Exit(wb::Exit {
            exit_code: 0,
            runtime: 1,
        }),
    )
    .await;
    assert!(matches!(
        sdk.result("exit").await.kind,
        Some(wb::result::Kind::ExitResult(_))
    ));
    sdk.record("poll", "r1", ask(Ask::PollExit(wb::Empty {})))
        .await;
    assert!(matches!(sdk.answer("poll").await,
        Some(wb::response::Kind::PollExitResponse(p)) if p.done));
    sdk.record("sum2", "r1", ask(Ask::GetSummary(wb::Empty {})))
        .await;
    let Some(wb::response::Kind::GetSummaryResponse(summary)) = sdk.answer("sum2").await else {
        panic!("no summary after the exit")
    };
    assert!(summary
        .item
        .iter()
        .any(|i| i.key == "late" && i.value_json == "\"x\""));

    let dir = s.run_dir("wb", "r1");
    assert_eq!(run_json_state(&dir), "finished");
    let rows = read_jsonl(&dir.join("history.jsonl"));
    assert_eq!(steps(&rows), vec![0, 1, 2, 10]);
    assert_eq!(num(get(&rows[1], "loss")), 0.5);
    assert!(num(get(&rows[2], "loss")).is_nan());
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    assert_eq!(
        config.trim_end(),
        "{\"lr\":0.01}",
        "the SDK's _wandb key is left out"
    );
}

#[tokio::test]
async fn a_connection_closed_without_exit_crashes_its_run_with_the_console() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, sock) = sidecar(tmp.path(), &[]);
    let mut sdk = Sdk::connect(&sock).await;
    sdk.start("r2", &tmp.path().join("x").join("files")).await;
    sdk.record("", "r2", log(vec![item("loss", "0.25")], None))
        .await;
    for fragment in [
        "Trace",
        "back (most recent call last):\n",
        "ValueError",
        ": boom\n",
    ] {
        let out = wb::Output {
            line: fragment.into(),
            ..Default::default()
        };
        sdk.record("", "r2", Rec::OutputRaw(out)).await;
    }
    drop(sdk);
    let dir = s.run_dir("wb", "r2");
    wait_for(|| (run_json_state(&dir) == "crashed").then_some(()));
    let run = read_json(&dir.join("run.json"));
    assert!(as_str(get(&run, "end_reason")).contains("ValueError: boom"));
    let output = std::fs::read_to_string(dir.join("output.log")).unwrap();
    assert_eq!(
        output,
        "Traceback (most recent call last):\nValueError: boom\n"
    );
    assert_eq!(steps(&read_jsonl(&dir.join("history.jsonl"))), vec![0]);
    let shown = std::process::Command::new(BIN)
        .args(["runs", "show", "r2", "--data-dir"])
        .arg(&s.data_dir)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("state     crashed"), "{shown}");
    assert!(shown.contains("ValueError: boom"), "{shown}");
}

#[tokio::test]
async fn a_bad_frame_closes_only_its_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let (_s, sock) = sidecar(tmp.path(), &[]);
    let mut bad = UnixStream::connect(&sock).await.unwrap();
    bad.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(REPLY, bad.read(&mut buf))
        .await
        .expect("the sidecar closes a connection that is not the W&B protocol")
        .unwrap_or(0);
    assert_eq!(n, 0);
    let mut sdk = Sdk::connect(&sock).await;
    sdk.start("r3", &tmp.path().join("y").join("files")).await;
}

/// The frames of `records` of stream `run`, published (no reply awaited), as
/// one write's bytes.
fn published(run: &str, records: impl IntoIterator<Item = Rec>) -> Vec<u8> {
    let mut bytes = Vec::new();
    for kind in records {
        let req = request("", record("", run, kind));
        runcore::wandb_service::framing::encode(&req.encode_to_vec(), &mut bytes);
    }
    bytes
}

#[tokio::test]
async fn rows_read_while_a_record_is_applied_wait_for_it() {
    // The socket's reader takes rows itself, so rows read while the connection's
    // task is still applying an earlier record must wait for that record: here a
    // save (the run copies a large file) then a summary update of x, with rows
    // of x before and after. Were the later rows sent first, x would end at -1.
    let tmp = tempfile::tempdir().unwrap();
    let (s, sock) = sidecar(tmp.path(), &[]);
    let files = tmp.path().join("sdk-run").join("files");
    let mut sdk = Sdk::connect(&sock).await;
    sdk.start("r4", &files).await;
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("big.bin"), vec![7u8; 256 << 20]).unwrap();
    let row = |i: i64| log(vec![item("x", &i.to_string())], None);
    let save = Rec::Files(wb::Files {
        files: vec![wb::FileItem {
            path: "big.bin".into(),
            policy: wb::FilePolicy::Now as i32,
            r#type: wb::FileType::Other as i32,
        }],
    });
    let drop_x = Rec::Summary(wb::ItemUpdate {
        update: vec![],
        remove: vec![item("x", "")],
    });
    let before = (0..100).map(row).chain([save, drop_x]);
    sdk.sock.write_all(&published("r4", before)).await.unwrap();

    // The copy under way: the task is waiting for the run.
    let copying = s.run_dir("wb", "r4").join("files").join(".big.bin.copy");
    let deadline = std::time::Instant::now() + REPLY;
    while !copying.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the save did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let after = published("r4", (100..200).map(row));
    sdk.sock.write_all(&after).await.unwrap();

    sdk.record("sum", "r4", ask(Ask::GetSummary(wb::Empty {})))
        .await;
    let Some(wb::response::Kind::GetSummaryResponse(summary)) = sdk.answer("sum").await else {
        panic!("no summary")
    };
    let x = summary.item.iter().find(|i| i.key == "x");
    let x = x.expect("the rows after the removal came last");
    assert_eq!(x.value_json, "199");
    let history = s.run_dir("wb", "r4").join("history.jsonl");
    let rows = wait_for(|| Some(read_jsonl(&history)).filter(|r| r.len() >= 200));
    let xs: Vec<f64> = rows.iter().map(|r| num(get(r, "x"))).collect();
    assert_eq!(xs, (0..200).map(f64::from).collect::<Vec<_>>());
}

#[tokio::test]
async fn rows_reach_the_log_when_the_script_pauses() {
    // Rows wait in the reader for others (up to rows::LINGER); a script that
    // stops logging, its connection open, still gets them into the run's log.
    let tmp = tempfile::tempdir().unwrap();
    let (s, sock) = sidecar(tmp.path(), &[]);
    let mut sdk = Sdk::connect(&sock).await;
    sdk.start("r5", &tmp.path().join("z").join("files")).await;
    let rows = (0..3).map(|i| log(vec![item("x", &i.to_string())], None));
    sdk.sock.write_all(&published("r5", rows)).await.unwrap();
    let history = s.run_dir("wb", "r5").join("history.jsonl");
    let rows = wait_for(|| Some(read_jsonl(&history)).filter(|r| r.len() == 3));
    assert_eq!(steps(&rows), vec![0, 1, 2]);
    assert_eq!(run_json_state(&s.run_dir("wb", "r5")), "running");
    drop(sdk);
}

//! Console output of a W&B SDK script (output_raw records on the W&B listener)
//! becomes output.log in the run directory, W&B's file_stream `output.log` (against
//! the fake W&B server) and an `output.log` artifact in MLflow (a real server).

mod support;

use support::mlflow::{MlflowServer, Rest};
use support::wandb::FakeWandb;
use support::wandb_sdk::*;
use support::*;

use runcore::proto::wandb as wb;
use wb::record::Kind as Rec;

const LINES: &[&str] = &[
    "epoch 1 done",
    "Traceback (most recent call last):",
    "ValueError: x",
];

/// Runs `run`: starts it, prints LINES in fragments, exits with code 1.
async fn run_with_console(sock: &std::path::Path, files: &std::path::Path, run: &str) {
    let mut sdk = Sdk::connect(sock).await;
    sdk.start(run, files).await;
    sdk.record("", run, log(vec![item("loss", "0.5")], None))
        .await;
    let text = LINES.join("\n") + "\n";
    for fragment in text.as_bytes().chunks(7) {
        let out = wb::Output {
            line: String::from_utf8_lossy(fragment).into_owned(),
            ..Default::default()
        };
        sdk.record("", run, Rec::OutputRaw(out)).await;
    }
    sdk.record(
        "exit",
        run,
        Rec::Exit(wb::Exit {
            exit_code: 1,
            runtime: 0,
        }),
    )
    .await;
    sdk.result("exit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_lines_reach_output_log_and_wandbs_file_stream() {
    let fake = FakeWandb::start();
    let tmp = tempfile::tempdir().unwrap();
    let url = fake.url.clone();
    let (s, sock) = sidecar_env(
        tmp.path(),
        &["--backend", "wandb", "--wandb-base-url", &url],
        &[("WANDB_API_KEY", support::wandb::API_KEY)],
    );
    run_with_console(&sock, &tmp.path().join("a").join("files"), "con1").await;
    let local = std::fs::read_to_string(s.run_dir("wb", "con1").join("output.log")).unwrap();
    assert_eq!(local, LINES.join("\n") + "\n");
    let view = fake.wait_run("con1", |v| v.complete == Some(true)).await;
    let sent: Vec<&str> = view.output.iter().map(|l| &l[27..]).collect();
    assert_eq!(sent, LINES, "each line once, in order, after its UTC time");
    assert_eq!(view.exitcode, Some(1));
    fake.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_lines_reach_mlflow_as_an_artifact() {
    let server = MlflowServer::shared();
    let tmp = tempfile::tempdir().unwrap();
    let uri = server.uri();
    let (_s, sock) = sidecar(
        tmp.path(),
        &["--backend", "mlflow", "--mlflow-tracking-uri", &uri],
    );
    run_with_console(&sock, &tmp.path().join("b").join("files"), "con2").await;
    let rest = Rest::new(&uri);
    let run = wait_for_async(|| async {
        rest.find_run("wb", "con2")
            .await
            .filter(|r| r["info"]["status"] == "FAILED")
    })
    .await;
    assert_eq!(
        rest.artifact(&run, "output.log").await,
        LINES.join("\n") + "\n"
    );
}

//! A small training loop against a running sidecar, using the raw gRPC API: config,
//! define_metric with a step metric and a best summary, batched LogStream rows,
//! per-epoch validation, an alert, a saved file, and finish.
//!
//! `cargo run --example train -- tcp://127.0.0.1:50517` (or unix:///path), or set
//! RUNCORE_ADDRESS.

use std::collections::BTreeMap;

use runcore::proto::v1::run_service_client::RunServiceClient;
use runcore::proto::v1::{
    AlertRequest, DefineMetricRequest, FinishRequest, InitRequest, LogBatch, LogRequest, Row,
    SaveFilesRequest, Value,
};
use runcore::value::{double, int, map, string};

const EPOCHS: usize = 10;
const STEPS_PER_EPOCH: usize = 100;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("RUNCORE_ADDRESS").ok())
        .unwrap_or_else(|| "tcp://127.0.0.1:50517".into());
    let mut c = RunServiceClient::new(runcore::client::connect(&addr.parse()?).await?);
    let workdir = std::env::temp_dir().join(format!("runcore-example-{}", std::process::id()));
    std::fs::create_dir_all(&workdir)?;

    let config: BTreeMap<String, Value> = [
        ("learning_rate".to_string(), double(0.01)),
        ("epochs".to_string(), int(EPOCHS as i64)),
        (
            "model".to_string(),
            map([
                ("layers".to_string(), int(4)),
                ("kind".to_string(), string("mlp")),
            ]
            .into()),
        ),
    ]
    .into();
    let init = c
        .init(InitRequest {
            project: "examples".into(),
            job_type: "train".into(),
            tags: vec!["rust".into(), "example".into()],
            config,
            working_dir: workdir.display().to_string(),
            client: Some(runcore::proto::v1::ClientInfo {
                pid: i64::from(std::process::id()),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?
        .into_inner();
    let run = init.run.expect("Init returns the run");
    let id = run.id.clone();
    println!("run {} ({}) started", run.path, run.name);

    let define = |name: &str, step_metric: &str, summary: &str, goal: &str| DefineMetricRequest {
        run_id: id.clone(),
        name: name.into(),
        step_metric: step_metric.into(),
        summary: summary.into(),
        goal: goal.into(),
        ..Default::default()
    };
    c.define_metric(define("val/*", "epoch", "", "")).await?;
    c.define_metric(define("val/acc", "epoch", "best", "maximize"))
        .await?;
    c.define_metric(define("train/loss", "", "min,last", ""))
        .await?;

    // One LogStream batch per epoch: the key table is sent once, rows carry packed
    // scalars.
    let mut batches = Vec::new();
    for epoch in 0..EPOCHS {
        let rows = (0..STEPS_PER_EPOCH)
            .map(|s| {
                let t = (epoch * STEPS_PER_EPOCH + s) as f64;
                Row {
                    scalar_keys: vec![0, 1],
                    scalar_values: vec![2.0 / (1.0 + t / 50.0), 0.01 * 0.97f64.powi(epoch as i32)],
                    ..Default::default()
                }
            })
            .collect();
        batches.push(LogBatch {
            run_id: id.clone(),
            seq: epoch as u64 + 1,
            keys: vec!["train/loss".into(), "lr".into()],
            rows,
            ..Default::default()
        });
    }
    let mut acks = c
        .log_stream(tokio_stream::iter(batches))
        .await?
        .into_inner();
    let mut epoch = 0;
    while let Some(ack) = acks.message().await? {
        // Validation after each epoch's batch is acknowledged.
        let acc = 0.5 + 0.45 * (1.0 - (-(epoch as f64) / 3.0).exp());
        let data: BTreeMap<String, Value> = [
            ("epoch".to_string(), int(epoch)),
            ("val/acc".to_string(), double(acc)),
            ("val/loss".to_string(), double(1.0 - acc)),
        ]
        .into();
        c.log(LogRequest {
            run_id: id.clone(),
            data,
            ..Default::default()
        })
        .await?;
        if acc > 0.9 {
            let r = c
                .alert(AlertRequest {
                    run_id: id.clone(),
                    title: "accuracy above 0.9".into(),
                    text: format!(
                        "val/acc reached {acc:.3} at epoch {epoch} (batch {})",
                        ack.seq
                    ),
                    ..Default::default()
                })
                .await?
                .into_inner();
            if r.sent {
                println!("alert sent at epoch {epoch}");
            }
        }
        epoch += 1;
    }

    std::fs::write(
        workdir.join("model.txt"),
        format!("weights after {EPOCHS} epochs\n"),
    )?;
    c.save_files(SaveFilesRequest {
        run_id: id.clone(),
        glob: "model.txt".into(),
        policy: "end".into(),
        ..Default::default()
    })
    .await?;
    let fin = c
        .finish(FinishRequest {
            run_id: id.clone(),
            exit_code: Some(0),
            ..Default::default()
        })
        .await?
        .into_inner();
    let run = fin.run.expect("Finish returns the run");
    println!(
        "run directory: {}",
        std::path::Path::new(&run.dir)
            .parent()
            .unwrap_or(std::path::Path::new(&run.dir))
            .display()
    );
    println!(
        "state: {:?}, {} history rows",
        run.state(),
        run.history_rows
    );
    let mut summary = String::new();
    runcore::value::write_json_object(&mut summary, fin.summary.iter());
    println!("summary: {summary}");
    let _ = std::fs::remove_dir_all(&workdir);
    Ok(())
}

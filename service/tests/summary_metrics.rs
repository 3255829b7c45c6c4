//! Summary aggregation and define_metric: options, NaN, globs, step_sync, hidden,
//! overwrite merges, explicit updates.

mod support;

use std::collections::BTreeMap;

use runcore::proto::v1::{DefineMetricRequest, FinishRequest, GetRunRequest, UpdateSummaryRequest};
use support::*;

fn def(run: &str, name: &str) -> DefineMetricRequest {
    DefineMetricRequest {
        run_id: run.into(),
        name: name.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn summary_options_and_nan() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    start_run(&mut c, "sm").await;
    c.define_metric(DefineMetricRequest {
        summary: "min,max,mean,first,last".into(),
        ..def("sm", "loss")
    })
    .await
    .unwrap();
    c.define_metric(DefineMetricRequest {
        summary: "best".into(),
        goal: "maximize".into(),
        ..def("sm", "acc")
    })
    .await
    .unwrap();
    c.define_metric(DefineMetricRequest {
        summary: "none".into(),
        ..def("sm", "secret")
    })
    .await
    .unwrap();
    c.define_metric(DefineMetricRequest {
        summary: "max".into(),
        ..def("sm", "val/*")
    })
    .await
    .unwrap();
    for (loss, acc) in [(3.0, 0.1), (f64::NAN, f64::NAN), (1.0, 0.9), (2.0, 0.5)] {
        c.log(log_req(
            "sm",
            &[
                ("loss", loss),
                ("acc", acc),
                ("secret", 1.0),
                ("val/a", acc),
                ("plain", loss),
            ],
            None,
            None,
        ))
        .await
        .unwrap();
    }
    let fin = c
        .finish(FinishRequest {
            run_id: "sm".into(),
            exit_code: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let check = |summary: &BTreeMap<String, runcore::proto::v1::Value>| {
        let loss = as_map(get(summary, "loss"));
        assert_eq!(num(get(loss, "min")), 1.0);
        assert_eq!(num(get(loss, "max")), 3.0);
        assert_eq!(num(get(loss, "mean")), 2.0);
        assert_eq!(num(get(loss, "first")), 3.0);
        assert_eq!(num(get(loss, "last")), 2.0);
        assert_eq!(num(get(as_map(get(summary, "acc")), "best")), 0.9);
        assert_eq!(num(get(as_map(get(summary, "val/a")), "max")), 0.9);
        assert!(!summary.contains_key("secret"));
        assert_eq!(num(get(summary, "plain")), 2.0);
        assert_eq!(get(summary, "_step"), &int(3));
    };
    check(&fin.summary);
    check(&read_json(&s.run_dir("p", "sm").join("summary.json")));
}

#[tokio::test]
async fn explicit_summary_wins_over_aggregation() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    start_run(&mut c, "ex").await;
    c.log(log_req("ex", &[("acc", 0.5)], None, None))
        .await
        .unwrap();
    let out = c
        .update_summary(UpdateSummaryRequest {
            run_id: "ex".into(),
            summary: data(&[("acc", 0.99), ("best_epoch", 3.0)]),
            remove: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(num(get(&out.summary, "acc")), 0.99);
    c.log(log_req("ex", &[("acc", 0.7)], None, None))
        .await
        .unwrap();
    let got = c
        .get_run(GetRunRequest {
            run_id: "ex".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(num(get(&got.summary, "acc")), 0.99);
    assert_eq!(num(get(&got.summary, "best_epoch")), 3.0);
    let out = c
        .update_summary(UpdateSummaryRequest {
            run_id: "ex".into(),
            summary: BTreeMap::new(),
            remove: vec!["best_epoch".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!out.summary.contains_key("best_epoch"));
}

#[tokio::test]
async fn step_metric_sync_hidden_and_overwrite() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    start_run(&mut c, "sy").await;
    let d = c
        .define_metric(DefineMetricRequest {
            step_metric: "epoch".into(),
            ..def("sy", "val/*")
        })
        .await
        .unwrap()
        .into_inner()
        .metric
        .unwrap();
    assert!(d.step_sync, "step_sync defaults to true with a step_metric");
    c.define_metric(DefineMetricRequest {
        step_metric: "epoch".into(),
        step_sync: Some(false),
        ..def("sy", "test/*")
    })
    .await
    .unwrap();
    let merged = c
        .define_metric(DefineMetricRequest {
            hidden: Some(true),
            overwrite: Some(false),
            ..def("sy", "val/*")
        })
        .await
        .unwrap()
        .into_inner()
        .metric
        .unwrap();
    assert_eq!(
        (merged.step_metric.as_str(), merged.step_sync, merged.hidden),
        ("epoch", true, true)
    );
    c.log(log_req("sy", &[("epoch", 1.0)], None, None))
        .await
        .unwrap();
    c.log(log_req("sy", &[("val/loss", 0.5)], None, None))
        .await
        .unwrap();
    c.log(log_req("sy", &[("test/loss", 0.6)], None, None))
        .await
        .unwrap();
    c.log(log_req(
        "sy",
        &[("epoch", 2.0), ("val/loss", 0.4)],
        None,
        None,
    ))
    .await
    .unwrap();
    let got = c
        .get_run(GetRunRequest {
            run_id: "sy".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = got.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["val/*", "test/*"]);
    c.finish(FinishRequest {
        run_id: "sy".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let rows = read_jsonl(&s.run_dir("p", "sy").join("history.jsonl"));
    assert_eq!(
        num(get(&rows[1], "epoch")),
        1.0,
        "epoch synced into the val row"
    );
    assert!(!rows[2].contains_key("epoch"), "test/* has step_sync off");
    assert_eq!(num(get(&rows[3], "epoch")), 2.0);
    // Replaying the log after the run ended gives the same definitions.
    let again = c
        .get_run(GetRunRequest {
            run_id: "sy".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.metrics, got.metrics);
}

//! Alerts: levels, throttling per title with wait_duration, alerts.jsonl.

mod support;

use runcore::proto::v1::{AlertRequest, FinishRequest};
use support::*;

fn alert(title: &str, wait: Option<f64>) -> AlertRequest {
    AlertRequest {
        run_id: "al".into(),
        title: title.into(),
        text: "loss diverged".into(),
        level: String::new(),
        wait_duration: wait,
    }
}

#[tokio::test]
async fn same_title_inside_the_window_is_throttled() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    start_run(&mut c, "al").await;
    let first = c.alert(alert("nan loss", None)).await.unwrap().into_inner();
    assert!(first.sent && !first.throttled);
    let second = c.alert(alert("nan loss", None)).await.unwrap().into_inner();
    assert!(!second.sent && second.throttled);
    assert!(
        (second.throttled_until - first.throttled_until).abs() < 1e-6,
        "window counts from the sent alert"
    );
    let now = runcore::clock::now();
    assert!(second.throttled_until > now + 55.0 && second.throttled_until < now + 61.0);
    // Another title is not throttled; a zero wait never throttles.
    assert!(
        c.alert(alert("other", None))
            .await
            .unwrap()
            .into_inner()
            .sent
    );
    assert!(
        c.alert(alert("zero", Some(0.0)))
            .await
            .unwrap()
            .into_inner()
            .sent
    );
    assert!(
        c.alert(alert("zero", Some(0.0)))
            .await
            .unwrap()
            .into_inner()
            .sent
    );
    let mut warn = alert("lvl", None);
    warn.level = "warning".into();
    assert!(c.alert(warn).await.unwrap().into_inner().sent);
    c.finish(FinishRequest {
        run_id: "al".into(),
        exit_code: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let rows = read_jsonl(&s.run_dir("p", "al").join("alerts.jsonl"));
    let outcomes: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                as_str(get(r, "title")),
                as_str(get(r, "outcome")),
                as_str(get(r, "level")),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("nan loss", "sent", "INFO"),
            ("nan loss", "throttled", "INFO"),
            ("other", "sent", "INFO"),
            ("zero", "sent", "INFO"),
            ("zero", "sent", "INFO"),
            ("lvl", "sent", "WARN"),
        ]
    );
    assert_eq!(as_str(get(&rows[0], "text")), "loss diverged");
}

#[tokio::test]
async fn throttle_state_survives_a_sidecar_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Sidecar::start_in(tmp.path(), Transport::Tcp, &[]);
    let mut c = s.client().await;
    start_run(&mut c, "al").await;
    assert!(
        c.alert(alert("t", Some(3600.0)))
            .await
            .unwrap()
            .into_inner()
            .sent
    );
    s.kill();
    let s = Sidecar::start_in(tmp.path(), Transport::Tcp, &[]);
    let mut c = s.client().await;
    let again = c
        .alert(alert("t", Some(3600.0)))
        .await
        .unwrap()
        .into_inner();
    assert!(
        again.throttled,
        "the recovered run remembers the alert it sent"
    );
}

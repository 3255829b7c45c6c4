//! `runcore reap`: MLflow runs whose sidecar died are left RUNNING; this marks the
//! stale ones crashed.

use std::io::Write;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::{parse_duration, CliError};
use crate::backend::mlflow::{ms, Mlflow, MlflowSettings, TAG_HEARTBEAT, TAG_RUN_ID, TAG_STATE};
use crate::backend::retry::BackendError;
use crate::backend::BackendSettings;
use crate::config::BackendArgs;

/// `runcore reap`.
pub async fn reap(
    backend: &BackendArgs,
    stale: &str,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let stale = parse_duration(stale)?;
    let BackendSettings::Mlflow(settings) = backend.settings()? else {
        return Err(CliError::Usage(
            "runcore reap works on --backend mlflow".into(),
        ));
    };
    let marked = reap_stale(settings, stale).await?;
    for id in &marked {
        writeln!(out, "marked MLflow run {id} FAILED (runcore.state=crashed)")?;
    }
    writeln!(out, "{} stale run(s) reaped", marked.len())?;
    Ok(())
}

/// Marks MLflow runs that runcore created, are still RUNNING and
/// whose heartbeat is older than `stale` as FAILED with `runcore.state=crashed`.
/// Returns the MLflow run ids it marked.
async fn reap_stale(
    settings: MlflowSettings,
    stale: Duration,
) -> Result<Vec<String>, BackendError> {
    let m = Mlflow::new(settings);
    let exps = m
        .call(
            Method::POST,
            "/api/2.0/mlflow/experiments/search",
            &json!({"max_results": 1000}),
        )
        .await?;
    let ids: Vec<String> = exps["experiments"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["experiment_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let now = crate::clock::now();
    let mut marked = Vec::new();
    let mut page_token = String::new();
    loop {
        let mut body = json!({
            "experiment_ids": ids,
            "filter": "attributes.status = 'RUNNING'",
            "max_results": 1000,
        });
        if !page_token.is_empty() {
            body["page_token"] = json!(page_token);
        }
        let found = m
            .call(Method::POST, "/api/2.0/mlflow/runs/search", &body)
            .await?;
        for run in found["runs"].as_array().into_iter().flatten() {
            let tags = run["data"]["tags"].as_array().cloned().unwrap_or_default();
            let tag = |k: &str| {
                tags.iter()
                    .find(|t| t["key"] == k)
                    .and_then(|t| t["value"].as_str().map(str::to_owned))
            };
            if tag(TAG_RUN_ID).is_none() {
                continue; // not a runcore run
            }
            let start = run["info"]["start_time"].as_f64().unwrap_or(0.0) / 1000.0;
            let beat = tag(TAG_HEARTBEAT)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(start);
            if now - beat < stale.as_secs_f64() {
                continue;
            }
            let Some(id) = run["info"]["run_id"].as_str() else {
                continue;
            };
            m.call(
                Method::POST,
                "/api/2.0/mlflow/runs/set-tag",
                &json!({"run_id": id, "key": TAG_STATE, "value": "crashed"}),
            )
            .await?;
            m.call(
                Method::POST,
                "/api/2.0/mlflow/runs/update",
                &json!({"run_id": id, "status": "FAILED", "end_time": ms(now)}),
            )
            .await?;
            marked.push(id.to_owned());
        }
        match found["next_page_token"].as_str() {
            Some(t) if !t.is_empty() => page_token = t.to_owned(),
            _ => break,
        }
    }
    Ok(marked)
}

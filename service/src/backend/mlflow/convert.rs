//! runcore values and states in MLflow's terms: keys, params, metrics, status.

use serde_json::{json, Value as Json};

use super::MAX_KEY;
use crate::proto::v1::{value::Kind, RunState, Value};
use crate::value;

/// A key MLflow accepts: alphanumerics, '_', '-', '.', ' ', '/'.
pub(super) fn key(k: &str) -> String {
    let mut s: String = k
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "_-. /".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        s.push('_');
    }
    s.chars().take(MAX_KEY).collect()
}

pub(super) fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Unix seconds as MLflow's milliseconds.
pub fn ms(t: f64) -> i64 {
    (t * 1000.0).round() as i64
}

/// A double as MLflow's JSON takes it (non-finite values as their names).
pub(super) fn number(v: f64) -> Json {
    if v.is_nan() {
        json!("NaN")
    } else if v.is_infinite() {
        json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(v)
    }
}

/// Flattens nested maps into `prefix.key` leaves.
pub(super) fn flatten<'a>(prefix: &str, v: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match &v.kind {
        Some(Kind::MapValue(m)) => {
            for (k, inner) in &m.fields {
                flatten(&format!("{prefix}.{k}"), inner, out);
            }
        }
        _ => out.push((prefix.to_owned(), v)),
    }
}

/// A param's text: strings as they are, anything else as JSON.
pub(super) fn param_text(v: &Value) -> String {
    match &v.kind {
        Some(Kind::StringValue(s)) => s.clone(),
        _ => {
            let mut s = String::new();
            value::write_json(&mut s, v);
            s
        }
    }
}

pub(super) fn metric_value(v: &Value) -> Option<f64> {
    match v.kind {
        Some(Kind::DoubleValue(x)) => Some(x),
        Some(Kind::IntValue(x)) => Some(x as f64),
        Some(Kind::BoolValue(b)) => Some(if b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// MLflow's status for a run state.
pub(super) fn status_of(state: RunState) -> &'static str {
    match state {
        RunState::Finished => "FINISHED",
        RunState::Killed => "KILLED",
        RunState::Running | RunState::Preempting | RunState::Unspecified => "RUNNING",
        RunState::Failed | RunState::Crashed | RunState::Preempted => "FAILED",
    }
}

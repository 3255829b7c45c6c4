//! Request validation: everything a client can get wrong is caught here, before a
//! run's actor sees it, and told back as INVALID_ARGUMENT with what to fix.

use std::path::Path;

use crate::proto::v1::{
    AlertRequest, InitRequest, LogBatch, LogRequest, Row, SaveFilesRequest, Value,
};
use crate::run::files::{self, FilesError};
use crate::semantics::metrics::MetricError;
use crate::value::{self, ValueError};

/// A request a client must change: always INVALID_ARGUMENT.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<ValueError> for Invalid {
    fn from(e: ValueError) -> Self {
        Invalid(e.to_string())
    }
}

impl From<MetricError> for Invalid {
    fn from(e: MetricError) -> Self {
        Invalid(e.to_string())
    }
}

impl From<FilesError> for Invalid {
    fn from(e: FilesError) -> Self {
        Invalid(e.to_string())
    }
}

const MAX_ID: usize = 64;
const MAX_NAME: usize = 128;
pub const MAX_ALERT_TITLE: usize = 64;

pub fn run_id(id: &str) -> Result<(), Invalid> {
    if id.is_empty() {
        return Err(Invalid("run_id is empty; pass the id Init returned".into()));
    }
    Ok(())
}

/// Checks Init's fields (id and project become directory names).
pub fn init(req: &mut InitRequest) -> Result<(), Invalid> {
    if !req.id.is_empty()
        && (req.id.len() > MAX_ID
            || !req
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        return Err(Invalid(format!(
            "run id {:?} must be 1..{MAX_ID} characters of letters, digits, '-' and '_'",
            req.id
        )));
    }
    let project = &req.project;
    if project.len() > MAX_NAME
        || project.starts_with('.')
        || project
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return Err(Invalid(format!(
            "project {project:?} must be at most {MAX_NAME} characters, not start with '.', and hold no '/', '\\' or control characters"
        )));
    }
    if req.name.chars().count() > MAX_NAME {
        return Err(Invalid(format!(
            "name is longer than {MAX_NAME} characters"
        )));
    }
    if !req.working_dir.is_empty() && !Path::new(&req.working_dir).is_absolute() {
        return Err(FilesError::RelativeWorkingDir(req.working_dir.clone()).into());
    }
    map(&mut req.config, "config")?;
    if let Some(t) = req.client_timeout {
        if !(t.is_finite() && t > 0.0) {
            return Err(Invalid(format!(
                "client_timeout must be seconds > 0, got {t}"
            )));
        }
    }
    crate::semantics::writers::check(req).map_err(Invalid)?;
    if let Some(sm) = &req.system_metrics {
        let i = sm.interval;
        if !(i.is_finite() && (i == 0.0 || i >= MIN_SAMPLE_INTERVAL)) {
            return Err(Invalid(format!(
                "system_metrics.interval must be 0 (the default, 15 s) or at least {MIN_SAMPLE_INTERVAL} seconds, got {i}"
            )));
        }
    }
    Ok(())
}

/// Shortest system-metrics interval a run may ask for, seconds.
const MIN_SAMPLE_INTERVAL: f64 = 0.1;

/// Checks a config or summary map (any non-empty key).
pub fn map(
    values: &mut std::collections::BTreeMap<String, Value>,
    what: &str,
) -> Result<(), Invalid> {
    for (k, v) in values.iter_mut() {
        if k.is_empty() {
            return Err(Invalid(format!("{what} has an empty key")));
        }
        value::check_value(k, v)?;
        value::bin_histograms(v);
    }
    Ok(())
}

fn row_values(row: &mut Row) -> Result<(), Invalid> {
    for (k, v) in row.values.iter_mut() {
        value::check_key(k)?;
        value::check_value(k, v)?;
        value::bin_histograms(v);
    }
    if let Some(step) = row.step {
        if step < 0 {
            return Err(Invalid(format!(
                "step {step} is negative; steps start at 0"
            )));
        }
    }
    if !(row.timestamp.is_finite() && row.timestamp >= 0.0) {
        return Err(Invalid("timestamp must be unix seconds >= 0".into()));
    }
    Ok(())
}

/// Checks a LogStream batch and bins its raw histograms.
pub fn batch(batch: &mut LogBatch) -> Result<(), Invalid> {
    run_id(&batch.run_id)?;
    let seq = batch.seq;
    for k in &batch.keys {
        value::check_key(k).map_err(|e| Invalid(format!("batch {seq}: {e}")))?;
    }
    let nkeys = batch.keys.len();
    for (i, row) in batch.rows.iter_mut().enumerate() {
        let at = |e: Invalid| Invalid(format!("batch {seq}, row {i}: {e}"));
        if row.scalar_keys.len() != row.scalar_values.len() {
            return Err(at(Invalid(format!(
                "{} scalar_keys but {} scalar_values; send one value per key",
                row.scalar_keys.len(),
                row.scalar_values.len()
            ))));
        }
        if let Some(k) = row.scalar_keys.iter().find(|k| **k as usize >= nkeys) {
            return Err(at(Invalid(format!(
                "scalar key index {k} is outside the batch's {nkeys} keys"
            ))));
        }
        row_values(row).map_err(at)?;
    }
    Ok(())
}

/// Turns a unary Log into a one-row batch.
pub fn log(req: LogRequest) -> Result<LogBatch, Invalid> {
    run_id(&req.run_id)?;
    let mut row = Row {
        values: req.data,
        step: req.step,
        commit: req.commit,
        timestamp: req.timestamp,
        ..Default::default()
    };
    row_values(&mut row)?;
    Ok(LogBatch {
        run_id: req.run_id,
        seq: req.seq,
        keys: Vec::new(),
        rows: vec![row],
        writer_id: req.writer_id,
    })
}

/// Checks an alert and normalises its level.
pub fn alert(req: &mut AlertRequest) -> Result<(), Invalid> {
    run_id(&req.run_id)?;
    let n = req.title.chars().count();
    if n == 0 || n > MAX_ALERT_TITLE {
        return Err(Invalid(format!(
            "alert title must be 1..{MAX_ALERT_TITLE} characters, got {n}"
        )));
    }
    req.level = match req.level.to_ascii_uppercase().as_str() {
        "" | "INFO" => "INFO",
        "WARN" | "WARNING" => "WARN",
        "ERROR" => "ERROR",
        _ => {
            return Err(Invalid(format!(
                "unknown alert level {:?}; use INFO, WARN or ERROR",
                req.level
            )))
        }
    }
    .to_owned();
    if let Some(w) = req.wait_duration {
        if !(w.is_finite() && w >= 0.0) {
            return Err(Invalid(format!(
                "wait_duration must be seconds >= 0, got {w}"
            )));
        }
    }
    Ok(())
}

/// Checks what can be checked of a save before the run expands it.
pub fn save(req: &SaveFilesRequest) -> Result<(), Invalid> {
    run_id(&req.run_id)?;
    files::SavePolicy::parse(&req.policy)?;
    if req.glob.is_empty() {
        return Err(FilesError::EmptyGlob.into());
    }
    if !req.working_dir.is_empty() && !Path::new(&req.working_dir).is_absolute() {
        return Err(FilesError::RelativeWorkingDir(req.working_dir.clone()).into());
    }
    Ok(())
}

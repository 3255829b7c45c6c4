//! Request validation: everything a client can get wrong is caught here, before a
//! run's actor sees it, and told back with what to fix: INVALID_ARGUMENT for a
//! request of the wrong shape, RESOURCE_EXHAUSTED for one past a size limit
//! (`crate::limits`). Input is quoted back at most `limits::QUOTE_CHARS` long.

pub mod artifacts;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::limits::{
    quote, MAX_FILE_NAME_BYTES, MAX_KEYS_PER_BATCH, MAX_SECONDS, MAX_SEQ, MAX_STEP, MAX_TIMESTAMP,
};
use crate::proto::v1::{
    AlertRequest, DefineMetricRequest, InitRequest, ListFilesRequest, LogBatch, LogRequest,
    ReadFileRequest, Row, SaveFilesRequest, ScanHistoryRequest, UpdateRunRequest, Value,
};
use crate::run::files::{self, FilesError};
use crate::semantics::metrics::MetricError;
use crate::value::{self, ValueError};

/// A request a client must change: what is wrong with it (its typed cause) and
/// where in the request it was found.
#[derive(Debug)]
pub struct Invalid {
    pub cause: Cause,
    /// Where in the request, outermost first ("batch 3", "row 7"); empty when the
    /// cause says it all.
    pub place: Vec<String>,
}

/// Why a request is refused.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// A value or key (type, nesting, size, characters).
    #[error(transparent)]
    Value(#[from] ValueError),
    /// A metric definition (its name, glob or summaries).
    #[error(transparent)]
    Metric(#[from] MetricError),
    /// A SaveFiles glob or policy.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// A field of the request itself out of its range or shape (an id, a name, a
    /// number, a timestamp); the message says which and what is allowed.
    #[error("{0}")]
    Field(String),
    /// Past a count or size limit of `crate::limits`.
    #[error("{0}")]
    TooLarge(String),
}

impl Invalid {
    /// Past a size or count limit (RESOURCE_EXHAUSTED), not malformed
    /// (INVALID_ARGUMENT).
    pub fn too_large(&self) -> bool {
        match &self.cause {
            Cause::Value(e) => e.is_too_large(),
            Cause::TooLarge(_) => true,
            Cause::Metric(_) | Cause::Files(_) | Cause::Field(_) => false,
        }
    }

    /// The same refusal, found at `place` (outside any place given before).
    fn at(mut self, place: impl std::fmt::Display) -> Self {
        self.place.insert(0, place.to_string());
        self
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for place in &self.place {
            write!(f, "{place}: ")?;
        }
        write!(f, "{}", self.cause)
    }
}

impl std::error::Error for Invalid {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

impl<E: Into<Cause>> From<E> for Invalid {
    fn from(e: E) -> Self {
        Invalid {
            cause: e.into(),
            place: Vec::new(),
        }
    }
}

/// A field of the request out of its range or shape (INVALID_ARGUMENT).
pub fn invalid(message: String) -> Invalid {
    Cause::Field(message).into()
}

/// Past a count or size limit (RESOURCE_EXHAUSTED).
fn too_large(message: String) -> Invalid {
    Cause::TooLarge(message).into()
}

const MAX_ID: usize = 64;
const MAX_NAME: usize = 128;
/// W&B's limit on a tag.
const MAX_TAG: usize = 64;
/// Most rows per ScanHistory message a client may ask for.
const MAX_PAGE: u32 = 10_000;
pub const MAX_ALERT_TITLE: usize = 64;

/// Checks a run id as Init does: 1..64 characters of letters, digits, '-', '_'.
/// Every RPC naming a run checks it so, before it becomes part of a path.
pub fn run_id(id: &str) -> Result<(), Invalid> {
    if id.is_empty() {
        return Err(invalid("run_id is empty; pass the id Init returned".into()));
    }
    check_id(id, "run_id")
}

fn check_id(id: &str, what: &str) -> Result<(), Invalid> {
    if id.len() > MAX_ID
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(format!(
            "{what} {} must be 1..{MAX_ID} characters of letters, digits, '-' and '_'",
            quote(id)
        )));
    }
    Ok(())
}

/// Checks a writer id (Log, LogStream, Heartbeat, Finish) as Init does.
pub fn writer_id(id: &str) -> Result<(), Invalid> {
    crate::semantics::writers::check_text(id, "writer_id").map_err(invalid)
}

/// Checks a project or entity: it names a directory (project) or a path part.
pub fn project(name: &str, what: &str) -> Result<(), Invalid> {
    if name.chars().count() > MAX_NAME
        || name.starts_with('.')
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return Err(invalid(format!(
            "{what} {} must be at most {MAX_NAME} characters, not start with '.', and hold no '/', '\\' or control characters",
            quote(name)
        )));
    }
    Ok(())
}

/// Checks a display name, group, job type or tag: printable, not too long.
fn label(text: &str, what: &str) -> Result<(), Invalid> {
    if text.chars().count() > MAX_NAME {
        return Err(invalid(format!(
            "{what} is longer than {MAX_NAME} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{what} {} holds a control character; use printable characters",
            quote(text)
        )));
    }
    Ok(())
}

/// Checks a number of seconds: finite, in `min..=MAX_SECONDS`.
fn seconds(v: f64, what: &str, min_exclusive: bool) -> Result<(), Invalid> {
    let above_min = if min_exclusive { v > 0.0 } else { v >= 0.0 };
    if !(v.is_finite() && above_min && v <= MAX_SECONDS) {
        let min = if min_exclusive { "> 0" } else { ">= 0" };
        return Err(invalid(format!(
            "{what} must be seconds {min} and at most {MAX_SECONDS}, got {v}"
        )));
    }
    Ok(())
}

/// Checks Init's fields (id and project become directory names).
pub fn init(req: &mut InitRequest) -> Result<(), Invalid> {
    if !req.id.is_empty() {
        check_id(&req.id, "run id")?;
    }
    project(&req.project, "project")?;
    if req.project == crate::artifacts::DIR {
        return Err(invalid(format!(
            "project {:?} is where the sidecar keeps its artifact store (<data-dir>/{0}/); choose another project name",
            crate::artifacts::DIR
        )));
    }
    project(&req.entity, "entity")?;
    label(&req.name, "name")?;
    label(&req.group, "group")?;
    label(&req.job_type, "job_type")?;
    for t in &req.tags {
        label(t, "tag")?;
    }
    if !req.working_dir.is_empty() && !Path::new(&req.working_dir).is_absolute() {
        return Err(FilesError::RelativeWorkingDir(req.working_dir.clone()).into());
    }
    map(&mut req.config, "config")?;
    if let Some(t) = req.client_timeout {
        seconds(t, "client_timeout", true)?;
    }
    crate::semantics::writers::check(req).map_err(invalid)?;
    if let Some(sm) = &req.system_metrics {
        let i = sm.interval;
        if !(i.is_finite() && (i == 0.0 || i >= MIN_SAMPLE_INTERVAL) && i <= MAX_SECONDS) {
            return Err(invalid(format!(
                "system_metrics.interval must be 0 (the default, 15 s) or at least {MIN_SAMPLE_INTERVAL} seconds (and at most {MAX_SECONDS}), got {i}"
            )));
        }
    }
    Ok(())
}

/// Shortest system-metrics interval a run may ask for, seconds.
const MIN_SAMPLE_INTERVAL: f64 = 0.1;

/// Checks a config or summary map (any non-empty key) and bins its histograms.
pub fn map(values: &mut BTreeMap<String, Value>, what: &str) -> Result<(), Invalid> {
    if values.len() > MAX_KEYS_PER_BATCH {
        return Err(too_large(format!(
            "{what} update has {} keys, over the limit of {MAX_KEYS_PER_BATCH}; send it in parts",
            values.len()
        )));
    }
    let mut entries = 0;
    for (k, v) in values.iter_mut() {
        if k.is_empty() {
            return Err(invalid(format!("{what} has an empty key")));
        }
        value::check_name(k)?;
        value::check_value(k, v, &mut entries)?;
        value::bin_histograms(v);
    }
    Ok(())
}

/// Checks the keys a config or summary update removes.
pub fn removed(keys: &[String]) -> Result<(), Invalid> {
    if keys.len() > MAX_KEYS_PER_BATCH {
        return Err(too_large(format!(
            "{} keys to remove, over the limit of {MAX_KEYS_PER_BATCH}; send them in parts",
            keys.len()
        )));
    }
    keys.iter()
        .try_for_each(|k| value::check_name(k).map_err(Invalid::from))
}

fn row_values(row: &mut Row, entries: &mut usize) -> Result<(), Invalid> {
    for (k, v) in row.values.iter_mut() {
        value::check_key(k)?;
        value::check_value(k, v, entries)?;
        value::bin_histograms(v);
    }
    if let Some(step) = row.step {
        if step < 0 {
            return Err(invalid(format!(
                "step {step} is negative; steps start at 0"
            )));
        }
        if step > MAX_STEP {
            return Err(invalid(format!(
                "step {step} is over the largest step, {MAX_STEP}"
            )));
        }
    }
    let t = row.timestamp;
    if !(t.is_finite() && (0.0..=MAX_TIMESTAMP).contains(&t)) {
        return Err(invalid(format!(
            "timestamp must be unix seconds in 0..={MAX_TIMESTAMP}, got {t}"
        )));
    }
    Ok(())
}

fn seq(seq: u64) -> Result<(), Invalid> {
    if seq > MAX_SEQ {
        return Err(invalid(format!(
            "seq {seq} is over the largest seq, {MAX_SEQ}"
        )));
    }
    Ok(())
}

/// Checks a LogStream batch and bins its raw histograms.
pub fn batch(batch: &mut LogBatch) -> Result<(), Invalid> {
    run_id(&batch.run_id)?;
    writer_id(&batch.writer_id)?;
    let n = batch.seq;
    seq(n)?;
    for k in &batch.keys {
        value::check_key(k).map_err(|e| Invalid::from(e).at(format_args!("batch {n}")))?;
    }
    let nkeys = batch.keys.len();
    let named: usize = nkeys + batch.rows.iter().map(|r| r.values.len()).sum::<usize>();
    if named > MAX_KEYS_PER_BATCH {
        // Only then are distinct keys counted (a batch repeats its keys per row).
        let mut distinct: HashSet<&str> = batch.keys.iter().map(String::as_str).collect();
        for row in &batch.rows {
            distinct.extend(row.values.keys().map(String::as_str));
            if distinct.len() > MAX_KEYS_PER_BATCH {
                return Err(too_large(format!(
                    "batch {n} has more than {MAX_KEYS_PER_BATCH} distinct keys; send fewer keys per batch"
                )));
            }
        }
    }
    let mut entries = 0;
    for (i, row) in batch.rows.iter_mut().enumerate() {
        let at = |e: Invalid| e.at(format_args!("batch {n}, row {i}"));
        if row.scalar_keys.len() != row.scalar_values.len() {
            return Err(at(invalid(format!(
                "{} scalar_keys but {} scalar_values; send one value per key",
                row.scalar_keys.len(),
                row.scalar_values.len()
            ))));
        }
        if let Some(k) = row.scalar_keys.iter().find(|k| **k as usize >= nkeys) {
            return Err(at(invalid(format!(
                "scalar key index {k} is outside the batch's {nkeys} keys"
            ))));
        }
        row_values(row, &mut entries).map_err(at)?;
    }
    Ok(())
}

/// Turns a unary Log into a one-row batch.
pub fn log(req: LogRequest) -> Result<LogBatch, Invalid> {
    let mut batch = LogBatch {
        run_id: req.run_id,
        seq: req.seq,
        keys: Vec::new(),
        rows: vec![Row {
            values: req.data,
            step: req.step,
            commit: req.commit,
            timestamp: req.timestamp,
            ..Default::default()
        }],
        writer_id: req.writer_id,
    };
    run_id(&batch.run_id)?;
    writer_id(&batch.writer_id)?;
    seq(batch.seq)?;
    let row = &mut batch.rows[0];
    if row.values.len() > MAX_KEYS_PER_BATCH {
        return Err(too_large(format!(
            "{} keys in one call, over the limit of {MAX_KEYS_PER_BATCH}; log them in parts",
            row.values.len()
        )));
    }
    row_values(row, &mut 0)?;
    Ok(batch)
}

/// Checks an alert and normalises its level.
pub fn alert(req: &mut AlertRequest) -> Result<(), Invalid> {
    run_id(&req.run_id)?;
    let n = req.title.chars().count();
    if n == 0 || n > MAX_ALERT_TITLE {
        return Err(invalid(format!(
            "alert title must be 1..{MAX_ALERT_TITLE} characters, got {n}"
        )));
    }
    label(&req.title, "alert title")?;
    req.level = match req.level.to_ascii_uppercase().as_str() {
        "" | "INFO" => "INFO",
        "WARN" | "WARNING" => "WARN",
        "ERROR" => "ERROR",
        _ => {
            return Err(invalid(format!(
                "unknown alert level {}; use INFO, WARN or ERROR",
                quote(&req.level)
            )))
        }
    }
    .to_owned();
    if let Some(w) = req.wait_duration {
        seconds(w, "wait_duration", false)?;
    }
    Ok(())
}

/// Checks a metric definition's names and rules.
pub fn metric(req: &DefineMetricRequest) -> Result<(), Invalid> {
    run_id(&req.run_id)?;
    value::check_name(&req.name)?;
    value::check_name(&req.step_metric)?;
    crate::semantics::metrics::check(req)?;
    Ok(())
}

/// Checks what can be checked of a save before the run expands it.
pub fn save(req: &SaveFilesRequest) -> Result<(), Invalid> {
    run_id(&req.run_id)?;
    files::SavePolicy::parse(&req.policy)?;
    if req.glob.is_empty() {
        return Err(FilesError::EmptyGlob.into());
    }
    for (what, path) in [
        ("glob", &req.glob),
        ("base_path", &req.base_path),
        ("working_dir", &req.working_dir),
    ] {
        if path.contains('\0') {
            return Err(invalid(format!("{what} holds a NUL character")));
        }
    }
    if !req.working_dir.is_empty() && !Path::new(&req.working_dir).is_absolute() {
        return Err(FilesError::RelativeWorkingDir(req.working_dir.clone()).into());
    }
    Ok(())
}

/// Checks an edit; drops repeated tags (the first of each stays).
pub fn update(req: &mut UpdateRunRequest) -> Result<(), Invalid> {
    run_id(&req.run_id)?;
    if let Some(name) = &req.name {
        let n = name.chars().count();
        if n == 0 || n > MAX_NAME {
            return Err(invalid(format!(
                "name must be 1..{MAX_NAME} characters, got {n}; leave it unset to keep the name"
            )));
        }
        label(name, "name")?;
    }
    if let Some(group) = &req.group {
        label(group, "group")?;
    }
    if let Some(job_type) = &req.job_type {
        label(job_type, "job_type")?;
    }
    if let Some(tags) = &mut req.tags {
        tags_of_edit(&mut tags.tags)?;
    }
    map(&mut req.config, "config")?;
    map(&mut req.summary, "summary")?;
    for keys in [&req.config_remove, &req.summary_remove] {
        if keys.iter().any(String::is_empty) {
            return Err(invalid("a key to remove is empty".into()));
        }
        removed(keys)?;
    }
    Ok(())
}

/// Checks an edit's tags (W&B's 1..64 characters, printable, at most
/// `MAX_KEYS_PER_BATCH` of them) and drops repeats.
fn tags_of_edit(tags: &mut Vec<String>) -> Result<(), Invalid> {
    if tags.len() > MAX_KEYS_PER_BATCH {
        return Err(too_large(format!(
            "{} tags, over the limit of {MAX_KEYS_PER_BATCH}",
            tags.len()
        )));
    }
    for t in tags.iter() {
        if t.is_empty() || t.chars().count() > MAX_TAG {
            return Err(invalid(format!(
                "tag {} must be 1..{MAX_TAG} characters",
                quote(t)
            )));
        }
        label(t, "tag")?;
    }
    let mut seen = HashSet::new();
    tags.retain(|t| seen.insert(t.clone()));
    Ok(())
}

/// Checks a history scan's run, keys and page size.
pub fn scan(req: &ScanHistoryRequest) -> Result<(), Invalid> {
    run_id(&req.run_id)?;
    if req.page_size > MAX_PAGE {
        return Err(invalid(format!(
            "page_size {} is over {MAX_PAGE} rows",
            req.page_size
        )));
    }
    req.keys
        .iter()
        .try_for_each(|k| value::check_name(k).map_err(Invalid::from))
}

/// Files per ListFiles page when the request names no size.
const DEFAULT_FILE_PAGE: u32 = 1000;

/// Checks a ListFiles request; returns its page size.
pub fn list_files(req: &ListFilesRequest) -> Result<usize, Invalid> {
    run_id(&req.run_id)?;
    if req.page_size > MAX_PAGE {
        return Err(invalid(format!(
            "page_size {} is over {MAX_PAGE} files",
            req.page_size
        )));
    }
    let size = if req.page_size == 0 {
        DEFAULT_FILE_PAGE
    } else {
        req.page_size
    };
    Ok(size as usize)
}

/// Checks a ReadFile name: a relative path below files/, no "..", not longer
/// than a path may be.
pub fn read_file(req: &ReadFileRequest) -> Result<(), Invalid> {
    run_id(&req.run_id)?;
    let path = Path::new(&req.name);
    let plain = path
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if req.name.is_empty() || !plain || req.name.contains('\0') {
        return Err(invalid(format!(
            "file name {} must be a path relative to the run's files directory, without '..' (as ListFiles names it)",
            quote(&req.name)
        )));
    }
    if req.name.len() > MAX_FILE_NAME_BYTES {
        return Err(invalid(format!(
            "file name {} is longer than {MAX_FILE_NAME_BYTES} bytes",
            quote(&req.name)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::value::Kind;

    fn text(s: &str) -> Value {
        Value {
            kind: Some(Kind::StringValue(s.into())),
        }
    }

    #[test]
    fn a_bad_value_keeps_its_cause_and_where_it_was_found() {
        let mut batch = LogBatch {
            run_id: "r".into(),
            seq: 3,
            rows: vec![Row::default(), Row::default()],
            ..Default::default()
        };
        batch.rows[1].values.insert("_mine".into(), text("x"));
        let e = super::batch(&mut batch).expect_err("a reserved key");
        assert!(
            matches!(&e.cause, Cause::Value(ValueError::ReservedKey(k)) if k == "_mine"),
            "{e:?}"
        );
        assert_eq!(e.place, ["batch 3, row 1"]);
        assert!(
            e.to_string()
                .starts_with("batch 3, row 1: key \"_mine\" starts with '_'"),
            "{e}"
        );
        assert!(!e.too_large());
    }

    #[test]
    fn each_cause_decides_its_status_class() {
        let metric = super::metric(&DefineMetricRequest {
            run_id: "r".into(),
            name: "a*b".into(),
            ..Default::default()
        })
        .expect_err("a glob inside the name");
        assert!(matches!(
            metric.cause,
            Cause::Metric(MetricError::GlobNotTrailing(_))
        ));
        assert!(!metric.too_large());

        let id = run_id("../../etc").expect_err("a path as a run id");
        assert!(matches!(id.cause, Cause::Field(_)), "{id:?}");

        let mut wide = LogBatch {
            run_id: "r".into(),
            keys: (0..=MAX_KEYS_PER_BATCH).map(|i| format!("k{i}")).collect(),
            rows: vec![Row::default()],
            ..Default::default()
        };
        let many = super::batch(&mut wide).expect_err("too many keys");
        assert!(matches!(many.cause, Cause::TooLarge(_)) && many.too_large());
    }
}

//! From W&B records to the requests runcore's own RPCs take, and from runcore's
//! answers back to the W&B replies: pure functions, no I/O.

use std::collections::BTreeMap;

use crate::liveness::local_host;
use crate::proto::v1::{
    value::Kind, AlertRequest, ClientInfo, DefineMetricRequest, InitRequest, InitResponse,
    MapValue, Resume, RunInfo, SaveFilesRequest, SystemMetricsSettings, Tags, UpdateRunRequest,
    Value, WriterSettings,
};
use crate::proto::wandb as wb;
use crate::value::{self, parse_json};

/// What the SDK announced about a run before its run record (inform_init).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamSettings {
    /// The SDK's files directory for the run: saved paths are relative to it.
    pub files_dir: String,
    pub resume: String,
    /// The training process.
    pub pid: i64,
    pub mode: String,
    pub disable_stats: bool,
    pub sampling_interval: f64,
    /// Shared mode's `x_label`, `x_primary` and `x_update_finish_state`.
    pub label: String,
    pub primary: Option<bool>,
    pub update_finish_state: Option<bool>,
}

impl StreamSettings {
    pub fn of(s: &wb::Settings) -> Self {
        let text = |v: &Option<wb::StringValue>| v.as_ref().map(|v| v.value.clone());
        let files_dir = text(&s.files_dir)
            .filter(|d| !d.is_empty())
            .or_else(|| text(&s.sync_dir).map(|d| format!("{d}/files")))
            .unwrap_or_default();
        StreamSettings {
            files_dir,
            resume: text(&s.resume).unwrap_or_default(),
            pid: s.stats_pid.as_ref().map_or(0, |p| i64::from(p.value)),
            mode: text(&s.mode).unwrap_or_default(),
            disable_stats: s.disable_stats.as_ref().is_some_and(|b| b.value),
            sampling_interval: s.stats_sampling_interval.as_ref().map_or(0.0, |d| d.value),
            label: text(&s.label).unwrap_or_default(),
            primary: s.primary.as_ref().map(|b| b.value),
            update_finish_state: s.update_finish_state.as_ref().map(|b| b.value),
        }
    }
}

/// A record whose content runcore cannot take.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("value of {key:?} is not valid JSON: {problem}")]
    Json { key: String, problem: String },
}

/// An item's key path: its key, or its nested key.
pub fn item_path(item: &wb::Item) -> Vec<String> {
    if item.nested_key.is_empty() {
        vec![item.key.clone()]
    } else {
        item.nested_key.clone()
    }
}

/// An item's value: a typed field (SDKs from 0.31), else its JSON text.
pub fn item_value(item: &wb::Item) -> Result<Value, MapError> {
    use wb::item::Typed;
    match &item.typed {
        Some(Typed::None(_)) => Ok(null()),
        Some(Typed::Boolean(b)) => Ok(Value {
            kind: Some(Kind::BoolValue(*b)),
        }),
        Some(Typed::Integer(i)) => Ok(value::int(*i)),
        Some(Typed::Number(x)) => Ok(value::double(*x)),
        Some(Typed::Text(s)) => Ok(value::string(s.clone())),
        Some(Typed::Json(j)) => json_value(&item.key, j),
        None => json_value(&item.key, &item.value_json),
    }
}

pub fn null() -> Value {
    Value {
        kind: Some(Kind::NullValue(true)),
    }
}

fn json_value(key: &str, text: &str) -> Result<Value, MapError> {
    match scalar(text) {
        Some(Scalar::Int(i)) => Ok(value::int(i)),
        Some(Scalar::Float(x)) => Ok(value::double(x)),
        None => parse_json(text).map_err(|e| MapError::Json {
            key: key.to_owned(),
            problem: e.to_string(),
        }),
    }
}

/// A plain number, read without the general JSON parser (the hot path).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    /// A JSON integer (Python int): logged as an integer, as runcore's client does.
    Int(i64),
    Float(f64),
}

/// `text` as a number, if it is one: Python's json writes ints as digits and
/// floats with a '.' or exponent, and NaN/Infinity/-Infinity as bare words.
pub fn scalar(text: &str) -> Option<Scalar> {
    scalar_bytes(text.as_bytes())
}

/// [`scalar`] of bytes that may not be UTF-8 (a frame's JSON text read in place):
/// one pass over them decides between integer, float and neither.
pub fn scalar_bytes(b: &[u8]) -> Option<Scalar> {
    let first = *b.first()?;
    if !(first.is_ascii_digit() || first == b'-') {
        return match b {
            b"NaN" => Some(Scalar::Float(f64::NAN)),
            b"Infinity" => Some(Scalar::Float(f64::INFINITY)),
            _ => None,
        };
    }
    // Digits only (a leading '-' aside): an integer if it fits an i64.
    let mut integral = true;
    for (i, &c) in b.iter().enumerate() {
        if c.is_ascii_digit() || (i == 0 && c == b'-') {
            continue;
        }
        if !matches!(c, b'-' | b'+' | b'.' | b'e' | b'E') {
            return (b == b"-Infinity").then_some(Scalar::Float(f64::NEG_INFINITY));
        }
        integral = false;
    }
    // Only ASCII is left, which is UTF-8.
    let text = std::str::from_utf8(b).ok()?;
    if integral {
        if let Ok(i) = text.parse::<i64>() {
            return Some(Scalar::Int(i));
        }
    }
    text.parse::<f64>().ok().map(Scalar::Float)
}

/// What a later run record changes of an open run (name, notes, tags, group,
/// job type), as an edit; None when it changes none of them. Empty fields in the
/// record leave the run's as they are (the SDK sends the whole record).
pub fn run_edit(now: &RunInfo, run: &wb::Run) -> Option<UpdateRunRequest> {
    let changed = |new: &str, old: &str| (!new.is_empty() && new != old).then(|| new.to_owned());
    let edit = UpdateRunRequest {
        run_id: now.id.clone(),
        name: changed(&run.display_name, &now.name),
        notes: changed(&run.notes, &now.notes),
        group: changed(&run.run_group, &now.group),
        job_type: changed(&run.job_type, &now.job_type),
        tags: (run.tags != now.tags).then(|| Tags {
            tags: run.tags.clone(),
        }),
        ..Default::default()
    };
    let any = edit.name.is_some()
        || edit.notes.is_some()
        || edit.group.is_some()
        || edit.job_type.is_some()
        || edit.tags.is_some();
    any.then_some(edit)
}

/// Sets (or with None removes) the value at `path` in `map`, creating nested maps
/// on the way.
pub fn deep_set(map: &mut BTreeMap<String, Value>, path: &[String], v: Option<Value>) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        match v {
            Some(v) => {
                map.insert(first.clone(), v);
            }
            None => {
                map.remove(first);
            }
        }
        return;
    }
    let entry = map
        .entry(first.clone())
        .or_insert_with(|| value::map(BTreeMap::new()));
    if !matches!(entry.kind, Some(Kind::MapValue(_))) {
        *entry = value::map(BTreeMap::new());
    }
    if let Some(Kind::MapValue(MapValue { fields })) = &mut entry.kind {
        deep_set(fields, rest, v);
    }
}

/// A config or summary update as top-level keys to set and to remove. Nested
/// paths are applied to `current` (the run's map now), whose changed top-level
/// keys are then set whole. Keys starting with '_' (the SDK's own `_wandb`) are
/// left out.
pub fn update(
    items: &wb::ItemUpdate,
    current: &BTreeMap<String, Value>,
) -> Result<(BTreeMap<String, Value>, Vec<String>), MapError> {
    let mut set = BTreeMap::new();
    let mut remove = Vec::new();
    let mut apply = |path: Vec<String>, v: Option<Value>| {
        let Some(top) = path.first().filter(|k| !k.starts_with('_')).cloned() else {
            return;
        };
        if path.len() == 1 {
            match v {
                Some(v) => {
                    set.insert(top, v);
                }
                None => remove.push(top),
            }
            return;
        }
        let mut whole = BTreeMap::new();
        if let Some(now) = set.get(&top).or_else(|| current.get(&top)) {
            whole.insert(top.clone(), now.clone());
        }
        deep_set(&mut whole, &path, v);
        if let Some(v) = whole.remove(&top) {
            set.insert(top, v);
        }
    };
    for item in &items.update {
        apply(item_path(item), Some(item_value(item)?));
    }
    for item in &items.remove {
        apply(item_path(item), None);
    }
    Ok((set, remove))
}

/// Whether an update names nested paths (and so needs the run's current map).
pub fn is_nested(items: &wb::ItemUpdate) -> bool {
    items
        .update
        .iter()
        .chain(&items.remove)
        .any(|i| i.nested_key.len() > 1)
}

/// Init for a run record. In shared mode (`mode="shared"`) the SDK's process is a
/// writer of the run: `writer_id` names it, and its label, x_primary and
/// x_update_finish_state become its WriterSettings.
pub fn init_request(
    run: &wb::Run,
    s: &StreamSettings,
    writer_id: &str,
) -> Result<InitRequest, MapError> {
    let (config, _) = match &run.config {
        Some(c) => update(c, &BTreeMap::new())?,
        None => Default::default(),
    };
    let resume = match s.resume.as_str() {
        "allow" | "auto" => Resume::Allow,
        "must" => Resume::Must,
        _ => Resume::Never,
    };
    let host = local_host();
    let mut req = InitRequest {
        id: run.run_id.clone(),
        name: run.display_name.clone(),
        entity: run.entity.clone(),
        project: run.project.clone(),
        group: run.run_group.clone(),
        job_type: run.job_type.clone(),
        tags: run.tags.clone(),
        notes: run.notes.clone(),
        config,
        client: (s.pid > 0).then(|| ClientInfo {
            pid: s.pid,
            hostname: host.hostname.clone(),
            boot_id: host.boot_id.clone(),
        }),
        working_dir: s.files_dir.clone(),
        system_metrics: Some(SystemMetricsSettings {
            interval: if s.sampling_interval >= 0.1 {
                s.sampling_interval
            } else {
                0.0
            },
            disabled: s.disable_stats,
            ..Default::default()
        }),
        ..Default::default()
    };
    if s.mode == "shared" {
        req.writer_id = writer_id.to_owned();
        req.writer = Some(WriterSettings {
            shared: true,
            label: s.label.clone(),
            primary: s.primary,
            update_finish_state: s.update_finish_state,
        });
    }
    req.set_resume(resume);
    Ok(req)
}

/// The run record the SDK gets back: what runcore made of its run.
pub fn run_reply(reply: &InitResponse) -> wb::Run {
    let info = reply.run.clone().unwrap_or_default();
    wb::Run {
        run_id: info.id,
        entity: info.entity,
        project: info.project,
        run_group: info.group,
        job_type: info.job_type,
        display_name: info.name,
        notes: info.notes,
        tags: info.tags,
        host: local_host().hostname.clone(),
        starting_step: reply.starting_step,
        start_time: Some(timestamp(info.start_time)),
        resumed: reply.resumed,
        ..Default::default()
    }
}

fn timestamp(unix: f64) -> wb::Timestamp {
    wb::Timestamp {
        seconds: unix.floor() as i64,
        nanos: ((unix - unix.floor()) * 1e9) as i32,
    }
}

/// DefineMetric for a metric record; None for records runcore does not need (a
/// glob the SDK expanded itself, a record naming nothing).
pub fn define_metric(run_id: &str, m: &wb::Metric) -> Option<DefineMetricRequest> {
    let name = if m.glob_name.is_empty() {
        &m.name
    } else {
        &m.glob_name
    };
    if m.expanded_from_glob || name.is_empty() {
        return None;
    }
    let opts = m.options.unwrap_or_default();
    let mut summary = Vec::new();
    if let Some(s) = &m.summary {
        for (on, agg) in [
            (s.min, "min"),
            (s.max, "max"),
            (s.mean, "mean"),
            (s.first, "first"),
            (s.last, "last"),
            (s.best, "best"),
            (s.none, "none"),
        ] {
            if on {
                summary.push(agg);
            }
        }
    }
    let goal = match m.goal() {
        wb::MetricGoal::GoalMinimize => "minimize",
        wb::MetricGoal::GoalMaximize => "maximize",
        wb::MetricGoal::GoalUnset => "",
    };
    Some(DefineMetricRequest {
        run_id: run_id.to_owned(),
        name: name.clone(),
        step_metric: m.step_metric.clone(),
        step_sync: (!m.step_metric.is_empty()).then_some(opts.step_sync),
        hidden: opts.hidden.then_some(true),
        summary: summary.join(","),
        goal: goal.to_owned(),
        // W&B merges a definition with an earlier one unless told to overwrite.
        overwrite: Some(m.control.is_some_and(|c| c.overwrite)),
    })
}

pub fn alert(run_id: &str, a: &wb::Alert) -> AlertRequest {
    AlertRequest {
        run_id: run_id.to_owned(),
        title: a.title.clone(),
        text: a.text.clone(),
        level: a.level.clone(),
        wait_duration: (a.wait_duration > 0).then(|| a.wait_duration as f64 / 1000.0),
    }
}

/// SaveFiles for the files the user saved (or logged as media): paths are
/// relative to the SDK's files directory and keep that layout in runcore's.
pub fn save_files(run_id: &str, files: &wb::Files, files_dir: &str) -> Vec<SaveFilesRequest> {
    files
        .files
        .iter()
        .filter(|f| matches!(f.r#type(), wb::FileType::Other | wb::FileType::Media))
        .filter(|f| !f.path.is_empty())
        .map(|f| SaveFilesRequest {
            run_id: run_id.to_owned(),
            glob: f.path.clone(),
            base_path: String::new(),
            policy: match f.policy() {
                wb::FilePolicy::Now => "now",
                wb::FilePolicy::End => "end",
                wb::FilePolicy::Live => "live",
            }
            .to_owned(),
            working_dir: files_dir.to_owned(),
        })
        .collect()
}

/// A summary (or any map) as W&B items, values as JSON text.
pub fn items(map: &BTreeMap<String, Value>) -> Vec<wb::Item> {
    map.iter()
        .map(|(k, v)| {
            let mut json = String::new();
            value::write_json(&mut json, v);
            wb::Item {
                key: k.clone(),
                value_json: json,
                ..Default::default()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;

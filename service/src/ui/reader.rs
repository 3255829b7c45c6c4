//! Reading the local store for the UI: projects, runs, and a run's files, as
//! JSON a browser can parse (NaN and the infinities, which JSON lacks, become
//! the strings "NaN", "Infinity", "-Infinity"). Nothing here writes to the store.
//! Blocking: called from the runtime's blocking pool.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Map, Value as Json};

use super::error::UiError;
use crate::proto::v1::{value::Kind, Value};
use crate::store::{self, RunFile};
use crate::value::{self, media_type};

/// Most summary columns one run contributes to the runs table.
const MAX_SUMMARY_KEYS: usize = 200;
/// Where console output may be (the W&B protocol adapter writes it).
const OUTPUT_LOGS: [&str; 2] = ["output.log", "files/output.log"];

/// Refuses a name that is not one directory level (`..`, `/`, hidden names).
pub fn check_name(what: &str, name: &str) -> Result<(), UiError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= 255;
    if ok {
        Ok(())
    } else {
        Err(UiError::bad(format!(
            "{what} {name:?} is not a valid name (one path segment, not starting with '.')"
        )))
    }
}

/// The directory of a project.
pub fn project_dir(data_dir: &Path, project: &str) -> Result<PathBuf, UiError> {
    check_name("project", project)?;
    let dir = data_dir.join(project);
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(UiError::NoProject(project.to_owned()))
    }
}

/// The directory of a run (one holding a transaction log).
pub fn run_dir(data_dir: &Path, project: &str, id: &str) -> Result<PathBuf, UiError> {
    check_name("project", project)?;
    check_name("run id", id)?;
    let dir = store::run_dir(data_dir, project, id);
    if dir.join(store::WAL).is_file() {
        Ok(dir)
    } else {
        Err(UiError::NoRun {
            project: project.to_owned(),
            id: id.to_owned(),
        })
    }
}

#[derive(Debug, Serialize)]
pub struct ProjectRow {
    pub name: String,
    pub runs: usize,
    /// Runs by state (as shown: a stale open run counts as crashed).
    pub states: BTreeMap<String, usize>,
    pub last_start: f64,
}

/// Every project with at least one run, most recently active first.
pub fn projects(data_dir: &Path) -> Vec<ProjectRow> {
    let now = crate::clock::now();
    let mut by_name: BTreeMap<String, ProjectRow> = BTreeMap::new();
    for dir in store::all_runs(data_dir) {
        let Ok(run) = store::read_run_file(&dir) else {
            continue;
        };
        let Some(name) = dir.parent().and_then(Path::file_name) else {
            continue;
        };
        let name = name.to_string_lossy().into_owned();
        if check_name("project", &name).is_err() {
            continue;
        }
        let row = by_name.entry(name.clone()).or_insert(ProjectRow {
            name,
            runs: 0,
            states: BTreeMap::new(),
            last_start: 0.0,
        });
        row.runs += 1;
        *row.states
            .entry(run.shown_state(now).to_owned())
            .or_default() += 1;
        row.last_start = row.last_start.max(run.start_time);
    }
    let mut rows: Vec<ProjectRow> = by_name.into_values().collect();
    rows.sort_by(|a, b| b.last_start.total_cmp(&a.last_start));
    rows
}

/// A run's identity and state, as the runs table and the run page show it.
pub fn run_json(run: &RunFile, now: f64) -> Json {
    let end = run.end_time.unwrap_or(now).max(run.start_time);
    json!({
        "id": run.id,
        "name": run.name,
        "entity": run.entity,
        "project": run.project,
        "path": crate::semantics::state::run_path(&run.entity, &run.project, &run.id),
        "state": run.shown_state(now),
        "group": run.group,
        "job_type": run.job_type,
        "tags": run.tags,
        "notes": run.notes,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "duration": end - run.start_time,
        "steps": run.history_rows,
        "step": run.step,
        "exit_code": run.exit_code,
        "last_heartbeat": run.last_heartbeat,
        "client_host": run.client_host,
        "client_pid": run.client_pid,
        "resumed": run.resumed,
    })
}

/// The runs of a project, newest first, each with its flattened scalar summary.
pub fn runs(data_dir: &Path, project: &str) -> Result<Vec<Json>, UiError> {
    let dir = project_dir(data_dir, project)?;
    let now = crate::clock::now();
    let mut runs: Vec<(f64, Json)> = Vec::new();
    for entry in fs::read_dir(&dir).map_err(store::io_err(&dir))?.flatten() {
        let run_dir = entry.path();
        if !run_dir.join(store::WAL).is_file() {
            continue;
        }
        let Ok(run) = store::read_run_file(&run_dir) else {
            continue;
        };
        let mut row = run_json(&run, now);
        let summary = store::read_json_map(&run_dir.join(store::SUMMARY_JSON)).unwrap_or_default();
        row["summary"] = Json::Object(flatten_scalars(&summary, MAX_SUMMARY_KEYS));
        runs.push((run.start_time, row));
    }
    runs.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(runs.into_iter().map(|(_, r)| r).collect())
}

/// Everything the run page shows besides charts, files and output.
pub fn run_detail(dir: &Path) -> Result<Json, UiError> {
    let run = store::read_run_file(dir)?;
    let map = |name: &str| -> Result<Json, UiError> {
        Ok(map_json(&store::read_json_map(&dir.join(name))?))
    };
    Ok(json!({
        "run": run_json(&run, crate::clock::now()),
        "config": map(store::CONFIG_JSON)?,
        "summary": map(store::SUMMARY_JSON)?,
        "metadata": map(store::METADATA_JSON)?,
        "alerts": alerts(dir),
        "has_output": has_output(dir),
    }))
}

/// The sizes the live page watches to know when to reload.
pub fn status(dir: &Path) -> Result<Json, UiError> {
    let run = store::read_run_file(dir)?;
    let len = |name: &str| fs::metadata(dir.join(name)).map(|m| m.len()).unwrap_or(0);
    Ok(json!({
        "run": run_json(&run, crate::clock::now()),
        "history_bytes": len(store::HISTORY_JSONL),
        "events_bytes": len(store::EVENTS_JSONL),
        "alerts_bytes": len(store::ALERTS_JSONL),
        "output_bytes": output_path(dir).and_then(|p| fs::metadata(p).ok()).map_or(0, |m| m.len()),
    }))
}

/// Every line of `alerts.jsonl`.
fn alerts(dir: &Path) -> Vec<Json> {
    let Ok(text) = fs::read_to_string(dir.join(store::ALERTS_JSONL)) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| value::parse_json(l).ok())
        .map(|v| to_json(&v))
        .collect()
}

#[derive(Debug, Serialize)]
pub struct FileRow {
    pub path: String,
    pub size: u64,
}

/// The run's saved files with their sizes.
pub fn files(dir: &Path) -> Vec<FileRow> {
    let root = dir.join(store::FILES_DIR);
    store::list_files(dir)
        .into_iter()
        .map(|path| FileRow {
            size: fs::metadata(root.join(&path)).map_or(0, |m| m.len()),
            path,
        })
        .collect()
}

/// A saved file's real path, refusing anything outside the run's files/.
pub fn saved_file(dir: &Path, rel: &str) -> Result<PathBuf, UiError> {
    let missing = || UiError::NoFile(rel.to_owned());
    if rel
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(UiError::bad(format!("{rel:?} is not a path inside files/")));
    }
    let root = dir
        .join(store::FILES_DIR)
        .canonicalize()
        .map_err(|_| missing())?;
    let path = root.join(rel).canonicalize().map_err(|_| missing())?;
    if path.starts_with(&root) && path.is_file() {
        Ok(path)
    } else {
        Err(missing())
    }
}

fn output_path(dir: &Path) -> Option<PathBuf> {
    OUTPUT_LOGS
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Whether the run printed anything: the store makes an empty output.log for
/// every run, which is no reason for a Logs tab.
fn has_output(dir: &Path) -> bool {
    output_path(dir)
        .and_then(|p| fs::metadata(p).ok())
        .is_some_and(|m| m.len() > 0)
}

/// Console output from byte `from` (or the last `tail` bytes), at most `tail`;
/// `end` is where the next read starts (a character cut at the end waits).
pub fn output(dir: &Path, from: Option<u64>, tail: u64) -> Result<Json, UiError> {
    let Some(path) = output_path(dir) else {
        return Ok(json!({ "text": "", "start": 0, "end": 0, "size": 0 }));
    };
    let read = || -> io::Result<(Vec<u8>, u64, u64)> {
        let mut f = fs::File::open(&path)?;
        let size = f.metadata()?.len();
        let start = from.unwrap_or(size.saturating_sub(tail)).min(size);
        let end = size.min(start + tail);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = vec![0u8; (end - start) as usize];
        f.read_exact(&mut buf)?;
        Ok((buf, start, size))
    };
    let (mut buf, start, size) = read().map_err(store::io_err(&path))?;
    if let Err(e) = std::str::from_utf8(&buf) {
        if e.error_len().is_none() {
            buf.truncate(e.valid_up_to());
        }
    }
    let end = start + buf.len() as u64;
    let text = String::from_utf8_lossy(&buf);
    Ok(json!({ "text": text, "start": start, "end": end, "size": size }))
}

/// A store value as browser JSON.
pub fn to_json(v: &Value) -> Json {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::DoubleValue(d)) => f64_json(*d),
        Some(Kind::IntValue(i)) => json!(i),
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::MapValue(m)) => map_json(&m.fields),
        Some(Kind::ListValue(l)) => Json::Array(l.values.iter().map(to_json).collect()),
        Some(Kind::Histogram(h)) => json!({
            "_type": "histogram",
            "bins": h.bins.iter().map(|b| f64_json(*b)).collect::<Vec<_>>(),
            "values": h.counts,
        }),
        Some(Kind::Media(m)) => json!({
            "_type": media_type(m.kind),
            "path": m.path,
            "caption": m.caption,
        }),
    }
}

fn map_json(map: &BTreeMap<String, Value>) -> Json {
    Json::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
}

fn f64_json(v: f64) -> Json {
    match serde_json::Number::from_f64(v) {
        Some(n) => Json::Number(n),
        None if v.is_nan() => json!("NaN"),
        None if v > 0.0 => json!("Infinity"),
        None => json!("-Infinity"),
    }
}

/// The scalars of a map, nested keys joined with `.`, at most `limit`; keys
/// starting with `_` are left out.
pub fn flatten_scalars(map: &BTreeMap<String, Value>, limit: usize) -> Map<String, Json> {
    fn walk(
        prefix: &str,
        map: &BTreeMap<String, Value>,
        out: &mut Map<String, Json>,
        limit: usize,
    ) {
        for (k, v) in map {
            if out.len() >= limit || (prefix.is_empty() && k.starts_with('_')) {
                continue;
            }
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match &v.kind {
                Some(Kind::MapValue(m)) => walk(&key, &m.fields, out, limit),
                Some(Kind::DoubleValue(_) | Kind::IntValue(_) | Kind::BoolValue(_))
                | Some(Kind::StringValue(_)) => {
                    out.insert(key, to_json(v));
                }
                _ => {}
            }
        }
    }
    let mut out = Map::new();
    walk("", map, &mut out, limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_segments() {
        for bad in ["", "..", ".ui-index", "a/b", "a\\b", "a\0"] {
            assert!(check_name("run id", bad).is_err(), "{bad:?}");
        }
        assert!(check_name("run id", "abc-1.2_x").is_ok());
    }

    #[test]
    fn values_become_browser_json() {
        let v = value::parse_json(
            r#"{"a":NaN,"b":-Infinity,"c":1.5,"d":{"e":[1,"x"]},"_step":3,"s":"t"}"#,
        )
        .unwrap();
        let Some(Kind::MapValue(m)) = &v.kind else {
            panic!()
        };
        let j = to_json(&v);
        assert_eq!(j["a"], "NaN");
        assert_eq!(j["b"], "-Infinity");
        assert_eq!(j["d"]["e"][1], "x");
        let flat = flatten_scalars(&m.fields, 10);
        let keys: Vec<&str> = flat.keys().map(String::as_str).collect();
        assert_eq!(keys, ["a", "b", "c", "s"]);
        assert_eq!(flatten_scalars(&m.fields, 2).len(), 2);
    }

    #[test]
    fn saved_files_stay_inside_files() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        fs::create_dir_all(run.join("files/sub")).unwrap();
        fs::write(run.join("files/sub/a.txt"), "a").unwrap();
        fs::write(run.join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(run.join("secret"), run.join("files/link")).unwrap();
        assert!(saved_file(run, "sub/a.txt").is_ok());
        assert!(matches!(
            saved_file(run, "../secret"),
            Err(UiError::BadRequest(_))
        ));
        assert!(matches!(saved_file(run, "link"), Err(UiError::NoFile(_))));
        assert!(matches!(saved_file(run, "nope"), Err(UiError::NoFile(_))));
        assert!(matches!(saved_file(run, "sub"), Err(UiError::NoFile(_))));
    }
}

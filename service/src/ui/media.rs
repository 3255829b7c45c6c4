//! A run's media and tables for the run page: the media values of its history
//! (images, tables, plots: `{"_type": ..., "path": ...}` objects naming files
//! under the run's `files/`), grouped by key with their steps; and one table
//! file's rows, sorted and paged here so that the page gets only what it shows.
//! Read-only; blocking.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value as Json};

use super::error::UiError;
use super::reader::{saved_file, to_json};
use crate::proto::v1::value::Kind;
use crate::store;
use crate::value;

/// Most entries kept per key (the latest ones); a page shows a slider over them.
pub const MAX_PER_KEY: usize = 500;
/// Most rows one table request returns.
pub const MAX_LIMIT: usize = 1000;
/// Largest table file read.
const MAX_TABLE_BYTES: u64 = 64 << 20;

/// A key's media values, oldest step first.
#[derive(Debug, Serialize)]
pub struct MediaKey {
    pub key: String,
    /// `image-file`, `table-file`, ... (the newest value's).
    #[serde(rename = "type")]
    pub ty: String,
    /// Values dropped from the front to keep [`MAX_PER_KEY`].
    pub dropped: usize,
    /// Each value as browser JSON, with its `step`.
    pub items: Vec<Json>,
}

/// The media values of a run's history by key (top-level keys and nested ones
/// joined with `.`), in key order.
pub fn media(dir: &Path) -> Result<Vec<MediaKey>, UiError> {
    let path = dir.join(store::HISTORY_JSONL);
    let file = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(store::io_err(&path)(e).into()),
    };
    let mut keys: BTreeMap<String, MediaKey> = BTreeMap::new();
    for line in BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        // Most rows hold no media: not parsed at all.
        if !line.contains("\"_type\":") {
            continue;
        }
        // A line still being written (or a broken one) is skipped.
        let Ok(row) = value::parse_json_map(&line) else {
            continue;
        };
        let step = row.get("_step").and_then(value::as_f64);
        collect("", &row, step, &mut keys);
    }
    Ok(keys.into_values().collect())
}

fn collect(
    prefix: &str,
    map: &BTreeMap<String, crate::proto::v1::Value>,
    step: Option<f64>,
    out: &mut BTreeMap<String, MediaKey>,
) {
    for (k, v) in map {
        if prefix.is_empty() && k.starts_with('_') {
            continue;
        }
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match &v.kind {
            Some(Kind::MapValue(m)) => collect(&key, &m.fields, step, out),
            Some(Kind::Media(m)) => {
                let mut item = to_json(v);
                item["step"] = json!(step);
                item["sha256"] = json!(m.sha256);
                item["size"] = json!(m.size);
                for (name, extra) in &m.extra {
                    item[name.as_str()] = to_json(extra);
                }
                let entry = out.entry(key.clone()).or_insert_with(|| MediaKey {
                    key,
                    ty: String::new(),
                    dropped: 0,
                    items: Vec::new(),
                });
                entry.ty = value::media_type(m.kind).to_owned();
                if entry.items.len() == MAX_PER_KEY {
                    entry.items.remove(0);
                    entry.dropped += 1;
                }
                entry.items.push(item);
            }
            _ => {}
        }
    }
}

/// Which rows of a table to return.
#[derive(Debug, Clone)]
pub struct TableQuery {
    pub offset: usize,
    pub limit: usize,
    /// A column name to sort by.
    pub sort: Option<String>,
    pub desc: bool,
}

/// Rows `offset..offset+limit` of the table file at `rel` (under files/), after
/// sorting by `sort` when given: `{"columns", "rows", "total", "offset", "limit",
/// "sort", "desc"}`.
pub fn table(dir: &Path, rel: &str, q: &TableQuery) -> Result<Json, UiError> {
    let path = saved_file(dir, rel)?;
    let len = fs::metadata(&path).map_err(store::io_err(&path))?.len();
    if len > MAX_TABLE_BYTES {
        return Err(UiError::bad(format!(
            "{rel:?} is {len} bytes; the UI reads tables up to {MAX_TABLE_BYTES}"
        )));
    }
    let text = fs::read_to_string(&path).map_err(|_| not_a_table(rel))?;
    let parsed = value::parse_json(&text).map_err(|_| not_a_table(rel))?;
    let table = to_json(&parsed);
    let (Some(columns), Some(data)) = (table["columns"].as_array(), table["data"].as_array())
    else {
        return Err(not_a_table(rel));
    };
    let mut rows: Vec<&Json> = data.iter().collect();
    if let Some(name) = &q.sort {
        let col = columns
            .iter()
            .position(|c| c.as_str() == Some(name))
            .ok_or_else(|| {
                UiError::bad(format!(
                    "`sort={}`: the table has no such column; it has {}",
                    crate::limits::quote(name),
                    Json::Array(columns.clone())
                ))
            })?;
        rows.sort_by(|a, b| compare(&a[col], &b[col]));
        if q.desc {
            rows.reverse();
        }
    }
    let total = rows.len();
    let page: Vec<&Json> = rows.into_iter().skip(q.offset).take(q.limit).collect();
    Ok(json!({
        "columns": columns,
        "rows": page,
        "total": total,
        "offset": q.offset,
        "limit": q.limit,
        "sort": q.sort,
        "desc": q.desc,
    }))
}

fn not_a_table(rel: &str) -> UiError {
    UiError::bad(format!(
        "{rel:?} is not a table file (JSON with \"columns\" and \"data\")"
    ))
}

/// A cell's place in a sorted column: nulls, then booleans, numbers (NaN last
/// among them), strings, and anything else by its JSON text.
fn compare(a: &Json, b: &Json) -> Ordering {
    fn rank(v: &Json) -> (u8, f64, String) {
        match v {
            Json::Null => (0, 0.0, String::new()),
            Json::Bool(b) => (1, f64::from(u8::from(*b)), String::new()),
            Json::Number(n) => (2, n.as_f64().unwrap_or(f64::NAN), String::new()),
            Json::String(s) => match s.as_str() {
                "NaN" => (2, f64::NAN, String::new()),
                "Infinity" => (2, f64::INFINITY, String::new()),
                "-Infinity" => (2, f64::NEG_INFINITY, String::new()),
                _ => (3, 0.0, s.clone()),
            },
            other => (4, 0.0, other.to_string()),
        }
    }
    let (ra, fa, sa) = rank(a);
    let (rb, fb, sb) = rank(b);
    ra.cmp(&rb)
        .then_with(|| match (fa.is_nan(), fb.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => fa.total_cmp(&fb),
        })
        .then_with(|| sa.cmp(&sb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_sort_by_kind_then_value() {
        let mut cells = vec![
            json!("b"),
            json!(2),
            json!("NaN"),
            json!(null),
            json!(-1.5),
            json!("a"),
            json!("-Infinity"),
            json!(true),
        ];
        cells.sort_by(compare);
        assert_eq!(
            cells,
            vec![
                json!(null),
                json!(true),
                json!("-Infinity"),
                json!(-1.5),
                json!(2),
                json!("NaN"),
                json!("a"),
                json!("b"),
            ]
        );
    }
}

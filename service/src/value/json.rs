//! The store's JSON, written: Python's `json` module's form (NaN and the
//! infinities as bare tokens), histograms and media tagged with `_type`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::media_type;
use crate::proto::v1::{value::Kind, Value};

/// Appends `s` as a JSON string literal.
pub fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a float the way Python's json module writes it.
pub fn write_json_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        out.push_str(ryu::Buffer::new().format_finite(v));
    }
}

/// Appends a value as JSON.
pub fn write_json(out: &mut String, value: &Value) {
    match &value.kind {
        None => out.push_str("null"),
        Some(Kind::NullValue(_)) => out.push_str("null"),
        Some(Kind::DoubleValue(v)) => write_json_f64(out, *v),
        Some(Kind::IntValue(v)) => {
            let _ = write!(out, "{v}");
        }
        Some(Kind::BoolValue(v)) => out.push_str(if *v { "true" } else { "false" }),
        Some(Kind::StringValue(s)) => write_json_str(out, s),
        Some(Kind::MapValue(m)) => write_json_object(out, m.fields.iter()),
        Some(Kind::ListValue(l)) => {
            out.push('[');
            for (i, v) in l.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, v);
            }
            out.push(']');
        }
        Some(Kind::Histogram(h)) => {
            out.push_str("{\"_type\":\"histogram\",\"bins\":[");
            for (i, b) in h.bins.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_f64(out, *b);
            }
            out.push_str("],\"values\":[");
            for (i, c) in h.counts.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{c}");
            }
            out.push_str("]}");
        }
        Some(Kind::Media(m)) => {
            out.push_str("{\"_type\":");
            write_json_str(out, media_type(m.kind));
            out.push_str(",\"path\":");
            write_json_str(out, &m.path);
            if !m.caption.is_empty() {
                out.push_str(",\"caption\":");
                write_json_str(out, &m.caption);
            }
            if !m.sha256.is_empty() {
                out.push_str(",\"sha256\":");
                write_json_str(out, &m.sha256);
                let _ = write!(out, ",\"size\":{}", m.size);
            }
            for (k, v) in &m.extra {
                if !super::MEDIA_FIELDS.contains(&k.as_str()) {
                    out.push(',');
                    write_json_str(out, k);
                    out.push(':');
                    write_json(out, v);
                }
            }
            out.push('}');
        }
    }
}

/// Appends a JSON object of the given entries, in their order.
pub fn write_json_object<'a, K: AsRef<str> + 'a>(
    out: &mut String,
    entries: impl Iterator<Item = (K, &'a Value)>,
) {
    out.push('{');
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(out, k.as_ref());
        out.push(':');
        write_json(out, v);
    }
    out.push('}');
}

/// Appends a history line (no newline): the row's keys, then `_step`, `_runtime`,
/// `_timestamp`. The local store and the W&B backend write the same lines.
pub fn write_history_line<'a, K: AsRef<str> + 'a>(
    out: &mut String,
    values: impl Iterator<Item = (K, &'a Value)>,
    step: i64,
    runtime: f64,
    timestamp: f64,
) {
    out.push('{');
    for (k, v) in values {
        write_json_str(out, k.as_ref());
        out.push(':');
        write_json(out, v);
        out.push(',');
    }
    let _ = write!(out, "\"_step\":{step},\"_runtime\":");
    write_json_f64(out, runtime);
    out.push_str(",\"_timestamp\":");
    write_json_f64(out, timestamp);
    out.push('}');
}

/// Appends a system-metrics line (no newline): each metric as `system.<key>`, then
/// `extra` (more `"key":value,` pairs, or empty), `_runtime`, `_timestamp`.
pub fn write_events_line<'a>(
    out: &mut String,
    metrics: impl Iterator<Item = (&'a str, f64)>,
    extra: &str,
    runtime: f64,
    timestamp: f64,
) {
    out.push('{');
    for (k, v) in metrics {
        write_json_str(out, &format!("system.{k}"));
        out.push(':');
        write_json_f64(out, v);
        out.push(',');
    }
    out.push_str(extra);
    out.push_str("\"_runtime\":");
    write_json_f64(out, runtime);
    out.push_str(",\"_timestamp\":");
    write_json_f64(out, timestamp);
    out.push('}');
}

/// A map rendered as one pretty-enough JSON document (a trailing newline).
pub fn map_to_json(map: &BTreeMap<String, Value>) -> String {
    let mut out = String::new();
    write_json_object(&mut out, map.iter());
    out.push('\n');
    out
}

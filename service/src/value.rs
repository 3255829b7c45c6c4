//! Logged values: validation, histogram binning, and the JSON form the local store
//! writes (and reads back).
//!
//! The store's JSON follows Python's `json` module so that W&B users' tools read it
//! as they are: NaN and the infinities are written as the bare tokens `NaN`,
//! `Infinity` and `-Infinity`, which `json.loads` accepts. Histograms and media are
//! objects tagged with `_type`, as W&B writes them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::proto::v1::{value::Kind, Histogram, ListValue, MapValue, Media, MediaKind, Value};

/// Default bin count when the sidecar bins raw values (W&B's default).
pub const DEFAULT_HISTOGRAM_BINS: u32 = 64;
/// The most bins a histogram may have.
pub const MAX_HISTOGRAM_BINS: usize = 512;
/// Deepest nesting of maps and lists accepted in one value.
pub const MAX_DEPTH: usize = 32;

/// Why a value or key was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ValueError {
    #[error("key is empty; give every logged value a non-empty name")]
    EmptyKey,
    #[error("key {0:?} starts with '_', which is reserved for runcore's own keys (_step, _runtime, _timestamp); rename it")]
    ReservedKey(String),
    #[error("value of {key:?} has no kind set; set one of double_value, int_value, bool_value, string_value, map_value, list_value, histogram, media, null_value")]
    Empty { key: String },
    #[error("value of {key:?} is nested deeper than {MAX_DEPTH} levels")]
    TooDeep { key: String },
    #[error("histogram {key:?}: {problem}")]
    Histogram { key: String, problem: String },
    #[error("media {key:?}: {problem}")]
    Media { key: String, problem: String },
}

/// Checks a top-level log key.
pub fn check_key(key: &str) -> Result<(), ValueError> {
    if key.is_empty() {
        return Err(ValueError::EmptyKey);
    }
    if key.starts_with('_') {
        return Err(ValueError::ReservedKey(key.to_owned()));
    }
    Ok(())
}

/// Checks a value's shape (recursively) without changing it.
pub fn check_value(key: &str, value: &Value) -> Result<(), ValueError> {
    check_depth(key, value, 0)
}

fn check_depth(key: &str, value: &Value, depth: usize) -> Result<(), ValueError> {
    if depth > MAX_DEPTH {
        return Err(ValueError::TooDeep {
            key: key.to_owned(),
        });
    }
    match &value.kind {
        None => Err(ValueError::Empty {
            key: key.to_owned(),
        }),
        Some(Kind::MapValue(m)) => m
            .fields
            .values()
            .try_for_each(|v| check_depth(key, v, depth + 1)),
        Some(Kind::ListValue(l)) => l
            .values
            .iter()
            .try_for_each(|v| check_depth(key, v, depth + 1)),
        Some(Kind::Histogram(h)) => check_histogram(key, h),
        Some(Kind::Media(m)) if m.path.is_empty() => Err(ValueError::Media {
            key: key.to_owned(),
            problem: "path is empty; give the path of the file to log".into(),
        }),
        Some(_) => Ok(()),
    }
}

fn check_histogram(key: &str, h: &Histogram) -> Result<(), ValueError> {
    let bad = |problem: String| ValueError::Histogram {
        key: key.to_owned(),
        problem,
    };
    if !h.values.is_empty() {
        if !h.bins.is_empty() || !h.counts.is_empty() {
            return Err(bad(
                "give either raw values or bins with counts, not both".into()
            ));
        }
        if h.num_bins as usize > MAX_HISTOGRAM_BINS {
            return Err(bad(format!(
                "num_bins {} is over the limit of {MAX_HISTOGRAM_BINS}",
                h.num_bins
            )));
        }
        return Ok(());
    }
    if h.counts.is_empty() {
        return Err(bad("no data: give raw values, or bins with counts".into()));
    }
    if h.counts.len() > MAX_HISTOGRAM_BINS {
        return Err(bad(format!(
            "{} bins is over the limit of {MAX_HISTOGRAM_BINS}",
            h.counts.len()
        )));
    }
    if h.bins.len() != h.counts.len() + 1 {
        return Err(bad(format!(
            "{} counts need {} bin edges, got {}",
            h.counts.len(),
            h.counts.len() + 1,
            h.bins.len()
        )));
    }
    if h.bins.windows(2).any(|w| w[0] > w[1] || w[0].is_nan()) {
        return Err(bad("bin edges must be increasing numbers".into()));
    }
    Ok(())
}

/// Turns raw histogram values into bins and counts, in place, recursively.
/// Non-finite values are left out of the bins.
pub fn bin_histograms(value: &mut Value) {
    match &mut value.kind {
        Some(Kind::Histogram(h)) if !h.values.is_empty() => {
            let bins = if h.num_bins == 0 {
                DEFAULT_HISTOGRAM_BINS
            } else {
                h.num_bins
            };
            let (edges, counts) = bin(&h.values, bins as usize);
            *h = Histogram {
                bins: edges,
                counts,
                values: Vec::new(),
                num_bins: 0,
            };
        }
        Some(Kind::MapValue(m)) => m.fields.values_mut().for_each(bin_histograms),
        Some(Kind::ListValue(l)) => l.values.iter_mut().for_each(bin_histograms),
        _ => {}
    }
}

fn bin(values: &[f64], bins: usize) -> (Vec<f64>, Vec<i64>) {
    let finite = || values.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return (vec![0.0, 1.0], vec![0]);
    }
    let (lo, hi) = if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let width = (hi - lo) / bins as f64;
    let edges = (0..=bins).map(|i| lo + width * i as f64).collect();
    let mut counts = vec![0i64; bins];
    for v in finite() {
        let i = (((v - lo) / width) as usize).min(bins - 1);
        counts[i] += 1;
    }
    (edges, counts)
}

/// Media values' W&B `_type` tag.
fn media_type(kind: i32) -> &'static str {
    match MediaKind::try_from(kind).unwrap_or(MediaKind::File) {
        MediaKind::Image => "image-file",
        MediaKind::Audio => "audio-file",
        MediaKind::Video => "video-file",
        MediaKind::Unspecified | MediaKind::File => "file",
    }
}

fn media_kind(tag: &str) -> Option<MediaKind> {
    Some(match tag {
        "image-file" => MediaKind::Image,
        "audio-file" => MediaKind::Audio,
        "video-file" => MediaKind::Video,
        "file" => MediaKind::File,
        _ => return None,
    })
}

/// Media directory name under files/media/ for a kind.
pub fn media_dir(kind: i32) -> &'static str {
    match MediaKind::try_from(kind).unwrap_or(MediaKind::File) {
        MediaKind::Image => "images",
        MediaKind::Audio => "audio",
        MediaKind::Video => "videos",
        MediaKind::Unspecified | MediaKind::File => "other",
    }
}

// ---------------------------------------------------------------------------------
// JSON out

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

// ---------------------------------------------------------------------------------
// JSON in

/// Why a JSON document could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid JSON at byte {at}: {problem}")]
pub struct JsonError {
    at: usize,
    problem: &'static str,
}

/// Parses one JSON value, accepting Python's NaN/Infinity tokens, into a [`Value`].
/// Objects tagged `_type: histogram` or a media type come back as those kinds.
pub fn parse_json(text: &str) -> Result<Value, JsonError> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("trailing characters"));
    }
    Ok(v)
}

/// Parses a JSON object into a map.
pub fn parse_json_map(text: &str) -> Result<BTreeMap<String, Value>, JsonError> {
    match parse_json(text)?.kind {
        Some(Kind::MapValue(m)) => Ok(m.fields),
        _ => Err(JsonError {
            at: 0,
            problem: "expected an object",
        }),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

fn kind(k: Kind) -> Value {
    Value { kind: Some(k) }
}

impl Parser<'_> {
    fn err(&self, problem: &'static str) -> JsonError {
        JsonError {
            at: self.i,
            problem,
        }
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\n' | b'\r' | b'\t') {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH * 2 {
            return Err(self.err("nested too deep"));
        }
        self.ws();
        let Some(&c) = self.s.get(self.i) else {
            return Err(self.err("unexpected end"));
        };
        match c {
            b'{' => self.object(depth),
            b'[' => {
                self.i += 1;
                let mut values = Vec::new();
                self.ws();
                if self.eat("]") {
                    return Ok(kind(Kind::ListValue(ListValue { values })));
                }
                loop {
                    values.push(self.value(depth + 1)?);
                    self.ws();
                    if self.eat("]") {
                        return Ok(kind(Kind::ListValue(ListValue { values })));
                    }
                    if !self.eat(",") {
                        return Err(self.err("expected ',' or ']'"));
                    }
                }
            }
            b'"' => Ok(kind(Kind::StringValue(self.string()?))),
            b't' if self.eat("true") => Ok(kind(Kind::BoolValue(true))),
            b'f' if self.eat("false") => Ok(kind(Kind::BoolValue(false))),
            b'n' if self.eat("null") => Ok(kind(Kind::NullValue(true))),
            b'N' if self.eat("NaN") => Ok(kind(Kind::DoubleValue(f64::NAN))),
            b'I' if self.eat("Infinity") => Ok(kind(Kind::DoubleValue(f64::INFINITY))),
            b'-' if self.eat("-Infinity") => Ok(kind(Kind::DoubleValue(f64::NEG_INFINITY))),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(self.err("unexpected character")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.i += 1;
        let mut fields = BTreeMap::new();
        self.ws();
        if !self.eat("}") {
            loop {
                self.ws();
                if self.s.get(self.i) != Some(&b'"') {
                    return Err(self.err("expected a key"));
                }
                let k = self.string()?;
                self.ws();
                if !self.eat(":") {
                    return Err(self.err("expected ':'"));
                }
                let v = self.value(depth + 1)?;
                fields.insert(k, v);
                self.ws();
                if self.eat("}") {
                    break;
                }
                if !self.eat(",") {
                    return Err(self.err("expected ',' or '}'"));
                }
            }
        }
        Ok(tagged(fields))
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i] != b'"' && self.s[self.i] != b'\\' {
                self.i += 1;
            }
            // The input is a &str and we stopped at ASCII, so this slice is valid UTF-8.
            out.push_str(
                std::str::from_utf8(&self.s[start..self.i]).map_err(|_| self.err("bad UTF-8"))?,
            );
            match self.s.get(self.i) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(_) => {
                    self.i += 1;
                    let esc = *self.s.get(self.i).ok_or_else(|| self.err("bad escape"))?;
                    self.i += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&hi) && self.eat("\\u") {
                                let lo = self.hex4()?;
                                0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF)
                            } else {
                                hi
                            };
                            out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                        }
                        _ => return Err(self.err("bad escape")),
                    }
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .s
            .get(self.i..self.i + 4)
            .ok_or_else(|| self.err("bad \\u escape"))?;
        let text = std::str::from_utf8(digits).map_err(|_| self.err("bad \\u escape"))?;
        let v = u32::from_str_radix(text, 16).map_err(|_| self.err("bad \\u escape"))?;
        self.i += 4;
        Ok(v)
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.i;
        let mut float = false;
        while let Some(&c) = self.s.get(self.i) {
            match c {
                b'0'..=b'9' | b'-' | b'+' => {}
                b'.' | b'e' | b'E' => float = true,
                _ => break,
            }
            self.i += 1;
        }
        let text =
            std::str::from_utf8(&self.s[start..self.i]).map_err(|_| self.err("bad number"))?;
        if !float {
            if let Ok(v) = text.parse::<i64>() {
                return Ok(kind(Kind::IntValue(v)));
            }
        }
        text.parse::<f64>()
            .map(|v| kind(Kind::DoubleValue(v)))
            .map_err(|_| JsonError {
                at: start,
                problem: "bad number",
            })
    }
}

/// Rebuilds histogram and media values from their `_type`-tagged JSON objects.
fn tagged(fields: BTreeMap<String, Value>) -> Value {
    let tag = match fields.get("_type").and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(t)) => t.clone(),
        _ => return kind(Kind::MapValue(MapValue { fields })),
    };
    if tag == "histogram" {
        let nums = |v: Option<&Value>| -> Vec<f64> {
            match v.and_then(|v| v.kind.as_ref()) {
                Some(Kind::ListValue(l)) => l.values.iter().filter_map(as_f64).collect(),
                _ => Vec::new(),
            }
        };
        let bins = nums(fields.get("bins"));
        let counts = nums(fields.get("values"))
            .into_iter()
            .map(|c| c as i64)
            .collect();
        return kind(Kind::Histogram(Histogram {
            bins,
            counts,
            values: Vec::new(),
            num_bins: 0,
        }));
    }
    if let Some(media) = media_kind(&tag) {
        let text = |k: &str| match fields.get(k).and_then(|v| v.kind.as_ref()) {
            Some(Kind::StringValue(s)) => s.clone(),
            _ => String::new(),
        };
        return kind(Kind::Media(Media {
            path: text("path"),
            kind: media as i32,
            caption: text("caption"),
        }));
    }
    kind(Kind::MapValue(MapValue { fields }))
}

/// A numeric value as f64 (ints widen), else None.
pub fn as_f64(v: &Value) -> Option<f64> {
    match v.kind {
        Some(Kind::DoubleValue(x)) => Some(x),
        Some(Kind::IntValue(x)) => Some(x as f64),
        _ => None,
    }
}

/// A double value.
pub fn double(v: f64) -> Value {
    kind(Kind::DoubleValue(v))
}

/// An int value.
pub fn int(v: i64) -> Value {
    kind(Kind::IntValue(v))
}

/// A string value.
pub fn string(v: impl Into<String>) -> Value {
    kind(Kind::StringValue(v.into()))
}

/// A map value.
pub fn map(fields: BTreeMap<String, Value>) -> Value {
    kind(Kind::MapValue(MapValue { fields }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: &Value) -> Value {
        let mut s = String::new();
        write_json(&mut s, v);
        parse_json(&s).unwrap()
    }

    #[test]
    fn special_floats_round_trip_as_python_tokens() {
        let mut m = BTreeMap::new();
        m.insert("nan".to_string(), double(f64::NAN));
        m.insert("inf".to_string(), double(f64::INFINITY));
        m.insert("ninf".to_string(), double(f64::NEG_INFINITY));
        m.insert("x".to_string(), double(0.1));
        let text = map_to_json(&m);
        assert_eq!(
            text,
            "{\"inf\":Infinity,\"nan\":NaN,\"ninf\":-Infinity,\"x\":0.1}\n"
        );
        let back = parse_json_map(&text).unwrap();
        assert!(as_f64(&back["nan"]).unwrap().is_nan());
        assert_eq!(as_f64(&back["ninf"]), Some(f64::NEG_INFINITY));
        assert_eq!(as_f64(&back["x"]), Some(0.1));
    }

    #[test]
    fn strings_escape_and_unescape() {
        let v = string("a\"b\\c\nd\u{1}é😀");
        let mut s = String::new();
        write_json(&mut s, &v);
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é😀\"");
        assert_eq!(round_trip(&v), v);
        assert_eq!(parse_json("\"\\ud83d\\ude00\"").unwrap(), string("😀"));
    }

    #[test]
    fn histograms_and_media_keep_their_kind() {
        let mut h = kind(Kind::Histogram(Histogram {
            values: vec![0.0, 1.0, 1.0, 2.0, f64::NAN],
            num_bins: 2,
            ..Default::default()
        }));
        bin_histograms(&mut h);
        let Some(Kind::Histogram(hist)) = &h.kind else {
            panic!("not a histogram")
        };
        assert_eq!(hist.bins, vec![0.0, 1.0, 2.0]);
        assert_eq!(hist.counts, vec![1, 3]);
        assert_eq!(round_trip(&h), h);
        let m = kind(Kind::Media(Media {
            path: "media/images/a_0.png".into(),
            kind: MediaKind::Image as i32,
            caption: "c".into(),
        }));
        assert_eq!(round_trip(&m), m);
    }

    #[test]
    fn ints_stay_ints_and_bad_json_is_refused() {
        assert_eq!(parse_json("-12").unwrap(), int(-12));
        assert_eq!(parse_json("1e3").unwrap(), double(1000.0));
        assert!(parse_json("{\"a\":}").is_err());
        assert!(parse_json("[1,2").is_err());
        assert!(parse_json("1 2").is_err());
    }

    #[test]
    fn keys_and_shapes_are_checked() {
        assert_eq!(check_key(""), Err(ValueError::EmptyKey));
        assert!(matches!(check_key("_x"), Err(ValueError::ReservedKey(_))));
        assert!(check_key("a/b.c").is_ok());
        let bad = kind(Kind::Histogram(Histogram {
            bins: vec![0.0, 1.0],
            counts: vec![1, 2],
            ..Default::default()
        }));
        assert!(matches!(
            check_value("h", &bad),
            Err(ValueError::Histogram { .. })
        ));
        assert!(matches!(
            check_value("e", &Value { kind: None }),
            Err(ValueError::Empty { .. })
        ));
    }
}

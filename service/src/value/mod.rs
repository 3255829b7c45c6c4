//! Logged values: validation, histogram binning, and the JSON form the local store
//! writes (and reads back).
//!
//! The store's JSON follows Python's `json` module so that W&B users' tools read it
//! as they are: NaN and the infinities are written as the bare tokens `NaN`,
//! `Infinity` and `-Infinity`, which `json.loads` accepts. Histograms and media are
//! objects tagged with `_type`, as W&B writes them.
//!
//! `validate.rs` checks keys and values, `histogram.rs` bins raw values, `json.rs`
//! writes the store's JSON and `parse.rs` reads it back.

mod histogram;
mod json;
mod parse;
mod validate;

use std::collections::BTreeMap;

pub use self::histogram::{bin_histograms, DEFAULT_HISTOGRAM_BINS, MAX_HISTOGRAM_BINS};
pub use self::json::{
    map_to_json, write_events_line, write_history_line, write_json, write_json_f64,
    write_json_object, write_json_str,
};
use self::parse::kind;
pub use self::parse::{parse_json, parse_json_map, JsonError};
pub use self::validate::{check_key, check_name, check_value, ValueError, MAX_DEPTH};
use crate::proto::v1::{value::Kind, MapValue, MediaKind, Value};

/// The fields of a media value's JSON object that are not its `extra`.
const MEDIA_FIELDS: &[&str] = &["_type", "path", "caption", "sha256", "size"];

/// Media values' W&B `_type` tag.
pub fn media_type(kind: i32) -> &'static str {
    match MediaKind::try_from(kind).unwrap_or(MediaKind::File) {
        MediaKind::Image => "image-file",
        MediaKind::Audio => "audio-file",
        MediaKind::Video => "video-file",
        MediaKind::Table => "table-file",
        MediaKind::Html => "html-file",
        MediaKind::Object3d => "object3D-file",
        MediaKind::Unspecified | MediaKind::File => "file",
    }
}

fn media_kind(tag: &str) -> Option<MediaKind> {
    Some(match tag {
        "image-file" => MediaKind::Image,
        "audio-file" => MediaKind::Audio,
        "video-file" => MediaKind::Video,
        "table-file" => MediaKind::Table,
        "html-file" => MediaKind::Html,
        "object3D-file" => MediaKind::Object3d,
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
        MediaKind::Table => "table",
        MediaKind::Html => "html",
        MediaKind::Object3d => "object3D",
        MediaKind::Unspecified | MediaKind::File => "other",
    }
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
    use super::histogram::*;
    use super::*;
    use crate::proto::v1::{Histogram, Media};

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
            sha256: "ab".repeat(32),
            size: 12,
            extra: BTreeMap::from([("width".to_string(), int(4))]),
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
            check_value("h", &bad, &mut 0),
            Err(ValueError::Histogram { .. })
        ));
        assert!(matches!(
            check_value("e", &Value { kind: None }, &mut 0),
            Err(ValueError::Empty { .. })
        ));
    }
}

//! Checking logged keys and values before they reach a run.

use super::MAX_HISTOGRAM_BINS;
use crate::proto::v1::{value::Kind, Histogram, Value};

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

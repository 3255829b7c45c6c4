//! Checking logged keys and values before they reach a run.

use super::MAX_HISTOGRAM_BINS;
pub use crate::limits::MAX_DEPTH;
use crate::limits::{quote, MAX_NESTED_ENTRIES};
use crate::proto::v1::{value::Kind, Histogram, Value};

/// Why a value or key was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ValueError {
    #[error("key is empty; give every logged value a non-empty name")]
    EmptyKey,
    #[error("key {} starts with '_', which is reserved for runcore's own keys (_step, _runtime, _timestamp); rename it", quote(.0))]
    ReservedKey(String),
    #[error("key {} holds a control character (NUL, newline, escape, ...); use printable characters", quote(.0))]
    ControlCharacter(String),
    #[error("value of {} has no kind set; set one of double_value, int_value, bool_value, string_value, map_value, list_value, histogram, media, null_value", quote(.key))]
    Empty { key: String },
    #[error("value of {} is nested deeper than {MAX_DEPTH} maps or lists; flatten it", quote(.key))]
    TooDeep { key: String },
    #[error("value of {} holds more than {MAX_NESTED_ENTRIES} entries (map entries and list elements, all levels); log it in parts", quote(.key))]
    TooManyEntries { key: String },
    #[error("histogram {}: {problem}", quote(.key))]
    Histogram { key: String, problem: String },
    #[error("media {}: {problem}", quote(.key))]
    Media { key: String, problem: String },
}

impl ValueError {
    /// Whether the value is refused for its size rather than its shape.
    pub fn is_too_large(&self) -> bool {
        matches!(self, ValueError::TooManyEntries { .. })
    }
}

/// Checks a name a client gives (a key at any level, a metric name): no control
/// characters.
pub fn check_name(key: &str) -> Result<(), ValueError> {
    if key.chars().any(char::is_control) {
        return Err(ValueError::ControlCharacter(key.to_owned()));
    }
    Ok(())
}

/// Checks a top-level log key.
pub fn check_key(key: &str) -> Result<(), ValueError> {
    if key.is_empty() {
        return Err(ValueError::EmptyKey);
    }
    if key.starts_with('_') {
        return Err(ValueError::ReservedKey(key.to_owned()));
    }
    check_name(key)
}

/// Checks a value's shape (recursively) without changing it; returns how many
/// map entries and list elements it holds, all levels. `entries` is what the
/// request's other values already hold, counted against [`MAX_NESTED_ENTRIES`].
pub fn check_value(key: &str, value: &Value, entries: &mut usize) -> Result<(), ValueError> {
    check_depth(key, value, 0, entries)
}

/// `containers`: the maps and lists around `value`. At most [`MAX_DEPTH`] are
/// accepted, which keeps every accepted value readable from the log (see
/// `crate::limits`).
fn check_depth(
    key: &str,
    value: &Value,
    containers: usize,
    entries: &mut usize,
) -> Result<(), ValueError> {
    let mut inside = |n: usize| {
        *entries += n;
        if *entries > MAX_NESTED_ENTRIES {
            return Err(ValueError::TooManyEntries {
                key: key.to_owned(),
            });
        }
        if containers >= MAX_DEPTH {
            return Err(ValueError::TooDeep {
                key: key.to_owned(),
            });
        }
        Ok(())
    };
    match &value.kind {
        None => Err(ValueError::Empty {
            key: key.to_owned(),
        }),
        Some(Kind::MapValue(m)) => {
            inside(m.fields.len())?;
            m.fields.iter().try_for_each(|(k, v)| {
                check_name(k)?;
                check_depth(key, v, containers + 1, entries)
            })
        }
        Some(Kind::ListValue(l)) => {
            inside(l.values.len())?;
            l.values
                .iter()
                .try_for_each(|v| check_depth(key, v, containers + 1, entries))
        }
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
    if h.bins.iter().any(|b| !b.is_finite()) {
        return Err(bad(
            "bin edges must be finite numbers (no NaN or infinity)".into()
        ));
    }
    if h.bins.windows(2).any(|w| w[0] > w[1]) {
        return Err(bad("bin edges must be increasing numbers".into()));
    }
    if h.counts.iter().any(|c| *c < 0) {
        return Err(bad("counts must be >= 0".into()));
    }
    Ok(())
}

//! The value rules: Python objects to `runcore.v1.Value` and back.
//!
//! The same rules as `runcore._values.fill` / `from_value`, with the common types
//! (float, bool, int, str, None, mappings, lists, tuples) handled here and everything
//! else handed to `runcore._values.native_fallback`, which knows numpy, torch and
//! matplotlib without this crate linking against them.

use std::collections::BTreeMap;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple};
use pyo3::{intern, IntoPyObjectExt};
use runcore_client::proto::{self, value::Kind};

/// Deepest nesting of dicts and lists in one value (the sidecar's limit).
const MAX_DEPTH: usize = 32;

/// `runcore._values.native_fallback`, looked up once.
static FALLBACK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `repr(key)`, as the Python client writes keys in its messages.
pub(crate) fn key_repr(py: Python<'_>, key: &str) -> String {
    PyString::new(py, key)
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| format!("'{key}'"))
}

/// `v` as a `Value`; `key` is the logged key the value belongs to, for messages.
pub(crate) fn to_value(key: &str, v: &Bound<'_, PyAny>) -> PyResult<proto::Value> {
    Ok(proto::Value {
        kind: Some(to_kind(key, v, 0)?),
    })
}

/// A `map<string, Value>` from a dict of plain values, its keys checked as
/// `runcore._values.map_to_proto` checks them (`what` names the map in messages).
pub(crate) fn to_value_map(
    v: &Bound<'_, PyAny>,
    what: &str,
) -> PyResult<BTreeMap<String, proto::Value>> {
    let mut out = BTreeMap::new();
    for (k, x) in mapping_items(v)? {
        let key = match k.cast::<PyString>() {
            Ok(s) => s.to_cow()?.into_owned(),
            Err(_) => String::new(),
        };
        if key.is_empty() {
            return Err(PyValueError::new_err(format!(
                "{what} keys must be non-empty str, got {}",
                k.repr()?
            )));
        }
        let value = to_value(&key, &x)?;
        out.insert(key, value);
    }
    Ok(out)
}

fn to_kind(key: &str, v: &Bound<'_, PyAny>, depth: usize) -> PyResult<Kind> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "cannot log {}: nested deeper than {MAX_DEPTH} levels",
            key_repr(v.py(), key)
        )));
    }
    // Exact types first: they are nearly every value logged.
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(Kind::DoubleValue(f.value()));
    }
    if let Ok(b) = v.cast_exact::<PyBool>() {
        return Ok(Kind::BoolValue(b.is_true()));
    }
    if v.is_exact_instance_of::<PyInt>() {
        return int_kind(v);
    }
    if v.is_exact_instance_of::<PyString>() {
        return Ok(Kind::StringValue(
            v.cast::<PyString>()?.to_cow()?.into_owned(),
        ));
    }
    if v.is_none() {
        return Ok(Kind::NullValue(true));
    }
    if v.is_instance_of::<PyDict>() || v.cast::<PyMapping>().is_ok() {
        return map_kind(key, v, depth);
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let mut values = Vec::with_capacity(v.len()?);
        for x in v.try_iter()? {
            values.push(proto::Value {
                kind: Some(to_kind(key, &x?, depth + 1)?),
            });
        }
        return Ok(Kind::ListValue(proto::ListValue { values }));
    }
    if let Some(kind) = native_kind(v)? {
        return Ok(kind);
    }
    foreign_kind(key, v, depth)
}

/// An int that fits int64 as itself, a larger one as a double (as the Python client).
fn int_kind(v: &Bound<'_, PyAny>) -> PyResult<Kind> {
    match v.extract::<i64>() {
        Ok(i) => Ok(Kind::IntValue(i)),
        Err(_) => Ok(Kind::DoubleValue(v.extract::<f64>()?)),
    }
}

fn map_kind(key: &str, v: &Bound<'_, PyAny>, depth: usize) -> PyResult<Kind> {
    let mut fields = BTreeMap::new();
    for (k, x) in mapping_items(v)? {
        let name = nested_key(key, &k)?;
        fields.insert(
            name,
            proto::Value {
                kind: Some(to_kind(key, &x, depth + 1)?),
            },
        );
    }
    Ok(Kind::MapValue(proto::MapValue { fields }))
}

/// The `(key, value)` pairs of a dict or any other Mapping (through its `items()`).
pub(crate) fn mapping_items<'py>(
    v: &Bound<'py, PyAny>,
) -> PyResult<Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
    if let Ok(d) = v.cast::<PyDict>() {
        return Ok(d.iter().collect());
    }
    v.call_method0(intern!(v.py(), "items"))?
        .try_iter()?
        .map(|item| item?.extract())
        .collect()
}

/// A nested dict key as a str: numbers and None as `str(k)`, bools lower-case
/// (JSON's spelling), anything else refused.
fn nested_key(key: &str, k: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = k.cast::<PyString>() {
        return Ok(s.to_cow()?.into_owned());
    }
    if let Ok(b) = k.cast::<PyBool>() {
        return Ok(if b.is_true() { "true" } else { "false" }.to_owned());
    }
    if k.is_instance_of::<PyInt>() || k.is_instance_of::<PyFloat>() || k.is_none() {
        return Ok(k.str()?.to_cow()?.into_owned());
    }
    Err(PyValueError::new_err(format!(
        "cannot log {}: a nested key has type {}; keys must be str",
        key_repr(k.py(), key),
        k.get_type().name()?
    )))
}

/// Histograms and media: objects with a `_to_native()` method returning one of
/// `("histogram", values, num_bins)`, `("histogram_bins", counts, bins)` or
/// `("media", path, kind, caption, extra)`.
fn native_kind(v: &Bound<'_, PyAny>) -> PyResult<Option<Kind>> {
    let py = v.py();
    let Ok(method) = v.getattr(intern!(py, "_to_native")) else {
        return Ok(None);
    };
    let parts = method.call0()?;
    let parts = parts.cast::<PyTuple>().map_err(|_| {
        PyValueError::new_err(format!(
            "{}._to_native() must return a tuple",
            v.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    let tag: String = parts.get_item(0)?.extract()?;
    let kind = match tag.as_str() {
        "histogram" => Kind::Histogram(proto::Histogram {
            values: parts.get_item(1)?.extract()?,
            num_bins: parts.get_item(2)?.extract()?,
            ..Default::default()
        }),
        "histogram_bins" => Kind::Histogram(proto::Histogram {
            counts: parts.get_item(1)?.extract()?,
            bins: parts.get_item(2)?.extract()?,
            ..Default::default()
        }),
        "media" => {
            let extra = parts.get_item(4)?;
            Kind::Media(proto::Media {
                path: parts.get_item(1)?.extract()?,
                kind: parts.get_item(2)?.extract()?,
                caption: parts.get_item(3)?.extract()?,
                extra: if extra.is_none() {
                    BTreeMap::new()
                } else {
                    to_value_map(&extra, "media")?
                },
                ..Default::default()
            })
        }
        other => {
            return Err(PyValueError::new_err(format!(
                "_to_native() returned an unknown kind {other:?}"
            )))
        }
    };
    Ok(Some(kind))
}

/// Anything else: `runcore._values.native_fallback(key, value)` turns it into a
/// plain value or an object with `_to_native`, or raises the user's ValueError.
fn foreign_kind(key: &str, v: &Bound<'_, PyAny>, depth: usize) -> PyResult<Kind> {
    let py = v.py();
    let fallback = FALLBACK.import(py, "runcore._values", "native_fallback")?;
    let plain = fallback.call1((key, v))?;
    if plain.is(v) {
        // A fallback that hands the object back unchanged would loop forever.
        return Err(PyValueError::new_err(format!(
            "cannot log {}: values of type {} are not supported",
            key_repr(py, key),
            v.get_type().name()?
        )));
    }
    to_kind(key, &plain, depth)
}

/// A wire value as plain Python, in the local store's JSON shape (`from_value`).
pub(crate) fn from_value<'py>(py: Python<'py>, v: &proto::Value) -> PyResult<Bound<'py, PyAny>> {
    let Some(kind) = &v.kind else {
        return Ok(py.None().into_bound(py));
    };
    match kind {
        Kind::DoubleValue(f) => f.into_bound_py_any(py),
        Kind::IntValue(i) => i.into_bound_py_any(py),
        Kind::BoolValue(b) => b.into_bound_py_any(py),
        Kind::StringValue(s) => s.into_bound_py_any(py),
        Kind::NullValue(_) => Ok(py.None().into_bound(py)),
        Kind::MapValue(m) => from_value_map(py, &m.fields).map(Bound::into_any),
        Kind::ListValue(l) => {
            let items = l
                .values
                .iter()
                .map(|x| from_value(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            Ok(PyList::new(py, items)?.into_any())
        }
        Kind::Histogram(h) => {
            let out = PyDict::new(py);
            out.set_item("_type", "histogram")?;
            out.set_item("bins", &h.bins)?;
            out.set_item("values", &h.counts)?;
            Ok(out.into_any())
        }
        Kind::Media(m) => {
            let out = PyDict::new(py);
            out.set_item("_type", media_type(m.kind))?;
            out.set_item("path", &m.path)?;
            if !m.caption.is_empty() {
                out.set_item("caption", &m.caption)?;
            }
            Ok(out.into_any())
        }
    }
}

/// A `map<string, Value>` as a dict of plain values.
pub(crate) fn from_value_map<'py>(
    py: Python<'py>,
    fields: &BTreeMap<String, proto::Value>,
) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    for (k, x) in fields {
        out.set_item(k, from_value(py, x)?)?;
    }
    Ok(out)
}

/// The `_type` W&B writes for a media file of this kind.
fn media_type(kind: i32) -> &'static str {
    match proto::MediaKind::try_from(kind) {
        Ok(proto::MediaKind::Image) => "image-file",
        Ok(proto::MediaKind::Audio) => "audio-file",
        Ok(proto::MediaKind::Video) => "video-file",
        _ => "file",
    }
}

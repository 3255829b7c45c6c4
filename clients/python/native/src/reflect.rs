//! Requests from dicts and responses as namespaces, by field name, through the
//! runcore.v1 descriptors: the Python client calls any RunService method without
//! generated Python code.
//!
//! Fields of type `runcore.v1.Value` take and give plain Python values under the
//! value rules of `values`.

use std::collections::HashMap;
use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{
    DescriptorPool, DynamicMessage, EnumDescriptor, FieldDescriptor, Kind, MapKey,
    MessageDescriptor, MethodDescriptor, ReflectMessage, Value,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyMapping, PyString};
use pyo3::IntoPyObjectExt;
use runcore_client::{proto, FILE_DESCRIPTOR_SET};

use crate::values;

const SERVICE: &str = "runcore.v1.RunService";
const VALUE_MESSAGE: &str = "runcore.v1.Value";

static POOL: OnceLock<DescriptorPool> = OnceLock::new();
static SIMPLE_NAMESPACE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn pool() -> &'static DescriptorPool {
    POOL.get_or_init(|| {
        // The descriptor set is generated from proto/ by this crate's own build: it
        // decodes unless the build itself is broken.
        DescriptorPool::decode(FILE_DESCRIPTOR_SET).expect("runcore.v1 descriptor set decodes")
    })
}

/// The RunService method named `name` ("Init", "GetRun", ...).
pub(crate) fn method(name: &str) -> PyResult<MethodDescriptor> {
    pool()
        .get_service_by_name(SERVICE)
        .and_then(|service| service.methods().find(|m| m.name() == name))
        .ok_or_else(|| PyValueError::new_err(format!("{SERVICE} has no method {name:?}")))
}

/// `{name: number}` of a runcore.v1 enum ("runcore.v1.RunState").
pub(crate) fn enum_values<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
    let desc = pool()
        .get_enum_by_name(name)
        .ok_or_else(|| PyValueError::new_err(format!("no enum named {name:?} in runcore.v1")))?;
    let out = PyDict::new(py);
    for value in desc.values() {
        out.set_item(value.name(), value.number())?;
    }
    Ok(out)
}

/// A request message of type `desc` from a dict of field name -> value, encoded.
pub(crate) fn encode_request(
    desc: MessageDescriptor,
    request: &Bound<'_, PyAny>,
) -> PyResult<Vec<u8>> {
    Ok(message_from_dict(desc, request)?.encode_to_vec())
}

fn message_from_dict(desc: MessageDescriptor, dict: &Bound<'_, PyAny>) -> PyResult<DynamicMessage> {
    if desc.full_name() == VALUE_MESSAGE {
        return value_message(desc, "value", dict);
    }
    let mut message = DynamicMessage::new(desc.clone());
    if dict.cast::<PyMapping>().is_err() {
        return Err(PyValueError::new_err(format!(
            "{} must be given as a dict, not {}",
            desc.full_name(),
            type_name(dict)
        )));
    }
    for (name, v) in values::mapping_items(dict)? {
        let name: String = name.extract()?;
        let field = desc.get_field_by_name(&name).ok_or_else(|| {
            PyValueError::new_err(format!("{} has no field {name:?}", desc.full_name()))
        })?;
        if v.is_none() {
            continue;
        }
        let value = field_value(&field, &v)?;
        message.set_field(&field, value);
    }
    Ok(message)
}

fn field_value(field: &FieldDescriptor, v: &Bound<'_, PyAny>) -> PyResult<Value> {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            unreachable!("a map field's kind is its entry message")
        };
        let (key_field, value_field) = (entry.map_entry_key_field(), entry.map_entry_value_field());
        let mut map = HashMap::new();
        if v.cast::<PyMapping>().is_err() {
            return Err(wrong_type(field, "a dict", v));
        }
        for (k, x) in values::mapping_items(v)? {
            let key = map_key(field, &key_field.kind(), &k)?;
            let value = match (value_field.kind(), key.as_str()) {
                (Kind::Message(m), Some(name)) if m.full_name() == VALUE_MESSAGE => {
                    Value::Message(value_message(m, name, &x)?)
                }
                (kind, _) => single_value(field, &kind, &x)?,
            };
            map.insert(key, value);
        }
        return Ok(Value::Map(map));
    }
    if field.is_list() {
        if v.is_instance_of::<PyString>() || v.is_instance_of::<PyBytes>() {
            return Err(wrong_type(field, "a list", v));
        }
        let kind = field.kind();
        let items = v
            .try_iter()
            .map_err(|_| wrong_type(field, "a list", v))?
            .map(|x| single_value(field, &kind, &x?))
            .collect::<PyResult<Vec<_>>>()?;
        return Ok(Value::List(items));
    }
    single_value(field, &field.kind(), v)
}

fn map_key(field: &FieldDescriptor, kind: &Kind, k: &Bound<'_, PyAny>) -> PyResult<MapKey> {
    let key = match kind {
        Kind::String => MapKey::String(k.extract().map_err(|_| wrong_type(field, "str keys", k))?),
        Kind::Bool => MapKey::Bool(k.extract()?),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => MapKey::I32(k.extract()?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => MapKey::I64(k.extract()?),
        Kind::Uint32 | Kind::Fixed32 => MapKey::U32(k.extract()?),
        _ => MapKey::U64(k.extract()?),
    };
    Ok(key)
}

fn single_value(field: &FieldDescriptor, kind: &Kind, v: &Bound<'_, PyAny>) -> PyResult<Value> {
    let value = match kind {
        Kind::Double => Value::F64(v.extract().map_err(|_| wrong_type(field, "a float", v))?),
        Kind::Float => Value::F32(v.extract().map_err(|_| wrong_type(field, "a float", v))?),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32(v.extract().map_err(|_| wrong_type(field, "an int", v))?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64(v.extract().map_err(|_| wrong_type(field, "an int", v))?)
        }
        Kind::Uint32 | Kind::Fixed32 => Value::U32(
            v.extract()
                .map_err(|_| wrong_type(field, "an int >= 0", v))?,
        ),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(
            v.extract()
                .map_err(|_| wrong_type(field, "an int >= 0", v))?,
        ),
        Kind::Bool => Value::Bool(v.extract().map_err(|_| wrong_type(field, "a bool", v))?),
        Kind::String => Value::String(v.extract().map_err(|_| wrong_type(field, "a str", v))?),
        Kind::Bytes => {
            let bytes: Vec<u8> = v.extract().map_err(|_| wrong_type(field, "bytes", v))?;
            Value::Bytes(bytes.into())
        }
        Kind::Enum(e) => Value::EnumNumber(enum_number(field, e, v)?),
        Kind::Message(m) if m.full_name() == VALUE_MESSAGE => {
            Value::Message(value_message(m.clone(), field.name(), v)?)
        }
        Kind::Message(m) => Value::Message(message_from_dict(m.clone(), v)?),
    };
    Ok(value)
}

/// An enum field takes the number or the value's name ("RUN_STATE_RUNNING").
fn enum_number(field: &FieldDescriptor, e: &EnumDescriptor, v: &Bound<'_, PyAny>) -> PyResult<i32> {
    if let Ok(name) = v.cast::<PyString>() {
        let name = name.to_cow()?;
        return e
            .get_value_by_name(&name)
            .map(|x| x.number())
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "{}: {name:?} is not a value of {}",
                    field.full_name(),
                    e.full_name()
                ))
            });
    }
    v.extract()
        .map_err(|_| wrong_type(field, "an int or an enum value's name", v))
}

/// A `runcore.v1.Value` from a plain Python value, under the value rules.
fn value_message(
    desc: MessageDescriptor,
    key: &str,
    v: &Bound<'_, PyAny>,
) -> PyResult<DynamicMessage> {
    let value = values::to_value(key, v)?;
    let mut message = DynamicMessage::new(desc);
    message
        .transcode_from(&value)
        .map_err(|e| PyValueError::new_err(format!("cannot log {key:?}: {e}")))?;
    Ok(message)
}

fn wrong_type(field: &FieldDescriptor, wanted: &str, v: &Bound<'_, PyAny>) -> PyErr {
    PyValueError::new_err(format!(
        "{} takes {wanted}, not {}",
        field.full_name(),
        type_name(v)
    ))
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// A response of type `desc` decoded into a `types.SimpleNamespace` with every
/// field present.
pub(crate) fn decode_response<'py>(
    py: Python<'py>,
    desc: MessageDescriptor,
    bytes: &[u8],
) -> PyResult<Bound<'py, PyAny>> {
    let message = DynamicMessage::decode(desc.clone(), bytes).map_err(|e| {
        pyo3::exceptions::PyRuntimeError::new_err(format!(
            "the sidecar's {} does not decode: {e}",
            desc.full_name()
        ))
    })?;
    message_to_namespace(py, &message)
}

fn message_to_namespace<'py>(
    py: Python<'py>,
    message: &DynamicMessage,
) -> PyResult<Bound<'py, PyAny>> {
    let fields = PyDict::new(py);
    for field in message.descriptor().fields() {
        let value = if field.supports_presence() && !field.is_list() && !message.has_field(&field) {
            py.None().into_bound(py)
        } else {
            to_python(py, &field.kind(), &message.get_field(&field))?
        };
        fields.set_item(field.name(), value)?;
    }
    let namespace = SIMPLE_NAMESPACE.import(py, "types", "SimpleNamespace")?;
    namespace.call((), Some(&fields))
}

fn to_python<'py>(py: Python<'py>, kind: &Kind, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    match value {
        Value::Bool(b) => b.into_bound_py_any(py),
        Value::I32(i) => i.into_bound_py_any(py),
        Value::I64(i) => i.into_bound_py_any(py),
        Value::U32(i) => i.into_bound_py_any(py),
        Value::U64(i) => i.into_bound_py_any(py),
        Value::F32(f) => f.into_bound_py_any(py),
        Value::F64(f) => f.into_bound_py_any(py),
        Value::String(s) => s.into_bound_py_any(py),
        Value::Bytes(b) => Ok(PyBytes::new(py, b).into_any()),
        Value::EnumNumber(n) => n.into_bound_py_any(py),
        Value::Message(m) if m.descriptor().full_name() == VALUE_MESSAGE => {
            let value: proto::Value = m.transcode_to().map_err(|e| {
                pyo3::exceptions::PyRuntimeError::new_err(format!("a Value does not decode: {e}"))
            })?;
            values::from_value(py, &value)
        }
        Value::Message(m) => message_to_namespace(py, m),
        Value::List(items) => {
            let items = items
                .iter()
                .map(|x| to_python(py, kind, x))
                .collect::<PyResult<Vec<_>>>()?;
            Ok(PyList::new(py, items)?.into_any())
        }
        Value::Map(map) => {
            let value_kind = match kind {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                other => other.clone(),
            };
            let out = PyDict::new(py);
            for (k, x) in map {
                out.set_item(map_key_to_python(py, k)?, to_python(py, &value_kind, x)?)?;
            }
            Ok(out.into_any())
        }
    }
}

fn map_key_to_python<'py>(py: Python<'py>, key: &MapKey) -> PyResult<Bound<'py, PyAny>> {
    match key {
        MapKey::Bool(b) => b.into_bound_py_any(py),
        MapKey::I32(i) => i.into_bound_py_any(py),
        MapKey::I64(i) => i.into_bound_py_any(py),
        MapKey::U32(i) => i.into_bound_py_any(py),
        MapKey::U64(i) => i.into_bound_py_any(py),
        MapKey::String(s) => s.into_bound_py_any(py),
    }
}

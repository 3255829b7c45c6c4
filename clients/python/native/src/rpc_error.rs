//! `RpcError`: a failed call to the sidecar, as a Python exception, and back.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};
use runcore_client::{Code, Status};

/// The class is written in Python because a `#[pyclass]` cannot extend `Exception`
/// under the stable ABI before Python 3.12, and this module is built for 3.9+.
const SOURCE: &std::ffi::CStr = c"
class RpcError(Exception):
    \"\"\"A failed call to the sidecar: ``code`` is the gRPC status name
    (\"UNAVAILABLE\", \"NOT_FOUND\", ...), ``details`` the sidecar's message.\"\"\"

    def __init__(self, code, details):
        super().__init__(code, details)
        self.code = code
        self.details = details

    def __str__(self):
        return f\"{self.code}: {self.details}\"
";

static RPC_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The `RpcError` class, made once.
pub(crate) fn rpc_error_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    RPC_ERROR
        .get_or_try_init(py, || {
            let globals = PyDict::new(py);
            // The class's __module__ comes from the defining globals' __name__.
            globals.set_item("__name__", "runcore._native")?;
            py.run(SOURCE, Some(&globals), None)?;
            let class = globals.get_item("RpcError")?.ok_or_else(|| {
                pyo3::exceptions::PyRuntimeError::new_err("RpcError was not defined")
            })?;
            Ok::<_, PyErr>(class.cast_into::<PyType>()?.unbind())
        })
        .map(|class| class.bind(py))
}

/// The `RpcError` a failed call raises.
pub(crate) fn to_py_err(py: Python<'_>, status: &Status) -> PyErr {
    match rpc_error_type(py).and_then(|class| class.call1((status.code_name(), &status.message))) {
        Ok(error) => PyErr::from_value(error),
        Err(e) => e,
    }
}

/// The `Status` an `RpcError` raised by Python code stands for; None for any
/// other exception.
pub(crate) fn from_py_err(py: Python<'_>, error: &PyErr) -> Option<Status> {
    let class = rpc_error_type(py).ok()?;
    let value = error.value(py);
    if !value.is_instance(class).ok()? {
        return None;
    }
    let name: String = value.getattr("code").ok()?.extract().ok()?;
    let message: String = value.getattr("details").ok()?.extract().ok()?;
    Some(Status {
        code: code_named(&name),
        message,
    })
}

/// The gRPC code of a status name; UNKNOWN for a name gRPC does not have.
fn code_named(name: &str) -> Code {
    (0..=16)
        .map(Code::from_i32)
        .find(|&code| {
            let status = Status {
                code,
                message: String::new(),
            };
            status.code_name() == name
        })
        .unwrap_or(Code::Unknown)
}

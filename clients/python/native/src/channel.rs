//! `Channel`: one connection to a sidecar, calling RunService methods by name with
//! dicts in and namespaces out.

use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use runcore_client::Connection;

use crate::{reflect, rpc_error};

const HEALTH_SERVICE: &str = "runcore.v1.RunService";

/// A connection to a sidecar. Making one does no I/O: it connects on the first
/// call and reconnects by itself when the sidecar comes back at the same address.
#[pyclass(frozen, module = "runcore._native")]
pub(crate) struct Channel {
    pub(crate) connection: Connection,
}

#[pymethods]
impl Channel {
    #[new]
    #[pyo3(signature = (address, token = None))]
    fn new(address: &str, token: Option<String>) -> PyResult<Self> {
        let connection =
            Connection::new(address, token).map_err(|e| PyValueError::new_err(e.message))?;
        Ok(Channel { connection })
    }

    #[getter]
    fn address(&self) -> &str {
        self.connection.address()
    }

    /// Calls RunService/`method` with a request given as a dict of field names;
    /// returns the response as a `types.SimpleNamespace`. The GIL is released while
    /// the call is on the wire.
    fn call<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        request: &Bound<'py, PyAny>,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let method = reflect::method(method)?;
        let timeout = duration("timeout", timeout)?;
        let encoded = reflect::encode_request(method.input(), request)?;
        let name = method.name();
        let response = py
            .detach(|| self.connection.call_raw(name, encoded, timeout))
            .map_err(|status| rpc_error::to_py_err(py, &status))?;
        reflect::decode_response(py, method.output(), &response)
    }

    /// The sidecar's health ("SERVING", "NOT_SERVING", ...); RpcError when it
    /// cannot be reached.
    fn health(&self, py: Python<'_>, timeout: f64) -> PyResult<String> {
        let timeout = duration("timeout", timeout)?;
        py.detach(|| self.connection.health(HEALTH_SERVICE, timeout))
            .map_err(|status| rpc_error::to_py_err(py, &status))
    }

    fn __repr__(&self) -> String {
        format!("Channel({:?})", self.connection.address())
    }
}

/// Seconds given by Python as a `Duration`; ValueError naming `what` for a negative
/// or non-finite number.
pub(crate) fn duration(what: &str, seconds: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        PyValueError::new_err(format!(
            "{what} must be a number of seconds >= 0, got {seconds}"
        ))
    })
}

//! `runcore._native`: the Python client's native core, on the `runcore-client` crate.
//!
//! `run.log()` converts its dict into runcore.v1 values under the GIL in one pass and
//! queues the row; batching, encoding, the LogStream, acks, resends, reconnects and
//! heartbeats run on `runcore-client`'s Rust threads, which take the GIL only to call
//! back into the run (`link`).
//!
//! # Layout
//! - `values`: the value rules, Python objects to `runcore.v1.Value` and back.
//! - `reflect`: any RunService request from a dict, any response as a namespace,
//!   through the descriptors of proto/runcore/v1 (no generated Python code).
//! - `rpc_error`: `RpcError`, a failed call as a Python exception and back.
//! - `channel`: `Channel`, blocking unary calls with the GIL released.
//! - `sender`: `Sender`, `log()` and the handle on the background sender.
//! - `link`: the run's Python callbacks, as the sender's `Link`.

mod channel;
mod link;
mod reflect;
mod rpc_error;
mod sender;
mod values;

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// `{name: number}` of a runcore.v1 enum, e.g. `enum_values("runcore.v1.RunState")`.
#[pyfunction]
fn enum_values<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
    reflect::enum_values(py, name)
}

#[pymodule(name = "_native")]
fn native_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("RpcError", rpc_error::rpc_error_type(m.py())?)?;
    m.add_function(wrap_pyfunction!(enum_values, m)?)?;
    m.add_class::<channel::Channel>()?;
    m.add_class::<sender::Sender>()?;
    Ok(())
}

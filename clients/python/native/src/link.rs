//! The run's Python callbacks as the sender's `Link`.
//!
//! These are the only places where the sender's threads take the GIL, and they are
//! rare: a reconnect, a re-attach, a dropped row, a warning, a stop request.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use pyo3::PyTraverseError;
use runcore_client::{proto, AttachError, Connection, Link};

use crate::{channel::Channel, rpc_error};

/// `runcore.RunEndedError`, which `link.attach` raises for a run the sidecar ended.
static RUN_ENDED_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

const SHUTTING_DOWN: &str = "the Python interpreter is shutting down";
const RUN_GONE: &str = "the run object was garbage-collected";

/// The Python object with `attach`, `recover`, `on_dropped`, `log_dropped`, `warn`
/// and `should_stop` that the run gives its sender.
///
/// The link usually refers to the run, which refers to its `Sender`: a cycle that
/// Python's garbage collector sees only through `traverse`, and breaks with
/// `clear`, after which the callbacks do nothing (or give up).
pub(crate) struct PyLink {
    /// Locked only with the GIL held, and never across a call into Python.
    link: Mutex<Option<Py<PyAny>>>,
}

impl PyLink {
    pub(crate) fn new(link: Py<PyAny>) -> Self {
        PyLink {
            link: Mutex::new(Some(link)),
        }
    }

    /// The link object, unless the garbage collector cleared it.
    fn get<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        lock(&self.link).as_ref().map(|link| link.bind(py).clone())
    }

    /// Calls a callback whose failure the sender cannot act on: an exception it
    /// raises is printed, as Python prints one raised in a thread.
    fn notify<A>(&self, method: &str, args: A)
    where
        A: for<'py> pyo3::call::PyCallArgs<'py>,
    {
        // Without an interpreter (it is shutting down) there is nobody to tell.
        let _ = Python::try_attach(|py| {
            let Some(link) = self.get(py) else { return };
            if let Err(e) = link.call_method1(method, args) {
                e.print(py);
            }
        });
    }

    /// Tells the run that `log()` dropped a row (on the caller's thread, the GIL
    /// held): the run counts it and warns. An exception (a warning turned into an
    /// error) is the caller's.
    pub(crate) fn log_dropped(&self, py: Python<'_>, step: u64, current_step: u64) -> PyResult<()> {
        let Some(link) = self.get(py) else {
            return Ok(());
        };
        link.call_method1(pyo3::intern!(py, "log_dropped"), (step, current_step))
            .map(drop)
    }

    /// The garbage collector's view of the reference held here.
    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Held only by a thread that holds the GIL, so never while the collector
        // runs; if it were, leaving the reference out only keeps the link alive.
        if let Ok(link) = self.link.try_lock() {
            if let Some(link) = link.as_ref() {
                visit.call(link)?;
            }
        }
        Ok(())
    }

    /// Drops the reference (the garbage collector breaking a cycle).
    pub(crate) fn clear(&self) {
        let link = lock(&self.link).take();
        // Dropped after the lock is released: a finalizer may run.
        drop(link);
    }
}

fn lock(link: &Mutex<Option<Py<PyAny>>>) -> MutexGuard<'_, Option<Py<PyAny>>> {
    link.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Link for PyLink {
    fn attach(&self, force: bool) -> Result<(), AttachError> {
        Python::try_attach(|py| {
            let link = self
                .get(py)
                .ok_or_else(|| AttachError::GaveUp(RUN_GONE.to_owned()))?;
            link.call_method1("attach", (force,))
                .map(drop)
                .map_err(|e| attach_error(py, &e))
        })
        .unwrap_or_else(|| Err(AttachError::GaveUp(SHUTTING_DOWN.to_owned())))
    }

    fn recover(&self, timeout: Duration) -> Result<Connection, String> {
        Python::try_attach(|py| {
            let link = self.get(py).ok_or_else(|| RUN_GONE.to_owned())?;
            let channel = link
                .call_method1("recover", (timeout.as_secs_f64(),))
                .map_err(|e| e.value(py).to_string())?;
            let channel = channel.cast::<Channel>().map_err(|_| {
                format!(
                    "link.recover() must return a runcore._native.Channel, not {}",
                    channel
                        .get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                )
            })?;
            Ok(channel.get().connection.clone())
        })
        .unwrap_or_else(|| Err(SHUTTING_DOWN.to_owned()))
    }

    fn on_dropped(&self, row: &proto::DroppedRow) {
        self.notify(
            "on_dropped",
            (row.step, row.current_step, row.reason.as_str()),
        );
    }

    fn warn(&self, kind: &str, message: &str) {
        self.notify("warn", (kind, message));
    }

    fn should_stop(&self) {
        self.notify("should_stop", ());
    }
}

/// What an exception raised by `link.attach` means to the sender.
fn attach_error(py: Python<'_>, error: &PyErr) -> AttachError {
    let ended = RUN_ENDED_ERROR
        .import(py, "runcore", "RunEndedError")
        .is_ok_and(|class| error.is_instance(py, class));
    if ended {
        return AttachError::Ended(error.value(py).to_string());
    }
    match rpc_error::from_py_err(py, error) {
        Some(status) => AttachError::Rpc(status),
        None => AttachError::GaveUp(error.value(py).to_string()),
    }
}

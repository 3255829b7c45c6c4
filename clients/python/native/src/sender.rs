//! `Sender`: `run.log()`'s work and the handle on the background sender.
//!
//! `log()` checks and converts the dict under the GIL in one pass, then advances
//! the step mirror and queues the row. The step mirror and the queue are advanced
//! under one lock so that rows from several threads reach the sidecar in the order
//! their steps were given. A thread holding the GIL never waits for that lock nor
//! in a `put` that may block: a `put` waiting for room needs the sender's threads
//! to progress, and they may need the GIL to call the run back. With the GIL held
//! the lock is only tried, and the row queued only when the queue has room
//! (`try_put`); otherwise `log()` lets go of the GIL first.
//!
//! `run.log` is this `log()` itself while the run is open (no Python frame in
//! between), so a dropped row is reported from here: the link's `log_dropped`,
//! on the caller's thread, counts it and warns at the caller's line.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyMapping, PyString};
use pyo3::PyTraverseError;
use runcore_client::steps::StepMirror;
use runcore_client::{proto, Row, SenderSettings};

use crate::channel::{duration, Channel};
use crate::link::PyLink;
use crate::values;

/// A logged key, checked once and interned: the value a run's `known` dict maps
/// the key's str to.
#[pyclass(frozen, module = "runcore._native")]
struct Key(Arc<str>);

#[pyclass(frozen, module = "runcore._native")]
pub(crate) struct Sender {
    sender: runcore_client::Sender,
    steps: Mutex<StepMirror>,
    /// The run's callbacks, shared with the sender's threads; here for the
    /// garbage collector (see `PyLink`).
    link: Arc<PyLink>,
    /// Keys seen before (str -> `Key`): checked already, and their interned string.
    known: Py<PyDict>,
    /// Largest encoded size of one logged value.
    max_value_bytes: usize,
}

#[pymethods]
impl Sender {
    #[new]
    #[pyo3(signature = (
        channel, run_id, writer_id, first_seq, starting_step, link, *, batch_interval,
        batch_rows, queue_size, max_in_flight, heartbeat_every, reconnect_timeout,
        max_value_bytes
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        channel: &Bound<'_, Channel>,
        run_id: String,
        writer_id: String,
        first_seq: u64,
        starting_step: u64,
        link: Py<PyAny>,
        batch_interval: f64,
        batch_rows: usize,
        queue_size: usize,
        max_in_flight: usize,
        heartbeat_every: f64,
        reconnect_timeout: f64,
        max_value_bytes: usize,
    ) -> PyResult<Self> {
        let settings = SenderSettings {
            batch_interval: duration("batch_interval", batch_interval)?,
            batch_rows,
            queue_size,
            max_in_flight,
            heartbeat_every: duration("heartbeat_every", heartbeat_every)?,
            reconnect_timeout: duration("reconnect_timeout", reconnect_timeout)?,
        };
        let connection = channel.get().connection.clone();
        let link = Arc::new(PyLink::new(link));
        let sender = py.detach(|| {
            runcore_client::Sender::start(
                connection,
                run_id,
                writer_id,
                first_seq,
                settings,
                link.clone(),
            )
        });
        Ok(Sender {
            sender,
            link,
            steps: Mutex::new(StepMirror::new(starting_step)),
            known: PyDict::new(py).unbind(),
            max_value_bytes,
        })
    }

    /// Logs a row, as W&B's `run.log` (an open run's `log` is this method):
    /// without `step` the row is committed at the current step (unless
    /// `commit=False`); with `step`, a larger step commits the pending row and
    /// jumps, the same step merges, a smaller one is dropped (reported through the
    /// link's `log_dropped`, which warns). Returns at once; the sender sends it.
    #[pyo3(signature = (data, step = None, commit = None))]
    fn log(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        step: Option<&Bound<'_, PyAny>>,
        commit: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let mut row = Row::default();
        if let Ok(dict) = data.cast_exact::<PyDict>() {
            // Most logged values are floats: one allocation for all of them.
            let len = dict.len();
            row.scalars.reserve(len);
            for (k, v) in dict.iter() {
                self.add(&mut row, &k, &v)?;
                // A value's own code (`_to_native`, a native fallback) may change
                // the dict: stop before the iterator would panic on it.
                if dict.len() != len {
                    return Err(PyRuntimeError::new_err(
                        "run.log: the dict changed size while it was being logged (a value's \
                         _to_native() or a native fallback changed it); log a copy of it",
                    ));
                }
            }
        } else if data.cast::<PyMapping>().is_ok() {
            for (k, v) in values::mapping_items(data)? {
                self.add(&mut row, &k, &v)?;
            }
        } else {
            return Err(PyValueError::new_err(format!(
                "run.log takes a dict of key -> value, not {}",
                data.get_type().name()?
            )));
        }
        let has_data = !(row.scalars.is_empty() && row.values.is_empty());
        let step = step.map(check_step).transpose()?;
        row.step = step.map(|s| s as i64);
        row.commit = commit.map(|c| c.is_truthy()).transpose()?;
        row.timestamp = unix_now();
        let commit = row.commit;
        let queued = match self.try_advance_and_put(row, has_data, step, commit) {
            Err(Blocked(row)) => py.detach(|| {
                let mut steps = lock(&self.steps);
                self.advance_and_put(&mut steps, row, has_data, step, commit)
            }),
            Ok(queued) => queued,
        };
        match queued {
            Err(Dropped { step, current_step }) => self.link.log_dropped(py, step, current_step),
            Ok(()) => Ok(()),
        }
    }

    /// The step the next committed row gets (`run.step`).
    #[getter]
    fn step(&self, py: Python<'_>) -> u64 {
        py.detach(|| lock(&self.steps).step)
    }

    /// Commits the pending row, as the end of a run does.
    fn finish_steps(&self, py: Python<'_>) {
        py.detach(|| lock(&self.steps).finish());
    }

    /// Waits until every row logged so far is acked or lost; False on timeout.
    #[pyo3(signature = (timeout = None))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = timeout.map(|t| duration("timeout", t)).transpose()?;
        let sender = &self.sender;
        Ok(py.detach(|| sender.flush(timeout)))
    }

    /// Sends everything, waits for the acks and closes the stream.
    #[pyo3(signature = (timeout = None))]
    fn close(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let timeout = timeout.map(|t| duration("timeout", t)).transpose()?;
        let sender = &self.sender;
        py.detach(|| sender.close(timeout));
        Ok(())
    }

    /// Rows logged and neither acked nor lost.
    fn pending(&self) -> u64 {
        self.sender.pending()
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.sender.stats();
        let out = PyDict::new(py);
        out.set_item("rows_queued", stats.rows_queued)?;
        out.set_item("rows_acked", stats.rows_acked)?;
        out.set_item("rows_lost", stats.rows_lost)?;
        out.set_item("batches_sent", stats.batches_sent)?;
        out.set_item("batches_acked", stats.batches_acked)?;
        out.set_item("batches_resent", stats.batches_resent)?;
        out.set_item("last_ack_time", stats.last_ack_time)?;
        out.set_item("next_seq", stats.next_seq)?;
        out.set_item("queued", stats.queued)?;
        out.set_item("dead", stats.dead)?;
        out.set_item("half_close_timed_out", stats.half_close_timed_out)?;
        Ok(out)
    }

    /// Why the sender gave up, or None while it works.
    #[getter]
    fn dead(&self) -> Option<String> {
        self.sender.stats().dead
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.known)?;
        self.link.traverse(&visit)
    }

    fn __clear__(&self) {
        self.link.clear();
    }

    fn set_heartbeat_every(&self, seconds: f64) -> PyResult<()> {
        self.sender
            .set_heartbeat_every(duration("heartbeat_every", seconds)?);
        Ok(())
    }
}

/// A row the step mirror dropped: its step is smaller than the run's.
struct Dropped {
    step: u64,
    current_step: u64,
}

/// A row `try_advance_and_put` could not queue without waiting.
struct Blocked(Row);

impl Sender {
    /// Advances the step mirror and queues the row, waiting for room if need be.
    fn advance_and_put(
        &self,
        steps: &mut StepMirror,
        row: Row,
        has_data: bool,
        step: Option<u64>,
        commit: Option<bool>,
    ) -> Result<(), Dropped> {
        let current_step = steps.step;
        if !steps.advance(has_data, step, commit) {
            return Err(dropped(step, current_step));
        }
        self.sender.put(row);
        Ok(())
    }

    /// `advance_and_put` when neither the mirror's lock nor room in the queue has
    /// to be waited for (the common case, with the GIL held). The mirror advances
    /// only once the row is queued; while it is held nobody else queues.
    fn try_advance_and_put(
        &self,
        row: Row,
        has_data: bool,
        step: Option<u64>,
        commit: Option<bool>,
    ) -> Result<Result<(), Dropped>, Blocked> {
        let Ok(mut steps) = self.steps.try_lock() else {
            return Err(Blocked(row));
        };
        let mut advanced = *steps;
        if !advanced.advance(has_data, step, commit) {
            return Ok(Err(dropped(step, steps.step)));
        }
        self.sender.try_put(row).map_err(Blocked)?;
        *steps = advanced;
        Ok(Ok(()))
    }

    /// One (key, value) of a logged dict into the row: the key checked the first
    /// time it is seen, a float as a packed scalar, anything else as a `Value`.
    fn add(&self, row: &mut Row, k: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        let key = self.key(k)?;
        if let Ok(f) = v.cast_exact::<PyFloat>() {
            row.scalars.push((key, f.value()));
            return Ok(());
        }
        let value = values::to_value(&key, v)?;
        if let Some(proto::value::Kind::DoubleValue(f)) = value.kind {
            // A float subclass or a numpy float: a scalar like any float.
            row.scalars.push((key, f));
            return Ok(());
        }
        let size = value.encoded_len();
        if size > self.max_value_bytes {
            return Err(PyValueError::new_err(format!(
                "cannot log {}: the value is {} MiB; log at most {} MiB per value \
                 (a Histogram of big arrays is small)",
                values::key_repr(k.py(), &key),
                size >> 20,
                self.max_value_bytes >> 20
            )));
        }
        row.value_bytes += size;
        row.values.push((key, value));
        Ok(())
    }

    /// The interned key for `k`, checked as `Run._check_key` checks it the first
    /// time it is seen.
    fn key(&self, k: &Bound<'_, PyAny>) -> PyResult<Arc<str>> {
        let known = self.known.bind(k.py());
        if let Some(key) = known.get_item(k)? {
            if let Ok(key) = key.cast::<Key>() {
                return Ok(key.get().0.clone());
            }
        }
        let key: Arc<str> = check_key(k)?.into();
        known.set_item(k, Key(key.clone()))?;
        Ok(key)
    }
}

fn check_key(k: &Bound<'_, PyAny>) -> PyResult<String> {
    let Ok(s) = k.cast::<PyString>() else {
        return Err(PyValueError::new_err(format!(
            "run.log keys must be str, got {} ({})",
            k.repr()?,
            k.get_type().name()?
        )));
    };
    let s = s.to_cow()?;
    if s.is_empty() {
        return Err(PyValueError::new_err(
            "run.log: a key is empty; give every logged value a name",
        ));
    }
    if s.starts_with('_') {
        return Err(PyValueError::new_err(format!(
            "run.log: key {} starts with '_', which is reserved for runcore's own keys \
             (_step, _runtime, _timestamp); rename it",
            k.repr()?
        )));
    }
    Ok(s.into_owned())
}

/// `Run._check_step`: an int (anything with `__index__`, not a bool), not negative.
fn check_step(step: &Bound<'_, PyAny>) -> PyResult<u64> {
    if step.is_instance_of::<PyBool>() {
        return Err(PyValueError::new_err(format!(
            "run.log: step must be an int, not {}",
            step.repr()?
        )));
    }
    let index = step
        .call_method0(pyo3::intern!(step.py(), "__index__"))
        .map_err(|_| {
            let name = step
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default();
            PyValueError::new_err(format!("run.log: step must be an int, not {name}"))
        })?;
    if index.lt(0)? {
        return Err(PyValueError::new_err(format!(
            "run.log: step {index} is negative; steps start at 0"
        )));
    }
    index.extract::<i64>().map(|s| s as u64).map_err(|_| {
        PyValueError::new_err(format!(
            "run.log: step {index} is too large; steps are at most {}",
            i64::MAX
        ))
    })
}

/// Only a row logged with a step is ever dropped.
fn dropped(step: Option<u64>, current_step: u64) -> Dropped {
    Dropped {
        step: step.unwrap_or(current_step),
        current_step,
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The lock is never held across a panic that matters: a poisoned step mirror is
/// still the last state it was left in.
fn lock(steps: &Mutex<StepMirror>) -> MutexGuard<'_, StepMirror> {
    steps
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

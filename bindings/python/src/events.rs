//! The event objects handed to Python: `Event` (from a subscription, the
//! consumer or a dead-letter page), `Delivery` and `WebhookEvent`. Built
//! once per event from its fields, the protobuf message kept as it is; a
//! field is converted when it is read, and `data` (the envelope's data as
//! the dataclass of the event type) is parsed by Python on first read and
//! kept.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use vodtask_client::json::{FieldNames, from_json};
use vodtask_client::pb;

use crate::aio::awaitable;
use crate::errors::{invalid, to_py};

/// A string shown the way Python's `repr` shows it, for `__repr__`s.
pub struct Q<'a>(pub &'a str);

impl std::fmt::Debug for Q<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("'")?;
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '\'' => f.write_str("\\'")?,
                '\n' => f.write_str("\\n")?,
                c if c.is_control() => write!(f, "\\x{:02x}", u32::from(c))?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("'")
    }
}

/// `vodtask._event_data.decode_event_data(event_type, content_json)`.
fn decode_data<'py>(
    py: Python<'py>,
    event_type: &str,
    content_json: &str,
) -> PyResult<Bound<'py, PyAny>> {
    static DECODE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    DECODE
        .import(py, "vodtask._event_data", "decode_event_data")?
        .call1((event_type, content_json))
}

/// A protobuf timestamp as an aware UTC `datetime`, None when unset.
fn datetime<'py>(
    py: Python<'py>,
    seconds_nanos: Option<(i64, i32)>,
) -> PyResult<Bound<'py, PyAny>> {
    static FROM_TIMESTAMP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static UTC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let Some((seconds, nanos)) = seconds_nanos else {
        return Ok(py.None().into_bound(py));
    };
    let utc = UTC.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py
            .import("datetime")?
            .getattr("timezone")?
            .getattr("utc")?
            .unbind())
    })?;
    let secs = seconds as f64 + f64::from(nanos) / 1e9;
    FROM_TIMESTAMP
        .get_or_try_init(py, || -> PyResult<Py<PyAny>> {
            Ok(py
                .import("datetime")?
                .getattr("datetime")?
                .getattr("fromtimestamp")?
                .unbind())
        })?
        .bind(py)
        .call1((secs, utc.bind(py)))
}

/// One event of the app's queue.
#[pyclass(module = "vodtask", frozen)]
pub struct Event {
    inner: pb::Event,
    data: PyOnceLock<Py<PyAny>>,
}

impl Event {
    pub fn new(inner: pb::Event) -> Self {
        Event {
            inner,
            data: PyOnceLock::new(),
        }
    }
}

#[pymethods]
impl Event {
    #[getter]
    fn event_id(&self) -> &str {
        &self.inner.event_id
    }
    #[getter]
    fn event_type(&self) -> &str {
        &self.inner.event_type
    }
    #[getter]
    fn task_id(&self) -> &str {
        &self.inner.task_id
    }
    #[getter]
    fn event_time<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        datetime(
            py,
            self.inner.event_time.as_ref().map(|t| (t.seconds, t.nanos)),
        )
    }
    #[getter]
    fn task_sequence(&self) -> i64 {
        self.inner.task_sequence
    }
    #[getter]
    fn delivery_count(&self) -> i32 {
        self.inner.delivery_count
    }
    #[getter]
    fn content_json(&self) -> &str {
        &self.inner.content_json
    }
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let data = self.data.get_or_try_init(py, || {
            decode_data(py, &self.inner.event_type, &self.inner.content_json).map(Bound::unbind)
        })?;
        Ok(data.bind(py).clone())
    }

    /// An event as the JSON text of a pb Event in the proto's names (the
    /// events of a dead-letter page).
    #[staticmethod]
    fn _from_json(text: &str) -> PyResult<Event> {
        let tree: serde_json::Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("event: {e}")))?;
        from_json::<pb::Event>(&tree, FieldNames::Proto)
            .map(Event::new)
            .map_err(to_py)
    }

    fn __repr__(&self) -> String {
        format!(
            "Event(event_id={:?}, event_type={:?}, task_id={:?}, task_sequence={}, delivery_count={})",
            Q(&self.inner.event_id),
            Q(&self.inner.event_type),
            Q(&self.inner.task_id),
            self.inner.task_sequence,
            self.inner.delivery_count
        )
    }
}

/// What ack, nack and extend resolve to: `vodtask.HandleStatus`, made
/// when the result reaches Python (under the GIL it is delivered with).
struct Status(pb::HandleStatus);

impl<'py> IntoPyObject<'py> for Status {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        static HANDLE_STATUS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let name = self.0.as_str_name();
        let short = name.strip_prefix("HANDLE_STATUS_").unwrap_or(name);
        HANDLE_STATUS
            .import(py, "vodtask._types", "HandleStatus")?
            .call1((short,))
    }
}

/// One delivery of an event from `Client.subscribe`: settle it with
/// `ack`, `nack` or keep it with `extend`.
#[pyclass(module = "vodtask", frozen)]
pub struct Delivery {
    inner: Arc<vodtask_client::Delivery>,
    event: PyOnceLock<Py<Event>>,
}

impl Delivery {
    pub fn new(inner: vodtask_client::Delivery) -> Self {
        Delivery {
            inner: Arc::new(inner),
            event: PyOnceLock::new(),
        }
    }
}

#[pymethods]
impl Delivery {
    #[getter]
    fn event<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, Event>> {
        let event = self
            .event
            .get_or_try_init(py, || Py::new(py, Event::new(self.inner.event.clone())))?;
        Ok(event.bind(py).clone())
    }
    /// Valid for this delivery only.
    #[getter]
    fn handle(&self) -> &str {
        self.inner.handle()
    }

    /// Confirms the event: CONFIRMED (or EXPIRED when the lease ran out first).
    fn ack<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let d = Arc::clone(&self.inner);
        awaitable(py, async move { d.ack().await.map(Status).map_err(to_py) })
    }

    /// Gives the event back: after `delay` seconds, or without one with
    /// exponential backoff.
    #[pyo3(signature = (delay=None))]
    fn nack<'py>(&self, py: Python<'py>, delay: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let delay = delay
            .map(|s| {
                Duration::try_from_secs_f64(s).map_err(|_| {
                    invalid(format!(
                        "nack: delay: must be a non-negative number, got {s}"
                    ))
                })
            })
            .transpose()?;
        let d = Arc::clone(&self.inner);
        awaitable(
            py,
            async move { d.nack(delay).await.map(Status).map_err(to_py) },
        )
    }

    /// Extends the lease to `seconds` from now.
    fn extend<'py>(&self, py: Python<'py>, seconds: i32) -> PyResult<Bound<'py, PyAny>> {
        let d = Arc::clone(&self.inner);
        awaitable(py, async move {
            d.extend(seconds).await.map(Status).map_err(to_py)
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "Delivery(event_id={:?}, event_type={:?}, delivery_count={})",
            Q(&self.inner.event.event_id),
            Q(&self.inner.event.event_type),
            self.inner.event.delivery_count
        )
    }
}

/// A verified HTTP callback.
#[pyclass(module = "vodtask", frozen)]
pub struct WebhookEvent {
    inner: vodtask_client::WebhookEvent,
    data: PyOnceLock<Py<PyAny>>,
}

impl WebhookEvent {
    pub fn new(inner: vodtask_client::WebhookEvent) -> Self {
        WebhookEvent {
            inner,
            data: PyOnceLock::new(),
        }
    }
}

#[pymethods]
impl WebhookEvent {
    #[getter]
    fn event_id(&self) -> &str {
        &self.inner.event_id
    }
    #[getter]
    fn event_type(&self) -> &str {
        &self.inner.event_type
    }
    #[getter]
    fn task_id(&self) -> &str {
        &self.inner.task_id
    }
    #[getter]
    fn task_sequence(&self) -> i64 {
        self.inner.task_sequence
    }
    #[getter]
    fn content_json(&self) -> &str {
        &self.inner.content_json
    }
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let data = self.data.get_or_try_init(py, || {
            decode_data(py, &self.inner.event_type, &self.inner.content_json).map(Bound::unbind)
        })?;
        Ok(data.bind(py).clone())
    }
    fn __repr__(&self) -> String {
        format!(
            "WebhookEvent(event_id={:?}, event_type={:?}, task_id={:?}, task_sequence={})",
            Q(&self.inner.event_id),
            Q(&self.inner.event_type),
            Q(&self.inner.task_id),
            self.inner.task_sequence
        )
    }
}

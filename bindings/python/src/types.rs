//! Result classes: each keeps the protobuf message it came from and
//! converts a field when it is read.

use std::sync::Arc;
use std::time::Duration;

use crate::aio::awaitable;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use vodtask_client::pb;

use crate::convert::{self, Q, datetime, short};
use crate::errors::{invalid, to_py};

/// A task's status (TaskStatus in the proto).
#[pyclass(module = "vodtask", eq, eq_int, frozen, hash)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TaskStatus {
    #[pyo3(name = "UNSPECIFIED")]
    Unspecified = 0,
    #[pyo3(name = "WAITING")]
    Waiting = 1,
    #[pyo3(name = "PROCESSING")]
    Processing = 2,
    #[pyo3(name = "FINISH")]
    Finish = 3,
    #[pyo3(name = "ABORTED")]
    Aborted = 4,
}

impl TaskStatus {
    pub fn from_pb(v: i32) -> Self {
        match pb::TaskStatus::try_from(v) {
            Ok(pb::TaskStatus::Waiting) => TaskStatus::Waiting,
            Ok(pb::TaskStatus::Processing) => TaskStatus::Processing,
            Ok(pb::TaskStatus::Finish) => TaskStatus::Finish,
            Ok(pb::TaskStatus::Aborted) => TaskStatus::Aborted,
            _ => TaskStatus::Unspecified,
        }
    }
}

/// A task's type (TaskType in the proto).
#[pyclass(module = "vodtask", eq, eq_int, frozen, hash)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TaskType {
    #[pyo3(name = "UNSPECIFIED")]
    Unspecified = 0,
    #[pyo3(name = "TRANSCODE")]
    Transcode = 1,
    #[pyo3(name = "SNAPSHOT_BY_TIME_OFFSET")]
    SnapshotByTimeOffset = 2,
    #[pyo3(name = "CONCAT")]
    Concat = 3,
    #[pyo3(name = "CLIP")]
    Clip = 4,
    #[pyo3(name = "IMAGE_SPRITES")]
    ImageSprites = 5,
    #[pyo3(name = "PULL_UPLOAD")]
    PullUpload = 6,
    #[pyo3(name = "DELETE_MEDIA")]
    DeleteMedia = 7,
    #[pyo3(name = "PROCEDURE")]
    Procedure = 8,
}

impl TaskType {
    pub fn from_pb(v: i32) -> Self {
        use pb::TaskType as T;
        match T::try_from(v) {
            Ok(T::Transcode) => TaskType::Transcode,
            Ok(T::SnapshotByTimeOffset) => TaskType::SnapshotByTimeOffset,
            Ok(T::Concat) => TaskType::Concat,
            Ok(T::Clip) => TaskType::Clip,
            Ok(T::ImageSprites) => TaskType::ImageSprites,
            Ok(T::PullUpload) => TaskType::PullUpload,
            Ok(T::DeleteMedia) => TaskType::DeleteMedia,
            Ok(T::Procedure) => TaskType::Procedure,
            _ => TaskType::Unspecified,
        }
    }
}

fn status_name(v: i32) -> String {
    pb::TaskStatus::try_from(v).map_or_else(
        |_| v.to_string(),
        |s| short(s.as_str_name(), "TASK_STATUS_"),
    )
}

fn type_name(v: i32) -> String {
    pb::TaskType::try_from(v)
        .map_or_else(|_| v.to_string(), |s| short(s.as_str_name(), "TASK_TYPE_"))
}

/// What a task does; made by `vodtask.transcode(...)` and the other spec
/// functions, or from a dict `{"transcode": {...}}`.
#[pyclass(module = "vodtask", frozen)]
#[derive(Clone)]
pub struct TaskSpec {
    pub inner: pb::TaskSpec,
}

#[pymethods]
impl TaskSpec {
    /// The spec's kind, e.g. "transcode".
    #[getter]
    fn kind<'py>(&self, py: Python<'py>) -> PyResult<Option<String>> {
        let d = convert::task_spec(py, &self.inner)?;
        Ok(d.keys().iter().next().map(|k| k.to_string()))
    }

    /// The spec as the dict `create_task` accepts.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        convert::task_spec(py, &self.inner)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let d = convert::task_spec(py, &self.inner)?;
        Ok(format!("TaskSpec({})", d.repr()?))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<TaskSpec>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }
}

#[pyclass(module = "vodtask", frozen)]
pub struct Task {
    pub inner: pb::Task,
}

#[pymethods]
impl Task {
    #[getter]
    fn task_id(&self) -> &str {
        &self.inner.task_id
    }
    #[getter]
    fn task_type(&self) -> TaskType {
        TaskType::from_pb(self.inner.task_type)
    }
    #[getter]
    fn status(&self) -> TaskStatus {
        TaskStatus::from_pb(self.inner.status)
    }
    /// 0 = success (FINISH does not mean success by itself).
    #[getter]
    fn err_code(&self) -> i32 {
        self.inner.err_code
    }
    #[getter]
    fn message(&self) -> &str {
        &self.inner.message
    }
    #[getter]
    fn progress(&self) -> i32 {
        self.inner.progress
    }
    #[getter]
    fn attempt(&self) -> i32 {
        self.inner.attempt
    }
    #[getter]
    fn create_time<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        datetime(py, self.inner.create_time.as_ref())
    }
    #[getter]
    fn begin_process_time<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        datetime(py, self.inner.begin_process_time.as_ref())
    }
    #[getter]
    fn finish_time<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        datetime(py, self.inner.finish_time.as_ref())
    }
    #[getter]
    fn priority(&self) -> i32 {
        self.inner.priority
    }
    #[getter]
    fn session_id(&self) -> &str {
        &self.inner.session_id
    }
    #[getter]
    fn session_context(&self) -> &str {
        &self.inner.session_context
    }
    #[getter]
    fn file_id(&self) -> &str {
        &self.inner.file_id
    }
    #[getter]
    fn cancel_requested(&self) -> bool {
        self.inner.cancel_requested
    }
    /// The spec, as a TaskSpec (None if the server sent none).
    #[getter]
    fn input(&self) -> Option<TaskSpec> {
        self.inner.input.clone().map(|inner| TaskSpec { inner })
    }
    /// The typed output as a dict keyed by the task type, e.g.
    /// `{"transcode": {"play_set": [...]}}`; None until there is one.
    #[getter]
    fn output<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.inner
            .output
            .as_ref()
            .map(|o| convert::task_output(py, o))
            .transpose()
    }
    /// Results of earlier attempts (redo), oldest first, as dicts.
    #[getter]
    fn previous_attempts<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let mut out = Vec::new();
        for a in &self.inner.previous_attempts {
            let d = PyDict::new(py);
            d.set_item("attempt", a.attempt)?;
            d.set_item("status", TaskStatus::from_pb(a.status))?;
            d.set_item("err_code", a.err_code)?;
            d.set_item("message", &a.message)?;
            d.set_item(
                "begin_process_time",
                datetime(py, a.begin_process_time.as_ref())?,
            )?;
            d.set_item("finish_time", datetime(py, a.finish_time.as_ref())?)?;
            let output = match &a.output {
                Some(o) => convert::task_output(py, o)?.into_any(),
                None => py.None().into_bound(py),
            };
            d.set_item("output", output)?;
            out.push(d);
        }
        Ok(out)
    }

    fn __repr__(&self) -> String {
        format!(
            "Task(task_id={:?}, task_type={}, status={}, err_code={}, progress={}, attempt={})",
            Q(&self.inner.task_id),
            type_name(self.inner.task_type),
            status_name(self.inner.status),
            self.inner.err_code,
            self.inner.progress,
            self.inner.attempt
        )
    }
}

/// What an upload returns.
#[pyclass(module = "vodtask", frozen, get_all)]
pub struct UploadResult {
    pub file_id: String,
    pub file_url: String,
    /// Set when the upload asked for a procedure.
    pub procedure_task_id: String,
}

#[pymethods]
impl UploadResult {
    fn __repr__(&self) -> String {
        format!(
            "UploadResult(file_id={:?}, file_url={:?}, procedure_task_id={:?})",
            Q(&self.file_id),
            Q(&self.file_url),
            Q(&self.procedure_task_id)
        )
    }
}

impl From<pb::UploadMediaResponse> for UploadResult {
    fn from(r: pb::UploadMediaResponse) -> Self {
        UploadResult {
            file_id: r.file_id,
            file_url: r.file_url,
            procedure_task_id: r.procedure_task_id,
        }
    }
}

/// A media file of the library, with what ffprobe says about it.
#[pyclass(module = "vodtask", frozen)]
pub struct MediaInfo {
    pub inner: pb::MediaInfo,
}

#[pymethods]
impl MediaInfo {
    #[getter]
    fn file_id(&self) -> &str {
        &self.inner.file_id
    }
    #[getter]
    fn file_name(&self) -> &str {
        &self.inner.file_name
    }
    #[getter]
    fn file_url(&self) -> &str {
        &self.inner.file_url
    }
    #[getter]
    fn size(&self) -> i64 {
        self.inner.size
    }
    #[getter]
    fn md5(&self) -> &str {
        &self.inner.md5
    }
    #[getter]
    fn create_time<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        datetime(py, self.inner.create_time.as_ref())
    }
    /// "CLIENT_UPLOAD", "TASK_OUTPUT" or "PULL".
    #[getter]
    fn source_type(&self) -> String {
        pb::SourceType::try_from(self.inner.source_type).map_or_else(
            |_| self.inner.source_type.to_string(),
            |s| short(s.as_str_name(), "SOURCE_TYPE_"),
        )
    }
    #[getter]
    fn source_context(&self) -> &str {
        &self.inner.source_context
    }
    #[getter]
    fn source_task_id(&self) -> &str {
        &self.inner.source_task_id
    }
    #[getter]
    fn probe_error(&self) -> &str {
        &self.inner.probe_error
    }
    /// ffprobe's findings (container, duration_seconds, width, height,
    /// bitrate, streams) as a dict; None when ffprobe could not read it.
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(m) = &self.inner.metadata else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        d.set_item("container", &m.container)?;
        d.set_item("duration_seconds", m.duration_seconds)?;
        d.set_item("width", m.width)?;
        d.set_item("height", m.height)?;
        d.set_item("bitrate", m.bitrate)?;
        let mut streams = Vec::new();
        for s in &m.streams {
            let sd = PyDict::new(py);
            sd.set_item("index", s.index)?;
            sd.set_item("codec_type", &s.codec_type)?;
            sd.set_item("codec", &s.codec)?;
            sd.set_item("bitrate", s.bitrate)?;
            sd.set_item("width", s.width)?;
            sd.set_item("height", s.height)?;
            sd.set_item("fps", s.fps)?;
            sd.set_item("sample_rate", s.sample_rate)?;
            sd.set_item("channels", s.channels)?;
            streams.push(sd);
        }
        d.set_item("streams", streams)?;
        Ok(Some(d))
    }

    fn __repr__(&self) -> String {
        let (duration, w, h) = self
            .inner
            .metadata
            .as_ref()
            .map_or((0.0, 0, 0), |m| (m.duration_seconds, m.width, m.height));
        format!(
            "MediaInfo(file_id={:?}, file_name={:?}, size={}, duration_seconds={duration}, width={w}, height={h})",
            Q(&self.inner.file_id),
            Q(&self.inner.file_name),
            self.inner.size
        )
    }
}

/// One event of the app's queue.
#[pyclass(module = "vodtask", frozen)]
pub struct Event {
    pub inner: pb::Event,
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
    /// Empty for events not about a task (NewFileUpload).
    #[getter]
    fn task_id(&self) -> &str {
        &self.inner.task_id
    }
    #[getter]
    fn event_time<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        datetime(py, self.inner.event_time.as_ref())
    }
    #[getter]
    fn task_sequence(&self) -> i64 {
        self.inner.task_sequence
    }
    #[getter]
    fn delivery_count(&self) -> i32 {
        self.inner.delivery_count
    }
    /// The envelope's JSON text, byte-identical in every delivery path.
    #[getter]
    fn content_json(&self) -> &str {
        &self.inner.content_json
    }
    /// The envelope's `data`, parsed.
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::json_loads(py, &self.inner.content_json)?.get_item("data")
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

/// One delivery of an event from `Client.subscribe`: settle it with
/// `ack`, `nack` or keep it with `extend`.
#[pyclass(module = "vodtask", frozen)]
pub struct Delivery {
    pub inner: Arc<vodtask_client::Delivery>,
}

#[pymethods]
impl Delivery {
    #[getter]
    fn event(&self) -> Event {
        Event {
            inner: self.inner.event.clone(),
        }
    }
    /// Valid for this delivery only.
    #[getter]
    fn handle(&self) -> &str {
        self.inner.handle()
    }

    /// Confirms the event; resolves to the handle status, e.g. "CONFIRMED"
    /// (or "EXPIRED" when the lease ran out first).
    fn ack<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let d = Arc::clone(&self.inner);
        awaitable(py, async move {
            d.ack()
                .await
                .map(convert::handle_status_name)
                .map_err(to_py)
        })
    }

    /// Gives the event back: after `delay` seconds, or without one with
    /// exponential backoff. Resolves to e.g. "NACKED".
    #[pyo3(signature = (delay=None))]
    fn nack<'py>(&self, py: Python<'py>, delay: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let delay = delay
            .map(|s| {
                Duration::try_from_secs_f64(s)
                    .map_err(|_| invalid(format!("delay: must be a non-negative number, got {s}")))
            })
            .transpose()?;
        let d = Arc::clone(&self.inner);
        awaitable(py, async move {
            d.nack(delay)
                .await
                .map(convert::handle_status_name)
                .map_err(to_py)
        })
    }

    /// Extends the lease to `seconds` from now; resolves to e.g. "EXTENDED".
    fn extend<'py>(&self, py: Python<'py>, seconds: i32) -> PyResult<Bound<'py, PyAny>> {
        let d = Arc::clone(&self.inner);
        awaitable(py, async move {
            d.extend(seconds)
                .await
                .map(convert::handle_status_name)
                .map_err(to_py)
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
    pub inner: vodtask_client::WebhookEvent,
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
        convert::json_loads(py, &self.inner.content_json)?.get_item("data")
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

/// The app's event delivery settings.
#[pyclass(module = "vodtask", frozen)]
pub struct EventConfig {
    pub inner: pb::EventConfig,
}

#[pymethods]
impl EventConfig {
    /// "PULL" or "PUSH".
    #[getter]
    fn mode(&self) -> String {
        pb::DeliveryMode::try_from(self.inner.mode).map_or_else(
            |_| self.inner.mode.to_string(),
            |m| short(m.as_str_name(), "DELIVERY_MODE_"),
        )
    }
    #[getter]
    fn notification_url(&self) -> &str {
        &self.inner.notification_url
    }
    /// Every event type and whether it is sent.
    #[getter]
    fn event_types<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let mut types: Vec<_> = self.inner.event_types.iter().collect();
        types.sort();
        for (k, v) in types {
            d.set_item(k, *v)?;
        }
        Ok(d)
    }
    #[getter]
    fn visibility_timeout_seconds(&self) -> i32 {
        self.inner.visibility_timeout_seconds
    }
    #[getter]
    fn max_deliveries(&self) -> i32 {
        self.inner.max_deliveries
    }
    #[getter]
    fn retention_seconds(&self) -> i64 {
        self.inner.retention_seconds
    }
    /// PUSH: the secret (whsec_…) callbacks are signed with.
    #[getter]
    fn signing_secret(&self) -> &str {
        &self.inner.signing_secret
    }
    #[getter]
    fn callback_timeout_seconds(&self) -> i32 {
        self.inner.callback_timeout_seconds
    }
    #[getter]
    fn retry_schedule_seconds(&self) -> Vec<i64> {
        self.inner.retry_schedule_seconds.clone()
    }
    #[getter]
    fn disable_after_seconds(&self) -> i64 {
        self.inner.disable_after_seconds
    }
    fn __repr__(&self) -> String {
        format!(
            "EventConfig(mode={:?}, notification_url={:?}, visibility_timeout_seconds={}, max_deliveries={})",
            Q(&self.mode()),
            Q(&self.inner.notification_url),
            self.inner.visibility_timeout_seconds,
            self.inner.max_deliveries
        )
    }
}

/// The app's event queue, counted.
#[pyclass(module = "vodtask", frozen, get_all)]
pub struct EventsState {
    pub ready: i64,
    pub in_flight: i64,
    pub delayed: i64,
    pub dead_lettered: i64,
    pub oldest_unconfirmed_age_seconds: f64,
}

#[pymethods]
impl EventsState {
    fn __repr__(&self) -> String {
        format!(
            "EventsState(ready={}, in_flight={}, delayed={}, dead_lettered={}, oldest_unconfirmed_age_seconds={})",
            self.ready,
            self.in_flight,
            self.delayed,
            self.dead_lettered,
            self.oldest_unconfirmed_age_seconds
        )
    }
}

impl From<pb::DescribeEventsStateResponse> for EventsState {
    fn from(s: pb::DescribeEventsStateResponse) -> Self {
        EventsState {
            ready: s.ready,
            in_flight: s.in_flight,
            delayed: s.delayed,
            dead_lettered: s.dead_lettered,
            oldest_unconfirmed_age_seconds: s.oldest_unconfirmed_age_seconds,
        }
    }
}

/// Task counts of the app.
#[pyclass(module = "vodtask", frozen)]
pub struct TaskOverview {
    pub inner: pb::GetTaskOverviewResponse,
}

#[pymethods]
impl TaskOverview {
    #[getter]
    fn total(&self) -> i64 {
        self.inner.total
    }
    #[getter]
    fn queue_depth(&self) -> i64 {
        self.inner.queue_depth
    }
    #[getter]
    fn running(&self) -> i64 {
        self.inner.running
    }
    #[getter]
    fn by_status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for c in &self.inner.by_status {
            d.set_item(TaskStatus::from_pb(c.status), c.count)?;
        }
        Ok(d)
    }
    #[getter]
    fn by_type<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for c in &self.inner.by_type {
            d.set_item(TaskType::from_pb(c.task_type), c.count)?;
        }
        Ok(d)
    }
    fn __repr__(&self) -> String {
        format!(
            "TaskOverview(total={}, queue_depth={}, running={})",
            self.inner.total, self.inner.queue_depth, self.inner.running
        )
    }
}

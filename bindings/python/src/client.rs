//! `Client`, the async iterators over subscriptions and task lists, and the
//! module-level `connect` and `open` (`consume`'s Python handler: consume.rs).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::aio::awaitable;
use crate::consume::PyHandler;
use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use tokio::sync::Mutex;
use vodtask_client::{
    CancellationToken, ConnectOptions, ConsumeOptions, OpenOptions, SyncMode, pb,
};

use crate::convert::{self, py_bool};
use crate::errors::{invalid, to_py};
use crate::specs;
use crate::types::{
    Delivery, EventConfig, EventsState, MediaInfo, Task, TaskOverview, TaskStatus, TaskType,
    UploadResult,
};

fn seconds(field: &str, v: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| invalid(format!("{field}: must be a non-negative number, got {v}")))
}

/// `ca_cert`: PEM bytes, PEM text (it has a `-----BEGIN` line), or the
/// path of a PEM file (str or os.PathLike).
fn ca_cert_pem(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(text) = value.extract::<String>()
        && text.contains("-----BEGIN")
    {
        return Ok(text.into_bytes());
    }
    let path: PathBuf = value
        .extract()
        .map_err(|_| invalid("ca_cert: a path, or the PEM as bytes or text"))?;
    std::fs::read(&path)
        .map_err(|e| invalid(format!("ca_cert: cannot read {}: {e}", path.display())))
}

/// Connects to a vodtask server, e.g. `await connect("http://127.0.0.1:50051", api_key=KEY)`,
/// or over TLS: `https://` (`ca_cert` adds a CA to the system's roots).
#[pyfunction]
#[pyo3(signature = (url, *, api_key, timeout=60.0, connect_timeout=5.0, ca_cert=None))]
pub fn connect<'py>(
    py: Python<'py>,
    url: String,
    api_key: String,
    timeout: f64,
    connect_timeout: f64,
    ca_cert: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut options = ConnectOptions::new(api_key);
    options.timeout = seconds("timeout", timeout)?;
    options.connect_timeout = seconds("connect_timeout", connect_timeout)?;
    options.ca_cert_pem = ca_cert.as_ref().map(ca_cert_pem).transpose()?;
    awaitable(py, async move {
        vodtask_client::Client::connect(&url, options)
            .await
            .map(Client::new)
            .map_err(to_py)
    })
}

/// Opens (or creates) a data dir and runs the engine in this process.
/// One process per data dir; `await client.close()` (or `async with`) when done.
#[pyfunction]
#[pyo3(signature = (data_dir, *, api_key=None, workers=None, http_listen=None, sync="full"))]
pub fn open<'py>(
    py: Python<'py>,
    data_dir: PathBuf,
    api_key: Option<String>,
    workers: Option<usize>,
    http_listen: Option<String>,
    sync: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let sync: SyncMode = sync.parse().map_err(|e| invalid(format!("sync: {e}")))?;
    let http_listen = http_listen
        .map(|a| {
            a.parse::<SocketAddr>()
                .map_err(|e| invalid(format!("http_listen: {e}: {a:?}")))
        })
        .transpose()?;
    let options = OpenOptions {
        api_key,
        workers,
        http_listen,
        sync,
        ..Default::default()
    };
    awaitable(py, async move {
        vodtask_client::Client::open(data_dir, options)
            .await
            .map(Client::new)
            .map_err(to_py)
    })
}

/// Checks an HTTP callback's signature with the app's signing secret and
/// returns the event. `headers`: a mapping or (name, value) pairs; `body`:
/// the raw bytes (or text) as received.
#[pyfunction]
pub fn verify_webhook(
    secret: &str,
    headers: &Bound<'_, PyAny>,
    body: &Bound<'_, PyAny>,
) -> PyResult<crate::types::WebhookEvent> {
    let pairs: Vec<(String, String)> = if let Ok(d) = headers.cast::<PyDict>() {
        d.iter()
            .map(|(k, v)| Ok((k.extract()?, v.extract()?)))
            .collect::<PyResult<_>>()
            .map_err(|e: PyErr| invalid(format!("headers: {e}")))?
    } else if headers.hasattr("items")? {
        headers
            .call_method0("items")?
            .try_iter()?
            .map(|kv| kv?.extract::<(String, String)>())
            .collect::<PyResult<_>>()
            .map_err(|e| invalid(format!("headers: {e}")))?
    } else {
        headers
            .try_iter()
            .map_err(|_| invalid("headers: a mapping or (name, value) pairs"))?
            .map(|kv| kv?.extract::<(String, String)>())
            .collect::<PyResult<_>>()
            .map_err(|e| invalid(format!("headers: {e}")))?
    };
    let body: Vec<u8> = if let Ok(s) = body.extract::<String>() {
        s.into_bytes()
    } else {
        body.extract()
            .map_err(|_| invalid("body: bytes or str".to_string()))?
    };
    vodtask_client::verify_webhook(secret, &pairs, &body)
        .map(|inner| crate::types::WebhookEvent { inner })
        .map_err(to_py)
}

/// Stops `Client.consume`: after `stop()`, consume takes no new event, lets
/// the running handlers finish and settle their events, and returns.
#[pyclass(module = "vodtask", frozen)]
#[derive(Default)]
pub struct StopToken {
    token: CancellationToken,
}

#[pymethods]
impl StopToken {
    #[new]
    fn new() -> Self {
        StopToken::default()
    }
    fn stop(&self) {
        self.token.cancel();
    }
    #[getter]
    fn stopped(&self) -> bool {
        self.token.is_cancelled()
    }
    fn __repr__(&self) -> String {
        format!("StopToken(stopped={})", py_bool(self.token.is_cancelled()))
    }
}

#[pyclass(module = "vodtask", frozen)]
pub struct Client {
    /// Emptied by `close`, so that the embedded engine (and its data dir
    /// lock) goes away with the last clone still in use.
    slot: std::sync::Mutex<Option<vodtask_client::Client>>,
    embedded: bool,
}

impl Client {
    fn new(inner: vodtask_client::Client) -> Self {
        Client {
            embedded: inner.is_embedded(),
            slot: std::sync::Mutex::new(Some(inner)),
        }
    }

    fn inner(&self) -> PyResult<vodtask_client::Client> {
        self.slot
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .ok_or_else(|| crate::errors::error("UNAVAILABLE", "client: closed"))
    }
}

#[pymethods]
impl Client {
    /// Whether this client runs the engine in process (`vodtask.open`).
    #[getter]
    fn is_embedded(&self) -> bool {
        self.embedded
    }

    /// Embedded: stops the engine (running tasks go back to the queue) and
    /// its file server. Remote: nothing.
    /// The client cannot be used afterwards; closing twice does nothing.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let taken = self.slot.lock().ok().and_then(|mut c| c.take());
        awaitable(py, async move {
            if let Some(c) = taken {
                c.close().await;
            }
            Ok(())
        })
    }

    fn __aenter__<'py>(slf: Py<Self>, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, async move { Ok(slf) })
    }

    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _exc_type: &Bound<'py, PyAny>,
        _exc: &Bound<'py, PyAny>,
        _tb: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.close(py)
    }

    /// Uploads a file from disk; `procedure` (a list of subtasks) starts on
    /// the new file.
    #[pyo3(signature = (path, *, file_name=None, source_context="".to_string(), procedure=None, notify_mode="FINISH"))]
    fn upload_file<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        file_name: Option<String>,
        source_context: String,
        procedure: Option<&Bound<'py, PyAny>>,
        notify_mode: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let plan = specs::plan(procedure, notify_mode)?;
        let c = self.inner()?;
        awaitable(py, async move {
            c.upload_file(&path, file_name.as_deref(), &source_context, plan)
                .await
                .map(UploadResult::from)
                .map_err(to_py)
        })
    }

    #[pyo3(signature = (data, file_name, *, source_context="".to_string(), procedure=None, notify_mode="FINISH"))]
    fn upload_bytes<'py>(
        &self,
        py: Python<'py>,
        data: Vec<u8>,
        file_name: String,
        source_context: String,
        procedure: Option<&Bound<'py, PyAny>>,
        notify_mode: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let plan = specs::plan(procedure, notify_mode)?;
        let c = self.inner()?;
        awaitable(py, async move {
            c.upload_bytes(data, &file_name, &source_context, plan)
                .await
                .map(UploadResult::from)
                .map_err(to_py)
        })
    }

    fn describe_media<'py>(&self, py: Python<'py>, file_id: String) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner()?;
        awaitable(py, async move {
            c.describe_media(&file_id)
                .await
                .map(|inner| MediaInfo { inner })
                .map_err(to_py)
        })
    }

    /// Queues a task; resolves to its id. `spec`: a TaskSpec
    /// (`vodtask.transcode(...)`...) or a dict `{"transcode": {...}}`.
    #[pyo3(signature = (spec, *, priority=0, session_id="".to_string(), session_context="".to_string()))]
    fn create_task<'py>(
        &self,
        py: Python<'py>,
        spec: &Bound<'py, PyAny>,
        priority: i32,
        session_id: String,
        session_context: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = pb::CreateTaskRequest {
            spec: Some(specs::from_python(spec)?),
            priority,
            session_id,
            session_context,
        };
        let c = self.inner()?;
        awaitable(
            py,
            async move { c.create_task(request).await.map_err(to_py) },
        )
    }

    fn describe_task<'py>(&self, py: Python<'py>, task_id: String) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner()?;
        awaitable(py, async move {
            c.describe_task(&task_id)
                .await
                .map(|inner| Task { inner })
                .map_err(to_py)
        })
    }

    fn redo_task<'py>(&self, py: Python<'py>, task_id: String) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner()?;
        awaitable(py, async move {
            c.redo_task(&task_id)
                .await
                .map(|inner| Task { inner })
                .map_err(to_py)
        })
    }

    fn cancel_task<'py>(&self, py: Python<'py>, task_id: String) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner()?;
        awaitable(py, async move {
            c.cancel_task(&task_id)
                .await
                .map(|inner| Task { inner })
                .map_err(to_py)
        })
    }

    /// Waits until the task ends and returns it as it ended (FINISH or
    /// ABORTED; `err_code` 0 is success). It takes nothing from the app's
    /// event queue, so every copy of an app can wait for its own task.
    fn wait_task<'py>(&self, py: Python<'py>, task_id: String) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner()?;
        awaitable(py, async move {
            c.wait_task(&task_id)
                .await
                .map(|inner| Task { inner })
                .map_err(to_py)
        })
    }

    /// The task now, then at each change of status, progress or subtasks,
    /// until it ends: `async for task in client.watch_task(task_id)`.
    /// Reconnects by itself after a broken stream.
    fn watch_task(&self, task_id: String) -> PyResult<TaskWatch> {
        // The watch's feeder is spawned on the binding's runtime.
        let _runtime = pyo3_async_runtimes::tokio::get_runtime().enter();
        Ok(TaskWatch {
            inner: Arc::new(Mutex::new(self.inner()?.watch_task(&task_id))),
        })
    }

    /// Every task that matches, newest first by default, fetched a page
    /// (`page_size` tasks) at a time: `async for task in client.list_tasks()`.
    #[pyo3(signature = (*, status=None, task_type=None, file_id="".to_string(), created_after=None, created_before=None, finished_after=None, finished_before=None, sort_by="create_time", order="desc", page_size=10))]
    #[allow(clippy::too_many_arguments)]
    fn list_tasks(
        &self,
        status: Option<PyRef<'_, TaskStatus>>,
        task_type: Option<PyRef<'_, TaskType>>,
        file_id: String,
        created_after: Option<&Bound<'_, PyAny>>,
        created_before: Option<&Bound<'_, PyAny>>,
        finished_after: Option<&Bound<'_, PyAny>>,
        finished_before: Option<&Bound<'_, PyAny>>,
        sort_by: &str,
        order: &str,
        page_size: i32,
    ) -> PyResult<TaskIterator> {
        let sort_by = match sort_by {
            "create_time" => pb::TaskSortBy::CreateTime,
            "finish_time" => pb::TaskSortBy::FinishTime,
            other => {
                return Err(invalid(format!(
                    "sort_by: \"create_time\" or \"finish_time\", got {other:?}"
                )));
            }
        };
        let order = match order {
            "desc" => pb::SortOrder::Desc,
            "asc" => pb::SortOrder::Asc,
            other => {
                return Err(invalid(format!(
                    "order: \"asc\" or \"desc\", got {other:?}"
                )));
            }
        };
        let request = pb::ListTasksRequest {
            status: status.map_or(0, |s| *s as i32),
            task_type: task_type.map_or(0, |t| *t as i32),
            file_id,
            create_time: convert::time_range("created", created_after, created_before)?,
            finish_time: convert::time_range("finished", finished_after, finished_before)?,
            sort_by: sort_by as i32,
            order: order as i32,
            limit: page_size,
            scroll_token: String::new(),
        };
        Ok(TaskIterator {
            client: self.inner()?,
            state: Arc::new(Mutex::new(Pages {
                request,
                buffer: VecDeque::new(),
                done: false,
            })),
        })
    }

    fn task_overview<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner()?;
        awaitable(py, async move {
            c.task_overview(pb::GetTaskOverviewRequest::default())
                .await
                .map(|inner| TaskOverview { inner })
                .map_err(to_py)
        })
    }

    fn event_config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner()?;
        awaitable(py, async move {
            c.event_config()
                .await
                .map(|inner| EventConfig { inner })
                .map_err(to_py)
        })
    }

    /// Changes only what is given; resolves to the new EventConfig.
    #[pyo3(signature = (*, mode=None, notification_url=None, event_types=None, visibility_timeout_seconds=None, max_deliveries=None, retention_seconds=None, callback_timeout_seconds=None, retry_schedule_seconds=None))]
    #[allow(clippy::too_many_arguments)]
    fn modify_event_config<'py>(
        &self,
        py: Python<'py>,
        mode: Option<&str>,
        notification_url: Option<String>,
        event_types: Option<std::collections::HashMap<String, bool>>,
        visibility_timeout_seconds: Option<i32>,
        max_deliveries: Option<i32>,
        retention_seconds: Option<i64>,
        callback_timeout_seconds: Option<i32>,
        retry_schedule_seconds: Option<Vec<i64>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = pb::ModifyEventConfigRequest {
            mode: mode
                .map(|m| convert::delivery_mode("mode", m))
                .transpose()?
                .unwrap_or(0),
            notification_url,
            event_types: event_types.unwrap_or_default(),
            visibility_timeout_seconds,
            max_deliveries,
            retention_seconds,
            callback_timeout_seconds,
            retry_schedule_seconds: retry_schedule_seconds.unwrap_or_default(),
            ..Default::default()
        };
        let c = self.inner()?;
        awaitable(py, async move {
            c.modify_event_config(request)
                .await
                .map(|inner| EventConfig { inner })
                .map_err(to_py)
        })
    }

    fn events_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner()?;
        awaitable(py, async move {
            c.events_state().await.map(EventsState::from).map_err(to_py)
        })
    }

    /// A reliable event stream: `async for d in client.subscribe(): ...;
    /// await d.ack()`. Reconnects by itself; `close()` ends it.
    #[pyo3(signature = (max_in_flight=16))]
    fn subscribe(&self, max_in_flight: i32) -> PyResult<Subscription> {
        // The subscription's feeder is spawned on the binding's runtime.
        let _runtime = pyo3_async_runtimes::tokio::get_runtime().enter();
        Ok(Subscription {
            inner: Arc::new(Mutex::new(self.inner()?.subscribe(max_in_flight))),
            stop: CancellationToken::new(),
        })
    }

    /// Runs `await handler(event)` on every event, `concurrency` at once:
    /// returning acks, raising nacks (with backoff). Returns after
    /// `stop.stop()` once the running handlers are done; raises for a
    /// failure reconnecting cannot cure (e.g. a bad key).
    #[pyo3(signature = (handler, *, concurrency=16, max_in_flight=None, stop=None))]
    fn consume<'py>(
        &self,
        py: Python<'py>,
        handler: Py<PyAny>,
        concurrency: usize,
        max_in_flight: Option<i32>,
        stop: Option<PyRef<'py, StopToken>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let locals = pyo3_async_runtimes::tokio::get_current_locals(py)?;
        let token = stop.map(|s| s.token.clone()).unwrap_or_default();
        let options = ConsumeOptions {
            concurrency,
            max_in_flight: max_in_flight
                .unwrap_or_else(|| i32::try_from(concurrency).unwrap_or(i32::MAX)),
        };
        let handler = PyHandler::new(py, handler, locals)?;
        let c = self.inner()?;
        awaitable(py, async move {
            c.consume(handler, options, token).await.map_err(to_py)
        })
    }

    fn __repr__(&self) -> String {
        let closed = self.slot.lock().map_or(true, |c| c.is_none());
        format!(
            "Client(embedded={}, closed={})",
            py_bool(self.embedded),
            py_bool(closed)
        )
    }
}

/// Deliveries from `Client.subscribe`, as an async iterator.
#[pyclass(module = "vodtask", frozen)]
pub struct Subscription {
    inner: Arc<Mutex<vodtask_client::Subscription>>,
    stop: CancellationToken,
}

#[pymethods]
impl Subscription {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (inner, stop) = (Arc::clone(&self.inner), self.stop.clone());
        awaitable(py, async move {
            let mut sub = tokio::select! {
                _ = stop.cancelled() => return Err(PyStopAsyncIteration::new_err(())),
                s = inner.lock() => s,
            };
            let next = tokio::select! {
                _ = stop.cancelled() => None,
                d = sub.next() => d,
            };
            match next {
                Some(Ok(d)) => Ok(Delivery { inner: Arc::new(d) }),
                Some(Err(e)) => Err(to_py(e)),
                None => {
                    sub.close();
                    Err(PyStopAsyncIteration::new_err(()))
                }
            }
        })
    }

    /// Ends the stream (the iteration stops); the server releases the
    /// events not yet settled.
    fn close(&self) {
        self.stop.cancel();
        if let Ok(sub) = self.inner.try_lock() {
            sub.close();
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A task's states from `Client.watch_task`, as an async iterator that
/// ends after the state in which the task ended.
#[pyclass(module = "vodtask", frozen)]
pub struct TaskWatch {
    inner: Arc<Mutex<vodtask_client::TaskWatch>>,
}

#[pymethods]
impl TaskWatch {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = Arc::clone(&self.inner);
        awaitable(py, async move {
            match inner.lock().await.next().await {
                Some(Ok(state)) => Ok(Task { inner: state.task }),
                Some(Err(e)) => Err(to_py(e)),
                None => Err(PyStopAsyncIteration::new_err(())),
            }
        })
    }

    /// Stops following the task (the iteration stops).
    fn close(&self) {
        if let Ok(watch) = self.inner.try_lock() {
            watch.close();
        }
    }
}

struct Pages {
    request: pb::ListTasksRequest,
    buffer: VecDeque<pb::Task>,
    done: bool,
}

/// Tasks from `Client.list_tasks`, as an async iterator over the pages.
#[pyclass(module = "vodtask", frozen)]
pub struct TaskIterator {
    client: vodtask_client::Client,
    state: Arc<Mutex<Pages>>,
}

#[pymethods]
impl TaskIterator {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (client, state) = (self.client.clone(), Arc::clone(&self.state));
        awaitable(py, async move {
            let mut pages = state.lock().await;
            while pages.buffer.is_empty() && !pages.done {
                let page = client
                    .list_tasks(pages.request.clone())
                    .await
                    .map_err(to_py)?;
                pages.done = page.scroll_token.is_empty();
                pages.request.scroll_token = page.scroll_token;
                pages.buffer.extend(page.tasks);
            }
            match pages.buffer.pop_front() {
                Some(inner) => Ok(Task { inner }),
                None => Err(PyStopAsyncIteration::new_err(())),
            }
        })
    }
}

//! The native client under `vodtask.Client` (python/vodtask/_client.py):
//! every unary call by name with JSON text both ways (`call`), the uploads,
//! the task watch, the subscription and the consumer (its Python handler:
//! consume.rs); and the module-level `connect`, `open` and `verify_webhook`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::aio::awaitable;
use crate::consume::PyHandler;
use pyo3::exceptions::{PyOSError, PyStopAsyncIteration};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use tokio::sync::Mutex;
use vodtask_client::json::{FieldNames, from_json, to_json};
use vodtask_client::{
    CancellationToken, ConnectOptions, ConsumeOptions, OpenOptions, SyncMode, pb,
};

use crate::errors::{invalid, to_py, to_py_in};
use crate::events::{Delivery, WebhookEvent};

/// `True` / `False`.
fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

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
) -> PyResult<WebhookEvent> {
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
        .map(WebhookEvent::new)
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

/// The native client; `vodtask.Client` (python/vodtask/_client.py) wraps it.
#[pyclass(name = "NativeClient", module = "vodtask._vodtask", frozen)]
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

    /// The unary RPC `method` ("DescribeTask"...) with the request as JSON
    /// text in the proto's names; resolves to the response as JSON text.
    /// `call` is the Python method, named in conversion errors.
    fn call<'py>(
        &self,
        py: Python<'py>,
        call: String,
        method: String,
        request_json: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request: serde_json::Value = serde_json::from_str(request_json)
            .map_err(|e| invalid(format!("{call}: request: {e}")))?;
        let c = self.inner()?;
        awaitable(py, async move {
            c.call_json(&method, &request, FieldNames::Proto)
                .await
                .map(|answer| answer.to_string())
                .map_err(|e| to_py_in(&call, e))
        })
    }

    /// Uploads a file from disk; resolves to the UploadMediaResponse as
    /// JSON text. A file that cannot be read raises the OSError Python
    /// would (FileNotFoundError...), with the path as its filename.
    fn upload_file<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        file_name: Option<String>,
        source_context: String,
        plan_json: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let plan = procedure_plan("upload_file", plan_json)?;
        let c = self.inner()?;
        awaitable(py, async move {
            c.upload_file(&path, file_name.as_deref(), &source_context, plan)
                .await
                .map(|r| to_json(&r, FieldNames::Proto).to_string())
                .map_err(|e| match e {
                    vodtask_client::Error::File { path, source } => os_error(&source, &path),
                    e => to_py_in("upload_file", e),
                })
        })
    }

    fn upload_bytes<'py>(
        &self,
        py: Python<'py>,
        data: Vec<u8>,
        file_name: String,
        source_context: String,
        plan_json: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let plan = procedure_plan("upload_bytes", plan_json)?;
        let c = self.inner()?;
        awaitable(py, async move {
            c.upload_bytes(data, &file_name, &source_context, plan)
                .await
                .map(|r| to_json(&r, FieldNames::Proto).to_string())
                .map_err(|e| to_py_in("upload_bytes", e))
        })
    }

    /// Resolves to the ended task as JSON text.
    fn wait_task<'py>(&self, py: Python<'py>, task_id: String) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner()?;
        awaitable(py, async move {
            c.wait_task(&task_id)
                .await
                .map(|task| to_json(&task, FieldNames::Proto).to_string())
                .map_err(to_py)
        })
    }

    fn watch_task(&self, task_id: String) -> PyResult<TaskStateStream> {
        // The watch's feeder is spawned on the binding's runtime.
        let _runtime = pyo3_async_runtimes::tokio::get_runtime().enter();
        Ok(TaskStateStream {
            inner: Arc::new(Mutex::new(self.inner()?.watch_task(&task_id))),
        })
    }

    #[pyo3(signature = (max_in_flight=16))]
    fn subscribe(&self, max_in_flight: i32) -> PyResult<Subscription> {
        // The subscription's feeder is spawned on the binding's runtime.
        let _runtime = pyo3_async_runtimes::tokio::get_runtime().enter();
        Ok(Subscription {
            inner: Arc::new(Mutex::new(self.inner()?.subscribe(max_in_flight))),
            stop: CancellationToken::new(),
        })
    }

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

/// An upload's procedure, the JSON text of a ProcedurePlan.
fn procedure_plan(call: &str, plan_json: Option<&str>) -> PyResult<Option<pb::ProcedurePlan>> {
    let Some(text) = plan_json else {
        return Ok(None);
    };
    let tree: serde_json::Value =
        serde_json::from_str(text).map_err(|e| invalid(format!("{call}: procedure: {e}")))?;
    from_json::<pb::ProcedurePlan>(&tree, FieldNames::Proto)
        .map(Some)
        .map_err(|e| to_py_in(call, e))
}

/// The OSError Python raises for `e` on `path`: `OSError(errno, strerror,
/// filename)` makes the subclass of the errno (FileNotFoundError...).
fn os_error(e: &std::io::Error, path: &std::path::Path) -> PyErr {
    let filename = path.to_string_lossy().into_owned();
    match e.raw_os_error() {
        Some(errno) => {
            let text = e.to_string();
            let strerror = text
                .split_once(" (os error")
                .map_or(text.as_str(), |(s, _)| s)
                .to_string();
            PyOSError::new_err((errno, strerror, filename))
        }
        None => PyOSError::new_err(format!("{filename}: {e}")),
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
                Some(Ok(d)) => Ok(Delivery::new(d)),
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

/// A task's states from `Client.watch_task`, each as the JSON text of
/// the task, ending after the state in which the task ended.
#[pyclass(module = "vodtask", frozen)]
pub struct TaskStateStream {
    inner: Arc<Mutex<vodtask_client::TaskWatch>>,
}

#[pymethods]
impl TaskStateStream {
    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = Arc::clone(&self.inner);
        awaitable(py, async move {
            match inner.lock().await.next().await {
                Some(Ok(state)) => Ok(to_json(&state.task, FieldNames::Proto).to_string()),
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

//! The native half of the Node package `vodtask`: a thin napi-rs binding
//! over `vodtask-client`. Messages cross as JSON text: index.js sends a
//! request made with `JSON.stringify` and reads the answer with
//! `JSON.parse`, and `vodtask_client::json` converts between the text's tree
//! and the proto message through the descriptors. So no message has a
//! shape here: a new field of the contract needs nothing in this crate.
//! The exceptions are the consumer's events (consume.rs, tuned), the
//! options of connect and open (not messages) and verifyWebhook's event.
//!
//! JSON text rather than napi's `serde_json::Value` conversion: V8 builds
//! an object from text faster than N-API calls build it property by
//! property (README.md of this package, "How calls cross into Rust").

mod consume;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{Buffer, Either, Function};
use napi_derive::napi;
use serde_json::Value;
use tokio::sync::Mutex;
use vodtask_client::json::{FieldNames, from_json, to_json};
use vodtask_client::{CancellationToken, Client, ConsumeOptions, SyncMode, pb};

/// The runtime behind every Promise: one tokio worker, where napi-rs
/// would start one per core. The work here is I/O for a single-threaded JS
/// program; with two workers the one that finds nothing to do parks and is
/// woken again for nearly every event, and those context switches cost
/// more than the work. If the runtime cannot be built, napi-rs builds its
/// default one at first use.
#[napi_derive::module_init]
fn init() {
    if let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        napi::bindgen_prelude::create_custom_tokio_runtime(rt);
    }
}

// ---------------------------------------------------------------- errors

/// Every error crosses into JS as `"<GRPC_CODE>: <message>"`; index.js
/// turns it into an `Error` with `code` set to the gRPC name.
fn to_js(e: vodtask_client::Error) -> napi::Error {
    let message = match &e {
        vodtask_client::Error::Status { message, .. } => message.clone(),
        other => other.to_string(),
    };
    napi::Error::new(
        napi::Status::GenericFailure,
        format!("{}: {message}", e.code_name()),
    )
}

fn invalid(message: impl std::fmt::Display) -> napi::Error {
    coded("INVALID_ARGUMENT", message)
}

/// An error of the binding itself, with the gRPC code name it reports.
fn coded(code: &str, message: impl std::fmt::Display) -> napi::Error {
    napi::Error::new(napi::Status::GenericFailure, format!("{code}: {message}"))
}

/// A request the converter refused (`spec.transcode.fileId: expected a
/// string, got number`): napi's InvalidArg, which index.js reports as
/// INVALID_ARGUMENT with the call's name in front, as it does its own
/// argument errors. The service's refusals keep their message as it is.
fn request_error(e: vodtask_client::Error) -> napi::Error {
    match e {
        vodtask_client::Error::InvalidInput(m) => napi::Error::new(napi::Status::InvalidArg, m),
        e => to_js(e),
    }
}

fn parse_request(text: &str) -> napi::Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| napi::Error::new(napi::Status::InvalidArg, format!("not JSON: {e}")))
}

// ------------------------------------------------------- connect and open

#[napi(object)]
pub struct ConnectOptions {
    pub api_key: String,
    /// Deadline of each call in milliseconds (default 60000).
    pub timeout_ms: Option<u32>,
    /// Default 5000. Bounds the TCP connection and, for https://, the TLS
    /// handshake.
    pub connect_timeout_ms: Option<u32>,
    /// For https://: a CA trusted besides the system's roots, as the PEM
    /// itself (a Buffer, or text with its -----BEGIN line) or the path of a
    /// PEM file.
    #[napi(ts_type = "string | Buffer")]
    pub ca_cert: Option<Either<String, Buffer>>,
}

#[napi(object)]
pub struct OpenOptions {
    /// The app to act as; by default the data dir's `default` app.
    pub api_key: Option<String>,
    /// Tasks run at once; by default the number of cores.
    pub workers: Option<u32>,
    /// Where to serve media files over HTTP, e.g. '127.0.0.1:8080'; by
    /// default a free port on 127.0.0.1.
    pub http_listen: Option<String>,
    pub ffmpeg: Option<String>,
    pub ffprobe: Option<String>,
    /// 'full' (the default) or 'normal'.
    #[napi(ts_type = "'full' | 'normal'")]
    pub sync: Option<String>,
}

/// Connects to a vodtask server, e.g. `http://127.0.0.1:50051`, or over
/// TLS, `https://` (`caCert` adds a CA to the system's roots).
#[napi]
pub async fn connect(url: String, options: ConnectOptions) -> napi::Result<NativeClient> {
    let mut o = vodtask_client::ConnectOptions::new(options.api_key);
    if let Some(ms) = options.timeout_ms {
        o.timeout = Duration::from_millis(u64::from(ms));
    }
    if let Some(ms) = options.connect_timeout_ms {
        o.connect_timeout = Duration::from_millis(u64::from(ms));
    }
    o.ca_cert_pem = options.ca_cert.map(ca_cert_pem).transpose()?;
    let client = Client::connect(&url, o).await.map_err(|e| match e {
        // The client names the option as Rust and Python do.
        vodtask_client::Error::InvalidInput(m) if m.starts_with("ca_cert:") => {
            invalid(m.replacen("ca_cert:", "caCert:", 1))
        }
        e => to_js(e),
    })?;
    Ok(NativeClient::new(client))
}

fn ca_cert_pem(value: Either<String, Buffer>) -> napi::Result<Vec<u8>> {
    match value {
        Either::B(pem) => Ok(pem.to_vec()),
        Either::A(pem) if pem.contains("-----BEGIN") => Ok(pem.into_bytes()),
        Either::A(path) => {
            std::fs::read(&path).map_err(|e| invalid(format!("caCert: cannot read {path}: {e}")))
        }
    }
}

/// Opens (or creates) a data dir and runs the engine in this process.
#[napi]
pub async fn open(data_dir: String, options: Option<OpenOptions>) -> napi::Result<NativeClient> {
    let mut o = vodtask_client::OpenOptions::default();
    if let Some(options) = options {
        o.api_key = options.api_key;
        o.workers = options.workers.map(|w| w as usize);
        o.http_listen = options
            .http_listen
            .map(|a| {
                a.parse()
                    .map_err(|e| invalid(format!("httpListen: {e}: {a:?}")))
            })
            .transpose()?;
        o.ffmpeg = options.ffmpeg.map(PathBuf::from);
        o.ffprobe = options.ffprobe.map(PathBuf::from);
        if let Some(sync) = options.sync {
            o.sync = sync
                .parse::<SyncMode>()
                .map_err(|e| invalid(format!("sync: {e}")))?;
        }
    }
    let client = Client::open(data_dir, o).await.map_err(to_js)?;
    Ok(NativeClient::new(client))
}

// ---------------------------------------------------------------- webhooks

#[napi(object)]
pub struct WebhookEvent {
    pub event_id: String,
    pub event_type: String,
    pub task_id: String,
    pub task_sequence: i64,
    /// The envelope's `data`.
    pub data: Value,
    /// The body as received.
    pub content_json: String,
}

/// Checks a vodtask HTTP callback (Standard Webhooks signature and
/// timestamp) and parses it. `headers` lower- or mixed-case names.
#[napi]
pub fn verify_webhook(
    secret: String,
    headers: HashMap<String, String>,
    body: Either<String, Buffer>,
) -> napi::Result<WebhookEvent> {
    let headers: Vec<(String, String)> = headers.into_iter().collect();
    let body: &[u8] = match &body {
        Either::A(s) => s.as_bytes(),
        Either::B(b) => b,
    };
    vodtask_client::verify_webhook(&secret, &headers, body)
        .map(|w| WebhookEvent {
            event_id: w.event_id,
            event_type: w.event_type,
            task_id: w.task_id,
            task_sequence: w.task_sequence,
            data: w.data,
            content_json: w.content_json,
        })
        .map_err(to_js)
}

// ---------------------------------------------------------------- client

#[napi]
pub struct NativeClient {
    /// Taken by `close`: an embedded engine (and its data dir's lock) goes
    /// with the last clone, not when V8 collects this object, so the data
    /// dir opens again at once.
    slot: std::sync::Mutex<Option<Client>>,
    embedded: bool,
}

impl NativeClient {
    fn new(client: Client) -> NativeClient {
        NativeClient {
            embedded: client.is_embedded(),
            slot: std::sync::Mutex::new(Some(client)),
        }
    }

    fn client(&self) -> napi::Result<Client> {
        self.slot
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .ok_or_else(|| coded("UNAVAILABLE", "client: closed"))
    }
}

#[napi]
impl NativeClient {
    #[napi(getter)]
    pub fn is_embedded(&self) -> bool {
        self.embedded
    }

    /// Embedded: stops the engine (running tasks go back to the queue) and
    /// its file server. The client refuses calls afterwards; closing twice
    /// does nothing.
    #[napi]
    pub async fn close(&self) {
        let taken = self.slot.lock().ok().and_then(|mut c| c.take());
        if let Some(client) = taken {
            client.close().await;
        }
    }

    /// The unary RPC `method` ("DescribeTask", "ListTasks", ...): the
    /// request as JSON text, camelCase; resolves to the response's.
    #[napi]
    pub async fn call(&self, method: String, request: String) -> napi::Result<String> {
        let request = parse_request(&request)?;
        self.client()?
            .call_json(&method, &request, FieldNames::Json)
            .await
            .map(|response| response.to_string())
            .map_err(request_error)
    }

    /// `header`: an UploadMediaHeader as JSON text; without a fileName the
    /// path's last component. Resolves to the UploadMediaResponse's text.
    #[napi]
    pub async fn upload_file(&self, path: String, header: String) -> napi::Result<String> {
        let header: pb::UploadMediaHeader =
            from_json(&parse_request(&header)?, FieldNames::Json).map_err(request_error)?;
        let name = Some(header.file_name.as_str()).filter(|n| !n.is_empty());
        self.client()?
            .upload_file(
                Path::new(&path),
                name,
                &header.source_context,
                header.procedure,
            )
            .await
            .map(|r| to_json(&r, FieldNames::Json).to_string())
            .map_err(to_js)
    }

    #[napi]
    pub async fn upload_bytes(&self, bytes: Buffer, header: String) -> napi::Result<String> {
        let header: pb::UploadMediaHeader =
            from_json(&parse_request(&header)?, FieldNames::Json).map_err(request_error)?;
        let bytes = bytes.to_vec();
        self.client()?
            .upload_bytes(
                bytes,
                &header.file_name,
                &header.source_context,
                header.procedure,
            )
            .await
            .map(|r| to_json(&r, FieldNames::Json).to_string())
            .map_err(to_js)
    }

    /// Waits until the task ends and resolves to it as it ended (JSON
    /// text); takes nothing from the app's event queue.
    #[napi]
    pub async fn wait_task(&self, task_id: String) -> napi::Result<String> {
        self.client()?
            .wait_task(&task_id)
            .await
            .map(|t| to_json(&t, FieldNames::Json).to_string())
            .map_err(to_js)
    }

    /// The task now, then at each change, until it ends.
    #[napi]
    pub fn watch_task(&self, task_id: String) -> napi::Result<NativeTaskWatch> {
        let client = self.client()?;
        let watch =
            napi::bindgen_prelude::within_runtime_if_available(move || client.watch_task(&task_id));
        Ok(NativeTaskWatch {
            inner: Arc::new(Mutex::new(watch)),
        })
    }

    /// A reliable subscription (reconnects after a broken stream).
    #[napi]
    pub fn subscribe(&self, max_in_flight: Option<i32>) -> napi::Result<NativeSubscription> {
        let client = self.client()?;
        let subscription = napi::bindgen_prelude::within_runtime_if_available(move || {
            client.subscribe(max_in_flight.unwrap_or(16))
        });
        Ok(NativeSubscription {
            inner: Arc::new(Mutex::new(subscription)),
            stop: CancellationToken::new(),
        })
    }

    /// Runs `handler(ids, events)` with the events that arrived since its
    /// last call, until `stop()`; index.js reports each handler's outcome
    /// through `NativeConsumer.settle(ids, reasons)`: settled without a
    /// reason acks, with one nacks.
    #[napi(
        ts_args_type = "handler: (ids: number[], events: RawEvent[]) => void, concurrency?: number | undefined | null, maxInFlight?: number | undefined | null"
    )]
    pub fn consume(
        &self,
        handler: Function<consume::Batch, ()>,
        concurrency: Option<u32>,
        max_in_flight: Option<i32>,
    ) -> napi::Result<NativeConsumer> {
        // Strong: a running consumer keeps Node alive, as a server would.
        // It is released when `consume` ends (stop), with the handler.
        let call = Arc::new(
            handler
                .build_threadsafe_function::<consume::Batch>()
                .callee_handled::<false>()
                .build()?,
        );
        let outcomes = Arc::new(consume::Outcomes::default());
        let handler = consume::JsHandler {
            call,
            outcomes: Arc::clone(&outcomes),
        };
        let defaults = ConsumeOptions::default();
        let options = ConsumeOptions {
            concurrency: concurrency.map_or(defaults.concurrency, |c| c as usize),
            max_in_flight: max_in_flight.unwrap_or(defaults.max_in_flight),
        };
        let stop = CancellationToken::new();
        let client = self.client()?;
        let run = {
            let stop = stop.clone();
            napi::bindgen_prelude::within_runtime_if_available(move || {
                tokio::spawn(async move { client.consume(handler, options, stop).await })
            })
        };
        Ok(NativeConsumer {
            stop,
            outcomes,
            run: Arc::new(Mutex::new(Some(run))),
        })
    }
}

#[napi]
pub struct NativeTaskWatch {
    inner: Arc<Mutex<vodtask_client::TaskWatch>>,
}

#[napi]
impl NativeTaskWatch {
    /// The next state (a Task as JSON text); null after the one in which
    /// the task ended.
    #[napi]
    pub async fn next(&self) -> napi::Result<Option<String>> {
        match self.inner.lock().await.next().await {
            Some(Ok(state)) => Ok(Some(to_json(&state.task, FieldNames::Json).to_string())),
            Some(Err(e)) => Err(to_js(e)),
            None => Ok(None),
        }
    }

    /// Stops following the task.
    #[napi]
    pub fn close(&self) {
        if let Ok(watch) = self.inner.try_lock() {
            watch.close();
        }
    }
}

// ---------------------------------------------------------------- events

#[napi]
pub struct NativeSubscription {
    inner: Arc<Mutex<vodtask_client::Subscription>>,
    stop: CancellationToken,
}

#[napi]
impl NativeSubscription {
    /// The next delivery; null once closed.
    #[napi]
    pub async fn next(&self) -> napi::Result<Option<NativeDelivery>> {
        let mut subscription = self.inner.lock().await;
        tokio::select! {
            _ = self.stop.cancelled() => {
                subscription.close();
                Ok(None)
            }
            d = subscription.next() => match d {
                Some(Ok(d)) => Ok(Some(NativeDelivery { inner: Arc::new(d) })),
                Some(Err(e)) => Err(to_js(e)),
                None => Ok(None),
            },
        }
    }

    /// Ends the stream; the server releases its unconfirmed events.
    #[napi]
    pub fn close(&self) {
        self.stop.cancel();
        if let Ok(subscription) = self.inner.try_lock() {
            subscription.close();
        }
    }
}

#[napi]
pub struct NativeDelivery {
    inner: Arc<vodtask_client::Delivery>,
}

/// 'CONFIRMED', 'EXPIRED', ...: the name without its enum's prefix, as the
/// JSON trees spell enums.
fn handle_status(s: pb::HandleStatus) -> String {
    let name = s.as_str_name();
    name.strip_prefix("HANDLE_STATUS_")
        .unwrap_or(name)
        .to_string()
}

#[napi]
impl NativeDelivery {
    #[napi(getter)]
    pub fn event(&self) -> consume::RawEvent {
        consume::raw_event(self.inner.event.clone())
    }

    #[napi(getter)]
    pub fn msg_handle(&self) -> String {
        self.inner.handle().to_string()
    }

    #[napi]
    pub async fn ack(&self) -> napi::Result<String> {
        self.inner.ack().await.map(handle_status).map_err(to_js)
    }

    /// Without a delay the server backs off exponentially.
    #[napi]
    pub async fn nack(&self, delay_seconds: Option<u32>) -> napi::Result<String> {
        self.inner
            .nack(delay_seconds.map(|s| Duration::from_secs(u64::from(s))))
            .await
            .map(handle_status)
            .map_err(to_js)
    }

    /// Extends the lease to `seconds` from now.
    #[napi]
    pub async fn extend(&self, seconds: i32) -> napi::Result<String> {
        self.inner
            .extend(seconds)
            .await
            .map(handle_status)
            .map_err(to_js)
    }
}

type Run = tokio::task::JoinHandle<vodtask_client::Result<()>>;

#[napi]
pub struct NativeConsumer {
    stop: CancellationToken,
    outcomes: Arc<consume::Outcomes>,
    run: Arc<Mutex<Option<Run>>>,
}

#[napi]
impl NativeConsumer {
    /// The outcomes of the handlers `ids`: `reasons[i]` null acks the
    /// event, a string (the error) nacks it.
    #[napi]
    pub fn settle(&self, ids: Vec<u32>, reasons: Vec<Option<String>>) {
        self.outcomes.settle(&ids, reasons);
    }

    /// Stops taking events; handlers that run finish and settle theirs.
    #[napi]
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Resolves when the consumer stopped; rejects when it failed.
    #[napi]
    pub async fn wait(&self) -> napi::Result<()> {
        let run = self.run.lock().await.take();
        match run {
            Some(run) => match run.await {
                Ok(r) => r.map_err(to_js),
                Err(e) => Err(napi::Error::new(
                    napi::Status::GenericFailure,
                    format!("INTERNAL: the consumer task failed: {e}"),
                )),
            },
            None => Ok(()),
        }
    }
}

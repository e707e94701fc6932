//! The native half of the Node package `vodtask`: a thin napi-rs binding
//! over `vodtask-client`, with no logic of its own beyond converting values
//! (see convert.rs). index.js wraps it: errors with a `code`, async
//! iterators, `AbortSignal`s, `Date`s.

mod consume;
mod convert;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{Buffer, Either, Function};
use napi_derive::napi;
use tokio::sync::Mutex;
use vodtask_client::{CancellationToken, Client, ConsumeOptions, SyncMode, pb};

use convert::*;

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
    /// 'full' (the default): every commit is fsynced before it is
    /// acknowledged; 'normal': acknowledged once the OS has it (survives
    /// the process crashing, not a power loss).
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
        .map(webhook_event)
        .map_err(to_js)
}

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

    #[napi]
    pub async fn upload_file(
        &self,
        path: String,
        options: Option<UploadOptions>,
    ) -> napi::Result<UploadResult> {
        let (name, context, procedure) = upload_options(options)?;
        self.client()?
            .upload_file(
                std::path::Path::new(&path),
                name.as_deref(),
                &context,
                procedure,
            )
            .await
            .map(upload_result)
            .map_err(to_js)
    }

    #[napi]
    pub async fn upload_bytes(
        &self,
        bytes: Buffer,
        file_name: String,
        options: Option<UploadOptions>,
    ) -> napi::Result<UploadResult> {
        let (_, context, procedure) = upload_options(options)?;
        let bytes = bytes.to_vec();
        self.client()?
            .upload_bytes(bytes, &file_name, &context, procedure)
            .await
            .map(upload_result)
            .map_err(to_js)
    }

    #[napi]
    pub async fn describe_media(&self, file_id: String) -> napi::Result<MediaInfo> {
        self.client()?
            .describe_media(&file_id)
            .await
            .map(media_info)
            .map_err(to_js)
    }

    /// Returns the task id.
    #[napi]
    pub async fn create_task(
        &self,
        spec: TaskSpec,
        options: Option<CreateTaskOptions>,
    ) -> napi::Result<String> {
        let spec = spec_to_pb(spec)?;
        let options = options.unwrap_or(CreateTaskOptions {
            priority: None,
            session_id: None,
            session_context: None,
        });
        let request = pb::CreateTaskRequest {
            spec: Some(spec),
            priority: options.priority.unwrap_or(0),
            session_id: options.session_id.unwrap_or_default(),
            session_context: options.session_context.unwrap_or_default(),
        };
        self.client()?.create_task(request).await.map_err(to_js)
    }

    #[napi]
    pub async fn describe_task(&self, task_id: String) -> napi::Result<Task> {
        self.client()?
            .describe_task(&task_id)
            .await
            .map(task)
            .map_err(to_js)
    }

    /// Waits until the task ends and returns it as it ended; takes nothing
    /// from the app's event queue.
    #[napi]
    pub async fn wait_task(&self, task_id: String) -> napi::Result<Task> {
        self.client()?
            .wait_task(&task_id)
            .await
            .map(task)
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

    #[napi]
    pub async fn list_tasks(&self, options: Option<ListTasksOptions>) -> napi::Result<TaskList> {
        let request = match options {
            Some(o) => list_request(o)?,
            None => pb::ListTasksRequest::default(),
        };
        self.client()?
            .list_tasks(request)
            .await
            .map(task_list)
            .map_err(to_js)
    }

    #[napi]
    pub async fn task_overview(
        &self,
        create_time: Option<TimeRange>,
    ) -> napi::Result<TaskOverview> {
        let request = overview_request(create_time)?;
        self.client()?
            .task_overview(request)
            .await
            .map(overview)
            .map_err(to_js)
    }

    #[napi]
    pub async fn redo_task(&self, task_id: String) -> napi::Result<Task> {
        self.client()?
            .redo_task(&task_id)
            .await
            .map(task)
            .map_err(to_js)
    }

    #[napi]
    pub async fn cancel_task(&self, task_id: String) -> napi::Result<Task> {
        self.client()?
            .cancel_task(&task_id)
            .await
            .map(task)
            .map_err(to_js)
    }

    #[napi]
    pub async fn pull_events(
        &self,
        max_events: Option<i32>,
        wait_seconds: Option<i32>,
    ) -> napi::Result<Vec<RawPulledEvent>> {
        self.client()?
            .pull_events(max_events.unwrap_or(0), wait_seconds.unwrap_or(5))
            .await
            .map(|ds| ds.into_iter().filter_map(pulled).collect())
            .map_err(to_js)
    }

    #[napi]
    pub async fn confirm_events(
        &self,
        msg_handles: Vec<String>,
    ) -> napi::Result<Vec<HandleResult>> {
        self.client()?
            .confirm_events(msg_handles)
            .await
            .map(handle_results)
            .map_err(to_js)
    }

    #[napi]
    pub async fn extend_events(
        &self,
        msg_handles: Vec<String>,
        seconds: i32,
    ) -> napi::Result<Vec<HandleResult>> {
        self.client()?
            .extend_events(msg_handles, seconds)
            .await
            .map(handle_results)
            .map_err(to_js)
    }

    #[napi]
    pub async fn nack_events(
        &self,
        msg_handles: Vec<String>,
        delay_seconds: Option<i32>,
    ) -> napi::Result<Vec<HandleResult>> {
        self.client()?
            .nack_events(msg_handles, delay_seconds)
            .await
            .map(handle_results)
            .map_err(to_js)
    }

    #[napi]
    pub async fn event_config(&self) -> napi::Result<EventConfig> {
        self.client()?
            .event_config()
            .await
            .map(event_config)
            .map_err(to_js)
    }

    #[napi]
    pub async fn modify_event_config(
        &self,
        changes: EventConfigChanges,
    ) -> napi::Result<EventConfig> {
        let request = config_request(changes)?;
        self.client()?
            .modify_event_config(request)
            .await
            .map(event_config)
            .map_err(to_js)
    }

    #[napi]
    pub async fn events_state(&self) -> napi::Result<EventsState> {
        self.client()?
            .events_state()
            .await
            .map(events_state)
            .map_err(to_js)
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

fn upload_options(
    options: Option<UploadOptions>,
) -> napi::Result<(Option<String>, String, Option<pb::ProcedurePlan>)> {
    let Some(o) = options else {
        return Ok((None, String::new(), None));
    };
    let procedure = o
        .procedure
        .map(|p| plan_to_pb("procedure", p))
        .transpose()?;
    Ok((o.file_name, o.source_context.unwrap_or_default(), procedure))
}

#[napi]
pub struct NativeTaskWatch {
    inner: Arc<Mutex<vodtask_client::TaskWatch>>,
}

#[napi]
impl NativeTaskWatch {
    /// The next state; null after the one in which the task ended.
    #[napi]
    pub async fn next(&self) -> napi::Result<Option<Task>> {
        match self.inner.lock().await.next().await {
            Some(Ok(state)) => Ok(Some(task(state.task))),
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

#[napi]
impl NativeDelivery {
    #[napi(getter)]
    pub fn event(&self) -> RawEvent {
        convert::raw_event(self.inner.event.clone())
    }

    #[napi(getter)]
    pub fn msg_handle(&self) -> String {
        self.inner.handle().to_string()
    }

    /// 'CONFIRMED', 'ALREADY_CONFIRMED', 'EXPIRED' or 'UNKNOWN'.
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

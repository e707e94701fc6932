//! The client: the operations of the gRPC contract, over either transport.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Endpoint;
use vodtask_core::store::SyncMode;
use vodtask_proto::v1 as pb;
use vodtask_proto::v1::event_service_client::EventServiceClient;
use vodtask_proto::v1::media_service_client::MediaServiceClient;
use vodtask_proto::v1::task_service_client::TaskServiceClient;

use crate::consumer::{ConsumeOptions, Handler, Subscription};
use crate::error::{Error, Result};
use crate::transport::{Auth, Transport};

/// Upload chunks; the server accepts messages up to 16 MiB.
const CHUNK_BYTES: usize = 1 << 20;

pub(crate) type Tasks = TaskServiceClient<InterceptedService<Transport, Auth>>;
pub(crate) type Media = MediaServiceClient<InterceptedService<Transport, Auth>>;
pub(crate) type Events = EventServiceClient<InterceptedService<Transport, Auth>>;

/// Whose callback attempts to list.
#[derive(Debug, Clone, Copy)]
pub enum AttemptsOf<'a> {
    /// One event, by its id.
    Event(&'a str),
    /// Every event of one task.
    Task(&'a str),
}

/// How to reach a server.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub api_key: String,
    /// Deadline of each call (a long poll's wait is added to it).
    pub timeout: Duration,
    /// Bounds the TCP connection and, for `https://`, the TLS handshake
    /// (the first connection and every reconnection).
    pub connect_timeout: Duration,
    /// For `https://`: CA certificates (PEM, one or more blocks) trusted
    /// besides the system's roots, e.g. the CA of a self-signed server
    /// certificate (`std::fs::read("ca.pem")?`).
    pub ca_cert_pem: Option<Vec<u8>>,
}

impl ConnectOptions {
    pub fn new(api_key: impl Into<String>) -> Self {
        ConnectOptions {
            api_key: api_key.into(),
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            ca_cert_pem: None,
        }
    }
}

/// How to open an engine in this process.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The app to act as; by default the data dir's `default` app.
    pub api_key: Option<String>,
    /// Tasks run at once; by default the number of cores.
    pub workers: Option<usize>,
    /// Where to serve media files over HTTP; by default a free port on
    /// 127.0.0.1 (file URLs point there).
    pub http_listen: Option<SocketAddr>,
    pub ffmpeg: Option<PathBuf>,
    pub ffprobe: Option<PathBuf>,
    /// Whether every commit is fsynced (the default) or acknowledged once
    /// the OS has it (as the server's `--sync normal`).
    pub sync: SyncMode,
}

/// One vodtask client. Cheap to clone; clones share the connection (or the
/// embedded engine).
#[derive(Clone)]
pub struct Client {
    /// For calls by name (`call_json`); the typed clients below wrap the same.
    pub(crate) grpc: tonic::client::Grpc<InterceptedService<Transport, Auth>>,
    pub(crate) tasks: Tasks,
    pub(crate) media: Media,
    pub(crate) events: Events,
    embedded: Option<Arc<Embedded>>,
}

/// An engine this client opened, with its file server.
struct Embedded {
    engine: vodtask_core::Engine,
    stop_files: CancellationToken,
}

impl Client {
    /// Connects to a server, e.g. `http://127.0.0.1:50051`, or over TLS
    /// `https://vodtask.example:50051` (the certificate checked against the
    /// system's roots and `ca_cert_pem`). The channel reconnects by itself
    /// (with backoff) after a broken connection.
    pub async fn connect(url: &str, options: ConnectOptions) -> Result<Client> {
        let https = scheme_of(url)?;
        let tls = match (&options.ca_cert_pem, https) {
            (Some(_), false) => {
                return Err(Error::InvalidInput(format!(
                    "ca_cert: given for {url:?}, which is not https://"
                )));
            }
            (pem, true) => Some(
                vodtask_transport::ClientTls::new(pem.as_deref(), "ca_cert")
                    .map_err(|e| Error::InvalidInput(e.to_string()))?,
            ),
            (None, false) => None,
        };
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| Error::InvalidInput(format!("url: {e}: {url:?}")))?
            .timeout(options.timeout);
        let connector = vodtask_transport::ConnectOptions {
            tls,
            timeout: Some(options.connect_timeout),
        };
        let channel = vodtask_transport::connect_with(endpoint, connector).await?;
        Client::over(Transport::Remote(channel), &options.api_key, None)
    }

    /// Opens (or creates) a data dir and runs the engine in this process:
    /// no server, the app's own process runs the tasks. One process per data
    /// dir; call `close` before the process ends.
    pub async fn open(data_dir: impl Into<PathBuf>, options: OpenOptions) -> Result<Client> {
        let data_dir = data_dir.into();
        let listener = tokio::net::TcpListener::bind(
            options
                .http_listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        )
        .await
        .map_err(|e| Error::InvalidInput(format!("http_listen: {e}")))?;
        let http_addr = listener
            .local_addr()
            .map_err(|e| Error::InvalidInput(format!("http_listen: {e}")))?;
        let mut config = vodtask_core::EngineConfig::new(&data_dir);
        if let Some(workers) = options.workers {
            config.workers = workers;
        }
        if let Some(ffmpeg) = options.ffmpeg {
            config.ffmpeg = ffmpeg;
        }
        if let Some(ffprobe) = options.ffprobe {
            config.ffprobe = ffprobe;
        }
        config.public_base_url = format!("http://{http_addr}");
        config.sync = options.sync;
        let engine = vodtask_core::Engine::open(config).await?;
        let api_key = match options.api_key {
            Some(key) => key,
            None => read_default_key(&data_dir)?,
        };
        let stop_files = CancellationToken::new();
        let stop = stop_files.clone();
        let health: vodtask_server::http::HealthCheck = Arc::new(engine.health_probe());
        let served_engine = engine.clone();
        tokio::spawn(async move {
            let limits = vodtask_server::http::HttpLimits::default();
            let served = vodtask_server::http::serve(
                served_engine,
                listener,
                limits,
                None,
                health,
                stop.cancelled_owned(),
            );
            if let Err(e) = served.await {
                tracing::error!("the embedded file server stopped: {e}");
            }
        });
        let routes = vodtask_server::grpc::routes(engine.clone());
        Client::over(
            Transport::Embedded(routes),
            &api_key,
            Some(Arc::new(Embedded { engine, stop_files })),
        )
    }

    fn over(
        transport: Transport,
        api_key: &str,
        embedded: Option<Arc<Embedded>>,
    ) -> Result<Client> {
        let header = format!("Bearer {api_key}")
            .parse()
            .map_err(|_| Error::InvalidInput("api_key: not a valid header value".into()))?;
        let auth = Auth(header);
        Ok(Client {
            grpc: tonic::client::Grpc::new(InterceptedService::new(
                transport.clone(),
                auth.clone(),
            )),
            tasks: TaskServiceClient::with_interceptor(transport.clone(), auth.clone()),
            media: MediaServiceClient::with_interceptor(transport.clone(), auth.clone())
                .max_encoding_message_size(16 << 20),
            events: EventServiceClient::with_interceptor(transport, auth),
            embedded,
        })
    }

    /// Whether this client runs an engine in process.
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Embedded: stops taking work, gives running tasks back to the queue
    /// (they run at the next open) and stops the file server. Remote: nothing.
    pub async fn close(&self) {
        if let Some(e) = &self.embedded {
            e.engine.shutdown().await;
            e.stop_files.cancel();
        }
    }

    /// Uploads a file from disk, read and sent 1 MiB at a time (a file of
    /// any size takes no more memory than that); `file_name` defaults to the
    /// path's last component. A file that cannot be opened or read is
    /// `Error::File`, and the upload is cancelled, never finished short.
    pub async fn upload_file(
        &self,
        path: &Path,
        file_name: Option<&str>,
        source_context: &str,
        procedure: Option<pb::ProcedurePlan>,
    ) -> Result<pb::UploadMediaResponse> {
        let file_error = |source| Error::File {
            path: path.to_path_buf(),
            source,
        };
        let file = tokio::fs::File::open(path).await.map_err(file_error)?;
        let name = match file_name {
            Some(n) => n.to_string(),
            None => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel();
        let chunks = futures::stream::unfold(
            (file, Some(failed_tx)),
            |(mut file, mut failed)| async move {
                let mut chunk = vec![0u8; CHUNK_BYTES];
                match read_full(&mut file, &mut chunk).await {
                    Ok(0) => None,
                    Ok(n) => {
                        chunk.truncate(n);
                        Some((chunk, (file, failed)))
                    }
                    Err(e) => {
                        if let Some(tx) = failed.take() {
                            let _ = tx.send(e);
                        }
                        // Never the end of the stream: that would finish
                        // the upload with the bytes sent so far. The call
                        // is dropped instead, which cancels it.
                        futures::future::pending().await
                    }
                }
            },
        );
        let upload = self.upload(header(&name, source_context, procedure), chunks);
        let failed = async {
            match failed_rx.await {
                Ok(e) => e,
                // The file was read to its end.
                Err(_) => futures::future::pending().await,
            }
        };
        tokio::select! {
            response = upload => response,
            e = failed => Err(file_error(e)),
        }
    }

    pub async fn upload_bytes(
        &self,
        bytes: Vec<u8>,
        file_name: &str,
        source_context: &str,
        procedure: Option<pb::ProcedurePlan>,
    ) -> Result<pb::UploadMediaResponse> {
        let chunks: Vec<Vec<u8>> = bytes.chunks(CHUNK_BYTES).map(<[u8]>::to_vec).collect();
        self.upload(
            header(file_name, source_context, procedure),
            tokio_stream::iter(chunks),
        )
        .await
    }

    /// UploadMedia: the header message, then the bytes.
    async fn upload(
        &self,
        header: pb::UploadMediaHeader,
        chunks: impl futures::Stream<Item = Vec<u8>> + Send + 'static,
    ) -> Result<pb::UploadMediaResponse> {
        use futures::StreamExt;
        use pb::upload_media_request::Part;
        let first = pb::UploadMediaRequest {
            part: Some(Part::Header(header)),
        };
        let rest = chunks.map(|c| pb::UploadMediaRequest {
            part: Some(Part::Chunk(c)),
        });
        let response = self
            .media
            .clone()
            .upload_media(futures::stream::once(async { first }).chain(rest))
            .await?;
        Ok(response.into_inner())
    }

    pub async fn describe_media(&self, file_id: &str) -> Result<pb::MediaInfo> {
        let request = pb::DescribeMediaRequest {
            file_id: file_id.to_string(),
        };
        Ok(self
            .media
            .clone()
            .describe_media(request)
            .await?
            .into_inner())
    }

    /// Returns the task id.
    pub async fn create_task(&self, request: pb::CreateTaskRequest) -> Result<String> {
        Ok(self
            .tasks
            .clone()
            .create_task(request)
            .await?
            .into_inner()
            .task_id)
    }

    pub async fn describe_task(&self, task_id: &str) -> Result<pb::Task> {
        let request = pb::DescribeTaskRequest {
            task_id: task_id.to_string(),
        };
        Ok(self
            .tasks
            .clone()
            .describe_task(request)
            .await?
            .into_inner())
    }

    pub async fn list_tasks(&self, request: pb::ListTasksRequest) -> Result<pb::ListTasksResponse> {
        Ok(self.tasks.clone().list_tasks(request).await?.into_inner())
    }

    pub async fn task_overview(
        &self,
        request: pb::GetTaskOverviewRequest,
    ) -> Result<pb::GetTaskOverviewResponse> {
        Ok(self
            .tasks
            .clone()
            .get_task_overview(request)
            .await?
            .into_inner())
    }

    pub async fn redo_task(&self, task_id: &str) -> Result<pb::Task> {
        let request = pb::RedoTaskRequest {
            task_id: task_id.to_string(),
        };
        Ok(self.tasks.clone().redo_task(request).await?.into_inner())
    }

    pub async fn cancel_task(&self, task_id: &str) -> Result<pb::Task> {
        let request = pb::CancelTaskRequest {
            task_id: task_id.to_string(),
        };
        Ok(self.tasks.clone().cancel_task(request).await?.into_inner())
    }

    pub async fn pull_events(
        &self,
        max_events: i32,
        wait_seconds: i32,
    ) -> Result<Vec<pb::EventDelivery>> {
        let request = pb::PullEventsRequest {
            max_events,
            wait_seconds: Some(wait_seconds),
        };
        Ok(self
            .events
            .clone()
            .pull_events(request)
            .await?
            .into_inner()
            .events)
    }

    pub async fn confirm_events(&self, msg_handles: Vec<String>) -> Result<Vec<pb::HandleResult>> {
        let request = pb::ConfirmEventsRequest { msg_handles };
        Ok(self
            .events
            .clone()
            .confirm_events(request)
            .await?
            .into_inner()
            .results)
    }

    pub async fn extend_events(
        &self,
        msg_handles: Vec<String>,
        seconds: i32,
    ) -> Result<Vec<pb::HandleResult>> {
        let request = pb::ExtendEventsRequest {
            msg_handles,
            seconds,
        };
        Ok(self
            .events
            .clone()
            .extend_events(request)
            .await?
            .into_inner()
            .results)
    }

    /// Without a delay the events back off exponentially with jitter.
    pub async fn nack_events(
        &self,
        msg_handles: Vec<String>,
        delay_seconds: Option<i32>,
    ) -> Result<Vec<pb::HandleResult>> {
        let request = pb::NackEventsRequest {
            msg_handles,
            delay_seconds,
        };
        Ok(self
            .events
            .clone()
            .nack_events(request)
            .await?
            .into_inner()
            .results)
    }

    pub async fn event_config(&self) -> Result<pb::EventConfig> {
        Ok(self
            .events
            .clone()
            .get_event_config(pb::GetEventConfigRequest {})
            .await?
            .into_inner())
    }

    pub async fn modify_event_config(
        &self,
        request: pb::ModifyEventConfigRequest,
    ) -> Result<pb::EventConfig> {
        Ok(self
            .events
            .clone()
            .modify_event_config(request)
            .await?
            .into_inner())
    }

    pub async fn events_state(&self) -> Result<pb::DescribeEventsStateResponse> {
        Ok(self
            .events
            .clone()
            .describe_events_state(pb::DescribeEventsStateRequest {})
            .await?
            .into_inner())
    }

    /// One page of the dead-letter list (`limit` 0 means 100); pass the
    /// answer's `next_page_token` for the next, empty at the end.
    pub async fn dead_letter_events(
        &self,
        limit: i32,
        page_token: &str,
    ) -> Result<pb::ListDeadLetterEventsResponse> {
        Ok(self
            .events
            .clone()
            .list_dead_letter_events(pb::ListDeadLetterEventsRequest {
                limit,
                page_token: page_token.to_owned(),
            })
            .await?
            .into_inner())
    }

    /// Puts dead-lettered events back in the queue: the named ones, or
    /// every one of the app's with `None`. Returns how many went back.
    pub async fn redrive_events(&self, event_ids: Option<Vec<String>>) -> Result<i64> {
        let request = match event_ids {
            Some(event_ids) => pb::RedriveEventsRequest {
                event_ids,
                all: false,
            },
            None => pb::RedriveEventsRequest {
                event_ids: Vec::new(),
                all: true,
            },
        };
        Ok(self
            .events
            .clone()
            .redrive_events(request)
            .await?
            .into_inner()
            .redriven)
    }

    /// Delivers events again now, whatever their state (1..1000 ids).
    /// Returns how many of them exist.
    pub async fn resend_events(&self, event_ids: Vec<String>) -> Result<i64> {
        Ok(self
            .events
            .clone()
            .resend_events(pb::ResendEventsRequest { event_ids })
            .await?
            .into_inner()
            .resent)
    }

    /// The HTTP callback attempts of one event, or of every event of a task.
    pub async fn callback_attempts(&self, of: AttemptsOf<'_>) -> Result<Vec<pb::CallbackAttempt>> {
        let request = match of {
            AttemptsOf::Event(id) => pb::ListCallbackAttemptsRequest {
                event_id: id.to_owned(),
                task_id: String::new(),
            },
            AttemptsOf::Task(id) => pb::ListCallbackAttemptsRequest {
                event_id: String::new(),
                task_id: id.to_owned(),
            },
        };
        Ok(self
            .events
            .clone()
            .list_callback_attempts(request)
            .await?
            .into_inner()
            .attempts)
    }

    /// A new signing secret for callbacks; the old one keeps signing for
    /// `overlap` (by default a day; zero ends it now).
    pub async fn rotate_signing_secret(
        &self,
        overlap: Option<Duration>,
    ) -> Result<pb::RotateSigningSecretResponse> {
        let overlap_seconds = overlap
            .map(|d| i64::try_from(d.as_secs()))
            .transpose()
            .map_err(|_| Error::InvalidInput("overlap: too long".into()))?;
        Ok(self
            .events
            .clone()
            .rotate_signing_secret(pb::RotateSigningSecretRequest { overlap_seconds })
            .await?
            .into_inner())
    }

    /// A reliable subscription: deliveries with `ack`, `nack`, `extend`;
    /// reconnects after a broken stream. See `consumer.rs`.
    pub fn subscribe(&self, max_in_flight: i32) -> Subscription {
        Subscription::start(self.clone(), max_in_flight)
    }

    /// Runs `handler` on every event until `stop` is cancelled: acks when it
    /// returns Ok, nacks (with the server's backoff) when it fails, and keeps
    /// the lease of a slow handler alive meanwhile.
    pub async fn consume<H: Handler>(
        &self,
        handler: H,
        options: ConsumeOptions,
        stop: CancellationToken,
    ) -> Result<()> {
        crate::consumer::consume(self.clone(), handler, options, stop).await
    }
}

/// Whether `url` is `https://` (else `http://`); anything else is refused
/// before any connection is tried.
fn scheme_of(url: &str) -> Result<bool> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("http") => Ok(false),
        Some("https") => Ok(true),
        _ => Err(Error::InvalidInput(format!(
            "url: must start with http:// or https://, got {url:?}"
        ))),
    }
}

fn read_default_key(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("default.key");
    std::fs::read_to_string(&path)
        .map(|k| k.trim().to_string())
        .map_err(|e| {
            Error::InvalidInput(format!(
                "api_key: none given and {} is unreadable: {e}",
                path.display()
            ))
        })
}

fn header(
    file_name: &str,
    source_context: &str,
    procedure: Option<pb::ProcedurePlan>,
) -> pb::UploadMediaHeader {
    pb::UploadMediaHeader {
        file_name: file_name.to_string(),
        source_context: source_context.to_string(),
        procedure,
    }
}

/// Fills `buf` unless the file ends first; returns how much it read.
async fn read_full(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use tokio::io::AsyncReadExt;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

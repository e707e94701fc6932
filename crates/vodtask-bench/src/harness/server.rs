//! Starts the real `vodtask` binary on a fresh data dir, hands out
//! authenticated gRPC clients to it, and stops it whatever the benchmark
//! on it returned.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use vodtask_proto::v1 as pb;
use vodtask_proto::v1::event_service_client::EventServiceClient;
use vodtask_proto::v1::media_service_client::MediaServiceClient;
use vodtask_proto::v1::task_service_client::TaskServiceClient;
use vodtask_proto::v1::upload_media_request::Part;

/// How long the server may take to print its addresses.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// The size of the chunks an upload is sent in.
const UPLOAD_CHUNK: usize = 1 << 20;

pub type TaskClient = TaskServiceClient<InterceptedService<Channel, Bearer>>;
pub type MediaClient = MediaServiceClient<InterceptedService<Channel, Bearer>>;
pub type EventClient = EventServiceClient<InterceptedService<Channel, Bearer>>;

/// Flags shared by every subcommand: which server to run and what to keep.
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// The server binary [default: target/release/vodtask in this workspace].
    #[arg(long)]
    pub vodtask_bin: Option<PathBuf>,
    /// Keep the data dir and the server log after the run (its path is printed).
    #[arg(long)]
    pub keep_data: bool,
    /// A flag for every `vodtask serve` the benchmark starts, after its
    /// own, e.g. `--server-flag=--sync=normal`; repeatable.
    #[arg(long = "server-flag", allow_hyphen_values = true)]
    pub server_flags: Vec<String>,
    /// Environment of every server started (S3 credentials).
    #[arg(skip)]
    pub env: Vec<(String, String)>,
}

impl ServerArgs {
    pub fn binary(&self) -> anyhow::Result<PathBuf> {
        if let Some(bin) = &self.vodtask_bin {
            if !bin.is_file() {
                bail!("--vodtask-bin {}: no such file", bin.display());
            }
            return Ok(bin.clone());
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let bin = workspace.join("target/release/vodtask");
        if !bin.is_file() {
            bail!(
                "{} is missing: run `cargo build --release -p vodtask-server` first, \
                 or pass --vodtask-bin",
                bin.display()
            );
        }
        // Without the `../..`, for the report.
        Ok(bin.canonicalize().unwrap_or(bin))
    }
}

/// How the benchmark's gRPC clients connect.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientTransport {
    /// As vodtask's own clients do (`vodtask_transport::connect`): one
    /// write per turn of the connection.
    #[default]
    Vodtask,
    /// tonic's own connector, which writes a unary call's frames in two or
    /// three writes.
    Tonic,
}

/// A running `vodtask serve`, killed when dropped.
pub struct Server {
    child: Child,
    /// Holds the data dir and the log; deleted on drop unless kept.
    dir: Option<tempfile::TempDir>,
    keep_dir: bool,
    pub binary: PathBuf,
    pub grpc_addr: String,
    key: MetadataValue<Ascii>,
    /// For the clients handed out from now on.
    pub client_transport: ClientTransport,
}

impl Server {
    /// Starts `vodtask serve` on a fresh data dir with free ports and the
    /// given extra flags, and waits until it is listening.
    pub async fn start(args: &ServerArgs, extra: &[&str]) -> anyhow::Result<Server> {
        let mut flags = extra.to_vec();
        flags.extend(args.server_flags.iter().map(String::as_str));
        Server::start_with(args.binary()?, None, args.keep_data, &flags, &args.env).await
    }

    /// `start`s a server, runs `bench` on it, and stops it whatever `bench`
    /// returned.
    pub async fn with<T>(
        args: &ServerArgs,
        extra: &[&str],
        bench: impl AsyncFnOnce(&Server) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        Server::start(args, extra).await?.run(bench).await
    }

    /// Runs `bench` on this server, then stops it whatever `bench` returned.
    pub async fn run<T>(
        self,
        bench: impl AsyncFnOnce(&Server) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let outcome = bench(&self).await;
        let stopped = self.stop().await;
        let value = outcome?;
        stopped?;
        Ok(value)
    }

    /// `start` with this binary and, given `copy_of`, on a copy of that
    /// server data dir's database and key (not its media files).
    pub async fn start_with(
        binary: PathBuf,
        copy_of: Option<&Path>,
        keep_data: bool,
        extra: &[&str],
        env: &[(String, String)],
    ) -> anyhow::Result<Server> {
        let dir = tempfile::Builder::new()
            .prefix("vodtask-bench-")
            .tempdir()
            .context("create a temporary dir")?;
        let data_dir = dir.path().join("data");
        if let Some(from) = copy_of {
            copy_database(from, &data_dir)?;
        }
        let log_path = dir.path().join("vodtask.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("create {}", log_path.display()))?;
        let mut child = Command::new(&binary)
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;

        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        match tokio::time::timeout(START_DEADLINE, read).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(Ok(_)) => bail!(
                "the server exited before listening; its log:\n{}",
                log_tail(&log_path)
            ),
            Ok(Err(e)) => return Err(e).context("read the server's stdout"),
            Err(_) => bail!(
                "the server did not print its addresses within {START_DEADLINE:?}; its log:\n{}",
                log_tail(&log_path)
            ),
        }
        // `vodtask listening grpc=127.0.0.1:PORT http=127.0.0.1:PORT`
        let grpc_addr = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("grpc="))
            .with_context(|| format!("no grpc= address in the server's line {line:?}"))?
            .to_string();

        // The server writes the key before it starts listening.
        let key_path = data_dir.join("default.key");
        let key = std::fs::read_to_string(&key_path)
            .with_context(|| format!("read {}", key_path.display()))?;
        let key = bearer_header(&key)?;

        Ok(Server {
            child,
            dir: Some(dir),
            keep_dir: keep_data,
            binary,
            grpc_addr,
            client_transport: ClientTransport::default(),
            key,
        })
    }

    /// A new HTTP/2 connection: clients that must not share one call this
    /// once each.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        self.default_app().channel().await
    }

    pub async fn task_client(&self) -> anyhow::Result<TaskClient> {
        self.default_app().task_client().await
    }

    pub async fn media_client(&self) -> anyhow::Result<MediaClient> {
        self.default_app().media_client().await
    }

    pub async fn event_client(&self) -> anyhow::Result<EventClient> {
        self.default_app().event_client().await
    }

    /// The server's process id (for its memory).
    /// The server's data dir (for a node that joins it on one database:
    /// its `default.key`).
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("data"))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// A new app made with `vodtask apps create`; returns a server handle
    /// whose clients act as that app.
    pub fn as_new_app(&self, name: &str) -> anyhow::Result<AppHandle> {
        let dir = self.dir.as_ref().context("the data dir is gone")?;
        let out = std::process::Command::new(&self.binary)
            .args(["apps", "create", name, "--data-dir"])
            .arg(dir.path().join("data"))
            .output()
            .context("vodtask apps create")?;
        if !out.status.success() {
            bail!("vodtask apps create {name} failed");
        }
        let key = String::from_utf8(out.stdout).context("the key is not UTF-8")?;
        let key = bearer_header(&key)?;
        Ok(AppHandle {
            grpc_addr: self.grpc_addr.clone(),
            key,
            transport: self.client_transport,
        })
    }

    /// This server's default app.
    pub fn default_app(&self) -> AppHandle {
        AppHandle {
            grpc_addr: self.grpc_addr.clone(),
            key: self.key.clone(),
            transport: self.client_transport,
        }
    }

    /// Kills the server and hands over its dir (the data dir is `data/` in
    /// it), for `start_with`'s `copy_of`.
    pub async fn kill_keeping_dir(mut self) -> anyhow::Result<tempfile::TempDir> {
        self.child.kill().await.context("kill the server")?;
        self.dir.take().context("the data dir is gone")
    }

    /// Kills the server and removes its data dir (unless asked to keep it).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("kill the server")?;
        if let Some(dir) = self.dir.take()
            && self.keep_dir
        {
            eprintln!(
                "kept the data dir and server log in {}",
                dir.keep().display()
            );
        }
        Ok(())
    }
}

/// Clients acting as one app.
#[derive(Clone)]
pub struct AppHandle {
    grpc_addr: String,
    key: MetadataValue<Ascii>,
    transport: ClientTransport,
}

impl AppHandle {
    /// `http://host:port` of the server.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// The app's API key, as clients take it (without `Bearer `).
    pub fn api_key(&self) -> String {
        let header = self.key.to_str().unwrap_or_default();
        header.strip_prefix("Bearer ").unwrap_or(header).to_string()
    }

    /// A new HTTP/2 connection.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let endpoint = Endpoint::from_shared(self.grpc_url())?;
        match self.transport {
            ClientTransport::Vodtask => vodtask_transport::connect(endpoint).await,
            ClientTransport::Tonic => endpoint.connect().await,
        }
        .with_context(|| format!("connect to {}", self.grpc_addr))
    }

    pub async fn task_client(&self) -> anyhow::Result<TaskClient> {
        let channel = self.channel().await?;
        Ok(TaskServiceClient::with_interceptor(channel, self.bearer()))
    }

    pub async fn media_client(&self) -> anyhow::Result<MediaClient> {
        let channel = self.channel().await?;
        Ok(MediaServiceClient::with_interceptor(channel, self.bearer()))
    }

    pub async fn event_client(&self) -> anyhow::Result<EventClient> {
        let channel = self.channel().await?;
        Ok(EventServiceClient::with_interceptor(channel, self.bearer()))
    }

    fn bearer(&self) -> Bearer {
        Bearer(self.key.clone())
    }
}

/// Uploads `bytes` as `file_name`; returns the file id.
pub async fn upload(
    client: &mut MediaClient,
    file_name: String,
    source_context: String,
    bytes: &[u8],
) -> anyhow::Result<String> {
    let header = pb::UploadMediaRequest {
        part: Some(Part::Header(pb::UploadMediaHeader {
            file_name,
            source_context,
            procedure: None,
        })),
    };
    let chunks = bytes
        .chunks(UPLOAD_CHUNK)
        .map(|chunk| pb::UploadMediaRequest {
            part: Some(Part::Chunk(chunk.to_vec())),
        });
    let parts: Vec<_> = std::iter::once(header).chain(chunks).collect();
    let response = client
        .upload_media(tokio_stream::iter(parts))
        .await
        .context("UploadMedia")?;
    Ok(response.into_inner().file_id)
}

/// Uploads the file at `path`, read and sent `UPLOAD_CHUNK` bytes at a
/// time (never whole in memory); returns the file id.
pub async fn upload_file(
    client: &mut MediaClient,
    path: &Path,
    file_name: &str,
) -> anyhow::Result<String> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("open {}", path.display()))?;
    let header = pb::UploadMediaRequest {
        part: Some(Part::Header(pb::UploadMediaHeader {
            file_name: file_name.to_string(),
            source_context: String::new(),
            procedure: None,
        })),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(header).await.context("queue the header")?;
    let reader = tokio::spawn(async move {
        loop {
            let mut chunk = vec![0u8; UPLOAD_CHUNK];
            let mut filled = 0;
            while filled < chunk.len() {
                match file.read(&mut chunk[filled..]).await? {
                    0 => break,
                    n => filled += n,
                }
            }
            if filled == 0 {
                return anyhow::Ok(());
            }
            chunk.truncate(filled);
            let part = pb::UploadMediaRequest {
                part: Some(Part::Chunk(chunk)),
            };
            if tx.send(part).await.is_err() {
                anyhow::bail!("the upload stopped taking chunks");
            }
        }
    });
    let response = client
        .upload_media(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .context("UploadMedia")?;
    reader.await.context("the upload's reader")??;
    Ok(response.into_inner().file_id)
}

/// `Bearer <key>`, as the authorization header carries it.
fn bearer_header(key: &str) -> anyhow::Result<MetadataValue<Ascii>> {
    format!("Bearer {}", key.trim())
        .parse()
        .context("the API key is not a valid header value")
}

/// Copies the files at the top of a data dir (the SQLite database and its
/// WAL, the default app's key) into `to`, leaving out the media library,
/// the lock and the WAL index (SQLite rebuilds it from the WAL).
fn copy_database(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("create {}", to.display()))?;
    let entries = std::fs::read_dir(from).with_context(|| format!("read {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("read {}", from.display()))?;
        let name = entry.file_name();
        let skip = name == "LOCK" || name.to_string_lossy().ends_with("-shm");
        if skip || !entry.file_type()?.is_file() {
            continue;
        }
        std::fs::copy(entry.path(), to.join(&name))
            .with_context(|| format!("copy {}", entry.path().display()))?;
    }
    Ok(())
}

/// The last lines of the server log, for an error message.
fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(log) if log.trim().is_empty() => "(empty)".to_string(),
        Ok(log) => {
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Adds `authorization: Bearer <key>` to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

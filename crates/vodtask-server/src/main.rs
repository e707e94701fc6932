//! `vodtask`: the server binary and its admin commands.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vodtask_core::media::{FileUrls, InputMode, StorageConfig};
use vodtask_core::outbound::AddressPolicy;
use vodtask_core::store::{StoreConfig, SyncMode};
use vodtask_core::{Engine, EngineConfig};
use vodtask_server::{grpc, http};

#[derive(Parser)]
#[command(
    name = "vodtask",
    version,
    about = "Self-hosted service for offline media tasks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: gRPC API, HTTP file server and task workers.
    Serve(Box<ServeArgs>),
    /// Run a worker node: tasks and callbacks for the servers that share
    /// its database (--database), and no API.
    Worker(Box<WorkerArgs>),
    /// Manage apps (works while the server runs).
    Apps {
        #[command(subcommand)]
        command: AppsCommand,
    },
}

#[derive(Subcommand)]
enum AppsCommand {
    /// Create an app; prints its API key as the only line on stdout.
    Create {
        name: String,
        #[arg(long, env = "VODTASK_DATA_DIR", default_value = "./vodtask-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
        /// Make the data dir if there is none (otherwise a missing one is an
        /// error: the running server would not know the new key).
        #[arg(long)]
        init: bool,
    },
    /// List the apps: name, creation time, and revocation time if revoked.
    List {
        #[arg(long, env = "VODTASK_DATA_DIR", default_value = "./vodtask-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Revoke an app's key: it stops working within a second, also on a
    /// running server. The app's tasks, files and events stay.
    Revoke {
        name: String,
        #[arg(long, env = "VODTASK_DATA_DIR", default_value = "./vodtask-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// Where the state is kept: SQLite in the data dir, or PostgreSQL
/// (docs/postgres.md).
#[derive(clap::Args, Debug)]
struct DatabaseArgs {
    /// A PostgreSQL database, `postgres://user@host:port/database`, instead
    /// of SQLite in the data dir. A schema other than `public` is chosen
    /// with `?options=-csearch_path%3Dname`.
    #[arg(long, env = "VODTASK_DATABASE_URL")]
    database: Option<String>,
    /// Connections to PostgreSQL this process holds at most.
    #[arg(long, env = "VODTASK_DATABASE_POOL", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    database_pool: u32,
}

impl DatabaseArgs {
    fn config(&self) -> anyhow::Result<StoreConfig> {
        let Some(url) = &self.database else {
            if self.database_pool != 16 {
                anyhow::bail!("--database-pool: only with --database postgres://…");
            }
            return Ok(StoreConfig::Embedded);
        };
        let config = StoreConfig::parse(url).map_err(|e| anyhow::anyhow!("--{e}"))?;
        Ok(match config {
            #[cfg(feature = "postgres")]
            StoreConfig::Postgres(mut pg) => {
                pg.pool_size = self.database_pool as usize;
                StoreConfig::Postgres(pg)
            }
            other => other,
        })
    }

    /// The database for messages: its URL without a password.
    fn shown(&self, data_dir: &std::path::Path) -> String {
        match &self.database {
            Some(url) => match url::Url::parse(url) {
                Ok(mut u) => {
                    let _ = u.set_password(None);
                    u.to_string()
                }
                Err(_) => "the database".into(),
            },
            None => std::path::absolute(data_dir)
                .unwrap_or_else(|_| data_dir.to_path_buf())
                .display()
                .to_string(),
        }
    }
}

/// What every node that runs an engine takes: its state, its media, and
/// how it runs tasks.
#[derive(Args)]
struct EngineArgs {
    /// Where the SQLite database (unless --database), media files (unless
    /// --storage), default.key and scratch space live.
    #[arg(long, env = "VODTASK_DATA_DIR", default_value = "./vodtask-data")]
    data_dir: PathBuf,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Tasks run at once [default: number of cores]; 0 runs none (an API-only server).
    #[arg(long, env = "VODTASK_WORKERS")]
    workers: Option<usize>,
    #[arg(long, env = "VODTASK_FFMPEG", default_value = "ffmpeg")]
    ffmpeg: PathBuf,
    #[arg(long, env = "VODTASK_FFPROBE", default_value = "ffprobe")]
    ffprobe: PathBuf,
    /// Ended tasks are deleted this long after they finished.
    #[arg(long, env = "VODTASK_TASK_RETENTION", default_value = "7d", value_parser = duration_within(Duration::from_secs(60), Duration::from_secs(3650 * 24 * 3600)))]
    task_retention: Duration,
    /// Lease of a running task; a crashed worker's task runs again after it.
    #[arg(long, env = "VODTASK_LEASE", default_value = "30s", value_parser = duration_within(Duration::from_secs(1), Duration::from_secs(24 * 3600)))]
    lease: Duration,
    /// Times a task is recovered after lost workers before it fails.
    #[arg(long, env = "VODTASK_MAX_RECOVERIES", default_value_t = 3)]
    max_recoveries: u32,
    /// `full`: every commit is fsynced before it is acknowledged (survives
    /// power loss). `normal`: commits are acknowledged once the OS has them
    /// (they survive kill -9 of vodtask, not a power loss) and fsynced at
    /// the next WAL checkpoint, within about 200 ms.
    #[arg(long, env = "VODTASK_SYNC", default_value = "full", value_parser = parse_sync())]
    sync: SyncMode,
    /// How long SIGTERM waits for clients to close their connections (and
    /// running tasks to go back to the queue).
    #[arg(long, env = "VODTASK_SHUTDOWN_GRACE", default_value = "10s", value_parser = duration_within(Duration::ZERO, Duration::from_secs(3600)))]
    shutdown_grace: Duration,
    /// Largest accepted upload, in bytes.
    #[arg(long, env = "VODTASK_MAX_UPLOAD_BYTES", default_value_t = 10 << 30)]
    max_upload_bytes: u64,
    /// An address range HTTP callbacks and pulls may reach although it is
    /// internal (loopback, private, link-local…), e.g. `10.0.0.0/8`;
    /// repeatable. `--allow-callback-cidr` is the old name.
    #[arg(long = "allow-outbound-cidr", alias = "allow-callback-cidr", env = "VODTASK_ALLOW_OUTBOUND_CIDR", value_delimiter = ',', value_parser = parse_cidr)]
    allow_outbound_cidrs: Vec<IpNet>,
    #[command(flatten)]
    storage: StorageArgs,
}

impl EngineArgs {
    /// The engine's config, or which flag is wrong. `public_base_url`
    /// prefixes the file URLs handed to clients.
    fn config(self, public_base_url: String) -> anyhow::Result<EngineConfig> {
        let mut config = EngineConfig::new(&self.data_dir);
        if let Some(workers) = self.workers {
            config.workers = workers;
        }
        config.ffmpeg = self.ffmpeg;
        config.ffprobe = self.ffprobe;
        config.public_base_url = public_base_url;
        config.task_retention = self.task_retention;
        config.lease = self.lease;
        config.max_recoveries = self.max_recoveries;
        config.max_upload_bytes = self.max_upload_bytes;
        config.outbound_policy = AddressPolicy::new(self.allow_outbound_cidrs);
        config.sync = self.sync;
        config.store = self.database.config()?;
        if config.store != StoreConfig::Embedded && self.sync != SyncMode::Full {
            anyhow::bail!(
                "--sync: only for the embedded SQLite store; with --database, PostgreSQL's \
                 synchronous_commit decides when a commit is on disk"
            );
        }
        self.storage.apply(&mut config)?;
        Ok(config)
    }

    /// Where this engine keeps its state, for messages.
    fn place(&self) -> String {
        match &self.database.database {
            Some(_) => format!(
                "--data-dir {}, --database {}",
                self.data_dir.display(),
                self.database.shown(&self.data_dir)
            ),
            None => format!("--data-dir {}", self.data_dir.display()),
        }
    }
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// gRPC address, HOST:PORT with a name or an IP (port 0 picks a free
    /// port; the bound address is printed).
    #[arg(long, env = "VODTASK_LISTEN", default_value = "127.0.0.1:50051")]
    listen: String,
    /// HTTP address for media files and /healthz, HOST:PORT.
    #[arg(long, env = "VODTASK_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    http_listen: String,
    /// Prefix of file URLs handed to clients [default: http://<http-listen>,
    /// https:// with --tls-cert]. With several nodes, the address clients
    /// reach them by (a load balancer), the same on every node.
    #[arg(long, env = "VODTASK_PUBLIC_URL")]
    public_url: Option<String>,
    /// Connections each port holds at once; more are refused at once (the
    /// HTTP port answers 503) [default: a share of the file-descriptor limit,
    /// at most 10000].
    #[arg(long, env = "VODTASK_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: Option<u32>,
    /// A connection on which no byte moved either way this long is closed
    /// (gRPC channels in use stay busy through keepalive pings every 20 s).
    #[arg(long, env = "VODTASK_IDLE_TIMEOUT", default_value = "60s", value_parser = duration_within(Duration::from_secs(1), Duration::from_secs(24 * 3600)))]
    idle_timeout: Duration,
    /// An HTTP request's headers must have arrived this long after the
    /// connection opened or the previous answer ended.
    #[arg(long, env = "VODTASK_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = duration_within(Duration::from_secs(1), Duration::from_secs(3600)))]
    http_header_timeout: Duration,
    /// PEM certificate chain (the server's certificate first): both ports
    /// speak TLS (gRPC over HTTP/2; files over HTTP/1.1 and HTTP/2). Needs
    /// --tls-key.
    #[arg(long, env = "VODTASK_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, RSA or EC).
    #[arg(long, env = "VODTASK_TLS_KEY")]
    tls_key: Option<PathBuf>,
}

/// A node that runs tasks and callbacks for the servers sharing its
/// database, and serves no API.
#[derive(Args)]
struct WorkerArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// Prefix of the file URLs this node writes into task results and
    /// events: the address clients reach the API nodes by.
    #[arg(long, env = "VODTASK_PUBLIC_URL")]
    public_url: String,
}

/// Where media are kept (docs/storage.md). S3 credentials come from the
/// standard variables AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
/// AWS_SESSION_TOKEN; AWS_REGION, AWS_ENDPOINT_URL and AWS_ALLOW_HTTP are
/// read too, and the flags below win over them.
#[derive(clap::Args, Debug)]
struct StorageArgs {
    /// `file:///path` (a local or shared directory) or `s3://bucket/prefix`
    /// (an S3-compatible store) [default: <data-dir>/media].
    #[arg(long, env = "VODTASK_STORAGE")]
    storage: Option<String>,
    /// The S3 endpoint of a store other than AWS, e.g. `http://127.0.0.1:9000`.
    #[arg(long, env = "VODTASK_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// The bucket's region [default: AWS_REGION, else us-east-1].
    #[arg(long, env = "VODTASK_S3_REGION")]
    s3_region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), as MinIO, Ceph and most
    /// self-hosted stores want; AWS uses virtual-hosted style.
    #[arg(long, env = "VODTASK_S3_PATH_STYLE")]
    s3_path_style: bool,
    /// What file URLs point at, for `s3://` storage: `proxy` (vodtask's HTTP
    /// port streams the bytes), `presign` (the HTTP port redirects to a
    /// presigned URL; playlists and WebVTT stay proxied), `public`
    /// (`--public-url-base` + the object key: a CDN or a public bucket).
    #[arg(long, env = "VODTASK_FILE_URLS", default_value = "proxy", value_parser = ["proxy", "presign", "public"])]
    file_urls: String,
    /// How long a presigned URL of `--file-urls presign` is valid.
    #[arg(long, env = "VODTASK_PRESIGN_TTL", default_value = "1h", value_parser = duration_within(Duration::from_secs(60), Duration::from_secs(7 * 24 * 3600)))]
    presign_ttl: Duration,
    /// The base of file URLs for `--file-urls public`, e.g.
    /// `https://cdn.example.com` (the object key follows it).
    #[arg(long, env = "VODTASK_PUBLIC_URL_BASE")]
    public_url_base: Option<String>,
    /// How long an S3 request that gets no answer or a 5xx is retried, with
    /// backoff, before the upload fails with UNAVAILABLE or the task with
    /// error code 70004.
    #[arg(long, env = "VODTASK_S3_RETRY_TIMEOUT", default_value = "30s", value_parser = duration_within(Duration::from_secs(1), Duration::from_secs(3600)))]
    s3_retry_timeout: Duration,
    /// How ffmpeg reads a task's input in an object store: `presign` (in
    /// place, over HTTP with Range requests) or `copy` (into the task's
    /// scratch dir first).
    #[arg(long, env = "VODTASK_S3_INPUTS", default_value = "presign", value_parser = ["presign", "copy"])]
    s3_inputs: String,
}

impl StorageArgs {
    /// Sets `config`'s storage, or says which flag is wrong.
    fn apply(self, config: &mut EngineConfig) -> anyhow::Result<()> {
        let storage = match &self.storage {
            None => StorageConfig::DataDir,
            Some(url) => StorageConfig::parse(url)?,
        };
        let s3 = matches!(storage, StorageConfig::S3(_));
        let s3_only = [
            ("--s3-endpoint", self.s3_endpoint.is_some()),
            ("--s3-region", self.s3_region.is_some()),
            ("--s3-path-style", self.s3_path_style),
            ("--file-urls", self.file_urls != "proxy"),
            ("--public-url-base", self.public_url_base.is_some()),
            ("--s3-inputs", self.s3_inputs != "presign"),
            (
                "--s3-retry-timeout",
                self.s3_retry_timeout != vodtask_core::media::S3_RETRY_TIMEOUT,
            ),
        ];
        if !s3 && let Some((flag, _)) = s3_only.iter().find(|(_, given)| *given) {
            anyhow::bail!(
                "{flag}: only for --storage s3://… (files are served from the directory otherwise)"
            );
        }
        config.storage = match storage {
            StorageConfig::S3(mut s3) => {
                if let Some(endpoint) = self.s3_endpoint {
                    let url = url::Url::parse(&endpoint)
                        .map_err(|e| anyhow::anyhow!("--s3-endpoint {endpoint:?}: {e}"))?;
                    if !matches!(url.scheme(), "http" | "https") {
                        anyhow::bail!("--s3-endpoint {endpoint:?}: expected http:// or https://");
                    }
                    s3.endpoint = Some(endpoint);
                }
                s3.region = self.s3_region;
                s3.path_style = self.s3_path_style;
                s3.retry_timeout = self.s3_retry_timeout;
                StorageConfig::S3(s3)
            }
            other => other,
        };
        config.file_urls = match (self.file_urls.as_str(), self.public_url_base) {
            ("public", Some(base)) => {
                url::Url::parse(&base)
                    .map_err(|e| anyhow::anyhow!("--public-url-base {base:?}: {e}"))?;
                FileUrls::Public { base }
            }
            ("public", None) => anyhow::bail!("--file-urls public: needs --public-url-base"),
            (_, Some(_)) => anyhow::bail!("--public-url-base: only with --file-urls public"),
            ("presign", None) => FileUrls::Presigned {
                ttl: self.presign_ttl,
            },
            _ => FileUrls::Served,
        };
        config.inputs = match self.s3_inputs.as_str() {
            "copy" => InputMode::ScratchCopy,
            _ => InputMode::Presigned,
        };
        Ok(())
    }
}

/// The server's TLS from `--tls-cert` and `--tls-key`, which go together.
fn server_tls(args: &ServeArgs) -> anyhow::Result<Option<vodtask_transport::ServerTls>> {
    match (&args.tls_cert, &args.tls_key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => {
            let cert_name = format!("--tls-cert {}", cert.display());
            let key_name = format!("--tls-key {}", key.display());
            let cert_pem =
                std::fs::read(cert).with_context(|| format!("{cert_name}: cannot read"))?;
            let key_pem = std::fs::read(key).with_context(|| format!("{key_name}: cannot read"))?;
            let tls = vodtask_transport::ServerTls::from_pem(
                vodtask_transport::Pem {
                    name: &cert_name,
                    bytes: &cert_pem,
                },
                vodtask_transport::Pem {
                    name: &key_name,
                    bytes: &key_pem,
                },
            )?;
            Ok(Some(tls))
        }
        (Some(_), None) => {
            anyhow::bail!(
                "--tls-cert needs --tls-key (VODTASK_TLS_KEY): the certificate's private key"
            )
        }
        (None, Some(_)) => {
            anyhow::bail!(
                "--tls-key needs --tls-cert (VODTASK_TLS_CERT): the certificate it belongs to"
            )
        }
    }
}

/// `--sync`: the core parses the value; clap lists the choices in `--help`
/// and in its error.
fn parse_sync() -> impl TypedValueParser<Value = SyncMode> {
    clap::builder::PossibleValuesParser::new(["full", "normal"]).try_map(|s| s.parse::<SyncMode>())
}

/// A humantime duration (`30s`, `7d`) within `min..=max`.
fn duration_within(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |text| {
        let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
        if d < min || d > max {
            return Err(format!(
                "must be within {}..{}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ));
        }
        Ok(d)
    }
}

fn parse_cidr(text: &str) -> Result<IpNet, String> {
    AddressPolicy::parse_cidr(text).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour())
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(*args).await,
        Command::Worker(args) => worker(*args).await,
        Command::Apps { command } => apps(command).await,
    }
}

/// Colour in logs only on a terminal, and never with NO_COLOR set
/// (https://no-color.org): log files and journald get plain text.
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

async fn apps(command: AppsCommand) -> anyhow::Result<()> {
    use vodtask_core::admin::{self, Missing, Place};
    match command {
        AppsCommand::Create {
            name,
            data_dir,
            database,
            init,
        } => {
            let missing = if init {
                Missing::Create
            } else {
                Missing::Refuse
            };
            let store = database.config()?;
            let place = Place {
                store: &store,
                data_dir: &data_dir,
            };
            let (_, key) = admin::create_app_in(&place, &name, missing).await?;
            eprintln!("created app {name:?} in {}", database.shown(&data_dir));
            println!("{}", key.expose());
        }
        AppsCommand::List { data_dir, database } => {
            let store = database.config()?;
            let place = Place {
                store: &store,
                data_dir: &data_dir,
            };
            eprintln!("apps in {}", database.shown(&data_dir));
            for app in admin::list_apps_in(&place).await? {
                let revoked = app
                    .revoke_time
                    .map(|t| {
                        format!(
                            "\trevoked {}",
                            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        )
                    })
                    .unwrap_or_default();
                println!(
                    "{}\tcreated {}{revoked}",
                    app.name,
                    app.create_time
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            }
        }
        AppsCommand::Revoke {
            name,
            data_dir,
            database,
        } => {
            let store = database.config()?;
            let place = Place {
                store: &store,
                data_dir: &data_dir,
            };
            let app = admin::revoke_app_in(&place, &name).await?;
            let when = app.revoke_time.map(|t| t.to_rfc3339()).unwrap_or_default();
            eprintln!(
                "revoked app {name:?} in {} ({when})",
                database.shown(&data_dir)
            );
        }
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Before binding: a wrong file is reported without touching the ports.
    let tls = server_tls(&args)?;
    let max_connections = args
        .max_connections
        .map_or_else(default_max_connections, |n| n as usize);
    // A name resolves to one or more addresses; the first that binds is used.
    let grpc_listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("--listen {}: cannot bind", args.listen))?;
    let http_listener = TcpListener::bind(&args.http_listen)
        .await
        .with_context(|| format!("--http-listen {}: cannot bind", args.http_listen))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;

    let scheme = if tls.is_some() { "https" } else { "http" };
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{http_addr}"));
    let place = args.engine.place();
    let (data_dir, sync, shutdown_grace) = (
        args.engine.data_dir.clone(),
        args.engine.sync,
        args.engine.shutdown_grace,
    );
    let config = args.engine.config(public_url)?;
    let engine = Engine::open(config).await.context(place)?;

    let stop = CancellationToken::new();
    let grpc_limits = grpc::GrpcLimits {
        max_connections,
        idle_timeout: args.idle_timeout,
        ..Default::default()
    };
    let grpc = tokio::spawn(grpc::serve(
        engine.clone(),
        grpc_listener,
        grpc_limits,
        tls.as_ref()
            .map(|t| t.with_alpn(vodtask_transport::ALPN_GRPC)),
        stop.clone().cancelled_owned(),
    ));
    let http_limits = http::HttpLimits {
        max_connections,
        idle_timeout: args.idle_timeout,
        header_timeout: args.http_header_timeout,
    };
    let http = tokio::spawn({
        let engine = engine.clone();
        let stop = stop.clone();
        let health: http::HealthCheck = Arc::new(engine.health_probe());
        let tls = tls
            .as_ref()
            .map(|t| t.with_alpn(vodtask_transport::ALPN_HTTP));
        async move {
            http::serve(
                engine,
                http_listener,
                http_limits,
                tls,
                health,
                stop.cancelled_owned(),
            )
            .await
        }
    });
    // One machine-readable line, so that scripts and tests learn the ports.
    println!("vodtask listening grpc={grpc_addr} http={http_addr}");
    tracing::info!(%grpc_addr, %http_addr, tls = tls.is_some(), data_dir = %data_dir.display(), "vodtask serving");
    if sync == SyncMode::Normal {
        tracing::warn!(
            "--sync normal: commits are not fsynced one by one; a power loss may take the last ~200 ms of acknowledged writes"
        );
    }

    let failure = until_stopped(&engine).await?;
    stop.cancel();
    engine.shutdown().await;
    // A client that never closes its connection must not keep the process alive.
    let servers = async {
        grpc.await??;
        http.await??;
        anyhow::Ok(())
    };
    match tokio::time::timeout(shutdown_grace, servers).await {
        Ok(result) => result?,
        Err(_) => tracing::warn!(
            "connections still open after {:?}; closing them",
            shutdown_grace
        ),
    }
    if let Some(reason) = failure {
        anyhow::bail!("vodtask failed: {reason}");
    }
    tracing::info!("stopped");
    Ok(())
}

async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    if args.engine.database.database.is_none() {
        anyhow::bail!(
            "vodtask worker: needs --database: a worker serves no API and runs the tasks \
             of the servers that share its PostgreSQL database"
        );
    }
    url::Url::parse(&args.public_url)
        .map_err(|e| anyhow::anyhow!("--public-url {:?}: {e}", args.public_url))?;
    let place = args.engine.place();
    let shutdown_grace = args.engine.shutdown_grace;
    let config = args.engine.config(args.public_url)?;
    let workers = config.workers;
    let engine = Engine::open(config).await.context(place)?;
    // The same machine-readable line as `serve`, without ports.
    println!("vodtask worker running workers={workers}");
    tracing::info!(workers, "vodtask worker running");
    let failure = until_stopped(&engine).await?;
    if tokio::time::timeout(shutdown_grace, engine.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("tasks still running after {shutdown_grace:?}; stopping anyway");
    }
    if let Some(reason) = failure {
        anyhow::bail!("vodtask failed: {reason}");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Raises the soft limit of open files to the hard one (as Go's runtime
/// does), and gives each of the two ports a share of it, leaving room for
/// the database, media files and ffmpeg's pipes.
fn default_max_connections() -> usize {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let mut soft = limit.current;
    if limit.current < limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => soft = limit.maximum,
            Err(e) => tracing::debug!("raising the open-file limit: {e}"),
        }
    }
    let soft = soft.unwrap_or(u64::MAX);
    let share = soft.saturating_sub(256) / 2;
    let n = share.clamp(16, 10_000) as usize;
    tracing::debug!(
        open_file_limit = soft,
        max_connections = n,
        "connection limit per port"
    );
    n
}

/// Waits for SIGTERM or SIGINT (None) or for the engine to fail (its
/// reason), and says which.
async fn until_stopped(engine: &Engine) -> anyhow::Result<Option<String>> {
    let failure = tokio::select! {
        signal = shutdown_signal() => { signal?; None }
        reason = engine.failed() => Some(reason),
    };
    match &failure {
        None => tracing::info!("shutting down: running tasks go back to the queue"),
        Some(reason) => tracing::error!(
            "exiting for a supervisor to restart vodtask: {reason}; running tasks go back to the queue"
        ),
    }
    Ok(failure)
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

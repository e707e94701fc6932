//! `vodtask`: the server binary and its admin commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vodtask_core::outbound::AddressPolicy;
use vodtask_core::{Engine, EngineConfig, SyncMode};
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
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Where the database, media files and default.key live.
    #[arg(long, env = "VODTASK_DATA_DIR", default_value = "./vodtask-data")]
    data_dir: PathBuf,
    /// gRPC address (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "VODTASK_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// HTTP address for media files and /healthz.
    #[arg(long, env = "VODTASK_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    http_listen: SocketAddr,
    /// Prefix of file URLs handed to clients [default: http://<http-listen>].
    #[arg(long, env = "VODTASK_PUBLIC_URL")]
    public_url: Option<String>,
    /// Tasks run at once [default: number of cores]; 0 runs none (an API-only server).
    #[arg(long, env = "VODTASK_WORKERS")]
    workers: Option<usize>,
    #[arg(long, env = "VODTASK_FFMPEG", default_value = "ffmpeg")]
    ffmpeg: PathBuf,
    #[arg(long, env = "VODTASK_FFPROBE", default_value = "ffprobe")]
    ffprobe: PathBuf,
    /// Ended tasks are deleted this long after they finished.
    #[arg(long, env = "VODTASK_TASK_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    task_retention: Duration,
    /// Lease of a running task; a crashed worker's task runs again after it.
    #[arg(long, env = "VODTASK_LEASE", default_value = "30s", value_parser = humantime::parse_duration)]
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
    /// How long SIGTERM waits for clients to close their connections.
    #[arg(long, env = "VODTASK_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
    /// Largest accepted upload, in bytes.
    #[arg(long, env = "VODTASK_MAX_UPLOAD_BYTES", default_value_t = 10 << 30)]
    max_upload_bytes: u64,
    /// An address range HTTP callbacks and pulls may reach although it is
    /// internal (loopback, private, link-local…), e.g. `10.0.0.0/8`;
    /// repeatable. `--allow-callback-cidr` is the old name.
    #[arg(long = "allow-outbound-cidr", alias = "allow-callback-cidr", env = "VODTASK_ALLOW_OUTBOUND_CIDR", value_delimiter = ',', value_parser = parse_cidr)]
    allow_outbound_cidrs: Vec<IpNet>,
}

/// `--sync`: the core parses the value; clap lists the choices in `--help`
/// and in its error.
fn parse_sync() -> impl TypedValueParser<Value = SyncMode> {
    clap::builder::PossibleValuesParser::new(["full", "normal"]).try_map(|s| s.parse::<SyncMode>())
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
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(*args).await,
        Command::Apps {
            command: AppsCommand::Create { name, data_dir },
        } => {
            let (_, key) = vodtask_core::create_app_in(&data_dir, &name).await?;
            println!("{}", key.expose());
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let grpc_listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind gRPC address {}", args.listen))?;
    let http_listener = TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("bind HTTP address {}", args.http_listen))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;

    let mut config = EngineConfig::new(&args.data_dir);
    if let Some(workers) = args.workers {
        config.workers = workers;
    }
    config.ffmpeg = args.ffmpeg;
    config.ffprobe = args.ffprobe;
    config.public_base_url = args
        .public_url
        .unwrap_or_else(|| format!("http://{http_addr}"));
    config.task_retention = args.task_retention;
    config.lease = args.lease;
    config.max_recoveries = args.max_recoveries;
    config.max_upload_bytes = args.max_upload_bytes;
    config.outbound_policy = AddressPolicy::new(args.allow_outbound_cidrs);
    config.sync = args.sync;
    let engine = Engine::open(config).await.context("open the data dir")?;

    let stop = CancellationToken::new();
    let grpc = tokio::spawn(grpc::serve(
        engine.clone(),
        grpc_listener,
        stop.clone().cancelled_owned(),
    ));
    let http = tokio::spawn({
        let media_dir = engine.media_dir().to_path_buf();
        let stop = stop.clone();
        async move { http::serve(&media_dir, http_listener, stop.cancelled_owned()).await }
    });
    // One machine-readable line, so that scripts and tests learn the ports.
    println!("vodtask listening grpc={grpc_addr} http={http_addr}");
    tracing::info!(%grpc_addr, %http_addr, data_dir = %args.data_dir.display(), "vodtask serving");
    if args.sync == SyncMode::Normal {
        tracing::warn!(
            "--sync normal: commits are not fsynced one by one; a power loss may take the last ~200 ms of acknowledged writes"
        );
    }

    shutdown_signal().await?;
    tracing::info!("shutting down: running tasks go back to the queue");
    stop.cancel();
    engine.shutdown().await;
    // A client that never closes its connection must not keep the process alive.
    let servers = async {
        grpc.await??;
        http.await??;
        anyhow::Ok(())
    };
    match tokio::time::timeout(args.shutdown_grace, servers).await {
        Ok(result) => result?,
        Err(_) => tracing::warn!(
            "connections still open after {:?}; closing them",
            args.shutdown_grace
        ),
    }
    tracing::info!("stopped");
    Ok(())
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

//! Events per second through each client's `consume`: the Rust client
//! (crates/vodtask-client) in this process, and the Python and Node
//! packages as child processes running their own consume loop. Each
//! consumer gets a fresh app with the same number of pre-loaded events and
//! reports the rate from its first handled event to its last; the ratios
//! are against the Rust client's rate on the same server.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use tokio::process::Command;
use tokio::sync::Mutex;
use vodtask_client::{CancellationToken, Client, ConnectOptions, ConsumeOptions, pb};

use crate::events::queue::preload_as;
use crate::server::{AppHandle, Server, ServerArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Events pre-loaded for each consumer.
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    /// Handlers running at once in each consumer.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// A command running the Python consumer (it reads VODTASK_URL,
    /// VODTASK_API_KEY, VODTASK_EVENTS, VODTASK_CONCURRENCY and prints a
    /// line `events_per_second=<rate>`).
    #[arg(long)]
    python: Option<String>,
    /// The same for the Node consumer.
    #[arg(long)]
    node: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // The events do not depend on the probe; `true` keeps pre-loading fast.
    let server = Server::start(&args.server, &["--workers", "0", "--ffprobe", "true"]).await?;
    let mut rows: Vec<(String, f64)> = Vec::new();

    let app = loaded(&server, "rust", args.events).await?;
    let rust = rust_consume(&app, args.events, args.concurrency).await?;
    rows.push(("Rust client".into(), rust));

    for (name, command) in [
        ("Python package", &args.python),
        ("Node package", &args.node),
    ] {
        let Some(command) = command else { continue };
        let app = loaded(&server, &name.to_lowercase().replace(' ', "-"), args.events).await?;
        let rate = external_consume(&app, command, args.events, args.concurrency).await?;
        rows.push((name.into(), rate));
    }
    println!(
        "\nconsume, {} pre-loaded events each, concurrency {}",
        args.events, args.concurrency
    );
    for (name, rate) in &rows {
        println!(
            "  {name:<16} {rate:>10.0} events/s   {:>5.2} of the Rust client (target >= 0.80)",
            rate / rust
        );
    }
    server.stop().await
}

async fn loaded(server: &Server, name: &str, events: u64) -> anyhow::Result<AppHandle> {
    let app = server.as_new_app(&format!("consume-{name}"))?;
    eprintln!("pre-loading {events} events for {name}");
    preload_as(&app, events, 8).await?;
    Ok(app)
}

async fn rust_consume(app: &AppHandle, events: u64, concurrency: usize) -> anyhow::Result<f64> {
    let client = Client::connect(&app.grpc_url(), ConnectOptions::new(app.api_key())).await?;
    let handled = Arc::new(AtomicU64::new(0));
    let first = Arc::new(Mutex::new(None::<Instant>));
    let stop = CancellationToken::new();
    let handler = {
        let (handled, first, stop) = (Arc::clone(&handled), Arc::clone(&first), stop.clone());
        move |_event: pb::Event| {
            let (handled, first, stop) = (Arc::clone(&handled), Arc::clone(&first), stop.clone());
            async move {
                first.lock().await.get_or_insert_with(Instant::now);
                if handled.fetch_add(1, Ordering::Relaxed) + 1 >= events {
                    stop.cancel();
                }
                Ok(())
            }
        }
    };
    let options = ConsumeOptions {
        concurrency,
        max_in_flight: i32::try_from(concurrency).unwrap_or(16),
    };
    client.consume(handler, options, stop).await?;
    let started = first.lock().await.context("no event was handled")?;
    Ok(events as f64 / started.elapsed().as_secs_f64())
}

async fn external_consume(
    app: &AppHandle,
    command: &str,
    events: u64,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let out = Command::new("sh")
        .args(["-c", command])
        .env("VODTASK_URL", app.grpc_url())
        .env("VODTASK_API_KEY", app.api_key())
        .env("VODTASK_EVENTS", events.to_string())
        .env("VODTASK_CONCURRENCY", concurrency.to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("run {command}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{command} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("events_per_second="))
        .and_then(|r| r.trim().parse().ok())
        .with_context(|| format!("{command} printed no events_per_second= line: {stdout}"))
}

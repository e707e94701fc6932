//! Events per second through each client's `consume`: the Rust client
//! (crates/vodtask-client) in this process, and the Python and Node
//! packages as child processes running their own consume loop. Each
//! consumer gets a fresh app with the same number of pre-loaded events and
//! reports the rate from its first handled event to its last; the ratios
//! are against the Rust client's rate on the same server in the same round.
//! The order of the clients rotates from round to round (a later run meets a
//! bigger database and whatever else the machine does), after a first drain
//! that is not counted, and the summary gives the median of each client's
//! per-round ratio.
//!
//! Beside each rate it prints the CPU time per event of the consumer's
//! process (over the same window as the rate) and of the server (over the
//! whole run): on a shared machine these move far less than the rates, so a
//! change to a binding is judged by them.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::Command;
use tokio::sync::Mutex;
use vodtask_client::{CancellationToken, Client, ConnectOptions, ConsumeOptions, pb};

use crate::harness::cpu;
use crate::harness::measure::median;
use crate::harness::queue::preload;
use crate::harness::server::{AppHandle, Server, ServerArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Events pre-loaded for each consumer.
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    /// Handlers running at once in each consumer.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Unconfirmed events on each consumer's stream (at least
    /// `--concurrency`); 0 means the same as `--concurrency`.
    #[arg(long, default_value_t = 0)]
    max_in_flight: usize,
    /// A command running the Python consumer (it reads VODTASK_URL,
    /// VODTASK_API_KEY, VODTASK_EVENTS, VODTASK_CONCURRENCY and
    /// VODTASK_MAX_IN_FLIGHT, and prints the lines `events_per_second=<rate>`
    /// and `cpu_seconds=<its CPU time from the first handled event to the
    /// last>`).
    #[arg(long)]
    python: Option<String>,
    /// The same for the Node consumer.
    #[arg(long)]
    node: Option<String>,
    /// Rounds, each running every client once, in rotated order.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[command(flatten)]
    server: ServerArgs,
}

/// The same for every consumer: handlers at once, unconfirmed events.
#[derive(Clone, Copy)]
struct Flow {
    concurrency: usize,
    max_in_flight: usize,
}

#[derive(Clone, Copy)]
enum Consumer<'a> {
    Rust,
    /// A package's consume loop, run by `command` in a child process.
    External {
        name: &'static str,
        command: &'a str,
    },
}

impl Consumer<'_> {
    fn name(self) -> &'static str {
        match self {
            Consumer::Rust => "Rust client",
            Consumer::External { name, .. } => name,
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // The events do not depend on the probe; `true` keeps pre-loading fast.
    let flags = ["--workers", "0", "--ffprobe", "true"];
    Server::with(&args.server, &flags, async |server| {
        rounds(&args, server).await
    })
    .await
}

async fn rounds(args: &Args, server: &Server) -> anyhow::Result<()> {
    let mut consumers = vec![Consumer::Rust];
    for (name, command) in [
        ("Python package", &args.python),
        ("Node package", &args.node),
    ] {
        if let Some(command) = command {
            consumers.push(Consumer::External { name, command });
        }
    }

    // ratios[i]: consumer i's rate over the Rust client's, one per round.
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); consumers.len()];
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); consumers.len()];
    let flow = Flow {
        concurrency: args.concurrency.max(1),
        max_in_flight: args.max_in_flight.max(args.concurrency.max(1)),
    };
    println!(
        "\nconsume, {} pre-loaded events each, concurrency {}, {} in flight",
        args.events, flow.concurrency, flow.max_in_flight
    );
    // The server's first drain runs slower than the later ones (cold caches,
    // structures still growing): whichever client came first in round 1
    // paid for it. One drain by the Rust client, not counted, goes first.
    let warm_up = loaded(server, "warm-up", args.events).await?;
    rust_consume(&warm_up, args.events, flow).await?;
    for round in 0..args.rounds.max(1) {
        let mut order: Vec<usize> = (0..consumers.len()).collect();
        order.rotate_left(round % consumers.len());
        let mut this_round = vec![Run::default(); consumers.len()];
        for i in order {
            let consumer = consumers[i];
            let slug = consumer.name().to_lowercase().replace(' ', "-");
            let app = loaded(server, &format!("{slug}-{round}"), args.events).await?;
            let server_cpu = server.pid().and_then(cpu::of);
            let (rate, consumer_cpu) = match consumer {
                Consumer::Rust => rust_consume(&app, args.events, flow).await?,
                Consumer::External { command, .. } => {
                    external_consume(&app, command, args.events, flow).await?
                }
            };
            let server_cpu = server.pid().and_then(|pid| cpu::since(pid, server_cpu));
            let per_event = |d: Duration| d.as_secs_f64() * 1e6 / args.events as f64;
            this_round[i] = Run {
                rate,
                consumer_us: consumer_cpu.map_or(f64::NAN, per_event),
                server_us: server_cpu.map_or(f64::NAN, per_event),
            };
        }
        let rust = this_round[0].rate;
        let line: Vec<String> = consumers
            .iter()
            .zip(&this_round)
            .map(|(c, run)| {
                format!(
                    "{} {:.0}/s ({:.2}, cpu {:.1}+{:.1} µs)",
                    c.name(),
                    run.rate,
                    run.rate / rust,
                    run.consumer_us,
                    run.server_us
                )
            })
            .collect();
        println!("  round {}: {}", round + 1, line.join(", "));
        for (i, run) in this_round.into_iter().enumerate() {
            ratios[i].push(run.rate / rust);
            runs[i].push(run);
        }
    }
    println!(
        "median of {} rounds (cpu: µs per event, consumer + server):",
        args.rounds.max(1)
    );
    for (i, consumer) in consumers.iter().enumerate() {
        let of_runs = |f: fn(&Run) -> f64| {
            median(&runs[i].iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
        };
        println!(
            "  {:<16} {:>10.0} events/s   {:>5.2} of the Rust client (target >= 0.80)   cpu {:.1} + {:.1}",
            consumer.name(),
            of_runs(|r| r.rate),
            median(&ratios[i]).unwrap_or(f64::NAN),
            of_runs(|r| r.consumer_us),
            of_runs(|r| r.server_us),
        );
    }
    Ok(())
}

/// One consumer's run: its rate and its and the server's CPU per event.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    rate: f64,
    consumer_us: f64,
    server_us: f64,
}

async fn loaded(server: &Server, name: &str, events: u64) -> anyhow::Result<AppHandle> {
    let app = server.as_new_app(&format!("consume-{name}"))?;
    eprintln!("pre-loading {events} events for {name}");
    preload(&app, events, 8).await?;
    Ok(app)
}

/// The rate, and this process's CPU time from the first event to the last.
async fn rust_consume(
    app: &AppHandle,
    events: u64,
    flow: Flow,
) -> anyhow::Result<(f64, Option<Duration>)> {
    let client = Client::connect(&app.grpc_url(), ConnectOptions::new(app.api_key())).await?;
    let handled = Arc::new(AtomicU64::new(0));
    let first = Arc::new(Mutex::new(None::<(Instant, Option<Duration>)>));
    let stop = CancellationToken::new();
    let handler = {
        let (handled, first, stop) = (Arc::clone(&handled), Arc::clone(&first), stop.clone());
        move |_event: pb::Event| {
            let (handled, first, stop) = (Arc::clone(&handled), Arc::clone(&first), stop.clone());
            async move {
                first
                    .lock()
                    .await
                    .get_or_insert_with(|| (Instant::now(), cpu::of(std::process::id())));
                if handled.fetch_add(1, Ordering::Relaxed) + 1 >= events {
                    stop.cancel();
                }
                Ok(())
            }
        }
    };
    let options = ConsumeOptions {
        concurrency: flow.concurrency,
        max_in_flight: i32::try_from(flow.max_in_flight).unwrap_or(i32::MAX),
    };
    client.consume(handler, options, stop).await?;
    let (started, cpu_then) = first.lock().await.context("no event was handled")?;
    let rate = events as f64 / started.elapsed().as_secs_f64();
    Ok((rate, cpu::since(std::process::id(), cpu_then)))
}

/// The rate and CPU time the command reports.
async fn external_consume(
    app: &AppHandle,
    command: &str,
    events: u64,
    flow: Flow,
) -> anyhow::Result<(f64, Option<Duration>)> {
    let out = Command::new("sh")
        .args(["-c", command])
        .env("VODTASK_URL", app.grpc_url())
        .env("VODTASK_API_KEY", app.api_key())
        .env("VODTASK_EVENTS", events.to_string())
        .env("VODTASK_CONCURRENCY", flow.concurrency.to_string())
        .env("VODTASK_MAX_IN_FLIGHT", flow.max_in_flight.to_string())
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
    let value = |key: &str| -> Option<f64> {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
    };
    let rate = value("events_per_second=")
        .with_context(|| format!("{command} printed no events_per_second= line: {stdout}"))?;
    let cpu = value("cpu_seconds=").and_then(|s| Duration::try_from_secs_f64(s).ok());
    Ok((rate, cpu))
}

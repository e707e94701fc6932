//! `vodtask-bench callbacks`: HTTP callbacks per second to a local receiver
//! that answers at once, with the server's memory sampled through the run;
//! then the same beside another app whose endpoint never answers.
//!
//! Events are pre-loaded in PULL mode (uploads, as in the events benchmark)
//! and the app is then switched to PUSH, so the measured rate is the
//! callback path alone, not the upload path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use vodtask_proto::v1 as pb;

use crate::harness::measure::{self, Rate};
use crate::harness::queue::preload;
use crate::harness::report::{thousands, verdict};
use crate::harness::server::{AppHandle, Server, ServerArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Events delivered in the main run.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Events of each app in the run beside a dead endpoint.
    #[arg(long, default_value_t = 20_000)]
    beside_dead: u64,
    /// Concurrent UploadMedia calls while pre-loading.
    #[arg(long, default_value_t = 32)]
    upload_clients: usize,
    #[command(flatten)]
    server: ServerArgs,
}

const TARGET_PER_SECOND: f64 = 5_000.0;
/// Give up on a run slower than this many callbacks per second.
const SLOWEST_RATE: u64 = 100;
/// How often the server's memory is read.
const MEMORY_EVERY: Duration = Duration::from_millis(50);

/// A receiver that answers 200 at once and counts, or never answers.
async fn receiver(answer: bool) -> anyhow::Result<(String, Arc<AtomicU64>)> {
    let count = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .route(
            "/hook",
            post(move |State(n): State<Arc<AtomicU64>>| async move {
                n.fetch_add(1, Ordering::Relaxed);
                if !answer {
                    std::future::pending::<()>().await;
                }
                StatusCode::OK
            }),
        )
        .with_state(Arc::clone(&count));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, count))
}

/// The server's resident memory, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// RSS in KiB at the start, at each quarter of the run, and the peak.
#[derive(Debug, Default, Clone, Copy)]
struct Memory {
    start: u64,
    quarters: [u64; 4],
    peak: u64,
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |k: u64| format!("{:.0}", k as f64 / 1024.0);
        let q = self.quarters;
        write!(
            f,
            "server RSS (MiB) at the start {}, after 25 % {}, 50 % {}, 75 % {}, 100 % {}; peak {}",
            mib(self.start),
            mib(q[0]),
            mib(q[1]),
            mib(q[2]),
            mib(q[3]),
            mib(self.peak)
        )
    }
}

async fn push_to(app: &AppHandle, url: &str, timeout: i32, schedule: &[i64]) -> anyhow::Result<()> {
    app.event_client()
        .await?
        .modify_event_config(pb::ModifyEventConfigRequest {
            mode: pb::DeliveryMode::Push as i32,
            notification_url: Some(url.to_string()),
            callback_timeout_seconds: Some(timeout),
            retry_schedule_seconds: schedule.to_vec(),
            ..Default::default()
        })
        .await
        .context("ModifyEventConfig")?;
    Ok(())
}

/// Waits until `count` reaches `target`, sampling the server's memory.
async fn drain(count: &AtomicU64, target: u64, pid: u32) -> anyhow::Result<(Rate, Memory)> {
    let started = Instant::now();
    let mut memory = Memory {
        start: rss_kib(pid).unwrap_or(0),
        ..Memory::default()
    };
    let deadline = started + measure::deadline(target, SLOWEST_RATE);
    let mut quarter = 0;
    loop {
        let done = count.load(Ordering::Relaxed);
        let rss = rss_kib(pid).unwrap_or(0);
        memory.peak = memory.peak.max(rss);
        while quarter < 4 && done * 4 >= target * (quarter as u64 + 1) {
            memory.quarters[quarter] = rss;
            quarter += 1;
        }
        if done >= target {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {done} of {target} callbacks arrived"
        );
        tokio::time::sleep(MEMORY_EVERY).await;
    }
    Ok((Rate::since(started, target), memory))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let flags = [
        "--workers",
        "0",
        "--ffprobe",
        "true",
        "--allow-callback-cidr",
        "127.0.0.1/32",
    ];

    // One app, a receiver that answers at once.
    let (fast, fast_mem) = Server::with(&args.server, &flags, async |server| {
        let pid = server.pid().context("the server's pid")?;
        let app = server.default_app();
        println!("pre-loading {} events…", args.events);
        preload(&app, args.events, args.upload_clients).await?;
        let (url, count) = receiver(true).await?;
        push_to(&app, &url, 5, &[0, 1, 5]).await?;
        drain(&count, args.events, pid).await
    })
    .await?;

    // Two apps: A's endpoint never answers, B's answers at once.
    let (beside, beside_mem, dead_tried) = Server::with(&args.server, &flags, async |server| {
        let pid = server.pid().context("the server's pid")?;
        let a = server.default_app();
        let b = server.as_new_app("b")?;
        println!(
            "pre-loading {} events for each of two apps…",
            args.beside_dead
        );
        preload(&a, args.beside_dead, args.upload_clients).await?;
        preload(&b, args.beside_dead, args.upload_clients).await?;
        let (dead_url, dead_count) = receiver(false).await?;
        let (url, count) = receiver(true).await?;
        push_to(&a, &dead_url, 5, &[0, 3600]).await?;
        push_to(&b, &url, 5, &[0, 1, 5]).await?;
        let (beside, memory) = drain(&count, args.beside_dead, pid).await?;
        Ok((beside, memory, dead_count.load(Ordering::Relaxed)))
    })
    .await?;

    println!();
    println!(
        "vodtask-bench callbacks (release binary, --workers 0; server, receivers and this program share 2 cores)"
    );
    println!(
        "  callbacks to a receiver answering at once: {} events in {:.2} s = {}/s (target >= {}/s: {})",
        fast.count,
        fast.elapsed.as_secs_f64(),
        thousands(fast.per_second()),
        thousands(TARGET_PER_SECOND),
        verdict(fast.per_second() >= TARGET_PER_SECOND)
    );
    println!("    {fast_mem}");
    println!(
        "  beside an app whose endpoint never answers ({} of its callbacks started, each timing out after 5 s): {} events in {:.2} s = {}/s ({:.2} of the rate alone)",
        dead_tried,
        beside.count,
        beside.elapsed.as_secs_f64(),
        thousands(beside.per_second()),
        beside.per_second() / fast.per_second()
    );
    println!("    {beside_mem}");
    Ok(())
}

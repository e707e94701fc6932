//! `tasks`: CreateTask throughput from many concurrent clients, then the
//! unloaded latency of DescribeTask, ListTasks and GetTaskOverview once the
//! store holds `--total` tasks.
//!
//! The server runs with `--workers 0`, so every task stays WAITING: the
//! figures are those of the API and its store, not of ffmpeg.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use prost_types::Timestamp;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;
use vodtask_proto::v1 as pb;
use vodtask_proto::v1::task_spec::Kind;

use crate::harness::measure::{Latencies, Rate, time_calls};
use crate::harness::report::{self, Row, Target, thousands};
use crate::harness::server::{self, Server, ServerArgs, TaskClient};

/// Task ids kept for DescribeTask, sampled evenly over the whole run.
const SAMPLED_IDS: u64 = 10_000;
/// Every n-th task of the fill phase is a snapshot, so that the task_type
/// filter has something to select.
const SNAPSHOT_EVERY: u64 = 4;
/// Untimed calls before each latency measurement (connection, caches).
const WARMUP_CALLS: usize = 100;
const PAGE_SIZE: i32 = 100;
const PAGES_PER_SCROLL: usize = 50;
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// The targets the figures are read against (at 1M tasks).
const CREATE_TARGET: Target = Target::MinRate(10_000.0);
const LIST_TARGET: Target = Target::MaxP99(Duration::from_millis(10));
const OVERVIEW_TARGET: Target = Target::MaxP99(Duration::from_millis(1));
const TARGET_SCALE: u64 = 1_000_000;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Concurrent clients in the create phases, each on its own connection.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Tasks created in the timed CreateTask phase.
    #[arg(long, default_value_t = 200_000)]
    create_count: u64,
    /// Tasks in the store for the latency phase, the timed ones included.
    #[arg(long, default_value_t = 1_000_000)]
    total: u64,
    /// Timed calls per operation in the latency phase.
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    #[command(flatten)]
    server: ServerArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.clients == 0 || args.samples == 0 || args.create_count == 0 {
        bail!("--clients, --samples and --create-count must be at least 1");
    }
    Server::with(&args.server, &["--workers", "0"], async |server| {
        bench(&args, server).await
    })
    .await
}

async fn bench(args: &Args, server: &Server) -> anyhow::Result<()> {
    let file_id = upload_file(server).await?;
    let (create, fill) = create_and_fill(args, server, file_id).await?;

    // One client, one call at a time: latency without load.
    let client = server.task_client().await?;
    let in_store = overview(client.clone(), None).await?.total;
    eprintln!(
        "Latency: {} sequential calls per operation on {} tasks",
        args.samples,
        thousands(in_store as f64)
    );
    let mut task_ids = create.task_ids.clone();
    let mut rows = vec![
        Row::new(
            format!("CreateTask ({} clients)", args.clients),
            create.latencies.clone(),
        )
        .rate(create.rate.per_second())
        .target(CREATE_TARGET),
    ];
    if let Some(fill) = &fill {
        task_ids.extend_from_slice(&fill.task_ids);
        rows.push(
            Row::new(
                format!("CreateTask, fill ({} clients)", args.clients),
                fill.latencies.clone(),
            )
            .rate(fill.rate.per_second()),
        );
    }
    rows.extend(latency_rows(client, &task_ids, args.samples).await?);

    let mut heading = vec![
        (
            "server",
            format!("{} serve --workers 0", server.binary.display()),
        ),
        (
            "cores",
            format!(
                "{} (shared by the server and this benchmark)",
                report::cores()
            ),
        ),
        (
            "tasks in store",
            format!("{} (GetTaskOverview total)", thousands(in_store as f64)),
        ),
    ];
    for (name, phase) in [
        ("create phase", Some(&create)),
        ("fill phase", fill.as_ref()),
    ] {
        if let Some(phase) = phase {
            heading.push((
                name,
                format!(
                    "{} tasks in {:.1} s ({}/s)",
                    thousands(phase.rate.count as f64),
                    phase.rate.elapsed.as_secs_f64(),
                    thousands(phase.rate.per_second()),
                ),
            ));
        }
    }
    if u64::try_from(in_store).unwrap_or(0) < TARGET_SCALE {
        heading.push((
            "note",
            format!(
                "the targets are for {} tasks",
                thousands(TARGET_SCALE as f64)
            ),
        ));
    }
    report::print_heading("vodtask-bench tasks", &heading);
    report::print_rows(&rows);
    Ok(())
}

/// The timed CreateTask phase, then (if `--total` asks for more) the fill
/// phase, both from `--clients` connections that are closed afterwards so
/// that the latency phase runs on a quiet server.
async fn create_and_fill(
    args: &Args,
    server: &Server,
    file_id: String,
) -> anyhow::Result<(Created, Option<Created>)> {
    let mut clients = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        clients.push(server.task_client().await?);
    }
    let sample_stride = (args.total / SAMPLED_IDS).max(1);

    eprintln!(
        "CreateTask: {} transcode tasks from {} clients",
        thousands(args.create_count as f64),
        args.clients
    );
    let create = create_tasks(
        &clients,
        CreatePhase {
            name: "create",
            file_id: file_id.clone(),
            first: 0,
            count: args.create_count,
            with_snapshots: false,
            sample_stride,
        },
    )
    .await?;
    eprintln!("  done in {:.1} s", create.rate.elapsed.as_secs_f64());

    let fill_count = args.total.saturating_sub(args.create_count);
    if fill_count == 0 {
        return Ok((create, None));
    }
    eprintln!(
        "Filling the store to {} tasks (1 in {SNAPSHOT_EVERY} a snapshot)",
        thousands(args.total as f64)
    );
    let fill = create_tasks(
        &clients,
        CreatePhase {
            name: "fill",
            file_id,
            first: args.create_count,
            count: fill_count,
            with_snapshots: true,
            sample_stride,
        },
    )
    .await?;
    eprintln!("  done in {:.1} s", fill.rate.elapsed.as_secs_f64());
    Ok((create, Some(fill)))
}

/// `count` transcode tasks of `file_id` created from every client at once
/// (each client on its own connection, to whichever node it was made for).
pub async fn create_many(
    clients: &[TaskClient],
    file_id: String,
    count: u64,
) -> anyhow::Result<(Rate, Latencies)> {
    let phase = CreatePhase {
        name: "create",
        file_id,
        first: 0,
        count,
        with_snapshots: false,
        sample_stride: u64::MAX,
    };
    let created = create_tasks(clients, phase).await?;
    Ok((created.rate, created.latencies))
}

/// CreateTask only checks that the file exists, so a few bytes do.
pub async fn upload_file(server: &Server) -> anyhow::Result<String> {
    let mut media = server.media_client().await?;
    server::upload(&mut media, "bench.bin".into(), String::new(), &[0; 4096]).await
}

/// One create phase: the tasks numbered `first..first + count` in the run.
#[derive(Clone)]
struct CreatePhase {
    name: &'static str,
    file_id: String,
    first: u64,
    count: u64,
    with_snapshots: bool,
    /// Keep the id of every task whose number is a multiple of this.
    sample_stride: u64,
}

impl CreatePhase {
    fn spec(&self, number: u64) -> pb::TaskSpec {
        let file_id = self.file_id.clone();
        let kind = if self.with_snapshots && number.is_multiple_of(SNAPSHOT_EVERY) {
            Kind::SnapshotByTimeOffset(pb::SnapshotByTimeOffsetSpec {
                file_id,
                definition: 10,
                time_offsets_ms: vec![0],
            })
        } else {
            Kind::Transcode(pb::TranscodeSpec {
                file_id,
                definitions: vec![100010],
            })
        };
        pb::TaskSpec { kind: Some(kind) }
    }
}

struct Created {
    latencies: Latencies,
    rate: Rate,
    task_ids: Vec<String>,
}

/// Creates the phase's tasks from every client at once; each client takes
/// the next number from a shared counter until all are taken.
async fn create_tasks(clients: &[TaskClient], phase: CreatePhase) -> anyhow::Result<Created> {
    let phase = Arc::new(phase);
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    // Both sets abort their tasks when dropped, also when a client fails.
    let mut progress = JoinSet::new();
    progress.spawn(report_progress(Arc::clone(&phase), Arc::clone(&done)));
    let mut workers = JoinSet::new();
    for client in clients {
        workers.spawn(create_loop(
            client.clone(),
            Arc::clone(&phase),
            Arc::clone(&next),
            Arc::clone(&done),
        ));
    }
    let mut latencies = Latencies::default();
    let mut task_ids = Vec::new();
    while let Some(joined) = workers.join_next().await {
        let (client_latencies, client_ids) = joined.context("a client task failed")??;
        latencies.merge(&client_latencies);
        task_ids.extend(client_ids);
    }
    let rate = Rate::since(started, latencies.count());
    progress.abort_all();
    Ok(Created {
        latencies,
        rate,
        task_ids,
    })
}

async fn create_loop(
    mut client: TaskClient,
    phase: Arc<CreatePhase>,
    next: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
) -> anyhow::Result<(Latencies, Vec<String>)> {
    let mut rng = StdRng::from_rng(&mut rand::rng());
    let mut latencies = Latencies::default();
    let mut task_ids = Vec::new();
    loop {
        let ticket = next.fetch_add(1, Ordering::Relaxed);
        if ticket >= phase.count {
            return Ok((latencies, task_ids));
        }
        let number = phase.first + ticket;
        let request = pb::CreateTaskRequest {
            spec: Some(phase.spec(number)),
            priority: rng.random_range(-10..=10),
            session_id: String::new(),
            session_context: String::new(),
        };
        let started = Instant::now();
        let response = client
            .create_task(request)
            .await
            .with_context(|| format!("CreateTask #{number}"))?;
        latencies.record(started.elapsed());
        done.fetch_add(1, Ordering::Relaxed);
        if number.is_multiple_of(phase.sample_stride) {
            task_ids.push(response.into_inner().task_id);
        }
    }
}

/// A line on stderr every few seconds, so that a long fill shows it moves.
async fn report_progress(phase: Arc<CreatePhase>, done: Arc<AtomicU64>) {
    let started = Instant::now();
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    loop {
        ticks.tick().await;
        let n = done.load(Ordering::Relaxed);
        eprintln!(
            "  {}: {} / {} ({}/s)",
            phase.name,
            thousands(n as f64),
            thousands(phase.count as f64),
            thousands(n as f64 / started.elapsed().as_secs_f64())
        );
    }
}

/// The single-client latency measurements, one table row each.
async fn latency_rows(
    client: TaskClient,
    task_ids: &[String],
    samples: usize,
) -> anyhow::Result<Vec<Row>> {
    if task_ids.is_empty() {
        bail!("no task ids were sampled");
    }
    let mut rows = Vec::new();

    let mut rng = StdRng::from_rng(&mut rand::rng());
    let describe = time_calls(WARMUP_CALLS, samples, || {
        let mut client = client.clone();
        let task_id = task_ids.choose(&mut rng).cloned().unwrap_or_default();
        async move {
            client
                .describe_task(pb::DescribeTaskRequest { task_id })
                .await
                .context("DescribeTask")?;
            Ok(())
        }
    })
    .await?;
    rows.push(Row::new("DescribeTask (random id)", describe));

    let newest_10 = pb::ListTasksRequest {
        limit: 10,
        order: pb::SortOrder::Desc as i32,
        ..Default::default()
    };
    let waiting = pb::ListTasksRequest {
        status: pb::TaskStatus::Waiting as i32,
        limit: PAGE_SIZE,
        ..Default::default()
    };
    let snapshots = pb::ListTasksRequest {
        task_type: pb::TaskType::SnapshotByTimeOffset as i32,
        limit: PAGE_SIZE,
        ..Default::default()
    };
    let middle = pb::ListTasksRequest {
        create_time: Some(middle_half(client.clone()).await?),
        sort_by: pb::TaskSortBy::CreateTime as i32,
        order: pb::SortOrder::Asc as i32,
        limit: PAGE_SIZE,
        ..Default::default()
    };
    for (name, request) in [
        ("ListTasks newest, limit 10", newest_10),
        ("ListTasks status=WAITING, limit 100", waiting),
        ("ListTasks type=SNAPSHOT, limit 100", snapshots),
    ] {
        let latencies = time_calls(WARMUP_CALLS, samples, || {
            list(client.clone(), request.clone())
        })
        .await?;
        rows.push(Row::new(name, latencies).target(LIST_TARGET));
    }
    rows.push(
        Row::new(
            format!("ListTasks scroll, {PAGES_PER_SCROLL} pages of 100"),
            measure_scrolls(client.clone(), samples).await?,
        )
        .target(LIST_TARGET),
    );
    let latencies = time_calls(WARMUP_CALLS, samples, || {
        list(client.clone(), middle.clone())
    })
    .await?;
    rows.push(Row::new("ListTasks asc, middle half, limit 100", latencies).target(LIST_TARGET));

    let last_day = last_24_hours();
    for (name, range) in [
        ("GetTaskOverview all time", None),
        ("GetTaskOverview last 24 h", Some(last_day)),
    ] {
        let latencies = time_calls(WARMUP_CALLS, samples, || {
            let client = client.clone();
            async move {
                overview(client, range).await?;
                Ok(())
            }
        })
        .await?;
        rows.push(Row::new(name, latencies).target(OVERVIEW_TARGET));
    }
    Ok(rows)
}

async fn list(mut client: TaskClient, request: pb::ListTasksRequest) -> anyhow::Result<()> {
    client.list_tasks(request).await.context("ListTasks")?;
    Ok(())
}

/// Per-page latency of following scroll tokens: scrolls of up to
/// `PAGES_PER_SCROLL` pages from the newest task, until `samples` pages.
async fn measure_scrolls(mut client: TaskClient, samples: usize) -> anyhow::Result<Latencies> {
    let first_page = pb::ListTasksRequest {
        limit: PAGE_SIZE,
        ..Default::default()
    };
    let mut latencies = Latencies::default();
    let mut request = first_page.clone();
    let mut pages_in_scroll = 0;
    let mut warmup_left = WARMUP_CALLS;
    while latencies.count() < samples as u64 {
        let started = Instant::now();
        let page = client
            .list_tasks(request.clone())
            .await
            .context("ListTasks (scroll)")?
            .into_inner();
        let elapsed = started.elapsed();
        if warmup_left > 0 {
            warmup_left -= 1;
        } else {
            latencies.record(elapsed);
        }
        pages_in_scroll += 1;
        if page.scroll_token.is_empty() || pages_in_scroll == PAGES_PER_SCROLL {
            request = first_page.clone();
            pages_in_scroll = 0;
        } else {
            request.scroll_token = page.scroll_token;
        }
    }
    Ok(latencies)
}

async fn overview(
    mut client: TaskClient,
    create_time: Option<pb::TimeRange>,
) -> anyhow::Result<pb::GetTaskOverviewResponse> {
    Ok(client
        .get_task_overview(pb::GetTaskOverviewRequest { create_time })
        .await
        .context("GetTaskOverview")?
        .into_inner())
}

/// The middle half of the stored tasks' create times, from the oldest and
/// the newest task: a range whose start is deep inside the index.
async fn middle_half(client: TaskClient) -> anyhow::Result<pb::TimeRange> {
    let oldest = edge_create_time(client.clone(), pb::SortOrder::Asc).await?;
    let newest = edge_create_time(client, pb::SortOrder::Desc).await?;
    let span = newest.duration_since(oldest).unwrap_or_default();
    Ok(pb::TimeRange {
        after: Some(Timestamp::from(oldest + span / 4)),
        before: Some(Timestamp::from(oldest + span * 3 / 4)),
    })
}

/// The create time of the first task in this order.
async fn edge_create_time(
    mut client: TaskClient,
    order: pb::SortOrder,
) -> anyhow::Result<SystemTime> {
    let page = client
        .list_tasks(pb::ListTasksRequest {
            order: order as i32,
            limit: 1,
            ..Default::default()
        })
        .await
        .context("ListTasks (oldest or newest task)")?
        .into_inner();
    let created = page
        .tasks
        .first()
        .and_then(|task| task.create_time)
        .context("no task, or a task without create_time")?;
    SystemTime::try_from(created).context("create_time out of range")
}

fn last_24_hours() -> pb::TimeRange {
    let now = SystemTime::now();
    let day_ago = now
        .checked_sub(Duration::from_secs(24 * 3600))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    pb::TimeRange {
        after: Some(Timestamp::from(day_ago)),
        before: Some(Timestamp::from(now)),
    }
}

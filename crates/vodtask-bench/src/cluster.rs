//! `cluster`: vodtask with its state in PostgreSQL, through one and two API
//! nodes on one database, beside SQLite's one node and, for the event
//! queue, pgmq on the same PostgreSQL.
//!
//! Every run gets a database of its own on the `--postgres` server,
//! created before and dropped after. CreateTask is timed with `--clients`
//! clients spread over the nodes; a consume run pre-loads `--events`
//! events through the first node (UploadMedia, untimed) and times
//! `--consumers` consumers, spread over the nodes, draining them. pgmq gets
//! the same number of messages of the same size, the same consumers and
//! the same batch (its read batch = PullEvents' max_events, or the
//! stream's max_in_flight). Latency: an upload committed through the first
//! node, timed to a consumer waiting on the last one.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_postgres::NoTls;

use crate::events::vodtask::{Waiter, latency_between};
use crate::harness::measure::{Latencies, LatencyRun, Mode, Rate};
use crate::harness::queue::{self, Sizes};
use crate::harness::report::{self, Table, millis, thousands, verdict};
use crate::harness::server::{Server, ServerArgs};
use crate::tasks;

/// Commit-to-delivery p99 across nodes, from the issue.
const LATENCY_TARGET: Duration = Duration::from_millis(50);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The PostgreSQL server; each run creates (and drops) a database there.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Concurrent CreateTask clients, each on its own connection.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Tasks created per setup (0: no CreateTask runs).
    #[arg(long, default_value_t = 20_000)]
    create_count: u64,
    /// Events pre-loaded before each consume run (pgmq: messages sent).
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    /// Concurrent consumers in each consume run, each on its own connection.
    #[arg(long, default_value_t = 4)]
    consumers: usize,
    /// Concurrent UploadMedia calls while pre-loading.
    #[arg(long, default_value_t = 32)]
    upload_clients: usize,
    /// The consume runs: `stream:N` (SubscribeEvents, N in flight) and
    /// `pull:N` (PullEvents batches of N).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "stream:256,pull:16,pull:256"
    )]
    modes: Vec<Mode>,
    /// Timed commit-to-delivery samples per latency line (0: none).
    #[arg(long, default_value_t = 300)]
    samples: usize,
    /// The setups measured: `sqlite`, `postgres:N` (N API nodes).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sqlite,postgres:1,postgres:2"
    )]
    setups: Vec<Setup>,
    /// Leave pgmq out.
    #[arg(long)]
    no_pgmq: bool,
    /// The pgmq yardstick [default: its release build under
    /// crates/vodtask-bench/yardsticks/pgmq/target].
    #[arg(long)]
    pgmq_bin: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Where vodtask keeps its state, and through how many API nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    Sqlite,
    Postgres { nodes: usize },
}

impl std::str::FromStr for Setup {
    type Err = String;

    fn from_str(s: &str) -> Result<Setup, String> {
        let nodes = |n: &str| match n.parse() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!(
                "{s:?}: the nodes of postgres:N must be a number >= 1"
            )),
        };
        match s.split_once(':') {
            None if s == "sqlite" => Ok(Setup::Sqlite),
            Some(("postgres", n)) => Ok(Setup::Postgres { nodes: nodes(n)? }),
            _ => Err(format!("{s:?}: a setup is `sqlite` or `postgres:N`")),
        }
    }
}

impl Setup {
    fn label(self) -> String {
        match self {
            Setup::Sqlite => "SQLite, 1 node".into(),
            Setup::Postgres { nodes: 1 } => "PostgreSQL, 1 node".into(),
            Setup::Postgres { nodes } => format!("PostgreSQL, {nodes} nodes"),
        }
    }
}

/// A database made for one run, dropped by `drop_now`.
struct Database {
    server: String,
    name: String,
    url: String,
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connect to {url}"))?;
    tokio::spawn(connection);
    Ok(client)
}

impl Database {
    async fn create(server: &str) -> anyhow::Result<Database> {
        let name = format!("vodtask_bench_{}", uuid::Uuid::new_v4().simple());
        connect(server)
            .await?
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("create database {name}"))?;
        let Some((base, _)) = server.rsplit_once('/') else {
            bail!("--postgres {server:?} names no database");
        };
        Ok(Database {
            url: format!("{base}/{name}"),
            server: server.into(),
            name,
        })
    }

    async fn drop_now(self) -> anyhow::Result<()> {
        connect(&self.server)
            .await?
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await
            .with_context(|| format!("drop database {}", self.name))
    }
}

/// The nodes of one setup.
struct Nodes {
    servers: Vec<Server>,
    database: Option<Database>,
    /// Media shared by the nodes.
    _media: Option<tempfile::TempDir>,
}

impl Nodes {
    async fn start(args: &Args, setup: Setup, extra: &[&str]) -> anyhow::Result<Nodes> {
        let Setup::Postgres { nodes } = setup else {
            return Ok(Nodes {
                servers: vec![Server::start(&args.server, extra).await?],
                database: None,
                _media: None,
            });
        };
        let database = Database::create(&args.postgres).await?;
        let media = tempfile::tempdir().context("a media dir")?;
        let storage = format!("file://{}", media.path().display());
        let mut flags = extra.to_vec();
        flags.extend(["--database", &database.url, "--storage", &storage]);
        let first = Server::start(&args.server, &flags).await?;
        flags.extend(args.server.server_flags.iter().map(String::as_str));
        let mut servers = vec![first];
        for _ in 1..nodes {
            // The first node made the default app: the others get its key.
            let key_of = servers[0].data_dir();
            servers.push(
                Server::start_with(
                    args.server.binary()?,
                    key_of.as_deref(),
                    args.server.keep_data,
                    &flags,
                    &args.server.env,
                )
                .await?,
            );
        }
        Ok(Nodes {
            servers,
            database: Some(database),
            _media: Some(media),
        })
    }

    fn all(&self) -> Vec<&Server> {
        self.servers.iter().collect()
    }

    async fn stop(self) -> anyhow::Result<()> {
        for server in self.servers {
            server.stop().await?;
        }
        if let Some(database) = self.database {
            database.drop_now().await?;
        }
        Ok(())
    }

    /// Runs `bench` on nodes started for `setup`, then stops them.
    async fn with<T>(
        args: &Args,
        setup: Setup,
        extra: &[&str],
        bench: impl AsyncFnOnce(&Nodes) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let nodes = Nodes::start(args, setup, extra).await?;
        let outcome = bench(&nodes).await;
        let stopped = nodes.stop().await;
        let value = outcome?;
        stopped?;
        Ok(value)
    }
}

struct Created {
    setup: Setup,
    rate: Rate,
    latencies: Latencies,
}

struct Consumed {
    mode: Mode,
    /// Per setup, in `--setups` order.
    vodtask: Vec<Rate>,
    pgmq: Option<Rate>,
}

struct Latency {
    setup: Setup,
    stream: LatencyRun,
    long_poll: LatencyRun,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.clients == 0
        || args.events == 0
        || args.consumers == 0
        || args.upload_clients == 0
        || args.setups.is_empty()
    {
        bail!(
            "--clients, --events, --consumers and --upload-clients must be at least 1, and \
             --setups must name a setup"
        );
    }
    let pgmq_bin = if args.no_pgmq {
        None
    } else {
        Some(pgmq_bin(&args)?)
    };
    let (version, autovacuum) = server_facts(&args.postgres).await?;

    let mut created = Vec::new();
    for &setup in args.setups.iter().filter(|_| args.create_count > 0) {
        eprintln!("CreateTask, {}", setup.label());
        created.push(create_run(&args, setup).await?);
    }
    let mut consumed = Vec::new();
    let mut sizes = Sizes::default();
    for &mode in &args.modes {
        let mut vodtask = Vec::new();
        for &setup in &args.setups {
            eprintln!("{}, {}", mode.label(), setup.label());
            let (rate, drained_sizes) = consume_run(&args, setup, mode).await?;
            eprintln!("  {}/s", thousands(rate.per_second()));
            vodtask.push(rate);
            sizes.merge(&drained_sizes);
        }
        let pgmq = match &pgmq_bin {
            Some(bin) => {
                eprintln!("{}, pgmq", mode.label());
                let rate = pgmq_run(&args, bin, mode, sizes.average().round() as usize).await?;
                eprintln!("  {}/s", thousands(rate.per_second()));
                Some(rate)
            }
            None => None,
        };
        consumed.push(Consumed {
            mode,
            vodtask,
            pgmq,
        });
    }
    let mut latency = Vec::new();
    let postgres = args
        .setups
        .iter()
        .filter(|s| matches!(s, Setup::Postgres { .. }));
    for &setup in postgres.filter(|_| args.samples > 0) {
        eprintln!("commit-to-delivery, {}", setup.label());
        latency.push(latency_run(&args, setup).await?);
    }

    report::print_heading(
        "vodtask-bench cluster",
        &[
            (
                "vodtask",
                format!(
                    "{} serve --workers 0 per node; on PostgreSQL each run on a database of its \
                     own and media in a shared directory",
                    args.server.binary()?.display()
                ),
            ),
            ("PostgreSQL", format!("{version} at {}", args.postgres)),
            (
                "autovacuum",
                format!(
                    "{autovacuum} (this benchmark sets nothing; with it off, vodtask vacuums and \
                     analyses its own tables, pgmq's are left alone)"
                ),
            ),
            (
                "cores",
                format!(
                    "{} (shared by the nodes, PostgreSQL and this benchmark)",
                    report::cores()
                ),
            ),
            (
                "events",
                format!(
                    "{} per consume run, content_json {:.0} bytes on average; pgmq messages \
                     of the same size",
                    thousands(args.events as f64),
                    sizes.average()
                ),
            ),
            (
                "consumers",
                format!(
                    "{} per consume run, each on its own connection (spread over the nodes); \
                     pgmq: as many, each reading its batch then deleting it",
                    args.consumers
                ),
            ),
        ],
    );
    print_creates(&args, &created);
    print_consumes(&args.setups, &consumed);
    print_latency(&latency);
    report::print_notes(&[
        "Rates count created tasks, or confirmed (vodtask) / deleted (pgmq) events, from the \
         first call to the last."
            .into(),
        "vodtask also keeps per-task order (head of line) and a token per delivery, and its \
         events carry a row in the task tables' transaction; pgmq's read takes any visible \
         message."
            .into(),
        "Latency runs from UploadMedia's return on the first node to the arrival at a consumer \
         waiting on the last node (the same node with one)."
            .into(),
    ]);
    Ok(())
}

fn pgmq_bin(args: &Args) -> anyhow::Result<PathBuf> {
    let bin = args.pgmq_bin.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("yardsticks/pgmq/target/release/pgmq-yardstick")
    });
    if !bin.is_file() {
        bail!(
            "{} is missing: run `cargo build --release --manifest-path \
             crates/vodtask-bench/yardsticks/pgmq/Cargo.toml` first, or pass --pgmq-bin",
            bin.display()
        );
    }
    Ok(bin)
}

async fn server_facts(url: &str) -> anyhow::Result<(String, String)> {
    let client = connect(url).await?;
    let version: String = client.query_one("SHOW server_version", &[]).await?.get(0);
    let autovacuum: String = client.query_one("SHOW autovacuum", &[]).await?.get(0);
    Ok((version, autovacuum))
}

async fn create_run(args: &Args, setup: Setup) -> anyhow::Result<Created> {
    Nodes::with(args, setup, &["--workers", "0"], async |nodes| {
        let file_id = tasks::upload_file(&nodes.servers[0]).await?;
        let mut clients = Vec::with_capacity(args.clients);
        for server in nodes.all().into_iter().cycle().take(args.clients) {
            clients.push(server.task_client().await?);
        }
        let (rate, latencies) = tasks::create_many(&clients, file_id, args.create_count).await?;
        eprintln!("  {}/s", thousands(rate.per_second()));
        Ok(Created {
            setup,
            rate,
            latencies,
        })
    })
    .await
}

async fn consume_run(args: &Args, setup: Setup, mode: Mode) -> anyhow::Result<(Rate, Sizes)> {
    let flags = ["--workers", "0", "--ffprobe", "true"];
    Nodes::with(args, setup, &flags, async |nodes| {
        queue::fill(&nodes.servers[0], args.events, args.upload_clients).await?;
        let (drained, tally) =
            queue::drain(&nodes.all(), args.consumers, args.events, mode).await?;
        Ok((drained.rate, tally.sizes()))
    })
    .await
}

/// The yardstick on a database of its own.
async fn pgmq_run(
    args: &Args,
    bin: &Path,
    mode: Mode,
    payload_bytes: usize,
) -> anyhow::Result<Rate> {
    let database = Database::create(&args.postgres).await?;
    let output = tokio::process::Command::new(bin)
        .args(["--url", &database.url])
        .args(["--messages", &args.events.to_string()])
        .args(["--payload-bytes", &payload_bytes.to_string()])
        .args(["--consumers", &args.consumers.to_string()])
        .args(["--batch", &mode.depth().to_string()])
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("run {}", bin.display()));
    database.drop_now().await?;
    let output = output?;
    if !output.status.success() {
        bail!(
            "{} failed: {}",
            bin.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let figures: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("the yardstick's JSON line")?;
    let per_second = figures["consume_per_second"]
        .as_f64()
        .context("no consume_per_second in the yardstick's line")?;
    Ok(Rate {
        count: args.events,
        elapsed: Duration::from_secs_f64(args.events as f64 / per_second),
    })
}

async fn latency_run(args: &Args, setup: Setup) -> anyhow::Result<Latency> {
    let mut runs = Vec::new();
    for waiter in [Waiter::Stream, Waiter::LongPoll] {
        // A fresh setup each: a long poll abandoned at the end of a run
        // would take the next run's first event.
        runs.push(
            Nodes::with(args, setup, &["--workers", "0"], async |nodes| {
                let (first, last) = (&nodes.servers[0], &nodes.servers[nodes.servers.len() - 1]);
                latency_between(first, last, args.samples, waiter).await
            })
            .await?,
        );
    }
    let long_poll = runs.pop().context("two runs")?;
    let stream = runs.pop().context("two runs")?;
    Ok(Latency {
        setup,
        stream,
        long_poll,
    })
}

fn print_creates(args: &Args, created: &[Created]) {
    let sqlite = created
        .iter()
        .find(|c| c.setup == Setup::Sqlite)
        .map(|c| c.rate.per_second());
    let mut table = Table::new(&[
        &format!("CreateTask, {} clients", args.clients),
        "p50",
        "p99",
        "tasks/s",
        "/ SQLite",
    ]);
    for c in created {
        table.row([
            c.setup.label(),
            millis(c.latencies.quantile(0.5)),
            millis(c.latencies.quantile(0.99)),
            thousands(c.rate.per_second()),
            sqlite.map_or("n/a".into(), |s| format!("{:.2}", c.rate.per_second() / s)),
        ]);
    }
    table.print();
}

fn print_consumes(setups: &[Setup], consumed: &[Consumed]) {
    let mut header: Vec<String> = vec!["events/s".into()];
    header.extend(setups.iter().map(|s| s.label()));
    header.extend([
        "pgmq".into(),
        "PostgreSQL / pgmq".into(),
        "target".into(),
        String::new(),
    ]);
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut table = Table::new(&header);
    for c in consumed {
        let ratios: Vec<f64> = setups
            .iter()
            .zip(&c.vodtask)
            .filter(|(s, _)| matches!(s, Setup::Postgres { .. }))
            .filter_map(|(_, r)| Some(r.per_second() / c.pgmq?.per_second()))
            .collect();
        let mut row = vec![c.mode.label()];
        row.extend(c.vodtask.iter().map(|r| thousands(r.per_second())));
        row.push(c.pgmq.map_or("n/a".into(), |r| thousands(r.per_second())));
        row.push(
            ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(" / "),
        );
        row.push(">= pgmq".into());
        row.push(if ratios.is_empty() {
            String::new()
        } else {
            verdict(ratios.iter().all(|&r| r >= 1.0))
        });
        table.row(row);
    }
    table.print();
}

fn print_latency(latency: &[Latency]) {
    let mut table = Table::new(&[
        "commit-to-delivery",
        "stream p50",
        "stream p99",
        "long poll p50",
        "long poll p99",
        "target (p99)",
        "",
    ]);
    for l in latency {
        let worst = l
            .stream
            .latencies
            .quantile(0.99)
            .max(l.long_poll.latencies.quantile(0.99));
        table.row([
            l.setup.label(),
            millis(l.stream.latencies.quantile(0.5)),
            millis(l.stream.latencies.quantile(0.99)),
            millis(l.long_poll.latencies.quantile(0.5)),
            millis(l.long_poll.latencies.quantile(0.99)),
            format!("< {}", millis(LATENCY_TARGET)),
            verdict(worst < LATENCY_TARGET),
        ]);
    }
    table.print();
}

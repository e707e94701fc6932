//! `vodtask-bench`: benchmarks of the real `vodtask` binary. Each subcommand
//! is a module on `harness`: it starts its own server on a fresh data dir,
//! drives it over gRPC and prints figures beside the targets; nothing is
//! asserted.

mod callbacks;
mod cluster;
mod compare;
mod consumers;
mod events;
mod harness;
mod media;
mod tasks;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "vodtask-bench", about = "Benchmarks of the vodtask server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// CreateTask throughput, then DescribeTask, ListTasks and GetTaskOverview
    /// latency on a store of `--total` tasks.
    Tasks(tasks::Args),
    /// Event queue consume rate (SubscribeEvents, PullEvents) and
    /// commit-to-delivery latency, beside JetStream on the same machine.
    Events(events::Args),
    /// HTTP callbacks per second and the server's memory, alone and beside
    /// an app whose endpoint never answers.
    Callbacks(callbacks::Args),
    /// Events per second through the Rust client's consume, and through the
    /// Python and Node packages' (given commands that run them).
    Consumers(consumers::Args),
    /// A transcode through vodtask against the same ffmpeg command run
    /// directly, and how many tasks at once the worker pool sustains.
    Media(media::Args),
    /// vodtask on PostgreSQL through one and two API nodes (CreateTask,
    /// event consume rates, commit-to-delivery across nodes), beside SQLite
    /// and pgmq on the same PostgreSQL.
    Cluster(cluster::Args),
    /// Two server binaries side by side: drains of one pre-loaded queue,
    /// alternating, with the CPU time each spent per event.
    Compare(compare::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Tasks(args) => tasks::run(args).await,
        Command::Events(args) => events::run(args).await,
        Command::Callbacks(args) => callbacks::run(args).await,
        Command::Media(args) => media::run(args).await,
        Command::Consumers(args) => consumers::run(args).await,
        Command::Compare(args) => compare::run(args).await,
        Command::Cluster(args) => cluster::run(args).await,
    }
}

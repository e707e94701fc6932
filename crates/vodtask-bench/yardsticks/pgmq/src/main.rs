//! pgmq as `vodtask-bench cluster` measures it beside vodtask: a queue
//! filled with `--messages` messages of `--payload-bytes`, then drained by
//! `--consumers` consumers, each on its own connection, each reading
//! batches of `--batch` with a visibility timeout and deleting what it read
//! (pgmq's at-least-once consume: read, then delete). Prints one JSON line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use pgmq::PGMQueueExt;

const QUEUE: &str = "bench";
/// Long enough that no message comes back during a drain.
const VISIBILITY_SECONDS: i32 = 300;
const SEND_BATCH: usize = 1000;
/// A drain slower than this is stuck.
const DEADLINE: Duration = Duration::from_secs(600);

#[derive(Parser)]
struct Args {
    /// A database of its own: pgmq's SQL is installed into it.
    #[arg(long)]
    url: String,
    #[arg(long)]
    messages: u64,
    #[arg(long)]
    payload_bytes: usize,
    #[arg(long)]
    consumers: usize,
    #[arg(long)]
    batch: i32,
}

async fn queue(url: &str, connections: u32) -> anyhow::Result<PGMQueueExt> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(connections)
        .connect(url)
        .await
        .with_context(|| format!("connect to {url}"))?;
    Ok(PGMQueueExt::new_with_pool(pool).await)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.consumers == 0 || args.batch < 1 || args.messages == 0 {
        bail!("--consumers, --batch and --messages must be at least 1");
    }
    let admin = queue(&args.url, 2).await?;
    admin
        .install_sql_from_embedded()
        .await
        .context("install pgmq's SQL")?;
    admin.create(QUEUE).await.context("create the queue")?;

    // A JSON string of the payload's length: the message body is jsonb.
    let body = serde_json::Value::String("x".repeat(args.payload_bytes.saturating_sub(2)));
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < args.messages {
        let n = (args.messages - sent).min(SEND_BATCH as u64) as usize;
        admin
            .send_batch(QUEUE, &vec![body.clone(); n])
            .await
            .context("send")?;
        sent += n as u64;
    }
    let send_seconds = started.elapsed().as_secs_f64();

    let deleted = Arc::new(AtomicU64::new(0));
    let mut consumers = tokio::task::JoinSet::new();
    let mut queues = Vec::new();
    for _ in 0..args.consumers {
        queues.push(queue(&args.url, 1).await?);
    }
    let started = Instant::now();
    for queue in queues {
        let (deleted, total, batch) = (Arc::clone(&deleted), args.messages, args.batch);
        consumers.spawn(async move {
            while deleted.load(Ordering::Relaxed) < total {
                let read = queue
                    .read_batch::<serde_json::Value>(QUEUE, VISIBILITY_SECONDS, batch)
                    .await
                    .context("read")?;
                if read.is_empty() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                let ids: Vec<i64> = read.iter().map(|m| m.msg_id).collect();
                queue.delete_batch(QUEUE, &ids).await.context("delete")?;
                deleted.fetch_add(ids.len() as u64, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    tokio::time::timeout(DEADLINE, async {
        while let Some(done) = consumers.join_next().await {
            done.context("a consumer failed")??;
        }
        anyhow::Ok(())
    })
    .await
    .context("the drain took too long")??;
    let consume_seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "messages": args.messages,
            "send_per_second": args.messages as f64 / send_seconds,
            "consume_per_second": args.messages as f64 / consume_seconds,
        })
    );
    Ok(())
}

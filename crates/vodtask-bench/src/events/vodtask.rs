//! The vodtask side of `events`: production through UploadMedia, consume
//! runs on a pre-loaded queue, and single events timed from UploadMedia's
//! return to a waiting consumer.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use tokio::sync::mpsc;
use vodtask_proto::v1 as pb;

use crate::harness::measure::{Arrival, Drained, LatencyRun, Mode, Rate, sample_latency};
use crate::harness::queue::{self, Sizes};
use crate::harness::server::{EventClient, Server, ServerArgs};

/// The latency consumers' long poll: the longest the server allows.
const LONG_POLL_SECONDS: i32 = 20;
const LATENCY_MAX_IN_FLIGHT: u32 = 16;

/// How a consume run fills its queue and drains it.
pub struct ConsumePlan<'a> {
    pub events: u64,
    pub consumers: usize,
    pub upload_clients: usize,
    /// The pre-loading server's `--ffprobe`.
    pub ffprobe: &'a str,
}

pub struct ConsumeRun {
    pub binary: PathBuf,
    pub preload: Rate,
    pub consume: Drained,
    pub sizes: Sizes,
    /// Confirm results other than CONFIRMED.
    pub not_confirmed: u64,
    /// ConfirmEvents calls of the drain.
    pub confirm_calls: u64,
}

/// A fresh server, `plan.events` uploads, then the timed drain.
pub async fn consume_run(
    server_args: &ServerArgs,
    plan: &ConsumePlan<'_>,
    mode: Mode,
) -> anyhow::Result<ConsumeRun> {
    let flags = ["--workers", "0", "--ffprobe", plan.ffprobe];
    Server::with(server_args, &flags, async |server| {
        let preload = queue::fill(server, plan.events, plan.upload_clients).await?;
        let (consume, tally) = queue::drain(&[server], plan.consumers, plan.events, mode).await?;
        Ok(ConsumeRun {
            binary: server.binary.clone(),
            preload,
            consume,
            sizes: tally.sizes(),
            not_confirmed: tally.not_confirmed(),
            confirm_calls: tally.confirm_calls(),
        })
    })
    .await
}

/// The production rate as the server really runs: `count` uploads, each
/// written, fsynced and probed by the real ffprobe before its event
/// commits, from `clients` connections at once.
pub async fn produce_run(
    server_args: &ServerArgs,
    count: u64,
    clients: usize,
) -> anyhow::Result<Rate> {
    Server::with(server_args, &["--workers", "0"], async |server| {
        queue::preload(&server.default_app(), count, clients).await
    })
    .await
}

#[derive(Debug, Clone, Copy)]
pub enum Waiter {
    LongPoll,
    Stream,
}

/// Commit-to-delivery with a PullEvents long poll waiting, or with an open
/// SubscribeEvents stream. A fresh server each: a long poll abandoned at the
/// end of one run must not lease the next run's first event.
pub async fn latency_run(
    server_args: &ServerArgs,
    samples: usize,
    waiter: Waiter,
) -> anyhow::Result<LatencyRun> {
    Server::with(server_args, &["--workers", "0"], async |server| {
        latency_between(server, server, samples, waiter).await
    })
    .await
}

/// Events committed through `producer` (uploads), each timed to its
/// arrival at a consumer of `consumer` that waits for it (another node on
/// the same database, or the same server).
pub async fn latency_between(
    producer: &Server,
    consumer: &Server,
    samples: usize,
    waiter: Waiter,
) -> anyhow::Result<LatencyRun> {
    let media = producer.media_client().await?;
    let events = consumer.event_client().await?;
    let wait = |arrived| async move {
        match waiter {
            Waiter::LongPoll => wait_by_long_poll(events, arrived).await,
            Waiter::Stream => wait_on_stream(events, arrived).await,
        }
    };
    sample_latency(samples, wait, |n| {
        let mut media = media.clone();
        async move { queue::upload(&mut media, n).await }
    })
    .await
    .with_context(|| format!("vodtask, {waiter:?} consumer"))
}

async fn wait_by_long_poll(
    mut client: EventClient,
    arrived: mpsc::Sender<Arrival>,
) -> anyhow::Result<()> {
    loop {
        let events = queue::pull(&mut client, LATENCY_MAX_IN_FLIGHT as i32, LONG_POLL_SECONDS)
            .await
            .context("long poll")?;
        let at = Instant::now();
        confirm_and_report(&mut client, events, at, &arrived).await?;
    }
}

async fn wait_on_stream(client: EventClient, arrived: mpsc::Sender<Arrival>) -> anyhow::Result<()> {
    queue::subscribe(client.clone(), LATENCY_MAX_IN_FLIGHT, |delivery, at| {
        let (mut client, arrived) = (client.clone(), arrived.clone());
        async move { confirm_and_report(&mut client, vec![delivery], at, &arrived).await }
    })
    .await
}

/// Confirms before reporting, so that the next sample starts on an empty
/// queue.
async fn confirm_and_report(
    client: &mut EventClient,
    deliveries: Vec<pb::EventDelivery>,
    at: Instant,
    arrived: &mpsc::Sender<Arrival>,
) -> anyhow::Result<()> {
    let handles = deliveries.iter().map(|d| d.msg_handle.clone()).collect();
    queue::confirm_all(client, handles).await?;
    for delivery in deliveries {
        let body = delivery.event.map(|e| e.content_json).unwrap_or_default();
        arrived
            .send(Arrival { at, body })
            .await
            .context("the sampler stopped")?;
    }
    Ok(())
}

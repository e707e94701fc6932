//! The JetStream yardstick for `events`: the same number of messages of the
//! same size as vodtask's events, in a FILE stream of its own that is
//! deleted at the end, consumed by durable pull consumers with explicit ack.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::stream::{self, StorageType};
use async_nats::jetstream::{self as js, Context};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::harness::measure::{
    self, Arrival, Countdown, Drained, LatencyRun, Mode, Rate, sample_latency,
};
use crate::harness::{cpu, report};

/// Publishes awaiting their ack at once while loading the stream.
pub const PUBLISH_WINDOW: usize = 256;
/// A drain's pull request waits at most this long to fill its batch.
const DRAIN_PULL_EXPIRES: Duration = Duration::from_secs(1);
/// The latency consumer's pending pull request, like vodtask's long poll.
const LONG_POLL: Duration = Duration::from_secs(20);
const LATENCY_BATCH: u32 = 16;
/// Give up on a load or a drain slower than this many messages per second.
const SLOWEST_RATE: u64 = 100;
/// How long the acks of a finished drain may take to reach the server.
const ACK_DEADLINE: Duration = Duration::from_secs(60);
/// How often a finished drain asks whether every ack has reached the server.
const ACK_POLL: Duration = Duration::from_millis(2);

/// Refuses anything but a loopback address: the benchmark sends load.
pub fn ensure_loopback(url: &str) -> anyhow::Result<()> {
    if url.contains(',') {
        bail!("--nats-url {url}: give one server");
    }
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("--nats-url {url}: only a loopback address is allowed");
    }
    Ok(())
}

/// async-nats reports some failures as boxed errors, which anyhow takes
/// only through this.
fn nats(e: async_nats::Error) -> anyhow::Error {
    anyhow::Error::from_boxed(e)
}

/// What the yardstick measured.
pub struct Measured {
    pub publish: Rate,
    /// One per mode and round: round after round, modes in the order asked;
    /// the CPU time is nats-server's and this process's.
    pub consume: Vec<Drained>,
    pub pull_latency: LatencyRun,
    pub stream_latency: LatencyRun,
}

/// The shape of a measurement, taken from the vodtask side.
pub struct Plan<'a> {
    pub messages: u64,
    pub payload_len: usize,
    pub consumers: usize,
    pub samples: usize,
    pub modes: &'a [Mode],
    /// Every mode is drained this many times, round after round.
    pub rounds: usize,
}

pub struct Yardstick {
    url: String,
    context: Context,
    /// Unique per run, so that runs never share a stream.
    run_id: String,
}

impl Yardstick {
    pub async fn connect(url: &str) -> anyhow::Result<Yardstick> {
        let context = connect(url).await?;
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Ok(Yardstick {
            url: url.to_string(),
            context,
            run_id: format!("{}_{millis}", std::process::id()),
        })
    }

    pub fn stream_name(&self) -> String {
        format!("VODTASK_BENCH_{}", self.run_id)
    }

    fn subject(&self) -> String {
        format!("bench.{}", self.run_id)
    }

    /// Creates the stream, measures, and deletes the stream whatever
    /// happened. `before_drain(round, index of the mode)` runs before each
    /// drain, so that the caller's own run of the same mode comes right
    /// before it: the two sides of a comparison meet the same moment's load.
    pub async fn measure(
        &self,
        plan: &Plan<'_>,
        before_drain: impl AsyncFnMut(usize, usize) -> anyhow::Result<()>,
    ) -> anyhow::Result<Measured> {
        let stream = self
            .context
            .create_stream(stream::Config {
                name: self.stream_name(),
                subjects: vec![self.subject()],
                storage: StorageType::File,
                ..Default::default()
            })
            .await
            .context("create the JetStream stream")?;
        let outcome = self.measure_on(&stream, plan, before_drain).await;
        let deleted = self
            .context
            .delete_stream(self.stream_name())
            .await
            .context("delete the JetStream stream");
        let measured = outcome?;
        deleted?;
        Ok(measured)
    }

    async fn measure_on(
        &self,
        stream: &stream::Stream,
        plan: &Plan<'_>,
        mut before_drain: impl AsyncFnMut(usize, usize) -> anyhow::Result<()>,
    ) -> anyhow::Result<Measured> {
        eprintln!("JetStream: publish");
        let publish = self.publish_all(plan.messages, plan.payload_len).await?;
        let mut consume = Vec::with_capacity(plan.rounds * plan.modes.len());
        for round in 0..plan.rounds {
            for (index, &mode) in plan.modes.iter().enumerate() {
                before_drain(round, index).await?;
                eprintln!("JetStream: {}, round {}", mode.label(), round + 1);
                let drain = round * plan.modes.len() + index;
                let drained = self.drain(stream, plan, mode, drain).await?;
                let rate = drained.rate.per_second();
                eprintln!("  consume {}/s", report::thousands(rate));
                consume.push(drained);
            }
        }
        eprintln!("JetStream: latency");
        // Consumers that only see what is published after they exist, so
        // that the messages of the throughput runs do not reach them.
        let pull_latency = self.latency(stream, plan, Waiter::LongPoll).await?;
        let stream_latency = self.latency(stream, plan, Waiter::Stream).await?;
        Ok(Measured {
            publish,
            consume,
            pull_latency,
            stream_latency,
        })
    }

    /// Publishes `count` messages with up to `PUBLISH_WINDOW` acks awaited
    /// at once; done when the last ack is in.
    async fn publish_all(&self, count: u64, payload_len: usize) -> anyhow::Result<Rate> {
        let payload = payload(0, payload_len).into_bytes();
        let started = Instant::now();
        let deadline = measure::deadline(count, SLOWEST_RATE);
        tokio::time::timeout(deadline, async {
            let mut acks: VecDeque<PublishAckFuture> = VecDeque::with_capacity(PUBLISH_WINDOW);
            for _ in 0..count {
                if acks.len() >= PUBLISH_WINDOW
                    && let Some(ack) = acks.pop_front()
                {
                    ack.await.context("publish ack")?;
                }
                let ack = self
                    .context
                    .publish(self.subject(), payload.clone().into())
                    .await
                    .context("publish")?;
                acks.push_back(ack);
            }
            for ack in acks {
                ack.await.context("publish ack")?;
            }
            anyhow::Ok(())
        })
        .await
        .with_context(|| format!("publishing {count} messages took more than {deadline:?}"))??;
        Ok(Rate::since(started, count))
    }

    /// A fresh durable consumer reads the whole stream with `--consumers`
    /// fetchers, each on its own connection; done when the server holds
    /// every ack.
    async fn drain(
        &self,
        stream: &stream::Stream,
        plan: &Plan<'_>,
        mode: Mode,
        index: usize,
    ) -> anyhow::Result<Drained> {
        let name = format!("drain_{index}");
        // As many unacknowledged as vodtask lets its consumers hold.
        let max_ack_pending = plan.consumers as i64 * i64::from(mode.window());
        let mut consumer: PullConsumer = stream
            .create_consumer(PullConfig {
                durable_name: Some(name.clone()),
                ack_policy: AckPolicy::Explicit,
                deliver_policy: DeliverPolicy::All,
                max_ack_pending,
                ..Default::default()
            })
            .await
            .context("create a JetStream consumer")?;
        let mut fetchers = Vec::with_capacity(plan.consumers);
        for _ in 0..plan.consumers {
            let context = connect(&self.url).await?;
            let fetcher: PullConsumer = context
                .get_consumer_from_stream(&name, self.stream_name())
                .await
                .context("look up the JetStream consumer")?;
            fetchers.push(fetcher);
        }

        let acked = Arc::new(Countdown::new(plan.messages));
        let meter = cpu::Meter::start(cpu::find("nats-server"));
        let started = Instant::now();
        // Dropping the set stops the fetchers.
        let mut running = JoinSet::new();
        for fetcher in fetchers {
            running.spawn(fetch(fetcher, mode, Arc::clone(&acked)));
        }
        let deadline = measure::deadline(plan.messages, SLOWEST_RATE);
        acked
            .wait(&mut running, "a JetStream fetcher", deadline)
            .await
            .with_context(|| format!("reading {} messages", plan.messages))?;
        // Acks are fire-and-forget: count the drain done once the server
        // has them all, as vodtask's is once every confirm has committed.
        tokio::time::timeout(ACK_DEADLINE, async {
            loop {
                let info = consumer.info().await.context("JetStream consumer info")?;
                if info.num_ack_pending == 0 && info.num_pending == 0 {
                    return anyhow::Ok(());
                }
                tokio::time::sleep(ACK_POLL).await;
            }
        })
        .await
        .context("the acks did not all reach the server")??;
        let rate = Rate::since(started, plan.messages);
        let cpu = meter.stop();
        running.abort_all();
        // A finished drain's consumer would stay on the stream for the
        // drains after it.
        stream
            .delete_consumer(&name)
            .await
            .context("delete the JetStream consumer")?;
        Ok(Drained { rate, cpu })
    }

    /// Publish-ack to delivery, one message at a time, to a consumer that
    /// waits with a pending pull request or a continuous pull.
    async fn latency(
        &self,
        stream: &stream::Stream,
        plan: &Plan<'_>,
        waiter: Waiter,
    ) -> anyhow::Result<LatencyRun> {
        let name = format!("latency_{waiter:?}").to_lowercase();
        stream
            .create_consumer(PullConfig {
                durable_name: Some(name.clone()),
                ack_policy: AckPolicy::Explicit,
                deliver_policy: DeliverPolicy::New,
                ..Default::default()
            })
            .await
            .context("create a JetStream consumer")?;
        let consumer: PullConsumer = connect(&self.url)
            .await?
            .get_consumer_from_stream(&name, self.stream_name())
            .await
            .context("look up the JetStream consumer")?;
        let waiting = |arrived| wait(consumer, waiter, arrived);
        sample_latency(plan.samples, waiting, |n| async move {
            let body = payload(n, plan.payload_len);
            self.context
                .publish(self.subject(), body.into_bytes().into())
                .await
                .context("publish")?
                .await
                .context("publish ack")?;
            Ok(sample_key(n))
        })
        .await
        .with_context(|| format!("JetStream, {waiter:?} consumer"))
    }
}

async fn connect(url: &str) -> anyhow::Result<Context> {
    let client = async_nats::connect(url)
        .await
        .with_context(|| format!("connect to NATS at {url}"))?;
    Ok(js::new(client))
}

fn sample_key(n: u64) -> String {
    format!("sample {n:010} ")
}

/// A text payload of exactly `len` bytes (if `len` allows) that starts with
/// the sample's key.
fn payload(n: u64, len: usize) -> String {
    let mut text = sample_key(n);
    while text.len() < len {
        text.push('.');
    }
    text
}

/// One fetcher of a drain: acks every message as it arrives.
async fn fetch(consumer: PullConsumer, mode: Mode, acked: Arc<Countdown>) -> anyhow::Result<()> {
    take(consumer, mode, DRAIN_PULL_EXPIRES, |_, _| {
        acked.add(1);
        std::future::ready(Ok(()))
    })
    .await
}

#[derive(Debug, Clone, Copy)]
enum Waiter {
    /// A pull request for one message that waits up to `LONG_POLL`.
    LongPoll,
    /// A continuous pull, as `messages()` keeps one.
    Stream,
}

/// The latency consumer: hands each arrival to the sampler once acked.
async fn wait(
    consumer: PullConsumer,
    waiter: Waiter,
    arrived: mpsc::Sender<Arrival>,
) -> anyhow::Result<()> {
    let mode = match waiter {
        Waiter::LongPoll => Mode::Pull { batch: 1 },
        Waiter::Stream => Mode::Stream {
            max_in_flight: LATENCY_BATCH,
        },
    };
    take(consumer, mode, LONG_POLL, |message, at| {
        let arrived = arrived.clone();
        async move {
            let body = String::from_utf8_lossy(&message.payload).into_owned();
            arrived
                .send(Arrival { at, body })
                .await
                .context("the sampler stopped")
        }
    })
    .await
}

/// Takes messages as `mode` says (pull requests that wait up to `expires`
/// to fill their batch, or a continuous pull), acks each and hands it to
/// `then` with the moment it arrived.
async fn take<F, Fut>(
    consumer: PullConsumer,
    mode: Mode,
    expires: Duration,
    mut then: F,
) -> anyhow::Result<()>
where
    F: FnMut(js::Message, Instant) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    match mode {
        Mode::Pull { batch } => loop {
            let mut messages = consumer
                .batch()
                .max_messages(batch as usize)
                .expires(expires)
                .messages()
                .await
                .context("JetStream pull request")?;
            while let Some(message) = messages.next().await {
                let at = Instant::now();
                let message = message.map_err(nats)?;
                message.ack().await.map_err(nats)?;
                then(message, at).await?;
            }
        },
        Mode::Stream { max_in_flight } => {
            let mut messages = consumer
                .stream()
                .max_messages_per_batch(max_in_flight as usize)
                .messages()
                .await
                .context("JetStream continuous pull")?;
            while let Some(message) = messages.next().await {
                let at = Instant::now();
                let message = message.context("JetStream message")?;
                message.ack().await.map_err(nats)?;
                then(message, at).await?;
            }
            bail!("the JetStream message stream ended")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_pass() {
        for ok in [
            "nats://127.0.0.1:4222",
            "127.0.0.1:4222",
            "nats://localhost:4222",
            "nats://user:pw@127.0.0.2:4222",
            "nats://[::1]:4222",
        ] {
            assert!(ensure_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "nats://10.0.0.1:4222",
            "nats://demo.nats.io:4222",
            "nats://127.0.0.1:4222,nats://10.0.0.1:4222",
        ] {
            assert!(ensure_loopback(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn payloads_have_the_asked_size_and_their_key() {
        let body = payload(42, 1000);
        assert_eq!(body.len(), 1000);
        assert!(body.contains(&sample_key(42)));
    }
}

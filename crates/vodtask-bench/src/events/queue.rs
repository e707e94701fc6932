//! The vodtask side of `events`: pre-loading a queue through UploadMedia,
//! draining it with SubscribeEvents or PullEvents plus ConfirmEvents, and
//! timing single events from UploadMedia's return to a waiting consumer.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;
use vodtask_proto::v1 as pb;
use vodtask_proto::v1::subscribe_events_response::Item;
use vodtask_proto::v1::upload_media_request::Part;

use super::{Args, Arrival, Drained, LatencyRun, Mode, Rate, sample_latency};
use crate::cpu;
use crate::server::{AppHandle, EventClient, MediaClient, Server, ServerArgs};

/// A pull consumer holds at most this many batches unconfirmed: it pulls
/// the next batch while earlier ones are being confirmed.
pub const PULL_WINDOW_BATCHES: u32 = 4;
/// ConfirmEvents calls in flight per consumer; handles that arrive while
/// they run are batched into the next call.
const CONFIRMS_IN_FLIGHT: usize = 4;
/// The server's limit of handles per ConfirmEvents.
const MAX_HANDLES_PER_CONFIRM: usize = 1000;
/// A draining pull waits this long for more when nothing is deliverable (all
/// remaining events leased to other consumers), instead of spinning.
const DRAIN_PULL_WAIT_SECONDS: i32 = 1;
/// The latency consumers' long poll: the longest the server allows.
const LONG_POLL_SECONDS: i32 = 20;
const LATENCY_MAX_IN_FLIGHT: u32 = 16;
/// Uploads are tiny (ffprobe rejects them quickly); the event is the point.
const UPLOAD_BYTES: usize = 1024;
/// Near the limits (255 and 256 bytes), so that an event is about 1 KiB.
const FILE_NAME_LEN: usize = 250;
const SOURCE_CONTEXT_LEN: usize = 256;
/// Give up on a pre-load or a drain slower than this many events per second.
const SLOWEST_RATE: u64 = 20;
const SLACK: Duration = Duration::from_secs(60);

/// content_json sizes of the deliveries seen.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sizes {
    pub count: u64,
    pub total: u64,
    pub min: u64,
    pub max: u64,
}

impl Sizes {
    pub fn merge(&mut self, other: &Sizes) {
        if other.count == 0 {
            return;
        }
        self.min = if self.count == 0 {
            other.min
        } else {
            self.min.min(other.min)
        };
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.total += other.total;
    }

    pub fn average(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.total as f64 / self.count as f64
        }
    }
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

/// A fresh server, `--events` uploads, then the timed drain. The server
/// probes uploads with `--preload-ffprobe`: the event does not depend on
/// what the probe says.
pub async fn consume_run(
    server_args: &ServerArgs,
    args: &Args,
    mode: Mode,
) -> anyhow::Result<ConsumeRun> {
    let flags = ["--workers", "0", "--ffprobe", &args.preload_ffprobe];
    let server = Server::start(server_args, &flags).await?;
    let binary = server.binary.clone();
    let outcome = preload_and_drain(&server, args, mode).await;
    let stopped = server.stop().await;
    let (preload, (consume, tally)) = outcome?;
    stopped?;
    Ok(ConsumeRun {
        binary,
        preload,
        consume,
        sizes: tally.sizes(),
        not_confirmed: tally.not_confirmed(),
        confirm_calls: tally.confirm_calls(),
    })
}

/// The production rate as the server really runs: `count` uploads, each
/// written, fsynced and probed by the real ffprobe before its event
/// commits, from `clients` connections at once.
pub async fn produce_run(
    server_args: &ServerArgs,
    count: u64,
    clients: usize,
) -> anyhow::Result<Rate> {
    let server = Server::start(server_args, &["--workers", "0"]).await?;
    let outcome = preload(&server, count, clients).await;
    let stopped = server.stop().await;
    let rate = outcome?;
    stopped?;
    Ok(rate)
}

async fn preload_and_drain(
    server: &Server,
    args: &Args,
    mode: Mode,
) -> anyhow::Result<(Rate, (Drained, Arc<Tally>))> {
    let produce = preload(server, args.events, args.upload_clients).await?;
    let ready = server
        .event_client()
        .await?
        .describe_events_state(pb::DescribeEventsStateRequest {})
        .await
        .context("DescribeEventsState")?
        .into_inner()
        .ready;
    if u64::try_from(ready).unwrap_or(0) != args.events {
        bail!(
            "{0} uploads left {ready} events ready, not {0}",
            args.events
        );
    }
    eprintln!("  pre-loaded; draining");
    let drained = drain(server, args.consumers, args.events, mode).await?;
    Ok((produce, drained))
}

/// `count` uploads from `clients` connections at once; each upload commits
/// one NewFileUpload event before it returns.
async fn preload(server: &Server, count: u64, clients: usize) -> anyhow::Result<Rate> {
    preload_as(&server.default_app(), count, clients).await
}

/// `preload` as the app of `app`.
pub async fn preload_as(app: &AppHandle, count: u64, clients: usize) -> anyhow::Result<Rate> {
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(app.media_client().await?);
    }
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut uploaders = JoinSet::new();
    for mut client in connections {
        let next = Arc::clone(&next);
        uploaders.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return anyhow::Ok(());
                }
                upload(&mut client, n).await?;
            }
        });
    }
    let deadline = deadline_for(count);
    tokio::time::timeout(deadline, async {
        while let Some(joined) = uploaders.join_next().await {
            joined.context("an uploader failed")??;
        }
        anyhow::Ok(())
    })
    .await
    .with_context(|| format!("pre-loading {count} events took more than {deadline:?}"))??;
    Ok(Rate {
        count,
        elapsed: started.elapsed(),
    })
}

/// The longest a pre-load or a drain of `count` events may take.
fn deadline_for(count: u64) -> Duration {
    SLACK + Duration::from_secs(count / SLOWEST_RATE)
}

/// Uploads file number `n`; returns its file id, which its event names.
async fn upload(client: &mut MediaClient, n: u64) -> anyhow::Result<String> {
    let parts = vec![
        pb::UploadMediaRequest {
            part: Some(Part::Header(pb::UploadMediaHeader {
                file_name: padded(format!("bench-{n:08}-"), FILE_NAME_LEN - 4, 'f') + ".mp4",
                source_context: padded(format!("bench source {n:08} "), SOURCE_CONTEXT_LEN, 's'),
                procedure: None,
            })),
        },
        pb::UploadMediaRequest {
            part: Some(Part::Chunk(vec![0; UPLOAD_BYTES])),
        },
    ];
    let response = client
        .upload_media(tokio_stream::iter(parts))
        .await
        .with_context(|| format!("UploadMedia #{n}"))?;
    Ok(response.into_inner().file_id)
}

fn padded(mut text: String, len: usize, fill: char) -> String {
    while text.len() < len {
        text.push(fill);
    }
    text
}

/// What the consumers of one drain share.
#[derive(Default)]
pub struct Tally {
    target: u64,
    confirmed: AtomicU64,
    not_confirmed: AtomicU64,
    confirm_calls: AtomicU64,
    delivered: AtomicU64,
    bytes: AtomicU64,
    min_bytes: AtomicU64,
    max_bytes: AtomicU64,
    /// Signalled once `confirmed` reaches `target`.
    done: Notify,
}

impl Tally {
    /// ConfirmEvents calls so far.
    pub fn confirm_calls(&self) -> u64 {
        self.confirm_calls.load(Ordering::Relaxed)
    }

    /// Confirm results other than CONFIRMED so far.
    pub fn not_confirmed(&self) -> u64 {
        self.not_confirmed.load(Ordering::Relaxed)
    }

    fn new(target: u64) -> Self {
        Tally {
            target,
            min_bytes: AtomicU64::new(u64::MAX),
            ..Default::default()
        }
    }

    fn delivered(&self, delivery: &pb::EventDelivery) {
        let len = delivery.event.as_ref().map_or(0, |e| e.content_json.len()) as u64;
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(len, Ordering::Relaxed);
        self.min_bytes.fetch_min(len, Ordering::Relaxed);
        self.max_bytes.fetch_max(len, Ordering::Relaxed);
    }

    fn settled(&self, confirmed: u64, other: u64) {
        self.confirm_calls.fetch_add(1, Ordering::Relaxed);
        self.not_confirmed.fetch_add(other, Ordering::Relaxed);
        let before = self.confirmed.fetch_add(confirmed, Ordering::Relaxed);
        if before < self.target && before + confirmed >= self.target {
            // Stores a permit if the waiter is not waiting yet.
            self.done.notify_one();
        }
    }

    fn sizes(&self) -> Sizes {
        let count = self.delivered.load(Ordering::Relaxed);
        Sizes {
            count,
            total: self.bytes.load(Ordering::Relaxed),
            min: if count == 0 {
                0
            } else {
                self.min_bytes.load(Ordering::Relaxed)
            },
            max: self.max_bytes.load(Ordering::Relaxed),
        }
    }
}

/// `consumers` consumers drain the queue, pre-loaded with `events` events;
/// timed from the first request to the last CONFIRMED result.
pub async fn drain(
    server: &Server,
    consumers: usize,
    events: u64,
    mode: Mode,
) -> anyhow::Result<(Drained, Arc<Tally>)> {
    let mut clients = Vec::with_capacity(consumers);
    for _ in 0..consumers {
        clients.push(server.event_client().await?);
    }
    let tally = Arc::new(Tally::new(events));
    let meter = cpu::Meter::start(server.pid());
    let started = Instant::now();
    // Dropping the set aborts the consumers, which closes their streams.
    let mut running = JoinSet::new();
    for client in clients {
        running.spawn(consume(client, mode, Arc::clone(&tally)));
    }
    let deadline = deadline_for(events);
    tokio::select! {
        _ = tally.done.notified() => {}
        Some(joined) = running.join_next() => {
            joined.context("a consumer failed")??;
            bail!("a consumer stopped before the queue was drained");
        }
        _ = tokio::time::sleep(deadline) => bail!(
            "draining {} events took more than {deadline:?} ({} confirmed)",
            events,
            tally.confirmed.load(Ordering::Relaxed)
        ),
    }
    let elapsed = started.elapsed();
    let cpu = meter.stop();
    running.abort_all();
    Ok((
        Drained {
            rate: Rate {
                count: events,
                elapsed,
            },
            cpu,
        },
        tally,
    ))
}

/// One consumer: a reader that takes deliveries and hands their handles to
/// a confirmer that batches them.
async fn consume(client: EventClient, mode: Mode, tally: Arc<Tally>) -> anyhow::Result<()> {
    let (handles, to_confirm) = mpsc::unbounded_channel();
    match mode {
        Mode::Stream { max_in_flight } => {
            // The server holds the stream to max_in_flight unconfirmed.
            let reader = read_stream(client.clone(), max_in_flight, Arc::clone(&tally), handles);
            let confirmer = confirm_loop(client, to_confirm, tally, None);
            tokio::try_join!(reader, confirmer)?;
        }
        Mode::Pull { batch } => {
            let window = Arc::new(Semaphore::new(mode.window() as usize));
            let reader = read_pulls(
                client.clone(),
                batch,
                Arc::clone(&window),
                Arc::clone(&tally),
                handles,
            );
            let confirmer = confirm_loop(client, to_confirm, tally, Some(window));
            tokio::try_join!(reader, confirmer)?;
        }
    }
    Ok(())
}

async fn read_stream(
    mut client: EventClient,
    max_in_flight: u32,
    tally: Arc<Tally>,
    handles: mpsc::UnboundedSender<String>,
) -> anyhow::Result<()> {
    let mut stream = client
        .subscribe_events(pb::SubscribeEventsRequest {
            max_in_flight: max_in_flight as i32,
        })
        .await
        .context("SubscribeEvents")?
        .into_inner();
    while let Some(message) = stream.message().await.context("the event stream")? {
        if let Some(Item::Delivery(delivery)) = message.item {
            tally.delivered(&delivery);
            handles
                .send(delivery.msg_handle)
                .context("the confirmer stopped")?;
        }
    }
    bail!("the server ended the event stream")
}

async fn read_pulls(
    mut client: EventClient,
    batch: u32,
    window: Arc<Semaphore>,
    tally: Arc<Tally>,
    handles: mpsc::UnboundedSender<String>,
) -> anyhow::Result<()> {
    loop {
        // Room for a whole batch among the unconfirmed; given back as the
        // confirmer settles them, and at once for what the pull did not fill.
        window.acquire_many(batch).await?.forget();
        let events = client
            .pull_events(pb::PullEventsRequest {
                max_events: batch as i32,
                wait_seconds: Some(DRAIN_PULL_WAIT_SECONDS),
            })
            .await
            .context("PullEvents")?
            .into_inner()
            .events;
        window.add_permits((batch as usize).saturating_sub(events.len()));
        for delivery in events {
            tally.delivered(&delivery);
            handles
                .send(delivery.msg_handle)
                .context("the confirmer stopped")?;
        }
    }
}

/// Confirms handles as they come: whatever accumulated while the previous
/// calls ran goes into the next call, with up to `CONFIRMS_IN_FLIGHT` calls
/// at once.
async fn confirm_loop(
    client: EventClient,
    mut handles: mpsc::UnboundedReceiver<String>,
    tally: Arc<Tally>,
    window: Option<Arc<Semaphore>>,
) -> anyhow::Result<()> {
    let mut calls = JoinSet::new();
    loop {
        while let Some(done) = calls.try_join_next() {
            done.context("a ConfirmEvents call failed")??;
        }
        if calls.len() >= CONFIRMS_IN_FLIGHT
            && let Some(done) = calls.join_next().await
        {
            done.context("a ConfirmEvents call failed")??;
        }
        let Some(first) = handles.recv().await else {
            break;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_HANDLES_PER_CONFIRM {
            match handles.try_recv() {
                Ok(handle) => batch.push(handle),
                Err(_) => break,
            }
        }
        calls.spawn(confirm(
            client.clone(),
            batch,
            Arc::clone(&tally),
            window.clone(),
        ));
    }
    while let Some(done) = calls.join_next().await {
        done.context("a ConfirmEvents call failed")??;
    }
    Ok(())
}

async fn confirm(
    mut client: EventClient,
    batch: Vec<String>,
    tally: Arc<Tally>,
    window: Option<Arc<Semaphore>>,
) -> anyhow::Result<()> {
    let sent = batch.len();
    let results = client
        .confirm_events(pb::ConfirmEventsRequest { msg_handles: batch })
        .await
        .context("ConfirmEvents")?
        .into_inner()
        .results;
    let confirmed = results
        .iter()
        .filter(|r| r.status == pb::HandleStatus::Confirmed as i32)
        .count();
    tally.settled(confirmed as u64, (sent - confirmed) as u64);
    if let Some(window) = window {
        window.add_permits(sent);
    }
    Ok(())
}

/// Commit-to-delivery with a PullEvents long poll waiting, or with an open
/// SubscribeEvents stream. A fresh server each: a long poll abandoned at the
/// end of one run must not lease the next run's first event.
pub async fn latency_run(
    server_args: &ServerArgs,
    samples: usize,
    waiter: Waiter,
) -> anyhow::Result<LatencyRun> {
    let server = Server::start(server_args, &["--workers", "0"]).await?;
    let outcome = latency(&server, samples, waiter).await;
    let stopped = server.stop().await;
    let run = outcome?;
    stopped?;
    Ok(run)
}

#[derive(Debug, Clone, Copy)]
pub enum Waiter {
    LongPoll,
    Stream,
}

async fn latency(server: &Server, samples: usize, waiter: Waiter) -> anyhow::Result<LatencyRun> {
    let media = server.media_client().await?;
    let events = server.event_client().await?;
    let (arrived, mut arrivals) = mpsc::channel(1);
    // Dropping the set stops the waiter (and closes its stream).
    let mut waiting = JoinSet::new();
    match waiter {
        Waiter::LongPoll => waiting.spawn(wait_by_long_poll(events, arrived)),
        Waiter::Stream => waiting.spawn(wait_on_stream(events, arrived)),
    };
    let run = sample_latency(samples, &mut arrivals, |n| {
        let mut media = media.clone();
        async move { upload(&mut media, n).await }
    })
    .await;
    if run.is_err() {
        // The waiter's own error says more than "the consumer stopped".
        waiting.abort_all();
        if let Some(Ok(Err(e))) = waiting.join_next().await {
            return Err(e).with_context(|| format!("the {waiter:?} consumer"));
        }
    }
    run
}

async fn wait_by_long_poll(
    mut client: EventClient,
    arrived: mpsc::Sender<Arrival>,
) -> anyhow::Result<()> {
    loop {
        let events = client
            .pull_events(pb::PullEventsRequest {
                max_events: LATENCY_MAX_IN_FLIGHT as i32,
                wait_seconds: Some(LONG_POLL_SECONDS),
            })
            .await
            .context("PullEvents (long poll)")?
            .into_inner()
            .events;
        let at = Instant::now();
        confirm_and_report(&mut client, events, at, &arrived).await?;
    }
}

async fn wait_on_stream(
    mut client: EventClient,
    arrived: mpsc::Sender<Arrival>,
) -> anyhow::Result<()> {
    let mut stream = client
        .subscribe_events(pb::SubscribeEventsRequest {
            max_in_flight: LATENCY_MAX_IN_FLIGHT as i32,
        })
        .await
        .context("SubscribeEvents")?
        .into_inner();
    while let Some(message) = stream.message().await.context("the event stream")? {
        let at = Instant::now();
        if let Some(Item::Delivery(delivery)) = message.item {
            confirm_and_report(&mut client, vec![delivery], at, &arrived).await?;
        }
    }
    bail!("the server ended the event stream")
}

/// Confirms before reporting, so that the next sample starts on an empty
/// queue.
async fn confirm_and_report(
    client: &mut EventClient,
    deliveries: Vec<pb::EventDelivery>,
    at: Instant,
    arrived: &mpsc::Sender<Arrival>,
) -> anyhow::Result<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let handles = deliveries.iter().map(|d| d.msg_handle.clone()).collect();
    client
        .confirm_events(pb::ConfirmEventsRequest {
            msg_handles: handles,
        })
        .await
        .context("ConfirmEvents")?;
    for delivery in deliveries {
        let body = delivery.event.map(|e| e.content_json).unwrap_or_default();
        arrived
            .send(Arrival { at, body })
            .await
            .context("the sampler stopped")?;
    }
    Ok(())
}

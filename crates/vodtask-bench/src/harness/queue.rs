//! vodtask's event queue as the benchmarks drive it: filled through
//! UploadMedia (each upload commits one NewFileUpload event before it
//! returns) and drained by consumers on SubscribeEvents or PullEvents, each
//! confirming what it took.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use vodtask_proto::v1 as pb;
use vodtask_proto::v1::subscribe_events_response::Item;

use super::cpu;
use super::measure::{self, Countdown, Drained, Mode, Rate};
use super::server::{self, AppHandle, EventClient, MediaClient, Server};

/// ConfirmEvents calls in flight per consumer; handles that arrive while
/// they run are batched into the next call.
const CONFIRMS_IN_FLIGHT: usize = 4;
/// The server's limit of handles per ConfirmEvents.
const MAX_HANDLES_PER_CONFIRM: usize = 1000;
/// A draining pull waits this long for more when nothing is deliverable (all
/// remaining events leased to other consumers), instead of spinning.
const DRAIN_PULL_WAIT_SECONDS: i32 = 1;
/// Uploads are tiny (ffprobe rejects them quickly); the event is the point.
const UPLOAD_BYTES: usize = 1024;
/// Near the limits (255 and 256 bytes), so that an event is about 1 KiB.
const FILE_NAME_LEN: usize = 250;
const SOURCE_CONTEXT_LEN: usize = 256;
/// Give up on a pre-load or a drain slower than this many events per second.
const SLOWEST_RATE: u64 = 20;

/// `count` uploads as `app` from `clients` connections at once.
pub async fn preload(app: &AppHandle, count: u64, clients: usize) -> anyhow::Result<Rate> {
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
    let deadline = measure::deadline(count, SLOWEST_RATE);
    tokio::time::timeout(deadline, async {
        while let Some(joined) = uploaders.join_next().await {
            joined.context("an uploader failed")??;
        }
        anyhow::Ok(())
    })
    .await
    .with_context(|| format!("pre-loading {count} events took more than {deadline:?}"))??;
    Ok(Rate::since(started, count))
}

/// `preload`s `count` events through `server` and checks that exactly
/// that many are ready before anything drains them.
pub async fn fill(server: &Server, count: u64, clients: usize) -> anyhow::Result<Rate> {
    let rate = preload(&server.default_app(), count, clients).await?;
    let ready = server
        .event_client()
        .await?
        .describe_events_state(pb::DescribeEventsStateRequest {})
        .await
        .context("DescribeEventsState")?
        .into_inner()
        .ready;
    if u64::try_from(ready).unwrap_or(0) != count {
        bail!("{count} uploads left {ready} events ready, not {count}");
    }
    eprintln!("  pre-loaded; draining");
    Ok(rate)
}

/// Uploads file number `n`; returns its file id, which its event names.
pub async fn upload(client: &mut MediaClient, n: u64) -> anyhow::Result<String> {
    let file_name = padded(format!("bench-{n:08}-"), FILE_NAME_LEN - 4, 'f') + ".mp4";
    let source_context = padded(format!("bench source {n:08} "), SOURCE_CONTEXT_LEN, 's');
    server::upload(client, file_name, source_context, &[0; UPLOAD_BYTES])
        .await
        .with_context(|| format!("upload #{n}"))
}

fn padded(mut text: String, len: usize, fill: char) -> String {
    while text.len() < len {
        text.push(fill);
    }
    text
}

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

/// What the consumers of one drain share.
pub struct Tally {
    confirmed: Countdown,
    not_confirmed: AtomicU64,
    confirm_calls: AtomicU64,
    delivered: AtomicU64,
    bytes: AtomicU64,
    min_bytes: AtomicU64,
    max_bytes: AtomicU64,
}

impl Tally {
    fn new(target: u64) -> Self {
        Tally {
            confirmed: Countdown::new(target),
            not_confirmed: AtomicU64::new(0),
            confirm_calls: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            min_bytes: AtomicU64::new(u64::MAX),
            max_bytes: AtomicU64::new(0),
        }
    }

    /// ConfirmEvents calls so far.
    pub fn confirm_calls(&self) -> u64 {
        self.confirm_calls.load(Ordering::Relaxed)
    }

    /// Confirm results other than CONFIRMED so far.
    pub fn not_confirmed(&self) -> u64 {
        self.not_confirmed.load(Ordering::Relaxed)
    }

    pub fn sizes(&self) -> Sizes {
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
        self.confirmed.add(confirmed);
    }
}

/// `consumers` consumers drain the queue, pre-loaded with `events` events;
/// timed from the first request to the last CONFIRMED result. Consumer `i`
/// connects to `servers[i % servers.len()]` (nodes on one database); the
/// CPU reading is the first server's.
pub async fn drain(
    servers: &[&Server],
    consumers: usize,
    events: u64,
    mode: Mode,
) -> anyhow::Result<(Drained, Arc<Tally>)> {
    let mut clients = Vec::with_capacity(consumers);
    for server in servers.iter().cycle().take(consumers) {
        clients.push(server.event_client().await?);
    }
    let tally = Arc::new(Tally::new(events));
    let meter = cpu::Meter::start(servers.first().and_then(|s| s.pid()));
    let started = Instant::now();
    // Dropping the set aborts the consumers, which closes their streams.
    let mut running = JoinSet::new();
    for client in clients {
        running.spawn(consume(client, mode, Arc::clone(&tally)));
    }
    let deadline = measure::deadline(events, SLOWEST_RATE);
    tally
        .confirmed
        .wait(&mut running, "a consumer", deadline)
        .await
        .with_context(|| format!("draining {events} events"))?;
    let rate = Rate::since(started, events);
    let cpu = meter.stop();
    running.abort_all();
    Ok((Drained { rate, cpu }, tally))
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
    client: EventClient,
    max_in_flight: u32,
    tally: Arc<Tally>,
    handles: mpsc::UnboundedSender<String>,
) -> anyhow::Result<()> {
    subscribe(client, max_in_flight, |delivery, _| {
        tally.delivered(&delivery);
        let sent = handles.send(delivery.msg_handle);
        std::future::ready(sent.context("the confirmer stopped"))
    })
    .await
}

/// Reads a SubscribeEvents stream with `max_in_flight`, handing each
/// delivery to `then` with the moment it arrived.
pub async fn subscribe<F, Fut>(
    mut client: EventClient,
    max_in_flight: u32,
    mut then: F,
) -> anyhow::Result<()>
where
    F: FnMut(pb::EventDelivery, Instant) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut stream = client
        .subscribe_events(pb::SubscribeEventsRequest {
            max_in_flight: max_in_flight as i32,
        })
        .await
        .context("SubscribeEvents")?
        .into_inner();
    while let Some(message) = stream.message().await.context("the event stream")? {
        let at = Instant::now();
        if let Some(Item::Delivery(delivery)) = message.item {
            then(delivery, at).await?;
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
        let events = pull(&mut client, batch as i32, DRAIN_PULL_WAIT_SECONDS).await?;
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

/// Confirms `handles` in one call.
pub async fn confirm_all(client: &mut EventClient, handles: Vec<String>) -> anyhow::Result<()> {
    if !handles.is_empty() {
        client
            .confirm_events(pb::ConfirmEventsRequest {
                msg_handles: handles,
            })
            .await
            .context("ConfirmEvents")?;
    }
    Ok(())
}

/// One PullEvents call: up to `max_events`, waiting up to `wait_seconds`
/// for the first.
pub async fn pull(
    client: &mut EventClient,
    max_events: i32,
    wait_seconds: i32,
) -> anyhow::Result<Vec<pb::EventDelivery>> {
    Ok(client
        .pull_events(pb::PullEventsRequest {
            max_events,
            wait_seconds: Some(wait_seconds),
        })
        .await
        .context("PullEvents")?
        .into_inner()
        .events)
}

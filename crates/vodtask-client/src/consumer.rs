//! The reliable consumer: a subscription over SubscribeEvents that
//! reconnects after a broken or silent stream, deliveries that are acked,
//! nacked or extended explicitly (and whose leases can be kept alive while a
//! slow handler works), and `consume`, which runs a handler per event and
//! acks or nacks by its result. Delivery is at least once: after a broken
//! stream the server releases its unconfirmed events, so a handler may see
//! an event again and should deduplicate by `event_id`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::Code;
use vodtask_proto::v1 as pb;
use vodtask_proto::v1::subscribe_events_response::Item;

use crate::client::Client;
use crate::error::{Error, Result};

/// The server sends a heartbeat every 5 s on an idle stream; three missed
/// mean the stream is dead.
const SILENCE: Duration = Duration::from_secs(15);
pub(crate) const FIRST_RETRY: Duration = Duration::from_millis(100);
pub(crate) const LAST_RETRY: Duration = Duration::from_secs(5);

/// One delivery of an event. Its handle is valid for this delivery only.
pub struct Delivery {
    pub event: pb::Event,
    handle: String,
    client: Client,
    acks: Acker,
    keep_alive: Mutex<Option<JoinHandle<()>>>,
}

/// Most handles in one ConfirmEvents.
const MAX_ACK_BATCH: usize = 256;
/// ConfirmEvents calls of one subscription at once. The server hands the
/// stream its credit back when a confirm arrives, before the confirm is
/// durable; with one call at a time, the acks of the events that credit
/// brought in would wait for that fsync before they could even be sent.
const CONFIRMS_IN_FLIGHT: usize = 4;

type AckReply = oneshot::Sender<Result<pb::HandleStatus>>;

/// Confirms a subscription's deliveries in batches: whatever acks queued up
/// while the previous ConfirmEvents calls were on their way go in the next
/// one, so there is no timer and no added latency when acks are rare.
#[derive(Clone)]
struct Acker(mpsc::UnboundedSender<(String, AckReply)>);

impl Acker {
    fn start(client: Client) -> Acker {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(confirm_batches(client, rx));
        Acker(tx)
    }

    async fn ack(&self, handle: String) -> Result<pb::HandleStatus> {
        let closed = || Error::Transport("the subscription is closed".into());
        let (reply, answer) = oneshot::channel();
        self.0.send((handle, reply)).map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

async fn confirm_batches(client: Client, mut rx: mpsc::UnboundedReceiver<(String, AckReply)>) {
    let calls = Arc::new(Semaphore::new(CONFIRMS_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        // The semaphore is never closed.
        let Ok(call) = Arc::clone(&calls).acquire_owned().await else {
            return;
        };
        // Taken after waiting for a free call: the acks queued meanwhile
        // ride along. Handlers that finished together (a batch settled by a
        // binding, or several woken at once) are ready to run but may not
        // have queued their acks yet: one yield lets them, and their acks
        // share this call instead of each taking a call of its own.
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while batch.len() < MAX_ACK_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let client = client.clone();
        tokio::spawn(async move {
            confirm(&client, batch).await;
            drop(call);
        });
    }
}

async fn confirm(client: &Client, batch: Vec<(String, AckReply)>) {
    let handles = batch.iter().map(|(h, _)| h.clone()).collect();
    match client.confirm_events(handles).await {
        Ok(results) => {
            for ((_, reply), result) in batch.into_iter().zip(results) {
                let status = pb::HandleStatus::try_from(result.status)
                    .unwrap_or(pb::HandleStatus::Unspecified);
                let _ = reply.send(Ok(status));
            }
        }
        Err(e) => {
            let (code, message) = match &e {
                Error::Status { code, message } => (*code, message.clone()),
                other => (Code::Unavailable, other.to_string()),
            };
            for (_, reply) in batch {
                let _ = reply.send(Err(Error::Status {
                    code,
                    message: message.clone(),
                }));
            }
        }
    }
}

impl Delivery {
    pub fn handle(&self) -> &str {
        &self.handle
    }

    /// Confirms the event: it is never delivered again. Acks of one
    /// subscription that come close together share one ConfirmEvents.
    pub async fn ack(&self) -> Result<pb::HandleStatus> {
        self.stop_keep_alive();
        self.acks.ack(self.handle.clone()).await
    }

    /// Gives the event back; without a delay it backs off exponentially.
    pub async fn nack(&self, delay: Option<Duration>) -> Result<pb::HandleStatus> {
        self.stop_keep_alive();
        let delay = delay.map(|d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX));
        let results = self
            .client
            .nack_events(vec![self.handle.clone()], delay)
            .await?;
        Ok(first_status(&results))
    }

    /// Extends the lease to `seconds` from now.
    pub async fn extend(&self, seconds: i32) -> Result<pb::HandleStatus> {
        let results = self
            .client
            .extend_events(vec![self.handle.clone()], seconds)
            .await?;
        Ok(first_status(&results))
    }

    /// Keeps the lease alive until ack, nack or drop: extends it to `lease`
    /// every `lease / 2`.
    pub fn keep_alive(&self, lease: Duration) {
        let (client, handle) = (self.client.clone(), self.handle.clone());
        let task = tokio::spawn(async move { extend_every(&client, &handle, lease).await });
        if let Ok(mut slot) = self.keep_alive.lock()
            && let Some(old) = slot.replace(task)
        {
            old.abort();
        }
    }

    fn stop_keep_alive(&self) {
        if let Ok(mut slot) = self.keep_alive.lock()
            && let Some(task) = slot.take()
        {
            task.abort();
        }
    }
}

/// Extends the lease of `handle` to `lease` every `lease / 2`; returns when
/// there is no lease left to keep (expired or settled).
async fn extend_every(client: &Client, handle: &str, lease: Duration) {
    let seconds = i32::try_from(lease.as_secs().max(2)).unwrap_or(i32::MAX);
    let every = Duration::from_secs(u64::from(seconds.unsigned_abs()) / 2);
    loop {
        tokio::time::sleep(every).await;
        match client
            .extend_events(vec![handle.to_string()], seconds)
            .await
        {
            Ok(r) if first_status(&r) == pb::HandleStatus::Extended => {}
            Ok(_) => return,
            Err(e) => tracing::warn!("extending a lease failed: {e}"),
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.stop_keep_alive();
    }
}

fn first_status(results: &[pb::HandleResult]) -> pb::HandleStatus {
    results
        .first()
        .and_then(|r| pb::HandleStatus::try_from(r.status).ok())
        .unwrap_or(pb::HandleStatus::Unspecified)
}

/// Deliveries from a SubscribeEvents stream, reconnected as needed. Ends
/// (None) when closed or dropped; yields an error only for a failure that
/// reconnecting cannot fix (a bad key, a bad argument).
pub struct Subscription {
    rx: mpsc::Receiver<Result<Delivery>>,
    stop: CancellationToken,
    _guard: DropGuard,
}

impl Subscription {
    pub(crate) fn start(client: Client, max_in_flight: i32) -> Subscription {
        let stop = CancellationToken::new();
        let (tx, rx) = mpsc::channel(usize::try_from(max_in_flight.max(1)).unwrap_or(16));
        tokio::spawn(feed(client, max_in_flight, tx, stop.clone()));
        Subscription {
            rx,
            _guard: stop.clone().drop_guard(),
            stop,
        }
    }

    pub async fn next(&mut self) -> Option<Result<Delivery>> {
        self.rx.recv().await
    }

    /// Ends the stream; the server releases its unconfirmed events.
    pub fn close(&self) {
        self.stop.cancel();
    }
}

async fn feed(
    client: Client,
    max_in_flight: i32,
    tx: mpsc::Sender<Result<Delivery>>,
    stop: CancellationToken,
) {
    let acks = Acker::start(client.clone());
    let mut retry = FIRST_RETRY;
    loop {
        let request = pb::SubscribeEventsRequest { max_in_flight };
        let mut events = client.events.clone();
        let opened = tokio::select! {
            _ = stop.cancelled() => return,
            opened = events.subscribe_events(request) => opened,
        };
        match opened {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    let message = tokio::select! {
                        _ = stop.cancelled() => return,
                        m = tokio::time::timeout(SILENCE, stream.message()) => m,
                    };
                    let item = match message {
                        Ok(Ok(Some(m))) => m.item,
                        Err(_) => {
                            tracing::warn!("no heartbeat for {SILENCE:?}: reconnecting");
                            break;
                        }
                        Ok(Ok(None)) => break,
                        Ok(Err(status)) => {
                            tracing::warn!("event stream broke: {status}; reconnecting");
                            break;
                        }
                    };
                    retry = FIRST_RETRY;
                    if let Some(Item::Delivery(d)) = item {
                        let Some(event) = d.event else { continue };
                        let delivery = Delivery {
                            event,
                            handle: d.msg_handle,
                            client: client.clone(),
                            acks: acks.clone(),
                            keep_alive: Mutex::new(None),
                        };
                        if tx.send(Ok(delivery)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            Err(status) if !transient(status.code()) => {
                let _ = tx.send(Err(status.into())).await;
                return;
            }
            Err(status) => tracing::warn!("cannot open the event stream: {status}; retrying"),
        }
        let jitter = rand::rng().random_range(0.5..1.5);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(retry.mul_f64(jitter)) => {}
        }
        retry = (retry * 2).min(LAST_RETRY);
    }
}

/// Failures that a reconnect may cure.
pub(crate) fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Unknown
            | Code::Internal
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::ResourceExhausted
            | Code::Aborted
    )
}

/// What `consume` runs per event. Any `Fn(pb::Event) -> impl Future<Output
/// = Result<(), String>>` is one; an `Err` (its text is logged) nacks.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, event: pb::Event) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
}

impl<F, Fut> Handler for F
where
    F: Fn(pb::Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    fn handle(&self, event: pb::Event) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        Box::pin(self(event))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ConsumeOptions {
    /// Handlers running at once.
    pub concurrency: usize,
    /// Unconfirmed events on the stream; at least `concurrency`.
    pub max_in_flight: i32,
}

impl Default for ConsumeOptions {
    fn default() -> Self {
        ConsumeOptions {
            concurrency: 16,
            max_in_flight: 16,
        }
    }
}

pub(crate) async fn consume<H: Handler>(
    client: Client,
    handler: H,
    options: ConsumeOptions,
    stop: CancellationToken,
) -> Result<()> {
    let concurrency = options.concurrency.max(1);
    let lease = Duration::from_secs(
        u64::try_from(client.event_config().await?.visibility_timeout_seconds).unwrap_or(30),
    );
    let max_in_flight = options
        .max_in_flight
        .max(i32::try_from(concurrency).unwrap_or(i32::MAX));
    let mut subscription = client.subscribe(max_in_flight);
    let slots = Arc::new(Semaphore::new(concurrency));
    let handler = Arc::new(handler);
    let mut running = JoinSet::new();
    let outcome = loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break Ok(()),
            },
        };
        let delivery = tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            d = subscription.next() => match d {
                Some(Ok(d)) => d,
                Some(Err(e)) => break Err(e),
                None => break Ok(()),
            },
        };
        let handler = Arc::clone(&handler);
        running.spawn(async move {
            let mut delivery = delivery;
            let event = std::mem::take(&mut delivery.event);
            let event_id = event.event_id.clone();
            // The lease is kept beside the handler, not by a task of its own:
            // one timer per event instead of a spawn and an abort.
            let handled = {
                let work = handler.handle(event);
                tokio::pin!(work);
                let keep = extend_every(&delivery.client, &delivery.handle, lease);
                tokio::select! {
                    handled = &mut work => handled,
                    () = keep => work.await,
                }
            };
            // The slot is for running handlers; the stream's max_in_flight
            // bounds the events whose settling is still on its way.
            drop(permit);
            let settled = match handled {
                Ok(()) => delivery.ack().await,
                Err(reason) => {
                    tracing::warn!(%event_id, "handler failed: {reason}");
                    delivery.nack(None).await
                }
            };
            if let Err(e) = settled {
                tracing::warn!(%event_id, "settling failed: {e}");
            }
        });
        while running.try_join_next().is_some() {}
    };
    // Let the handlers that run finish and settle their events.
    while running.join_next().await.is_some() {}
    subscription.close();
    outcome
}

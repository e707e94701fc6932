//! A consumer that holds leases over time: a stream (SubscribeEvents) or
//! an app's callback worker. Its in-flight count is its used credit, and
//! its leases are released together when it is dropped (the stream broke,
//! the worker stopped).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::app_queue::{AppQueue, instant_at};
use super::hub::{Hub, settled};
use super::leases::{ConsumerId, LeaseChange, TakeRules};
use super::shared::consumer_name;
use crate::error::Result;
use crate::events::{Delivery, EventConfig, MsgHandle};
use crate::ids::AppId;
use crate::store::Settled;
use crate::store::leases::Wake;
use crate::time;

pub(crate) struct Consumer {
    hub: Arc<Hub>,
    queue: Arc<AppQueue>,
    id: ConsumerId,
    /// A stream's wake-up when a confirm or nack gives it credit back.
    credit_back: Option<Arc<Notify>>,
}

impl Consumer {
    pub(super) fn new(hub: Arc<Hub>, queue: Arc<AppQueue>, id: ConsumerId, stream: bool) -> Self {
        let credit_back = stream.then(|| queue.add_stream(id));
        Consumer {
            hub,
            queue,
            id,
            credit_back,
        }
    }

    pub(crate) fn app(&self) -> AppId {
        self.queue.app
    }

    /// Events leased to this consumer and not yet settled or expired.
    pub(crate) async fn held(&self) -> Result<u32> {
        if let Some(shared) = &self.hub.shared {
            let name = consumer_name(shared.as_ref(), self.id);
            return shared.held_by(&name, time::now()).await;
        }
        Ok(self.queue.lock().leases.held_by(self.id, time::now()))
    }

    /// The app's event config as last written (over a shared store, as
    /// read within the last second: another process may change it).
    pub(crate) async fn config(&self) -> Result<EventConfig> {
        if self.hub.shared.is_some() {
            return self.hub.fresh_config(&self.queue).await;
        }
        Ok(self.queue.lock().config.clone())
    }

    /// Leases up to `max` due events to this consumer; see [`Hub::take`].
    pub(crate) async fn take(&self, max: u32, rules: Option<TakeRules>) -> Result<Vec<Delivery>> {
        self.hub.take(&self.queue, max, Some(self.id), rules).await
    }

    /// Changes whenever events may have become due.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.queue.subscribe()
    }

    /// Completes when this stream's credit comes back (never for a worker).
    pub(crate) async fn credit_back(&self) {
        match &self.credit_back {
            Some(notify) => notify.notified().await,
            None => std::future::pending().await,
        }
    }

    /// When something in the queue changes by itself (a delay or lease ends).
    pub(crate) async fn next_change(&self) -> Option<Instant> {
        match &self.hub.shared {
            Some(shared) => Some(
                self.hub
                    .shared_next_change(shared.as_ref(), self.queue.app, None)
                    .await,
            ),
            None => self.queue.next_change(),
        }
    }

    /// When the earliest lease (of anyone; over a shared store, of this
    /// consumer) runs out: credit may come back.
    pub(crate) async fn next_expiry(&self) -> Option<Instant> {
        match &self.hub.shared {
            Some(shared) => Some(
                self.hub
                    .shared_next_change(shared.as_ref(), self.queue.app, Some(self.id))
                    .await,
            ),
            None => self.queue.lock().leases.next_expiry().map(instant_at),
        }
    }

    /// The event goes back to the queue, due again after `wait`.
    pub(crate) async fn give_back(&self, handle: MsgHandle, wait: Duration) {
        let nack = LeaseChange::Nack(Some(wait));
        if let Some(shared) = &self.hub.shared {
            if let Err(e) = shared
                .change(self.queue.app, &[Some(handle)], nack, time::now())
                .await
            {
                // The lease runs out instead, and the event comes back then.
                tracing::warn!(app = self.queue.app.0, "giving an event back: {e}");
            }
            return;
        }
        self.queue
            .lock()
            .leases
            .change(&[Some(handle)], nack, time::now());
        self.queue.wake();
    }

    /// Whether ResendEvents named this event since it was last asked.
    pub(crate) fn resend_requested(&self, seq: i64) -> bool {
        self.queue.lock().resend.remove(&seq)
    }

    /// Settles a leased event through `write`, the caller's one durable
    /// write: it gets `Some(settle)` while this consumer still holds the
    /// lease (and must record the settle in the same transaction as the
    /// rest), or None when the lease was lost meanwhile (the event is then
    /// left to its next delivery).
    pub(crate) async fn settle_with<F, Fut>(
        &self,
        handle: MsgHandle,
        settle: Settled,
        write: F,
    ) -> Result<()>
    where
        F: FnOnce(Option<Settled>) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        if let Some(shared) = &self.hub.shared {
            // Asked, then written: a lease that runs out in between lets a
            // second delivery start, which finds the event settled.
            let holds = shared.holds(self.queue.app, handle, time::now()).await?;
            let written = write(holds.then_some(settle)).await;
            if holds && written.is_ok() {
                shared.announce(Wake::App(self.queue.app));
            }
            return written;
        }
        let v = self
            .queue
            .lock()
            .leases
            .change(&[Some(handle)], LeaseChange::Settle, time::now());
        let settle = (!v.confirm.is_empty()).then_some(settle);
        let written = write(settle).await;
        if settle.is_some() {
            settled(&self.queue, &[handle.seq], written.is_ok());
        }
        written
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if self.credit_back.is_some() {
            self.queue.remove_stream(self.id);
        }
        // Buffered deliveries were leased too; releasing by consumer frees them.
        if let Some(shared) = self.hub.shared.clone() {
            let name = consumer_name(shared.as_ref(), self.id);
            // Should the release not run (no runtime any more), the leases
            // run out instead.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(e) = shared.release(&name, time::now()).await {
                        tracing::warn!("releasing the leases of {name}: {e}");
                    }
                });
            }
            return;
        }
        let released = self.queue.lock().leases.release(self.id, time::now());
        if released > 0 {
            if self.credit_back.is_some() {
                tracing::info!(
                    app = self.queue.app.0,
                    released,
                    "stream closed; its events go back"
                );
            }
            self.queue.wake();
        }
    }
}

//! A stream consumer: pushes events as they are committed, with at most
//! `max_in_flight` unconfirmed at once (credits come back as the consumer
//! confirms, nacks or lets leases expire), and a heartbeat when idle. When
//! the subscription is dropped (the stream broke), its leases are released.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::Engine;
use super::events::{instant_at, next_change};
use crate::error::Result;
use crate::events::Delivery;
use crate::ids::AppId;
use crate::queue::AppQueue;
use crate::queue::leases::ConsumerId;
use crate::time;

pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

pub enum StreamItem {
    Delivery(Delivery),
    Heartbeat,
}

pub struct Subscription {
    engine: Engine,
    queue: Arc<AppQueue>,
    consumer: ConsumerId,
    /// Woken when a confirm or nack gives this stream credit back.
    credit_back: Arc<Notify>,
    max_in_flight: u32,
    buffered: VecDeque<Delivery>,
    next_heartbeat: Instant,
}

impl Engine {
    pub async fn subscribe(&self, app: AppId, max_in_flight: u32) -> Result<Subscription> {
        let max_in_flight = crate::limits::MAX_IN_FLIGHT.check_u32(i64::from(max_in_flight))?;
        let queue = self.queue(app).await?;
        let consumer = self.inner.queues.new_consumer();
        Ok(Subscription {
            engine: self.clone(),
            credit_back: queue.add_stream(consumer),
            queue,
            consumer,
            max_in_flight,
            buffered: VecDeque::new(),
            next_heartbeat: Instant::now() + HEARTBEAT_EVERY,
        })
    }
}

impl Subscription {
    /// Unconfirmed events this stream may hold at most.
    pub fn max_in_flight(&self) -> u32 {
        self.max_in_flight
    }

    /// The next delivery, or a heartbeat after `HEARTBEAT_EVERY` without one.
    /// None when the engine shuts down.
    pub async fn next(&mut self) -> Result<Option<StreamItem>> {
        loop {
            if let Some(d) = self.buffered.pop_front() {
                self.next_heartbeat = Instant::now() + HEARTBEAT_EVERY;
                return Ok(Some(StreamItem::Delivery(d)));
            }
            if self.engine.inner.closing.is_cancelled() {
                return Ok(None);
            }
            let mut changed = self.queue.subscribe();
            changed.borrow_and_update();
            let (held, next_expiry) = {
                let mut s = self.queue.lock();
                (
                    s.leases.held_by(self.consumer, time::now()),
                    s.leases.next_expiry(),
                )
            };
            let credit = self.max_in_flight.saturating_sub(held);
            if credit > 0 {
                let got = self
                    .engine
                    .take(&self.queue, credit, Some(self.consumer))
                    .await?;
                if !got.is_empty() {
                    self.buffered.extend(got);
                    continue;
                }
            }
            if Instant::now() >= self.next_heartbeat {
                self.next_heartbeat = Instant::now() + HEARTBEAT_EVERY;
                return Ok(Some(StreamItem::Heartbeat));
            }
            // With credit, anything that makes an event due is news; without,
            // only credit coming back: a confirm or nack of this stream's
            // (`credit_back`), or one of its leases running out.
            let next = if credit > 0 {
                next_change(&self.queue)
            } else {
                next_expiry.map(instant_at)
            };
            let until = next.map_or(self.next_heartbeat, |t| t.min(self.next_heartbeat));
            tokio::select! {
                _ = changed.changed(), if credit > 0 => {}
                _ = self.credit_back.notified() => {}
                _ = tokio::time::sleep_until(until) => {}
                _ = self.engine.inner.closing.cancelled() => {}
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.queue.remove_stream(self.consumer);
        // Buffered deliveries were leased too; releasing by consumer frees them.
        let released = self.queue.lock().leases.release(self.consumer, time::now());
        if released > 0 {
            tracing::info!(
                app = self.queue.app.0,
                released,
                "stream closed; its events go back"
            );
            self.queue.wake();
        }
    }
}

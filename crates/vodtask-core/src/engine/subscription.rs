//! A stream consumer: pushes events as they are committed, with at most
//! `max_in_flight` unconfirmed at once (credits come back as the consumer
//! confirms, nacks or lets leases expire), and a heartbeat when idle. When
//! the subscription is dropped (the stream broke), its leases are released.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Engine;
use crate::error::Result;
use crate::events::Delivery;
use crate::ids::AppId;
use crate::queue::Consumer;

pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

pub enum StreamItem {
    Delivery(Delivery),
    Heartbeat,
}

pub struct Subscription {
    consumer: Consumer,
    /// The engine shutting down ends the stream.
    closing: CancellationToken,
    max_in_flight: u32,
    buffered: VecDeque<Delivery>,
    next_heartbeat: Instant,
}

impl Engine {
    pub async fn subscribe(&self, app: AppId, max_in_flight: u32) -> Result<Subscription> {
        let max_in_flight = crate::limits::MAX_IN_FLIGHT.check_u32(i64::from(max_in_flight))?;
        Ok(Subscription {
            consumer: self.inner.hub.consumer(app, true).await?,
            closing: self.inner.closing.clone(),
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
            if self.closing.is_cancelled() {
                return Ok(None);
            }
            let mut changed = self.consumer.changes();
            changed.borrow_and_update();
            let credit = self
                .max_in_flight
                .saturating_sub(self.consumer.held().await?);
            if credit > 0 {
                let got = self.consumer.take(credit, None).await?;
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
                self.consumer.next_change().await
            } else {
                self.consumer.next_expiry().await
            };
            let until = next.map_or(self.next_heartbeat, |t| t.min(self.next_heartbeat));
            tokio::select! {
                _ = changed.changed(), if credit > 0 => {}
                _ = self.consumer.credit_back() => {}
                _ = tokio::time::sleep_until(until) => {}
                _ = self.closing.cancelled() => {}
            }
        }
    }
}

//! A stream consumer: pushes events as they are committed, with at most
//! `max_in_flight` unconfirmed at once (credits come back as the consumer
//! confirms, nacks or lets leases expire), and a heartbeat when idle. When
//! the subscription is dropped (the stream broke), its leases are released.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::Engine;
use crate::error::{Error, Result};
use crate::events::Delivery;
use crate::ids::AppId;
use crate::time;

pub const DEFAULT_MAX_IN_FLIGHT: u32 = 16;
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

pub enum StreamItem {
    Delivery(Delivery),
    Heartbeat,
}

pub struct Subscription {
    engine: Engine,
    app: AppId,
    consumer: String,
    max_in_flight: u32,
    buffered: VecDeque<Delivery>,
    next_heartbeat: Instant,
}

impl Engine {
    pub fn subscribe(&self, app: AppId, max_in_flight: u32) -> Result<Subscription> {
        let max_in_flight = match max_in_flight {
            0 => DEFAULT_MAX_IN_FLIGHT,
            1..=1000 => max_in_flight,
            _ => return Err(Error::invalid("max_in_flight", "must be within 1..1000")),
        };
        Ok(Subscription {
            engine: self.clone(),
            app,
            consumer: format!("stream-{}", uuid::Uuid::new_v4().simple()),
            max_in_flight,
            buffered: VecDeque::new(),
            next_heartbeat: Instant::now() + HEARTBEAT_EVERY,
        })
    }
}

impl Subscription {
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
            let store = &self.engine.inner.store;
            let mut changed = self.engine.inner.events.subscribe();
            changed.borrow_and_update();
            let held = store.in_flight_for(&self.consumer, time::now()).await?;
            let credit = u64::from(self.max_in_flight).saturating_sub(held) as u32;
            if credit > 0 {
                let got = store
                    .pull_events(self.app, credit, Some(&self.consumer), time::now())
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
            let mut until = self.next_heartbeat;
            if credit > 0
                && let Some(next) = store.next_event_visible(self.app).await?
            {
                let due = (next - time::now()).to_std().unwrap_or(Duration::ZERO);
                until = until.min(Instant::now() + due + Duration::from_millis(1));
            }
            tokio::select! {
                _ = changed.changed() => {}
                _ = tokio::time::sleep_until(until) => {}
                _ = self.engine.inner.closing.cancelled() => {}
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let engine = self.engine.clone();
        let consumer = std::mem::take(&mut self.consumer);
        // Buffered deliveries were leased too; releasing by consumer frees them.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                match engine
                    .inner
                    .store
                    .release_consumer(&consumer, time::now())
                    .await
                {
                    Ok(n) if n > 0 => {
                        tracing::info!(consumer, released = n, "stream closed; its events go back");
                        engine.inner.events.notify();
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(consumer, "releasing a closed stream's events failed: {e}")
                    }
                }
            });
        }
    }
}

//! The event queue API: long-poll pull, settle, dead letters, state, config.

use std::time::Duration;

use tokio::sync::watch;

use super::Engine;
use crate::error::{Error, Result};
use crate::events::{Delivery, EventConfig, HandleResult, QueueState};
use crate::ids::AppId;
use crate::store::{EventPage, Settle};
use crate::time;

pub const DEFAULT_MAX_EVENTS: u32 = 16;
pub const MAX_EVENTS: u32 = 1000;
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);
pub const MAX_WAIT: Duration = Duration::from_secs(20);
pub const MAX_HANDLES: usize = 1000;

/// Wakes long polls and streams when events may have become deliverable.
/// A counter in a watch channel: a waiter that read version N wakes for any
/// later commit, so no signal between its pull and its wait is lost.
#[derive(Debug)]
pub(crate) struct EventSignal(watch::Sender<u64>);

impl EventSignal {
    pub(crate) fn new() -> Self {
        EventSignal(watch::Sender::new(0))
    }

    pub(crate) fn notify(&self) {
        self.0.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

fn check_handles(handles: &[String]) -> Result<()> {
    if handles.is_empty() {
        return Err(Error::invalid(
            "msg_handles",
            "must hold at least one handle",
        ));
    }
    if handles.len() > MAX_HANDLES {
        return Err(Error::invalid(
            "msg_handles",
            format!("at most {MAX_HANDLES} handles"),
        ));
    }
    Ok(())
}

impl Engine {
    /// Returns deliverable events at once; otherwise waits up to `wait` and
    /// returns as soon as one is committed (an empty list when none came).
    /// `max` 0 means 16; `wait` None means 5 s.
    pub async fn pull_events(
        &self,
        app: AppId,
        max: u32,
        wait: Option<Duration>,
    ) -> Result<Vec<Delivery>> {
        let max = match max {
            0 => DEFAULT_MAX_EVENTS,
            1..=MAX_EVENTS => max,
            _ => {
                return Err(Error::invalid(
                    "max_events",
                    format!("must be within 1..{MAX_EVENTS}"),
                ));
            }
        };
        let wait = wait.unwrap_or(DEFAULT_WAIT);
        if wait > MAX_WAIT {
            return Err(Error::invalid("wait_seconds", "must be within 0..20"));
        }
        self.pull_or_wait(app, max, None, tokio::time::Instant::now() + wait)
            .await
    }

    /// Pulls; when nothing is deliverable, waits for a commit or for the
    /// next delayed event to come due, until `deadline`.
    pub(crate) async fn pull_or_wait(
        &self,
        app: AppId,
        max: u32,
        consumer: Option<&str>,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<Delivery>> {
        let store = &self.inner.store;
        let mut changed = self.inner.events.subscribe();
        loop {
            changed.borrow_and_update();
            let got = store.pull_events(app, max, consumer, time::now()).await?;
            if !got.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(got);
            }
            let mut until = deadline;
            if let Some(next) = store.next_event_visible(app).await? {
                let due = (next - time::now()).to_std().unwrap_or(Duration::ZERO);
                until = until.min(tokio::time::Instant::now() + due + Duration::from_millis(1));
            }
            tokio::select! {
                _ = changed.changed() => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    pub async fn confirm_events(
        &self,
        app: AppId,
        handles: Vec<String>,
    ) -> Result<Vec<HandleResult>> {
        check_handles(&handles)?;
        let results = self
            .inner
            .store
            .settle_events(app, handles, Settle::Confirm, time::now())
            .await?;
        // A confirm may unblock the next event of the same task.
        self.inner.events.notify();
        Ok(results)
    }

    pub async fn extend_events(
        &self,
        app: AppId,
        handles: Vec<String>,
        seconds: u32,
    ) -> Result<Vec<HandleResult>> {
        check_handles(&handles)?;
        if seconds == 0 || u64::from(seconds) > crate::events::MAX_VISIBILITY_TIMEOUT.as_secs() {
            return Err(Error::invalid("seconds", "must be within 1..43200"));
        }
        let by = Duration::from_secs(u64::from(seconds));
        self.inner
            .store
            .settle_events(app, handles, Settle::Extend(by), time::now())
            .await
    }

    /// Gives events back; without a delay they back off exponentially.
    pub async fn nack_events(
        &self,
        app: AppId,
        handles: Vec<String>,
        delay: Option<Duration>,
    ) -> Result<Vec<HandleResult>> {
        check_handles(&handles)?;
        if delay.is_some_and(|d| d > crate::events::MAX_VISIBILITY_TIMEOUT) {
            return Err(Error::invalid("delay_seconds", "must be within 0..43200"));
        }
        let results = self
            .inner
            .store
            .settle_events(app, handles, Settle::Nack(delay), time::now())
            .await?;
        self.inner.events.notify();
        Ok(results)
    }

    pub async fn dead_letter_events(
        &self,
        app: AppId,
        limit: u32,
        after: Option<i64>,
    ) -> Result<EventPage> {
        let limit = match limit {
            0 => 100,
            1..=1000 => limit,
            _ => return Err(Error::invalid("limit", "must be within 1..1000")),
        };
        self.inner.store.dead_letter_events(app, limit, after).await
    }

    pub async fn redrive_events(&self, app: AppId, event_ids: Option<Vec<String>>) -> Result<u64> {
        let n = self
            .inner
            .store
            .redrive_events(app, event_ids, time::now())
            .await?;
        self.inner.events.notify();
        Ok(n)
    }

    pub async fn events_state(&self, app: AppId) -> Result<QueueState> {
        self.inner.store.queue_state(app, time::now()).await
    }

    pub async fn event_config(&self, app: AppId) -> Result<EventConfig> {
        self.inner.store.event_config(app).await
    }

    pub async fn set_event_config(&self, app: AppId, config: EventConfig) -> Result<EventConfig> {
        config.validate()?;
        self.inner.store.set_event_config(app, &config).await?;
        Ok(config)
    }
}

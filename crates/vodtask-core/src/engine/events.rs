//! The event queue API: long-poll pull, settle, dead letters, state, config.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Engine;
use crate::callbacks::secrets::Secrets;
use crate::error::{Error, Result};
use crate::events::{Delivery, EventConfig, HandleResult, MsgHandle, QueueState};
use crate::ids::AppId;
use crate::queue::AppQueue;
use crate::queue::leases::{ConsumerId, LeaseChange, TakeRules, Verdicts};
use crate::store::{AttemptsOf, CallbackAttempt, EventPage, Revive, Settled, Stored};
use crate::{limits, time};

pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);
pub const MAX_HANDLES: usize = 1000;

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
    pub(crate) async fn queue(&self, app: AppId) -> Result<Arc<AppQueue>> {
        self.inner.queues.get(self.inner.store.as_ref(), app).await
    }

    /// Returns deliverable events at once; otherwise waits up to `wait` and
    /// returns as soon as one is committed (an empty list when none came).
    /// `max` 0 means 16; `wait` None means 5 s.
    pub async fn pull_events(
        &self,
        app: AppId,
        max: u32,
        wait: Option<Duration>,
    ) -> Result<Vec<Delivery>> {
        let max = limits::PULL_MAX_EVENTS.check_u32(i64::from(max))?;
        let wait = limits::PULL_WAIT.check_duration(wait.unwrap_or(DEFAULT_WAIT))?;
        let deadline = Instant::now() + wait;
        let queue = self.queue(app).await?;
        let mut changed = queue.subscribe();
        loop {
            changed.borrow_and_update();
            let got = self.take(&queue, max, None).await?;
            if !got.is_empty() || Instant::now() >= deadline {
                return Ok(got);
            }
            let until = next_change(&queue).map_or(deadline, |t| t.min(deadline));
            tokio::select! {
                _ = changed.changed() => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// Leases up to `max` due events (refilling the queue's window first);
    /// events that used up their deliveries go to the dead-letter list.
    pub(crate) async fn take(
        &self,
        queue: &AppQueue,
        max: u32,
        consumer: Option<ConsumerId>,
    ) -> Result<Vec<Delivery>> {
        self.take_with(queue, max, consumer, None).await
    }

    /// `rules` None: the app's visibility timeout and max deliveries.
    pub(crate) async fn take_with(
        &self,
        queue: &AppQueue,
        max: u32,
        consumer: Option<ConsumerId>,
        rules: Option<TakeRules>,
    ) -> Result<Vec<Delivery>> {
        queue.refill(self.inner.store.as_ref()).await?;
        let (got, dead) = {
            let mut s = queue.lock();
            let s = &mut *s;
            let rules = rules.unwrap_or_else(|| (&s.config).into());
            s.leases.take(max, consumer, rules, time::now())
        };
        if !dead.is_empty() {
            let n = dead.len();
            match self.settle(queue, dead, Settled::DeadLettered).await {
                Ok(()) => tracing::warn!(
                    app = queue.app.0,
                    n,
                    "events dead-lettered after their last delivery"
                ),
                // They stay in the queue and are tried again; the leased
                // events are still handed out.
                Err(e) => tracing::error!(app = queue.app.0, "dead-lettering failed: {e}"),
            }
        }
        Ok(got)
    }

    /// Writes settling events to the store; then they leave the queue and
    /// the next event of each of their tasks becomes due.
    pub(crate) async fn settle(
        &self,
        queue: &AppQueue,
        seqs: Vec<(i64, u32)>,
        outcome: Settled,
    ) -> Result<()> {
        let ids: Vec<i64> = seqs.iter().map(|&(s, _)| s).collect();
        let written = self
            .inner
            .store
            .settle_events(queue.app, seqs, outcome)
            .await;
        let wake = {
            let mut s = queue.lock();
            match &written {
                Ok(()) => {
                    let news = s.leases.settled(&ids, time::now());
                    s.worth_waking(news)
                }
                Err(_) => {
                    s.leases.unsettle(&ids, time::now());
                    true
                }
            }
        };
        if wake {
            queue.wake();
        }
        written
    }

    /// Answers the handles only the store can tell about.
    async fn resolve(&self, app: AppId, v: Verdicts) -> Result<Vec<HandleResult>> {
        let known = if v.unknown.is_empty() {
            Default::default()
        } else {
            self.inner
                .store
                .event_states(app, v.unknown.clone())
                .await?
        };
        let mut unknown = v.unknown.iter();
        Ok(v.results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| match unknown.next().and_then(|s| known.get(s)) {
                    Some(Stored::Confirmed) => HandleResult::AlreadyConfirmed,
                    Some(Stored::Pending | Stored::DeadLettered) => HandleResult::Expired,
                    None => HandleResult::Unknown,
                })
            })
            .collect())
    }

    /// Confirms; returns once the confirmations are durable.
    pub async fn confirm_events(
        &self,
        app: AppId,
        handles: Vec<String>,
    ) -> Result<Vec<HandleResult>> {
        check_handles(&handles)?;
        let queue = self.queue(app).await?;
        let decoded = decode(&handles);
        let v = queue
            .lock()
            .leases
            .change(&decoded, LeaseChange::Settle, time::now());
        if !v.confirm.is_empty() {
            // Streams have their credit back already: let them refill while
            // the confirm is being written.
            queue.credit_back(&v.credited);
            let seqs = v.confirm.iter().map(|&s| (s, 0)).collect();
            self.settle(&queue, seqs, Settled::Confirmed).await?;
        }
        self.resolve(app, v).await
    }

    pub async fn extend_events(
        &self,
        app: AppId,
        handles: Vec<String>,
        seconds: u32,
    ) -> Result<Vec<HandleResult>> {
        check_handles(&handles)?;
        let by = limits::EXTEND.seconds(i64::from(seconds))?;
        self.change_leases(app, handles, LeaseChange::Extend(by))
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
        if let Some(d) = delay {
            limits::NACK_DELAY.check_duration(d)?;
        }
        self.change_leases(app, handles, LeaseChange::Nack(delay))
            .await
    }

    async fn change_leases(
        &self,
        app: AppId,
        handles: Vec<String>,
        change: LeaseChange,
    ) -> Result<Vec<HandleResult>> {
        let queue = self.queue(app).await?;
        let decoded = decode(&handles);
        let v = queue.lock().leases.change(&decoded, change, time::now());
        // A stream without credit listens only for its own credit.
        queue.credit_back(&v.credited);
        queue.wake();
        self.resolve(app, v).await
    }

    pub async fn dead_letter_events(
        &self,
        app: AppId,
        limit: u32,
        after: Option<i64>,
    ) -> Result<EventPage> {
        let limit = limits::DEAD_LETTER_LIMIT.check_u32(i64::from(limit))?;
        self.inner.store.dead_letter_events(app, limit, after).await
    }

    pub async fn redrive_events(&self, app: AppId, event_ids: Option<Vec<String>>) -> Result<u64> {
        let queue = self.queue(app).await?;
        let revived = self.revive(&queue, event_ids, Revive::DeadLettered).await?;
        Ok(revived.len() as u64)
    }

    /// Sends events again now, whatever their state: settled ones go back in
    /// the queue, pending ones are due at once (in PUSH mode without waiting
    /// for their planned retry). Returns how many of the named events exist.
    pub async fn resend_events(&self, app: AppId, event_ids: Vec<String>) -> Result<u64> {
        if event_ids.is_empty() || event_ids.len() > MAX_HANDLES {
            return Err(Error::invalid(
                "event_ids",
                format!("must hold 1..{MAX_HANDLES} event ids"),
            ));
        }
        let queue = self.queue(app).await?;
        let pending = self
            .inner
            .store
            .pending_event_seqs(app, event_ids.clone())
            .await?;
        let revived = self
            .revive(&queue, Some(event_ids), Revive::Settled)
            .await?;
        let now = time::now();
        {
            let mut s = queue.lock();
            let push = s.config.mode == crate::events::DeliveryMode::Push;
            for &seq in pending.iter().chain(&revived) {
                s.leases.due_now(seq, now);
                // Only the callback worker reads (and clears) these.
                if push {
                    s.resend.insert(seq);
                }
            }
        }
        queue.wake();
        Ok((pending.len() + revived.len()) as u64)
    }

    async fn revive(
        &self,
        queue: &AppQueue,
        event_ids: Option<Vec<String>>,
        which: Revive,
    ) -> Result<Vec<i64>> {
        // No load may run between the write and the queue taking the events
        // back, or one below the window's edge could be missed.
        let _no_load = queue.loading.lock().await;
        let events = self
            .inner
            .store
            .revive_events(queue.app, event_ids, which)
            .await?;
        let seqs = events.iter().map(|e| e.seq).collect();
        {
            let mut s = queue.lock();
            let upto = s.loaded_upto;
            for e in events.into_iter().filter(|e| e.seq <= upto) {
                s.leases.insert(e);
            }
        }
        queue.committed();
        Ok(seqs)
    }

    /// Exact counts: the loaded window from memory, the rest from the store.
    pub async fn events_state(&self, app: AppId) -> Result<QueueState> {
        let queue = self.queue(app).await?;
        let _no_load = queue.loading.lock().await;
        let (mem, upto) = {
            let s = queue.lock();
            (s.leases.counts(time::now()), s.loaded_upto)
        };
        let tail = self.inner.store.event_tail(app, upto).await?;
        Ok(QueueState {
            ready: mem.ready + tail.ready,
            in_flight: mem.in_flight,
            delayed: mem.delayed + tail.held,
            dead_lettered: tail.dead_lettered,
            oldest_unconfirmed: tail.oldest_pending,
        })
    }

    /// The app's event config; an app's first look makes its signing secret.
    pub async fn event_config(&self, app: AppId) -> Result<EventConfig> {
        let config = self.queue(app).await?.lock().config.clone();
        if !config.secrets.is_empty() {
            return Ok(config);
        }
        let mut config = config;
        config.secrets = Secrets::generate();
        self.store_config(app, config).await
    }

    pub async fn set_event_config(&self, app: AppId, config: EventConfig) -> Result<EventConfig> {
        config.validate()?;
        // An app left in PUSH mode with a URL that can never be called
        // would wait for callbacks in silence.
        if config.mode == crate::events::DeliveryMode::Push {
            crate::outbound::check_reachable(
                &self.inner.config.outbound_policy,
                "notification_url",
                &config.notification_url,
            )
            .await?;
        }
        let mut config = config;
        if config.secrets.is_empty() {
            config.secrets = Secrets::generate();
        }
        self.store_config(app, config).await
    }

    /// A new signing secret; the old one keeps signing for `overlap`.
    pub async fn rotate_signing_secret(
        &self,
        app: AppId,
        overlap: Option<Duration>,
    ) -> Result<EventConfig> {
        let overlap = overlap.unwrap_or(crate::callbacks::secrets::DEFAULT_OVERLAP);
        limits::SECRET_OVERLAP.check_duration(overlap)?;
        let mut config = self.event_config(app).await?;
        config.secrets.rotate(time::after(time::now(), overlap));
        self.store_config(app, config).await
    }

    /// The callback attempts of an event, or of a task's events.
    pub async fn callback_attempts(
        &self,
        app: AppId,
        of: AttemptsOf,
    ) -> Result<Vec<CallbackAttempt>> {
        self.inner.store.callback_attempts(app, of).await
    }

    pub(crate) async fn store_config(
        &self,
        app: AppId,
        config: EventConfig,
    ) -> Result<EventConfig> {
        let queue = self.queue(app).await?;
        self.inner.store.set_event_config(app, &config).await?;
        let was_disabled = std::mem::replace(&mut queue.lock().config, config.clone())
            .endpoint_disabled
            .is_some();
        if was_disabled && config.endpoint_disabled.is_none() {
            self.reset_endpoint(app);
        }
        queue.wake();
        self.sync_push(app, config.mode);
        Ok(config)
    }
}

fn decode(handles: &[String]) -> Vec<Option<MsgHandle>> {
    handles.iter().map(|h| MsgHandle::decode(h)).collect()
}

/// When something in the queue changes by itself (a delay or lease ends).
pub(crate) fn next_change(queue: &AppQueue) -> Option<Instant> {
    queue.lock().leases.next_change().map(instant_at)
}

/// The tokio instant just past a wall-clock time.
pub(crate) fn instant_at(at: time::Timestamp) -> Instant {
    let wait = (at - time::now()).to_std().unwrap_or(Duration::ZERO);
    Instant::now() + wait + Duration::from_millis(1)
}

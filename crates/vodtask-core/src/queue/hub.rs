//! The hub: the one owner of event delivery. It holds every app's queue
//! and the store handle, and offers the whole vocabulary: take (a long
//! poll, a stream's or a callback worker's refill), confirm, extend, nack,
//! release, redrive, resend, forget (retention), state and config. Pull,
//! streams and the callback workers are its consumers; the engine checks
//! arguments and delegates.
//!
//! The store tells the hub which apps got events after each commit (the
//! outbox listener), so no writer has to remember to.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::app_queue::AppQueue;
use super::consumer::Consumer;
use super::leases::{ConsumerId, LeaseChange, TakeRules, Verdicts};
use crate::error::Result;
use crate::events::{Delivery, DeliveryMode, EventConfig, HandleResult, MsgHandle, QueueState};
use crate::ids::AppId;
use crate::store::leases::{SharedLeases, Wake};
use crate::store::{Revive, Settled, Store, Stored};
use crate::time;

pub(crate) struct Hub {
    pub(super) store: Arc<dyn Store>,
    /// Stamped into every handle, so that a handle from before a restart
    /// answers EXPIRED (or ALREADY_CONFIRMED) instead of matching a new
    /// delivery.
    epoch: u32,
    apps: Mutex<HashMap<AppId, Arc<AppQueue>>>,
    next_consumer: AtomicU64,
    /// Leases kept in the store, which other processes share
    /// (`queue/shared.rs`); None: in memory, in the app queues.
    pub(super) shared: Option<Arc<dyn SharedLeases>>,
}

impl Hub {
    /// A hub over `store`, listening to its outbox.
    pub(crate) fn new(store: Arc<dyn Store>) -> Arc<Hub> {
        let shared = store.shared_leases();
        let hub = Arc::new(Hub {
            store,
            // Nonzero, so that handles of the old format (no epoch) are stale.
            epoch: shared
                .as_ref()
                .map_or_else(|| rand::rng().random_range(1..=u32::MAX), |s| s.epoch()),
            apps: Mutex::new(HashMap::new()),
            next_consumer: AtomicU64::new(1),
            shared,
        });
        let listener = Arc::downgrade(&hub);
        hub.store.listen_outbox(Arc::new(move |apps: &[AppId]| {
            if let Some(hub) = listener.upgrade() {
                hub.committed(apps);
            }
        }));
        if let Some(shared) = &hub.shared {
            let listener = Arc::downgrade(&hub);
            shared.listen(Arc::new(move |wake: &Wake| {
                if let Some(hub) = listener.upgrade()
                    && let Some(shared) = hub.shared.clone()
                {
                    hub.woken(shared.as_ref(), wake);
                }
            }));
        }
        hub
    }

    fn apps(&self) -> MutexGuard<'_, HashMap<AppId, Arc<AppQueue>>> {
        self.apps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The app's queue if it is loaded.
    pub(super) fn loaded(&self, app: AppId) -> Option<Arc<AppQueue>> {
        self.apps().get(&app).cloned()
    }

    pub(super) fn all_loaded(&self) -> Vec<Arc<AppQueue>> {
        self.apps().values().cloned().collect()
    }

    /// The app's queue, created (with its config read) on first use.
    pub(super) async fn queue(&self, app: AppId) -> Result<Arc<AppQueue>> {
        if let Some(q) = self.apps().get(&app) {
            return Ok(Arc::clone(q));
        }
        let config = self.store.event_config(app).await?;
        let q = Arc::new(AppQueue::new(app, self.epoch, config));
        Ok(Arc::clone(self.apps().entry(app).or_insert(q)))
    }

    /// Events of these apps were committed. Queues not loaded yet read the
    /// store when they are.
    fn committed(&self, apps: &[AppId]) {
        let queues: Vec<_> = {
            let loaded = self.apps();
            apps.iter().filter_map(|a| loaded.get(a).cloned()).collect()
        };
        for q in queues {
            q.committed();
        }
    }

    /// A stream (`stream`) or a callback worker on the app's queue; its
    /// leases are released when it is dropped.
    pub(crate) async fn consumer(self: &Arc<Self>, app: AppId, stream: bool) -> Result<Consumer> {
        let queue = self.queue(app).await?;
        let id: ConsumerId = self.next_consumer.fetch_add(1, Ordering::Relaxed);
        Ok(Consumer::new(Arc::clone(self), queue, id, stream))
    }

    /// Returns due events at once; otherwise waits until `wait` is over and
    /// returns as soon as one is due (an empty list when none came).
    pub(crate) async fn pull(&self, app: AppId, max: u32, wait: Duration) -> Result<Vec<Delivery>> {
        let deadline = Instant::now() + wait;
        let queue = self.queue(app).await?;
        let mut changed = queue.subscribe();
        loop {
            changed.borrow_and_update();
            let got = self.take(&queue, max, None, None).await?;
            if !got.is_empty() || Instant::now() >= deadline {
                return Ok(got);
            }
            let next = match &self.shared {
                Some(shared) => Some(self.shared_next_change(shared.as_ref(), app, None).await),
                None => queue.next_change(),
            };
            let until = next.map_or(deadline, |t| t.min(deadline));
            tokio::select! {
                _ = changed.changed() => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// Leases up to `max` due events (refilling the queue's window first);
    /// events that used up their deliveries go to the dead-letter list.
    /// `rules` None: the app's visibility timeout and max deliveries.
    pub(super) async fn take(
        &self,
        queue: &AppQueue,
        max: u32,
        consumer: Option<ConsumerId>,
        rules: Option<TakeRules>,
    ) -> Result<Vec<Delivery>> {
        if let Some(shared) = &self.shared {
            return self
                .shared_take(shared.as_ref(), queue, max, consumer, rules)
                .await;
        }
        queue.refill(self.store.as_ref()).await?;
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
    async fn settle(
        &self,
        queue: &AppQueue,
        seqs: Vec<(i64, u32)>,
        outcome: Settled,
    ) -> Result<()> {
        let ids: Vec<i64> = seqs.iter().map(|&(s, _)| s).collect();
        let written = self.store.settle_events(queue.app, seqs, outcome).await;
        settled(queue, &ids, written.is_ok());
        written
    }

    /// Answers the handles only the store can tell about.
    async fn resolve(&self, app: AppId, v: Verdicts) -> Result<Vec<HandleResult>> {
        let known = if v.unknown.is_empty() {
            Default::default()
        } else {
            self.store.event_states(app, v.unknown.clone()).await?
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
    pub(crate) async fn confirm(
        &self,
        app: AppId,
        handles: &[String],
    ) -> Result<Vec<HandleResult>> {
        if let Some(shared) = &self.shared {
            let changed = shared
                .change(app, &decode(handles), LeaseChange::Settle, time::now())
                .await?;
            return Ok(changed.results);
        }
        let queue = self.queue(app).await?;
        let v = queue
            .lock()
            .leases
            .change(&decode(handles), LeaseChange::Settle, time::now());
        if !v.confirm.is_empty() {
            // Streams have their credit back already: let them refill while
            // the confirm is being written.
            queue.credit_back(&v.credited);
            let seqs = v.confirm.iter().map(|&s| (s, 0)).collect();
            self.settle(&queue, seqs, Settled::Confirmed).await?;
        }
        self.resolve(app, v).await
    }

    /// Extends or gives back leases (ExtendEvents, NackEvents).
    pub(crate) async fn change(
        &self,
        app: AppId,
        handles: &[String],
        change: LeaseChange,
    ) -> Result<Vec<HandleResult>> {
        if let Some(shared) = &self.shared {
            let changed = shared
                .change(app, &decode(handles), change, time::now())
                .await?;
            return Ok(changed.results);
        }
        let queue = self.queue(app).await?;
        let v = queue
            .lock()
            .leases
            .change(&decode(handles), change, time::now());
        // A stream without credit listens only for its own credit.
        queue.credit_back(&v.credited);
        queue.wake();
        self.resolve(app, v).await
    }

    /// Puts dead-lettered events (None: all of the app's) back in the queue.
    pub(crate) async fn redrive(&self, app: AppId, event_ids: Option<Vec<String>>) -> Result<u64> {
        let queue = self.queue(app).await?;
        let revived = self.revive(&queue, event_ids, Revive::DeadLettered).await?;
        Ok(revived.len() as u64)
    }

    /// Sends events again now, whatever their state: settled ones go back in
    /// the queue, pending ones are due at once (in PUSH mode without waiting
    /// for their planned retry). Returns how many of the named events exist.
    pub(crate) async fn resend(&self, app: AppId, event_ids: Vec<String>) -> Result<u64> {
        let queue = self.queue(app).await?;
        let pending = self
            .store
            .pending_event_seqs(app, event_ids.clone())
            .await?;
        let revived = self
            .revive(&queue, Some(event_ids), Revive::Settled)
            .await?;
        let now = time::now();
        if let Some(shared) = &self.shared {
            let seqs: Vec<i64> = pending.iter().chain(&revived).copied().collect();
            shared.due_now(app, &seqs, now).await?;
            return Ok(seqs.len() as u64);
        }
        {
            let mut s = queue.lock();
            let push = s.config.mode == DeliveryMode::Push;
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
        if let Some(shared) = &self.shared {
            let events = self
                .store
                .revive_events(queue.app, event_ids, which)
                .await?;
            shared.announce(Wake::App(queue.app));
            return Ok(events.iter().map(|e| e.seq).collect());
        }
        // No load may run between the write and the queue taking the events
        // back, or one below the window's edge could be missed.
        let _no_load = queue.loading.lock().await;
        let events = self
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

    /// Event retention: deletes events past their app's retention, then
    /// forgets them in the loaded queues. Returns how many were deleted.
    pub(crate) async fn forget_expired(&self) -> Result<u64> {
        let now = time::now();
        let deleted = self.store.purge_events(now).await?;
        if deleted == 0 {
            return Ok(0);
        }
        if let Some(shared) = &self.shared {
            // Leased events may be among the deleted: their consumers'
            // credit is back.
            shared.announce(Wake::All);
            return Ok(deleted);
        }
        let loaded: Vec<_> = self.apps().values().cloned().collect();
        for queue in loaded {
            // A load that read the deleted rows has finished once this is held.
            let _no_load = queue.loading.lock().await;
            let wake = {
                let mut s = queue.lock();
                let cutoff = time::before(now, s.config.retention);
                let news = s.leases.forget_before(cutoff, now);
                s.worth_waking(news)
            };
            if wake {
                // Leased events may be among the forgotten: their streams'
                // credit is back too.
                queue.credit_back_all();
                queue.wake();
            }
        }
        Ok(deleted)
    }

    /// Exact counts: the loaded window from memory, the rest from the store.
    pub(crate) async fn state(&self, app: AppId) -> Result<QueueState> {
        if let Some(shared) = &self.shared {
            return shared.state(app, time::now()).await;
        }
        let queue = self.queue(app).await?;
        let _no_load = queue.loading.lock().await;
        let (mem, upto) = {
            let s = queue.lock();
            (s.leases.counts(time::now()), s.loaded_upto)
        };
        let tail = self.store.event_tail(app, upto).await?;
        Ok(QueueState {
            ready: mem.ready + tail.ready,
            in_flight: mem.in_flight,
            delayed: mem.delayed + tail.held,
            dead_lettered: tail.dead_lettered,
            oldest_unconfirmed: tail.oldest_pending,
        })
    }

    /// The app's event config as last written.
    pub(crate) async fn config(&self, app: AppId) -> Result<EventConfig> {
        let queue = self.queue(app).await?;
        if self.shared.is_some() {
            return self.fresh_config(&queue).await;
        }
        Ok(queue.lock().config.clone())
    }

    /// Changes the app's config as one operation: `change` gets the current
    /// config and returns the new one (or refuses), which is written and
    /// then used; concurrent changes of one app run one after the other.
    /// Returns the config before and after.
    pub(crate) async fn modify_config<F, Fut>(
        &self,
        app: AppId,
        change: F,
    ) -> Result<(EventConfig, EventConfig)>
    where
        F: FnOnce(EventConfig) -> Fut,
        Fut: Future<Output = Result<EventConfig>>,
    {
        let queue = self.queue(app).await?;
        let _one_writer = queue.config_writes.lock().await;
        // Over a shared store another process may have changed it: read it
        // again (two processes changing one app's config at once: the
        // last write wins).
        let before = match &self.shared {
            Some(_) => {
                let config = self.store.event_config(app).await?;
                queue.set_config(config.clone());
                config
            }
            None => queue.lock().config.clone(),
        };
        let after = change(before.clone()).await?;
        if after != before {
            self.store.set_event_config(app, &after).await?;
            queue.set_config(after.clone());
            queue.wake();
            if let Some(shared) = &self.shared {
                shared.announce(Wake::App(app));
            }
        }
        Ok((before, after))
    }
}

/// After a settle write: on success the events leave the queue, on failure
/// they are back with nobody, due as before.
pub(super) fn settled(queue: &AppQueue, seqs: &[i64], written: bool) {
    let wake = {
        let mut s = queue.lock();
        if written {
            let news = s.leases.settled(seqs, time::now());
            s.worth_waking(news)
        } else {
            s.leases.unsettle(seqs, time::now());
            true
        }
    };
    if wake {
        queue.wake();
    }
}

fn decode(handles: &[String]) -> Vec<Option<MsgHandle>> {
    handles.iter().map(|h| MsgHandle::decode(h)).collect()
}

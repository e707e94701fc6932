//! The per-app event queues. Events are durable in the store from the
//! moment they are written (the outbox); which consumer holds which event is
//! kept here, in memory, because a lease is worth nothing after a crash
//! anyway: every event that was not confirmed is simply delivered again.
//! So a pull or a stream refill touches no disk, and only confirms and
//! dead-letterings are durable writes.
//!
//! Each app queue holds a window of its oldest unsettled events (at most
//! `WINDOW` of them), refilled from the store in seq order. A handle carries
//! the epoch of the process that issued it, so a handle from before a
//! restart answers EXPIRED (or ALREADY_CONFIRMED) instead of matching a new
//! delivery.

pub(crate) mod leases;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::Rng;
use tokio::sync::{Notify, watch};

use self::leases::{ConsumerId, Leases};
use crate::error::Result;
use crate::events::EventConfig;
use crate::ids::AppId;
use crate::store::Store;

/// Loaded events per app at most; beyond it, newer events wait in the store
/// until older ones are settled.
const WINDOW: usize = 65_536;
/// Refill when fewer events than this are due. Small batches keep the
/// window (and the memory it takes) small: settled events free the memory
/// that the next batch reuses.
const LOW_WATER: usize = 1_024;
const LOAD_BATCH: usize = 1_024;

pub(crate) struct Queues {
    epoch: u32,
    apps: Mutex<HashMap<AppId, Arc<AppQueue>>>,
    next_consumer: std::sync::atomic::AtomicU64,
}

pub(crate) struct AppQueue {
    pub(crate) app: AppId,
    state: Mutex<QueueState>,
    /// One loader at a time; also held by operations that must not race a
    /// load (redrive, retention).
    pub(crate) loading: tokio::sync::Mutex<()>,
    /// Bumped whenever events may have become deliverable. Streams without
    /// credit do not listen: a confirm wakes only the stream it credits
    /// (`credit_back`), not every consumer of the app.
    signal: watch::Sender<u64>,
}

pub(crate) struct QueueState {
    pub(crate) leases: Leases,
    pub(crate) config: EventConfig,
    /// Every unsettled event with seq ≤ this is in `leases`.
    pub(crate) loaded_upto: i64,
    /// The store had nothing beyond `loaded_upto` at the last load…
    exhausted: bool,
    /// …unless new events were committed since (compared across a load).
    commits: u64,
    /// Events named by ResendEvents: the callback worker sends them without
    /// waiting for their planned retry.
    pub(crate) resend: HashSet<i64>,
    /// Each open stream's wake-up for credit that came back.
    streams: HashMap<ConsumerId, Arc<Notify>>,
}

impl Queues {
    pub(crate) fn new() -> Self {
        Queues {
            // Nonzero, so that handles of the old format (no epoch) are stale.
            epoch: rand::rng().random_range(1..=u32::MAX),
            apps: Mutex::new(HashMap::new()),
            next_consumer: std::sync::atomic::AtomicU64::new(1),
        }
    }

    pub(crate) fn new_consumer(&self) -> leases::ConsumerId {
        self.next_consumer
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn apps(&self) -> MutexGuard<'_, HashMap<AppId, Arc<AppQueue>>> {
        self.apps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The app's queue, created (with its config read) on first use.
    pub(crate) async fn get(&self, store: &dyn Store, app: AppId) -> Result<Arc<AppQueue>> {
        if let Some(q) = self.apps().get(&app) {
            return Ok(Arc::clone(q));
        }
        let config = store.event_config(app).await?;
        let q = Arc::new(AppQueue {
            app,
            state: Mutex::new(QueueState {
                leases: Leases::new(self.epoch),
                config,
                loaded_upto: 0,
                exhausted: false,
                commits: 0,
                resend: HashSet::new(),
                streams: HashMap::new(),
            }),
            loading: tokio::sync::Mutex::new(()),
            signal: watch::Sender::new(0),
        });
        Ok(Arc::clone(self.apps().entry(app).or_insert(q)))
    }

    pub(crate) fn loaded(&self) -> Vec<Arc<AppQueue>> {
        self.apps().values().cloned().collect()
    }

    /// Events of `app` were committed.
    pub(crate) fn committed(&self, app: AppId) {
        let q = self.apps().get(&app).cloned();
        if let Some(q) = q {
            q.committed();
        }
    }

    /// Events of any app may have been committed (task recovery).
    pub(crate) fn committed_any(&self) {
        for q in self.loaded() {
            q.committed();
        }
    }
}

impl AppQueue {
    pub(crate) fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.signal.subscribe()
    }

    pub(crate) fn wake(&self) {
        self.signal.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A stream opens: `credit_back` will wake it through this.
    pub(crate) fn add_stream(&self, consumer: ConsumerId) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        self.lock().streams.insert(consumer, Arc::clone(&notify));
        notify
    }

    pub(crate) fn remove_stream(&self, consumer: ConsumerId) {
        self.lock().streams.remove(&consumer);
    }

    /// Every stream may have credit back (retention took leased events).
    pub(crate) fn credit_back_all(&self) {
        for notify in self.lock().streams.values() {
            notify.notify_one();
        }
    }

    /// These streams' credit came back (`Verdicts::credited`).
    pub(crate) fn credit_back(&self, consumers: &[ConsumerId]) {
        if consumers.is_empty() {
            return;
        }
        let s = self.lock();
        for c in consumers {
            if let Some(notify) = s.streams.get(c) {
                // Stored if the stream is not waiting yet, so not lost.
                notify.notify_one();
            }
        }
    }

    /// New (or redriven) events are in the store.
    pub(crate) fn committed(&self) {
        {
            let mut s = self.lock();
            s.exhausted = false;
            s.commits += 1;
        }
        self.wake();
    }

    /// Loads the next unsettled events from the store when few are due.
    pub(crate) async fn refill(&self, store: &dyn Store) -> Result<()> {
        if !self.lock().wants_more() {
            return Ok(());
        }
        let _one_loader = self.loading.lock().await;
        let (after, limit, commits) = {
            let s = self.lock();
            if !s.wants_more() {
                return Ok(());
            }
            let room = WINDOW.saturating_sub(s.leases.len()).min(LOAD_BATCH);
            (s.loaded_upto, room, s.commits)
        };
        let batch = store.load_events(self.app, after, limit as u32).await?;
        let mut s = self.lock();
        if batch.len() < limit && s.commits == commits {
            s.exhausted = true;
        }
        for loaded in batch {
            s.loaded_upto = s.loaded_upto.max(loaded.seq);
            s.leases.insert(loaded);
        }
        Ok(())
    }
}

impl QueueState {
    /// After events left the queue (`Leases::settled` said whether that
    /// made news): waiters need waking if it did, or if the window may now
    /// be refilled from the store.
    pub(crate) fn worth_waking(&self, news: bool) -> bool {
        news || self.wants_more()
    }

    fn wants_more(&self) -> bool {
        !self.exhausted && self.leases.due_len() < LOW_WATER && self.leases.len() < WINDOW
    }
}

//! One app's queue: the window of its oldest unsettled events, held in
//! [`Leases`], refilled from the store in seq order, with the wake-ups of
//! the consumers that wait on it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::leases::{ConsumerId, Leases};
use crate::error::Result;
use crate::events::EventConfig;
use crate::ids::AppId;
use crate::store::Store;
use crate::time;

/// Loaded events per app at most; beyond it, newer events wait in the store
/// until older ones are settled.
const WINDOW: usize = 65_536;
/// Refill when fewer events than this are due. Small batches keep the
/// window (and the memory it takes) small: settled events free the memory
/// that the next batch reuses.
const LOW_WATER: usize = 1_024;
const LOAD_BATCH: usize = 1_024;

pub(super) struct AppQueue {
    pub(super) app: AppId,
    state: Mutex<Window>,
    /// One loader at a time; also held by operations that must not race a
    /// load (revive, retention, exact counts).
    pub(super) loading: tokio::sync::Mutex<()>,
    /// One config change at a time: each reads, merges and writes whole.
    pub(super) config_writes: tokio::sync::Mutex<()>,
    /// Bumped whenever events may have become deliverable. Streams without
    /// credit do not listen: a confirm wakes only the stream it credits
    /// (`credit_back`), not every consumer of the app.
    signal: watch::Sender<u64>,
}

pub(super) struct Window {
    pub(super) leases: Leases,
    /// The app's config as last written (the store's copy is read once;
    /// over a shared store, again when older than a second).
    pub(super) config: EventConfig,
    config_read: Instant,
    /// Every unsettled event with seq ≤ this is in `leases`.
    pub(super) loaded_upto: i64,
    /// The store had nothing beyond `loaded_upto` at the last load…
    exhausted: bool,
    /// …unless new events were committed since (compared across a load).
    commits: u64,
    /// Events named by ResendEvents: the callback worker sends them without
    /// waiting for their planned retry.
    pub(super) resend: HashSet<i64>,
    /// Each open stream's wake-up for credit that came back.
    streams: HashMap<ConsumerId, Arc<Notify>>,
}

impl AppQueue {
    pub(super) fn new(app: AppId, epoch: u32, config: EventConfig) -> AppQueue {
        AppQueue {
            app,
            state: Mutex::new(Window {
                leases: Leases::new(epoch),
                config,
                config_read: Instant::now(),
                loaded_upto: 0,
                exhausted: false,
                commits: 0,
                resend: HashSet::new(),
                streams: HashMap::new(),
            }),
            loading: tokio::sync::Mutex::new(()),
            config_writes: tokio::sync::Mutex::new(()),
            signal: watch::Sender::new(0),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Window> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.signal.subscribe()
    }

    pub(super) fn wake(&self) {
        self.signal.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// The config, if it was read within `fresh`.
    pub(super) fn config_if_fresh(&self, fresh: std::time::Duration) -> Option<EventConfig> {
        let s = self.lock();
        (s.config_read.elapsed() < fresh).then(|| s.config.clone())
    }

    pub(super) fn set_config(&self, config: EventConfig) {
        let mut s = self.lock();
        s.config = config;
        s.config_read = Instant::now();
    }

    /// A stream opens: `credit_back` will wake it through this.
    pub(super) fn add_stream(&self, consumer: ConsumerId) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        self.lock().streams.insert(consumer, Arc::clone(&notify));
        notify
    }

    pub(super) fn remove_stream(&self, consumer: ConsumerId) {
        self.lock().streams.remove(&consumer);
    }

    /// Every stream may have credit back (retention took leased events).
    pub(super) fn credit_back_all(&self) {
        for notify in self.lock().streams.values() {
            notify.notify_one();
        }
    }

    /// These streams' credit came back (`Verdicts::credited`).
    pub(super) fn credit_back(&self, consumers: &[ConsumerId]) {
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

    /// New (or revived) events are in the store.
    pub(super) fn committed(&self) {
        {
            let mut s = self.lock();
            s.exhausted = false;
            s.commits += 1;
        }
        self.wake();
    }

    /// When something in the queue changes by itself (a delay or lease ends).
    pub(super) fn next_change(&self) -> Option<Instant> {
        self.lock().leases.next_change().map(instant_at)
    }

    /// Loads the next unsettled events from the store when few are due.
    pub(super) async fn refill(&self, store: &dyn Store) -> Result<()> {
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

impl Window {
    /// After events left the queue (`Leases::settled` said whether that
    /// made news): waiters need waking if it did, or if the window may now
    /// be refilled from the store.
    pub(super) fn worth_waking(&self, news: bool) -> bool {
        news || self.wants_more()
    }

    fn wants_more(&self) -> bool {
        !self.exhausted && self.leases.due_len() < LOW_WATER && self.leases.len() < WINDOW
    }
}

/// The tokio instant just past a wall-clock time.
pub(super) fn instant_at(at: time::Timestamp) -> Instant {
    let wait = (at - time::now())
        .to_std()
        .unwrap_or(std::time::Duration::ZERO);
    Instant::now() + wait + std::time::Duration::from_millis(1)
}

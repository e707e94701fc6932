//! PUSH mode: a worker per app POSTs each event to the app's
//! notification_url. It is one more consumer of the app's queue, so leases,
//! per-task order, the dead-letter list and redrive work as in PULL mode.
//!
//! Every attempt is logged durably, with the time the next one is due; a
//! worker that meets an event whose last attempt failed waits until then.
//! So a restart keeps the retry schedule: the next attempt comes when it
//! was due, once. A delivered event is confirmed, and an event given up on
//! (the schedule ran out, or the receiver answered 410 Gone) is
//! dead-lettered, each in the same transaction as its attempt's log entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::breaker::{Breaker, Circuit, Gate};
use super::schedule::delay_before;
use super::sender::{Callback, CallbackSender, Outcome};
use super::{AttemptOutcome, CallbackAttempt};
use crate::error::Result;
use crate::events::{Delivery, DeliveryMode};
use crate::ids::AppId;
use crate::outbound::AddressPolicy;
use crate::queue::{Consumer, Hub, TakeRules};
use crate::store::{Settled, Store};
use crate::time::{self, Timestamp};
use crate::vital::Vital;

/// Callbacks in flight at once, per app and per URL (apps that share a URL
/// share its limit).
const CONCURRENCY: u32 = 64;
/// How long an attempt waits for a slot of its URL before it gives its
/// event back (well within the lease margin).
const URL_SLOT_WAIT: Duration = Duration::from_secs(10);
/// A callback's lease outlasts its timeout by this much.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// After a store error the worker backs off this long.
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// A failing endpoint is logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The callback workers of every app in PUSH mode.
pub(crate) struct PushWorkers {
    shared: Arc<Shared>,
    workers: Mutex<HashMap<AppId, Running>>,
    /// Background work whose panic fails the engine.
    vital: Vital,
    tracker: TaskTracker,
    closing: CancellationToken,
}

/// What every app's worker uses.
struct Shared {
    hub: Arc<Hub>,
    store: Arc<dyn Store>,
    sender: CallbackSender,
    /// Slots per URL; an entry lives as long as someone holds it.
    urls: Mutex<HashMap<String, Weak<Semaphore>>>,
}

struct Running {
    stop: CancellationToken,
    endpoint: Arc<Endpoint>,
}

/// What the callback worker knows of an app's endpoint: its circuit, and
/// its last failure (shown by GetEventConfig, logged at most every
/// `LOG_EVERY` so that a dead endpoint does not flood the log).
struct Endpoint {
    breaker: Mutex<Breaker>,
    failures: Mutex<FailureLog>,
}

#[derive(Default)]
struct FailureLog {
    last: Option<(Timestamp, String)>,
    unlogged: u32,
    logged_at: Option<Instant>,
}

/// The endpoint as the callback worker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointHealth {
    pub circuit: CircuitState,
    pub consecutive_failures: u32,
    pub failing_since: Option<Timestamp>,
    /// The last failed attempt since this server started: when, and why
    /// (the HTTP status or the error).
    pub last_failure: Option<(Timestamp, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Endpoint {
    fn new() -> Endpoint {
        Endpoint {
            breaker: Mutex::new(Breaker::new(None)),
            failures: Mutex::new(FailureLog::default()),
        }
    }

    fn failed(&self, app: AppId, url: &str, at: Timestamp, reason: String) {
        let mut f = lock(&self.failures);
        f.unlogged += 1;
        let due = f.logged_at.is_none_or(|t| t.elapsed() >= LOG_EVERY);
        if due {
            // The host only: a URL's path or query often carries a token.
            let host = url::Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            tracing::warn!(
                app = app.0,
                host,
                failures = f.unlogged,
                "callbacks failing: {reason}"
            );
            f.unlogged = 0;
            f.logged_at = Some(Instant::now());
        }
        f.last = Some((at, reason));
    }
}

impl PushWorkers {
    pub(crate) fn new(
        hub: Arc<Hub>,
        store: Arc<dyn Store>,
        policy: AddressPolicy,
        vital: Vital,
        tracker: TaskTracker,
        closing: CancellationToken,
    ) -> Result<PushWorkers> {
        Ok(PushWorkers {
            shared: Arc::new(Shared {
                hub,
                store,
                sender: CallbackSender::new(policy)?,
                urls: Mutex::new(HashMap::new()),
            }),
            workers: Mutex::new(HashMap::new()),
            vital,
            tracker,
            closing,
        })
    }

    /// Runs a callback worker for each of `push_apps` and for no other.
    pub(crate) fn sync_all(&self, push_apps: &[AppId]) {
        let running: Vec<AppId> = lock(&self.workers).keys().copied().collect();
        for app in running.into_iter().filter(|a| !push_apps.contains(a)) {
            self.sync(app, DeliveryMode::Pull);
        }
        for &app in push_apps {
            self.sync(app, DeliveryMode::Push);
        }
    }

    /// Starts or stops the app's callback worker to match its mode.
    pub(crate) fn sync(&self, app: AppId, mode: DeliveryMode) {
        let mut workers = lock(&self.workers);
        match mode {
            DeliveryMode::Push if !workers.contains_key(&app) => {
                let stop = self.closing.child_token();
                let endpoint = Arc::new(Endpoint::new());
                workers.insert(
                    app,
                    Running {
                        stop: stop.clone(),
                        endpoint: Arc::clone(&endpoint),
                    },
                );
                let shared = Arc::clone(&self.shared);
                self.vital.spawn(
                    &self.tracker,
                    "a callback worker",
                    run(shared, app, stop, endpoint),
                );
            }
            DeliveryMode::Pull => {
                if let Some(w) = workers.remove(&app) {
                    w.stop.cancel();
                }
            }
            DeliveryMode::Push => {}
        }
    }

    /// The app's endpoint health, while it is in PUSH mode.
    pub(crate) fn health(&self, app: AppId) -> Option<EndpointHealth> {
        let workers = lock(&self.workers);
        let endpoint = &workers.get(&app)?.endpoint;
        let b = lock(&endpoint.breaker).clone();
        let last_failure = lock(&endpoint.failures).last.clone();
        Some(EndpointHealth {
            circuit: match b.circuit() {
                Circuit::Closed => CircuitState::Closed,
                Circuit::Open { .. } => CircuitState::Open,
                Circuit::HalfOpen { .. } => CircuitState::HalfOpen,
            },
            consecutive_failures: b.failures(),
            failing_since: b.failing_since(),
            last_failure,
        })
    }

    /// A re-enabled endpoint starts with a clean slate.
    pub(crate) fn reset(&self, app: AppId) {
        if let Some(w) = lock(&self.workers).get(&app) {
            lock(&w.endpoint.breaker).succeeded();
        }
    }
}

impl Shared {
    /// The slots of one URL, shared by every app that calls it.
    fn url_slots(&self, url: &str) -> Arc<Semaphore> {
        let mut urls = lock(&self.urls);
        if let Some(slots) = urls.get(url).and_then(Weak::upgrade) {
            return slots;
        }
        urls.retain(|_, w| w.strong_count() > 0);
        let slots = Arc::new(Semaphore::new(CONCURRENCY as usize));
        urls.insert(url.to_string(), Arc::downgrade(&slots));
        slots
    }
}

/// One app's worker: the queue consumer it takes from, and its endpoint.
struct AppWorker {
    shared: Arc<Shared>,
    consumer: Consumer,
    endpoint: Arc<Endpoint>,
}

async fn run(shared: Arc<Shared>, app: AppId, stop: CancellationToken, endpoint: Arc<Endpoint>) {
    let consumer = loop {
        match shared.hub.consumer(app, false).await {
            Ok(c) => break c,
            Err(e) => tracing::error!(app = app.0, "callback worker: {e}"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(ERROR_PAUSE) => {}
        }
    };
    match shared.store.endpoint_failing_since(app).await {
        Ok(since) => *lock(&endpoint.breaker) = Breaker::new(since),
        Err(e) => tracing::error!(app = app.0, "callback worker: {e}"),
    }
    tracing::info!(app = app.0, "callback worker started");
    let worker = Arc::new(AppWorker {
        shared,
        consumer,
        endpoint,
    });
    let breaker = &worker.endpoint.breaker;
    let mut attempts = JoinSet::new();
    while !stop.is_cancelled() {
        while attempts.try_join_next().is_some() {}
        let mut changed = worker.consumer.changes();
        changed.borrow_and_update();
        let config = match worker.consumer.config().await {
            Ok(config) => config,
            Err(e) => {
                tracing::error!(app = app.0, "callback worker: {e}");
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(ERROR_PAUSE) => {}
                }
                continue;
            }
        };
        let rules = TakeRules {
            lease: config.callback_timeout + LEASE_MARGIN,
            // The retry schedule decides when to give up.
            max_deliveries: None,
        };
        let held = match worker.consumer.held().await {
            Ok(held) => held,
            Err(e) => {
                tracing::error!(app = app.0, "callback worker: {e}");
                CONCURRENCY
            }
        };
        let mut credit = CONCURRENCY.saturating_sub(held);
        let mut pause = None;
        let gate = if config.endpoint_disabled.is_some() || credit == 0 {
            Gate::Waiting
        } else {
            lock(breaker).gate(Instant::now())
        };
        match gate {
            Gate::Open => {}
            Gate::Probe => credit = 1,
            Gate::ClosedUntil(until) => {
                credit = 0;
                pause = Some(until);
            }
            Gate::Waiting => credit = 0,
        }
        if credit > 0 {
            match worker.consumer.take(credit, Some(rules)).await {
                Ok(got) if !got.is_empty() => {
                    for d in got {
                        attempts.spawn(Arc::clone(&worker).attempt(d));
                    }
                    continue;
                }
                Ok(_) => {
                    if gate == Gate::Probe {
                        lock(breaker).unprobe();
                    }
                }
                Err(e) => {
                    tracing::error!(app = app.0, "callback worker: {e}");
                    pause = Some(Instant::now() + ERROR_PAUSE);
                }
            }
        }
        let until = match pause {
            Some(until) => until,
            None => worker
                .consumer
                .next_change()
                .await
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
        };
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = changed.changed() => {}
            _ = tokio::time::sleep_until(until) => {}
            Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
        }
    }
    // The consumer (and with it the worker's leases) goes once no attempt
    // holds it any more.
    attempts.abort_all();
    while attempts.join_next().await.is_some() {}
    tracing::info!(app = app.0, "callback worker stopped");
}

impl AppWorker {
    /// One callback attempt of a leased event, and what follows from it.
    async fn attempt(self: Arc<Self>, d: Delivery) {
        let breaker = &self.endpoint.breaker;
        let app = self.consumer.app();
        let seq = d.handle.seq;
        let config = match self.consumer.config().await {
            Ok(config) => config,
            Err(e) => {
                tracing::error!(app = app.0, "callback worker: {e}");
                return self.consumer.give_back(d.handle, ERROR_PAUSE).await;
            }
        };
        let store = &self.shared.store;
        let last = match store.last_attempt(app, seq).await {
            Ok(last) => last,
            Err(e) => {
                tracing::error!(app = app.0, "callback attempt log: {e}");
                return self.consumer.give_back(d.handle, ERROR_PAUSE).await;
            }
        };
        let now = time::now();
        let previous = last.filter(|a| !a.is_final());
        let resend = self.consumer.resend_requested(seq);
        // Not due yet: a retry planned before a restart, or the schedule's
        // first delay.
        let due = match &previous {
            Some(a) => a.next_attempt,
            None => config
                .retry_schedule
                .first()
                .map(|first| d.event.event_time + *first),
        };
        if let Some(due) = due
            && due > now
            && !resend
        {
            let wait = (due - now).to_std().unwrap_or(Duration::ZERO);
            return self.consumer.give_back(d.handle, wait).await;
        }
        let number = previous.map_or(1, |a| a.attempt + 1);
        let secrets = match config.secrets.in_force(now) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(app = app.0, "signing secrets: {e}");
                return self.consumer.give_back(d.handle, ERROR_PAUSE).await;
            }
        };
        let signing: Vec<_> = secrets.iter().collect();
        let slots = self.shared.url_slots(&config.notification_url);
        let Ok(Ok(_slot)) = tokio::time::timeout(URL_SLOT_WAIT, slots.acquire()).await else {
            // Other apps keep this URL busy: try again shortly.
            return self.consumer.give_back(d.handle, ERROR_PAUSE).await;
        };
        let sent = self
            .shared
            .sender
            .send(&Callback {
                url: &config.notification_url,
                event_id: &d.event.event_id,
                body: &d.event.content_json,
                secrets: &signing,
                timeout: config.callback_timeout,
                timestamp: now.timestamp(),
            })
            .await;
        let answered = sent.http_status.is_some_and(|s| s < 500 && s != 429);
        if answered {
            lock(breaker).succeeded();
        } else {
            let since = {
                let mut b = lock(breaker);
                b.failed(Instant::now(), now);
                b.failing_since()
            };
            if since.is_some_and(|t| {
                (time::now() - t)
                    .to_std()
                    .is_ok_and(|d| d > config.disable_after)
            }) {
                self.disable_endpoint().await;
            }
        }
        let mut record = CallbackAttempt {
            event_id: d.event.event_id.clone(),
            attempt: number,
            time: now,
            url: config.notification_url.clone(),
            http_status: sent.http_status,
            error: sent.error,
            duration: sent.elapsed,
            response: sent.response,
            outcome: AttemptOutcome::Failed,
            next_attempt: None,
        };
        if !matches!(sent.outcome, Outcome::Delivered) {
            let reason = match (record.error.as_str(), record.http_status) {
                ("", Some(status)) => format!("HTTP {status}"),
                ("", None) => "failed".to_owned(),
                (error, _) => error.to_owned(),
            };
            self.endpoint
                .failed(app, &config.notification_url, now, reason);
        }
        let settle = match sent.outcome {
            Outcome::Delivered => {
                record.outcome = AttemptOutcome::Delivered;
                Settled::Confirmed
            }
            Outcome::Gone => {
                record.outcome = AttemptOutcome::Gone;
                Settled::DeadLettered
            }
            Outcome::Failed { retry_after } => {
                match delay_before(&config.retry_schedule, number as usize + 1, retry_after) {
                    Some(wait) => {
                        record.next_attempt = Some(time::after(time::now(), wait));
                        if let Err(e) = store.record_attempt(app, seq, record, None).await {
                            tracing::error!(app = app.0, "callback attempt log: {e}");
                        }
                        return self.consumer.give_back(d.handle, wait).await;
                    }
                    None => Settled::DeadLettered,
                }
            }
        };
        // Settled together with its last attempt's log entry.
        let logged = self
            .consumer
            .settle_with(d.handle, settle, |settle| {
                store.record_attempt(app, seq, record, settle)
            })
            .await;
        if let Err(e) = logged {
            tracing::error!(app = app.0, "recording a callback attempt failed: {e}");
        }
    }

    /// After failing for `disable_after`, the endpoint gets no more
    /// callbacks until it is enabled again.
    async fn disable_endpoint(&self) {
        let app = self.consumer.app();
        let changed = self
            .shared
            .hub
            .modify_config(app, |mut config| async move {
                if config.endpoint_disabled.is_none() {
                    config.endpoint_disabled = Some(time::now());
                }
                Ok(config)
            })
            .await;
        match changed {
            Ok((before, after)) if before != after => tracing::warn!(
                app = app.0,
                url = after.notification_url,
                "callback endpoint disabled after failing too long"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(app = app.0, "disabling the endpoint: {e}"),
        }
    }
}

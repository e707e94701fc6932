//! The hub over leases kept in a shared store (`store/leases.rs`): the
//! same vocabulary as the in-memory path, each verb one call to the store.
//! The app queues are kept for their wake-ups, their streams' credit
//! signals and a short-lived copy of the app's config; the window of
//! loaded events is not used.
//!
//! Wake-ups come from this process and, through the store, from the
//! others; none is needed for correctness: a waiting consumer looks again
//! at least every `RECHECK`.

use std::time::Duration;

use tokio::time::Instant;

use super::app_queue::{AppQueue, instant_at};
use super::hub::Hub;
use super::leases::{ConsumerId, TakeRules};
use crate::error::Result;
use crate::events::{Delivery, EventConfig, backoff};
use crate::ids::AppId;
use crate::store::leases::{LeaseRequest, SharedLeases, Wake};
use crate::time;

/// The longest a waiting consumer trusts that no wake-up was lost.
pub(super) const RECHECK: Duration = Duration::from_secs(1);
/// How long a copy of an app's config is used before it is read again
/// (another node may have changed it).
const CONFIG_FRESH: Duration = Duration::from_secs(1);

/// The backoff after the n-th delivery, for n = 1, 2, …: the store picks
/// by the event's delivery count.
pub(super) fn backoffs() -> Vec<Duration> {
    (1..=12).map(backoff).collect()
}

/// A consumer's name across processes.
pub(super) fn consumer_name(shared: &dyn SharedLeases, id: ConsumerId) -> String {
    format!("{}:{id}", shared.node())
}

/// The consumer number of `name` if it is one of this process's.
fn local_consumer(shared: &dyn SharedLeases, name: &str) -> Option<ConsumerId> {
    let (node, id) = name.rsplit_once(':')?;
    (node == shared.node()).then(|| id.parse().ok()).flatten()
}

impl Hub {
    /// A wake-up from this process or another.
    pub(super) fn woken(&self, shared: &dyn SharedLeases, wake: &Wake) {
        match wake {
            Wake::App(app) => {
                if let Some(q) = self.loaded(*app) {
                    q.wake();
                }
            }
            Wake::Consumer(name) => {
                if let Some(id) = local_consumer(shared, name) {
                    for q in self.all_loaded() {
                        q.credit_back(&[id]);
                    }
                }
            }
            Wake::All => {
                for q in self.all_loaded() {
                    q.credit_back_all();
                    q.wake();
                }
            }
        }
    }

    /// The app's config, read again when the copy is older than
    /// `CONFIG_FRESH`.
    pub(super) async fn fresh_config(&self, queue: &AppQueue) -> Result<EventConfig> {
        if let Some(config) = queue.config_if_fresh(CONFIG_FRESH) {
            return Ok(config);
        }
        let config = self.store.event_config(queue.app).await?;
        queue.set_config(config.clone());
        Ok(config)
    }

    pub(super) async fn shared_take(
        &self,
        shared: &dyn SharedLeases,
        queue: &AppQueue,
        max: u32,
        consumer: Option<ConsumerId>,
        rules: Option<TakeRules>,
    ) -> Result<Vec<Delivery>> {
        let rules = match rules {
            Some(rules) => rules,
            None => (&self.fresh_config(queue).await?).into(),
        };
        let name = consumer.map(|id| consumer_name(shared, id));
        let backoffs = backoffs();
        let leased = shared
            .lease(LeaseRequest {
                app: queue.app,
                consumer: name.as_deref(),
                max,
                lease: rules.lease,
                max_deliveries: rules.max_deliveries,
                backoffs: &backoffs,
                now: time::now(),
            })
            .await?;
        if leased.dead > 0 {
            tracing::warn!(
                app = queue.app.0,
                n = leased.dead,
                "events dead-lettered after their last delivery"
            );
        }
        let mut out = Vec::with_capacity(leased.deliveries.len());
        {
            let mut s = queue.lock();
            for (delivery, resend) in leased.deliveries {
                if resend {
                    s.resend.insert(delivery.handle.seq);
                }
                out.push(delivery);
            }
        }
        Ok(out)
    }

    /// When something may change for a consumer waiting on `queue`: an
    /// event becomes deliverable, or (for `consumer`) a lease of its runs
    /// out; at the latest after `RECHECK`.
    pub(super) async fn shared_next_change(
        &self,
        shared: &dyn SharedLeases,
        app: AppId,
        consumer: Option<ConsumerId>,
    ) -> Instant {
        let recheck = Instant::now() + RECHECK;
        let name = consumer.map(|id| consumer_name(shared, id));
        match shared.next_change(app, name.as_deref(), time::now()).await {
            Ok(Some(at)) => instant_at(at).min(recheck),
            Ok(None) => recheck,
            Err(e) => {
                tracing::debug!(app = app.0, "next change of the queue: {e}");
                recheck
            }
        }
    }
}

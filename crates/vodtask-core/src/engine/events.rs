//! The event API: arguments checked here, then handed to the queue hub
//! (delivery) or the store (listings).

use std::time::Duration;

use super::Engine;
use crate::callbacks::secrets::Secrets;
use crate::callbacks::{AttemptsOf, CallbackAttempt, EndpointHealth};
use crate::error::{Error, Result};
use crate::events::{
    Delivery, DeliveryMode, EventConfig, EventConfigPatch, HandleResult, QueueState,
};
use crate::ids::AppId;
use crate::queue::LeaseChange;
use crate::store::EventPage;
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
        self.inner.hub.pull(app, max, wait).await
    }

    /// Confirms; returns once the confirmations are durable.
    pub async fn confirm_events(
        &self,
        app: AppId,
        handles: Vec<String>,
    ) -> Result<Vec<HandleResult>> {
        check_handles(&handles)?;
        self.inner.hub.confirm(app, &handles).await
    }

    pub async fn extend_events(
        &self,
        app: AppId,
        handles: Vec<String>,
        seconds: u32,
    ) -> Result<Vec<HandleResult>> {
        check_handles(&handles)?;
        let by = limits::EXTEND.seconds(i64::from(seconds))?;
        self.inner
            .hub
            .change(app, &handles, LeaseChange::Extend(by))
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
        self.inner
            .hub
            .change(app, &handles, LeaseChange::Nack(delay))
            .await
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
        self.inner.hub.redrive(app, event_ids).await
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
        self.inner.hub.resend(app, event_ids).await
    }

    /// Exact counts of the app's queue.
    pub async fn events_state(&self, app: AppId) -> Result<QueueState> {
        self.inner.hub.state(app).await
    }

    /// The app's event config; an app's first look makes its signing secret.
    pub async fn event_config(&self, app: AppId) -> Result<EventConfig> {
        let config = self.inner.hub.config(app).await?;
        if !config.secrets.is_empty() {
            return Ok(config);
        }
        self.change_config(app, |mut config| async move {
            if config.secrets.is_empty() {
                config.secrets = Secrets::generate();
            }
            Ok(config)
        })
        .await
    }

    /// ModifyEventConfig: the patch applied to the current config, checked
    /// and written as one operation.
    pub async fn modify_event_config(
        &self,
        app: AppId,
        patch: EventConfigPatch,
    ) -> Result<EventConfig> {
        let policy = &self.inner.config.outbound_policy;
        self.change_config(app, |current| async move {
            let mut config = patch.apply(current, time::now())?;
            // An app left in PUSH mode with a URL that can never be called
            // would wait for callbacks in silence.
            if config.mode == DeliveryMode::Push {
                crate::outbound::check_reachable(
                    policy,
                    "notification_url",
                    &config.notification_url,
                )
                .await?;
            }
            if config.secrets.is_empty() {
                config.secrets = Secrets::generate();
            }
            Ok(config)
        })
        .await
    }

    /// A new signing secret; the old one keeps signing for `overlap`.
    pub async fn rotate_signing_secret(
        &self,
        app: AppId,
        overlap: Option<Duration>,
    ) -> Result<EventConfig> {
        let overlap = overlap.unwrap_or(crate::callbacks::secrets::DEFAULT_OVERLAP);
        limits::SECRET_OVERLAP.check_duration(overlap)?;
        self.change_config(app, |mut config| async move {
            if config.secrets.is_empty() {
                config.secrets = Secrets::generate();
            }
            config.secrets.rotate(time::after(time::now(), overlap));
            Ok(config)
        })
        .await
    }

    /// The callback attempts of an event, or of a task's events.
    pub async fn callback_attempts(
        &self,
        app: AppId,
        of: AttemptsOf,
    ) -> Result<Vec<CallbackAttempt>> {
        self.inner.store.callback_attempts(app, of).await
    }

    /// The app's endpoint health, while it is in PUSH mode.
    pub fn endpoint_health(&self, app: AppId) -> Option<EndpointHealth> {
        self.inner.push.health(app)
    }

    /// A config change through the hub, and the callback worker made to
    /// match it.
    async fn change_config<F, Fut>(&self, app: AppId, change: F) -> Result<EventConfig>
    where
        F: FnOnce(EventConfig) -> Fut,
        Fut: std::future::Future<Output = Result<EventConfig>>,
    {
        let (before, after) = self.inner.hub.modify_config(app, change).await?;
        if before.endpoint_disabled.is_some() && after.endpoint_disabled.is_none() {
            self.inner.push.reset(app);
        }
        self.inner.push.sync(app, after.mode);
        Ok(after)
    }
}

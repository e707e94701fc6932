//! An app's event settings, and ModifyEventConfig's change to them: every
//! value checked against its bound in `crate::limits`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::EventType;
use crate::callbacks::secrets::Secrets;
use crate::error::{Error, Result};
use crate::limits;
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryMode {
    /// The app pulls (PullEvents) or streams (SubscribeEvents).
    Pull,
    /// vodtask POSTs each event to notification_url (HTTP callbacks).
    Push,
}

/// Per-app event settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventConfig {
    pub mode: DeliveryMode,
    pub notification_url: String,
    pub disabled_types: Vec<EventType>,
    pub visibility_timeout: Duration,
    pub max_deliveries: u32,
    /// Unconfirmed events are kept at least this long.
    pub retention: Duration,
    /// PUSH: how long one callback may take.
    #[serde(default = "default_callback_timeout")]
    pub callback_timeout: Duration,
    /// PUSH: the delay before each attempt, the first included.
    #[serde(default = "crate::callbacks::schedule::default_schedule")]
    pub retry_schedule: Vec<Duration>,
    /// PUSH: the secrets callbacks are signed with.
    #[serde(default)]
    pub secrets: Secrets,
    /// PUSH: an endpoint failing this long without a success is disabled.
    #[serde(default = "default_disable_after")]
    pub disable_after: Duration,
    /// PUSH: set when the endpoint was disabled; no callbacks go out until
    /// it is enabled again (ModifyEventConfig).
    #[serde(default)]
    pub endpoint_disabled: Option<Timestamp>,
}

fn default_disable_after() -> Duration {
    Duration::from_secs(5 * 24 * 3600)
}

fn default_callback_timeout() -> Duration {
    Duration::from_secs(5)
}

/// The longest lease an extend can ask for.
pub const MAX_VISIBILITY_TIMEOUT: Duration =
    Duration::from_secs(limits::VISIBILITY_TIMEOUT.max as u64);

impl Default for EventConfig {
    fn default() -> Self {
        EventConfig {
            mode: DeliveryMode::Pull,
            notification_url: String::new(),
            disabled_types: Vec::new(),
            visibility_timeout: Duration::from_secs(30),
            max_deliveries: 10,
            retention: Duration::from_secs(4 * 24 * 3600),
            callback_timeout: default_callback_timeout(),
            retry_schedule: crate::callbacks::schedule::default_schedule(),
            secrets: Secrets::default(),
            disable_after: default_disable_after(),
            endpoint_disabled: None,
        }
    }
}

impl EventConfig {
    pub fn enabled(&self, t: EventType) -> bool {
        !self.disabled_types.contains(&t)
    }

    pub fn validate(&self) -> Result<()> {
        limits::VISIBILITY_TIMEOUT.check_duration(self.visibility_timeout)?;
        limits::MAX_DELIVERIES.check(i64::from(self.max_deliveries))?;
        limits::RETENTION.check_duration(self.retention)?;
        if self.notification_url.len() > limits::MAX_URL_BYTES {
            return Err(Error::invalid(
                "notification_url",
                format!("must be at most {} bytes", limits::MAX_URL_BYTES),
            ));
        }
        if !self.notification_url.is_empty() {
            crate::outbound::validate_url("notification_url", &self.notification_url)?;
        }
        if self.mode == DeliveryMode::Push && self.notification_url.is_empty() {
            return Err(Error::invalid(
                "notification_url",
                "is required in PUSH mode",
            ));
        }
        limits::CALLBACK_TIMEOUT.check_duration(self.callback_timeout)?;
        use crate::callbacks::schedule::MAX_ATTEMPTS;
        if self.retry_schedule.is_empty() || self.retry_schedule.len() > MAX_ATTEMPTS {
            return Err(Error::invalid(
                "retry_schedule_seconds",
                format!("must hold 1..{MAX_ATTEMPTS} delays"),
            ));
        }
        limits::DISABLE_AFTER.check_duration(self.disable_after)?;
        for delay in &self.retry_schedule {
            limits::RETRY_DELAY.check_duration(*delay)?;
        }
        Ok(())
    }
}

/// A change to an app's event settings (ModifyEventConfig): None (or an
/// empty list) leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct EventConfigPatch {
    pub mode: Option<DeliveryMode>,
    pub notification_url: Option<String>,
    /// Event types by name (`EventType::as_str`), turned on or off.
    pub event_types: Vec<(String, bool)>,
    pub visibility_timeout_seconds: Option<i64>,
    pub max_deliveries: Option<i64>,
    pub retention_seconds: Option<i64>,
    pub callback_timeout_seconds: Option<i64>,
    pub disable_after_seconds: Option<i64>,
    /// Some(true) enables a disabled endpoint; Some(false) disables it.
    pub endpoint_enabled: Option<bool>,
    pub retry_schedule_seconds: Vec<i64>,
}

impl EventConfigPatch {
    /// `config` with the patch applied, each value and then the whole
    /// checked; the error names the first field that breaks a rule.
    pub fn apply(self, mut config: EventConfig, now: Timestamp) -> Result<EventConfig> {
        let c = &mut config;
        if let Some(mode) = self.mode {
            c.mode = mode;
        }
        if let Some(url) = self.notification_url {
            c.notification_url = url;
        }
        for (name, on) in &self.event_types {
            let t = EventType::parse(&format!("event_types[{name:?}]"), name)?;
            c.disabled_types.retain(|d| *d != t);
            if !on {
                c.disabled_types.push(t);
            }
        }
        if let Some(v) = self.visibility_timeout_seconds {
            c.visibility_timeout = limits::VISIBILITY_TIMEOUT.seconds(v)?;
        }
        if let Some(v) = self.max_deliveries {
            c.max_deliveries = limits::MAX_DELIVERIES.check_u32(v)?;
        }
        if let Some(v) = self.retention_seconds {
            c.retention = limits::RETENTION.seconds(v)?;
        }
        if let Some(v) = self.callback_timeout_seconds {
            c.callback_timeout = limits::CALLBACK_TIMEOUT.seconds(v)?;
        }
        if let Some(v) = self.disable_after_seconds {
            c.disable_after = limits::DISABLE_AFTER.seconds(v)?;
        }
        match self.endpoint_enabled {
            Some(true) => c.endpoint_disabled = None,
            Some(false) if c.endpoint_disabled.is_none() => c.endpoint_disabled = Some(now),
            _ => {}
        }
        if !self.retry_schedule_seconds.is_empty() {
            c.retry_schedule = self
                .retry_schedule_seconds
                .into_iter()
                .map(|s| limits::RETRY_DELAY.seconds(s))
                .collect::<Result<_>>()?;
        }
        config.validate()?;
        Ok(config)
    }
}

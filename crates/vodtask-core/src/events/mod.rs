//! Event notification: every task ending and every upload becomes an event,
//! written in the same transaction as the change (an outbox), and delivered
//! through a per-app reliable queue with leases, per-task order, backoff and
//! a dead-letter list.

pub mod envelope;
mod handle;

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

pub use handle::MsgHandle;

use crate::callbacks::secrets::Secrets;

use crate::error::{Error, Result};
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    NewFileUpload,
    TranscodeComplete,
    CreateSnapshotByTimeOffsetComplete,
    PullComplete,
    ConcatComplete,
    ClipComplete,
    CreateImageSpriteComplete,
    FileDeleted,
    ProcedureStateChanged,
}

impl EventType {
    pub const ALL: [EventType; 9] = [
        EventType::NewFileUpload,
        EventType::TranscodeComplete,
        EventType::CreateSnapshotByTimeOffsetComplete,
        EventType::PullComplete,
        EventType::ConcatComplete,
        EventType::ClipComplete,
        EventType::CreateImageSpriteComplete,
        EventType::FileDeleted,
        EventType::ProcedureStateChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::NewFileUpload => "NewFileUpload",
            EventType::TranscodeComplete => "TranscodeComplete",
            EventType::CreateSnapshotByTimeOffsetComplete => "CreateSnapshotByTimeOffsetComplete",
            EventType::PullComplete => "PullComplete",
            EventType::ConcatComplete => "ConcatComplete",
            EventType::ClipComplete => "ClipComplete",
            EventType::CreateImageSpriteComplete => "CreateImageSpriteComplete",
            EventType::FileDeleted => "FileDeleted",
            EventType::ProcedureStateChanged => "ProcedureStateChanged",
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == raw)
            .ok_or_else(|| Error::invalid(field, format!("unknown event type {raw:?}")))
    }
}

/// A stored event as consumers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub event_type: String,
    pub task_id: String,
    pub event_time: Timestamp,
    pub task_sequence: i64,
    /// The envelope, exactly as every delivery path sends it.
    pub content_json: String,
    pub deliveries: u32,
}

/// One delivery of an event; the handle is valid for this delivery only.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub handle: MsgHandle,
    pub event: Event,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleResult {
    /// The event is settled (confirmed) or its lease changed (extend, nack).
    Done,
    AlreadyConfirmed,
    /// The lease ran out (or the event was redelivered): this handle is dead.
    Expired,
    Unknown,
}

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
    Duration::from_secs(crate::limits::VISIBILITY_TIMEOUT.max as u64);

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
        use crate::limits;
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

/// Exact counts of an app's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueState {
    pub ready: i64,
    pub in_flight: i64,
    /// Nacked or expired events waiting out their backoff, and events held
    /// back behind an earlier event of the same task.
    pub delayed: i64,
    pub dead_lettered: i64,
    pub oldest_unconfirmed: Option<Timestamp>,
}

/// Backoff before the next delivery of an event that was nacked without a
/// delay or whose lease expired: 1 s doubling per delivery, capped at 10 min,
/// with ±20 % jitter so that failing consumers do not move in lockstep.
pub fn backoff(deliveries: u32) -> Duration {
    let base = 1u64 << deliveries.saturating_sub(1).min(10);
    let secs = base.min(600) as f64;
    let jitter = rand::rng().random_range(0.8..1.2);
    Duration::from_secs_f64(secs * jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) < Duration::from_secs(2));
        assert!(backoff(4) >= Duration::from_secs_f64(8.0 * 0.8));
        assert!(backoff(50) <= Duration::from_secs(720));
    }

    #[test]
    fn event_types_parse() {
        assert_eq!(
            EventType::parse("f", "TranscodeComplete").unwrap(),
            EventType::TranscodeComplete
        );
        assert!(EventType::parse("f", "Nope").is_err());
    }
}

//! Event notification: every task ending and every upload becomes an event,
//! written in the same transaction as the change (an outbox), and delivered
//! through a per-app reliable queue with leases, per-task order, backoff and
//! a dead-letter list.

mod config;
pub mod envelope;
mod handle;

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

pub use config::{DeliveryMode, EventConfig, EventConfigPatch, MAX_VISIBILITY_TIMEOUT};
pub use handle::MsgHandle;

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

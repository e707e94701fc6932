//! Timestamps: UTC, stored as microseconds since the Unix epoch.

use chrono::{DateTime, TimeZone, Utc};

pub type Timestamp = DateTime<Utc>;

pub fn now() -> Timestamp {
    Utc::now()
}

pub fn to_micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(us: i64) -> Timestamp {
    Utc.timestamp_micros(us)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The UTC hour a timestamp falls in, as hours since the epoch: the bucket of
/// the task counters.
pub fn hour_of(t: Timestamp) -> i64 {
    t.timestamp().div_euclid(3600)
}

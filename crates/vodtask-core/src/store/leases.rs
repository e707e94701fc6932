//! Event leases kept in the rows of a store that several processes share
//! (PostgreSQL): the lease port's second implementation, beside the
//! in-memory one of `queue/leases.rs`, so that an event pulled through one
//! node can be confirmed through another, and a node that dies leaves
//! nothing but leases that run out. The queue hub uses it when the store
//! offers it (`Store::shared_leases`).
//!
//! Each method is one transaction in the store and keeps the contract at
//! the top of `queue/leases.rs`, per event: a token per delivery (a handle names
//! `(seq, token)`; every node checks it against the row), visible-at (when
//! the event may be delivered next; while leased, when it may be delivered
//! again: the lease's end plus a backoff), the delivery count, the consumer
//! holding the lease, and head of line per order key (an event is
//! deliverable only when no earlier event of its key is unsettled and no
//! other event of its key is out).
//!
//! Consumers are named across processes: `<node>:<number>`.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::events::{Delivery, HandleResult, MsgHandle, QueueState};
use crate::ids::AppId;
use crate::time::Timestamp;

/// What a confirm, extend or nack does to a held lease.
#[derive(Debug, Clone, Copy)]
pub enum LeaseChange {
    /// The event is done with (confirmed, or dead-lettered by the PUSH
    /// worker): it settles, as the caller then writes.
    Settle,
    /// To this long from now (capped).
    Extend(Duration),
    /// Due again after the delay, or after the backoff.
    Nack(Option<Duration>),
}

/// How `lease` hands out events.
#[derive(Debug, Clone)]
pub struct LeaseRequest<'a> {
    pub app: AppId,
    /// None: a pull, whose leases belong to no consumer.
    pub consumer: Option<&'a str>,
    pub max: u32,
    /// Each lease lasts this long.
    pub lease: Duration,
    /// Events delivered this often go to the dead-letter list instead.
    pub max_deliveries: Option<u32>,
    /// The backoff after the n-th delivery's lease ran out is
    /// `backoffs[min(n, len) - 1]`.
    pub backoffs: &'a [Duration],
    pub now: Timestamp,
}

/// What one `lease` call did.
#[derive(Debug, Default)]
pub struct Leased {
    /// With whether ResendEvents asked for the event since its last lease.
    pub deliveries: Vec<(Delivery, bool)>,
    /// Events that used up their deliveries, now dead-lettered.
    pub dead: u64,
}

/// What became of the handles of one `change` call.
#[derive(Debug, Default)]
pub struct Changed {
    /// One per handle.
    pub results: Vec<HandleResult>,
    /// Consumers whose credit came back (each once).
    pub credited: Vec<String>,
    /// Whether an event became deliverable (the next of a settled event's
    /// key, a nacked event due now).
    pub news: bool,
}

/// Told of an app whose events may have become deliverable, or of a
/// consumer whose credit came back, by whichever process caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    App(AppId),
    Consumer(String),
    /// The notifications may have been missed (the listening connection
    /// was lost): every consumer looks again.
    All,
}

pub type WakeListener = std::sync::Arc<dyn Fn(&Wake) + Send + Sync>;

#[async_trait]
pub trait SharedLeases: Send + Sync {
    /// The handle epoch of this store's deliveries (the same in every
    /// process).
    fn epoch(&self) -> u32;

    /// This process's name, the prefix of its consumers' names.
    fn node(&self) -> String;

    /// Sets the one listener of wake-ups.
    fn listen(&self, listener: WakeListener);

    /// Tells every process (this one included) of `wake`, soon; a lost
    /// notification is covered by the consumers' periodic re-check.
    fn announce(&self, wake: Wake);

    async fn lease(&self, req: LeaseRequest<'_>) -> Result<Leased>;

    /// Applies a confirm, extend or nack to each handle whose lease holds.
    /// A `Settle` confirms.
    async fn change(
        &self,
        app: AppId,
        handles: &[Option<MsgHandle>],
        change: LeaseChange,
        now: Timestamp,
    ) -> Result<Changed>;

    /// Whether `handle`'s lease still holds (the callback worker settles
    /// with its attempt record after asking).
    async fn holds(&self, app: AppId, handle: MsgHandle, now: Timestamp) -> Result<bool>;

    /// A consumer went away: its leased events are deliverable at once.
    async fn release(&self, consumer: &str, now: Timestamp) -> Result<u64>;

    /// Events leased to `consumer` whose lease holds.
    async fn held_by(&self, consumer: &str, now: Timestamp) -> Result<u32>;

    /// When something of the app's queue changes by itself next: an event
    /// becomes deliverable, or (for `consumer`) one of its leases runs out.
    async fn next_change(
        &self,
        app: AppId,
        consumer: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<Timestamp>>;

    /// ResendEvents: these pending events are deliverable now, marked as
    /// asked for.
    async fn due_now(&self, app: AppId, seqs: &[i64], now: Timestamp) -> Result<()>;

    /// Exact counts across every process.
    async fn state(&self, app: AppId, now: Timestamp) -> Result<QueueState>;
}

//! Event delivery. Events are durable in the store from the moment they
//! are written (the outbox); which consumer holds which event is kept here,
//! in memory, because a lease is worth nothing after a crash anyway: every
//! event that was not confirmed is simply delivered again. So a pull or a
//! stream refill touches no disk, and only confirms and dead-letterings are
//! durable writes.
//!
//! [`Hub`] owns the per-app queues (`app_queue.rs`: a window of the oldest
//! unsettled events, refilled from the store in seq order) and is the only
//! way in; `leases.rs` is the state machine of who holds which event.

mod app_queue;
mod consumer;
mod hub;
pub(crate) mod leases;
mod shared;

pub(crate) use consumer::Consumer;
pub(crate) use hub::Hub;
pub(crate) use leases::{LeaseChange, TakeRules};

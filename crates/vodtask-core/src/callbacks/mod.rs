//! HTTP callbacks (PUSH mode). What must be exact before the delivery worker
//! can be built on it: Standard Webhooks signing and verification
//! (signing.rs), the address policy that keeps callbacks away from internal
//! networks (address.rs), and one signed, policy-checked attempt with its
//! answer classified (sender.rs). The worker that schedules attempts over
//! the event queue comes next.

pub mod address;
pub mod sender;
pub mod signing;

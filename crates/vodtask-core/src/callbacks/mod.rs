//! HTTP callbacks (PUSH mode). What must be exact before the delivery worker
//! can be built on it: Standard Webhooks signing and verification
//! (signing.rs), the address policy that keeps callbacks away from internal
//! networks (address.rs), one signed, policy-checked attempt with its answer
//! classified (sender.rs), the retry schedule (schedule.rs), the app's
//! secrets with rotation (secrets.rs) and the endpoint's circuit breaker
//! (breaker.rs). The worker that runs attempts over
//! the event queue is `engine/push.rs`.

pub mod address;
pub mod breaker;
pub mod schedule;
pub mod secrets;
pub mod sender;
pub mod signing;

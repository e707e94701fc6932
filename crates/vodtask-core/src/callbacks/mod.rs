//! HTTP callbacks (PUSH mode). What must be exact before the delivery worker
//! can be built on it: Standard Webhooks signing and verification
//! (signing.rs), one signed attempt whose connections the outbound address
//! policy checks (sender.rs, over `crate::outbound`), the retry schedule
//! (schedule.rs), the app's secrets with rotation (secrets.rs) and the
//! endpoint's circuit breaker (breaker.rs). The worker that runs attempts
//! over the event queue is `engine/push.rs`.

pub mod breaker;
pub mod schedule;
pub mod secrets;
pub mod sender;
pub mod signing;

//! HTTP callbacks (PUSH mode). What must be exact before the delivery worker
//! can be built on it: Standard Webhooks signing and verification
//! (signing.rs), one signed attempt whose connections the outbound address
//! policy checks (sender.rs, over `crate::outbound`), the retry schedule
//! (schedule.rs), the app's secrets with rotation (secrets.rs), the
//! endpoint's circuit breaker (breaker.rs), the attempt log's records
//! (attempt.rs), and the worker that runs attempts over an app's event
//! queue (worker.rs).

mod attempt;
pub mod breaker;
pub mod schedule;
pub mod secrets;
pub mod sender;
pub mod signing;
pub(crate) mod worker;

pub use attempt::{AttemptOutcome, AttemptsOf, CallbackAttempt};
pub use worker::{CircuitState, EndpointHealth};

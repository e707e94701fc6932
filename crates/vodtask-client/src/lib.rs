//! One Rust client for vodtask, with the operations of the gRPC contract,
//! over either of two transports: a remote server (`Client::connect`) or an
//! engine opened on a data dir in this process (`Client::open`), which runs
//! the server's own service code without sockets. On top: a reliable event
//! consumer (`subscribe`, `consume`), a waiter for one task (`watch_task`,
//! `wait_task`), `verify_webhook` for HTTP callbacks, and every message and
//! unary call as a JSON tree (`json`, `Client::call_json`) for the bindings.
//! The Python and Node packages wrap this crate and nothing else.

mod client;
mod consumer;
mod error;
pub mod json;
mod transport;
mod watch;
mod webhook;

pub use client::{AttemptsOf, Client, ConnectOptions, OpenOptions};
pub use consumer::{ConsumeOptions, Delivery, Handler, Subscription};
pub use error::{Error, Result, code_name};
pub use tokio_util::sync::CancellationToken;
pub use vodtask_core::store::SyncMode;
pub use vodtask_proto::v1 as pb;
pub use watch::{TaskState, TaskWatch};
pub use webhook::{WebhookEvent, verify_webhook};

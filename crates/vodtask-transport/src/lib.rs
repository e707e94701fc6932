//! The TCP sockets under vodtask's gRPC, on the server and in clients, and
//! the admission of the server's connections (limits and timeouts, for
//! both of its ports).
//!
//! Both ends wrap their sockets in [`CoalescedIo`], so that the frames one
//! turn of an HTTP/2 connection produces leave in one write: a unary call
//! then costs one write each way instead of two or three.

mod admission;
mod coalesced_io;
mod connect;

pub use admission::{Admission, Admitted, HTTP_REFUSAL, admit};
pub use coalesced_io::CoalescedIo;
pub use connect::{connect, incoming};

//! The TCP sockets under vodtask's gRPC, on the server and in clients, and
//! the admission of the server's connections (limits and timeouts, for
//! both of its ports), in plain TCP or TLS.
//!
//! Both ends wrap their gRPC connections in [`CoalescedIo`], so that the
//! frames one turn of an HTTP/2 connection produces leave in one write: a
//! unary call then costs one write each way instead of two or three.

mod admission;
mod coalesced_io;
mod connect;
mod tls;

pub use admission::{Admission, Admitted, HTTP_REFUSAL, admit};
pub use coalesced_io::CoalescedIo;
pub use connect::{ConnectError, ConnectOptions, connect, connect_with, connections, incoming};
pub use tls::{
    ALPN_GRPC, ALPN_HTTP, ClientTls, HANDSHAKE_TIMEOUT, MaybeTls, Pem, ServerConn, ServerTls,
    TlsError,
};

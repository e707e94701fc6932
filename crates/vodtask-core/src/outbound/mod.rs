//! Requests vodtask makes to addresses its users name (HTTP callbacks,
//! pulls): which addresses they may reach (address.rs) and the HTTP client
//! that enforces it on every connection (client.rs).

pub mod address;
mod client;

pub use address::{AddressPolicy, validate_url};
pub use client::{Redirects, check_reachable, describe_error, guarded_client, literal_ip};

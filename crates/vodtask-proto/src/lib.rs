//! The vodtask gRPC contract, generated from `proto/vodtask/v1`.
//!
//! Shared by the server, the Rust client and the tests so that all of them
//! speak exactly the same messages.

pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, rustdoc::all, missing_docs)]
    tonic::include_proto!("vodtask.v1");
}

/// The encoded `FileDescriptorSet` of every vodtask proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/vodtask_descriptor.bin"));

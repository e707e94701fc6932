//! The edges of vodtask over its core: the gRPC services (`grpc`) and the
//! HTTP file server (`http`). The `vodtask` binary (main.rs) puts them on
//! sockets; the client crate calls `grpc::routes` in process for its
//! embedded mode, so both modes run the same service code.

pub mod grpc;
pub mod http;

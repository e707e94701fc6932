//! Core errors as gRPC statuses. Messages are the core's, which name the
//! field and the rule; internal details are logged, not leaked.

use tonic::Status;
use vodtask_core::Error;

pub(crate) fn to_status(e: Error) -> Status {
    match e {
        Error::InvalidArgument { .. } => Status::invalid_argument(e.to_string()),
        Error::NotFound(m) => Status::not_found(m),
        Error::AlreadyExists(m) => Status::already_exists(m),
        Error::FailedPrecondition(m) => Status::failed_precondition(m),
        Error::Unauthenticated(m) => Status::unauthenticated(m),
        Error::ResourceExhausted(m) => Status::resource_exhausted(m),
        Error::ShuttingDown => Status::unavailable(e.to_string()),
        Error::Unavailable(m) => {
            tracing::warn!("request failed: {m}");
            Status::unavailable(m)
        }
        Error::Storage(_) | Error::Io { .. } | Error::Internal(_) => {
            tracing::error!("request failed: {e}");
            Status::internal("internal error; see the server log")
        }
    }
}

pub(crate) fn invalid(field: &str, rule: impl std::fmt::Display) -> Status {
    to_status(Error::invalid(field, rule))
}

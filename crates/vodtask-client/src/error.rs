//! The client's one error type. A call the service refused keeps its gRPC
//! code and message (the message names the field and the rule), so that
//! every binding can map codes onto its own exception classes.

use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The service answered with an error status.
    #[error("{code:?}: {message}")]
    Status { code: Code, message: String },
    /// The server could not be reached, or the connection broke.
    #[error("transport: {0}")]
    Transport(String),
    /// The client was given something unusable (a bad URL, an unreadable file).
    #[error("{0}")]
    InvalidInput(String),
    /// A webhook that vodtask did not sign, or signed too long ago.
    #[error("webhook: {0}")]
    Webhook(String),
    /// Opening an embedded engine failed.
    #[error("{0}")]
    Engine(#[from] vodtask_core::Error),
}

impl Error {
    /// The gRPC code of the failure, as the contract names them
    /// (`NOT_FOUND`, `INVALID_ARGUMENT`…); `UNAVAILABLE` for transport
    /// failures, `INVALID_ARGUMENT` for bad input.
    pub fn code_name(&self) -> &'static str {
        let code = match self {
            Error::Status { code, .. } => *code,
            Error::Transport(_) => Code::Unavailable,
            Error::InvalidInput(_) | Error::Webhook(_) => Code::InvalidArgument,
            Error::Engine(e) => engine_code(e),
        };
        code_name(code)
    }
}

fn engine_code(e: &vodtask_core::Error) -> Code {
    use vodtask_core::Error as E;
    match e {
        E::InvalidArgument { .. } => Code::InvalidArgument,
        E::NotFound(_) => Code::NotFound,
        E::AlreadyExists(_) => Code::AlreadyExists,
        E::FailedPrecondition(_) => Code::FailedPrecondition,
        E::Unauthenticated(_) => Code::Unauthenticated,
        E::ResourceExhausted(_) => Code::ResourceExhausted,
        E::ShuttingDown => Code::Unavailable,
        _ => Code::Internal,
    }
}

pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Error::Status {
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

impl From<tonic::transport::Error> for Error {
    fn from(e: tonic::transport::Error) -> Self {
        Error::Transport(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    /// The client was given something unusable (a bad URL, a bad value).
    #[error("{0}")]
    InvalidInput(String),
    /// A local file to upload could not be opened or read.
    #[error("path: {}: {source}", path.display())]
    File {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
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
            Error::InvalidInput(_) | Error::File { .. } | Error::Webhook(_) => {
                Code::InvalidArgument
            }
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
        E::ShuttingDown | E::Unavailable(_) => Code::Unavailable,
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
        if let Some(what) = broken_connection(&s) {
            return Error::Transport(what);
        }
        Error::Status {
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

impl From<tonic::transport::Error> for Error {
    fn from(e: tonic::transport::Error) -> Self {
        Error::Transport(describe(&e))
    }
}

/// What broke, when a status was made in this process of a failure of the
/// connection under a call: tonic codes those UNKNOWN (`transport error`)
/// or after an HTTP/2 reason (INTERNAL for plain text to a TLS port), where
/// they are UNAVAILABLE like any other transport failure. Statuses from the
/// server carry no source; a call's own deadline stays what tonic made it.
fn broken_connection(s: &tonic::Status) -> Option<String> {
    let source = std::error::Error::source(s)?;
    let mut transport = false;
    let mut next = Some(source);
    while let Some(e) = next {
        if e.is::<tonic::TimeoutExpired>() {
            return None;
        }
        transport |= e.is::<tonic::transport::Error>() || e.is::<vodtask_transport::ConnectError>();
        next = e.source();
    }
    transport.then(|| describe(source))
}

/// What failed: the connector's own error where there is one (it names the
/// address and says refused, timed out or which TLS check failed), else the
/// chain of sources, as tonic's error alone reads only `transport error`.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(connect) = err.downcast_ref::<vodtask_transport::ConnectError>() {
            return connect.to_string();
        }
        next = err.source();
        // tonic's own layer says only `transport error`.
        if err.is::<tonic::transport::Error>() && next.is_some() {
            continue;
        }
        let text = err.to_string();
        // Wrappers often repeat their source's text.
        if !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

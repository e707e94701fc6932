//! The exception hierarchy: one class per gRPC code the client can meet,
//! all under `VodtaskError`, each with `.code` (e.g. "NOT_FOUND") and
//! `.message` (the server's text, which names the field).

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

// The public module name, so that they print as `vodtask.NotFound`.
create_exception!(
    vodtask,
    VodtaskError,
    PyException,
    "Any failure of a vodtask call; `.code` is the gRPC code name, `.message` the server's text."
);
create_exception!(vodtask, InvalidArgument, VodtaskError);
create_exception!(vodtask, NotFound, VodtaskError);
create_exception!(vodtask, AlreadyExists, VodtaskError);
create_exception!(vodtask, FailedPrecondition, VodtaskError);
create_exception!(vodtask, Unauthenticated, VodtaskError);
create_exception!(vodtask, PermissionDenied, VodtaskError);
create_exception!(vodtask, ResourceExhausted, VodtaskError);
create_exception!(vodtask, Unavailable, VodtaskError);
create_exception!(vodtask, DeadlineExceeded, VodtaskError);
create_exception!(vodtask, Internal, VodtaskError);

/// The exception for a client error, with its code and message.
pub fn to_py(e: vodtask_client::Error) -> PyErr {
    let code = e.code_name();
    let message = match &e {
        vodtask_client::Error::Status { message, .. } => message.clone(),
        other => other.to_string(),
    };
    error(code, &message)
}

/// The exception for a client error of the Python call `call`: a request
/// the client could not convert (its message names the field in the
/// request's terms) is prefixed with the call, e.g. `create_task:
/// spec.transcode.file_id: expected a string, got number`; what the server
/// answered keeps its message as it is.
pub fn to_py_in(call: &str, e: vodtask_client::Error) -> PyErr {
    match e {
        vodtask_client::Error::InvalidInput(message) => invalid(format!("{call}: {message}")),
        other => to_py(other),
    }
}

/// Bad input found while converting Python values (names the field).
pub fn invalid(message: impl Into<String>) -> PyErr {
    error("INVALID_ARGUMENT", &message.into())
}

pub fn error(code: &str, message: &str) -> PyErr {
    let m = message.to_string();
    let err = match code {
        "INVALID_ARGUMENT" | "OUT_OF_RANGE" => InvalidArgument::new_err(m),
        "NOT_FOUND" => NotFound::new_err(m),
        "ALREADY_EXISTS" => AlreadyExists::new_err(m),
        "FAILED_PRECONDITION" => FailedPrecondition::new_err(m),
        "UNAUTHENTICATED" => Unauthenticated::new_err(m),
        "PERMISSION_DENIED" => PermissionDenied::new_err(m),
        "RESOURCE_EXHAUSTED" => ResourceExhausted::new_err(m),
        "UNAVAILABLE" => Unavailable::new_err(m),
        "DEADLINE_EXCEEDED" => DeadlineExceeded::new_err(m),
        "INTERNAL" => Internal::new_err(m),
        _ => VodtaskError::new_err(m),
    };
    Python::attach(|py| {
        let value = err.value(py);
        // Plain attributes of a fresh exception instance: cannot fail.
        let _ = value.setattr("code", code);
        let _ = value.setattr("message", message);
    });
    err
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("VodtaskError", py.get_type::<VodtaskError>())?;
    m.add("InvalidArgument", py.get_type::<InvalidArgument>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("AlreadyExists", py.get_type::<AlreadyExists>())?;
    m.add("FailedPrecondition", py.get_type::<FailedPrecondition>())?;
    m.add("Unauthenticated", py.get_type::<Unauthenticated>())?;
    m.add("PermissionDenied", py.get_type::<PermissionDenied>())?;
    m.add("ResourceExhausted", py.get_type::<ResourceExhausted>())?;
    m.add("Unavailable", py.get_type::<Unavailable>())?;
    m.add("DeadlineExceeded", py.get_type::<DeadlineExceeded>())?;
    m.add("Internal", py.get_type::<Internal>())?;
    Ok(())
}

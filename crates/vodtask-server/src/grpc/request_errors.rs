//! Statuses tonic answers on its own for requests it could not read,
//! restated the way vodtask states its errors. tonic answers malformed
//! protobuf with INTERNAL (gRPC's rule for a *client* that cannot read an
//! answer) and a message over the size limit with OUT_OF_RANGE; for a
//! server both are the caller's fault: INVALID_ARGUMENT naming the field
//! prost could name, and RESOURCE_EXHAUSTED naming the limit.

use http::Response;
use tonic::{Code, Status};

/// tonic's message for a protobuf decode error starts with prost's.
const DECODE_PREFIX: &str = "failed to decode Protobuf message: ";
/// tonic's message for a message over `max_decoding_message_size`.
const TOO_LARGE_PREFIX: &str = "Error, decoded message length too large: ";

/// Rewrites a trailers-only answer that carries one of tonic's own request
/// errors; every other answer passes unchanged.
pub(crate) fn restate<B>(mut response: Response<B>) -> Response<B> {
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    let restated = match (status.code(), status.message()) {
        (Code::Internal, m) if m.starts_with(DECODE_PREFIX) => Status::invalid_argument(format!(
            "request: not a valid protobuf message: {}",
            &m[DECODE_PREFIX.len()..]
        )),
        (Code::OutOfRange, m) if m.starts_with(TOO_LARGE_PREFIX) => {
            Status::resource_exhausted(format!(
                "request: the message is too large ({})",
                &m[TOO_LARGE_PREFIX.len()..]
            ))
        }
        _ => return response,
    };
    let headers = response.headers_mut();
    headers.remove("grpc-status");
    headers.remove("grpc-message");
    headers.remove("grpc-status-details-bin");
    if let Err(e) = restated.add_header(headers) {
        tracing::warn!("restating a request error: {e}");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: Status) -> Response<()> {
        let mut r = Response::new(());
        status.add_header(r.headers_mut()).expect("headers");
        r
    }

    fn status_of(r: &Response<()>) -> Status {
        Status::from_header_map(r.headers()).expect("a status")
    }

    #[test]
    fn a_decode_error_becomes_invalid_argument_with_the_field() {
        let r = restate(answer(Status::internal(
            "failed to decode Protobuf message: TranscodeSpec.file_id: invalid string value: data is not UTF-8 encoded",
        )));
        let s = status_of(&r);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(
            s.message(),
            "request: not a valid protobuf message: TranscodeSpec.file_id: invalid string value: data is not UTF-8 encoded"
        );
    }

    #[test]
    fn a_message_over_the_limit_becomes_resource_exhausted() {
        let r = restate(answer(Status::out_of_range(
            "Error, decoded message length too large: found 5000012 bytes, the limit is: 4194304 bytes",
        )));
        let s = status_of(&r);
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert!(s.message().contains("4194304"), "{}", s.message());
    }

    #[test]
    fn other_answers_are_untouched() {
        let r = restate(answer(Status::internal(
            "internal error; see the server log",
        )));
        assert_eq!(status_of(&r).code(), Code::Internal);
        let ok = restate(Response::new(()));
        assert!(Status::from_header_map(ok.headers()).is_none());
    }
}

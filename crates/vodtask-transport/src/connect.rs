//! Both ends of a gRPC connection over [`CoalescedIo`].

use std::io;

use futures::{Stream, TryStreamExt};
use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::{Channel, Endpoint};

use crate::CoalescedIo;
use crate::admission::{Admission, Admitted, admit};

/// The server's accepted connections, admitted by `admission`.
/// `TCP_NODELAY`, as small answers must not wait for Nagle's algorithm: the
/// coalescing already sends each turn's frames together.
pub fn incoming(
    listener: TcpListener,
    admission: Admission,
) -> impl Stream<Item = io::Result<CoalescedIo<Admitted<TcpStream>>>> + Send + 'static {
    admit(listener, admission).map_ok(CoalescedIo::new)
}

/// A channel to `endpoint` whose connections (the first and every
/// reconnection) are coalesced and `TCP_NODELAY`. The endpoint's timeouts
/// apply; its own TCP settings do not, as this connector makes the socket.
pub async fn connect(endpoint: Endpoint) -> Result<Channel, tonic::transport::Error> {
    endpoint
        .connect_with_connector(tower::service_fn(|uri: Uri| async move {
            let stream = TcpStream::connect(address(&uri)?).await?;
            stream.set_nodelay(true)?;
            Ok::<_, io::Error>(TokioIo::new(CoalescedIo::new(stream)))
        }))
        .await
}

/// `host:port` of an `http://` URI (`[v6]:port` keeps its brackets, which
/// is what `TcpStream::connect` parses).
fn address(uri: &Uri) -> io::Result<String> {
    let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{uri}: {why}"));
    if uri.scheme_str() != Some("http") {
        return Err(invalid("only http:// is supported (no TLS)"));
    }
    let host = uri.host().ok_or_else(|| invalid("no host"))?;
    Ok(format!("{host}:{}", uri.port_u16().unwrap_or(80)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_keeps_the_port_or_defaults_to_80() {
        let cases = [
            ("http://127.0.0.1:50051", "127.0.0.1:50051"),
            ("http://localhost", "localhost:80"),
            ("http://[::1]:7000", "[::1]:7000"),
        ];
        for (uri, want) in cases {
            let uri: Uri = uri.parse().expect("a valid uri");
            assert_eq!(address(&uri).expect("an address"), want);
        }
    }

    #[test]
    fn anything_but_plain_http_is_refused_by_name() {
        let uri: Uri = "https://127.0.0.1:443".parse().expect("a valid uri");
        let e = address(&uri).expect_err("no TLS here");
        assert!(e.to_string().contains("only http://"), "{e}");
    }
}

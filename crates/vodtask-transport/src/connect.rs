//! Both ends of a connection: the server's admitted (and, with TLS,
//! handshaken) connections, and the client's connector.
//!
//! Where TLS is on, [`CoalescedIo`] sits above it, on the plaintext: a
//! turn's frames then become one TLS record and one write, where coalescing
//! the ciphertext would still encrypt (and frame) each HTTP/2 frame apart.

use std::io;
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint};

use crate::CoalescedIo;
use crate::admission::{Admission, admit};
use crate::tls::{ClientTls, MaybeTls, ServerConn, ServerTls};

/// The connections of a port, admitted by `admission` and, with `tls`,
/// through their TLS handshake. Handshakes run side by side (one slow
/// client does not hold up the others); one that fails or times out is
/// logged at debug level and its connection closed.
pub fn connections(
    listener: TcpListener,
    admission: Admission,
    tls: Option<ServerTls>,
) -> impl Stream<Item = io::Result<ServerConn>> + Send + 'static {
    // Admission bounds the connections alive, those in a handshake among
    // them, so this bound on concurrent handshakes never binds first.
    let handshakes = admission.max_connections.max(1);
    let admitted = admit(listener, admission);
    match tls {
        None => futures::future::Either::Left(admitted.map_ok(MaybeTls::Plain)),
        Some(tls) => futures::future::Either::Right(
            admitted
                .map(move |conn| {
                    let tls = tls.clone();
                    async move {
                        let conn = match conn {
                            Ok(conn) => conn,
                            Err(e) => return Some(Err(e)),
                        };
                        let peer = conn.connect_info().remote_addr();
                        match tls.handshake(conn).await {
                            Ok(stream) => Some(Ok(MaybeTls::Tls(Box::new(stream)))),
                            Err(e) => {
                                tracing::debug!(?peer, "TLS handshake: {e}");
                                None
                            }
                        }
                    }
                })
                .buffer_unordered(handshakes)
                .filter_map(futures::future::ready),
        ),
    }
}

/// The gRPC port's connections: [`connections`], coalesced. `TCP_NODELAY`,
/// as small answers must not wait for Nagle's algorithm: the coalescing
/// already sends each turn's frames together.
pub fn incoming(
    listener: TcpListener,
    admission: Admission,
    tls: Option<ServerTls>,
) -> impl Stream<Item = io::Result<CoalescedIo<ServerConn>>> + Send + 'static {
    connections(listener, admission, tls).map_ok(CoalescedIo::new)
}

/// Why the connector could not connect; its message says what failed and
/// where. Calls on a channel whose reconnection failed carry it as their
/// UNAVAILABLE message.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{uri}: {why}")]
    Url { uri: String, why: String },
    #[error("connection refused to {addr}")]
    Refused { addr: String },
    #[error("timed out connecting to {addr} after {after:?}")]
    Timeout { addr: String, after: Duration },
    #[error("cannot connect to {addr}: {error}")]
    Io { addr: String, error: io::Error },
    #[error("TLS handshake with {addr} failed: {reason}")]
    Tls { addr: String, reason: String },
}

/// How [`connect_with`] connects.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// The certificates an `https://` server may present; by default the
    /// system's roots.
    pub tls: Option<ClientTls>,
    /// Bounds the TCP connection and the TLS handshake, for the first
    /// connection and every reconnection.
    pub timeout: Option<Duration>,
}

/// A channel to `endpoint` (`http://` or `https://`, the system's roots
/// trusted) whose connections are coalesced and `TCP_NODELAY`. The
/// endpoint's request timeout applies; its TCP settings and connect timeout
/// do not, as this connector makes the socket (see [`connect_with`]).
pub async fn connect(endpoint: Endpoint) -> Result<Channel, tonic::transport::Error> {
    connect_with(endpoint, ConnectOptions::default()).await
}

/// [`connect`] with a choice of trusted certificates and a connect timeout.
pub async fn connect_with(
    endpoint: Endpoint,
    options: ConnectOptions,
) -> Result<Channel, tonic::transport::Error> {
    endpoint
        .connect_with_connector(tower::service_fn(move |uri: Uri| {
            let options = options.clone();
            async move {
                let io = open(&uri, &options).await?;
                Ok::<_, ConnectError>(TokioIo::new(CoalescedIo::new(io)))
            }
        }))
        .await
}

type ClientConn = MaybeTls<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

async fn open(uri: &Uri, options: &ConnectOptions) -> Result<ClientConn, ConnectError> {
    let target = Target::of(uri)?;
    let connecting = target.open(options.tls.as_ref());
    match options.timeout {
        None => connecting.await,
        Some(after) => {
            tokio::time::timeout(after, connecting)
                .await
                .map_err(|_| ConnectError::Timeout {
                    addr: target.addr.clone(),
                    after,
                })?
        }
    }
}

/// Where a URI points: `host:port` (`[v6]:port` keeps its brackets, which
/// is what `TcpStream::connect` parses) and, for `https://`, the name the
/// certificate must carry.
struct Target {
    addr: String,
    tls_name: Option<ServerName<'static>>,
}

impl Target {
    fn of(uri: &Uri) -> Result<Target, ConnectError> {
        let invalid = |why: &str| ConnectError::Url {
            uri: uri.to_string(),
            why: why.to_string(),
        };
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(invalid("must start with http:// or https://")),
        };
        let host = uri.host().ok_or_else(|| invalid("no host"))?;
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls_name = if https {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(bare.to_string())
                .map_err(|_| invalid("not a valid TLS server name"))?;
            Some(name)
        } else {
            None
        };
        Ok(Target {
            addr: format!("{host}:{port}"),
            tls_name,
        })
    }

    async fn open(&self, tls: Option<&ClientTls>) -> Result<ClientConn, ConnectError> {
        let stream = TcpStream::connect(&self.addr).await.map_err(|e| {
            if e.kind() == io::ErrorKind::ConnectionRefused {
                ConnectError::Refused {
                    addr: self.addr.clone(),
                }
            } else {
                ConnectError::Io {
                    addr: self.addr.clone(),
                    error: e,
                }
            }
        })?;
        stream.set_nodelay(true).map_err(|e| ConnectError::Io {
            addr: self.addr.clone(),
            error: e,
        })?;
        let Some(name) = &self.tls_name else {
            return Ok(MaybeTls::Plain(stream));
        };
        let system;
        let tls = match tls {
            Some(tls) => tls,
            None => {
                system = ClientTls::new(None, "ca_cert").map_err(|e| ConnectError::Tls {
                    addr: self.addr.clone(),
                    reason: e.to_string(),
                })?;
                &system
            }
        };
        let stream = tls
            .connector
            .connect(name.clone(), stream)
            .await
            .map_err(|e| ConnectError::Tls {
                addr: self.addr.clone(),
                reason: tls_reason(&e),
            })?;
        Ok(MaybeTls::Tls(Box::new(stream)))
    }
}

/// rustls's own words for a failed handshake (`invalid peer certificate:
/// UnknownIssuer`), else the I/O error (the peer closed the connection).
fn tls_reason(e: &io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        // What a plain-text server's answer looks like to TLS.
        Some(rustls @ rustls::Error::InvalidMessage(_)) => {
            format!("{rustls} (does the server speak TLS?)")
        }
        Some(rustls) => rustls.to_string(),
        None if e.kind() == io::ErrorKind::UnexpectedEof => {
            "the connection closed (does the server speak TLS?)".to_string()
        }
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(uri: &str) -> Result<Target, ConnectError> {
        Target::of(&uri.parse::<Uri>().expect("a valid uri"))
    }

    #[test]
    fn the_address_keeps_the_port_or_defaults_to_the_schemes() {
        let cases = [
            ("http://127.0.0.1:50051", "127.0.0.1:50051", false),
            ("http://localhost", "localhost:80", false),
            ("http://[::1]:7000", "[::1]:7000", false),
            ("https://localhost", "localhost:443", true),
            ("https://[::1]:7000", "[::1]:7000", true),
        ];
        for (uri, want, tls) in cases {
            let t = target(uri).expect("a target");
            assert_eq!(t.addr, want);
            assert_eq!(t.tls_name.is_some(), tls, "{uri}");
        }
    }

    #[test]
    fn other_schemes_are_refused_by_name() {
        let e = target("ftp://127.0.0.1:21").err().expect("refused");
        assert!(
            e.to_string()
                .contains("must start with http:// or https://"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_refused_with_its_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let uri: Uri = format!("http://{addr}").parse().expect("uri");
        let e = open(&uri, &ConnectOptions::default())
            .await
            .err()
            .expect("refused");
        assert_eq!(e.to_string(), format!("connection refused to {addr}"));
    }

    #[tokio::test]
    async fn a_silent_tls_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let uri: Uri = format!("https://{addr}").parse().expect("uri");
        let options = ConnectOptions {
            tls: None,
            timeout: Some(Duration::from_millis(200)),
        };
        let e = open(&uri, &options).await.err().expect("timed out");
        assert_eq!(
            e.to_string(),
            format!("timed out connecting to {addr} after 200ms")
        );
    }
}

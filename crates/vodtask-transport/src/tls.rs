//! TLS for both ends, by rustls with ring as its crypto provider (named
//! here rather than installed process-wide, so that nothing depends on
//! which part of a program installs one first).
//!
//! The server's TLS stream wraps the admitted TCP stream, so a connection
//! in its handshake holds a slot of `--max-connections` and is closed by
//! the idle timeout like any other; [`ServerTls::handshake_timeout`] bounds
//! the handshake as a whole, which a peer sending a byte now and then
//! would otherwise stretch without end.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::admission::Admitted;

/// What the gRPC port offers in ALPN: HTTP/2 only.
pub const ALPN_GRPC: &[&[u8]] = &[b"h2"];
/// What the HTTP port offers in ALPN: HTTP/2, then HTTP/1.1.
pub const ALPN_HTTP: &[&[u8]] = &[b"h2", b"http/1.1"];

/// The default bound on a server's TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A certificate, key or CA that cannot be used; the message names the
/// file (or the option) and the reason.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: cannot read: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    #[error("{what}: not valid PEM: {reason}")]
    Pem { what: String, reason: String },
    #[error("{what}: no certificate in it (a PEM \"BEGIN CERTIFICATE\" block)")]
    NoCertificate { what: String },
    #[error("{what}: no private key in it (a PEM PKCS#8, RSA or EC private key)")]
    NoKey { what: String },
    #[error("{key} is not the private key of the certificate in {cert}")]
    KeyMismatch { cert: String, key: String },
    #[error("{what}: {error}")]
    Rejected { what: String, error: rustls::Error },
}

/// PEM text and the name errors give it (a path, an option).
#[derive(Clone, Copy)]
pub struct Pem<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// Every certificate in `pem`; `what` names its origin in errors.
fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: what.to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what: what.to_string(),
        });
    }
    Ok(certs)
}

/// The server's side: its certificate chain and key, and the protocols
/// one port offers.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: tokio_rustls::TlsAcceptor,
    config: Arc<ServerConfig>,
    /// A handshake not done this long after the connection was admitted
    /// closes it.
    pub handshake_timeout: Duration,
}

impl ServerTls {
    /// Reads a PEM certificate chain (the server's certificate first) and
    /// its PEM private key; errors name the files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<ServerTls, TlsError> {
        let (cert_name, key_name) = (cert.display().to_string(), key.display().to_string());
        ServerTls::from_pem(
            Pem {
                name: &cert_name,
                bytes: &read(cert)?,
            },
            Pem {
                name: &key_name,
                bytes: &read(key)?,
            },
        )
    }

    /// A PEM certificate chain (the server's certificate first) and its
    /// PEM private key.
    pub fn from_pem(cert: Pem<'_>, key: Pem<'_>) -> Result<ServerTls, TlsError> {
        let certs = certificates(cert.bytes, cert.name)?;
        let private_key = PrivateKeyDer::from_pem_slice(key.bytes).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
                what: key.name.to_string(),
            },
            e => TlsError::Pem {
                what: key.name.to_string(),
                reason: e.to_string(),
            },
        })?;
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Rejected {
                what: cert.name.to_string(),
                error,
            })?
            .with_no_client_auth()
            // Checks that the key belongs to the certificate.
            .with_single_cert(certs, private_key)
            .map_err(|error| match error {
                rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                    cert: cert.name.to_string(),
                    key: key.name.to_string(),
                },
                error => TlsError::Rejected {
                    what: format!("{} with {}", cert.name, key.name),
                    error,
                },
            })?;
        Ok(ServerTls::over(Arc::new(config)))
    }

    fn over(config: Arc<ServerConfig>) -> ServerTls {
        ServerTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::clone(&config)),
            config,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }

    /// The same certificate offering `protocols` in ALPN ([`ALPN_GRPC`],
    /// [`ALPN_HTTP`]).
    pub fn with_alpn(&self, protocols: &[&[u8]]) -> ServerTls {
        let mut config = (*self.config).clone();
        config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        ServerTls {
            handshake_timeout: self.handshake_timeout,
            ..ServerTls::over(Arc::new(config))
        }
    }

    /// The handshake on an admitted connection, within the timeout.
    pub(crate) async fn handshake(
        &self,
        conn: Admitted<TcpStream>,
    ) -> io::Result<tokio_rustls::server::TlsStream<Admitted<TcpStream>>> {
        tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(conn))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("TLS handshake not done after {:?}", self.handshake_timeout),
                )
            })?
    }
}

/// The client's side: which certificates a server may present.
#[derive(Clone)]
pub struct ClientTls {
    pub(crate) connector: tokio_rustls::TlsConnector,
}

impl ClientTls {
    /// Trusts the system's roots (as rustls-native-certs finds them:
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR`, else the OS store) and, if given,
    /// the CA certificates in `extra_ca_pem` (one or more PEM blocks).
    /// `what` names the extra CA in errors (e.g. `ca_cert`). Offers HTTP/2
    /// in ALPN.
    pub fn new(extra_ca_pem: Option<&[u8]>, what: &str) -> Result<ClientTls, TlsError> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!("loading the system's trust roots: {e}");
        }
        // A system root rustls cannot parse is skipped, as browsers do.
        let (_, skipped) = roots.add_parsable_certificates(native.certs);
        if skipped > 0 {
            tracing::debug!("skipped {skipped} system trust roots that do not parse");
        }
        if let Some(pem) = extra_ca_pem {
            for cert in certificates(pem, what)? {
                roots.add(cert).map_err(|error| TlsError::Rejected {
                    what: what.to_string(),
                    error,
                })?;
            }
        }
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Rejected {
                what: what.to_string(),
                error,
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(ClientTls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }
}

/// A connection that is plain TCP or TLS over it.
pub enum MaybeTls<P, T> {
    Plain(P),
    Tls(Box<T>),
}

/// A connection the server accepted on either kind of port.
pub type ServerConn =
    MaybeTls<Admitted<TcpStream>, tokio_rustls::server::TlsStream<Admitted<TcpStream>>>;

impl<P, T> AsyncRead for MaybeTls<P, T>
where
    P: AsyncRead + Unpin,
    T: AsyncRead + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(p) => Pin::new(p).poll_read(cx, buf),
            MaybeTls::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<P, T> AsyncWrite for MaybeTls<P, T>
where
    P: AsyncWrite + Unpin,
    T: AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(p) => Pin::new(p).poll_write(cx, buf),
            MaybeTls::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(p) => Pin::new(p).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(t) => Pin::new(t.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(p) => p.is_write_vectored(),
            MaybeTls::Tls(t) => t.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(p) => Pin::new(p).poll_flush(cx),
            MaybeTls::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(p) => Pin::new(p).poll_shutdown(cx),
            MaybeTls::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The peer's TCP address either way, as on a plain port.
impl Connected for ServerConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        match self {
            MaybeTls::Plain(p) => p.connect_info(),
            MaybeTls::Tls(t) => t.get_ref().0.connect_info(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::{Admission, connections};

    fn self_signed() -> ServerTls {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("a certificate");
        let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
        ServerTls::from_pem(
            Pem {
                name: "cert",
                bytes: cert.as_bytes(),
            },
            Pem {
                name: "key",
                bytes: key.as_bytes(),
            },
        )
        .expect("a usable certificate")
    }

    /// A peer that sends a byte now and then is never idle, so only the
    /// handshake's own timeout frees its slot.
    #[tokio::test]
    async fn a_handshake_that_trickles_is_closed_at_its_timeout() {
        let mut tls = self_signed().with_alpn(ALPN_GRPC);
        tls.handshake_timeout = Duration::from_millis(300);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let admission = Admission {
            max_connections: 4,
            idle_timeout: Duration::from_secs(60),
            refusal: b"",
        };
        let served = tokio::spawn(async move {
            let conns = connections(listener, admission, Some(tls));
            futures::pin_mut!(conns);
            conns.next().await.is_some()
        });

        let mut client = TcpStream::connect(addr).await.expect("connect");
        let start = Instant::now();
        // A record header announcing a 16 KiB handshake record, then its
        // body a byte at a time: rustls waits for the whole record.
        client
            .write_all(&[0x16, 0x03, 0x01, 0x40, 0x00])
            .await
            .expect("header");
        let mut byte = [0u8; 1];
        loop {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "still open after 5 s"
            );
            if client.write_all(&[0]).await.is_err() {
                break;
            }
            let read = tokio::time::timeout(Duration::from_millis(50), client.read(&mut byte));
            if let Ok(Ok(0) | Err(_)) = read.await {
                break;
            }
        }
        assert!(start.elapsed() >= Duration::from_millis(250));
        // The failed handshake yielded no connection.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), served)
                .await
                .is_err()
        );
    }
}

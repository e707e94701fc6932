//! Which connections a listening port takes, and for how long.
//!
//! Without limits a server is taken down by connections alone: slow or
//! silent ones pile up until the process runs out of file descriptors,
//! then the accept loop spins on EMFILE and even the health check times
//! out. So every port:
//! - holds at most `max_connections` at once and closes the ones beyond
//!   at once (after a canned answer where the protocol has one);
//! - closes a connection on which no byte moved either way for
//!   `idle_timeout` (a half-done handshake, a silent peer, a reader that
//!   stopped reading), while HTTP/2 keepalive pings keep a healthy idle
//!   gRPC channel busy enough to stay;
//! - backs off when accept fails for lack of descriptors or memory,
//!   instead of retrying in a loop, and logs that at most every few seconds.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How a port admits connections.
#[derive(Debug, Clone)]
pub struct Admission {
    /// Connections held at once; further ones are refused.
    pub max_connections: usize,
    /// A connection on which nothing was read or written this long is closed.
    pub idle_timeout: Duration,
    /// Written to a refused connection before it is closed (an HTTP/1 503);
    /// empty for protocols that have no such answer before their handshake.
    pub refusal: &'static [u8],
}

/// What an HTTP/1 port answers a connection it has no room for.
pub const HTTP_REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: 33\r\nretry-after: 1\r\n\r\ntoo many connections; try again\r\n";

const BACKOFF_FIRST: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(5);

/// The connections of `listener`, admitted by `admission`. Accept errors
/// that concern one connection are skipped; those that concern the process
/// (no descriptors, no memory) pause accepting, doubling from 10 ms to 1 s.
pub fn admit(
    listener: TcpListener,
    admission: Admission,
) -> impl Stream<Item = io::Result<Admitted<TcpStream>>> + Send + 'static {
    let slots = Arc::new(Semaphore::new(admission.max_connections));
    let state = Acceptor {
        listener,
        admission,
        slots,
        backoff: BACKOFF_FIRST,
        refused: Throttled::new(),
        starved: Throttled::new(),
    };
    futures::stream::unfold(state, |mut state| async move {
        let conn = state.next().await;
        Some((Ok(conn), state))
    })
}

struct Acceptor {
    listener: TcpListener,
    admission: Admission,
    slots: Arc<Semaphore>,
    backoff: Duration,
    refused: Throttled,
    starved: Throttled,
}

impl Acceptor {
    async fn next(&mut self) -> Admitted<TcpStream> {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) if starved(&e) => {
                    if let Some(n) = self.starved.note() {
                        tracing::warn!(
                            "accepting connections failed {n} times ({e}); pausing {:?} between tries",
                            self.backoff
                        );
                    }
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
                Err(e) => {
                    tracing::debug!("accept: {e}");
                    continue;
                }
            };
            self.backoff = BACKOFF_FIRST;
            let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
                if let Some(n) = self.refused.note() {
                    tracing::warn!(
                        "refused {n} connections: the port holds its limit of {} (--max-connections)",
                        self.admission.max_connections
                    );
                }
                // Best effort: the socket is new, so its buffer has room.
                let _ = stream.try_write(self.admission.refusal);
                continue;
            };
            tracing::trace!(%peer, "connection admitted");
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!("TCP_NODELAY: {e}");
            }
            return Admitted::new(stream, permit, self.admission.idle_timeout);
        }
    }
}

/// Errors of the process rather than of one connection (accept(2)).
fn starved(e: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Counts occurrences and says when to log them: at most every `LOG_EVERY`.
struct Throttled {
    count: u64,
    last: Option<Instant>,
}

impl Throttled {
    fn new() -> Self {
        Throttled {
            count: 0,
            last: None,
        }
    }

    /// The count since the last log, when it is time to log again.
    fn note(&mut self) -> Option<u64> {
        self.count += 1;
        let now = Instant::now();
        if self.last.is_some_and(|t| now < t + LOG_EVERY) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

/// An admitted connection: holds its slot until dropped and fails its I/O
/// once it has been idle too long.
pub struct Admitted<T> {
    inner: T,
    _slot: OwnedSemaphorePermit,
    idle_timeout: Duration,
    last_activity: Instant,
    /// Fires at the earliest moment the connection could be idle too long;
    /// moved on lazily, so that busy connections pay one clock read per
    /// I/O call and no timer update.
    check: Pin<Box<Sleep>>,
}

impl<T> Admitted<T> {
    fn new(inner: T, slot: OwnedSemaphorePermit, idle_timeout: Duration) -> Self {
        let now = Instant::now();
        Admitted {
            inner,
            _slot: slot,
            idle_timeout,
            last_activity: now,
            check: Box::pin(tokio::time::sleep_until(now + idle_timeout)),
        }
    }

    /// Called when an I/O call is pending: an error once idle too long.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        loop {
            if self.check.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
            let due = self.last_activity + self.idle_timeout;
            if Instant::now() >= due {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle too long",
                ));
            }
            self.check.as_mut().reset(due);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Admitted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.last_activity = Instant::now();
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                this.poll_idle(cx)?;
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Admitted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    this.last_activity = Instant::now();
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                this.poll_idle(cx)?;
                Poll::Pending
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs));
        if matches!(result, Ok(n) if n > 0) {
            this.last_activity = Instant::now();
        }
        Poll::Ready(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Connected for Admitted<TcpStream> {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn port(
        admission: Admission,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::mpsc::Receiver<Admitted<TcpStream>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let conns = admit(listener, admission);
            futures::pin_mut!(conns);
            while let Some(Ok(c)) = conns.next().await {
                if tx.send(c).await.is_err() {
                    return;
                }
            }
        });
        (addr, rx)
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_get_the_refusal_and_are_closed() {
        let admission = Admission {
            max_connections: 2,
            idle_timeout: Duration::from_secs(60),
            refusal: HTTP_REFUSAL,
        };
        let (addr, mut admitted) = port(admission).await;
        let _a = TcpStream::connect(addr).await.expect("a");
        let _b = TcpStream::connect(addr).await.expect("b");
        let held = [
            admitted.recv().await.expect("a in"),
            admitted.recv().await.expect("b in"),
        ];
        let mut c = TcpStream::connect(addr)
            .await
            .expect("c connects at the TCP level");
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut answer))
            .await
            .expect("closed at once")
            .expect("read");
        assert!(
            answer.starts_with(b"HTTP/1.1 503"),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
        drop(held);
        // A slot freed: the next connection is admitted.
        let _d = TcpStream::connect(addr).await.expect("d");
        tokio::time::timeout(Duration::from_secs(10), admitted.recv())
            .await
            .expect("d admitted")
            .expect("d");
    }

    #[tokio::test]
    async fn an_idle_connection_fails_its_io_and_an_active_one_does_not() {
        let admission = Admission {
            max_connections: 8,
            idle_timeout: Duration::from_secs(2),
            refusal: b"",
        };
        let (addr, mut admitted) = port(admission).await;
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let mut server = admitted.recv().await.expect("admitted");
        // Busy for longer than the idle timeout: a byte every 100 ms keeps
        // it open.
        for _ in 0..30 {
            client.write_all(b"x").await.expect("write");
            let mut byte = [0u8; 1];
            server.read_exact(&mut byte).await.expect("read while busy");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Then silent: the server's read fails once the timeout passes.
        let mut byte = [0u8; 1];
        let e = tokio::time::timeout(Duration::from_secs(10), server.read_exact(&mut byte))
            .await
            .expect("the idle read ends")
            .expect_err("with an error");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}

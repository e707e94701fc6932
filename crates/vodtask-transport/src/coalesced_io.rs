//! One write per turn of a connection's task, instead of one per flush.
//!
//! h2 flushes the socket after every DATA frame longer than 256 bytes (it
//! hands such payloads to `writev` uncopied and must send them before it
//! encodes the next frame), so a unary response leaves in two writes,
//! HEADERS and DATA, then the trailers, and the peer wakes up twice for one
//! answer. On loopback a write costs the sender the receiver's TCP path too,
//! and it was the larger part of what a small call costs the server.
//!
//! [`CoalescedIo`] takes writes into a buffer and sends them when the
//! connection's task next touches the socket: a flush only marks the buffer
//! and wakes the task, and the task's next poll, which always reads the
//! socket first, writes everything the previous poll produced in one call.
//! Netty's `FlushConsolidationHandler` does the same for the same reason.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use tonic::transport::server::Connected;

/// Past this many buffered bytes a write first sends what is buffered, so
/// that a fast producer (a deep stream) meets the socket's back-pressure.
const HIGH_WATER: usize = 256 << 10;

pub struct CoalescedIo<T> {
    inner: T,
    buf: Vec<u8>,
    /// How much of `buf` the socket has taken.
    sent: usize,
    /// The socket refused the last write: its writability wakes the task.
    blocked: bool,
}

impl<T> CoalescedIo<T> {
    pub fn new(inner: T) -> Self {
        CoalescedIo {
            inner,
            buf: Vec::new(),
            sent: 0,
            blocked: false,
        }
    }
}

impl<T: AsyncWrite + Unpin> CoalescedIo<T> {
    /// Writes out the buffer, then flushes the layer below; ready when both
    /// are empty.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.buf.len() {
            let written = Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.sent..]);
            self.blocked = written.is_pending();
            let n = ready!(written)?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.buf.clear();
        self.sent = 0;
        // A layer that buffers too (TLS keeps the records a full socket did
        // not take, and sends them only when written to or flushed) must be
        // pushed on, or its bytes wait for the next turn that writes. On a
        // TCP socket this is free.
        let flushed = Pin::new(&mut self.inner).poll_flush(cx);
        self.blocked = flushed.is_pending();
        flushed
    }

    /// Makes room before taking more: past the high-water mark the caller
    /// waits for the socket.
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buf.len() >= HIGH_WATER {
            ready!(self.poll_send(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for CoalescedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // The start of the task's next turn: send what the last one wrote.
        // A full socket registers this task for writability and does not
        // hold up reading.
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_read(cx, out)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CoalescedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_room(cx))?;
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_room(cx))?;
        let mut n = 0;
        for slice in slices {
            this.buf.extend_from_slice(slice);
            n += slice.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.sent < this.buf.len() {
            // Sent at the start of the task's next poll (`poll_read`), with
            // whatever else this poll still writes. A full socket wakes the
            // task itself when it takes more; waking it here would spin.
            if !this.blocked {
                cx.waker().wake_by_ref();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<T: Connected> Connected for CoalescedIo<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> T::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::FutureExt;
    use futures::task::{ArcWake, waker};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

    use super::*;

    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl ArcWake for Wakes {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// What the peer can read without waiting.
    fn available(peer: &mut DuplexStream) -> Vec<u8> {
        let mut buf = vec![0; 1 << 20];
        match peer.read(&mut buf).now_or_never() {
            Some(Ok(n)) => buf[..n].to_vec(),
            Some(Err(e)) => panic!("reading the peer: {e}"),
            None => vec![],
        }
    }

    #[tokio::test]
    async fn the_writes_of_one_turn_leave_together_when_the_next_turn_reads() {
        let (near, mut peer) = duplex(1 << 16);
        let mut io = CoalescedIo::new(near);
        let wakes = Arc::new(Wakes::default());
        let waker = waker(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);

        // One turn: HEADERS and DATA, a flush, the trailers, a flush.
        io.write_all(b"headers+data").await.expect("buffered");
        assert!(Pin::new(&mut io).poll_flush(&mut cx).is_ready());
        io.write_all(b"+trailers").await.expect("buffered");
        assert!(Pin::new(&mut io).poll_flush(&mut cx).is_ready());
        assert_eq!(available(&mut peer), b"");
        assert!(
            wakes.0.load(Ordering::SeqCst) >= 1,
            "a flush that leaves bytes behind must wake the task for its next turn"
        );

        // The next turn starts by reading, which sends the whole turn at once.
        let mut scratch = [0; 16];
        assert!(
            Pin::new(&mut io)
                .poll_read(&mut cx, &mut ReadBuf::new(&mut scratch))
                .is_pending()
        );
        assert_eq!(available(&mut peer), b"headers+data+trailers");

        // Nothing buffered: a flush is the socket's own and wakes no one.
        let before = wakes.0.load(Ordering::SeqCst);
        assert!(Pin::new(&mut io).poll_flush(&mut cx).is_ready());
        assert_eq!(wakes.0.load(Ordering::SeqCst), before);
    }

    #[tokio::test]
    async fn a_full_socket_holds_up_the_writer_past_the_high_water_mark() {
        let (near, mut peer) = duplex(64);
        let mut io = CoalescedIo::new(near);
        let turn = vec![7u8; HIGH_WATER];
        io.write_all(&turn).await.expect("buffered below the mark");
        assert!(
            io.write_all(b"more").now_or_never().is_none(),
            "past the mark a write must wait for the socket"
        );

        // A reading peer lets everything through, in order.
        let writer = tokio::spawn(async move {
            io.write_all(b"more").await.expect("written");
            io.shutdown().await.expect("shut down");
        });
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.expect("read to the end");
        writer.await.expect("the writer finished");
        assert_eq!(got.len(), HIGH_WATER + 4);
        assert_eq!(&got[HIGH_WATER..], b"more");
    }

    #[tokio::test]
    async fn a_full_socket_does_not_make_flush_spin() {
        let (near, _peer) = duplex(8);
        let mut io = CoalescedIo::new(near);
        let wakes = Arc::new(Wakes::default());
        let waker = waker(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);

        io.write_all(b"more than eight bytes")
            .await
            .expect("buffered");
        let mut scratch = [0; 16];
        // The read sends what the socket takes; the rest waits for it.
        assert!(
            Pin::new(&mut io)
                .poll_read(&mut cx, &mut ReadBuf::new(&mut scratch))
                .is_pending()
        );
        let before = wakes.0.load(Ordering::SeqCst);
        assert!(Pin::new(&mut io).poll_flush(&mut cx).is_ready());
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            before,
            "the socket's writability wakes the task; flush must not as well"
        );
    }

    /// A layer that keeps what it is given until it is flushed, as TLS
    /// keeps the records a full socket did not take.
    #[derive(Default)]
    struct Holding {
        held: Vec<u8>,
        out: Vec<u8>,
    }

    impl AsyncWrite for Holding {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().held.extend_from_slice(data);
            Poll::Ready(Ok(data.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            let held = std::mem::take(&mut this.held);
            this.out.extend(held);
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.poll_flush(cx)
        }
    }

    impl AsyncRead for Holding {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn sending_a_turn_flushes_a_layer_below_that_holds_bytes() {
        let mut io = CoalescedIo::new(Holding::default());
        let wakes = Arc::new(Wakes::default());
        let waker = waker(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);
        io.write_all(b"a turn").await.expect("buffered");
        assert!(Pin::new(&mut io).poll_flush(&mut cx).is_ready());
        let mut scratch = [0; 16];
        assert!(
            Pin::new(&mut io)
                .poll_read(&mut cx, &mut ReadBuf::new(&mut scratch))
                .is_pending()
        );
        assert_eq!(io.inner.out, b"a turn");
        assert!(io.inner.held.is_empty());
    }

    #[tokio::test]
    async fn shutdown_sends_what_is_buffered_first() {
        let (near, mut peer) = duplex(1 << 16);
        let mut io = CoalescedIo::new(near);
        io.write_all(b"GOAWAY").await.expect("buffered");
        io.flush().await.expect("flushed");
        io.shutdown().await.expect("shut down");
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.expect("read to the end");
        assert_eq!(got, b"GOAWAY");
    }
}

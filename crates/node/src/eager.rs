//! A connection's two halves that look for the next request as soon as a
//! reply is written, before going to sleep on it.
//!
//! # Why
//!
//! A peer that sends one request at a time (figure 1 of `scripts/bench.sh`)
//! often has its next request in our socket by the time our reply's
//! `sendto` returns: when both share a CPU, the reply wakes the peer, the
//! scheduler runs it at once, and it answers before we run again. Tokio
//! cannot know: its readiness for the socket was cleared by the last short
//! read, so the session's next read goes back to the reactor, which costs
//! an `epoll_wait` (and a turn of the runtime) to learn what one `recv`
//! would have returned. [`EagerRead`] makes that one `recv` itself, once
//! after each write of [`EagerWrite`], straight on the socket.
//!
//! # What it costs
//!
//! Nothing while a connection is idle: it only ever reads right after a
//! reply was written, once, never in a loop, and never waits. When the peer
//! is slower than that (on another CPU, or busy), the read finds nothing
//! and is a wasted system call; after such a miss the next 1, 3, 7, ... 63
//! replies (doubling with each miss in a row) are followed by no eager read,
//! so a peer that is never quick enough costs at most one `recv` in 64
//! replies. A read that finds data resets that.
//!
//! # Why it is correct
//!
//! Bytes read here are bytes Tokio would have read: the reader hands them
//! on through the same [`AsyncRead`] interface. Tokio learns of new data by
//! edge-triggered events, one per arrival, which do not depend on who reads
//! it: after a read here, Tokio's readiness is at worst stale, which costs
//! it one `recv` that finds nothing, never a missed wake-up.

use std::{
    io::{self, Read},
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

use socket2::SockRef;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{
        tcp::{OwnedReadHalf, OwnedWriteHalf},
        TcpStream,
    },
};

/// Most bytes one eager read takes. Small, because safe Rust reads only
/// into initialised memory, so this much is zeroed before each eager read;
/// a request of one message is far shorter, and what does not fit is read
/// the usual way.
const EAGER_READ_MAX: usize = 2048;

/// After this many misses in a row, the next `2^n - 1` replies are not
/// followed by an eager read (at most 63).
const MAX_MISS_SHIFT: u32 = 6;

/// Splits `stream` into halves whose reader reads eagerly after each write
/// of the writer (see the module docs).
pub fn split(stream: TcpStream) -> (EagerRead, EagerWrite) {
    let (read, write) = stream.into_split();
    let replied = Arc::new(AtomicBool::new(false));
    (
        EagerRead {
            inner: read,
            replied: Arc::clone(&replied),
            skip: 0,
            misses: 0,
            #[cfg(test)]
            hits: 0,
        },
        EagerWrite {
            inner: write,
            replied,
        },
    )
}

/// The read half: an [`OwnedReadHalf`] that, after a write of its
/// [`EagerWrite`], first tries one `recv` of its own.
#[derive(Debug)]
pub struct EagerRead {
    inner: OwnedReadHalf,
    /// Set by the writer after each write; taken by the next read.
    replied: Arc<AtomicBool>,
    /// Eager reads still to skip after the last miss.
    skip: u32,
    /// Misses in a row, up to [`MAX_MISS_SHIFT`].
    misses: u32,
    /// Eager reads that found data, for the tests.
    #[cfg(test)]
    hits: u64,
}

/// The write half: an [`OwnedWriteHalf`] that tells its [`EagerRead`] when
/// it wrote.
#[derive(Debug)]
pub struct EagerWrite {
    inner: OwnedWriteHalf,
    replied: Arc<AtomicBool>,
}

impl EagerRead {
    /// One `recv` straight on the socket, into `buf`: `Some` if it gave
    /// data, the end of the stream or an error; `None` if there was
    /// nothing yet.
    fn try_eager(&mut self, buf: &mut ReadBuf<'_>) -> Option<io::Result<()>> {
        if self.skip > 0 {
            self.skip -= 1;
            return None;
        }
        let want = buf.remaining().min(EAGER_READ_MAX);
        if want == 0 {
            return None;
        }
        let socket = SockRef::from(self.inner.as_ref());
        let dst = buf.initialize_unfilled_to(want);
        match (&*socket).read(dst) {
            Ok(n) => {
                buf.advance(n);
                self.misses = 0;
                #[cfg(test)]
                {
                    self.hits += 1;
                }
                Some(Ok(()))
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                self.misses = (self.misses + 1).min(MAX_MISS_SHIFT);
                self.skip = (1 << self.misses) - 1;
                None
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => None,
            Err(err) => Some(Err(err)),
        }
    }
}

impl AsyncRead for EagerRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.replied.swap(false, Ordering::Relaxed) {
            if let Some(result) = this.try_eager(buf) {
                return Poll::Ready(result);
            }
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for EagerWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.replied.store(true, Ordering::Relaxed);
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    async fn pair() -> (EagerRead, EagerWrite, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (ours, _) = listener.accept().await.unwrap();
        let (read, write) = split(ours);
        (read, write, peer)
    }

    /// Waits until `n` bytes are queued in our receive buffer, so that an
    /// eager read would find them.
    async fn until_queued(read: &mut EagerRead, n: usize) {
        let mut probe = [0u8; 64];
        for _ in 0..1000 {
            if read.inner.peek(&mut probe).await.unwrap() >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("{n} bytes never arrived");
    }

    #[tokio::test]
    async fn a_request_waiting_after_a_reply_is_read_eagerly() {
        let (mut read, mut write, mut peer) = pair().await;
        let mut buf = [0u8; 16];
        for round in 0..3u8 {
            write.write_all(b"reply").await.unwrap();
            let mut reply = [0u8; 5];
            peer.read_exact(&mut reply).await.unwrap();
            peer.write_all(&[round; 4]).await.unwrap();
            until_queued(&mut read, 4).await;
            let n = read.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &[round; 4]);
        }
        assert_eq!(read.hits, 3);
        // The end of the stream comes through an eager read too.
        write.write_all(b"bye").await.unwrap();
        let mut bye = [0u8; 3];
        peer.read_exact(&mut bye).await.unwrap();
        drop(peer);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(read.read(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn misses_back_off_and_nothing_is_lost() {
        let (mut read, mut write, mut peer) = pair().await;
        let mut buf = [0u8; 16];
        let mut received = Vec::new();
        for round in 0..40u8 {
            write.write_all(b"r").await.unwrap();
            // The peer answers only after our read has begun: every eager
            // read finds nothing, and the usual read gets the byte.
            let (n, ()) = tokio::join!(read.read(&mut buf), async {
                tokio::task::yield_now().await;
                peer.write_all(&[round]).await.unwrap();
            });
            received.extend_from_slice(&buf[..n.unwrap()]);
        }
        assert_eq!(received, (0..40).collect::<Vec<u8>>());
        assert_eq!(read.hits, 0);
        // 1 + 1 + 1 + 1 + 1 eager reads (skipping 1, 3, 7, 15 between).
        assert_eq!(read.misses, 5);
    }
}

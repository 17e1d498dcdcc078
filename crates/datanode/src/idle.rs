//! The link's read side with a deadline: a headnode that went silent ends
//! the session, and the datanode registers again.

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::io::{AsyncRead, ReadBuf};

/// A reader that fails with `TimedOut` when nothing has arrived for a
/// while.
///
/// A headnode whose host vanishes (power loss, a network partition) never
/// closes its side of the link, and a datanode that only answers would wait
/// on it forever. The headnode sends a `PING` every heartbeat interval, so
/// silence much longer than that means the link is dead; the error ends the
/// session like any broken connection, and the datanode registers again.
#[derive(Debug)]
pub struct IdleRead<R> {
    inner: R,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Whether silence is an error; see [`IdleRead::disarm`].
    armed: bool,
}

impl<R> IdleRead<R> {
    /// Wraps `inner`; the clock starts now.
    pub fn new(inner: R, timeout: Duration) -> Self {
        IdleRead {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            armed: true,
        }
    }
    /// Stops treating silence as an error: something else watches the
    /// headnode (the multicast heartbeat's probes).
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for IdleRead<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    let next = tokio::time::Instant::now() + self.timeout;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(result)
            }
            Poll::Pending if !self.armed => Poll::Pending,
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("nothing from the headnode for {:?}", self.timeout),
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_silent_link_times_out_and_a_busy_one_does_not() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut ours, theirs) = tokio::io::duplex(64);
        let mut idle = IdleRead::new(theirs, Duration::from_secs(30));
        let mut buf = [0u8; 8];
        // Traffic every 20 s keeps it alive well past 30 s.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            ours.write_all(b"x").await.unwrap();
            assert_eq!(idle.read(&mut buf).await.unwrap(), 1);
        }
        // Then silence: an error after 30 s.
        let err = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}

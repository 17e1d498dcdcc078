//! Dialing a peer that may not be up yet.
//!
//! Compose starts containers in dependency order, but started is not ready,
//! and a peer may restart at any time. Nodes that dial (the client, the
//! datanode) therefore retry with exponential back-off and jitter, resolving
//! the name again on each attempt: a service's address can change when its
//! container is recreated.

use std::{io, time::Duration};

use rand::Rng;
use tokio::{net::TcpStream, time::Instant};

/// Exponential back-off with full jitter, between `initial` and `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// Starts at `initial`, doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            current: initial,
        }
    }

    /// The next delay to wait: random in `[current/2, current]`, so that
    /// many nodes restarted together do not retry in lockstep.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = ceiling / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=half)
    }

    /// Starts over from `initial` (after a success).
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

impl Default for Backoff {
    /// 50 ms doubling up to 2 s.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(50), Duration::from_secs(2))
    }
}

/// Connects to `addr` (`host:port`), retrying until `timeout` has passed
/// (forever when `None`). Sets `TCP_NODELAY`: every frame is a request or a
/// reply someone is waiting for.
pub async fn connect_with_retry(addr: &str, timeout: Option<Duration>) -> io::Result<TcpStream> {
    let deadline = timeout.map(|timeout| Instant::now() + timeout);
    let mut backoff = Backoff::default();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(err) => {
                let delay = backoff.next_delay();
                if deadline.is_some_and(|deadline| Instant::now() + delay >= deadline) {
                    return Err(io::Error::new(
                        err.kind(),
                        format!("could not connect to {addr} after {attempts} attempts: {err}"),
                    ));
                }
                if attempts == 1 || attempts % 10 == 0 {
                    tracing::info!(%addr, %err, attempts, "not reachable yet; retrying");
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum_with_jitter() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let ceilings = [100, 200, 400, 400, 400];
        for ceiling in ceilings {
            let delay = backoff.next_delay();
            let ceiling = Duration::from_millis(ceiling);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} vs {ceiling:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn gives_up_after_the_timeout() {
        // Port 9 on loopback: nothing listens there in a test environment.
        let started = std::time::Instant::now();
        let err = connect_with_retry("127.0.0.1:9", Some(Duration::from_millis(300)))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("could not connect"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn connects_once_the_peer_comes_up() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let dial = tokio::spawn(async move {
            connect_with_retry(&addr.to_string(), Some(Duration::from_secs(10))).await
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let (_accepted, _) = listener.accept().await.unwrap();
        dial.await.unwrap().unwrap();
    }
}

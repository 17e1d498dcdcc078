//! Dialing a peer that may not be up yet.
//!
//! Compose starts containers in dependency order, but started is not ready,
//! and a peer may restart at any time. Nodes that dial (the client, the
//! datanode) therefore retry with exponential back-off and jitter, resolving
//! the name again on each attempt: a service's address can change when its
//! container is recreated.
//!
//! The jitter is what the AWS Architecture Blog's "Exponential Backoff And
//! Jitter" calls *equal jitter*: each delay is drawn from
//! `[ceiling/2, ceiling]`, where the ceiling doubles. Unlike *full jitter*
//! (`[0, ceiling]`) it never retries at once, which keeps a node that
//! restarts in a loop from hammering its peer, while still spreading out
//! nodes restarted together.

use std::{io, time::Duration};

use crate::Error;

use rand::Rng;
use tokio::{net::TcpStream, time::Instant};

/// Parses a `HOST:PORT` flag (`--listen`, `--connect`, `--headnode`): a
/// host name, an IPv4 address or a bracketed IPv6 address, then a port.
/// The name is looked up only when used, so that a peer whose container is
/// not up yet (its name not resolvable yet) can still be given.
pub fn parse_host_port(text: &str) -> Result<String, String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("'{text}' is not HOST:PORT (e.g. 127.0.0.1:5000)"))?;
    if host.is_empty() {
        return Err(format!("'{text}' has no host (e.g. 0.0.0.0{text})"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!(
            "'{text}': write an IPv6 address in brackets, e.g. [::1]:5000"
        ));
    }
    port.parse::<u16>()
        .map_err(|_| format!("'{text}': '{port}' is not a port number"))?;
    Ok(text.to_owned())
}

/// Exponential back-off with equal jitter (see the module docs): delays
/// between half of `initial` and `max`.
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

    /// The next delay to wait: random in `[current/2, current]` (equal
    /// jitter), so that many nodes restarted together do not retry in
    /// lockstep; then the ceiling `current` doubles, up to `max`.
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

/// How long the attempt made at the deadline may take: a peer that comes up
/// just as the time runs out still gets its chance.
const LAST_ATTEMPT: Duration = Duration::from_millis(100);

/// Connects to `addr` (`host:port`), retrying until `timeout` has passed
/// (forever when `None`). Sets `TCP_NODELAY`: every frame is a request or a
/// reply someone is waiting for.
///
/// The timeout bounds the whole: each attempt (a name lookup, a handshake
/// with a host that drops packets) ends at the deadline, the last pause is
/// cut short so that a last attempt is made at the deadline, and that one
/// gets 100 ms at most.
pub async fn connect_with_retry(addr: &str, timeout: Option<Duration>) -> Result<TcpStream, Error> {
    let deadline = timeout.map(|timeout| Instant::now() + timeout);
    let mut backoff = Backoff::default();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let attempt = TcpStream::connect(addr);
        let result = match deadline {
            Some(deadline) => {
                let ends = deadline.max(Instant::now() + LAST_ATTEMPT);
                tokio::time::timeout_at(ends, attempt)
                    .await
                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
            }
            None => attempt.await,
        };
        let err = match result {
            Ok(stream) => {
                return match stream.set_nodelay(true) {
                    Ok(()) => Ok(stream),
                    Err(source) => Err(Error::Socket {
                        addr: addr.to_owned(),
                        source,
                    }),
                };
            }
            Err(err) => err,
        };
        let mut delay = backoff.next_delay();
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Unreachable {
                    addr: addr.to_owned(),
                    attempts,
                    source: err,
                });
            }
            delay = delay.min(left);
        }
        if attempts == 1 || attempts.is_multiple_of(10) {
            tracing::info!(%addr, %err, attempts, "not reachable yet; retrying");
        }
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_flags_are_checked_but_not_resolved() {
        for good in [
            "127.0.0.1:5000",
            "headnode:10000",
            "localhost:0",
            "[::1]:5000",
        ] {
            assert_eq!(parse_host_port(good).as_deref(), Ok(good));
        }
        for bad in [
            "nowhere",
            ":5000",
            "host:",
            "host:99999",
            "host:x",
            "::1:5000",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad:?} was accepted");
        }
    }

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
    async fn gives_up_at_the_timeout_not_before() {
        // Port 9 on loopback: nothing listens there in a test environment.
        let started = std::time::Instant::now();
        let err = connect_with_retry("127.0.0.1:9", Some(Duration::from_millis(700)))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("could not connect"), "{err}");
        // Not a timing assertion: a refused connection is retried until the
        // deadline, and the upper bound only catches a hang.
        assert!(started.elapsed() >= Duration::from_millis(700));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn an_attempt_that_hangs_ends_at_the_deadline() {
        // A listener whose accept queue is full drops further SYNs, so a
        // connect to it hangs (the kernel would retry for minutes).
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        while let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
        {
            queued.push(stream);
            assert!(queued.len() < 1000, "the accept queue never filled");
        }
        let started = std::time::Instant::now();
        let err = connect_with_retry(&addr.to_string(), Some(Duration::from_millis(500)))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
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

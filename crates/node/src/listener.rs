//! The accept loop shared by the nodes that listen (server, headnode).
//!
//! Each accepted connection runs in its own task. A semaphore caps how many
//! run at once: beyond the cap, new connections wait in the kernel's backlog
//! instead of exhausting file descriptors. Accept errors (out of descriptors,
//! say) back off instead of spinning. On shutdown the loop stops accepting,
//! every connection task is told to finish (they share the shutdown token),
//! and the loop waits up to [`DRAIN_TIMEOUT`] for them.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::dial::Backoff;

/// How long shutdown waits for connections to answer what they accepted.
/// A container gets 10 s between SIGTERM and SIGKILL; we take far less.
pub const DRAIN_TIMEOUT: Duration = Duration::from_millis(1500);

/// Default cap on connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Accepts connections on `listener` until `shutdown` is cancelled, running
/// `handle` for each in its own task, then drains them.
pub async fn serve<H, F>(
    listener: TcpListener,
    shutdown: CancellationToken,
    max_connections: usize,
    handle: H,
) where
    H: Fn(TcpStream, SocketAddr) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(max_connections.max(1)));
    let tracker = TaskTracker::new();
    let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&limit).acquire_owned() => permit.expect("never closed"),
            _ = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff.reset();
                if let Err(err) = stream.set_nodelay(true) {
                    tracing::debug!(%peer, %err, "could not set TCP_NODELAY");
                }
                let connection = handle(stream, peer);
                tracker.spawn(async move {
                    connection.await;
                    drop(permit);
                });
            }
            Err(err) => {
                let delay = backoff.next_delay();
                tracing::warn!(%err, ?delay, "accept failed; backing off");
                tokio::time::sleep(delay).await;
            }
        }
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = tracker.len(),
            "connections still busy after the drain timeout; closing them"
        );
    }
}

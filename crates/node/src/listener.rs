//! The accept loop shared by the nodes that listen (server, headnode).
//!
//! Each accepted connection runs in its own task. A semaphore caps how many
//! run at once: beyond the cap, new connections wait in the kernel's backlog
//! instead of exhausting file descriptors, unless a place is held by a
//! connection that has not sent one whole frame, which is closed for the
//! newcomer (see [`Slot`]: a slowloris flood locks nobody out). Accept errors (out of descriptors,
//! say) back off instead of spinning. On shutdown the loop stops accepting,
//! every connection task is told to finish (they share the shutdown token),
//! and the loop waits up to [`DRAIN_TIMEOUT`] for them.

use std::{
    collections::VecDeque,
    future::Future,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Weak,
    },
    time::Duration,
};

use futures::StreamExt;
use protocol::{Frame, FrameCodec, FrameError};
use tokio::{
    io::AsyncRead,
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_util::{codec::FramedRead, sync::CancellationToken, task::TaskTracker};

use crate::{
    dial::Backoff,
    watchdog::{Seen, Timeouts, Watchdog},
};

/// How long shutdown waits for connections to answer what they accepted.
/// A container gets 10 s between SIGTERM and SIGKILL; we take far less.
pub const DRAIN_TIMEOUT: Duration = Duration::from_millis(1500);

/// Default cap on connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// A connection's place among the `max_connections` served at once, held
/// by its task until it ends, or given back early with [`Slot::free`].
///
/// A connection that has not yet sent one whole frame is *unproven*: when
/// every place is taken, the listener takes the place of the oldest
/// unproven one ([`Slot::evicted`] fires) rather than leave new connections
/// in the backlog behind a flood of connections that send nothing useful.
/// A well-behaved peer sends its first frame at once, so it is unproven for
/// a round trip at most.
#[derive(Debug)]
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    state: Arc<SlotState>,
}

#[derive(Debug, Default)]
struct SlotState {
    evict: CancellationToken,
    proven: AtomicBool,
}

impl Slot {
    /// Gives the place back while the connection goes on: for a headnode's
    /// datanode link, which must never compete with clients for places (a
    /// flood of client connections would otherwise lock a restarted
    /// datanode out). Links are few: one per datanode.
    pub fn free(&mut self) {
        self.permit = None;
        self.proven();
    }

    /// The connection sent a whole frame: it keeps its place.
    pub fn proven(&self) {
        self.state.proven.store(true, Ordering::Relaxed);
    }

    /// Resolves when the listener takes this unproven connection's place
    /// for a new one; the connection should then close.
    pub async fn evicted(&self) {
        self.state.evict.cancelled().await
    }
}

/// Reads a connection's first frame within `timeouts` (a frame begun must
/// finish, and one must begin, in time: [`crate::watchdog`]), marking the
/// slot proven once it has one. `None` when the connection ended first:
/// the peer closed, a bound passed, the place was taken for another
/// connection, or shutdown.
pub async fn read_first_frame<R: AsyncRead + Unpin>(
    reader: &mut FramedRead<R, FrameCodec>,
    peer: SocketAddr,
    slot: &Slot,
    timeouts: Timeouts,
    shutdown: &CancellationToken,
) -> Option<Result<Frame, FrameError>> {
    let mut watchdog = Watchdog::new(timeouts);
    loop {
        tokio::select! {
            first = reader.next() => {
                slot.proven();
                return first;
            }
            _ = shutdown.cancelled() => return None,
            () = slot.evicted() => {
                tracing::debug!(%peer, "every place taken: closing a connection that sent no whole frame");
                return None;
            }
            now = watchdog.tick() => {
                let seen = Seen {
                    partial: !reader.read_buffer().is_empty() || reader.decoder().is_skipping(),
                    reading: true,
                    owing: false,
                };
                if let Some(expired) = watchdog.check(now, seen) {
                    tracing::debug!(%peer, %expired, "closing a connection before its first frame");
                    return None;
                }
            }
        }
    }
}

/// The unproven connections, oldest first, whose places can be taken.
#[derive(Default)]
struct Unproven(VecDeque<Weak<SlotState>>);

impl Unproven {
    fn push(&mut self, state: &Arc<SlotState>, max: usize) {
        if self.0.len() >= 2 * max {
            self.0.retain(|state| {
                state
                    .upgrade()
                    .is_some_and(|s| !s.proven.load(Ordering::Relaxed))
            });
        }
        self.0.push_back(Arc::downgrade(state));
    }

    /// Asks the oldest live unproven connection to close; `false` if there
    /// is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some(state) = self.0.pop_front() {
            if let Some(state) = state.upgrade() {
                if !state.proven.load(Ordering::Relaxed) && !state.evict.is_cancelled() {
                    state.evict.cancel();
                    return true;
                }
            }
        }
        false
    }
}

/// Accepts connections on `listener` until `shutdown` is cancelled, running
/// `handle` for each in its own task, then drains them.
///
/// `handle` gets the connection's [`Slot`] and must keep it for as long as
/// the connection counts against `max_connections`, and should read the
/// first frame with [`read_first_frame`]. When every place is taken, the
/// oldest connection that has not sent a whole frame is closed for the new
/// one; connections that sent one and then hold their place unused are
/// bounded by the sessions' timeouts ([`crate::watchdog`]).
pub async fn serve<H, F>(
    listener: TcpListener,
    shutdown: CancellationToken,
    max_connections: usize,
    handle: H,
) where
    H: Fn(TcpStream, SocketAddr, Slot) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut unproven = Unproven::default();
    let tracker = TaskTracker::new();
    let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
    loop {
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
                // Every place taken: one held by a connection that has
                // sent nothing whole goes to the newcomer; otherwise the
                // newcomer waits for a place (and the next ones in the
                // kernel's backlog).
                let permit = match Arc::clone(&limit).try_acquire_owned() {
                    Ok(permit) => permit,
                    Err(_) => {
                        if unproven.evict_oldest() {
                            tracing::debug!(%peer, "every place taken: closing the oldest connection that sent no whole frame");
                        }
                        tokio::select! {
                            permit = Arc::clone(&limit).acquire_owned() => permit.expect("never closed"),
                            _ = shutdown.cancelled() => break,
                        }
                    }
                };
                let state = Arc::new(SlotState::default());
                unproven.push(&state, max_connections);
                let slot = Slot {
                    permit: Some(permit),
                    state,
                };
                tracker.spawn(handle(stream, peer, slot));
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

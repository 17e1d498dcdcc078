//! What the nodes' status pages share.
//!
//! The headnode and the server each serve a page of their own (`/`), its
//! data (`/status.json`) and `/metrics`; this crate holds what they have in
//! common:
//!
//! - [`serve`]: axum on the node's own runtime, stopped with the node;
//! - [`assets`]: the chart script and the style sheet both pages load
//!   (served by the node itself: no CDN, no external font, so a page works
//!   with no internet);
//! - [`openmetrics`]: a `/metrics` response with its content type;
//! - [`Connections`] and [`PerSecond`]: counters that cost an atomic
//!   increment per connection and per batch, and nothing while nobody
//!   looks.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};

use axum::{
    http::header,
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Seconds of history a [`PerSecond`] keeps.
pub const HISTORY_SECONDS: usize = 60;

const CHART_JS: &str = include_str!("chart.js");
const STYLE_CSS: &str = include_str!("style.css");

/// Listens for the status page on `addr` (`--http`), and says where.
pub async fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!("status page on http://{}/", listener.local_addr()?);
    Ok(listener)
}

/// Serves `app` on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, app: Router, shutdown: CancellationToken) {
    let stopped = async move { shutdown.cancelled().await };
    if let Err(err) = axum::serve(listener, app.merge(assets()))
        .with_graceful_shutdown(stopped)
        .await
    {
        tracing::warn!(%err, "the status page stopped");
    }
}

/// `/chart.js` and `/style.css`, which both pages load.
pub fn assets() -> Router {
    Router::new()
        .route(
            "/chart.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    CHART_JS,
                )
            }),
        )
        .route(
            "/style.css",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
                    STYLE_CSS,
                )
            }),
        )
}

/// A `/metrics` answer: `text` in the OpenMetrics text format.
pub fn openmetrics(text: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Client connections: open now, and accepted since start.
#[derive(Debug, Default)]
pub struct Connections {
    open: AtomicU64,
    total: AtomicU64,
}

impl Connections {
    /// A connection opened; it counts as open until the guard drops.
    pub fn opened(self: &Arc<Self>) -> ConnectionGuard {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(Arc::clone(self))
    }

    /// Open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Accepted since start.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

/// Counts one open connection while it lives.
#[derive(Debug)]
pub struct ConnectionGuard(Arc<Connections>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts per second over the last [`HISTORY_SECONDS`] seconds.
#[derive(Debug)]
pub struct PerSecond {
    started: Instant,
    /// The second (since `started`) the last bucket counts, and the
    /// buckets, oldest first.
    buckets: Mutex<(u64, VecDeque<u64>)>,
}

impl PerSecond {
    /// Nothing counted yet; the clock starts at `now`.
    pub fn new(now: Instant) -> Self {
        PerSecond {
            started: now,
            buckets: Mutex::new((0, VecDeque::from([0]))),
        }
    }

    /// Adds `n` to the second of `now`.
    pub fn add(&self, n: u64, now: Instant) {
        let mut buckets = self.lock();
        self.roll(&mut buckets, now);
        if let Some(last) = buckets.1.back_mut() {
            *last += n;
        }
    }

    /// The counts of the last [`HISTORY_SECONDS`] whole seconds before
    /// `now`, oldest first (the second in progress left out).
    pub fn last_minute(&self, now: Instant) -> Vec<u64> {
        let mut buckets = self.lock();
        self.roll(&mut buckets, now);
        let done = buckets.1.len() - 1;
        let mut seconds: Vec<u64> = buckets.1.iter().take(done).copied().collect();
        let missing = HISTORY_SECONDS.saturating_sub(seconds.len());
        seconds.splice(0..0, std::iter::repeat_n(0, missing));
        seconds
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, VecDeque<u64>)> {
        self.buckets
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn roll(&self, buckets: &mut (u64, VecDeque<u64>), now: Instant) {
        let second = now.saturating_duration_since(self.started).as_secs();
        if second.saturating_sub(buckets.0) > HISTORY_SECONDS as u64 {
            // Idle for longer than the history: a minute of zeros.
            *buckets = (
                second,
                std::iter::repeat_n(0, HISTORY_SECONDS + 1).collect(),
            );
            return;
        }
        while buckets.0 < second {
            buckets.0 += 1;
            buckets.1.push_back(0);
            if buckets.1.len() > HISTORY_SECONDS + 1 {
                buckets.1.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn per_second_keeps_a_minute_of_whole_seconds() {
        let start = Instant::now();
        let counts = PerSecond::new(start);
        counts.add(2, start);
        counts.add(1, start + Duration::from_millis(1500));
        let minute = counts.last_minute(start + Duration::from_millis(2100));
        assert_eq!(minute.len(), HISTORY_SECONDS);
        assert_eq!(minute[HISTORY_SECONDS - 2..], [2, 1]);
        let later = counts.last_minute(start + Duration::from_secs(500));
        assert_eq!(later, vec![0; HISTORY_SECONDS]);
    }

    #[test]
    fn connections_count_while_open() {
        let connections = Arc::new(Connections::default());
        let first = connections.opened();
        let second = connections.opened();
        drop(first);
        assert_eq!((connections.open(), connections.total()), (1, 2));
        drop(second);
        assert_eq!(connections.open(), 0);
    }
}

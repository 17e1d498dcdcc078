//! The server's status page, on `--http`: `/` (a small page: totals and
//! messages per second over the last minute), `/status.json` and
//! `/metrics` (OpenMetrics), served by the `status` crate's axum set-up on
//! the server's runtime.
//!
//! Counting is off unless `--http` is given: [`CountingStore`] then wraps
//! the log store and adds, per batch, the messages logged and refused to a
//! few atomics; without it the store is the log store itself.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use axum::{
    extract::State,
    http::StatusCode,
    response::{Html, IntoResponse, Response},
    routing::get,
    Json, Router,
};
use futures::FutureExt;
use node::{MessageStore, StoreFuture};
use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use protocol::Tag;
use serde::Serialize;
use status::{Connections, PerSecond};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::LogStore;

const PAGE: &str = include_str!("status_page.html");

/// What the server counts for its page.
#[derive(Debug)]
pub struct Counts {
    started: Instant,
    logged: AtomicU64,
    bytes: AtomicU64,
    refused: AtomicU64,
    per_second: PerSecond,
    /// Client connections.
    pub connections: Arc<Connections>,
}

impl Counts {
    /// Nothing counted yet.
    pub fn new() -> Self {
        let now = Instant::now();
        Counts {
            started: now,
            logged: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            per_second: PerSecond::new(now),
            connections: Arc::default(),
        }
    }
}

impl Default for Counts {
    fn default() -> Self {
        Counts::new()
    }
}

/// The log store, counted when the status page is on.
#[derive(Debug)]
pub struct CountingStore {
    log: LogStore,
    counts: Option<Arc<Counts>>,
}

impl CountingStore {
    /// `log`, counted into `counts` if given.
    pub fn new(log: LogStore, counts: Option<Arc<Counts>>) -> Self {
        CountingStore { log, counts }
    }
}

impl MessageStore for CountingStore {
    fn store(&self, peer: SocketAddr, messages: Vec<String>) -> StoreFuture {
        match &self.counts {
            None => self.log.store(peer, messages),
            Some(counts) => {
                let bytes = messages.iter().map(String::len).sum();
                counted(Arc::clone(counts), bytes, self.log.store(peer, messages))
            }
        }
    }

    fn store_tagged(
        &self,
        peer: SocketAddr,
        messages: Vec<String>,
        tags: Vec<Option<Tag>>,
    ) -> StoreFuture {
        match &self.counts {
            None => self.log.store_tagged(peer, messages, tags),
            Some(counts) => {
                let bytes = messages.iter().map(String::len).sum();
                let stored = self.log.store_tagged(peer, messages, tags);
                counted(Arc::clone(counts), bytes, stored)
            }
        }
    }
}

/// `stored`, whose outcomes are added to `counts` when they come.
fn counted(counts: Arc<Counts>, bytes: usize, stored: StoreFuture) -> StoreFuture {
    async move {
        let results = stored.await;
        let logged = results.iter().filter(|result| result.is_ok()).count() as u64;
        counts.logged.fetch_add(logged, Ordering::Relaxed);
        counts.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        counts
            .refused
            .fetch_add(results.len() as u64 - logged, Ordering::Relaxed);
        counts.per_second.add(logged, Instant::now());
        results
    }
    .boxed()
}

/// Serves the page on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, counts: Arc<Counts>, shutdown: CancellationToken) {
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/status.json", get(status_json))
        .route("/metrics", get(metrics))
        .with_state(counts);
    status::serve(listener, app, shutdown).await;
}

/// `/status.json`.
#[derive(Debug, Serialize)]
pub struct StatusJson {
    /// Seconds since the server started.
    pub uptime_seconds: f64,
    /// Messages written to log.txt.
    pub logged_total: u64,
    /// Their bytes.
    pub bytes_total: u64,
    /// Messages answered `ERR STORAGE`.
    pub refused_total: u64,
    /// Messages logged in each of the last 60 seconds, oldest first.
    pub logged_per_second: Vec<u64>,
    /// Client connections open now.
    pub clients: u64,
    /// Client connections accepted since start.
    pub connections_total: u64,
}

fn snapshot(counts: &Counts) -> StatusJson {
    let now = Instant::now();
    StatusJson {
        uptime_seconds: now.saturating_duration_since(counts.started).as_secs_f64(),
        logged_total: counts.logged.load(Ordering::Relaxed),
        bytes_total: counts.bytes.load(Ordering::Relaxed),
        refused_total: counts.refused.load(Ordering::Relaxed),
        logged_per_second: counts.per_second.last_minute(now),
        clients: counts.connections.open(),
        connections_total: counts.connections.total(),
    }
}

async fn status_json(State(counts): State<Arc<Counts>>) -> Json<StatusJson> {
    Json(snapshot(&counts))
}

async fn metrics(State(counts): State<Arc<Counts>>) -> Response {
    let now = snapshot(&counts);
    let counter = |value: u64| {
        let counter = Counter::<u64>::default();
        counter.inc_by(value);
        counter
    };
    let gauge = Gauge::<i64>::default();
    gauge.set(i64::try_from(now.clients).unwrap_or(i64::MAX));
    let mut registry = Registry::with_prefix("server");
    registry.register(
        "messages_logged",
        "Messages written to log.txt",
        counter(now.logged_total),
    );
    registry.register(
        "message_bytes_logged",
        "Bytes of the messages received",
        counter(now.bytes_total),
    );
    registry.register(
        "messages_refused",
        "Messages answered ERR STORAGE",
        counter(now.refused_total),
    );
    registry.register("client_connections", "Client connections open", gauge);
    registry.register(
        "client_connections_accepted",
        "Client connections accepted since start",
        counter(now.connections_total),
    );
    let mut text = String::new();
    match encode(&mut text, &registry) {
        Ok(()) => status::openmetrics(text),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

//! The status page: HTTP on `--http`, served by axum on the headnode's own
//! runtime.
//!
//! - `/`: a page that shows the cluster now and over the last minute
//!   (`status_page.html`); it polls `/status.json` every second.
//! - `/status.json`: the same data for scripts ([`StatusJson`]).
//! - `/metrics`: the Prometheus text format (OpenMetrics), encoded by
//!   `prometheus-client`.
//!
//! The page loads `chart.js` and `style.css` from the headnode itself
//! (the `status` crate, shared with the server's page).
//!
//! Each request asks the driver for a snapshot ([`Event::Status`]); the
//! driver builds one only then, so the page costs nothing while nobody
//! looks, and the router's task never waits for HTTP.

use std::sync::Arc;

use axum::{
    extract::State,
    http::StatusCode,
    response::{Html, IntoResponse, Response},
    routing::get,
    Json, Router,
};
use prometheus_client::{
    encoding::{text::encode, EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, MetricType},
    registry::Registry,
};
use serde::Serialize;
use status::Connections;
use tokio::{net::TcpListener, sync::oneshot};
use tokio_util::sync::CancellationToken;

use crate::driver::{stats::ROUND_TRIP_BUCKETS, Event, RouterHandle, StatusReport};

const PAGE: &str = include_str!("status_page.html");

/// What the handlers share.
#[derive(Clone)]
struct Shared {
    router: RouterHandle,
    connections: Arc<Connections>,
}

/// Serves the status page on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    router: RouterHandle,
    connections: Arc<Connections>,
    shutdown: CancellationToken,
) {
    let app = Router::new()
        .route("/", get(page))
        .route("/status.json", get(status_json))
        .route("/metrics", get(metrics))
        .with_state(Shared {
            router,
            connections,
        });
    status::serve(listener, app, shutdown).await;
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn snapshot(shared: &Shared) -> Result<StatusReport, Response> {
    let (reply, answer) = oneshot::channel();
    shared.router.send(Event::Status { reply });
    answer
        .await
        .map_err(|_| (StatusCode::SERVICE_UNAVAILABLE, "the headnode is stopping").into_response())
}

async fn status_json(State(shared): State<Shared>) -> Response {
    match snapshot(&shared).await {
        Ok(report) => Json(StatusJson::new(&report, &shared.connections)).into_response(),
        Err(response) => response,
    }
}

async fn metrics(State(shared): State<Shared>) -> Response {
    let report = match snapshot(&shared).await {
        Ok(report) => report,
        Err(response) => return response,
    };
    match encode_metrics(&report, &shared.connections) {
        Ok(text) => status::openmetrics(text),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `/status.json`.
#[derive(Debug, Serialize)]
pub struct StatusJson {
    /// Seconds since the headnode started.
    pub uptime_seconds: f64,
    /// Every known datanode, in registration order.
    pub datanodes: Vec<DatanodeJson>,
    /// Heartbeat rounds started so far.
    pub heartbeat_rounds: u64,
    /// The last rounds, oldest first.
    pub last_rounds: Vec<RoundJson>,
    /// Messages stored in each of the last 60 seconds, oldest first.
    pub stored_per_second: Vec<u64>,
    /// Messages stored since start.
    pub stored_total: u64,
    /// Error answers since start, per code.
    pub errors: Vec<(String, u64)>,
    /// Client connections open now.
    pub clients: u64,
    /// Batches of messages waiting for their outcome.
    pub pending_batches: usize,
}

/// One datanode in `/status.json`.
#[derive(Debug, Serialize)]
pub struct DatanodeJson {
    /// Its name.
    pub name: String,
    /// Whether it receives messages.
    pub active: bool,
    /// Whether it has a link.
    pub linked: bool,
    /// Seconds since its last heartbeat answer.
    pub last_heard_seconds: Option<f64>,
    /// Its last heartbeat round trip, in milliseconds.
    pub round_trip_ms: Option<f64>,
    /// Messages it stored.
    pub stored: u64,
    /// Messages sent to it and not confirmed yet.
    pub in_flight: usize,
    /// Messages moved from it to another datanode.
    pub failed_over: u64,
}

/// One heartbeat round in `/status.json`.
#[derive(Debug, Serialize)]
pub struct RoundJson {
    /// When it ended (local time, as in heartbeat_server.txt).
    pub at: String,
    /// Each datanode, and whether it was active.
    pub datanodes: Vec<(String, bool)>,
}

impl StatusJson {
    fn new(report: &StatusReport, connections: &Connections) -> StatusJson {
        let datanodes = report
            .router
            .datanodes
            .iter()
            .zip(&report.heard_ago)
            .map(|(node, ago)| DatanodeJson {
                name: node.name.to_string(),
                active: node.active,
                linked: node.linked,
                last_heard_seconds: ago.map(|ago| ago.as_secs_f64()),
                round_trip_ms: node
                    .heard
                    .and_then(|heard| heard.round_trip)
                    .map(|trip| trip.as_secs_f64() * 1000.0),
                stored: stored_on(report, &node.name),
                in_flight: node.in_flight,
                failed_over: node.failed_over,
            })
            .collect();
        StatusJson {
            uptime_seconds: report.uptime.as_secs_f64(),
            datanodes,
            heartbeat_rounds: report.router.rounds,
            last_rounds: report
                .rounds
                .iter()
                .map(|(at, report)| RoundJson {
                    at: at.clone(),
                    datanodes: report
                        .iter()
                        .map(|(name, active)| (name.to_string(), *active))
                        .collect(),
                })
                .collect(),
            stored_per_second: report.per_second.clone(),
            stored_total: report.stored.iter().map(|(_, n)| n).sum(),
            errors: report
                .errors
                .iter()
                .map(|(code, n)| (code.to_string(), *n))
                .collect(),
            clients: connections.open(),
            pending_batches: report.router.pending_batches,
        }
    }
}

fn stored_on(report: &StatusReport, name: &str) -> u64 {
    report
        .stored
        .iter()
        .find(|(known, _)| &**known == name)
        .map_or(0, |(_, n)| *n)
}

type Labels = Vec<(&'static str, String)>;

/// `/metrics`, from one snapshot.
fn encode_metrics(
    report: &StatusReport,
    connections: &Connections,
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("headnode");
    let stored = Family::<Labels, Counter>::default();
    let failed_over = Family::<Labels, Counter>::default();
    let active = Family::<Labels, Gauge>::default();
    let in_flight = Family::<Labels, Gauge>::default();
    for node in &report.router.datanodes {
        let labels = vec![("datanode", node.name.to_string())];
        stored
            .get_or_create(&labels)
            .inc_by(stored_on(report, &node.name));
        failed_over.get_or_create(&labels).inc_by(node.failed_over);
        active.get_or_create(&labels).set(i64::from(node.active));
        in_flight
            .get_or_create(&labels)
            .set(i64::try_from(node.in_flight).unwrap_or(i64::MAX));
    }
    let errors = Family::<Labels, Counter>::default();
    for (code, n) in &report.errors {
        errors
            .get_or_create(&vec![("code", code.to_string())])
            .inc_by(*n);
    }
    let counter = |value: u64| {
        let counter = Counter::<u64>::default();
        counter.inc_by(value);
        counter
    };
    let gauge = |value: u64| {
        let gauge = Gauge::<i64>::default();
        gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        gauge
    };
    registry.register("messages_stored", "Messages stored, per datanode", stored);
    registry.register(
        "message_bytes_stored",
        "Bytes of the messages stored",
        counter(report.bytes),
    );
    registry.register(
        "failovers",
        "Messages moved from a datanode to another, per datanode they left",
        failed_over,
    );
    registry.register("errors", "Error answers to clients, per code", errors);
    registry.register(
        "datanode_active",
        "Whether the datanode receives messages (1) or not (0)",
        active,
    );
    registry.register(
        "datanode_in_flight",
        "Messages sent to the datanode and not confirmed yet",
        in_flight,
    );
    registry.register(
        "heartbeat_rounds",
        "Heartbeat rounds started",
        counter(report.router.rounds),
    );
    registry.register(
        "heartbeat_round_trip_seconds",
        "From a heartbeat round's start to each datanode's answer",
        RoundTrips(report.round_trips),
    );
    registry.register(
        "client_connections",
        "Client connections open",
        gauge(connections.open()),
    );
    registry.register(
        "client_connections_accepted",
        "Client connections accepted since start",
        counter(connections.total()),
    );
    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(text)
}

/// The round-trip histogram the driver keeps, as a Prometheus histogram.
#[derive(Debug)]
struct RoundTrips(([u64; ROUND_TRIP_BUCKETS.len() + 1], f64));

impl EncodeMetric for RoundTrips {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (counts, sum) = &self.0;
        let buckets: Vec<(f64, u64)> = ROUND_TRIP_BUCKETS
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(counts.iter().copied())
            .collect();
        let count = counts.iter().sum();
        encoder.encode_histogram::<NoLabelSet>(*sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

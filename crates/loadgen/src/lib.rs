//! A load generator for the server and the headnode.
//!
//! # What it measures
//!
//! `loadgen` opens `--connections` connections, shares `--messages` among
//! them, and on each keeps `--pipeline` `SEND <message>` requests in flight
//! (a new one leaves as soon as a reply frees a place). It reports:
//!
//! - **confirmed messages per second**: `OK` replies divided by the time from
//!   the first request to the last reply (connections are opened before the
//!   clock starts);
//! - **latency percentiles** p50, p99, p99.9 and the maximum, from the moment
//!   a request is written to the moment its reply is read;
//! - **errors**: `ERR` replies by code, replies that are neither `OK` nor
//!   `ERR`, and lost connections with the requests they left unanswered.
//!
//! With `--protocol resp` the same load is `RPUSH` commands in Redis's
//! protocol, so that Redis is measured by the same generator as our nodes
//! ([`wire`]).
//!
//! With `--idle-connections N` it instead opens N connections, waits until
//! each has answered a `PING` (so the node has accepted it and is serving
//! it), and reports the resident memory of `--rss-pid`.
//!
//! # Keeping out of the way
//!
//! The request is encoded once and copied; a window of requests goes
//! out in one `write(2)`; replies are decoded in place
//! ([`wire::Replies`]) and classified by their first bytes; latencies go into a per-connection HDR histogram. By default
//! the generator runs on one thread (as redis-benchmark does), leaving the
//! other cores to the node under test. See `docs/PERFORMANCE.md` for its
//! ceiling, measured against a trivial sink (`examples/sink.rs`).

pub mod config;
mod error;
mod idle;
mod load;
pub mod stats;
pub mod wire;

use std::{
    io,
    net::SocketAddr,
    time::{Duration, Instant},
};

use futures::future::join_all;
use tokio::net::TcpStream;

pub use config::Config;
pub use error::Error;
pub use stats::{IdleReport, Latencies, LoadReport};
pub use wire::Protocol;

/// The result of a run, in either mode.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A load run (boxed: it is far larger than an idle report).
    Load(Box<LoadReport>),
    /// An idle-connections run.
    Idle(IdleReport),
}

impl Outcome {
    /// Whether the run had no error at all.
    pub fn is_clean(&self) -> bool {
        match self {
            Outcome::Load(report) => report.is_clean(),
            Outcome::Idle(report) => report.is_clean(),
        }
    }

    /// The report, as text or as one line of JSON.
    pub fn render(&self, json: bool) -> String {
        match (self, json) {
            (Outcome::Load(report), false) => report.to_text(),
            (Outcome::Load(report), true) => report.to_json() + "\n",
            (Outcome::Idle(report), false) => report.to_text(),
            (Outcome::Idle(report), true) => report.to_json() + "\n",
        }
    }
}

/// Runs the configured measurement on a runtime of `config.threads` threads.
pub fn run(config: &Config) -> Result<Outcome, Error> {
    let runtime = if config.threads.get() == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads.get())
            .enable_all()
            .build()
    };
    let runtime = runtime.map_err(|source| Error::Runtime { source })?;
    runtime.block_on(run_async(config))
}

/// Runs the configured measurement on the current runtime.
pub async fn run_async(config: &Config) -> Result<Outcome, Error> {
    let addr = resolve(&config.connect).await?;
    match config.idle_connections {
        Some(count) => idle::hold(config, addr, count).await.map(Outcome::Idle),
        None => load(config, addr)
            .await
            .map(|report| Outcome::Load(Box::new(report))),
    }
}

async fn resolve(target: &str) -> Result<SocketAddr, Error> {
    tokio::net::lookup_host(target)
        .await
        .map_err(|source| Error::Resolve {
            target: target.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| Error::NoAddress {
            target: target.to_owned(),
        })
}

/// Reads `/proc` for process `pid` with `read` ([`stats::cpu_time`],
/// [`stats::rss_kib`]); `what` names the flag that gave the PID.
pub(crate) fn proc<T>(
    what: &'static str,
    pid: u32,
    read: fn(u32) -> io::Result<T>,
) -> Result<T, Error> {
    read(pid).map_err(|source| Error::Proc { what, pid, source })
}

/// How [`Error::Proc`] names the generator's own process.
const OWN: &str = "loadgen itself";

/// Opens a connection with Nagle's algorithm off, as the nodes do: a
/// request must leave at once, not wait for the previous reply's ACK.
pub(crate) async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn load(config: &Config, addr: SocketAddr) -> Result<LoadReport, Error> {
    let request = config.request();
    let connections = config.connections.get();
    let streams = join_all((0..connections).map(|_| connect(addr))).await;
    let mut report = LoadReport {
        target: config.connect.clone(),
        connections,
        pipeline: config.pipeline.get(),
        size: config.size,
        messages: config.messages,
        sent: 0,
        confirmed: 0,
        elapsed: Default::default(),
        latencies: Latencies::new(),
        errors: Default::default(),
        rss_kib: None,
        own_cpu: Duration::ZERO,
        cpu: Vec::new(),
    };
    if streams.iter().all(Result::is_err) {
        if let Some(Err(source)) = streams.into_iter().next() {
            return Err(Error::Connect { addr, source });
        }
        return Ok(report);
    }

    let own = std::process::id();
    let cpu_before = config
        .cpu_pids
        .iter()
        .map(|&pid| proc("--cpu-pids", pid, stats::cpu_time))
        .collect::<Result<Vec<_>, _>>()?;
    let own_before = proc(OWN, own, stats::cpu_time)?;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for (index, stream) in streams.into_iter().enumerate() {
        let share = config.share(index);
        let replies = config.protocol.replies(config.max_frame);
        match stream {
            Ok(stream) if connections == 1 && config.pipeline.get() == 1 && !config.tagged => {
                // A plain blocking request-reply loop (see `load`), on a
                // thread of the pool: the runtime only waits for it.
                let stream = stream
                    .into_std()
                    .map_err(|source| Error::Connect { addr, source })?;
                stream
                    .set_nonblocking(false)
                    .map_err(|source| Error::Connect { addr, source })?;
                let request = request.clone();
                tasks.push(tokio::task::spawn_blocking(move || {
                    load::request_reply(stream, &request, share, replies)
                }));
            }
            Ok(stream) => tasks.push(tokio::spawn(load::drive(
                stream,
                request.clone(),
                share,
                config.pipeline.get(),
                replies,
                config.tagged(index),
            ))),
            Err(err) => {
                if report.errors.lost_connections == 0 {
                    tracing::warn!(%err, "could not connect");
                }
                report.errors.lost_connections += 1;
                report.errors.unsent += share;
            }
        }
    }
    for task in tasks {
        let result = task.await.map_err(|source| Error::Task { source })?;
        report.sent += result.sent;
        report.confirmed += result.confirmed;
        report.latencies.merge(&result.latencies);
        report.errors.merge(&result.errors);
    }
    report.elapsed = start.elapsed();
    report.own_cpu = proc(OWN, own, stats::cpu_time)?.saturating_sub(own_before);
    for (&pid, before) in config.cpu_pids.iter().zip(cpu_before) {
        let used = proc("--cpu-pids", pid, stats::cpu_time)?.saturating_sub(before);
        report.cpu.push((pid, used));
    }
    if let Some(pid) = config.rss_pid {
        report.rss_kib = Some(proc("--rss-pid", pid, stats::rss_kib)?);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use bytes::{Buf, BytesMut};
    use clap::Parser;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;
    use crate::config::DEFAULT_SIZE;

    /// A node that answers `PONG` to `PING`, `ERR STORAGE` to every
    /// `fail_every`-th message and `OK` to the others, and hangs up after
    /// `close_after` messages on a connection.
    async fn fake_node(fail_every: u64, close_after: u64) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut inbuf = BytesMut::new();
                    let mut seen = 0u64;
                    loop {
                        if stream.read_buf(&mut inbuf).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let mut out = BytesMut::new();
                        while inbuf.len() >= 4 {
                            let len = u32::from_be_bytes(inbuf[..4].try_into().unwrap()) as usize;
                            if inbuf.len() < 4 + len {
                                break;
                            }
                            let ping = &inbuf[4..4 + len] == b"PING";
                            inbuf.advance(4 + len);
                            let reply: &[u8] = if ping {
                                b"PONG"
                            } else {
                                seen += 1;
                                if seen > close_after {
                                    let _ = stream.write_all(&out).await;
                                    return;
                                }
                                if seen.is_multiple_of(fail_every) {
                                    b"ERR STORAGE disk full"
                                } else {
                                    b"OK stored"
                                }
                            };
                            protocol::encode_frame(reply, &mut out).unwrap();
                        }
                        if stream.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn config(addr: SocketAddr, args: &[&str]) -> Config {
        let addr = addr.to_string();
        let mut all = vec!["loadgen", "--connect", &addr];
        all.extend_from_slice(args);
        Config::try_parse_from(all).unwrap()
    }

    async fn load_report(addr: SocketAddr, args: &[&str]) -> LoadReport {
        match run_async(&config(addr, args)).await.unwrap() {
            Outcome::Load(report) => *report,
            other => panic!("expected a load report, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn every_pipelined_message_is_confirmed() {
        let addr = fake_node(u64::MAX, u64::MAX).await;
        let args = [
            "--connections",
            "3",
            "--pipeline",
            "7",
            "--messages",
            "1000",
        ];
        let report = load_report(addr, &args).await;
        assert!(report.is_clean(), "{}", report.to_text());
        assert_eq!(report.sent, 1000);
        assert_eq!(report.confirmed, 1000);
        assert_eq!(report.latencies.len(), 1000);
    }

    #[tokio::test]
    async fn err_replies_are_counted_and_not_confirmed() {
        let addr = fake_node(10, u64::MAX).await;
        let report = load_report(addr, &["--pipeline", "4", "--messages", "100"]).await;
        assert!(!report.is_clean());
        assert_eq!(report.confirmed, 90);
        assert_eq!(report.errors.err_replies["STORAGE"], 10);
        assert_eq!(report.errors.total(), 10);
    }

    #[tokio::test]
    async fn a_lost_connection_counts_what_it_left_unanswered() {
        let addr = fake_node(u64::MAX, 50).await;
        let report = load_report(addr, &["--pipeline", "8", "--messages", "100"]).await;
        // The node hangs up with requests unread, so the kernel may reset
        // the connection and drop a few replies already on their way.
        assert!(report.confirmed > 0 && report.confirmed <= 50);
        assert_eq!(report.errors.lost_connections, 1);
        assert_eq!(
            report.confirmed + report.errors.unanswered + report.errors.unsent,
            100
        );
    }

    /// One connection without pipelining takes the blocking loop: the same
    /// counts as the window of tasks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn request_reply_counts_errors_and_a_lost_connection_alike() {
        let addr = fake_node(10, u64::MAX).await;
        let report = load_report(addr, &["--messages", "100"]).await;
        assert_eq!(report.confirmed, 90);
        assert_eq!(report.errors.err_replies["STORAGE"], 10);
        assert_eq!(report.latencies.len(), 100);
        let addr = fake_node(u64::MAX, 50).await;
        let report = load_report(addr, &["--messages", "100"]).await;
        assert_eq!(report.confirmed, 50);
        assert_eq!(report.errors.lost_connections, 1);
        assert_eq!((report.errors.unanswered, report.errors.unsent), (1, 49));
    }

    /// A node speaking RESP: `:<n>` to each `RPUSH`, `+PONG` to `PING`.
    async fn fake_redis() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let request = Protocol::Resp.request(DEFAULT_SIZE);
        let (ping, pong) = Protocol::Resp.ping();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let request = request.clone();
                tokio::spawn(async move {
                    let mut inbuf = BytesMut::new();
                    let mut length = 0u64;
                    while stream.read_buf(&mut inbuf).await.unwrap_or(0) > 0 {
                        let mut out = Vec::new();
                        loop {
                            if inbuf.starts_with(&request) {
                                inbuf.advance(request.len());
                                length += 1;
                                out.extend_from_slice(format!(":{length}\r\n").as_bytes());
                            } else if inbuf.starts_with(ping) {
                                inbuf.advance(ping.len());
                                out.extend_from_slice(pong);
                            } else {
                                break;
                            }
                        }
                        if stream.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resp_rpushes_are_confirmed_by_their_integer_replies() {
        let addr = fake_redis().await;
        for pipeline in ["1", "16"] {
            let args = [
                "--protocol",
                "resp",
                "--connections",
                "3",
                "--pipeline",
                pipeline,
                "--messages",
                "1000",
            ];
            let report = load_report(addr, &args).await;
            assert!(report.is_clean(), "{}", report.to_text());
            assert_eq!(report.confirmed, 1000);
        }
        let report = load_report(addr, &["--protocol", "resp", "--messages", "10"]).await;
        assert!(report.is_clean(), "{}", report.to_text());
        let args = ["--protocol", "resp", "--idle-connections", "5"];
        let Outcome::Idle(report) = run_async(&config(addr, &args)).await.unwrap() else {
            panic!("expected an idle report");
        };
        assert!(report.is_clean(), "{}", report.to_text());
    }

    #[tokio::test]
    async fn idle_connections_are_pinged_and_memory_read() {
        let addr = fake_node(u64::MAX, u64::MAX).await;
        let pid = std::process::id().to_string();
        let args = ["--idle-connections", "25", "--rss-pid", &pid];
        let Outcome::Idle(report) = run_async(&config(addr, &args)).await.unwrap() else {
            panic!("expected an idle report");
        };
        assert!(report.is_clean(), "{}", report.to_text());
        assert_eq!(report.accepted, 25);
        assert!(report.rss_kib.unwrap() > 0);
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_error_not_a_hang() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        assert!(run_async(&config(addr, &["--messages", "5"]))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn a_node_that_is_not_up_is_an_io_failure_naming_its_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = run_async(&config(addr, &["--messages", "5"]))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
        assert_eq!(node::runtime::exit_status(err.fault()), 1);
        let pid = u32::MAX.to_string();
        let err = run_async(&config(
            addr,
            &["--idle-connections", "1", "--rss-pid", &pid],
        ))
        .await
        .unwrap_err();
        assert!(err.to_string().contains("--rss-pid"), "{err}");
    }
}

//! The client of both activities.
//!
//! It connects to a server (Activity 1) or a headnode (Activity 2): nothing
//! in it depends on which, since both answer `SEND <message>` with
//! `OK <sentence>` (see `docs/PROTOCOL.md`). Messages are drawn at random
//! from the original exercise's list or read from standard input
//! ([`messages`]); every answer is printed and appended to the log file as
//! `YYYY-mm-dd HH:MM:SS -> <answer>` ([`exchange`]).
//!
//! The connection is retried with back-off for `--connect-timeout`, so the
//! client may start before its peer. Each message carries an id
//! (`SENDID`, [`exchange::tagging`]) unless `--plain`: when a connection is
//! lost, the client connects again with back-off for up to
//! `--retry-timeout` and first sends again every message not yet answered,
//! with the same ids, in order; the peer stores each id once and answers a
//! copy as it answered the first. Each message is recorded once, when its
//! answer comes. With `--plain` a lost connection ends the run: a plain
//! message whose answer was lost may have been stored, and sending it
//! again could store it twice. The exit status says whether every message
//! was confirmed.
//!
//! Whatever stops a run is an [`Error`], which says whose fault it was
//! ([`Error::fault`]); the binary turns that into its exit status.

mod config;
mod error;
pub mod exchange;
pub mod messages;
pub mod progress;
mod summary;

pub use config::Config;
pub use error::{Error, Fault};
pub use exchange::Exchange;
pub use summary::{answer_text, Summary};

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use journal::{Durability, Journal};
use node::dial::connect_with_retry;
use protocol::{Frame, FrameCodec, Reply, Request};
use tokio::net::TcpStream;
use tokio_util::{codec::Framed, sync::CancellationToken};

use crate::messages::{Draw, Source};

/// Sends the configured messages and records the answers, until the
/// messages run out or `stop` is cancelled (then the messages already sent
/// are still answered and recorded). `Err` if the run could not start (log
/// file, connection); otherwise the [`Summary`], which tells whether every
/// message was confirmed.
pub async fn run(config: &Config, stop: CancellationToken) -> Result<Summary, Error> {
    let log = Journal::open(&config.log, Durability::Never).map_err(|source| Error::OpenLog {
        path: config.log.clone(),
        source: source.into(),
    })?;
    let source = if config.stdin {
        Source::stdin()
    } else {
        Source::drawn(Draw::new(config.seed, config.count))
    }
    .paced(config.interval);
    let stream = tokio::select! {
        connected = connect(config) => connected?,
        () = stop.cancelled() => {
            return Err(Error::StoppedBeforeConnecting { peer: config.connect.clone() });
        }
    };
    tracing::info!(peer = %config.connect, log = %config.log.display(), "connected");
    let tagging = (!config.plain).then(|| {
        let id = config.client_id.clone().unwrap_or_else(|| {
            protocol::ClientId::new(&format!("{:016x}", rand::random::<u64>())).expect("hex")
        });
        tracing::info!(client_id = %id, "messages carry ids");
        exchange::tagging::Tagging::new(id)
    });
    let feed = exchange::tagging::Feed::from(source);
    // The answers expected: --count and "exit", unless read from stdin.
    let expected = (!config.stdin)
        .then_some(config.count)
        .flatten()
        .map(|n| n + 1);
    let mut out = progress::Output::for_run(expected);
    let mut stream = stream;
    let mut total: Option<Summary> = None;
    let mut backoff = node::dial::Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    // --retry-timeout counts from the last connection that got an answer.
    let mut progress_at = tokio::time::Instant::now();
    loop {
        let (read, write) = stream.into_split();
        let exchange = Exchange {
            peer: &config.connect,
            source: feed.clone(),
            tagging: tagging.clone(),
            pipeline: config.pipeline.get(),
            max_reply: config.max_reply(),
            log: &log,
            out: &mut out,
            stop: stop.clone(),
            reply_timeout: config.reply_timeout(),
        };
        let summary = exchange.run(read, write).await;
        let answered = summary.confirmed + summary.errors;
        let total = match &mut total {
            Some(total) => {
                total.confirmed += summary.confirmed;
                total.errors += summary.errors;
                total.elapsed += summary.elapsed;
                total.failure = summary.failure;
                total.interrupted = summary.interrupted;
                total
            }
            None => total.insert(summary),
        };
        let Some(tagging) = &tagging else {
            return Ok(std::mem::replace(total, Summary::empty()));
        };
        total.sent = tagging.given();
        let retry = total.failure.as_ref().is_some_and(Error::is_connection)
            && !config.retry_timeout.is_zero()
            && !stop.is_cancelled();
        if !retry {
            return Ok(std::mem::replace(total, Summary::empty()));
        }
        if answered > 0 {
            backoff.reset();
            progress_at = tokio::time::Instant::now();
        }
        let lost = total.failure.take().expect("a failure");
        tracing::warn!(err = %lost, unanswered = total.unanswered(), "connection lost; reconnecting");
        let patience = tokio::time::sleep_until(progress_at + config.retry_timeout);
        tokio::pin!(patience);
        stream = loop {
            tokio::select! {
                () = &mut patience => {
                    total.failure = Some(lost);
                    return Ok(std::mem::replace(total, Summary::empty()));
                }
                () = stop.cancelled() => {
                    total.failure = Some(lost);
                    return Ok(std::mem::replace(total, Summary::empty()));
                }
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
            match node::dial::connect_with_retry(&config.connect, Some(Duration::ZERO)).await {
                Ok(stream) => break stream,
                Err(err) => tracing::debug!(%err, "reconnecting"),
            }
        };
        total.reconnects += 1;
        total.resent += tagging.unanswered().len() as u64;
        tracing::info!(peer = %config.connect, resend = tagging.unanswered().len(), "reconnected");
    }
}

/// The health probe: `Ok` if the peer answers `PING` with `PONG` within
/// `--connect-timeout` (for the connection, then again for the reply).
pub async fn ping(config: &Config) -> Result<(), Error> {
    let peer = || config.connect.clone();
    let bad_reply = |problem| Error::BadReply {
        peer: peer(),
        problem,
    };
    let mut framed = Framed::new(connect(config).await?, FrameCodec::new(config.max_reply()));
    framed
        .send(Request::Ping.to_payload())
        .await
        .map_err(|err| Error::reading(&config.connect, err))?;
    let wait = config.connect_timeout.max(Duration::from_millis(100));
    match tokio::time::timeout(wait, framed.next()).await {
        Ok(Some(Ok(Frame::Data(payload)))) => match Reply::parse(&payload) {
            Some(Reply::Pong) => Ok(()),
            _ => Err(bad_reply(format!(
                "answered PING with {:?}",
                String::from_utf8_lossy(&payload)
            ))),
        },
        Ok(Some(Ok(Frame::Oversized { len }))) => Err(bad_reply(format!(
            "answered PING with a frame of {len} bytes"
        ))),
        Ok(Some(Err(err))) => Err(Error::reading(&config.connect, err)),
        Ok(None) => Err(Error::PeerClosed { peer: peer() }),
        Err(_) => Err(Error::NoAnswer { peer: peer(), wait }),
    }
}

/// Connects to `--connect`, retrying for `--connect-timeout`.
async fn connect(config: &Config) -> Result<TcpStream, Error> {
    connect_with_retry(&config.connect, Some(config.connect_timeout))
        .await
        .map_err(|source| Error::Connect {
            peer: config.connect.clone(),
            source,
        })
}

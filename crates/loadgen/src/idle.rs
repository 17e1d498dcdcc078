//! Idle connections, for measuring what a connection costs a node.
//!
//! A connection counts as accepted once it has answered `PING` with `PONG`:
//! only then is the node surely serving it (a completed TCP handshake alone
//! only means the kernel queued it). Connections are opened a few hundred
//! at a time so the node's listen backlog never overflows.

use std::{io, net::SocketAddr, time::Duration};

use bytes::BytesMut;
use futures::future::join_all;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{config::Config, proc, stats::rss_kib, wire::Protocol, Error, IdleReport};

/// Connections opened concurrently.
const CHUNK: usize = 200;

/// How long one connection may take to answer its `PING`.
const PING_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens `count` connections, reads the memory of `--rss-pid` while they are
/// all open, then closes them.
pub async fn hold(config: &Config, addr: SocketAddr, count: usize) -> Result<IdleReport, Error> {
    let rss = |pid| proc("--rss-pid", pid, rss_kib);
    let rss_before_kib = config.rss_pid.map(rss).transpose()?;
    let mut open = Vec::with_capacity(count);
    let mut failed = 0;
    let mut first_error = None;
    let mut left = count;
    while left > 0 {
        let chunk = left.min(CHUNK);
        left -= chunk;
        for result in join_all((0..chunk).map(|_| ping(addr, config.protocol))).await {
            match result {
                Ok(stream) => open.push(stream),
                Err(err) => {
                    // One line, not one per connection: they usually fail alike.
                    first_error.get_or_insert(err);
                    failed += 1;
                }
            }
        }
    }
    if let Some(err) = first_error {
        tracing::warn!(%err, failed, "idle connections failed; the first error");
    }
    let rss_kib = config.rss_pid.map(rss).transpose()?;
    let accepted = open.len();
    drop(open);
    Ok(IdleReport {
        target: config.connect.clone(),
        requested: count,
        accepted,
        failed,
        rss_before_kib,
        rss_kib,
    })
}

/// Connects, sends `PING`, and waits for `PONG`.
async fn ping(addr: SocketAddr, protocol: Protocol) -> io::Result<TcpStream> {
    let (ping, pong) = protocol.ping();
    tokio::time::timeout(PING_TIMEOUT, async {
        let mut stream = crate::connect(addr).await?;
        stream.write_all(ping).await?;
        let mut buf = BytesMut::with_capacity(64);
        while buf.len() < pong.len() {
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        if &buf[..] == pong {
            Ok(stream)
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected PONG, got {:?}", String::from_utf8_lossy(&buf)),
            ))
        }
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no PONG in time"))?
}

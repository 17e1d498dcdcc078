//! The server of Activity 1.
//!
//! Clients connect over TCP and send `SEND <message>` requests (see
//! `docs/PROTOCOL.md`). The server appends each message to `log.txt` as
//! `IP:PORT -> <message>` and answers
//! `OK El servidor ha recibido satisfactoriamente su mensaje '<message>'.`
//! only once the line is written (and fsynced, per `--fsync`).
//!
//! # Design
//!
//! Everything but the storage is shared with the headnode and lives in the
//! `node` crate: [`node::listener::serve`] accepts connections (each in its
//! own task, capped by `--max-connections`), and [`node::session::Session::run`]
//! serves one client, answering pipelined requests in order and handing the
//! messages that arrived together to [`LogStore`] as one batch. The store
//! writes a batch with one `write(2)` through a shared [`journal::Journal`],
//! so lines from concurrent clients never interleave and a pipelining client
//! costs one system call per batch rather than per message.
//!
//! # Tagged messages
//!
//! `SENDID <client> <seq> <acked> <message>` is stored once per id, across
//! reconnections and restarts: [`tagged`], with the ids it must remember in
//! the sidecar `log.txt.ids` beside `log.txt`.
//!
//! # Shutdown
//!
//! When `shutdown` is cancelled (SIGINT/SIGTERM in the binary), the server
//! stops accepting, every session stops reading, answers what it already
//! accepted and closes; after at most [`node::listener::DRAIN_TIMEOUT`] the
//! journal is synced (unless `--fsync never`) and [`run`] returns.

mod config;
mod error;
pub mod http;
mod store;
pub mod tagged;

pub use config::{Config, LOG_FILE};
pub use error::Error;
pub use store::{sender, LogStore};

use std::sync::Arc;

use journal::{Durability, Journal};
use node::{
    session::{Session, SessionConfig, SessionEnd},
    MessageVerb,
};
use protocol::FrameCodec;
use tokio::net::TcpListener;
use tokio_util::{codec::FramedRead, sync::CancellationToken};

/// Serves clients on `listener` until `shutdown` is cancelled.
///
/// `config.listen` is not used: the caller binds (tests bind `127.0.0.1:0`).
/// Logs `listening on <addr>` once ready. Returns an error only if the log
/// file cannot be opened (before listening is logged); write errors later
/// are answered `ERR STORAGE`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let path = config.log_path();
    let journal = match Journal::open(&path, config.fsync) {
        Ok(journal) => journal,
        Err(source) => return Err(Error::Open { path, source }),
    };
    let tagged = match tagged::open(&journal) {
        Ok(tagged) => tagged,
        Err(source) => {
            let path = source.path().to_owned();
            return Err(Error::Open { path, source });
        }
    };
    let counts = match &config.http {
        Some(addr) => {
            let http = status::listen(addr).await.map_err(|source| Error::Http {
                addr: addr.clone(),
                source,
            })?;
            let counts = Arc::new(http::Counts::new());
            tokio::spawn(http::serve(http, Arc::clone(&counts), shutdown.clone()));
            Some(counts)
        }
        None => None,
    };
    let connections = counts
        .as_ref()
        .map(|counts| Arc::clone(&counts.connections));
    let store = Arc::new(http::CountingStore::new(
        LogStore::new(journal.clone()).with_tagged(tagged),
        counts,
    ));
    let addr = listener
        .local_addr()
        .map_err(|source| Error::Listener { source })?;
    tracing::info!(
        log = %path.display(),
        fsync = %config.fsync,
        max_frame = config.max_frame,
        "listening on {addr}"
    );

    let max_frame = config.max_frame;
    let limits = SessionConfig::new(MessageVerb::Send).with_timeouts(config.timeouts());
    let sessions = shutdown.clone();
    node::listener::serve(
        listener,
        shutdown,
        config.max_connections,
        move |stream, peer, slot| {
            let store = Arc::clone(&store);
            let shutdown = sessions.clone();
            let counted = connections.as_ref().map(|connections| connections.opened());
            async move {
                let _counted = counted;
                tracing::debug!(%peer, "client connected");
                // Reads the next request right after each reply (see
                // node::eager): a client that sends one request at a time
                // saves an epoll_wait per request.
                let (read, write) = node::eager::split(stream);
                let mut reader = FramedRead::new(read, FrameCodec::new(max_frame));
                let first = node::listener::read_first_frame(
                    &mut reader,
                    peer,
                    &slot,
                    limits.timeouts,
                    &shutdown,
                )
                .await;
                let Some(first) = first else { return };
                let end = Session::new(reader, write, peer, limits)
                    .with_first_read(first)
                    .run(&*store, &shutdown)
                    .await;
                drop(slot);
                match end {
                    SessionEnd::Io(err) => tracing::warn!(%peer, %err, "connection failed"),
                    SessionEnd::TimedOut(expired) => {
                        tracing::debug!(%peer, %expired, "connection closed")
                    }
                    SessionEnd::FramingLost => {
                        tracing::warn!(%peer, "not a stream of frames; connection closed")
                    }
                    SessionEnd::PeerClosed | SessionEnd::Shutdown => {
                        tracing::debug!(%peer, "client disconnected")
                    }
                }
            }
        },
    )
    .await;

    if journal.durability() != Durability::Never {
        if let Err(err) = journal.sync().await {
            tracing::error!(%err, "final sync of the log file failed");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use futures::{SinkExt, StreamExt};
    use protocol::Frame;
    use tokio_util::codec::Framed;

    use super::*;

    /// The library can be embedded: bind, run, talk, cancel, and `run`
    /// returns once the sessions are drained.
    #[tokio::test]
    async fn runs_embedded_until_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::parse_from([
            "server",
            "--dir",
            dir.path().to_str().unwrap(),
            "--fsync",
            "always",
        ]);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(run(config, listener, shutdown.clone()));

        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut framed = Framed::new(stream, FrameCodec::new(4096));
        framed.send(&b"SEND Hola"[..]).await.unwrap();
        assert_eq!(
            framed.next().await.unwrap().unwrap(),
            Frame::Data(
                "OK El servidor ha recibido satisfactoriamente su mensaje 'Hola'."
                    .as_bytes()
                    .into()
            )
        );
        shutdown.cancel();
        assert!(framed.next().await.is_none(), "closed on shutdown");
        server.await.unwrap().unwrap();
        let log = std::fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        assert_eq!(
            log,
            format!("{} -> Hola\n", framed.get_ref().local_addr().unwrap())
        );
    }

    #[tokio::test]
    async fn an_unusable_log_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, "").unwrap();
        let config = Config::parse_from(["server", "--dir", file.to_str().unwrap()]);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = run(config, listener, CancellationToken::new())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("cannot open"), "{err}");
        assert_eq!(
            err.fault(),
            journal::Fault::Caller,
            "a file given as --dir: a usage error, exit 2"
        );
    }
}

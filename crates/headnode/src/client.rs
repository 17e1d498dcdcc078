//! Client sessions: where a client's `SEND` batches meet the router.
//!
//! Each client connection gets its own [`ClientStore`]; the shared session
//! loop ([`node::session::run`]) hands it every batch of messages that
//! arrived together. The store submits the batch to the router as one
//! event, waits for every message's outcome, appends one line per stored
//! message to registro_server.txt
//! (`YYYY-mm-dd HH:MM:SS -> El <node> ha registrado satisfactoriamente el
//! mensaje: '<message>'.`, the datanode's own sentence) with one write, and
//! only then answers the client
//! `OK Su mensaje '<message>' ha sido registrado en el <node>.`
//!
//! # Order of registro_server.txt
//!
//! Datanodes confirm in any order, but a client reads its answers in the
//! order it sent its messages, and writes registro_cliente.txt in that
//! order. So that registro_server.txt tells the same story line for line,
//! each store writes its batches' lines in submission order: a batch waits
//! for the previous batch of the same session to be logged before logging
//! its own. This costs nothing: the session answers batches in that order
//! anyway. Lines of different sessions interleave batch by batch.

use std::{net::SocketAddr, sync::Mutex};

use futures::FutureExt;
use journal::{timestamp, Journal, Record};
use node::{MessageStore, StoreFuture};
use protocol::{sentences, ErrorCode, ErrorReply};
use tokio::sync::oneshot;

use crate::driver::RouterHandle;

/// The [`MessageStore`] of one client session at the headnode.
#[derive(Debug)]
pub struct ClientStore {
    router: RouterHandle,
    registro: Journal,
    /// Fires when the previous batch of this session has been logged.
    previous: Mutex<Option<oneshot::Receiver<()>>>,
}

impl ClientStore {
    /// A store for one session.
    pub fn new(router: RouterHandle, registro: Journal) -> Self {
        ClientStore {
            router,
            registro,
            previous: Mutex::new(None),
        }
    }
}

impl MessageStore for ClientStore {
    fn store(&self, _peer: SocketAddr, messages: Vec<String>) -> StoreFuture {
        let count = messages.len();
        let outcomes = self.router.submit(messages);
        let (logged, next) = oneshot::channel();
        let previous = self
            .previous
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(next);
        let registro = self.registro.clone();
        async move {
            let outcomes = outcomes.await.unwrap_or_else(|_| {
                let err = ErrorReply::new(ErrorCode::ShuttingDown, "the headnode is stopping");
                vec![Err(err); count]
            });
            if let Some(previous) = previous {
                // An error only means that batch's future was dropped.
                let _ = previous.await;
            }
            let stamp = timestamp();
            let mut record = Record::new();
            for stored in outcomes.iter().flatten() {
                record.push(&stamp, &stored.sentence);
            }
            let written = registro.append(record.as_bytes()).await;
            let _ = logged.send(());
            if let Err(err) = &written {
                tracing::error!(%err, "cannot write registro_server.txt");
            }
            outcomes
                .into_iter()
                .map(|outcome| match (outcome, &written) {
                    (Ok(stored), Ok(())) => {
                        Ok(sentences::headnode_stored(&stored.message, &stored.node))
                    }
                    (Ok(stored), Err(err)) => Err(ErrorReply::new(
                        ErrorCode::Storage,
                        format!(
                            "stored on {} but registro_server.txt cannot be written: {err}",
                            stored.node
                        ),
                    )),
                    (Err(err), _) => Err(err),
                })
                .collect()
        }
        .boxed()
    }
}

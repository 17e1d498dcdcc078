//! Client sessions: where a client's `SEND` batches meet the router.
//!
//! Each client connection gets its own [`ClientStore`]; the shared session
//! loop ([`node::session::Session::run`]) hands it every batch of messages that
//! arrived together. The store submits the batch to the router as one
//! event and waits for every message's outcome. By then the driver has
//! appended one line per stored message to registro_server.txt
//! (`YYYY-mm-dd HH:MM:SS -> El <node> ha registrado satisfactoriamente el
//! mensaje: '<message>'.`, the sentence the datanode confirmed with, as the
//! router checked it), in this session's
//! order (see [`crate::driver`]); the store then answers the client
//! `OK Su mensaje '<message>' ha sido registrado en el <node>.`

use std::net::SocketAddr;

use futures::FutureExt;
use node::{MessageStore, StoreFuture};
use protocol::{sentences, ErrorCode, ErrorReply, Tag};

use crate::driver::{RouterHandle, SessionId};

/// The [`MessageStore`] of one client session at the headnode.
#[derive(Debug)]
pub struct ClientStore {
    router: RouterHandle,
    session: SessionId,
}

impl ClientStore {
    /// A store for one session.
    pub fn new(router: RouterHandle) -> Self {
        let session = router.new_session();
        ClientStore { router, session }
    }
}

impl MessageStore for ClientStore {
    fn store(&self, peer: SocketAddr, messages: Vec<String>) -> StoreFuture {
        self.store_tagged(peer, messages, Vec::new())
    }

    fn store_tagged(
        &self,
        _peer: SocketAddr,
        messages: Vec<String>,
        tags: Vec<Option<Tag>>,
    ) -> StoreFuture {
        let count = messages.len();
        let outcomes = self.router.submit_tagged(self.session, messages, tags);
        async move {
            let Ok(outcomes) = outcomes.await else {
                let err = ErrorReply::new(ErrorCode::ShuttingDown, "the headnode is stopping");
                return vec![Err(err); count];
            };
            outcomes
                .into_iter()
                .map(|outcome| {
                    outcome.map(|stored| sentences::headnode_stored(stored.message(), &stored.node))
                })
                .collect()
        }
        .boxed()
    }

    /// `SENDID`'s argument is passed on whole as `STOREID`'s.
    const PASSES_TAGS_ON: bool = true;
}

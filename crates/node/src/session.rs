//! A session: one peer's requests, answered in order.
//!
//! The same loop serves a client at the server, a client at the headnode and
//! the headnode at a datanode. It reads frames, parses each into a request,
//! and answers:
//!
//! - `PING` with `PONG`, and bad input with `ERR`, without touching storage;
//! - the message verb (`SEND` for clients, `STORE` at a datanode) by handing
//!   the message to a [`MessageStore`].
//!
//! # Pipelining and batching
//!
//! A peer may send many requests before reading a reply. Whatever frames
//! have already arrived together are taken as one batch, and all the
//! messages in it go to the store in one call, which the log-writing nodes
//! turn into one `write(2)`. Batches are queued in arrival order and their
//! replies are written in that order, so replies always match requests one
//! to one, whatever the store does concurrently. At most
//! [`SessionConfig::max_in_flight`] replies may be owed at once; beyond that
//! the session stops reading, and TCP pushes back on the peer.
//!
//! # Ending
//!
//! The session ends when the peer closes its side (after every owed reply is
//! written), when the framing is lost (after an `ERR FRAMING` reply), when
//! the peer holds the connection past a bound of
//! [`SessionConfig::timeouts`] (a frame left unfinished, a connection left
//! idle: [`crate::watchdog`]), or on shutdown: it stops reading, answers
//! what it already accepted, and closes.
//! A frame over the maximum is not lost framing: it gets `ERR TOO_LARGE` and
//! the session goes on.

use std::{net::SocketAddr, sync::Arc};

use bytes::BytesMut;
use futures::{future::BoxFuture, stream::FuturesOrdered, FutureExt, StreamExt};
use protocol::{
    encode_frame_with, ClientIds, ErrorCode, ErrorReply, Frame, FrameCodec, FrameError, Reply,
    Request, Tag,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    time::Instant,
};
use tokio_util::{codec::FramedRead, sync::CancellationToken};

use crate::watchdog::{Expired, Seen, Timeouts, Watchdog};

/// The outcome of storing one message: the sentence to answer with, or why
/// it could not be stored.
pub type StoreResult = Result<String, ErrorReply>;

/// Resolves to one [`StoreResult`] per message of a batch, in order.
pub type StoreFuture = BoxFuture<'static, Vec<StoreResult>>;

/// The results of a batch appended with one [`journal::Journal::write`]:
/// once it is durable, each message's `stored` sentence; if the write or
/// its sync failed, `ERR STORAGE <failed>: <error>` for every message (and
/// the error logged once), as the server and the datanode answer.
pub fn answer_when_durable(
    written: Result<journal::Written, journal::Error>,
    messages: Vec<String>,
    stored: impl Fn(&str) -> String + Send + 'static,
    failed: &'static str,
) -> StoreFuture {
    async move {
        let written = match written {
            Ok(written) => written.durable().await,
            Err(err) => Err(err),
        };
        match written {
            Ok(()) => messages.iter().map(|message| Ok(stored(message))).collect(),
            Err(err) => {
                tracing::error!(%err, messages = messages.len(), "{failed}; answering ERR STORAGE");
                let reply = ErrorReply::new(ErrorCode::Storage, format!("{failed}: {err}"));
                vec![Err(reply); messages.len()]
            }
        }
    }
    .boxed()
}

/// Where a node puts the messages its peers send.
pub trait MessageStore: Send + Sync + 'static {
    /// Stores `messages`, which `peer` sent in this order.
    ///
    /// Work should start in this call (a write, a dispatch to a datanode);
    /// the future only waits for it to be confirmed. It must yield exactly
    /// one result per message, in order.
    fn store(&self, peer: SocketAddr, messages: Vec<String>) -> StoreFuture;

    /// Stores a batch of which some messages are tagged (`SENDID`,
    /// `STOREID`): `tags[i]` is message `i`'s tag, if any. A store that
    /// recognises a message it already stored answers it as it did then,
    /// without storing it again. By default tags are ignored.
    fn store_tagged(
        &self,
        peer: SocketAddr,
        messages: Vec<String>,
        tags: Vec<Option<Tag>>,
    ) -> StoreFuture {
        let _ = tags;
        self.store(peer, messages)
    }

    /// Whether this store passes tagged messages on with their tags (the
    /// headnode): [`MessageStore::store_tagged`] then gets a tagged
    /// message's whole argument, `<client> <seq> <acked> <message>`, as it
    /// came ([`protocol::Request::parse_passing_on`]), not the message alone.
    /// A constant, so that a session's parsing is chosen once, when built.
    const PASSES_TAGS_ON: bool = false;
}

impl<T: MessageStore + ?Sized> MessageStore for Arc<T> {
    fn store(&self, peer: SocketAddr, messages: Vec<String>) -> StoreFuture {
        (**self).store(peer, messages)
    }

    fn store_tagged(
        &self,
        peer: SocketAddr,
        messages: Vec<String>,
        tags: Vec<Option<Tag>>,
    ) -> StoreFuture {
        (**self).store_tagged(peer, messages, tags)
    }

    const PASSES_TAGS_ON: bool = T::PASSES_TAGS_ON;
}

/// Which verb carries messages on this session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageVerb {
    /// `SEND`: a client talking to the server or the headnode.
    Send,
    /// `STORE`: the headnode talking to a datanode.
    Store,
}

/// Limits of a session.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// Which verb carries messages.
    pub verb: MessageVerb,
    /// Replies owed at most before the session stops reading.
    pub max_in_flight: usize,
    /// Frames taken into one batch at most.
    pub max_batch: usize,
    /// How long a frame may take, and a connection idle (see
    /// [`crate::watchdog`]); none by default.
    pub timeouts: Timeouts,
}

impl SessionConfig {
    /// Defaults for sessions whose messages use `verb`.
    pub fn new(verb: MessageVerb) -> Self {
        SessionConfig {
            verb,
            max_in_flight: 4096,
            max_batch: 256,
            timeouts: Timeouts::default(),
        }
    }

    /// These limits, with `timeouts`.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }
}

/// Why a session ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// The peer closed its side and every reply was written.
    PeerClosed,
    /// Shutdown was requested; accepted requests were answered.
    Shutdown,
    /// The byte stream stopped being frames; `ERR FRAMING` was sent.
    FramingLost,
    /// Reading or writing failed (the peer vanished, a reset).
    Io(std::io::Error),
    /// The peer held the connection without using it past a bound
    /// ([`SessionConfig::timeouts`]); accepted requests were answered.
    TimedOut(Expired),
}

type Batch = BoxFuture<'static, Vec<Reply>>;

/// One peer's connection, ready to be served.
///
/// It holds what belongs to this connection (its two halves, the peer's
/// address, the limits, any frame already read), as mini-redis's `Handler`
/// does; what the node's sessions share, the store and the shutdown signal,
/// is lent to [`Session::run`]:
///
/// ```
/// use std::net::SocketAddr;
///
/// use node::{session::{Session, SessionConfig, SessionEnd}, MessageStore, MessageVerb};
/// use protocol::{Frame, FrameCodec};
/// use tokio::net::TcpStream;
/// use tokio_util::{codec::FramedRead, sync::CancellationToken};
///
/// async fn serve(
///     stream: TcpStream,
///     peer: SocketAddr,
///     first: Option<Frame>,
///     store: &impl MessageStore,
///     shutdown: &CancellationToken,
/// ) -> SessionEnd {
///     let (read, write) = stream.into_split();
///     let reader = FramedRead::new(read, FrameCodec::default());
///     let mut session = Session::new(reader, write, peer, SessionConfig::new(MessageVerb::Send));
///     if let Some(frame) = first {
///         session = session.with_first(frame); // a frame the caller read already
///     }
///     session.run(store, shutdown).await
/// }
/// ```
pub struct Session<R, W> {
    reader: FramedRead<R, FrameCodec>,
    writer: W,
    peer: SocketAddr,
    config: SessionConfig,
    /// Frames read but not yet answered: the batch being built.
    inbox: Vec<Result<Frame, FrameError>>,
    /// The client id of the last tagged message, reused while it repeats.
    client_ids: ClientIds,
}

impl<R, W> Session<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    /// A session over `reader` and `writer`, the two halves of a
    /// connection from `peer`.
    pub fn new(
        reader: FramedRead<R, FrameCodec>,
        writer: W,
        peer: SocketAddr,
        config: SessionConfig,
    ) -> Self {
        Session {
            reader,
            writer,
            peer,
            config,
            inbox: Vec::new(),
            client_ids: ClientIds::default(),
        }
    }

    /// Answers `frame` first, before anything else `reader` yields: the
    /// headnode reads a connection's first frame to learn its role.
    pub fn with_first(mut self, frame: Frame) -> Self {
        self.inbox.insert(0, Ok(frame));
        self
    }

    /// Like [`Session::with_first`], for what reading the first frame gave,
    /// a framing error included (it is answered `ERR FRAMING`).
    pub fn with_first_read(mut self, item: Result<Frame, FrameError>) -> Self {
        self.inbox.insert(0, item);
        self
    }

    /// Serves the peer until the session ends, handing its messages to
    /// `store`; `shutdown` asks it to finish what it accepted and close.
    pub async fn run<S>(mut self, store: &S, shutdown: &CancellationToken) -> SessionEnd
    where
        S: MessageStore + ?Sized,
    {
        let max_frame = self.reader.decoder().max_frame();
        let mut pending: FuturesOrdered<Batch> = FuturesOrdered::new();
        let mut owed = 0usize;
        let mut end: Option<SessionEnd> = None;
        let mut out = BytesMut::with_capacity(8 * 1024);
        let mut watchdog = Watchdog::new(self.config.timeouts);

        loop {
            if !self.inbox.is_empty() {
                let (batch, replies, stop) = build_batch(
                    &mut self.inbox,
                    &mut self.client_ids,
                    self.peer,
                    store,
                    self.config.verb,
                    max_frame,
                );
                owed += replies;
                pending.push_back(batch);
                if end.is_none() {
                    end = stop;
                }
            }
            if end.is_some() && pending.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                Some(replies) = pending.next(), if !pending.is_empty() => {
                    owed -= encode_replies(&replies, &mut out);
                    // Answer every batch that is already complete with one write.
                    while let Some(Some(replies)) = pending.next().now_or_never() {
                        owed -= encode_replies(&replies, &mut out);
                    }
                    if let Err(err) = self.writer.write_all(&out).await {
                        return SessionEnd::Io(err);
                    }
                    out.clear();
                    watchdog.active(Instant::now());
                }
                item = self.reader.next(), if end.is_none() && owed < self.config.max_in_flight => {
                    match item {
                        None => end = Some(SessionEnd::PeerClosed),
                        Some(item) => {
                            watchdog.active(Instant::now());
                            self.inbox.push(item);
                            if self.take_ready() {
                                end = Some(SessionEnd::PeerClosed);
                            }
                        }
                    }
                }
                _ = shutdown.cancelled(), if end.is_none() => end = Some(SessionEnd::Shutdown),
                now = watchdog.tick(), if end.is_none() => {
                    let seen = Seen {
                        partial: !self.reader.read_buffer().is_empty()
                            || self.reader.decoder().is_skipping(),
                        reading: owed < self.config.max_in_flight,
                        owing: owed > 0,
                    };
                    if let Some(expired) = watchdog.check(now, seen) {
                        end = Some(SessionEnd::TimedOut(expired));
                    }
                }
            }
        }
        if let Err(err) = self.writer.flush().await {
            return SessionEnd::Io(err);
        }
        let _ = self.writer.shutdown().await;
        end.unwrap_or(SessionEnd::PeerClosed)
    }

    /// Moves into the inbox whatever frames have already arrived, without
    /// waiting, up to a batch; `true` if the peer closed its side.
    fn take_ready(&mut self) -> bool {
        while self.inbox.len() < self.config.max_batch {
            match self.reader.next().now_or_never() {
                Some(Some(item)) => self.inbox.push(item),
                Some(None) => return true,
                None => break,
            }
        }
        false
    }
}

/// Turns the frames in `inbox` into one batch of replies-to-be.
///
/// Returns the batch, how many replies it will yield, and whether the
/// session must stop reading (lost framing, a read error).
fn build_batch<S: MessageStore + ?Sized>(
    inbox: &mut Vec<Result<Frame, FrameError>>,
    client_ids: &mut ClientIds,
    peer: SocketAddr,
    store: &S,
    verb: MessageVerb,
    max_frame: usize,
) -> (Batch, usize, Option<SessionEnd>) {
    // Each slot is a reply known now, or `None` for the next stored message.
    let mut slots: Vec<Option<Reply>> = Vec::with_capacity(inbox.len());
    let mut messages = Vec::new();
    // Filled only once a tagged message comes: plain batches pay nothing.
    let mut tags: Vec<Option<Tag>> = Vec::new();
    let mut stop = None;
    let parse = if S::PASSES_TAGS_ON {
        Request::parse_passing_on
    } else {
        Request::parse_with
    };
    for item in inbox.drain(..) {
        match item {
            Ok(Frame::Data(payload)) => match (parse(&payload, client_ids), verb) {
                (Ok(Request::Send(message)), MessageVerb::Send)
                | (Ok(Request::Store(message)), MessageVerb::Store) => {
                    if !tags.is_empty() {
                        tags.push(None);
                    }
                    messages.push(message);
                    slots.push(None);
                }
                (Ok(Request::SendTagged(tag, message)), MessageVerb::Send)
                | (Ok(Request::StoreTagged(tag, message)), MessageVerb::Store) => {
                    if tags.is_empty() {
                        // Once, sized for the batch: growing it by doubling
                        // cost three allocations a batch (docs/PERFORMANCE.md).
                        tags.reserve_exact(slots.capacity());
                    }
                    tags.resize(messages.len(), None);
                    tags.push(Some(tag));
                    messages.push(message);
                    slots.push(None);
                }
                (Ok(Request::Ping), _) => slots.push(Some(Reply::Pong)),
                (Ok(request), _) => slots.push(Some(wrong_role(&request, verb).into())),
                (Err(err), _) => slots.push(Some(err.into())),
            },
            Ok(Frame::Oversized { len }) => {
                slots.push(Some(ErrorReply::too_large(len, max_frame).into()));
            }
            Err(FrameError::FramingLost { len }) => {
                slots.push(Some(ErrorReply::framing_lost(len).into()));
                stop = Some(SessionEnd::FramingLost);
                break;
            }
            Err(FrameError::Io(err)) => {
                stop = Some(SessionEnd::Io(err));
                break;
            }
        }
    }
    inbox.clear();
    let replies = slots.len();
    let batch: Batch = if messages.is_empty() {
        let replies: Vec<Reply> = slots.into_iter().flatten().collect();
        futures::future::ready(replies).boxed()
    } else {
        let expected = messages.len();
        let stored = if tags.is_empty() {
            store.store(peer, messages)
        } else {
            store.store_tagged(peer, messages, tags)
        };
        async move {
            let mut results = stored.await.into_iter();
            debug_assert_eq!(results.len(), expected, "one result per message");
            slots
                .into_iter()
                .map(|slot| {
                    slot.unwrap_or_else(|| match results.next() {
                        Some(Ok(sentence)) => Reply::Ok(sentence),
                        Some(Err(err)) => Reply::Err(err),
                        None => Reply::Err(ErrorReply::new(
                            ErrorCode::Storage,
                            "the store returned no result for this message",
                        )),
                    })
                })
                .collect()
        }
        .boxed()
    };
    (batch, replies, stop)
}

fn wrong_role(request: &Request, verb: MessageVerb) -> ErrorReply {
    let reason = match (request, verb) {
        (Request::Send(_) | Request::SendTagged(..), MessageVerb::Store) => {
            "SEND is for clients; this is a datanode link"
        }
        (Request::Store(_) | Request::StoreTagged(..), MessageVerb::Send) => {
            "STORE is for datanodes; clients use SEND"
        }
        (Request::Register(_), _) => "REGISTER is only accepted by a headnode, as a first command",
        _ => "this command is not accepted on this connection",
    };
    ErrorReply::new(ErrorCode::WrongRole, reason)
}

/// Appends `replies` as frames to `out`; returns how many.
fn encode_replies(replies: &[Reply], out: &mut BytesMut) -> usize {
    for reply in replies {
        encode_frame_with(out, |buf| reply.write_payload(buf));
    }
    replies.len()
}

#[cfg(test)]
mod tests;

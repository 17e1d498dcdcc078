//! The headnode's brain: routing, heartbeats and failover as a pure state
//! machine.
//!
//! # Why a state machine
//!
//! Everything the headnode decides (which datanode stores a message, when a
//! datanode stops counting as active, which messages must be sent again,
//! when a client must be told that nothing can store its message) depends
//! on the order of events and on time. [`Router`] holds all of that state
//! and nothing else: it owns no socket, spawns no task and never reads a
//! clock. It is fed
//!
//! - events: [`Router::register`], [`Router::link_closed`],
//!   [`Router::reply`] (a datanode's `OK`/`ERR`/`PONG`), [`Router::submit`]
//!   (a batch of client messages), [`Router::shutdown`];
//! - clock ticks: [`Router::tick`], with the current [`Instant`] passed in,
//!   at the latest at [`Router::next_deadline`];
//!
//! and answers with the frames to send on each link (`STORE`s and `PING`s,
//! taken with [`Router::take_output`]) and with [`Action`]s, taken with
//! [`Router::drain_actions`]: close link N, answer batch T, write a heartbeat
//! report. A thin driver (`crate::driver`) owns the sockets and the clock
//! and carries them out. The router encodes the frames itself, straight
//! from the message it keeps, because an action holding a `STORE` request
//! would need a copy of every message (that copy showed in the profile). The tests below drive the same machine with
//! made-up instants: heartbeat timeouts, stalls and failovers are checked
//! deterministically, with no network and no sleeping.
//!
//! # Datanodes and links
//!
//! A datanode is known by its name from its first registration on, and
//! stays in the table (in registration order) for the life of the headnode,
//! so that every heartbeat round can report it. At most one *link* (a
//! registered TCP connection) belongs to a name at a time. A datanode is
//! *active* when it may receive messages: it is linked, and since it
//! registered or last answered a `PING` it has neither missed a heartbeat
//! nor left a `STORE` unconfirmed for longer than the store timeout.
//!
//! Requests on a link are answered in order, so each link keeps the FIFO of
//! requests it owes replies to; a reply is matched with the front of that
//! queue. A reply that does not fit (a `PONG` where an `OK` is owed, a
//! reply nobody asked for) is a protocol violation: the link is closed.
//!
//! # Placement
//!
//! Each message is placed on its own (a batch may be spread over every
//! datanode) by the configured [`Placement`] among the *candidates*: active,
//! linked datanodes that have not refused this message with `ERR`. The
//! load the least-loaded policy looks at is the number of `STORE`s a link
//! owes. `STORE`s are pipelined: a link may owe thousands, the router never
//! waits for one before sending the next.
//!
//! # Heartbeats
//!
//! Every `heartbeat_interval` a round starts: every linked datanode (active
//! or not) is sent a `PING`. The round ends when every pinged datanode has
//! answered, or `heartbeat_timeout` after it started, whichever comes first.
//! At its end, a datanode that did not answer is marked inactive, and one
//! report line per known datanode is emitted: active, or inactive (unlinked
//! or silent). A round never clears the active set: a datanode stays active
//! while its `PING` is in flight and changes state only on evidence (a
//! missed deadline, a dropped link, a `PONG`), so routing never sees an
//! empty cluster because a round is in progress.
//!
//! A `PONG` (even a late one) proves the datanode is serving its link again:
//! an inactive, linked datanode becomes active when one arrives. A datanode
//! whose link dropped becomes active again only by registering again.
//!
//! Because a link's replies come in order, a `PONG` also proves that every
//! `STORE` sent before that `PING` has been answered: a datanode that takes
//! longer than the timeout to work through its queue is, for routing
//! purposes, as good as dead, and is treated so until it catches up.
//!
//! # Failover
//!
//! Each pending message remembers the link it was last sent on. When that
//! link drops, or its datanode is marked inactive (a missed heartbeat, or a
//! `STORE` left unconfirmed for `store_timeout`), every message last sent
//! there is placed again on another candidate. If a datanode answers `ERR`,
//! the message is placed on a datanode that has not refused it; when every
//! active datanode has refused it, the client gets the last error.
//!
//! A message is answered exactly once: by the first `OK` for it, from
//! whichever link it comes (a stalled datanode that wakes up may confirm
//! before the replacement does; either confirmation names a datanode that
//! wrote the message). Later `OK`s for it are ignored. A message can thus be
//! written twice (at-least-once), but is confirmed once.
//!
//! With no candidate at all, a message is *parked* until a datanode becomes
//! active (registers, or answers a `PING` again); after
//! `unavailable_timeout` parked, it is answered `ERR UNAVAILABLE`.
//!
//! # Shutdown
//!
//! After [`Router::shutdown`] nothing is placed any more: parked messages
//! and new batches are answered `ERR SHUTTING_DOWN` at once; messages
//! already sent get `shutdown_grace` to be confirmed, after which they are
//! answered `ERR SHUTTING_DOWN` too. Links are closed as soon as no batch is
//! pending, or when the grace ends.

use std::{
    collections::VecDeque,
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::{BufMut, Bytes, BytesMut};
use protocol::{
    command::is_valid_name, encode_frame_with, sentences, ErrorCode, ErrorReply, Reply, Request,
};
use rand::{rngs::StdRng, SeedableRng};

use crate::{
    idmap::IdMap,
    placement::{Candidate, Placement},
};

/// Default time between heartbeat rounds, as the course asked.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Default time a datanode has to answer a heartbeat `PING`.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time a datanode has to confirm a `STORE` before its messages
/// fail over. A healthy datanode confirms in well under a millisecond (a few
/// milliseconds with `--fsync always`); seconds mean it is stuck.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(3);
/// Default time a message waits for an active datanode before the client is
/// answered `ERR UNAVAILABLE`.
pub const DEFAULT_UNAVAILABLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time messages already sent to a datanode get to be confirmed after
/// shutdown starts. Well under the listener's 1.5 s drain.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// Timing and placement settings of a [`Router`].
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// How messages are spread over the active datanodes.
    pub placement: Placement,
    /// Time between the starts of two heartbeat rounds.
    pub heartbeat_interval: Duration,
    /// Time a datanode has to answer a round's `PING`. Should be shorter
    /// than the interval (a new round ends the previous one).
    pub heartbeat_timeout: Duration,
    /// Time a datanode has to confirm a `STORE`.
    pub store_timeout: Duration,
    /// Time a message waits for an active datanode.
    pub unavailable_timeout: Duration,
    /// Time sent messages get to be confirmed after shutdown starts.
    pub shutdown_grace: Duration,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            placement: Placement::Random,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
            store_timeout: DEFAULT_STORE_TIMEOUT,
            unavailable_timeout: DEFAULT_UNAVAILABLE_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// Identifies one datanode connection. The driver numbers them; a
/// datanode that registers again gets a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

impl std::fmt::Display for LinkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "link#{}", self.0)
    }
}

/// A datanode's reply on its link, as [`Router::reply`] takes it.
///
/// Unlike [`Reply`], an `OK` keeps its sentence as the bytes of the frame it
/// came in: the headnode reads one per message, and copying each into a
/// `String` showed in its profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkReply {
    /// `OK <sentence>`.
    Ok(Sentence),
    /// `PONG`.
    Pong,
    /// `ERR <code> <reason>`.
    Err(ErrorReply),
}

impl LinkReply {
    /// Parses a reply frame's payload, as [`Reply::parse`] does; `None` if
    /// it is not a reply.
    pub fn parse(payload: &Bytes) -> Option<LinkReply> {
        match &payload[..] {
            b"PONG" => Some(LinkReply::Pong),
            b"OK" => Some(LinkReply::Ok(Sentence::default())),
            [b'O', b'K', b' ', ..] => Sentence::new(payload.slice(3..)).map(LinkReply::Ok),
            _ => match Reply::parse(payload)? {
                Reply::Err(err) => Some(LinkReply::Err(err)),
                // Not reached: the cases above took every OK and PONG.
                other => Some(other.into()),
            },
        }
    }
}

impl From<Reply> for LinkReply {
    fn from(reply: Reply) -> Self {
        match reply {
            Reply::Ok(sentence) => LinkReply::Ok(sentence.into()),
            Reply::Pong => LinkReply::Pong,
            Reply::Err(err) => LinkReply::Err(err),
        }
    }
}

impl fmt::Display for LinkReply {
    /// The reply as it appears on the wire.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkReply::Ok(sentence) if sentence.is_empty() => f.write_str("OK"),
            LinkReply::Ok(sentence) => write!(f, "OK {sentence}"),
            LinkReply::Pong => f.write_str("PONG"),
            LinkReply::Err(err) => write!(f, "{err}"),
        }
    }
}

/// The text of an `OK` reply: UTF-8 bytes shared with the frame they were
/// read in.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Sentence(Bytes);

impl Sentence {
    /// The sentence in `bytes`, if they are UTF-8.
    pub fn new(bytes: Bytes) -> Option<Sentence> {
        std::str::from_utf8(&bytes).ok()?;
        Some(Sentence(bytes))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Checked by every constructor; checking again is cheaper than a
        // copy and needs no unsafe code.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Whether the sentence is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Sentence {
    fn from(text: String) -> Self {
        Sentence(Bytes::from(text))
    }
}

impl PartialEq<String> for Sentence {
    fn eq(&self, other: &String) -> bool {
        self.0 == other.as_bytes()
    }
}

impl fmt::Display for Sentence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Sentence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A message a datanode confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Name of the datanode that confirmed it.
    pub node: Arc<str>,
    /// The datanode's sentence (its `OK` text), for registro_server.txt.
    pub sentence: Sentence,
    /// The message itself, handed back for the client's sentence.
    pub message: String,
}

/// What became of one message.
pub type Outcome = Result<Stored, ErrorReply>;

/// Something the driver must do (besides sending the frames of
/// [`Router::take_output`]).
#[derive(Debug)]
pub enum Action<T> {
    /// Close `link`; whatever it still sends is ignored. Frames decided for
    /// it and not yet taken are dropped: its messages have been placed
    /// again elsewhere.
    Close {
        /// The link.
        link: LinkId,
    },
    /// Every message of the batch submitted with `token` has an outcome.
    Done {
        /// The token given to [`Router::submit`].
        token: T,
        /// One outcome per message, in submission order.
        outcomes: Vec<Outcome>,
    },
    /// A heartbeat round ended: one `(name, active)` per known datanode, in
    /// registration order.
    Heartbeat {
        /// The report.
        report: Vec<(Arc<str>, bool)>,
    },
}

/// What the router knows about one datanode, for inspection and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeStatus {
    /// Whether it may receive messages.
    pub active: bool,
    /// Whether it has a registered link.
    pub linked: bool,
    /// `STORE`s its link owes a reply to.
    pub load: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct MsgId {
    batch: u64,
    index: usize,
}

#[derive(Debug)]
struct Node {
    name: Arc<str>,
    link: Option<Link>,
    active: bool,
}

#[derive(Debug)]
struct Link {
    id: LinkId,
    /// Requests sent and not answered yet, oldest first.
    queue: VecDeque<Owed>,
    /// How many of them are `STORE`s.
    stores: usize,
    /// The round whose `PING` this link has not answered yet.
    ping: Option<u64>,
    /// Frames decided for this link and not yet taken by the driver.
    out: BytesMut,
}

impl Link {
    fn new(id: LinkId) -> Self {
        Link {
            id,
            queue: VecDeque::new(),
            stores: 0,
            ping: None,
            out: BytesMut::new(),
        }
    }

    /// When the oldest `STORE` still owed was sent.
    fn oldest_store(&self) -> Option<Instant> {
        self.queue.iter().find_map(|owed| match owed {
            Owed::Store { sent, .. } => Some(*sent),
            Owed::Ping { .. } => None,
        })
    }

    fn store_ids(&self) -> Vec<MsgId> {
        self.queue
            .iter()
            .filter_map(|owed| match owed {
                Owed::Store { msg, .. } => Some(*msg),
                Owed::Ping { .. } => None,
            })
            .collect()
    }
}

#[derive(Debug)]
enum Owed {
    Store { msg: MsgId, sent: Instant },
    Ping { round: u64 },
}

#[derive(Debug)]
struct Msg {
    text: String,
    /// The link it was last sent on; `None` while parked.
    on: Option<LinkId>,
    /// Links that answered `ERR` to it.
    refused: Vec<LinkId>,
    last_error: Option<ErrorReply>,
}

#[derive(Debug)]
enum Slot {
    Pending(Msg),
    Done(Outcome),
}

#[derive(Debug)]
struct Batch<T> {
    token: T,
    slots: Vec<Slot>,
    remaining: usize,
}

#[derive(Debug)]
struct Parked {
    msg: MsgId,
    deadline: Instant,
}

#[derive(Debug)]
struct Round {
    number: u64,
    deadline: Instant,
}

#[derive(Debug)]
struct Stopping {
    deadline: Instant,
    links_closed: bool,
}

/// Routing, heartbeat and failover state of the headnode. `T` is the token
/// the driver attaches to each batch (it gets it back in [`Action::Done`]).
#[derive(Debug)]
pub struct Router<T> {
    config: RouterConfig,
    rng: StdRng,
    nodes: Vec<Node>,
    links: IdMap<LinkId, usize>,
    batches: IdMap<u64, Batch<T>>,
    next_batch: u64,
    parked: VecDeque<Parked>,
    cursor: usize,
    round: Option<Round>,
    rounds: u64,
    next_round: Instant,
    stopping: Option<Stopping>,
    actions: Vec<Action<T>>,
    candidates: Vec<Candidate>,
}

impl<T> Router<T> {
    /// A router with no datanode, started at `now`; `seed` seeds random
    /// placement. The first heartbeat round starts one interval after `now`.
    pub fn new(config: RouterConfig, seed: u64, now: Instant) -> Self {
        let next_round = now + config.heartbeat_interval;
        Router {
            config,
            rng: StdRng::seed_from_u64(seed),
            nodes: Vec::new(),
            links: IdMap::default(),
            batches: IdMap::default(),
            next_batch: 0,
            parked: VecDeque::new(),
            cursor: 0,
            round: None,
            rounds: 0,
            next_round,
            stopping: None,
            actions: Vec::new(),
            candidates: Vec::new(),
        }
    }

    /// The actions decided since the last call, in order.
    pub fn drain_actions(&mut self) -> std::vec::Drain<'_, Action<T>> {
        self.actions.drain(..)
    }

    /// Hands `each` the frames decided for each link since the last call
    /// (requests in the order they were decided, which is the order their
    /// replies will come back in), to be written on that link.
    pub fn take_output(&mut self, mut each: impl FnMut(LinkId, &[u8])) {
        for link in self.nodes.iter_mut().filter_map(|node| node.link.as_mut()) {
            if !link.out.is_empty() {
                each(link.id, &link.out);
                link.out.clear();
            }
        }
    }

    /// The status of datanode `name`, if it ever registered.
    pub fn status(&self, name: &str) -> Option<NodeStatus> {
        let node = self.nodes.iter().find(|node| &*node.name == name)?;
        Some(NodeStatus {
            active: node.active,
            linked: node.link.is_some(),
            load: node.link.as_ref().map_or(0, |link| link.stores),
        })
    }

    /// Names of the datanodes that may receive messages now.
    pub fn active_nodes(&self) -> Vec<Arc<str>> {
        self.nodes
            .iter()
            .filter(|node| node.active && node.link.is_some())
            .map(|node| Arc::clone(&node.name))
            .collect()
    }

    /// Number of batches not fully answered yet.
    pub fn pending_batches(&self) -> usize {
        self.batches.len()
    }

    /// When [`Router::tick`] must be called next, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        if let Some(stopping) = &self.stopping {
            let done = stopping.links_closed && self.batches.is_empty();
            return (!done).then_some(stopping.deadline);
        }
        let mut next = self.next_round;
        if let Some(round) = &self.round {
            next = next.min(round.deadline);
        }
        for node in self.nodes.iter().filter(|node| node.active) {
            if let Some(sent) = node.link.as_ref().and_then(Link::oldest_store) {
                next = next.min(sent + self.config.store_timeout);
            }
        }
        if let Some(parked) = self.parked.front() {
            next = next.min(parked.deadline);
        }
        Some(next)
    }

    /// A datanode asks to register `name` on `link`.
    ///
    /// Refused with `NAME_TAKEN` while an active datanode holds the name. A
    /// name whose holder is unlinked or inactive (it missed a heartbeat: its
    /// link is probably dead but not yet detected) is taken over: the old
    /// link is closed. On success the datanode is active at once, and
    /// parked messages are placed.
    pub fn register(&mut self, link: LinkId, name: &str, now: Instant) -> Result<(), ErrorReply> {
        if self.stopping.is_some() {
            return Err(shutting_down());
        }
        if !is_valid_name(name) {
            return Err(ErrorReply::new(
                ErrorCode::BadArgument,
                "invalid datanode name",
            ));
        }
        let index = match self.nodes.iter().position(|node| &*node.name == name) {
            Some(index) => {
                if let Some(old) = &self.nodes[index].link {
                    if self.nodes[index].active {
                        return Err(ErrorReply::new(
                            ErrorCode::NameTaken,
                            format!("a live datanode is registered as '{name}'"),
                        ));
                    }
                    tracing::info!(%name, old = %old.id, new = %link, "replacing an inactive link");
                    self.actions.push(Action::Close { link: old.id });
                    self.detach(index, now);
                }
                index
            }
            None => {
                self.nodes.push(Node {
                    name: name.into(),
                    link: None,
                    active: false,
                });
                self.nodes.len() - 1
            }
        };
        self.nodes[index].link = Some(Link::new(link));
        self.links.insert(link, index);
        tracing::info!(%name, %link, "datanode registered");
        self.activate(index, now);
        Ok(())
    }

    /// `link` dropped (the connection closed or failed).
    pub fn link_closed(&mut self, link: LinkId, now: Instant) {
        let Some(&index) = self.links.get(&link) else {
            return;
        };
        if self.stopping.is_none() {
            tracing::warn!(name = %self.nodes[index].name, %link, "lost the link to a datanode");
        }
        self.detach(index, now);
        self.maybe_end_round();
    }

    /// `link` sent `reply`, the answer to the oldest request it owes.
    pub fn reply(&mut self, link: LinkId, reply: impl Into<LinkReply>, now: Instant) {
        let reply = reply.into();
        let Some(&index) = self.links.get(&link) else {
            // A link we closed; what it still says does not matter.
            return;
        };
        let node = &mut self.nodes[index];
        let owed = node
            .link
            .as_mut()
            .expect("links maps only linked nodes")
            .queue
            .pop_front();
        match (owed, reply) {
            (Some(Owed::Store { msg, .. }), LinkReply::Ok(sentence)) => {
                let name = Arc::clone(&node.name);
                node.link.as_mut().expect("linked").stores -= 1;
                self.confirm(msg, name, sentence);
            }
            (Some(Owed::Store { msg, .. }), LinkReply::Err(err)) => {
                tracing::warn!(name = %node.name, %err, "a datanode refused a message");
                node.link.as_mut().expect("linked").stores -= 1;
                self.refused(msg, link, err, now);
            }
            (Some(Owed::Ping { round }), LinkReply::Pong) => self.pong(index, round, now),
            (owed, reply) => {
                tracing::warn!(
                    name = %node.name,
                    %link,
                    owed = ?owed.as_ref().map(|owed| match owed {
                        Owed::Store { .. } => "OK or ERR",
                        Owed::Ping { .. } => "PONG",
                    }),
                    reply = %reply,
                    "protocol violation on a datanode link; closing it"
                );
                if let Some(owed) = owed {
                    // Still owed: its message must fail over with the rest.
                    node.link.as_mut().expect("linked").queue.push_front(owed);
                }
                self.actions.push(Action::Close { link });
                self.detach(index, now);
                self.maybe_end_round();
            }
        }
    }

    /// A client session submits `messages`; `token` comes back with their
    /// outcomes in one [`Action::Done`].
    pub fn submit(&mut self, token: T, messages: Vec<String>, now: Instant) {
        if messages.is_empty() {
            self.actions.push(Action::Done {
                token,
                outcomes: Vec::new(),
            });
            return;
        }
        if self.stopping.is_some() {
            let outcomes = messages.iter().map(|_| Err(shutting_down())).collect();
            self.actions.push(Action::Done { token, outcomes });
            return;
        }
        let batch = self.next_batch;
        self.next_batch += 1;
        let count = messages.len();
        let slots = messages
            .into_iter()
            .map(|text| {
                Slot::Pending(Msg {
                    text,
                    on: None,
                    refused: Vec::new(),
                    last_error: None,
                })
            })
            .collect();
        self.batches.insert(
            batch,
            Batch {
                token,
                slots,
                remaining: count,
            },
        );
        let deadline = now + self.config.unavailable_timeout;
        for index in 0..count {
            self.dispatch(MsgId { batch, index }, now, deadline);
        }
    }

    /// Time passed: run heartbeat rounds, detect stalls, expire parked
    /// messages, end the shutdown grace.
    pub fn tick(&mut self, now: Instant) {
        if let Some(stopping) = &self.stopping {
            if now >= stopping.deadline && !(stopping.links_closed && self.batches.is_empty()) {
                let pending: Vec<MsgId> = self.pending_ids().collect();
                for id in pending {
                    self.answer(id, Err(shutting_down()));
                }
                self.close_all_links();
            }
            return;
        }
        if self
            .round
            .as_ref()
            .is_some_and(|round| now >= round.deadline)
        {
            self.end_round(now);
        }
        if now >= self.next_round {
            self.start_round(now);
            self.next_round += self.config.heartbeat_interval;
            if self.next_round <= now {
                // We were not called for a while: start afresh from now.
                self.next_round = now + self.config.heartbeat_interval;
            }
        }
        for index in 0..self.nodes.len() {
            let node = &self.nodes[index];
            let stalled = node.active
                && node
                    .link
                    .as_ref()
                    .and_then(Link::oldest_store)
                    .is_some_and(|sent| now >= sent + self.config.store_timeout);
            if stalled {
                tracing::warn!(
                    name = %node.name,
                    timeout = ?self.config.store_timeout,
                    "a STORE went unconfirmed; marking the datanode inactive"
                );
                self.deactivate(index, now);
            }
        }
        while self
            .parked
            .front()
            .is_some_and(|parked| now >= parked.deadline)
        {
            let parked = self.parked.pop_front().expect("front exists");
            if self.is_parked(parked.msg) {
                let err = ErrorReply::new(
                    ErrorCode::Unavailable,
                    format!(
                        "no datanode could store the message within {:?}",
                        self.config.unavailable_timeout
                    ),
                );
                self.answer(parked.msg, Err(err));
            }
        }
    }

    /// Stop placing messages; see the module docs.
    pub fn shutdown(&mut self, now: Instant) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(Stopping {
            deadline: now + self.config.shutdown_grace,
            links_closed: false,
        });
        self.round = None;
        for parked in std::mem::take(&mut self.parked) {
            if self.is_parked(parked.msg) {
                self.answer(parked.msg, Err(shutting_down()));
            }
        }
        if self.batches.is_empty() {
            self.close_all_links();
        }
    }

    // ----- placement -----

    /// Sends message `id` to a candidate, or parks it until `deadline`.
    fn dispatch(&mut self, id: MsgId, now: Instant, deadline: Instant) {
        if self.stopping.is_some() {
            self.answer(id, Err(shutting_down()));
            return;
        }
        let Some(Slot::Pending(msg)) = self
            .batches
            .get_mut(&id.batch)
            .and_then(|batch| batch.slots.get_mut(id.index))
        else {
            return;
        };
        self.candidates.clear();
        let mut any_active = false;
        for (index, node) in self.nodes.iter().enumerate() {
            let Some(link) = node.link.as_ref().filter(|_| node.active) else {
                continue;
            };
            any_active = true;
            if !msg.refused.contains(&link.id) {
                self.candidates.push(Candidate {
                    index,
                    load: link.stores,
                });
            }
        }
        let chosen = self.config.placement.choose(
            &self.candidates,
            &mut self.cursor,
            self.nodes.len(),
            &mut self.rng,
        );
        let Some(index) = chosen else {
            if any_active {
                // Every active datanode refused it: pass the refusal on.
                let err = msg.last_error.clone().unwrap_or_else(|| {
                    ErrorReply::new(ErrorCode::Storage, "every datanode refused the message")
                });
                self.answer(id, Err(err));
            } else {
                if self.parked.is_empty() {
                    tracing::warn!(
                        timeout = ?self.config.unavailable_timeout,
                        "no active datanode: messages wait for one"
                    );
                }
                self.parked.push_back(Parked { msg: id, deadline });
            }
            return;
        };
        let link = self.nodes[index]
            .link
            .as_mut()
            .expect("candidates are linked");
        encode_store(&mut link.out, &msg.text);
        link.queue.push_back(Owed::Store { msg: id, sent: now });
        link.stores += 1;
        msg.on = Some(link.id);
    }

    /// Places the parked messages again (a datanode became active).
    fn dispatch_parked(&mut self, now: Instant) {
        for parked in std::mem::take(&mut self.parked) {
            if self.is_parked(parked.msg) {
                // Parked again with its first deadline if still no candidate.
                self.dispatch(parked.msg, now, parked.deadline);
            }
        }
    }

    // ----- answers -----

    fn confirm(&mut self, id: MsgId, node: Arc<str>, sentence: Sentence) {
        let Some(msg) = self.pending_mut(id) else {
            // Already answered: a second copy was stored (at-least-once).
            tracing::debug!(%node, "late confirmation of a message already answered");
            return;
        };
        if sentences::parse_datanode_stored(sentence.as_str()) != Some((&node, msg.text.as_str())) {
            tracing::warn!(%node, %sentence, "a datanode confirmed with an unexpected sentence");
        }
        let message = std::mem::take(&mut msg.text);
        self.answer(
            id,
            Ok(Stored {
                node,
                sentence,
                message,
            }),
        );
    }

    fn refused(&mut self, id: MsgId, link: LinkId, err: ErrorReply, now: Instant) {
        let Some(msg) = self.pending_mut(id) else {
            return;
        };
        msg.refused.push(link);
        msg.last_error = Some(err);
        if msg.on == Some(link) {
            msg.on = None;
            self.dispatch(id, now, now + self.config.unavailable_timeout);
        }
    }

    /// Records the outcome of message `id`; emits the batch when complete.
    fn answer(&mut self, id: MsgId, outcome: Outcome) {
        let Some(batch) = self.batches.get_mut(&id.batch) else {
            return;
        };
        let slot = &mut batch.slots[id.index];
        if !matches!(slot, Slot::Pending(_)) {
            return;
        }
        *slot = Slot::Done(outcome);
        batch.remaining -= 1;
        if batch.remaining == 0 {
            let batch = self.batches.remove(&id.batch).expect("present");
            let outcomes = batch
                .slots
                .into_iter()
                .map(|slot| match slot {
                    Slot::Done(outcome) => outcome,
                    Slot::Pending(_) => unreachable!("every slot is done"),
                })
                .collect();
            self.actions.push(Action::Done {
                token: batch.token,
                outcomes,
            });
            if self.stopping.is_some() && self.batches.is_empty() {
                self.close_all_links();
            }
        }
    }

    // ----- datanode state -----

    /// Marks datanode `index` active and places parked messages.
    fn activate(&mut self, index: usize, now: Instant) {
        let node = &mut self.nodes[index];
        if !node.active {
            node.active = true;
            tracing::info!(name = %node.name, "datanode active");
        }
        self.dispatch_parked(now);
    }

    /// Marks datanode `index` inactive and fails over its messages.
    fn deactivate(&mut self, index: usize, now: Instant) {
        let node = &mut self.nodes[index];
        if !node.active {
            return;
        }
        node.active = false;
        tracing::warn!(name = %node.name, "datanode inactive");
        if let Some(link) = &node.link {
            let (link, ids) = (link.id, link.store_ids());
            self.fail_over(link, ids, now);
        }
    }

    /// Unlinks datanode `index` (its link is gone) and fails over.
    fn detach(&mut self, index: usize, now: Instant) {
        let node = &mut self.nodes[index];
        node.active = false;
        let Some(link) = node.link.take() else {
            return;
        };
        self.links.remove(&link.id);
        self.fail_over(link.id, link.store_ids(), now);
    }

    /// Places again every message of `ids` last sent on `link`.
    fn fail_over(&mut self, link: LinkId, ids: Vec<MsgId>, now: Instant) {
        let deadline = now + self.config.unavailable_timeout;
        for id in ids {
            let Some(msg) = self.pending_mut(id) else {
                continue;
            };
            if msg.on == Some(link) {
                msg.on = None;
                self.dispatch(id, now, deadline);
            }
        }
    }

    fn pong(&mut self, index: usize, round: u64, now: Instant) {
        let link = self.nodes[index].link.as_mut().expect("linked");
        if link.ping == Some(round) {
            link.ping = None;
        }
        self.activate(index, now);
        self.maybe_end_round();
    }

    fn close_all_links(&mut self) {
        for node in &mut self.nodes {
            node.active = false;
            if let Some(link) = node.link.take() {
                self.actions.push(Action::Close { link: link.id });
            }
        }
        self.links.clear();
        if let Some(stopping) = &mut self.stopping {
            stopping.links_closed = true;
        }
    }

    // ----- heartbeat rounds -----

    fn start_round(&mut self, now: Instant) {
        if self.round.is_some() {
            // The timeout is not shorter than the interval: end the
            // previous round first, so that every round is reported.
            self.end_round(now);
        }
        self.rounds += 1;
        if self.nodes.is_empty() {
            return;
        }
        let number = self.rounds;
        for node in &mut self.nodes {
            if let Some(link) = &mut node.link {
                link.ping = Some(number);
                link.queue.push_back(Owed::Ping { round: number });
                encode_frame_with(&mut link.out, |dst| Request::Ping.write_payload(dst));
            }
        }
        self.round = Some(Round {
            number,
            deadline: now + self.config.heartbeat_timeout,
        });
        self.maybe_end_round();
    }

    /// Ends the round early if every pinged datanode answered (or dropped:
    /// an unlinked datanode is reported inactive without waiting).
    fn maybe_end_round(&mut self) {
        if let Some(round) = &self.round {
            let waiting = self.nodes.iter().any(|node| {
                node.link
                    .as_ref()
                    .is_some_and(|l| l.ping == Some(round.number))
            });
            if !waiting {
                self.report_round();
            }
        }
    }

    /// Ends the round at its deadline: the silent become inactive.
    fn end_round(&mut self, now: Instant) {
        let Some(round) = &self.round else { return };
        let number = round.number;
        for index in 0..self.nodes.len() {
            let silent = self.nodes[index]
                .link
                .as_mut()
                .filter(|link| link.ping == Some(number))
                .map(|link| link.ping = None)
                .is_some();
            if silent {
                tracing::warn!(
                    name = %self.nodes[index].name,
                    timeout = ?self.config.heartbeat_timeout,
                    "no PONG within the heartbeat timeout"
                );
                self.deactivate(index, now);
            }
        }
        self.report_round();
    }

    fn report_round(&mut self) {
        if self.round.take().is_none() {
            return;
        }
        let report = self
            .nodes
            .iter()
            .map(|node| (Arc::clone(&node.name), node.active && node.link.is_some()))
            .collect();
        self.actions.push(Action::Heartbeat { report });
    }

    // ----- lookups -----

    fn pending_mut(&mut self, id: MsgId) -> Option<&mut Msg> {
        match self.batches.get_mut(&id.batch)?.slots.get_mut(id.index)? {
            Slot::Pending(msg) => Some(msg),
            Slot::Done(_) => None,
        }
    }

    fn is_parked(&self, id: MsgId) -> bool {
        matches!(
            self.batches
                .get(&id.batch)
                .and_then(|b| b.slots.get(id.index)),
            Some(Slot::Pending(Msg { on: None, .. }))
        )
    }

    fn pending_ids(&self) -> impl Iterator<Item = MsgId> + '_ {
        self.batches.iter().flat_map(|(&batch, b)| {
            b.slots
                .iter()
                .enumerate()
                .filter(|(_, slot)| matches!(slot, Slot::Pending(_)))
                .map(move |(index, _)| MsgId { batch, index })
        })
    }
}

/// Appends the frame of `STORE <message>` to `out`: the bytes of
/// `Request::Store(message)`, without copying the message into a request.
fn encode_store(out: &mut BytesMut, message: &str) {
    encode_frame_with(out, |dst| {
        dst.put_slice(b"STORE ");
        dst.put_slice(message.as_bytes());
    });
}

fn shutting_down() -> ErrorReply {
    ErrorReply::new(ErrorCode::ShuttingDown, "the headnode is shutting down")
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use protocol::{Frame, FrameCodec};
    use tokio_util::codec::Decoder;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A router driven by hand, with simulated datanodes that answer only
    /// when told to.
    struct Sim {
        router: Router<u32>,
        now: Instant,
        /// Requests each link received and has not answered, oldest first.
        inbox: HashMap<LinkId, VecDeque<Request>>,
        names: HashMap<LinkId, String>,
        /// What each datanode wrote: name -> messages.
        stored: BTreeMap<String, Vec<String>>,
        done: HashMap<u32, Vec<Outcome>>,
        closed: Vec<LinkId>,
        reports: Vec<Vec<(String, bool)>>,
    }

    impl Sim {
        fn new(placement: Placement) -> Sim {
            let config = RouterConfig {
                placement,
                heartbeat_interval: 1000 * MS,
                heartbeat_timeout: 300 * MS,
                store_timeout: 500 * MS,
                unavailable_timeout: 2000 * MS,
                shutdown_grace: 200 * MS,
            };
            let now = Instant::now();
            Sim {
                router: Router::new(config, 42, now),
                now,
                inbox: HashMap::new(),
                names: HashMap::new(),
                stored: BTreeMap::new(),
                done: HashMap::new(),
                closed: Vec::new(),
                reports: Vec::new(),
            }
        }

        fn collect(&mut self) {
            let mut sent = Vec::new();
            self.router
                .take_output(|link, frames| sent.push((link, BytesMut::from(frames))));
            for (link, mut frames) in sent {
                assert!(!self.closed.contains(&link), "sent on closed {link}");
                let mut codec = FrameCodec::new(1 << 20);
                while let Some(frame) = codec.decode(&mut frames).unwrap() {
                    let Frame::Data(payload) = frame else {
                        panic!("oversized frame")
                    };
                    let request = Request::parse(&payload).expect("a valid request");
                    self.inbox.entry(link).or_default().push_back(request);
                }
                assert!(frames.is_empty(), "whole frames only");
            }
            let actions: Vec<_> = self.router.drain_actions().collect();
            for action in actions {
                match action {
                    Action::Close { link } => self.closed.push(link),
                    Action::Done { token, outcomes } => {
                        assert!(
                            self.done.insert(token, outcomes).is_none(),
                            "batch {token} answered twice"
                        );
                    }
                    Action::Heartbeat { report } => self.reports.push(
                        report
                            .into_iter()
                            .map(|(name, active)| (name.to_string(), active))
                            .collect(),
                    ),
                }
            }
        }

        /// Moves the clock forward by `by`, ticking on the way at
        /// every deadline the router asks for, as the driver does.
        fn advance(&mut self, by: Duration) {
            let target = self.now + by;
            while let Some(deadline) = self.router.next_deadline().filter(|d| *d <= target) {
                self.now = self.now.max(deadline);
                self.router.tick(self.now);
                self.collect();
            }
            self.now = target;
            self.router.tick(self.now);
            self.collect();
        }

        fn register(&mut self, link: u64, name: &str) -> Result<(), ErrorReply> {
            let result = self.router.register(LinkId(link), name, self.now);
            if result.is_ok() {
                self.names.insert(LinkId(link), name.to_owned());
            }
            self.collect();
            result
        }

        fn submit(&mut self, token: u32, messages: &[&str]) {
            let messages = messages.iter().map(|m| m.to_string()).collect();
            self.router.submit(token, messages, self.now);
            self.collect();
        }

        /// Datanode on `link` answers its `n` oldest requests (all if None).
        fn serve(&mut self, link: u64, n: Option<usize>) {
            let link = LinkId(link);
            let name = self.names[&link].clone();
            let queue = self.inbox.entry(link).or_default();
            let n = n.unwrap_or(queue.len()).min(queue.len());
            let requests: Vec<Request> = queue.drain(..n).collect();
            for request in requests {
                let reply = match request {
                    Request::Store(message) => {
                        let sentence = sentences::datanode_stored(&name, &message);
                        self.stored.entry(name.clone()).or_default().push(message);
                        Reply::Ok(sentence)
                    }
                    Request::Ping => Reply::Pong,
                    other => panic!("unexpected {other:?}"),
                };
                self.router.reply(link, reply, self.now);
                self.collect();
            }
        }

        fn serve_all(&mut self) {
            let mut links: Vec<u64> = self
                .names
                .keys()
                .filter(|l| !self.closed.contains(l))
                .map(|l| l.0)
                .collect();
            links.sort();
            for link in links {
                self.serve(link, None);
            }
        }

        fn drop_link(&mut self, link: u64) {
            self.inbox.remove(&LinkId(link));
            self.router.link_closed(LinkId(link), self.now);
            self.closed.push(LinkId(link));
            self.collect();
        }

        fn owed(&self, link: u64) -> usize {
            self.inbox.get(&LinkId(link)).map_or(0, VecDeque::len)
        }

        fn stores_owed(&self, link: u64) -> usize {
            self.inbox.get(&LinkId(link)).map_or(0, |q| {
                q.iter().filter(|r| matches!(r, Request::Store(_))).count()
            })
        }

        fn outcome(&self, token: u32) -> &Vec<Outcome> {
            self.done
                .get(&token)
                .unwrap_or_else(|| panic!("batch {token} not answered"))
        }

        fn stored_on(&self, token: u32) -> Vec<String> {
            self.outcome(token)
                .iter()
                .map(|o| o.as_ref().expect("stored").node.to_string())
                .collect()
        }

        fn last_report(&self) -> Vec<(&str, bool)> {
            self.reports
                .last()
                .expect("a report")
                .iter()
                .map(|(n, a)| (n.as_str(), *a))
                .collect()
        }

        fn three(placement: Placement) -> Sim {
            let mut sim = Sim::new(placement);
            for (link, name) in [(1, "dn1"), (2, "dn2"), (3, "dn3")] {
                sim.register(link, name).unwrap();
            }
            sim
        }
    }

    /// Every confirmed message is in the store of the datanode named.
    fn assert_confirmations_hold(sim: &Sim) {
        for outcomes in sim.done.values() {
            for stored in outcomes.iter().flatten() {
                assert!(
                    sim.stored
                        .get(&*stored.node)
                        .is_some_and(|m| m.contains(&stored.message)),
                    "{stored:?} is not on {}",
                    stored.node
                );
                assert_eq!(
                    stored.sentence,
                    sentences::datanode_stored(&stored.node, &stored.message)
                );
            }
        }
    }

    #[test]
    fn store_frames_are_those_of_the_request() {
        for message in ["Hola", "two\nlines", "Adiós", " spaced "] {
            let mut ours = BytesMut::new();
            encode_store(&mut ours, message);
            let mut theirs = BytesMut::new();
            let request = Request::Store(message.to_owned());
            encode_frame_with(&mut theirs, |dst| request.write_payload(dst));
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn link_replies_parse_as_replies_do() {
        let payloads: [&[u8]; 13] = [
            b"PONG",
            b"PONG ",
            b"OK",
            b"OK ",
            b"OK El dn1 ha registrado satisfactoriamente el mensaje: 'Adi\xc3\xb3s'.",
            b"OKAY",
            b"OK \xff",
            b"ERR STORAGE disk full",
            b"ERR UNAVAILABLE",
            b"ERR NOPE x",
            b"ERR",
            b"",
            b"\xff",
        ];
        for payload in payloads {
            let ours = LinkReply::parse(&Bytes::copy_from_slice(payload));
            let theirs = Reply::parse(payload).map(LinkReply::from);
            assert_eq!(ours, theirs, "{payload:?}");
        }
        let sentence = LinkReply::parse(&Bytes::from_static(b"OK Adi\xc3\xb3s"));
        assert_eq!(sentence.unwrap().to_string(), "OK Adiós");
    }

    #[test]
    fn a_batch_is_spread_and_answered_in_order() {
        let mut sim = Sim::three(Placement::RoundRobin);
        sim.submit(1, &["a", "b", "c", "d"]);
        assert_eq!((sim.owed(1), sim.owed(2), sim.owed(3)), (2, 1, 1));
        sim.serve(3, None);
        sim.serve(2, None);
        assert!(!sim.done.contains_key(&1), "answered only when complete");
        sim.serve(1, None);
        let outcomes = sim.outcome(1);
        let messages: Vec<&str> = outcomes
            .iter()
            .map(|o| o.as_ref().unwrap().message.as_str())
            .collect();
        assert_eq!(messages, ["a", "b", "c", "d"]);
        assert_eq!(sim.stored_on(1), ["dn1", "dn2", "dn3", "dn1"]);
        assert_confirmations_hold(&sim);
    }

    #[test]
    fn random_placement_is_fair() {
        let mut sim = Sim::three(Placement::Random);
        let messages: Vec<String> = (0..30_000).map(|n| format!("m{n}")).collect();
        let messages: Vec<&str> = messages.iter().map(String::as_str).collect();
        sim.submit(1, &messages);
        sim.serve_all();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for node in sim.stored_on(1) {
            *counts.entry(node).or_default() += 1;
        }
        // Uniform over 3: 10,000 each, standard deviation ~82.
        for (node, count) in &counts {
            assert!((9_500..=10_500).contains(count), "{node}: {count}");
        }
        assert_eq!(counts.len(), 3);
    }

    #[test]
    fn round_robin_skips_inactive_datanodes() {
        let mut sim = Sim::three(Placement::RoundRobin);
        sim.drop_link(2);
        sim.submit(1, &["a", "b", "c", "d"]);
        sim.serve_all();
        assert_eq!(sim.stored_on(1), ["dn1", "dn3", "dn1", "dn3"]);
    }

    #[test]
    fn least_loaded_avoids_a_busy_datanode() {
        let mut sim = Sim::three(Placement::LeastLoaded);
        sim.submit(1, &["a", "b", "c"]);
        // dn1 and dn2 answer, dn3 sits on its message: it has the load.
        sim.serve(1, None);
        sim.serve(2, None);
        sim.submit(2, &["d", "e"]);
        assert_eq!(sim.router.status("dn3").unwrap().load, 1);
        assert_eq!(sim.stores_owed(3), 1, "nothing new for the busy one");
        assert_eq!((sim.stores_owed(1), sim.stores_owed(2)), (1, 1));
        // All equally loaded now: in turn again.
        sim.submit(3, &["f", "g", "h"]);
        assert_eq!(
            (sim.stores_owed(1), sim.stores_owed(2), sim.stores_owed(3)),
            (2, 2, 2)
        );
        sim.serve_all();
        assert_eq!(sim.outcome(2).len(), 2);
        assert_eq!(sim.outcome(3).len(), 3);
    }

    #[test]
    fn heartbeat_reports_every_datanode_each_round() {
        let mut sim = Sim::three(Placement::Random);
        sim.advance(1000 * MS);
        // Each got a PING; the round waits for the answers.
        assert_eq!((sim.owed(1), sim.owed(2), sim.owed(3)), (1, 1, 1));
        assert!(sim.reports.is_empty());
        sim.serve_all();
        assert_eq!(
            sim.last_report(),
            [("dn1", true), ("dn2", true), ("dn3", true)],
            "reported as soon as all answered"
        );
        assert_eq!(sim.reports.len(), 1);
    }

    #[test]
    fn a_silent_datanode_is_marked_inactive_after_the_timeout() {
        let mut sim = Sim::three(Placement::Random);
        sim.advance(1000 * MS);
        sim.serve(1, None);
        sim.serve(3, None);
        sim.advance(299 * MS);
        assert!(sim.reports.is_empty(), "still within the timeout");
        assert!(sim.router.status("dn2").unwrap().active);
        sim.advance(MS);
        assert_eq!(
            sim.last_report(),
            [("dn1", true), ("dn2", false), ("dn3", true)]
        );
        assert!(!sim.router.status("dn2").unwrap().active);
        // No new message goes to it.
        sim.submit(1, &["a"; 30]);
        assert_eq!(sim.stores_owed(2), 0);
        // It answers the old PING late: active again, gets messages again.
        sim.serve(2, None);
        assert!(sim.router.status("dn2").unwrap().active);
        sim.serve_all();
        sim.submit(2, &["b"; 30]);
        assert!(sim.stores_owed(2) > 0);
    }

    #[test]
    fn a_dropped_datanode_stays_known_and_comes_back_by_registering() {
        let mut sim = Sim::three(Placement::Random);
        sim.drop_link(2);
        sim.advance(1000 * MS);
        sim.serve_all();
        assert_eq!(
            sim.last_report(),
            [("dn1", true), ("dn2", false), ("dn3", true)]
        );
        sim.advance(1000 * MS);
        sim.serve_all();
        assert_eq!(sim.reports.len(), 2);
        assert_eq!(sim.last_report()[1], ("dn2", false), "reported every round");
        sim.register(4, "dn2").unwrap();
        sim.advance(1000 * MS);
        sim.serve_all();
        assert_eq!(
            sim.last_report(),
            [("dn1", true), ("dn2", true), ("dn3", true)]
        );
        sim.submit(1, &["x"; 30]);
        assert!(sim.stores_owed(4) > 0, "receives messages again");
    }

    #[test]
    fn a_round_never_empties_the_active_set() {
        let mut sim = Sim::three(Placement::Random);
        sim.advance(1000 * MS);
        // Mid-round, every PING unanswered: all three are still active.
        assert_eq!(sim.router.active_nodes().len(), 3);
        sim.submit(1, &["during the round"]);
        assert_eq!(
            sim.stores_owed(1) + sim.stores_owed(2) + sim.stores_owed(3),
            1
        );
        sim.serve_all();
        assert!(sim.outcome(1)[0].is_ok());
    }

    #[test]
    fn messages_on_a_dropped_link_fail_over_and_are_answered_once() {
        let mut sim = Sim::three(Placement::RoundRobin);
        let messages: Vec<String> = (0..9).map(|n| format!("m{n}")).collect();
        let messages: Vec<&str> = messages.iter().map(String::as_str).collect();
        sim.submit(1, &messages);
        // dn2 writes one message, then dies before confirming anything.
        let on_dn2 = sim.stores_owed(2);
        assert_eq!(on_dn2, 3);
        sim.drop_link(2);
        assert_eq!(sim.stores_owed(1) + sim.stores_owed(3), 9);
        sim.serve_all();
        let outcomes = sim.outcome(1);
        assert_eq!(outcomes.len(), 9);
        assert!(sim.stored_on(1).iter().all(|n| n != "dn2"));
        assert_confirmations_hold(&sim);
    }

    #[test]
    fn a_stalled_datanode_loses_its_messages_to_the_others() {
        let mut sim = Sim::three(Placement::RoundRobin);
        sim.submit(1, &["a", "b", "c"]);
        sim.serve(1, None);
        sim.serve(3, None);
        sim.advance(499 * MS);
        assert_eq!(sim.stores_owed(1) + sim.stores_owed(3), 0);
        sim.advance(MS);
        // dn2's STORE timed out: dn2 is inactive, "b" went elsewhere.
        assert!(!sim.router.status("dn2").unwrap().active);
        assert_eq!(sim.stores_owed(1) + sim.stores_owed(3), 1);
        sim.serve(1, None);
        sim.serve(3, None);
        assert_eq!(sim.outcome(1).len(), 3);
        assert_ne!(sim.stored_on(1)[1], "dn2");
        // dn2 wakes up and confirms too: a second copy, no second answer.
        sim.serve(2, None);
        assert_eq!(sim.stored.get("dn2").map(Vec::len), Some(1));
        assert_eq!(sim.done.len(), 1);
        assert_confirmations_hold(&sim);
    }

    #[test]
    fn the_first_confirmation_wins() {
        let mut sim = Sim::three(Placement::RoundRobin);
        sim.submit(1, &["x"]);
        assert_eq!(sim.stores_owed(1), 1);
        sim.advance(500 * MS);
        // Failed over to dn2; then dn1 confirms before dn2 does.
        assert_eq!(sim.stores_owed(2), 1);
        sim.serve(1, None);
        assert_eq!(sim.stored_on(1), ["dn1"]);
        sim.serve(2, None);
        assert_eq!(sim.done.len(), 1);
        assert_confirmations_hold(&sim);
    }

    #[test]
    fn a_missed_heartbeat_fails_over_messages_in_flight() {
        let mut sim = Sim::three(Placement::RoundRobin);
        sim.advance(1000 * MS);
        sim.serve(1, None);
        sim.serve(3, None);
        sim.submit(1, &["a", "b", "c"]);
        sim.advance(300 * MS);
        assert!(!sim.router.status("dn2").unwrap().active);
        sim.serve(1, None);
        sim.serve(3, None);
        assert_eq!(sim.outcome(1).len(), 3);
        assert!(sim.stored_on(1).iter().all(|n| n != "dn2"));
    }

    #[test]
    fn a_refusal_goes_to_another_datanode_and_every_refusal_to_the_client() {
        let mut sim = Sim::three(Placement::RoundRobin);
        sim.submit(1, &["x"]);
        let disk_full = ErrorReply::new(ErrorCode::Storage, "disk full");
        sim.inbox.get_mut(&LinkId(1)).unwrap().clear();
        sim.router
            .reply(LinkId(1), Reply::Err(disk_full.clone()), sim.now);
        sim.collect();
        assert_eq!(sim.stores_owed(2), 1, "tried on the next");
        sim.serve(2, None);
        assert_eq!(sim.stored_on(1), ["dn2"]);

        sim.submit(2, &["y"]);
        for link in [3, 1, 2] {
            assert_eq!(sim.stores_owed(link), 1, "tried on link {link}");
            sim.inbox.get_mut(&LinkId(link)).unwrap().clear();
            sim.router
                .reply(LinkId(link), Reply::Err(disk_full.clone()), sim.now);
            sim.collect();
        }
        assert_eq!(sim.outcome(2), &vec![Err(disk_full)]);
        // The datanodes stay active: a refusal is about one message.
        assert_eq!(sim.router.active_nodes().len(), 3);
    }

    #[test]
    fn with_no_datanode_messages_wait_then_get_unavailable() {
        let mut sim = Sim::new(Placement::Random);
        sim.submit(1, &["early"]);
        sim.advance(1500 * MS);
        assert!(sim.done.is_empty());
        // A datanode registers in time: the parked message goes to it.
        sim.register(1, "dn1").unwrap();
        sim.serve(1, None);
        assert_eq!(sim.stored_on(1), ["dn1"]);

        sim.drop_link(1);
        sim.submit(2, &["late", "later"]);
        sim.advance(1999 * MS);
        assert!(!sim.done.contains_key(&2));
        sim.advance(MS);
        let outcome = sim.outcome(2);
        assert_eq!(outcome.len(), 2);
        for result in outcome {
            assert_eq!(result.as_ref().unwrap_err().code, ErrorCode::Unavailable);
        }
    }

    #[test]
    fn the_only_datanode_dying_parks_its_messages() {
        let mut sim = Sim::new(Placement::Random);
        sim.register(1, "dn1").unwrap();
        sim.submit(1, &["a", "b"]);
        sim.drop_link(1);
        assert!(sim.done.is_empty());
        sim.register(2, "dn1").unwrap();
        assert_eq!(sim.stores_owed(2), 2, "re-registered: the parked go to it");
        sim.serve(2, None);
        assert_eq!(sim.stored_on(1), ["dn1", "dn1"]);
    }

    #[test]
    fn a_live_name_is_taken_but_a_dead_one_can_come_back() {
        let mut sim = Sim::three(Placement::Random);
        let err = sim.register(9, "dn1").unwrap_err();
        assert_eq!(err.code, ErrorCode::NameTaken);
        assert_eq!(
            sim.register(9, "bad name").unwrap_err().code,
            ErrorCode::BadArgument
        );
        // After its link dropped, the name is free again.
        sim.drop_link(1);
        sim.register(10, "dn1").unwrap();
        assert!(sim.router.status("dn1").unwrap().active);
        // A holder that went silent (link not yet seen dead) is replaced,
        // and its old link closed.
        sim.advance(1000 * MS);
        sim.serve(10, None);
        sim.serve(3, None);
        sim.advance(300 * MS);
        assert!(!sim.router.status("dn2").unwrap().active);
        sim.register(11, "dn2").unwrap();
        assert!(sim.closed.contains(&LinkId(2)));
        assert!(sim.router.status("dn2").unwrap().active);
        // Replies on the replaced link are ignored.
        sim.router.reply(LinkId(2), Reply::Pong, sim.now);
        sim.collect();
        assert_eq!(sim.router.active_nodes().len(), 3);
    }

    #[test]
    fn a_reply_nobody_asked_for_closes_the_link() {
        let mut sim = Sim::three(Placement::Random);
        sim.router.reply(LinkId(2), Reply::Pong, sim.now);
        sim.collect();
        assert!(sim.closed.contains(&LinkId(2)));
        assert!(!sim.router.status("dn2").unwrap().linked);
        let mut sim = Sim::three(Placement::RoundRobin);
        sim.submit(1, &["x"]);
        assert_eq!(sim.stores_owed(1), 1);
        sim.router.reply(LinkId(1), Reply::Pong, sim.now);
        sim.collect();
        assert!(sim.closed.contains(&LinkId(1)), "PONG where OK was owed");
        assert_eq!(sim.stores_owed(2), 1, "its message failed over");
    }

    #[test]
    fn shutdown_answers_parked_at_once_and_sent_within_the_grace() {
        let mut sim = Sim::new(Placement::Random);
        sim.submit(1, &["parked"]);
        sim.register(1, "dn1").unwrap();
        sim.drop_link(1);
        sim.register(2, "dn2").unwrap();
        sim.serve(2, None);
        sim.register(3, "dn3").unwrap();
        sim.submit(2, &["sent", "also sent"]);
        sim.drop_link(2);
        sim.submit(3, &["sent and confirmed"]);
        sim.router.shutdown(sim.now);
        sim.collect();
        sim.submit(4, &["too late"]);
        assert_eq!(
            sim.outcome(4)[0].as_ref().unwrap_err().code,
            ErrorCode::ShuttingDown
        );
        // Messages already on dn3 may still be confirmed during the grace.
        sim.serve(3, Some(1));
        assert!(sim.done.contains_key(&1));
        sim.advance(200 * MS);
        assert!(sim.done.contains_key(&2) && sim.done.contains_key(&3));
        assert!(sim.closed.contains(&LinkId(3)));
        assert_eq!(sim.router.next_deadline(), None);
        assert_eq!(sim.router.pending_batches(), 0);
    }

    #[test]
    fn shutdown_with_nothing_pending_closes_links_at_once() {
        let mut sim = Sim::three(Placement::Random);
        sim.router.shutdown(sim.now);
        sim.collect();
        let mut closed = sim.closed.clone();
        closed.sort();
        assert_eq!(closed, [LinkId(1), LinkId(2), LinkId(3)]);
        assert_eq!(sim.router.next_deadline(), None);
        assert_eq!(
            sim.router
                .register(LinkId(4), "dn4", sim.now)
                .unwrap_err()
                .code,
            ErrorCode::ShuttingDown
        );
    }

    #[test]
    fn heavy_traffic_with_random_failures_keeps_every_promise() {
        // A long randomized run: datanodes answer in random amounts, drop,
        // stall and come back; every batch is answered exactly once and
        // every confirmation names a datanode that stored the message.
        use rand::Rng;
        let mut rng = StdRng::seed_from_u64(3);
        let mut sim = Sim::three(Placement::Random);
        let mut next_link = 4;
        let mut token = 0;
        for step in 0..3000 {
            match rng.gen_range(0..100) {
                0..=39 => {
                    token += 1;
                    let n = rng.gen_range(1..20);
                    let messages: Vec<String> = (0..n).map(|i| format!("t{token}m{i}")).collect();
                    let messages: Vec<&str> = messages.iter().map(String::as_str).collect();
                    sim.submit(token, &messages);
                }
                40..=79 => {
                    let live: Vec<u64> = sim
                        .names
                        .keys()
                        .filter(|l| !sim.closed.contains(l))
                        .map(|l| l.0)
                        .collect();
                    if !live.is_empty() {
                        let link = live[rng.gen_range(0..live.len())];
                        let n = rng.gen_range(0..10);
                        sim.serve(link, Some(n));
                    }
                }
                80..=81 => {
                    let live: Vec<u64> = sim
                        .names
                        .keys()
                        .filter(|l| !sim.closed.contains(l))
                        .map(|l| l.0)
                        .collect();
                    if live.len() > 1 {
                        sim.drop_link(live[rng.gen_range(0..live.len())]);
                    }
                }
                82..=84 => {
                    let name = format!("dn{}", rng.gen_range(1..=3));
                    if sim.register(next_link, &name).is_ok() {
                        next_link += 1;
                    }
                }
                _ => sim.advance(rng.gen_range(1..200) * MS),
            }
            if step % 500 == 0 {
                assert_confirmations_hold(&sim);
            }
        }
        // Let everything settle: live datanodes answer everything.
        for _ in 0..50 {
            sim.serve_all();
            sim.advance(100 * MS);
        }
        sim.serve_all();
        sim.advance(3000 * MS);
        assert_eq!(sim.done.len(), token as usize, "every batch answered");
        assert_eq!(sim.router.pending_batches(), 0);
        assert_confirmations_hold(&sim);
    }
}

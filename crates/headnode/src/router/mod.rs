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
//!   [`Router::reply`] (a datanode's `OK`/`ERR`/`PONG`), [`Router::alive`]
//!   (a datanode's multicast heartbeat answer), [`Router::submit`] (a batch
//!   of client messages), [`Router::shutdown`];
//! - clock ticks: [`Router::tick`], with the current [`Instant`] passed in,
//!   at the latest at [`Router::next_deadline`];
//!
//! and answers with the frames to send on each link (`STORE`s and `PING`s,
//! taken with [`Router::take_output`]) and with [`Action`]s, taken with
//! [`Router::drain_actions`]: close link N, answer batch T, send a
//! heartbeat probe, write a heartbeat report. A thin driver (`crate::driver`) owns the sockets and the clock
//! and carries them out. The router encodes the frames itself, straight
//! from the message it keeps, because an action holding a `STORE` request
//! would need a copy of every message. The tests drive the same machine
//! with made-up instants: heartbeat timeouts, stalls and failovers are
//! checked deterministically, with no network and no sleeping.
//!
//! # Parts
//!
//! Each part's module docs state its rules:
//!
//! - `links.rs`: the datanode table, what makes a datanode active, and each
//!   link's queue of requests owed a reply;
//! - `pending.rs`: the messages waiting for an outcome, parking, and the
//!   rule that each is answered exactly once;
//! - `dispatch.rs`: placement, failover and answers;
//! - `heartbeat.rs`: heartbeat rounds.
//!
//! This file holds the events and the glue. A reply that does not fit what
//! its link owes (a `PONG` where an `OK` is owed, a reply nobody asked for)
//! is a protocol violation: the link is closed and its messages fail over.
//!
//! # A confirmation is checked, not believed
//!
//! An `OK` to a `STORE` confirms only if its sentence is exactly the one
//! the datanode's own code writes for that message under that datanode's
//! name ([`protocol::sentences::is_datanode_stored`]): a bare `OK`, an
//! `OK` quoting another message (a reply out of order, or made up), one
//! naming another datanode, or one with anything more (a line break and
//! a forged log line) is a protocol violation like the others. The link
//! is closed (the datanode is unlinked, so inactive, and may register
//! again), the message and every other one owed on the link fail over,
//! and the violation is logged with the datanode's name, address and
//! words. Nothing a datanode says reaches a log file or a client:
//! registro_server.txt is written from the name and message the router
//! knows ([`Stored`] carries no sentence). The check compares bytes in
//! place, with no allocation per message.
//!
//! # Shutdown
//!
//! After [`Router::shutdown`] nothing is placed any more: parked messages
//! and new batches are answered `ERR SHUTTING_DOWN` at once; messages
//! already sent get `shutdown_grace` to be confirmed, after which they are
//! answered `ERR SHUTTING_DOWN` too. Links are closed as soon as no batch is
//! pending, or when the grace ends.

mod dedupe;
mod dispatch;
mod heartbeat;
mod links;
mod pending;
#[cfg(test)]
mod sim;
mod status;

pub use status::{DatanodeStatus, Heard, RouterStatus};
#[cfg(test)]
mod tests;

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use protocol::{command::is_valid_name, ErrorCode, ErrorReply, LinkReply, Tag};

use crate::placement::{Candidate, Placement, Policy};
use heartbeat::Heartbeat;
pub use heartbeat::{HeartbeatMode, Ignored};
use links::{Datanodes, Owed};
use pending::Pending;

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
    /// How heartbeat rounds ask the datanodes.
    pub heartbeat: HeartbeatMode,
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
            heartbeat: HeartbeatMode::Multicast,
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

/// A message a datanode confirmed, with the sentence it had to confirm it
/// with; registro_server.txt and the client's answer are built from these
/// two, never from the datanode's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Name of the datanode that confirmed it.
    pub node: Arc<str>,
    /// The message, handed back for the sentences: the pending message's
    /// text as it was, its tag not cut off (which would move the message).
    text: MessageText,
    /// Whether this answers a copy of a tagged message confirmed before:
    /// it was not stored again and gets no new line in registro_server.txt.
    pub again: bool,
}

impl Stored {
    /// `message`, confirmed by `node`.
    pub fn new(node: Arc<str>, message: String, again: bool) -> Stored {
        Stored::of(node, MessageText::plain(message), again)
    }

    fn of(node: Arc<str>, text: MessageText, again: bool) -> Stored {
        Stored { node, text, again }
    }

    /// The message itself.
    pub fn message(&self) -> &str {
        self.text.message()
    }
}

/// A message's text as the router keeps it: the message, or, for a tagged
/// one, the whole argument of its `SENDID` as it came, passed on as its
/// `STOREID`'s ([`protocol::Request::parse_passing_on`]).
#[derive(Debug, Clone, Default)]
struct MessageText {
    text: String,
    /// Where the message starts in `text`.
    message_at: usize,
}

impl MessageText {
    fn plain(message: String) -> MessageText {
        MessageText {
            text: message,
            message_at: 0,
        }
    }

    /// `argument`, the argument of a `SENDID` tagged `tag`.
    fn tagged(argument: String, tag: &Tag) -> MessageText {
        MessageText {
            message_at: tag.message_at(&argument),
            text: argument,
        }
    }

    /// The text whole, as it is sent on.
    fn whole(&self) -> &str {
        &self.text
    }

    /// The message alone.
    fn message(&self) -> &str {
        &self.text[self.message_at..]
    }
}

/// Two texts are equal when their messages are, tagged or not.
impl PartialEq for MessageText {
    fn eq(&self, other: &MessageText) -> bool {
        self.message() == other.message()
    }
}

impl Eq for MessageText {}

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
    /// Send `probe` to the heartbeat group: a round starts (multicast
    /// mode).
    Multicast {
        /// The round's probe.
        probe: protocol::heartbeat::Probe,
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
    policy: Box<dyn Policy>,
    datanodes: Datanodes,
    pending: Pending<T>,
    heartbeat: Heartbeat,
    stopping: Option<Stopping>,
    actions: Vec<Action<T>>,
    /// Reused by every placement, to spare an allocation per message.
    candidates: Vec<Candidate>,
    /// The message ids of tagged messages (see `dedupe.rs`).
    seen: dedupe::Tagged,
    /// Tagged messages whose holder stayed away, placed elsewhere.
    abandoned: u64,
}

impl<T> Router<T> {
    /// A router with no datanode, started at `now`; `seed` seeds random
    /// placement. The first heartbeat round starts one interval after `now`.
    pub fn new(config: RouterConfig, seed: u64, now: Instant) -> Self {
        Router {
            policy: config.placement.policy(seed),
            heartbeat: Heartbeat::new(
                config.heartbeat,
                config.heartbeat_interval,
                config.heartbeat_timeout,
                seed,
                now,
            ),
            config,
            datanodes: Datanodes::default(),
            pending: Pending::default(),
            stopping: None,
            actions: Vec::new(),
            candidates: Vec::new(),
            seen: dedupe::Tagged::default(),
            abandoned: 0,
        }
    }

    /// Tagged messages placed on another datanode after the one that may
    /// hold them stayed away for `unavailable_timeout`: each may be in two
    /// `data.txt` files (see `dedupe.rs`).
    pub fn abandoned(&self) -> u64 {
        self.abandoned
    }

    /// The actions decided since the last call, in order.
    pub fn drain_actions(&mut self) -> std::vec::Drain<'_, Action<T>> {
        self.actions.drain(..)
    }

    /// Hands `each` the frames decided for each link since the last call
    /// (requests in the order they were decided, which is the order their
    /// replies will come back in), to be written on that link.
    pub fn take_output(&mut self, mut each: impl FnMut(LinkId, &[u8])) {
        for link in self.datanodes.links_mut() {
            if !link.out.is_empty() {
                each(link.id, &link.out);
                link.out.clear();
            }
        }
    }

    /// The status of datanode `name`, if it ever registered.
    pub fn status(&self, name: &str) -> Option<NodeStatus> {
        let node = self.datanodes.get(self.datanodes.find(name)?);
        Some(NodeStatus {
            active: node.active,
            linked: node.link.is_some(),
            load: node.link.as_ref().map_or(0, |link| link.stores),
        })
    }

    /// Names of the datanodes that may receive messages now.
    pub fn active_nodes(&self) -> Vec<Arc<str>> {
        self.datanodes
            .iter()
            .filter(|node| node.serving().is_some())
            .map(|node| Arc::clone(&node.name))
            .collect()
    }

    /// Number of batches not fully answered yet.
    pub fn pending_batches(&self) -> usize {
        self.pending.batches()
    }

    /// When [`Router::tick`] must be called next, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        if let Some(stopping) = &self.stopping {
            let done = stopping.links_closed && self.pending.batches() == 0;
            return (!done).then_some(stopping.deadline);
        }
        let mut next = self.heartbeat.next_deadline();
        for node in self.datanodes.iter() {
            if let Some(sent) = node.serving().and_then(|link| link.oldest_store()) {
                next = next.min(sent + self.config.store_timeout);
            }
        }
        if let Some(parked) = self.pending.next_parked_deadline() {
            next = next.min(parked);
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
    pub fn register(
        &mut self,
        link: LinkId,
        name: &str,
        peer: SocketAddr,
        now: Instant,
    ) -> Result<(), ErrorReply> {
        if self.stopping.is_some() {
            return Err(shutting_down());
        }
        if !is_valid_name(name) {
            return Err(ErrorReply::new(
                ErrorCode::BadArgument,
                "invalid datanode name",
            ));
        }
        let index = self.datanodes.find_or_add(name);
        let node = self.datanodes.get(index);
        if let Some(old) = &node.link {
            if node.active {
                return Err(ErrorReply::new(
                    ErrorCode::NameTaken,
                    format!("a live datanode is registered as '{name}'"),
                ));
            }
            tracing::info!(%name, old = %old.id, new = %link, "replacing an inactive link");
            self.actions.push(Action::Close { link: old.id });
            self.detach(index, now);
        }
        self.datanodes.attach(index, link, peer);
        self.heartbeat.registered(now);
        tracing::info!(%name, %link, %peer, "datanode registered");
        self.activate(index, now);
        Ok(())
    }

    /// `link` dropped (the connection closed or failed).
    pub fn link_closed(&mut self, link: LinkId, now: Instant) {
        let Some(index) = self.datanodes.of_link(link) else {
            return;
        };
        if self.stopping.is_none() {
            tracing::warn!(name = %self.datanodes.get(index).name, %link, "lost the link to a datanode");
        }
        self.detach(index, now);
        self.maybe_end_round();
    }

    /// `link` sent `reply`, the answer to the oldest request it owes.
    pub fn reply(&mut self, link: LinkId, reply: impl Into<LinkReply>, now: Instant) {
        let reply = reply.into();
        let Some(index) = self.datanodes.of_link(link) else {
            // A link we closed; what it still says does not matter.
            return;
        };
        let node = self.datanodes.get_mut(index);
        let name = Arc::clone(&node.name);
        let linked = node.link.as_mut().expect("of_link maps only linked nodes");
        let owed = linked.take_owed();
        let violation = match (owed, reply) {
            (Some(Owed::Store { msg, sent }), LinkReply::Ok(sentence)) => {
                if self.pending.confirms(msg, &name, sentence.as_str()) {
                    self.confirm(msg, name);
                    return;
                }
                let asked = self.pending.text(msg).map(clip);
                (
                    Some(Owed::Store { msg, sent }),
                    "a confirmation that is not its sentence for the message asked",
                    format!("OK {}", clip(sentence.as_str())),
                    asked,
                )
            }
            (Some(Owed::Store { msg, .. }), LinkReply::Err(err)) => {
                tracing::warn!(%name, %err, "a datanode refused a message");
                self.refused(msg, link, err, now);
                return;
            }
            (Some(Owed::Ping { round }), LinkReply::Pong) => {
                self.answered(index, round, now);
                return;
            }
            (owed, reply) => {
                let wanted = match owed {
                    Some(Owed::Store { .. }) => {
                        "a reply that is not OK or ERR where a STORE's is owed"
                    }
                    Some(Owed::Ping { .. }) => "a reply that is not PONG where a PING's is owed",
                    None => "a reply nobody asked for",
                };
                (owed, wanted, clip(&reply.to_string()), None)
            }
        };
        let (owed, what, said, asked) = violation;
        let linked = self
            .datanodes
            .get_mut(index)
            .link
            .as_mut()
            .expect("still linked");
        tracing::warn!(
            %name,
            %link,
            peer = %linked.peer,
            said = ?said,
            asked = ?asked,
            "protocol violation on a datanode link ({what}); closing it, its messages go \
             to other datanodes"
        );
        if let Some(owed) = owed {
            // Still owed: its message must fail over with the rest.
            linked.restore_owed(owed);
        }
        self.actions.push(Action::Close { link });
        self.detach(index, now);
        self.maybe_end_round();
    }

    /// A client session submits `messages`; `token` comes back with their
    /// outcomes in one [`Action::Done`].
    pub fn submit(&mut self, token: T, messages: Vec<String>, now: Instant) {
        self.submit_tagged(token, messages, Vec::new(), now);
    }

    /// [`Router::submit`] of a batch in which `tags[i]`, if any, is the tag
    /// of message `i` (`tags` may be shorter than `messages`, or empty):
    /// each tagged id is stored once (see `dedupe.rs`).
    pub fn submit_tagged(
        &mut self,
        token: T,
        messages: Vec<String>,
        tags: Vec<Option<Tag>>,
        now: Instant,
    ) {
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
        let deadline = now + self.config.unavailable_timeout;
        let ids: Vec<_> = self.pending.add(token, messages, &tags).collect();
        let mut tags = tags.into_iter();
        for id in ids {
            let Some(tag) = tags.next().flatten() else {
                self.dispatch(id, now, deadline);
                continue;
            };
            match self.admit(id, &tag, now) {
                dedupe::Admit::Place(holder) => {
                    self.dispatch_with(id, Some((tag, holder)), now, deadline)
                }
                dedupe::Admit::Wait => {}
                dedupe::Admit::Again(node) => {
                    let Some(msg) = self.pending.get_mut(id) else {
                        continue;
                    };
                    let again = dedupe::again(&node, msg.text.message());
                    self.settle_one(id, Ok(again));
                }
                dedupe::Admit::Refuse(err) => self.settle_one(id, Err(err)),
            }
        }
    }

    /// Time passed: run heartbeat rounds, detect stalls, expire parked
    /// messages, end the shutdown grace.
    pub fn tick(&mut self, now: Instant) {
        if let Some(stopping) = &self.stopping {
            if now >= stopping.deadline && !(stopping.links_closed && self.pending.batches() == 0) {
                for id in self.pending.ids() {
                    self.settle(id, Err(shutting_down()));
                }
                self.close_all_links();
            }
            return;
        }
        self.tick_heartbeat(now);
        for index in 0..self.datanodes.len() {
            let stalled = self
                .datanodes
                .get(index)
                .serving()
                .and_then(|link| link.oldest_store())
                .is_some_and(|sent| now >= sent + self.config.store_timeout);
            if stalled {
                tracing::warn!(
                    name = %self.datanodes.get(index).name,
                    timeout = ?self.config.store_timeout,
                    "a STORE went unconfirmed; marking the datanode inactive"
                );
                self.deactivate(index, now);
            }
        }
        while let Some(id) = self.pending.next_expired(now) {
            if self.abandon_holder(id, now) {
                continue;
            }
            let err = ErrorReply::new(
                ErrorCode::Unavailable,
                format!(
                    "no datanode could store the message within {:?}",
                    self.config.unavailable_timeout
                ),
            );
            self.settle(id, Err(err));
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
        self.heartbeat.stop();
        for parked in self.pending.unpark_all() {
            self.settle(parked.msg, Err(shutting_down()));
        }
        if self.pending.batches() == 0 {
            self.close_all_links();
        }
    }
}

/// At most 200 characters of `text`, for a log line about what a datanode
/// said (it may be a whole 64 KiB message).
fn clip(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}... ({} bytes)", &text[..end], text.len()),
        None => text.to_owned(),
    }
}

fn shutting_down() -> ErrorReply {
    ErrorReply::new(ErrorCode::ShuttingDown, "the headnode is shutting down")
}

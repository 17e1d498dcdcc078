//! The driver: the one task that owns the [`Router`] and carries out its
//! actions.
//!
//! Connection tasks never touch the router. They send [`Event`]s on an
//! unbounded channel (client sessions are bounded by their own in-flight
//! limit, so the channel is too) and the driver feeds them to the router,
//! with the time of Tokio's clock (so tests can pause it), in arrival order. It takes every event already
//! waiting (up to [`MAX_EVENTS_PER_PASS`]) before acting, so that under
//! load one pass turns many client batches and datanode replies into one
//! write per datanode link.
//!
//! At the end of each pass the frames the router decided for each link
//! (`STORE`s and `PING`s, [`Router::take_output`]) are appended to that
//! link's outbox, and each outbox is handed, as one buffer, to the task that
//! writes that link. `STORE`s are therefore pipelined: the driver never waits
//! for a reply before sending more. Actions are carried out as follows:
//!
//! - `Close`: the outbox is flushed and dropped; the link's writer task sees
//!   its channel end, shuts the socket down, and the connection task ends.
//! - `Done`: the batch's lines go into this pass's record for
//!   registro_server.txt (see below), and its outcomes back to the waiting
//!   client session through the batch's oneshot channel once that record
//!   is written.
//! - `Heartbeat`: the report goes to a small task that appends it to
//!   heartbeat_server.txt, so a slow disk (`--fsync always`) never holds up
//!   routing.
//!
//! Between events the driver sleeps until [`Router::next_deadline`] and then
//! calls [`Router::tick`].
//!
//! # Batching
//!
//! Under load each event is small (a client's few pipelined messages, a few
//! replies read from a link), and acting on each pass at once would mean a
//! write, and a wake-up of the peer, per link and per pass. So when a pass
//! has taken fewer than [`YIELD_BELOW`] events, the driver yields once to
//! the runtime, letting the sessions and link readers that are ready run
//! and queue their events, and takes those too before acting.
//!
//! # The log files
//!
//! registro_server.txt and heartbeat_server.txt are written as `logs.rs`
//! describes.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use journal::{timestamp, Journal};
use protocol::{encode_frame_with, heartbeat::Alive, ErrorCode, LinkReply, Reply};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

mod logs;
pub mod stats;

use logs::{log_in_session_order, write_heartbeats, Registro};

use crate::{
    idmap::IdMap,
    multicast::{HeartbeatSocket, Outgoing},
    router::{Action, LinkId, Outcome, Router, RouterConfig},
};

/// Events taken from the channel in one pass at most, so that timers are
/// not starved under a flood.
pub const MAX_EVENTS_PER_PASS: usize = 1024;

/// A pass that has taken fewer events than this yields once to let more
/// arrive before acting (see the module docs).
pub const YIELD_BELOW: usize = 64;

/// Identifies one client session; the driver keeps each session's batches
/// in order in registro_server.txt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub u64);

/// What connection tasks tell the driver.
#[derive(Debug)]
pub enum Event {
    /// A client session's batch of messages.
    Submit {
        /// The session; its batches must be submitted in its order.
        session: SessionId,
        /// The messages, in the client's order.
        messages: Vec<String>,
        /// Their tags, if any (see [`Router::submit_tagged`]).
        tags: Vec<Option<protocol::Tag>>,
        /// Where their outcomes go.
        reply: oneshot::Sender<Vec<Outcome>>,
    },
    /// A connection asked to register as datanode `name`.
    Register {
        /// The connection's link id.
        link: LinkId,
        /// The name asked for.
        name: String,
        /// The link's outgoing byte stream (frames).
        out: mpsc::UnboundedSender<Bytes>,
        /// The headnode's address on the connection: the interface the
        /// multicast heartbeat reaches this datanode on.
        local: Option<Ipv4Addr>,
        /// The datanode's address, for the logs.
        peer: SocketAddr,
    },
    /// An alive datagram arrived at the heartbeat socket.
    Alive {
        /// What it says.
        alive: Alive,
        /// Who sent it, for the logs.
        from: SocketAddr,
    },
    /// Replies read from a link, in order.
    Replies {
        /// The link.
        link: LinkId,
        /// The replies.
        replies: Vec<LinkReply>,
    },
    /// A link's connection ended.
    Closed {
        /// The link.
        link: LinkId,
    },
    /// The status page asks for a snapshot.
    Status {
        /// Where it goes.
        reply: oneshot::Sender<StatusReport>,
    },
}

/// A snapshot for the status page: the router's view and the driver's
/// counts.
#[derive(Debug)]
pub struct StatusReport {
    /// How long the headnode has been running.
    pub uptime: Duration,
    /// Each datanode as the router sees it, and the rounds; each
    /// datanode's last answer as an age (`heard_ago`).
    pub router: crate::router::RouterStatus,
    /// How long ago each datanode (by index in `router.datanodes`) last
    /// answered a heartbeat.
    pub heard_ago: Vec<Option<Duration>>,
    /// Messages stored per datanode.
    pub stored: Vec<(Arc<str>, u64)>,
    /// Error answers per code.
    pub errors: Vec<(ErrorCode, u64)>,
    /// Bytes of the messages stored.
    pub bytes: u64,
    /// Messages stored in each of the last 60 seconds, oldest first.
    pub per_second: Vec<u64>,
    /// The last heartbeat rounds: when each ended and its report.
    pub rounds: Vec<stats::EndedRound>,
    /// Round-trip histogram: counts per bucket of
    /// [`stats::ROUND_TRIP_BUCKETS`] (plus the rest) and their sum.
    pub round_trips: ([u64; stats::ROUND_TRIP_BUCKETS.len() + 1], f64),
}

/// How connection tasks reach the driver. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RouterHandle {
    events: mpsc::UnboundedSender<Event>,
    next_link: Arc<AtomicU64>,
    next_session: Arc<AtomicU64>,
}

impl RouterHandle {
    /// Submits a batch of `session`; the receiver yields one outcome per
    /// message (or an error if the driver is gone), once the stored ones
    /// are in registro_server.txt.
    pub fn submit(
        &self,
        session: SessionId,
        messages: Vec<String>,
    ) -> oneshot::Receiver<Vec<Outcome>> {
        self.submit_tagged(session, messages, Vec::new())
    }

    /// [`RouterHandle::submit`] with the messages' tags.
    pub fn submit_tagged(
        &self,
        session: SessionId,
        messages: Vec<String>,
        tags: Vec<Option<protocol::Tag>>,
    ) -> oneshot::Receiver<Vec<Outcome>> {
        let (reply, outcomes) = oneshot::channel();
        self.send(Event::Submit {
            session,
            messages,
            tags,
            reply,
        });
        outcomes
    }

    /// A fresh link id.
    pub fn new_link(&self) -> LinkId {
        LinkId(self.next_link.fetch_add(1, Ordering::Relaxed))
    }

    /// A fresh session id.
    pub fn new_session(&self) -> SessionId {
        SessionId(self.next_session.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends an event; lost only if the driver has stopped, in which case
    /// dropped reply channels tell the waiting sessions.
    pub fn send(&self, event: Event) {
        let _ = self.events.send(event);
    }
}

/// Starts the driver task. Confirmed messages are logged to `registro`,
/// heartbeat reports appended to `heartbeats`. On `shutdown` the router
/// stops placing messages (see the router's docs).
pub fn spawn(
    config: RouterConfig,
    seed: u64,
    files: Files,
    multicast: Option<HeartbeatSocket>,
    counting: bool,
    shutdown: CancellationToken,
) -> RouterHandle {
    let (events, inbox) = mpsc::unbounded_channel();
    let (reports, report_inbox) = mpsc::unbounded_channel();
    let handle = RouterHandle {
        events,
        next_link: Arc::new(AtomicU64::new(1)),
        next_session: Arc::new(AtomicU64::new(1)),
    };
    let multicast = multicast.map(|socket| Multicast {
        group: socket.group(),
        probes: socket.spawn(handle.clone()),
        ignored: 0,
    });
    let mut router = Router::new(config, seed, now());
    let ledger = files.ids.map(|ids| {
        router.restore(ids.restored, now());
        ids.journal
    });
    let driver = Driver {
        ledger,
        router,
        outboxes: IdMap::default(),
        orders: IdMap::default(),
        registro: Registro::new(files.registro),
        reports,
        multicast,
        stats: stats::Stats::new(now(), counting),
    };
    tokio::spawn(write_heartbeats(files.heartbeats, report_inbox));
    tokio::spawn(drive(driver, inbox, shutdown));
    handle
}

/// The headnode's log files, as the driver writes them.
#[derive(Debug)]
pub struct Files {
    /// registro_server.txt.
    pub registro: Journal,
    /// heartbeat_server.txt.
    pub heartbeats: Journal,
    /// registro_server.txt.ids, if tagged messages are to survive a
    /// restart.
    pub ids: Option<Ids>,
}

/// The sidecar of message ids: the router's ledger goes there.
#[derive(Debug)]
pub struct Ids {
    /// The file, to append to.
    pub journal: Journal,
    /// What it held at start.
    pub restored: dedupe::Windows<dedupe::sidecar::Entry>,
}

/// The multicast heartbeat, as the driver sees it.
struct Multicast {
    group: SocketAddrV4,
    probes: mpsc::UnboundedSender<Outgoing>,
    /// Alive datagrams that parsed but that the router ignored.
    ignored: u64,
}

type Report = Vec<(Arc<str>, bool)>;

type Answer = oneshot::Sender<Vec<Outcome>>;

/// The token the router carries for each batch.
#[derive(Debug)]
pub struct Waiter {
    session: SessionId,
    /// The batch's number within its session, from 0.
    seq: u64,
    reply: Answer,
}

/// The order of one session's batches in registro_server.txt. Kept only
/// while the session has batches not yet logged.
#[derive(Debug, Default)]
struct Order {
    /// Batches submitted so far.
    submitted: u64,
    /// Batches logged so far: the next to log is number `logged`.
    logged: u64,
    /// Batches answered before an earlier one of the session, by number.
    early: BTreeMap<u64, (Answer, Vec<Outcome>)>,
}

/// Everything the driver task owns.
struct Driver {
    router: Router<Waiter>,
    /// registro_server.txt.ids.
    ledger: Option<Journal>,
    outboxes: IdMap<LinkId, Outbox>,
    orders: IdMap<SessionId, Order>,
    registro: Registro,
    reports: mpsc::UnboundedSender<Report>,
    /// `None` with TCP heartbeats.
    multicast: Option<Multicast>,
    /// What the status page shows.
    stats: stats::Stats,
}

/// The outgoing side of one datanode link.
struct Outbox {
    tx: mpsc::UnboundedSender<Bytes>,
    buf: BytesMut,
    /// See [`Event::Register`]'s `local`.
    interface: Option<Ipv4Addr>,
}

impl Outbox {
    fn flush(&mut self) {
        if !self.buf.is_empty() {
            // If the writer is gone the link is closing; its Closed event
            // tells the router.
            let _ = self.tx.send(self.buf.split().freeze());
        }
    }
}

/// The current time by Tokio's clock, which tests can pause and advance;
/// the router itself never reads a clock.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

async fn drive(
    mut driver: Driver,
    mut inbox: mpsc::UnboundedReceiver<Event>,
    shutdown: CancellationToken,
) {
    let mut stopping = false;
    // One timer, moved as the router's next deadline moves.
    let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
    let timer = tokio::time::sleep_until(far());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        let deadline = driver.router.next_deadline();
        if deadline != armed {
            armed = deadline;
            let at = deadline.map_or_else(far, tokio::time::Instant::from_std);
            timer.as_mut().reset(at);
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled(), if !stopping => {
                stopping = true;
                driver.router.shutdown(now());
            }
            event = inbox.recv() => {
                let Some(event) = event else { break };
                driver.handle(event, now());
                let mut taken = 1 + driver.take_waiting(&mut inbox, MAX_EVENTS_PER_PASS - 1);
                if taken < YIELD_BELOW {
                    // Let the ready sessions and link readers queue theirs.
                    tokio::task::yield_now().await;
                    taken += driver.take_waiting(&mut inbox, MAX_EVENTS_PER_PASS - taken);
                }
                tracing::trace!(taken, "driver pass");
            }
            _ = &mut timer, if armed.is_some() => {
                armed = None;
                driver.router.tick(now());
            }
        }
        driver.act();
    }
}

impl Driver {
    /// Handles the events already waiting, `max` at most; returns how many.
    fn take_waiting(&mut self, inbox: &mut mpsc::UnboundedReceiver<Event>, max: usize) -> usize {
        let now = now();
        let mut taken = 0;
        while taken < max {
            match inbox.try_recv() {
                Ok(event) => self.handle(event, now),
                Err(_) => break,
            }
            taken += 1;
        }
        taken
    }

    fn handle(&mut self, event: Event, now: Instant) {
        match event {
            Event::Submit {
                session,
                messages,
                tags,
                reply,
            } => {
                let order = self.orders.entry(session).or_default();
                let seq = order.submitted;
                order.submitted += 1;
                let waiter = Waiter {
                    session,
                    seq,
                    reply,
                };
                self.router.submit_tagged(waiter, messages, tags, now);
            }
            Event::Register {
                link,
                name,
                out,
                local,
                peer,
            } => {
                let mut buf = BytesMut::new();
                match self.router.register(link, &name, peer, now) {
                    Ok(()) => {
                        let group = self.multicast.as_ref().map(|m| m.group);
                        let ok = Reply::Ok(protocol::link::registered(&name, group));
                        encode_frame_with(&mut buf, |dst| ok.write_payload(dst));
                        // The OK goes first in the outbox; STOREs the router
                        // decided during registration (parked messages) follow.
                        let outbox = Outbox {
                            tx: out,
                            buf,
                            interface: local,
                        };
                        self.outboxes.insert(link, outbox);
                    }
                    Err(err) => {
                        tracing::warn!(%name, %link, %peer, %err, "registration refused");
                        encode_frame_with(&mut buf, |dst| err.write_payload(dst));
                        // Dropping `out` after this ends the link's writer.
                        let _ = out.send(buf.freeze());
                    }
                }
            }
            Event::Replies { link, replies } => {
                for reply in replies {
                    self.router.reply(link, reply, now);
                }
            }
            Event::Alive { alive, from } => {
                if let Err(why) = self.router.alive(&alive, now) {
                    let count = self.multicast.as_mut().map_or(0, |multicast| {
                        multicast.ignored += 1;
                        multicast.ignored
                    });
                    tracing::debug!(%from, name = %alive.name, ?why, ignored = count, "alive datagram ignored");
                }
            }
            Event::Closed { link } => {
                self.router.link_closed(link, now);
                self.outboxes.remove(&link);
            }
            Event::Status { reply } => {
                let _ = reply.send(self.status(now));
            }
        }
    }

    /// The status page's snapshot, now.
    fn status(&mut self, now: Instant) -> StatusReport {
        let router = self.router.snapshot();
        let heard_ago = router
            .datanodes
            .iter()
            .map(|node| {
                node.heard
                    .map(|heard| now.saturating_duration_since(heard.at))
            })
            .collect();
        let stats = &mut self.stats;
        StatusReport {
            uptime: stats.uptime(now),
            heard_ago,
            router,
            stored: stats.stored.clone(),
            errors: stats.errors.clone(),
            bytes: stats.bytes,
            per_second: stats.per_second(now),
            rounds: stats.rounds.iter().cloned().collect(),
            round_trips: stats.round_trips,
        }
    }

    /// Carries out the router's actions: frames into the outboxes, answered
    /// batches into registro_server.txt and back to their sessions.
    fn act(&mut self) {
        let Driver {
            router,
            ledger,
            outboxes,
            orders,
            registro,
            reports,
            multicast,
            stats,
        } = self;
        let now = now();
        let mut rounds = Vec::new();
        for action in router.drain_actions() {
            match action {
                Action::Close { link } => {
                    if let Some(mut outbox) = outboxes.remove(&link) {
                        outbox.flush();
                    }
                }
                Action::Done { token, outcomes } => {
                    stats.answered(&outcomes, now);
                    log_in_session_order(orders, registro, token, outcomes)
                }
                Action::Multicast { probe } => {
                    if let Some(multicast) = multicast {
                        let mut interfaces: Vec<Ipv4Addr> =
                            outboxes.values().filter_map(|o| o.interface).collect();
                        interfaces.sort();
                        interfaces.dedup();
                        let _ = multicast.probes.send(Outgoing { probe, interfaces });
                    }
                }
                Action::Heartbeat { report } => rounds.push(report),
            }
        }
        for report in rounds {
            stats.round(timestamp(), report.clone(), &router.snapshot());
            let _ = reports.send(report);
        }
        router.take_output(|link, frames| {
            if let Some(outbox) = outboxes.get_mut(&link) {
                outbox.buf.extend_from_slice(frames);
            }
        });
        // Before the STOREs go out and the answers back: a restarted
        // headnode must know where each tagged message may be.
        router.drain_ledger(|records| {
            if let Some(ledger) = ledger {
                if let Err(err) = ledger.write(records) {
                    tracing::error!(%err, "cannot append to the message ids' sidecar");
                }
            }
        });
        for outbox in outboxes.values_mut() {
            outbox.flush();
        }
        registro.write();
    }
}

#[cfg(test)]
mod tests;

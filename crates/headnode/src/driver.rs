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
//! # registro_server.txt
//!
//! The driver writes it: the lines of every batch answered in a pass go out
//! with one `write(2)` (and, with `--fsync always`, one shared sync), and
//! only then are those batches' outcomes sent to their sessions, so a line
//! is in the file before its client is answered. Datanodes confirm in any
//! order, but each session's lines must be in the order of its messages,
//! batch after batch, so that registro_server.txt and the client's
//! registro_cliente.txt tell the same story line for line: the driver
//! numbers each session's batches as they are submitted and holds a batch
//! that is answered before an earlier one of the same session until that
//! one is logged. Lines of different sessions interleave batch by batch.

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
use journal::{timestamp, Durability, Journal, Record};
use protocol::{
    encode_frame_with, heartbeat::Alive, sentences, ErrorCode, ErrorReply, LinkReply, Reply,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

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
        let (reply, outcomes) = oneshot::channel();
        self.send(Event::Submit {
            session,
            messages,
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
    let driver = Driver {
        router: Router::new(config, seed, now()),
        outboxes: IdMap::default(),
        orders: IdMap::default(),
        registro: Registro::new(files.registro),
        reports,
        multicast,
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
    outboxes: IdMap<LinkId, Outbox>,
    orders: IdMap<SessionId, Order>,
    registro: Registro,
    reports: mpsc::UnboundedSender<Report>,
    /// `None` with TCP heartbeats.
    multicast: Option<Multicast>,
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
                self.router.submit(waiter, messages, now);
            }
            Event::Register {
                link,
                name,
                out,
                local,
            } => {
                let mut buf = BytesMut::new();
                match self.router.register(link, &name, now) {
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
                        tracing::warn!(%name, %link, %err, "registration refused");
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
        }
    }

    /// Carries out the router's actions: frames into the outboxes, answered
    /// batches into registro_server.txt and back to their sessions.
    fn act(&mut self) {
        let Driver {
            router,
            outboxes,
            orders,
            registro,
            reports,
            multicast,
        } = self;
        for action in router.drain_actions() {
            match action {
                Action::Close { link } => {
                    if let Some(mut outbox) = outboxes.remove(&link) {
                        outbox.flush();
                    }
                }
                Action::Done { token, outcomes } => {
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
                Action::Heartbeat { report } => {
                    let _ = reports.send(report);
                }
            }
        }
        router.take_output(|link, frames| {
            if let Some(outbox) = outboxes.get_mut(&link) {
                outbox.buf.extend_from_slice(frames);
            }
        });
        for outbox in outboxes.values_mut() {
            outbox.flush();
        }
        registro.write();
    }
}

/// A batch is answered: log it if every earlier batch of its session is,
/// else hold it until they are.
fn log_in_session_order(
    orders: &mut IdMap<SessionId, Order>,
    registro: &mut Registro,
    token: Waiter,
    outcomes: Vec<Outcome>,
) {
    let Some(order) = orders.get_mut(&token.session) else {
        // Every submission made an entry; this cannot happen.
        registro.log(token.reply, outcomes);
        return;
    };
    if token.seq != order.logged {
        order.early.insert(token.seq, (token.reply, outcomes));
        return;
    }
    registro.log(token.reply, outcomes);
    order.logged += 1;
    while let Some((reply, outcomes)) = order.early.remove(&order.logged) {
        registro.log(reply, outcomes);
        order.logged += 1;
    }
    if order.logged == order.submitted {
        orders.remove(&token.session);
    }
}

/// registro_server.txt and the answers waiting for this pass's write.
struct Registro {
    journal: Journal,
    /// This pass's lines; taken only while they are written.
    record: Option<Record>,
    stamp: Option<String>,
    answers: Vec<(Answer, Vec<Outcome>)>,
}

impl Registro {
    fn new(journal: Journal) -> Self {
        Registro {
            journal,
            record: Some(Record::new()),
            stamp: None,
            answers: Vec::new(),
        }
    }

    /// Adds a batch's lines, `<time> -> <the datanode's sentence>` per
    /// stored message, and keeps its answer until they are written.
    fn log(&mut self, reply: Answer, outcomes: Vec<Outcome>) {
        let record = self.record.get_or_insert_with(Record::new);
        let mut stored = outcomes.iter().flatten().peekable();
        if stored.peek().is_some() {
            let stamp = self.stamp.get_or_insert_with(timestamp);
            for stored in stored {
                record.push(stamp, stored.sentence.as_str());
            }
        }
        self.answers.push((reply, outcomes));
    }

    /// Writes this pass's lines with one write, then answers their batches.
    fn write(&mut self) {
        if self.answers.is_empty() {
            return;
        }
        self.stamp = None;
        let answers = std::mem::take(&mut self.answers);
        let mut record = self.record.take().unwrap_or_default();
        if record.is_empty() {
            self.record = Some(record);
            send_outcomes(answers, Ok(()));
            return;
        }
        // The write(2) happens here, in the order of the passes; only an
        // fsync (with --fsync always) is left to wait for.
        let written = self.journal.write(record.as_bytes());
        record.clear();
        self.record = Some(record);
        match written {
            Err(err) => send_outcomes(answers, Err(err)),
            Ok(_) if self.journal.durability() != Durability::Always => {
                send_outcomes(answers, Ok(()))
            }
            Ok(written) => {
                tokio::spawn(async move { send_outcomes(answers, written.durable().await) });
            }
        }
    }
}

/// Sends each batch its outcomes; if registro_server.txt could not be
/// written, what was stored is reported as a storage error instead.
fn send_outcomes(answers: Vec<(Answer, Vec<Outcome>)>, written: Result<(), journal::Error>) {
    if let Err(err) = &written {
        tracing::error!(%err, "cannot write registro_server.txt");
    }
    for (reply, mut outcomes) in answers {
        if let Err(err) = &written {
            for outcome in &mut outcomes {
                if let Ok(stored) = outcome {
                    *outcome = Err(ErrorReply::new(
                        ErrorCode::Storage,
                        format!(
                            "stored on {} but registro_server.txt cannot be written: {err}",
                            stored.node
                        ),
                    ));
                }
            }
        }
        // The session may have gone (its client vanished).
        let _ = reply.send(outcomes);
    }
}

/// Appends each heartbeat report to heartbeat_server.txt, one line per
/// datanode: `YYYY-mm-dd HH:MM:SS -> El <name> aun está activo.` or
/// `... -> El <name> se encuentra inactivo.`
async fn write_heartbeats(journal: Journal, mut reports: mpsc::UnboundedReceiver<Report>) {
    let mut record = Record::new();
    while let Some(report) = reports.recv().await {
        let stamp = timestamp();
        record.clear();
        for (name, active) in &report {
            let sentence = if *active {
                sentences::heartbeat_active(name)
            } else {
                sentences::heartbeat_inactive(name)
            };
            record.push(&stamp, &sentence);
        }
        tracing::debug!(?report, "heartbeat round");
        if let Err(err) = journal.append(record.as_bytes()).await {
            tracing::error!(path = %journal.path().display(), %err, "cannot write the heartbeat log");
        }
    }
}

#[cfg(test)]
mod tests {
    use journal::Durability;

    use super::*;
    use crate::router::Stored;

    fn stored(node: &str, message: &str) -> Outcome {
        Ok(Stored {
            node: node.into(),
            sentence: sentences::datanode_stored(node, message).into(),
            message: message.into(),
        })
    }

    fn lines(journal: &Journal) -> Vec<String> {
        std::fs::read_to_string(journal.path())
            .unwrap()
            .lines()
            .map(|line| journal::parse_record(line).unwrap().1)
            .collect()
    }

    #[tokio::test]
    async fn a_session_is_logged_in_its_order_and_answered_after_its_lines() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path().join("registro.txt"), Durability::Never).unwrap();
        let mut registro = Registro::new(journal.clone());
        let mut orders: IdMap<SessionId, Order> = IdMap::default();
        let (one, other) = (SessionId(1), SessionId(2));
        let mut waiters = Vec::new();
        let mut receivers = Vec::new();
        for (session, seq) in [(one, 0), (one, 1), (one, 2), (other, 0)] {
            orders.entry(session).or_default().submitted += 1;
            let (reply, answer) = oneshot::channel();
            waiters.push(Some(Waiter {
                session,
                seq,
                reply,
            }));
            receivers.push(answer);
        }
        let mut finish = |index: usize, outcomes: Vec<Outcome>| {
            let waiter = waiters[index].take().unwrap();
            log_in_session_order(&mut orders, &mut registro, waiter, outcomes);
            registro.write();
        };
        // The third batch of session 1 is answered first: held.
        finish(2, vec![stored("dn1", "c")]);
        assert!(lines(&journal).is_empty());
        assert!(
            receivers[2].try_recv().is_err(),
            "not answered before its line"
        );
        // Another session is not held up by it.
        finish(3, vec![stored("dn3", "x")]);
        assert_eq!(
            lines(&journal),
            ["El dn3 ha registrado satisfactoriamente el mensaje: 'x'."]
        );
        assert_eq!(receivers[3].try_recv().unwrap().len(), 1);
        // The first arrives: it is logged, the third still waits for the second.
        let refused = Err(ErrorReply::new(ErrorCode::Storage, "disk full"));
        finish(0, vec![stored("dn2", "a"), refused]);
        finish(1, vec![stored("dn1", "b")]);
        let expected: Vec<String> = [("dn3", "x"), ("dn2", "a"), ("dn1", "b"), ("dn1", "c")]
            .iter()
            .map(|(node, message)| sentences::datanode_stored(node, message))
            .collect();
        assert_eq!(lines(&journal), expected, "no line for the refused message");
        for receiver in &mut receivers[..3] {
            assert!(receiver.try_recv().is_ok());
        }
        assert!(orders.is_empty(), "nothing kept once every batch is logged");
    }

    /// The driver under Tokio's paused clock: a datanode that registers and
    /// then never answers misses the first heartbeat round (which its
    /// registration starts) and is reported inactive; its message is parked
    /// then and answered `ERR UNAVAILABLE` after the unavailable timeout: 12
    /// virtual seconds, in no real time.
    #[tokio::test(start_paused = true)]
    async fn timeouts_follow_tokio_s_clock() {
        use protocol::{Frame, FrameCodec};
        use tokio_util::codec::Decoder;

        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| Journal::open(dir.path().join(name), Durability::Never).unwrap();
        let heartbeats = open("heartbeat.txt");
        let config = RouterConfig::default();
        let files = Files {
            registro: open("registro.txt"),
            heartbeats: heartbeats.clone(),
        };
        let config = RouterConfig {
            heartbeat: crate::router::HeartbeatMode::Tcp,
            ..config
        };
        let handle = spawn(config.clone(), 1, files, None, CancellationToken::new());
        let start = tokio::time::Instant::now();
        let (out, mut link_rx) = mpsc::unbounded_channel();
        let link = handle.new_link();
        handle.send(Event::Register {
            link,
            name: "dn1".into(),
            out,
            local: None,
        });
        let outcomes = handle.submit(handle.new_session(), vec!["hola".into()]);
        let (mut sent, mut codec) = (BytesMut::new(), FrameCodec::new(1024));
        let mut payloads = Vec::new();
        while payloads.len() < 2 {
            sent.extend_from_slice(&link_rx.recv().await.unwrap());
            while let Some(Frame::Data(payload)) = codec.decode(&mut sent).unwrap() {
                payloads.push(payload);
            }
        }
        assert_eq!(payloads, ["OK dn1", "STORE hola"]);

        let outcomes = outcomes.await.unwrap();
        let waited = start.elapsed();
        assert_eq!(
            outcomes[0].as_ref().unwrap_err().code,
            ErrorCode::Unavailable
        );
        let expected = config.heartbeat_timeout + config.unavailable_timeout;
        assert!(
            (expected..expected + Duration::from_millis(10)).contains(&waited),
            "{waited:?}"
        );
        let report = lines(&heartbeats);
        assert_eq!(report[0], "El dn1 se encuentra inactivo.", "{report:?}");
    }
}

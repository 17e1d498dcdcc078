//! The driver: the one task that owns the [`Router`] and carries out its
//! actions.
//!
//! Connection tasks never touch the router. They send [`Event`]s on an
//! unbounded channel (client sessions are bounded by their own in-flight
//! limit, so the channel is too) and the driver feeds them to the router,
//! with `Instant::now()`, in arrival order. It takes every event already
//! waiting (up to [`MAX_EVENTS_PER_PASS`]) before acting, so that under
//! load one pass turns many client batches and datanode replies into one
//! write per datanode link.
//!
//! Actions are carried out as follows:
//!
//! - `Send`: the request is encoded as a frame into the link's outbox; at
//!   the end of the pass each outbox is handed, as one buffer, to the task
//!   that writes that link. `STORE`s are therefore pipelined: the driver
//!   never waits for a reply before sending more.
//! - `Close`: the outbox is flushed and dropped; the link's writer task sees
//!   its channel end, shuts the socket down, and the connection task ends.
//! - `Done`: the outcomes go back to the waiting client session through
//!   the batch's oneshot channel.
//! - `Heartbeat`: the report goes to a small task that appends it to
//!   heartbeat_server.txt, so a slow disk (`--fsync always`) never holds up
//!   routing.
//!
//! Between events the driver sleeps until [`Router::next_deadline`] and then
//! calls [`Router::tick`].

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use journal::{timestamp, Journal, Record};
use protocol::{encode_frame_with, sentences, Reply};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::router::{Action, LinkId, Outcome, Router, RouterConfig};

/// Events taken from the channel in one pass at most, so that timers are
/// not starved under a flood.
pub const MAX_EVENTS_PER_PASS: usize = 1024;

/// What connection tasks tell the driver.
#[derive(Debug)]
pub enum Event {
    /// A client session's batch of messages.
    Submit {
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
    },
    /// Replies read from a link, in order.
    Replies {
        /// The link.
        link: LinkId,
        /// The replies.
        replies: Vec<Reply>,
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
}

impl RouterHandle {
    /// Submits a batch; the receiver yields one outcome per message (or an
    /// error if the driver is gone).
    pub fn submit(&self, messages: Vec<String>) -> oneshot::Receiver<Vec<Outcome>> {
        let (reply, outcomes) = oneshot::channel();
        self.send(Event::Submit { messages, reply });
        outcomes
    }

    /// A fresh link id.
    pub fn new_link(&self) -> LinkId {
        LinkId(self.next_link.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends an event; lost only if the driver has stopped, in which case
    /// dropped reply channels tell the waiting sessions.
    pub fn send(&self, event: Event) {
        let _ = self.events.send(event);
    }
}

/// Starts the driver task. Heartbeat reports are appended to `heartbeats`.
/// On `shutdown` the router stops placing messages (see the router's docs).
pub fn spawn(
    config: RouterConfig,
    seed: u64,
    heartbeats: Journal,
    shutdown: CancellationToken,
) -> RouterHandle {
    let (events, inbox) = mpsc::unbounded_channel();
    let (reports, report_inbox) = mpsc::unbounded_channel();
    let router = Router::new(config, seed, Instant::now());
    tokio::spawn(write_heartbeats(heartbeats, report_inbox));
    tokio::spawn(drive(router, inbox, reports, shutdown));
    RouterHandle {
        events,
        next_link: Arc::new(AtomicU64::new(1)),
    }
}

type Report = Vec<(Arc<str>, bool)>;

/// The outgoing side of one datanode link.
struct Outbox {
    tx: mpsc::UnboundedSender<Bytes>,
    buf: BytesMut,
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

async fn drive(
    mut router: Router<oneshot::Sender<Vec<Outcome>>>,
    mut inbox: mpsc::UnboundedReceiver<Event>,
    reports: mpsc::UnboundedSender<Report>,
    shutdown: CancellationToken,
) {
    let mut outboxes: HashMap<LinkId, Outbox> = HashMap::new();
    let mut stopping = false;
    // One timer, moved as the router's next deadline moves.
    let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
    let timer = tokio::time::sleep_until(far());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        let deadline = router.next_deadline();
        if deadline != armed {
            armed = deadline;
            let at = deadline.map_or_else(far, tokio::time::Instant::from_std);
            timer.as_mut().reset(at);
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled(), if !stopping => {
                stopping = true;
                router.shutdown(Instant::now());
            }
            event = inbox.recv() => {
                let Some(event) = event else { break };
                let now = Instant::now();
                handle(&mut router, &mut outboxes, event, now);
                for _ in 1..MAX_EVENTS_PER_PASS {
                    match inbox.try_recv() {
                        Ok(event) => handle(&mut router, &mut outboxes, event, now),
                        Err(_) => break,
                    }
                }
            }
            _ = &mut timer, if armed.is_some() => {
                armed = None;
                router.tick(Instant::now());
            }
        }
        for action in router.drain_actions() {
            match action {
                Action::Send { link, request } => {
                    if let Some(outbox) = outboxes.get_mut(&link) {
                        encode_frame_with(&mut outbox.buf, |buf| request.write_payload(buf));
                    }
                }
                Action::Close { link } => {
                    if let Some(mut outbox) = outboxes.remove(&link) {
                        outbox.flush();
                    }
                }
                Action::Done { token, outcomes } => {
                    // The session may have gone (its client vanished).
                    let _ = token.send(outcomes);
                }
                Action::Heartbeat { report } => {
                    let _ = reports.send(report);
                }
            }
        }
        for outbox in outboxes.values_mut() {
            outbox.flush();
        }
    }
}

fn handle(
    router: &mut Router<oneshot::Sender<Vec<Outcome>>>,
    outboxes: &mut HashMap<LinkId, Outbox>,
    event: Event,
    now: Instant,
) {
    match event {
        Event::Submit { messages, reply } => router.submit(reply, messages, now),
        Event::Register { link, name, out } => {
            let mut buf = BytesMut::new();
            match router.register(link, &name, now) {
                Ok(()) => {
                    let ok = Reply::Ok(name);
                    encode_frame_with(&mut buf, |dst| ok.write_payload(dst));
                    // The OK goes first in the outbox; STOREs the router
                    // decided during registration (parked messages) follow.
                    outboxes.insert(link, Outbox { tx: out, buf });
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
                router.reply(link, reply, now);
            }
        }
        Event::Closed { link } => {
            router.link_closed(link, now);
            outboxes.remove(&link);
        }
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

//! A router driven by hand, for the router's tests: simulated datanodes
//! that answer only when told to, a clock that moves only when told to,
//! and a record of everything the router decided.

pub use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    time::{Duration, Instant},
};

pub use bytes::BytesMut;
pub use protocol::{
    sentences, ClientId, ErrorCode, ErrorReply, Frame, FrameCodec, Reply, Request, Tag,
};
pub use rand::{rngs::StdRng, SeedableRng};
use tokio_util::codec::Decoder;

pub use protocol::heartbeat::{Alive, Probe};

pub use super::{Action, HeartbeatMode, Ignored, LinkId, Outcome, Router, RouterConfig};
pub use crate::placement::Placement;

/// One simulated millisecond.
pub const MS: Duration = Duration::from_millis(1);

/// A router driven by hand, with simulated datanodes that answer only
/// when told to.
pub struct Sim {
    pub router: Router<u32>,
    pub now: Instant,
    /// Requests each link received and has not answered, oldest first.
    pub inbox: HashMap<LinkId, VecDeque<Request>>,
    pub names: HashMap<LinkId, String>,
    /// What each datanode wrote: name -> messages.
    pub stored: BTreeMap<String, Vec<String>>,
    pub done: HashMap<u32, Vec<Outcome>>,
    pub closed: Vec<LinkId>,
    pub reports: Vec<Vec<(String, bool)>>,
    /// The multicast probes sent, oldest first.
    pub probes: Vec<Probe>,
    /// The ids each datanode holds (`STOREID`s it wrote): a datanode that
    /// is sent an id again confirms without writing it again.
    pub ids: BTreeMap<String, Vec<(String, u64)>>,
}

impl Sim {
    /// A router with TCP heartbeats and no datanode.
    pub fn new(placement: Placement) -> Sim {
        Sim::with_mode(placement, HeartbeatMode::Tcp)
    }

    /// A router with heartbeats in `mode` and no datanode.
    pub fn with_mode(placement: Placement, heartbeat: HeartbeatMode) -> Sim {
        let config = RouterConfig {
            placement,
            heartbeat,
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
            probes: Vec::new(),
            ids: BTreeMap::new(),
        }
    }

    pub fn collect(&mut self) {
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
                Action::Multicast { probe } => self.probes.push(probe),
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
    pub fn advance(&mut self, by: Duration) {
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

    pub fn register(&mut self, link: u64, name: &str) -> Result<(), ErrorReply> {
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 10_000 + link as u16));
        let result = self.router.register(LinkId(link), name, peer, self.now);
        if result.is_ok() {
            self.names.insert(LinkId(link), name.to_owned());
        }
        self.collect();
        result
    }

    pub fn submit(&mut self, token: u32, messages: &[&str]) {
        let messages = messages.iter().map(|m| m.to_string()).collect();
        self.router.submit(token, messages, self.now);
        self.collect();
    }

    /// Submits tagged messages `(seq, acked, text)` of client `client`.
    pub fn submit_tagged(&mut self, token: u32, client: &str, messages: &[(u64, u64, &str)]) {
        let tags = messages
            .iter()
            .map(|&(seq, acked, _)| {
                Some(Tag {
                    client: ClientId::new(client).unwrap(),
                    seq,
                    acked,
                })
            })
            .collect();
        // Each as the headnode's session passes it on: the whole argument.
        let texts = messages
            .iter()
            .map(|&(seq, acked, text)| format!("{client} {seq} {acked} {text}"))
            .collect();
        self.router.submit_tagged(token, texts, tags, self.now);
        self.collect();
    }

    /// Copies of `message` over every datanode's store.
    pub fn copies(&self, message: &str) -> usize {
        self.stored
            .values()
            .map(|m| m.iter().filter(|m| *m == message).count())
            .sum()
    }

    /// Datanode on `link` answers its `n` oldest requests (all if None).
    pub fn serve(&mut self, link: u64, n: Option<usize>) {
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
                Request::StoreTagged(tag, message) => {
                    let sentence = sentences::datanode_stored(&name, &message);
                    let id = (tag.client.to_string(), tag.seq);
                    let held = self.ids.entry(name.clone()).or_default();
                    if !held.contains(&id) {
                        held.push(id);
                        self.stored.entry(name.clone()).or_default().push(message);
                    }
                    Reply::Ok(sentence)
                }
                Request::Ping => Reply::Pong,
                other => panic!("unexpected {other:?}"),
            };
            self.router.reply(link, reply, self.now);
            self.collect();
        }
    }

    /// Datanode on `link` answers its oldest request with what `lie`
    /// makes of it, storing nothing: a lying or broken datanode. Returns
    /// whether a request was owed.
    pub fn answer_with(&mut self, link: u64, lie: impl FnOnce(&str, &Request) -> Reply) -> bool {
        let link = LinkId(link);
        let name = self.names[&link].clone();
        let Some(request) = self.inbox.entry(link).or_default().pop_front() else {
            return false;
        };
        let reply = lie(&name, &request);
        self.router.reply(link, reply, self.now);
        self.collect();
        true
    }

    /// The links registered and not closed, in order.
    pub fn live_links(&self) -> Vec<u64> {
        let mut links: Vec<u64> = self
            .names
            .keys()
            .filter(|l| !self.closed.contains(l))
            .map(|l| l.0)
            .collect();
        links.sort();
        links
    }

    pub fn serve_all(&mut self) {
        for link in self.live_links() {
            self.serve(link, None);
        }
    }

    pub fn drop_link(&mut self, link: u64) {
        self.inbox.remove(&LinkId(link));
        self.router.link_closed(LinkId(link), self.now);
        self.closed.push(LinkId(link));
        self.collect();
    }

    pub fn owed(&self, link: u64) -> usize {
        self.inbox.get(&LinkId(link)).map_or(0, VecDeque::len)
    }

    pub fn stores_owed(&self, link: u64) -> usize {
        self.inbox.get(&LinkId(link)).map_or(0, |q| {
            q.iter()
                .filter(|r| matches!(r, Request::Store(_) | Request::StoreTagged(..)))
                .count()
        })
    }

    pub fn outcome(&self, token: u32) -> &Vec<Outcome> {
        self.done
            .get(&token)
            .unwrap_or_else(|| panic!("batch {token} not answered"))
    }

    pub fn stored_on(&self, token: u32) -> Vec<String> {
        self.outcome(token)
            .iter()
            .map(|o| o.as_ref().expect("stored").node.to_string())
            .collect()
    }

    pub fn last_report(&self) -> Vec<(&str, bool)> {
        self.reports
            .last()
            .expect("a report")
            .iter()
            .map(|(n, a)| (n.as_str(), *a))
            .collect()
    }

    /// Three datanodes, dn1 to dn3 on links 1 to 3, registered and past
    /// the first heartbeat round (which registration starts at once): the
    /// next round is one interval away.
    pub fn three(placement: Placement) -> Sim {
        Sim::three_with_mode(placement, HeartbeatMode::Tcp)
    }

    /// [`Sim::three`] with heartbeats in `mode`.
    pub fn three_with_mode(placement: Placement, mode: HeartbeatMode) -> Sim {
        let mut sim = Sim::with_mode(placement, mode);
        for (link, name) in [(1, "dn1"), (2, "dn2"), (3, "dn3")] {
            sim.register(link, name).unwrap();
        }
        sim.advance(Duration::ZERO);
        sim.serve_all();
        for (_, name) in [(1, "dn1"), (2, "dn2"), (3, "dn3")] {
            sim.answer_probe(name);
        }
        assert_eq!(sim.reports.len(), 1, "the first round, at registration");
        assert!(sim.last_report().iter().all(|(_, active)| *active));
        sim.reports.clear();
        sim.probes.clear();
        sim
    }

    /// Datanode `name` answers the latest probe, if any (multicast mode).
    pub fn answer_probe(&mut self, name: &str) -> Option<Result<(), Ignored>> {
        let probe = *self.probes.last()?;
        let alive = Alive {
            round: probe.round,
            nonce: probe.nonce,
            name: name.to_owned(),
        };
        let verdict = self.router.alive(&alive, self.now);
        self.collect();
        Some(verdict)
    }
}

/// Every confirmed message is in the store of the datanode named.
pub fn assert_confirmations_hold(sim: &Sim) {
    for outcomes in sim.done.values() {
        for stored in outcomes.iter().flatten() {
            assert!(
                sim.stored
                    .get(&*stored.node)
                    .is_some_and(|m| m.iter().any(|m| m == stored.message())),
                "{stored:?} is not on {}",
                stored.node
            );
        }
    }
}

//! Tagged messages (`SENDID`): each id stored on one datanode and answered
//! from there, however often its client sends it.
//!
//! # What the router keeps
//!
//! Per client, a [`dedupe::Windows`] of [`Known`] entries, one per message
//! id above the client's highest `acked`:
//!
//! - `InFlight`: a message with this id is pending; a copy that arrives
//!   meanwhile (the client resent it on a new connection) waits for its
//!   outcome and gets the same answer;
//! - `Stored(node)`: `node` confirmed it; a copy is answered at once,
//!   `OK Su mensaje '<m>' ha sido registrado en el <node>.`, with no new
//!   `STORE` and no new line in registro_server.txt;
//! - `MayHold(node)`: read back from the sidecar after a restart, the id
//!   was sent to `node` and not confirmed: `node` may hold it.
//!
//! An error outcome is not kept (a resend tries afresh), and a message at or
//! below its client's `acked` is refused `ERR BAD_ARGUMENT`.
//!
//! # The holder rule
//!
//! A datanode that was sent a tagged message may have written it even if
//! it never confirmed. Such a message is *held* by that datanode: when the
//! link drops or the datanode stops answering, the message is not placed
//! elsewhere at once, as a plain one is, but waits (parked) for its holder
//! to register again or answer again, up to `unavailable_timeout`; the
//! holder then gets the same `STOREID` again and, recognising the id,
//! confirms without writing twice. Only when the holder stays away that
//! long does the message go to another datanode (counted in
//! [`super::Router::abandoned`], logged): the one case where a message may
//! be in two `data.txt` files.
//!
//! # The ledger
//!
//! What must survive a restart is appended to the router's ledger, which
//! the driver writes to `registro_server.txt.ids` before it sends the
//! pass's frames: `S <client> <seqs> <acked> <node>` when messages are sent
//! to a datanode not already holding them, `C ... <node>` when they are
//! confirmed, a record per client and datanode of the pass, as a rule
//! (format and grouping: [`dedupe::sidecar`]).

use std::{sync::Arc, time::Instant};

use ::dedupe::{
    sidecar::{self, Kind},
    Seen, Windows,
};
use protocol::Tag;

use super::{links::Datanodes, pending::MsgId, Outcome, Router, Stored};

/// A ledger buffer grown past this (a flood's pass) is not kept.
const LEDGER_KEEP: usize = 1 << 20;

/// What the router knows of one message id.
#[derive(Debug)]
pub(super) enum Known {
    InFlight { waiters: Vec<MsgId> },
    Stored(Node),
    MayHold(Arc<str>),
}

/// A datanode as the dedupe state names it: by its place in the datanode
/// table, which keeps every name for the life of the headnode, or by name
/// while only the sidecar knows it (read back after a restart, before
/// that datanode registered).
///
/// An index, not a shared name: a message held, confirmed and forgotten
/// would otherwise count the name's references up and down several times,
/// and those atomic operations were most of what its bookkeeping cost in
/// time (docs/PERFORMANCE.md, "Tagged messages beside plain", step 14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Node {
    At(usize),
    Named(Arc<str>),
}

impl Node {
    /// Its index in `datanodes`, if it is there.
    pub(super) fn index(&self, datanodes: &Datanodes) -> Option<usize> {
        match self {
            Node::At(index) => Some(*index),
            Node::Named(name) => datanodes.find(name),
        }
    }

    /// Its name.
    pub(super) fn name(&self, datanodes: &Datanodes) -> Arc<str> {
        match self {
            Node::At(index) => Arc::clone(&datanodes.get(*index).name),
            Node::Named(name) => Arc::clone(name),
        }
    }

    /// `node` as one of `datanodes` (by index, `at` tried first), or by name.
    fn of(node: &Arc<str>, at: Option<usize>, datanodes: &Datanodes) -> Node {
        let listed = at.filter(|&index| Arc::ptr_eq(&datanodes.get(index).name, node));
        match listed.or_else(|| datanodes.find(node)) {
            Some(index) => Node::At(index),
            None => Node::Named(Arc::clone(node)),
        }
    }
}

/// The windows of every client, and the ledger to write.
#[derive(Debug, Default)]
pub(super) struct Tagged {
    pub windows: Windows<Known>,
    /// This pass's records, and the buffer they are written into.
    pub ledger: sidecar::Records,
    pub ledger_bytes: Vec<u8>,
}

impl Tagged {
    /// Tagged message `tag` is sent to `node`, which did not hold it.
    pub(super) fn record_sent(&mut self, tag: &Tag, node: &Arc<str>) {
        self.ledger.push(Kind::Sent, tag, Some(node));
    }
}

/// What to do with a tagged message just submitted.
pub(super) enum Admit {
    /// Place it (with the holder it may have from before a restart).
    Place(Option<Node>),
    /// Its twin is in flight: it waits for that one's outcome.
    Wait,
    /// Stored on this datanode already: answer it again.
    Again(Arc<str>),
    /// Its client acknowledged it already.
    Refuse(protocol::ErrorReply),
}

impl<T> Router<T> {
    /// Restores what the sidecar held when the headnode started.
    pub fn restore(&mut self, windows: Windows<sidecar::Entry>, now: Instant) {
        for (client, window) in windows.iter() {
            self.seen.windows.ack(client, window.floor(), now);
            for (seq, entry) in window.entries() {
                let Some(node) = entry.node.as_deref() else {
                    continue;
                };
                let known = match entry.kind {
                    Kind::Stored => Known::Stored(Node::Named(node.into())),
                    Kind::Sent => Known::MayHold(node.into()),
                };
                self.seen.windows.insert(client, seq, known, now);
            }
        }
    }

    /// Hands `write` the ledger records decided since the last call (if
    /// any), to be written to the sidecar before this pass's frames are
    /// sent; the buffer is kept for the next pass.
    pub fn drain_ledger(&mut self, write: impl FnOnce(&[u8])) {
        if !self.seen.ledger.is_empty() {
            let bytes = &mut self.seen.ledger_bytes;
            bytes.clear();
            self.seen.ledger.write_to(bytes);
            write(bytes);
            if bytes.capacity() > LEDGER_KEEP {
                *bytes = Vec::new();
            }
        }
    }

    /// Message ids kept, over every client.
    pub fn ids_kept(&self) -> usize {
        self.seen.windows.entries()
    }

    /// Looks tagged message `id` up: what to do with it. Reads the windows
    /// only (and lets `id` wait for its twin), so that the message itself
    /// is looked up once, when it is placed.
    pub(super) fn admit(&mut self, id: MsgId, tag: &Tag, now: Instant) -> Admit {
        let in_flight = || Known::InFlight {
            waiters: Vec::new(),
        };
        match self.seen.windows.check_or_insert(tag, now, in_flight) {
            Seen::New => Admit::Place(None),
            Seen::Known(known) => match known {
                Known::InFlight { waiters } => {
                    waiters.push(id);
                    Admit::Wait
                }
                Known::MayHold(node) => {
                    let node = Arc::clone(node);
                    *known = Known::InFlight {
                        waiters: Vec::new(),
                    };
                    Admit::Place(Some(Node::Named(node)))
                }
                Known::Stored(node) => Admit::Again(node.name(&self.datanodes)),
            },
            Seen::Acknowledged => Admit::Refuse(::dedupe::store::acknowledged(tag)),
        }
    }

    /// Tagged message `tag` got `outcome`: remembered (or forgotten, on an
    /// error); returns the copies that waited for it. `holder` is where it
    /// was last sent, most often the datanode that confirmed it.
    pub(super) fn remember(
        &mut self,
        tag: &Tag,
        holder: Option<Node>,
        outcome: &Outcome,
    ) -> Vec<MsgId> {
        let was = match outcome {
            Ok(stored) => {
                self.seen.ledger.push(Kind::Stored, tag, Some(&stored.node));
                let at = holder.and_then(|holder| holder.index(&self.datanodes));
                let stored = Known::Stored(Node::of(&stored.node, at, &self.datanodes));
                self.seen
                    .windows
                    .get_mut(&tag.client, tag.seq)
                    .map(|known| std::mem::replace(known, stored))
            }
            Err(_) => self.seen.windows.remove(&tag.client, tag.seq),
        };
        match was {
            Some(Known::InFlight { waiters }) => waiters,
            _ => Vec::new(),
        }
    }
}

/// The answer to a copy of a message `node` stored.
pub(super) fn again(node: &Arc<str>, text: &str) -> Stored {
    Stored::new(Arc::clone(node), text.to_owned(), true)
}

/// The outcome a waiting copy gets from its twin's.
pub(super) fn for_copy(outcome: &Outcome) -> Outcome {
    match outcome {
        Ok(stored) => Ok(again(&stored.node, stored.message())),
        Err(err) => Err(err.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::sim::*;

    fn ledger(sim: &mut Sim) -> Vec<String> {
        let mut bytes = Vec::new();
        sim.router.drain_ledger(|records| bytes = records.to_vec());
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_resent_id_is_answered_again_naming_the_same_datanode() {
        let mut sim = Sim::three(Placement::RoundRobin);
        sim.submit_tagged(1, "c1", &[(1, 0, "a"), (2, 0, "b")]);
        sim.serve_all();
        assert_eq!(
            ledger(&mut sim),
            [
                "S c1 1 0 dn1",
                "S c1 2 0 dn2",
                "C c1 1 0 dn1",
                "C c1 2 0 dn2"
            ]
        );
        // The client lost the answers and sends both again.
        sim.submit_tagged(2, "c1", &[(1, 0, "a"), (2, 0, "b")]);
        assert_eq!(
            sim.stores_owed(1) + sim.stores_owed(2) + sim.stores_owed(3),
            0
        );
        let again = sim.outcome(2);
        assert!(again.iter().all(|o| o.as_ref().unwrap().again));
        assert_eq!(sim.stored_on(2), ["dn1", "dn2"]);
        assert_eq!(sim.copies("a") + sim.copies("b"), 2);
        assert!(ledger(&mut sim).is_empty(), "nothing new to remember");
        assert_confirmations_hold(&sim);
    }

    #[test]
    fn a_copy_sent_while_the_first_is_in_flight_waits_for_it() {
        let mut sim = Sim::three(Placement::RoundRobin);
        sim.submit_tagged(1, "c1", &[(1, 0, "a")]);
        sim.submit_tagged(2, "c1", &[(1, 0, "a")]);
        assert_eq!(sim.stores_owed(1) + sim.stores_owed(2), 1, "one STORE");
        assert!(sim.done.is_empty());
        sim.serve_all();
        assert_eq!(sim.stored_on(1), ["dn1"]);
        assert_eq!(sim.stored_on(2), ["dn1"]);
        assert!(sim.outcome(2)[0].as_ref().unwrap().again);
        assert_eq!(sim.copies("a"), 1);
    }

    #[test]
    fn a_stalled_holder_keeps_its_tagged_messages_and_confirms_them_once() {
        let mut sim = Sim::three(Placement::RoundRobin);
        sim.submit_tagged(1, "c1", &[(1, 0, "a"), (2, 0, "b"), (3, 0, "c")]);
        sim.serve(1, None);
        sim.serve(3, None);
        // dn2 sits on "b" past the store timeout: inactive, but "b" waits.
        sim.advance(500 * MS);
        assert!(!sim.router.status("dn2").unwrap().active);
        assert_eq!(
            sim.stores_owed(1) + sim.stores_owed(3),
            0,
            "not placed elsewhere"
        );
        // It wakes up, writes and confirms.
        sim.serve(2, None);
        assert_eq!(sim.stored_on(1), ["dn1", "dn2", "dn3"]);
        assert_eq!(sim.copies("b"), 1);
        // Its heartbeat answer makes it active again; nothing is re-sent
        // that was answered.
        sim.advance(1000 * MS);
        sim.serve_all();
        assert_eq!(sim.copies("b"), 1);
        assert_eq!(sim.router.abandoned(), 0);
    }

    #[test]
    fn a_holder_that_registers_again_is_sent_the_same_id_and_stores_it_once() {
        let mut sim = Sim::three(Placement::RoundRobin);
        sim.submit_tagged(1, "c1", &[(1, 0, "a"), (2, 0, "b")]);
        let request = sim
            .inbox
            .get_mut(&LinkId(2))
            .unwrap()
            .front()
            .cloned()
            .unwrap();
        let Request::StoreTagged(tag, text) = request else {
            panic!("{request:?}")
        };
        // dn2 wrote it, then its link died before the OK.
        sim.ids
            .entry("dn2".into())
            .or_default()
            .push((tag.client.to_string(), tag.seq));
        sim.stored.entry("dn2".into()).or_default().push(text);
        sim.drop_link(2);
        sim.serve_all();
        assert!(!sim.done.contains_key(&1), "b waits for dn2");
        sim.register(4, "dn2").unwrap();
        assert_eq!(sim.stores_owed(4), 1, "sent again to its holder");
        sim.serve_all();
        assert_eq!(sim.stored_on(1), ["dn1", "dn2"]);
        assert_eq!(sim.copies("b"), 1);
        assert_confirmations_hold(&sim);
    }

    #[test]
    fn a_holder_gone_for_good_is_given_up_after_the_unavailable_timeout() {
        let mut sim = Sim::three(Placement::RoundRobin);
        sim.submit_tagged(1, "c1", &[(1, 0, "a")]);
        sim.drop_link(1);
        for _ in 0..20 {
            sim.advance(99 * MS);
            sim.serve_all();
        }
        assert!(sim.done.is_empty());
        sim.advance(20 * MS);
        assert_eq!(sim.router.abandoned(), 1);
        sim.serve_all();
        assert_ne!(sim.stored_on(1), ["dn1"]);
        // Plain messages fail over at once, as before.
        sim.submit(2, &["plain"]);
        let on = sim.live_links()[0];
        sim.drop_link(on);
        sim.serve_all();
        assert_eq!(sim.outcome(2).len(), 1);
    }

    #[test]
    fn acked_ids_are_forgotten_and_refused() {
        let mut sim = Sim::three(Placement::RoundRobin);
        for seq in 1..=100u64 {
            sim.submit_tagged(seq as u32, "c1", &[(seq, seq.saturating_sub(4), "m")]);
            sim.serve_all();
            assert!(sim.router.ids_kept() <= 4, "{}", sim.router.ids_kept());
        }
        sim.submit_tagged(1000, "c1", &[(50, 96, "m")]);
        let refused = sim.outcome(1000)[0].as_ref().unwrap_err();
        assert_eq!(refused.code, ErrorCode::BadArgument);
    }

    #[test]
    fn after_a_restart_the_sidecar_decides() {
        use dedupe::{sidecar, Windows};
        let mut restored = Windows::default();
        let c1 = ClientId::new("c1").unwrap();
        let now = Instant::now();
        let entry = |kind, node: &str| sidecar::Entry {
            kind,
            node: Some(node.into()),
        };
        restored.insert(&c1, 1, entry(sidecar::Kind::Stored, "dn3"), now);
        restored.insert(&c1, 2, entry(sidecar::Kind::Sent, "dn2"), now);
        let mut sim = Sim::new(Placement::RoundRobin);
        sim.router.restore(restored, sim.now);
        sim.register(1, "dn1").unwrap();
        sim.submit_tagged(1, "c1", &[(1, 0, "a"), (2, 0, "b"), (3, 0, "c")]);
        // "a" is answered from the sidecar, "c" placed, "b" waits for dn2.
        assert_eq!(sim.stores_owed(1), 1);
        sim.serve_all();
        assert!(!sim.done.contains_key(&1));
        sim.register(2, "dn2").unwrap();
        assert_eq!(sim.stores_owed(2), 1);
        sim.serve_all();
        assert_eq!(sim.stored_on(1), ["dn3", "dn2", "dn1"]);
    }
}

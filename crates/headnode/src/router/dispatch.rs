//! Placing messages, failing them over, and answering them.
//!
//! Each message is placed on its own (a batch may be spread over every
//! datanode) by the configured placement policy ([`crate::placement`])
//! among the *candidates*: active, linked datanodes that have not refused
//! this message with `ERR`. `STORE`s are pipelined: a link may owe
//! thousands, the router never waits for one before sending the next.
//!
//! # Failover
//!
//! Each pending message remembers the link it was last sent on. When that
//! link drops, or its datanode is marked inactive (a missed heartbeat, or a
//! `STORE` left unconfirmed for `store_timeout`), every message last sent
//! there is placed again on another candidate. If a datanode answers `ERR`,
//! the message is placed on a datanode that has not refused it; when every
//! active datanode has refused it, the client gets the last error. With no
//! candidate at all, a message is parked (see [`super::pending`]) until a
//! datanode becomes active, or `unavailable_timeout` has passed.

use std::{sync::Arc, time::Instant};

use protocol::{ErrorCode, ErrorReply, Tag};

use super::{dedupe::Node, pending::MsgId, shutting_down, Action, LinkId, Outcome, Router, Stored};
use crate::placement::Candidate;

impl<T> Router<T> {
    /// Sends message `id` to a candidate, or parks it until `deadline`.
    pub(super) fn dispatch(&mut self, id: MsgId, now: Instant, deadline: Instant) {
        self.dispatch_with(id, None, now, deadline);
    }

    /// [`Router::dispatch`], giving a new message its tag and the holder
    /// it may have (`tagged`) on the way: one look-up of the message.
    pub(super) fn dispatch_with(
        &mut self,
        id: MsgId,
        tagged: Option<(Tag, Option<Node>)>,
        now: Instant,
        deadline: Instant,
    ) {
        let Some(msg) = self.pending.get_mut(id) else {
            return;
        };
        if let Some((tag, holder)) = tagged {
            msg.tag = Some(tag);
            msg.holder = holder;
        }
        if self.stopping.is_some() {
            self.settle(id, Err(shutting_down()));
            return;
        }
        self.candidates.clear();
        let mut any_active = false;
        // A tagged message goes back to the datanode that may hold it (see
        // dedupe.rs), unless that one refused it: then it has none.
        let mut holder = None;
        if let Some(node) = &msg.holder {
            let index = node.index(&self.datanodes);
            let refused = index.is_some_and(|index| {
                let node = self.datanodes.get(index);
                node.link
                    .as_ref()
                    .is_some_and(|l| msg.refused.contains(&l.id))
            });
            if refused {
                msg.holder = None;
            } else if let Some(index) = index.filter(|&i| self.datanodes.get(i).serving().is_some())
            {
                // Registered by now: known by its place from here on.
                msg.holder = Some(Node::At(index));
                holder = Some(index);
            } else {
                self.pending.park(id, deadline);
                return;
            }
        }
        for (index, node) in self.datanodes.iter().enumerate() {
            let Some(link) = node.serving() else {
                continue;
            };
            any_active = true;
            if holder.is_some_and(|holder| holder != index) {
                continue;
            }
            if !msg.refused.contains(&link.id) {
                self.candidates.push(Candidate {
                    index,
                    load: link.stores,
                });
            }
        }
        let Some(index) = self.policy.choose(&self.candidates) else {
            if any_active {
                // Every active datanode refused it: pass the refusal on.
                let err = msg.last_error.clone().unwrap_or_else(|| {
                    ErrorReply::new(ErrorCode::Storage, "every datanode refused the message")
                });
                self.settle(id, Err(err));
            } else {
                if self.pending.none_parked() {
                    tracing::warn!(
                        timeout = ?self.config.unavailable_timeout,
                        "no active datanode: messages wait for one"
                    );
                }
                self.pending.park(id, deadline);
            }
            return;
        };
        let link = self
            .datanodes
            .serving_mut(index)
            .expect("candidates are serving");
        link.send_store(id, msg.tag.is_some(), msg.text.whole(), now);
        msg.on = Some(link.id);
        if let Some(tag) = &msg.tag {
            // Recorded unless it already held it (sent again to its holder).
            if holder != Some(index) {
                self.seen.record_sent(tag, &self.datanodes.get(index).name);
                msg.holder = Some(Node::At(index));
            }
        }
    }

    /// Parked message `id` waited its time: if it waited for the datanode
    /// that may hold it, it goes to another one now (counted), and `true`.
    pub(super) fn abandon_holder(&mut self, id: MsgId, now: Instant) -> bool {
        let Some(msg) = self.pending.get_mut(id) else {
            return false;
        };
        let Some(holder) = msg.holder.take() else {
            return false;
        };
        let holder = holder.name(&self.datanodes);
        self.abandoned += 1;
        tracing::warn!(
            %holder,
            waited = ?self.config.unavailable_timeout,
            "a datanode that may hold a tagged message stayed away; storing it elsewhere \
             (it may now be in two data.txt files)"
        );
        self.dispatch(id, now, now + self.config.unavailable_timeout);
        true
    }

    /// Places the parked messages again (a datanode became active).
    pub(super) fn dispatch_parked(&mut self, now: Instant) {
        for parked in self.pending.unpark_all() {
            // Parked again with its first deadline if still no candidate.
            self.dispatch(parked.msg, now, parked.deadline);
        }
    }

    /// Datanode `node` confirmed message `id` (its sentence was checked).
    pub(super) fn confirm(&mut self, id: MsgId, node: Arc<str>) {
        let Some(msg) = self.pending.get_mut(id) else {
            // Already answered: a second copy was stored (at-least-once).
            tracing::debug!(%node, "late confirmation of a message already answered");
            return;
        };
        let stored = Stored::of(node, std::mem::take(&mut msg.text), false);
        self.settle(id, Ok(stored));
    }

    /// `link` refused message `id` with `err`: try another datanode.
    pub(super) fn refused(&mut self, id: MsgId, link: LinkId, err: ErrorReply, now: Instant) {
        let Some(msg) = self.pending.get_mut(id) else {
            return;
        };
        msg.refused.push(link);
        msg.last_error = Some(err);
        if msg.on == Some(link) {
            msg.on = None;
            self.dispatch(id, now, now + self.config.unavailable_timeout);
        }
    }

    /// Records the outcome of message `id`, and of the copies of it that
    /// waited for it (see dedupe.rs); emits each batch when complete.
    pub(super) fn settle(&mut self, id: MsgId, outcome: Outcome) {
        let tagged =
            (self.pending.get_mut(id)).and_then(|msg| Some((msg.tag.take()?, msg.holder.take())));
        let Some((tag, holder)) = tagged else {
            return self.settle_one(id, outcome);
        };
        let copies = self.remember(&tag, holder, &outcome);
        if copies.is_empty() {
            // Most messages: no copy waits, nothing to clone.
            return self.settle_one(id, outcome);
        }
        let copy = super::dedupe::for_copy(&outcome);
        self.settle_one(id, outcome);
        for waiter in copies {
            self.settle_one(waiter, copy.clone());
        }
    }

    /// Records the outcome of message `id` alone.
    pub(super) fn settle_one(&mut self, id: MsgId, outcome: Outcome) {
        let Some((token, outcomes)) = self.pending.settle(id, outcome) else {
            return;
        };
        self.actions.push(Action::Done { token, outcomes });
        if self.stopping.is_some() && self.pending.batches() == 0 {
            self.close_all_links();
        }
    }

    /// Marks datanode `index` active and places parked messages.
    pub(super) fn activate(&mut self, index: usize, now: Instant) {
        let node = self.datanodes.get_mut(index);
        if !node.active {
            node.active = true;
            tracing::info!(name = %node.name, "datanode active");
        }
        self.dispatch_parked(now);
    }

    /// Marks datanode `index` inactive and fails over its messages.
    pub(super) fn deactivate(&mut self, index: usize, now: Instant) {
        let node = self.datanodes.get_mut(index);
        if !node.active {
            return;
        }
        node.active = false;
        tracing::warn!(name = %node.name, "datanode inactive");
        if let Some(link) = &node.link {
            let (link, ids) = (link.id, link.store_ids());
            let moved = self.fail_over(link, ids, now);
            self.datanodes.get_mut(index).failed_over += moved;
        }
    }

    /// Unlinks datanode `index` (its link is gone) and fails over.
    pub(super) fn detach(&mut self, index: usize, now: Instant) {
        if let Some(link) = self.datanodes.detach(index) {
            let moved = self.fail_over(link.id, link.store_ids(), now);
            self.datanodes.get_mut(index).failed_over += moved;
        }
    }

    /// Places again every message of `ids` last sent on `link`; how many
    /// moved.
    fn fail_over(&mut self, link: LinkId, ids: Vec<MsgId>, now: Instant) -> u64 {
        let deadline = now + self.config.unavailable_timeout;
        let mut moved = 0;
        for id in ids {
            let Some(msg) = self.pending.get_mut(id) else {
                continue;
            };
            if msg.on == Some(link) {
                msg.on = None;
                moved += 1;
                if msg.holder.is_some() {
                    // It may be written there: wait for that datanode.
                    self.pending.park(id, deadline);
                } else {
                    self.dispatch(id, now, deadline);
                }
            }
        }
        moved
    }

    /// Closes every link (shutdown).
    pub(super) fn close_all_links(&mut self) {
        for link in self.datanodes.detach_all() {
            self.actions.push(Action::Close { link });
        }
        if let Some(stopping) = &mut self.stopping {
            stopping.links_closed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::sim::*;

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
            .map(|o| o.as_ref().unwrap().message())
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
}

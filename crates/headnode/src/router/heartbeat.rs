//! Heartbeat rounds: which datanodes are still serving.
//!
//! Every `heartbeat_interval` a round starts: every linked datanode (active
//! or not) is sent a `PING`. The round ends when every pinged datanode has
//! answered, or `heartbeat_timeout` after it started, whichever comes
//! first. At its end a datanode that did not answer is marked inactive (its
//! messages fail over), and one report line per known datanode is emitted:
//! active, or inactive (unlinked or silent).
//!
//! A round never clears the active set: a datanode stays active while its
//! `PING` is in flight and changes state only on evidence (a missed
//! deadline, a dropped link, a `PONG`), so routing never sees an empty
//! cluster because a round is in progress.
//!
//! A `PONG` (even a late one) proves the datanode is serving its link
//! again: an inactive, linked datanode becomes active when one arrives. A
//! datanode whose link dropped becomes active again only by registering
//! again. Because a link's replies come in order, a `PONG` also proves that
//! every `STORE` sent before that `PING` has been answered: a datanode that
//! takes longer than the timeout to work through its queue is, for routing
//! purposes, as good as dead, and is treated so until it catches up.

use std::time::{Duration, Instant};

use super::{Action, Router};

/// When rounds run, and the one in progress.
#[derive(Debug)]
pub(super) struct Heartbeat {
    interval: Duration,
    timeout: Duration,
    round: Option<Round>,
    /// Rounds started so far; the number of the latest.
    rounds: u64,
    next_round: Instant,
}

#[derive(Debug)]
struct Round {
    number: u64,
    deadline: Instant,
}

impl Heartbeat {
    /// Rounds every `interval` from `now` on, each lasting `timeout` at most.
    pub fn new(interval: Duration, timeout: Duration, now: Instant) -> Self {
        Heartbeat {
            interval,
            timeout,
            round: None,
            rounds: 0,
            next_round: now + interval,
        }
    }

    /// When the next round starts or the current one times out.
    pub fn next_deadline(&self) -> Instant {
        match &self.round {
            Some(round) => self.next_round.min(round.deadline),
            None => self.next_round,
        }
    }

    /// No more rounds (shutdown): the one in progress is not reported.
    pub fn stop(&mut self) {
        self.round = None;
    }
}

impl<T> Router<T> {
    /// Ends the round at its deadline, starts the next one when due.
    pub(super) fn tick_heartbeat(&mut self, now: Instant) {
        if self
            .heartbeat
            .round
            .as_ref()
            .is_some_and(|round| now >= round.deadline)
        {
            self.end_round(now);
        }
        let heartbeat = &mut self.heartbeat;
        if now >= heartbeat.next_round {
            heartbeat.next_round += heartbeat.interval;
            if heartbeat.next_round <= now {
                // We were not called for a while: start afresh from now.
                heartbeat.next_round = now + heartbeat.interval;
            }
            self.start_round(now);
        }
    }

    /// Datanode `index` answered the `PING` of round `round`.
    pub(super) fn pong(&mut self, index: usize, round: u64, now: Instant) {
        if let Some(link) = self.datanodes.get_mut(index).link.as_mut() {
            if link.ping == Some(round) {
                link.ping = None;
            }
        }
        self.activate(index, now);
        self.maybe_end_round();
    }

    /// Ends the round early if every pinged datanode answered (or dropped:
    /// an unlinked datanode is reported inactive without waiting).
    pub(super) fn maybe_end_round(&mut self) {
        if let Some(round) = &self.heartbeat.round {
            let waiting = self.datanodes.iter().any(|node| {
                node.link
                    .as_ref()
                    .is_some_and(|link| link.ping == Some(round.number))
            });
            if !waiting {
                self.report_round();
            }
        }
    }

    fn start_round(&mut self, now: Instant) {
        if self.heartbeat.round.is_some() {
            // The timeout is not shorter than the interval: end the
            // previous round first, so that every round is reported.
            self.end_round(now);
        }
        self.heartbeat.rounds += 1;
        if self.datanodes.len() == 0 {
            return;
        }
        let number = self.heartbeat.rounds;
        for link in self.datanodes.links_mut() {
            link.send_ping(number);
        }
        self.heartbeat.round = Some(Round {
            number,
            deadline: now + self.heartbeat.timeout,
        });
        self.maybe_end_round();
    }

    /// Ends the round at its deadline: the silent become inactive.
    fn end_round(&mut self, now: Instant) {
        let Some(round) = &self.heartbeat.round else {
            return;
        };
        let number = round.number;
        for index in 0..self.datanodes.len() {
            let silent = self
                .datanodes
                .get_mut(index)
                .link
                .as_mut()
                .filter(|link| link.ping == Some(number))
                .map(|link| link.ping = None)
                .is_some();
            if silent {
                tracing::warn!(
                    name = %self.datanodes.get(index).name,
                    timeout = ?self.heartbeat.timeout,
                    "no PONG within the heartbeat timeout"
                );
                self.deactivate(index, now);
            }
        }
        self.report_round();
    }

    fn report_round(&mut self) {
        if self.heartbeat.round.take().is_none() {
            return;
        }
        let report = self
            .datanodes
            .iter()
            .map(|node| (node.name.clone(), node.serving().is_some()))
            .collect();
        self.actions.push(Action::Heartbeat { report });
    }
}

#[cfg(test)]
mod tests {
    use super::super::sim::*;

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
}

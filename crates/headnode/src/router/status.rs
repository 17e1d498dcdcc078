//! What the router tells the status page: a snapshot of every datanode,
//! taken on request (the driver asks when a page or a scrape does), so
//! that watching costs nothing while nobody watches.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use super::Router;

/// A datanode's last heartbeat answer.
#[derive(Debug, Clone, Copy)]
pub struct Heard {
    /// When it came.
    pub at: Instant,
    /// From the round's start to the answer; `None` for an answer that came
    /// after its round ended.
    pub round_trip: Option<Duration>,
}

/// One datanode as the router sees it.
#[derive(Debug, Clone)]
pub struct DatanodeStatus {
    /// Its name.
    pub name: Arc<str>,
    /// Whether it may receive messages.
    pub active: bool,
    /// Whether it has a registered link.
    pub linked: bool,
    /// `STORE`s its link owes a reply to: its messages in flight.
    pub in_flight: usize,
    /// Its last heartbeat answer.
    pub heard: Option<Heard>,
    /// Messages moved from it to another datanode.
    pub failed_over: u64,
}

/// The router's part of the status page.
#[derive(Debug, Clone)]
pub struct RouterStatus {
    /// Every known datanode, in registration order.
    pub datanodes: Vec<DatanodeStatus>,
    /// Heartbeat rounds started so far.
    pub rounds: u64,
    /// Batches not fully answered yet.
    pub pending_batches: usize,
}

impl<T> Router<T> {
    /// The snapshot of every datanode, now.
    pub fn snapshot(&self) -> RouterStatus {
        let datanodes = self
            .datanodes
            .iter()
            .map(|node| DatanodeStatus {
                name: Arc::clone(&node.name),
                active: node.active,
                linked: node.link.is_some(),
                in_flight: node.link.as_ref().map_or(0, |link| link.stores),
                heard: node.heard,
                failed_over: node.failed_over,
            })
            .collect();
        RouterStatus {
            datanodes,
            rounds: self.heartbeat.rounds(),
            pending_batches: self.pending.batches(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::sim::*;

    #[test]
    fn the_snapshot_shows_answers_round_trips_and_failovers() {
        let mut sim = Sim::three(Placement::RoundRobin);
        sim.advance(1000 * MS);
        sim.advance(20 * MS);
        sim.serve(1, None);
        sim.serve(3, None);
        sim.submit(1, &["a", "b", "c"]);
        let on_dn2 = sim.stores_owed(2) as u64;
        assert!(on_dn2 > 0);
        // dn2 misses the round: inactive, its messages move.
        sim.advance(300 * MS);
        let status = sim.router.snapshot();
        // The first round came with the registrations, this is the second.
        assert_eq!(status.rounds, 2);
        let [dn1, dn2, dn3] = &status.datanodes[..] else {
            panic!("three datanodes: {status:?}");
        };
        assert_eq!(&*dn1.name, "dn1");
        assert!(dn1.active && dn3.active && !dn2.active);
        assert_eq!(
            dn1.heard.and_then(|heard| heard.round_trip),
            Some(20 * MS),
            "answered 20 ms into the round"
        );
        assert!(
            dn2.heard.unwrap().at < dn1.heard.unwrap().at,
            "dn2 answered only the first round"
        );
        assert_eq!(dn2.failed_over, on_dn2, "its messages went elsewhere");
        assert_eq!(dn1.in_flight + dn3.in_flight, 3);
    }
}

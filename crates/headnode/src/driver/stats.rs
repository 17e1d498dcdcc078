//! What the driver counts for the status page: the outcomes of answered
//! batches (stored per datanode, errors by code, message bytes), stored
//! messages per second over the last minute, the last heartbeat rounds, and
//! the heartbeat's round trips.
//!
//! Counting happens on the driver's own task, with no lock and no atomic:
//! a batch's outcomes are walked once, a datanode found by pointer (its
//! name is the router's own `Arc`). The snapshot is built only when the
//! status page or a scrape asks for one.

use std::{collections::VecDeque, sync::Arc, time::Instant};

use status::PerSecond;

use protocol::ErrorCode;

use crate::router::{Outcome, RouterStatus};

/// Heartbeat rounds the page lists.
pub const ROUNDS_KEPT: usize = 10;
/// Upper bounds of the round-trip histogram's buckets, in seconds.
pub const ROUND_TRIP_BUCKETS: [f64; 8] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0];

/// A heartbeat round that ended: when (wall clock) and each datanode's
/// state.
pub type EndedRound = (String, Vec<(Arc<str>, bool)>);

/// The counts, since the headnode started.
#[derive(Debug)]
pub struct Stats {
    /// Whether anything is counted: only with the status page on, so that
    /// without it routing pays nothing.
    counting: bool,
    started: Instant,
    /// Messages stored, per datanode name.
    pub stored: Vec<(Arc<str>, u64)>,
    /// Error answers, per code.
    pub errors: Vec<(ErrorCode, u64)>,
    /// Bytes of the messages stored.
    pub bytes: u64,
    /// Messages stored per second.
    per_second: PerSecond,
    /// The last rounds: when each ended (wall clock) and its report.
    pub rounds: VecDeque<EndedRound>,
    /// Round trips observed, per bucket of [`ROUND_TRIP_BUCKETS`] (and one
    /// more for the rest), with their sum in seconds.
    pub round_trips: ([u64; ROUND_TRIP_BUCKETS.len() + 1], f64),
    /// The last heartbeat answer counted, per datanode.
    counted_answers: Vec<(Arc<str>, Option<Instant>)>,
}

impl Stats {
    /// Nothing counted yet, at `now`; nothing ever unless `counting`.
    pub fn new(now: Instant, counting: bool) -> Self {
        Stats {
            counting,
            started: now,
            stored: Vec::new(),
            errors: Vec::new(),
            bytes: 0,
            per_second: PerSecond::new(now),
            rounds: VecDeque::new(),
            round_trips: ([0; ROUND_TRIP_BUCKETS.len() + 1], 0.0),
            counted_answers: Vec::new(),
        }
    }

    /// Counts the outcomes of one answered batch, at `now`.
    pub fn answered(&mut self, outcomes: &[Outcome], now: Instant) {
        if !self.counting {
            return;
        }
        let mut stored = 0;
        for outcome in outcomes {
            match outcome {
                // A copy of a message stored before: not stored again.
                Ok(done) if done.again => {}
                Ok(done) => {
                    stored += 1;
                    self.bytes += done.message().len() as u64;
                    *entry(&mut self.stored, &done.node) += 1;
                }
                Err(err) => match self.errors.iter_mut().find(|(code, _)| *code == err.code) {
                    Some((_, count)) => *count += 1,
                    None => self.errors.push((err.code, 1)),
                },
            }
        }
        self.per_second.add(stored, now);
    }

    /// Keeps a round's report, ended at wall-clock time `stamp`, and counts
    /// the round trips of the answers the router saw since the last round.
    pub fn round(&mut self, stamp: String, report: Vec<(Arc<str>, bool)>, router: &RouterStatus) {
        if !self.counting {
            return;
        }
        if self.rounds.len() == ROUNDS_KEPT {
            self.rounds.pop_front();
        }
        self.rounds.push_back((stamp, report));
        for node in &router.datanodes {
            let Some(heard) = node.heard else { continue };
            let Some(trip) = heard.round_trip else {
                continue;
            };
            let last = entry_with(&mut self.counted_answers, &node.name, || None);
            if *last == Some(heard.at) {
                continue; // counted already
            }
            *last = Some(heard.at);
            let seconds = trip.as_secs_f64();
            let bucket = ROUND_TRIP_BUCKETS
                .iter()
                .position(|bound| seconds <= *bound)
                .unwrap_or(ROUND_TRIP_BUCKETS.len());
            self.round_trips.0[bucket] += 1;
            self.round_trips.1 += seconds;
        }
    }

    /// Time since the counting started.
    pub fn uptime(&self, now: Instant) -> std::time::Duration {
        now.saturating_duration_since(self.started)
    }

    /// Messages stored in each of the last minute's whole seconds, oldest
    /// first.
    pub fn per_second(&self, now: Instant) -> Vec<u64> {
        self.per_second.last_minute(now)
    }
}

/// The count of datanode `name`, by pointer first (the router's `Arc`).
fn entry<'a>(counts: &'a mut Vec<(Arc<str>, u64)>, name: &Arc<str>) -> &'a mut u64 {
    entry_with(counts, name, || 0)
}

fn entry_with<'a, V>(
    entries: &'a mut Vec<(Arc<str>, V)>,
    name: &Arc<str>,
    new: impl FnOnce() -> V,
) -> &'a mut V {
    let index = entries
        .iter()
        .position(|(known, _)| Arc::ptr_eq(known, name) || known == name)
        .unwrap_or_else(|| {
            entries.push((Arc::clone(name), new()));
            entries.len() - 1
        });
    &mut entries[index].1
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use protocol::ErrorReply;

    use super::*;
    use crate::router::Stored;

    fn stored(node: &Arc<str>, message: &str) -> Outcome {
        Ok(Stored::new(Arc::clone(node), message.into(), false))
    }

    #[test]
    fn counts_per_datanode_per_code_and_per_second() {
        let start = Instant::now();
        let mut stats = Stats::new(start, true);
        let dn1: Arc<str> = "dn1".into();
        let dn2: Arc<str> = "dn2".into();
        let refused = Err(ErrorReply::new(ErrorCode::Unavailable, "none"));
        stats.answered(
            &[stored(&dn1, "ab"), stored(&dn2, "c"), refused.clone()],
            start,
        );
        stats.answered(&[stored(&dn1, "d")], start + Duration::from_millis(1500));
        assert_eq!(stats.stored, [(dn1.clone(), 2), (dn2, 1)]);
        assert_eq!(stats.errors, [(ErrorCode::Unavailable, 1)]);
        assert_eq!(stats.bytes, 4);
        let seconds = stats.per_second(start + Duration::from_millis(2100));
        assert_eq!(seconds[seconds.len() - 2..], [2, 1]);
    }
}

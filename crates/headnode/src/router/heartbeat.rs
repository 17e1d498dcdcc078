//! Heartbeat rounds: which datanodes are still serving.
//!
//! Every `heartbeat_interval` a round starts, and the first one as soon as
//! the first datanode has registered (so that even a short run leaves
//! heartbeat lines). The round asks every linked datanode (active or not)
//! whether it is serving, in one of two [`HeartbeatMode`]s:
//!
//! - `multicast`, as the course asked: one probe datagram to the heartbeat
//!   group ([`Action::Multicast`], sent by the driver), carrying the round's
//!   number and a fresh random nonce; each datanode answers with an alive
//!   datagram ([`Router::alive`]). An answer counts only if it echoes the
//!   current round and nonce and comes from a registered, linked name;
//!   anything else is ignored ([`Ignored`]) and changes nothing.
//! - `tcp`: a `PING` on every link, answered by `PONG` on the same link,
//!   for networks that carry no multicast (Docker overlay networks, most
//!   clouds). A `PONG` waits behind the `STORE`s sent before its `PING`, so
//!   it also proves the datanode keeps up with its work; a late `PONG`
//!   (after its round ended) still makes an inactive datanode active.
//!
//! A datagram can be lost, and a datanode that has just registered joins
//! the group a moment after its `OK` (the first round starts at that
//! registration), so in multicast mode the probe is sent again, the same
//! round and nonce, [`PROBE_SENDS`] times evenly over the timeout while
//! anyone asked has not answered. An answer to any copy counts once.
//!
//! The round ends when every asked datanode has answered, or
//! `heartbeat_timeout` after it started, whichever comes first. At its end
//! a datanode that did not answer is marked inactive (its messages fail
//! over), and one report line per known datanode is emitted: active, or
//! inactive (unlinked or silent).
//!
//! Liveness combines the answer with the link: a datanode is active only
//! while its TCP link is up. A dropped link makes it inactive at once, and
//! it becomes active again only by registering again; a datanode that
//! answers multicast but has no link stays inactive.
//!
//! A round never clears the active set: a datanode stays active while its
//! round is in flight and changes state only on evidence (a missed
//! deadline, a dropped link, an answer), so routing never sees an empty
//! cluster because a round is in progress.

use std::time::{Duration, Instant};

use clap::ValueEnum;
use protocol::heartbeat::{Alive, Probe};
use rand::{rngs::StdRng, Rng, SeedableRng};

use super::{Action, Router};

/// How many times a round's probe is sent, evenly over the timeout, while
/// some datanode has not answered it (multicast mode).
pub const PROBE_SENDS: u32 = 4;

/// How a heartbeat round asks the datanodes: the values of `--heartbeat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum HeartbeatMode {
    /// One UDP datagram to a multicast group per round, answered by each
    /// datanode with a unicast datagram, as the course asked.
    #[default]
    Multicast,
    /// A `PING` on each datanode's TCP link, for networks without
    /// multicast (Docker overlay networks, most clouds).
    Tcp,
}

impl std::fmt::Display for HeartbeatMode {
    /// The name `--heartbeat` takes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_possible_value() {
            Some(value) => f.write_str(value.get_name()),
            None => write!(f, "{self:?}"),
        }
    }
}

/// Why an alive datagram changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// No round is in progress, or not this one, or not with this nonce.
    Stale,
    /// No datanode ever registered under the name.
    UnknownName,
    /// The datanode has no link: answering multicast does not make it
    /// active.
    NotLinked,
    /// The datanode already answered this round, or was not asked.
    NotAwaited,
}

/// When rounds run, and the one in progress.
#[derive(Debug)]
pub(super) struct Heartbeat {
    mode: HeartbeatMode,
    interval: Duration,
    timeout: Duration,
    round: Option<Round>,
    /// Rounds started so far; the number of the latest.
    rounds: u64,
    next_round: Instant,
    /// Whether a round has asked any datanode yet.
    asked_any: bool,
    /// Whether a round nobody answers should say, once, that the network
    /// may carry no multicast: until some datanode answers a probe.
    network_hint_due: bool,
    /// Draws the nonces: a seeded cryptographic generator, so that nonces
    /// cannot be guessed when the seed is random.
    rng: StdRng,
}

#[derive(Debug)]
struct Round {
    number: u64,
    nonce: u64,
    deadline: Instant,
    /// When the probe goes out again (multicast mode), if it does.
    resend: Option<Instant>,
}

impl Heartbeat {
    /// Rounds every `interval` from `now` on, each lasting `timeout` at most.
    pub fn new(
        mode: HeartbeatMode,
        interval: Duration,
        timeout: Duration,
        seed: u64,
        now: Instant,
    ) -> Self {
        Heartbeat {
            mode,
            interval,
            timeout,
            round: None,
            rounds: 0,
            next_round: now + interval,
            asked_any: false,
            network_hint_due: true,
            // Not the placement's stream: seeded apart.
            rng: StdRng::seed_from_u64(seed ^ 0x6865_6172_7462_6561),
        }
    }

    /// When the next round starts or the current one times out.
    pub fn next_deadline(&self) -> Instant {
        match &self.round {
            Some(round) => round
                .resend
                .into_iter()
                .fold(self.next_round.min(round.deadline), Instant::min),
            None => self.next_round,
        }
    }

    /// A datanode registered at `now`: the first one brings the first round
    /// forward to now.
    pub fn registered(&mut self, now: Instant) {
        if !self.asked_any {
            self.next_round = self.next_round.min(now);
        }
    }

    /// When round `number` started, if it is the one in progress.
    pub fn round_start(&self, number: u64) -> Option<Instant> {
        self.round
            .as_ref()
            .filter(|round| round.number == number)
            .map(|round| round.deadline - self.timeout)
    }

    /// Rounds started so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// No more rounds (shutdown): the one in progress is not reported.
    pub fn stop(&mut self) {
        self.round = None;
    }
}

impl<T> Router<T> {
    /// A datanode's alive datagram arrived (multicast mode).
    pub fn alive(&mut self, alive: &Alive, now: Instant) -> Result<(), Ignored> {
        let current = self.heartbeat.round.as_ref();
        if self.heartbeat.mode != HeartbeatMode::Multicast {
            // No probe was sent: every answer is to a round never asked.
            return Err(Ignored::Stale);
        }
        let round = current
            .filter(|round| round.number == alive.round && round.nonce == alive.nonce)
            .ok_or(Ignored::Stale)?
            .number;
        let index = self
            .datanodes
            .find(&alive.name)
            .ok_or(Ignored::UnknownName)?;
        let link = self
            .datanodes
            .get_mut(index)
            .link
            .as_mut()
            .ok_or(Ignored::NotLinked)?;
        if link.awaiting != Some(round) {
            return Err(Ignored::NotAwaited);
        }
        self.heartbeat.network_hint_due = false;
        self.answered(index, round, now);
        Ok(())
    }

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
        self.resend_probe(now);
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

    /// Datanode `index` answered round `round` (a `PONG`, or an alive
    /// datagram).
    pub(super) fn answered(&mut self, index: usize, round: u64, now: Instant) {
        let asked_at = self.heartbeat.round_start(round);
        self.datanodes.get_mut(index).heard = Some(super::status::Heard {
            at: now,
            round_trip: asked_at.map(|start| now.saturating_duration_since(start)),
        });
        if let Some(link) = self.datanodes.get_mut(index).link.as_mut() {
            if link.awaiting == Some(round) {
                link.awaiting = None;
            }
        }
        self.activate(index, now);
        self.maybe_end_round();
    }

    /// Ends the round early if every asked datanode answered (or dropped:
    /// an unlinked datanode is reported inactive without waiting).
    pub(super) fn maybe_end_round(&mut self) {
        if let Some(round) = &self.heartbeat.round {
            let waiting = self.datanodes.iter().any(|node| {
                node.link
                    .as_ref()
                    .is_some_and(|link| link.awaiting == Some(round.number))
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
        let mode = self.heartbeat.mode;
        for link in self.datanodes.links_mut() {
            link.ask(number, mode == HeartbeatMode::Tcp);
            self.heartbeat.asked_any = true;
        }
        let nonce = self.heartbeat.rng.gen();
        if mode == HeartbeatMode::Multicast {
            let probe = Probe {
                round: number,
                nonce,
            };
            self.actions.push(Action::Multicast { probe });
        }
        let timeout = self.heartbeat.timeout;
        self.heartbeat.round = Some(Round {
            number,
            nonce,
            deadline: now + timeout,
            resend: (mode == HeartbeatMode::Multicast).then(|| now + timeout / PROBE_SENDS),
        });
        self.maybe_end_round();
    }

    /// Sends the round's probe again when due, unless everyone answered.
    fn resend_probe(&mut self, now: Instant) {
        let heartbeat = &mut self.heartbeat;
        let Some(round) = heartbeat.round.as_mut() else {
            return;
        };
        let Some(due) = round.resend.filter(|due| now >= *due) else {
            return;
        };
        let step = heartbeat.timeout / PROBE_SENDS;
        // The last copy goes out a step before the deadline.
        round.resend = Some(due + step).filter(|next| *next < round.deadline);
        self.actions.push(Action::Multicast {
            probe: Probe {
                round: round.number,
                nonce: round.nonce,
            },
        });
    }

    /// Ends the round at its deadline: the silent become inactive.
    fn end_round(&mut self, now: Instant) {
        let Some(round) = &self.heartbeat.round else {
            return;
        };
        let number = round.number;
        let (mut asked, mut silent_count) = (0, 0);
        for index in 0..self.datanodes.len() {
            let silent = self
                .datanodes
                .get_mut(index)
                .link
                .as_mut()
                .filter(|link| link.awaiting == Some(number))
                .map(|link| link.awaiting = None)
                .is_some();
            asked += usize::from(self.datanodes.get(index).link.is_some());
            silent_count += usize::from(silent);
            if silent {
                tracing::warn!(
                    name = %self.datanodes.get(index).name,
                    mode = %self.heartbeat.mode,
                    timeout = ?self.heartbeat.timeout,
                    "no heartbeat answer within the timeout"
                );
                self.deactivate(index, now);
            }
        }
        let heartbeat = &mut self.heartbeat;
        if heartbeat.mode == HeartbeatMode::Multicast
            && heartbeat.network_hint_due
            && asked > 0
            && silent_count == asked
        {
            tracing::error!(
                round = number,
                "no datanode has ever answered the multicast heartbeat: this network may carry \
                 no multicast (Docker overlay and internal networks, most clouds); run the \
                 headnode with --heartbeat tcp"
            );
            heartbeat.network_hint_due = false;
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
mod tests;

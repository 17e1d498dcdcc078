//! Placement policies: which active datanode gets the next message.
//!
//! The router asks its [`Policy`] once per message (and again when a
//! message fails over), giving it the *candidates*: the datanodes that are
//! active, linked, and have not refused that message, in the order they
//! first registered. A policy owns whatever state it needs (a cursor, a
//! seeded random generator) and nothing else, so each is tested
//! deterministically on its own.
//!
//! # Adding a policy
//!
//! One file in this folder implementing [`Policy`], and one variant of
//! [`Placement`] (its doc comment is the `--placement` flag's help, its
//! name the flag's value) with its line in [`Placement::policy`].

mod least_loaded;
mod random;
mod round_robin;

use clap::ValueEnum;

/// A datanode a policy may choose: its index in the router's table and
/// how many messages await its confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Index of the datanode in the router's table (registration order).
    pub index: usize,
    /// Messages sent to it and not yet confirmed.
    pub load: usize,
}

/// A placement policy, with its state.
pub trait Policy: std::fmt::Debug + Send {
    /// Picks one of `candidates` (sorted by index) and returns its table
    /// index; `None` only if there is no candidate.
    fn choose(&mut self, candidates: &[Candidate]) -> Option<usize>;
}

/// How the headnode spreads messages over its active datanodes: the values
/// of `--placement`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Placement {
    /// Uniformly at random among the active datanodes, as the course asked.
    #[default]
    Random,
    /// In turn, in the order the datanodes first registered, skipping
    /// inactive ones.
    RoundRobin,
    /// The datanode with the fewest messages awaiting confirmation; ties are
    /// broken in turn, so an idle cluster is still used evenly.
    LeastLoaded,
}

impl Placement {
    /// A fresh policy of this kind; `seed` seeds the random one.
    pub fn policy(self, seed: u64) -> Box<dyn Policy> {
        match self {
            Placement::Random => Box::new(random::Random::new(seed)),
            Placement::RoundRobin => Box::new(round_robin::RoundRobin::default()),
            Placement::LeastLoaded => Box::new(least_loaded::LeastLoaded::default()),
        }
    }
}

impl std::fmt::Display for Placement {
    /// The name `--placement` takes, from clap's value list.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_possible_value() {
            Some(value) => f.write_str(value.get_name()),
            None => write!(f, "{self:?}"),
        }
    }
}

/// Turn-taking shared by the policies that go in turn: the index after the
/// last datanode chosen.
#[derive(Debug, Default, Clone, Copy)]
struct Turn {
    next: usize,
}

impl Turn {
    /// The first candidate at or after the turn, wrapping around, which
    /// then has had its turn.
    fn take(&mut self, candidates: impl IntoIterator<Item = Candidate> + Clone) -> Option<usize> {
        let first = candidates.clone().into_iter().next()?;
        let chosen = candidates
            .into_iter()
            .find(|c| c.index >= self.next)
            .unwrap_or(first)
            .index;
        self.next = chosen + 1;
        Some(chosen)
    }
}

#[cfg(test)]
fn candidates(loads: &[usize]) -> Vec<Candidate> {
    loads
        .iter()
        .enumerate()
        .map(|(index, &load)| Candidate { index, load })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_as_on_the_command_line() {
        for placement in Placement::value_variants() {
            let parsed = Placement::from_str(&placement.to_string(), false).unwrap();
            assert_eq!(parsed, *placement);
        }
        assert_eq!(Placement::RoundRobin.to_string(), "round-robin");
        assert_eq!(Placement::LeastLoaded.to_string(), "least-loaded");
    }

    #[test]
    fn every_policy_chooses_nothing_from_nothing() {
        for placement in Placement::value_variants() {
            assert_eq!(placement.policy(1).choose(&[]), None, "{placement}");
        }
    }
}

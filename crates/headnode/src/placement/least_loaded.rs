//! `least-loaded`: the candidate with the fewest messages awaiting its
//! confirmation (`STORE`s its link owes), ties broken in turn so that an
//! idle cluster is still used evenly.

use super::{Candidate, Policy, Turn};

/// The least loaded candidate, in turn among equals.
#[derive(Debug, Default)]
pub struct LeastLoaded {
    turn: Turn,
}

impl Policy for LeastLoaded {
    fn choose(&mut self, candidates: &[Candidate]) -> Option<usize> {
        let least = candidates.iter().map(|c| c.load).min()?;
        let tied = candidates.iter().copied().filter(|c| c.load == least);
        self.turn.take(tied)
    }
}

#[cfg(test)]
mod tests {
    use super::{super::candidates, *};

    #[test]
    fn prefers_the_idlest_and_rotates_ties() {
        let mut policy = LeastLoaded::default();
        let mut pick = |loads: &[usize]| policy.choose(&candidates(loads)).unwrap();
        assert_eq!(pick(&[5, 1, 3]), 1);
        assert_eq!(pick(&[5, 4, 3]), 2);
        // All idle: in turn, not always the first.
        let picks: Vec<usize> = (0..6).map(|_| pick(&[0, 0, 0])).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }
}

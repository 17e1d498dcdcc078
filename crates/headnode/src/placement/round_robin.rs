//! `round-robin`: in turn, in registration order, skipping datanodes that
//! are not candidates.

use super::{Candidate, Policy, Turn};

/// In turn over the candidates.
#[derive(Debug, Default)]
pub struct RoundRobin {
    turn: Turn,
}

impl Policy for RoundRobin {
    fn choose(&mut self, candidates: &[Candidate]) -> Option<usize> {
        self.turn.take(candidates.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::{super::candidates, *};

    #[test]
    fn cycles_and_skips_missing_candidates() {
        let mut policy = RoundRobin::default();
        let three = candidates(&[0, 0, 0]);
        let picks: Vec<usize> = (0..7).map(|_| policy.choose(&three).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
        // Node 1 becomes inactive: 2, 0, 2, 0...
        let without_1 = [three[0], three[2]];
        let picks: Vec<usize> = (0..4).map(|_| policy.choose(&without_1).unwrap()).collect();
        assert_eq!(picks, [2, 0, 2, 0]);
    }
}

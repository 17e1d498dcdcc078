//! `random`: uniformly at random among the candidates, as the course asked.

use rand::{rngs::StdRng, Rng, SeedableRng};

use super::{Candidate, Policy};

/// Uniform choice from a seeded generator (the headnode seeds it at
/// random; tests with a constant).
#[derive(Debug)]
pub struct Random {
    rng: StdRng,
}

impl Random {
    /// A policy drawing from a generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Random {
            rng: StdRng::seed_from_u64(seed),
        }
    }
}

impl Policy for Random {
    fn choose(&mut self, candidates: &[Candidate]) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[self.rng.gen_range(0..candidates.len())].index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_candidates_are_chosen_and_each_often() {
        let mut policy = Random::new(7);
        let some = [
            Candidate { index: 1, load: 0 },
            Candidate { index: 4, load: 9 },
        ];
        let picks: Vec<usize> = (0..100).map(|_| policy.choose(&some).unwrap()).collect();
        assert!(picks.iter().all(|&pick| pick == 1 || pick == 4));
        let ones = picks.iter().filter(|&&pick| pick == 1).count();
        assert!((30..=70).contains(&ones), "{ones} of 100");
    }
}

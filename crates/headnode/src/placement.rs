//! Placement policies: which active datanode gets the next message.
//!
//! The router asks [`Placement::choose`] once per message (and again when a
//! message fails over), giving it the candidates: the datanodes that are
//! active, linked, and have not refused that message. Policies are pure
//! functions of the candidates, a cursor the router keeps, and a seeded
//! random generator, so they are tested deterministically.

use clap::ValueEnum;
use rand::{rngs::StdRng, Rng};

/// How the headnode spreads messages over its active datanodes.
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

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Placement::Random => "random",
            Placement::RoundRobin => "round-robin",
            Placement::LeastLoaded => "least-loaded",
        })
    }
}

/// A datanode the policy may choose: its index in the router's table and
/// how many messages await its confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Index of the datanode in the router's table (registration order).
    pub index: usize,
    /// Messages sent to it and not yet confirmed.
    pub load: usize,
}

impl Placement {
    /// Picks one of `candidates` (sorted by index, non-empty) and returns its
    /// table index. `cursor` is the index after the last datanode chosen
    /// in turn; `nodes` is the size of the table.
    pub fn choose(
        self,
        candidates: &[Candidate],
        cursor: &mut usize,
        nodes: usize,
        rng: &mut StdRng,
    ) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        let chosen = match self {
            Placement::Random => candidates[rng.gen_range(0..candidates.len())].index,
            Placement::RoundRobin => in_turn(candidates, *cursor),
            Placement::LeastLoaded => {
                let least = candidates.iter().map(|c| c.load).min().expect("non-empty");
                let tied: Vec<Candidate> = candidates
                    .iter()
                    .copied()
                    .filter(|c| c.load == least)
                    .collect();
                in_turn(&tied, *cursor)
            }
        };
        *cursor = (chosen + 1) % nodes.max(1);
        Some(chosen)
    }
}

/// The first candidate at or after `cursor`, wrapping around.
fn in_turn(candidates: &[Candidate], cursor: usize) -> usize {
    candidates
        .iter()
        .find(|c| c.index >= cursor)
        .unwrap_or(&candidates[0])
        .index
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn all(loads: &[usize]) -> Vec<Candidate> {
        loads
            .iter()
            .enumerate()
            .map(|(index, &load)| Candidate { index, load })
            .collect()
    }

    #[test]
    fn round_robin_cycles_and_skips_missing_candidates() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut cursor = 0;
        let three = all(&[0, 0, 0]);
        let picks: Vec<usize> = (0..7)
            .map(|_| {
                Placement::RoundRobin
                    .choose(&three, &mut cursor, 3, &mut rng)
                    .unwrap()
            })
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
        // Node 1 becomes inactive: 2, 0, 2, 0...
        let without_1 = [three[0], three[2]];
        let picks: Vec<usize> = (0..4)
            .map(|_| {
                Placement::RoundRobin
                    .choose(&without_1, &mut cursor, 3, &mut rng)
                    .unwrap()
            })
            .collect();
        assert_eq!(picks, [2, 0, 2, 0]);
    }

    #[test]
    fn least_loaded_prefers_the_idlest_and_rotates_ties() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut cursor = 0;
        let pick = |loads: &[usize], cursor: &mut usize, rng: &mut StdRng| {
            Placement::LeastLoaded
                .choose(&all(loads), cursor, loads.len(), rng)
                .unwrap()
        };
        assert_eq!(pick(&[5, 1, 3], &mut cursor, &mut rng), 1);
        assert_eq!(pick(&[5, 4, 3], &mut cursor, &mut rng), 2);
        // All idle: in turn, not always the first.
        let picks: Vec<usize> = (0..6)
            .map(|_| pick(&[0, 0, 0], &mut cursor, &mut rng))
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn random_only_picks_candidates() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut cursor = 0;
        let some = [
            Candidate { index: 1, load: 0 },
            Candidate { index: 4, load: 9 },
        ];
        for _ in 0..100 {
            let pick = Placement::Random
                .choose(&some, &mut cursor, 5, &mut rng)
                .unwrap();
            assert!(pick == 1 || pick == 4);
        }
        assert_eq!(
            Placement::Random.choose(&[], &mut cursor, 5, &mut rng),
            None
        );
    }

    #[test]
    fn names_parse_as_on_the_command_line() {
        for placement in [
            Placement::Random,
            Placement::RoundRobin,
            Placement::LeastLoaded,
        ] {
            let parsed = Placement::from_str(&placement.to_string(), false).unwrap();
            assert_eq!(parsed, placement);
        }
    }
}

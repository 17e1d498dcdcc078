//! Hash maps keyed by the headnode's own numbers (link, batch and session
//! ids).
//!
//! The router looks a batch up for every message it places and every
//! reply it matches; with the standard SipHash that showed as about 3 % of
//! the headnode's CPU under load. These keys are counters the headnode
//! hands out itself, never chosen by a peer, so a hash that resists
//! flooding attacks buys nothing here: one multiplication by an odd
//! constant (as FxHash does) spreads consecutive numbers over the table's
//! buckets (the low bits of `n * K` are a bijection of the low bits of
//! `n`) and over its tag bits (the high bits).

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
};

/// A map keyed by one of the headnode's counters.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// The hasher of [`IdMap`]: a multiply-rotate mix, for integer keys.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

/// The odd constant of FxHash (64-bit).
const K: u64 = 0x517c_c1b7_2722_0a95;

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by integer keys; correct for any other, if slower.
        for &byte in bytes {
            self.add(u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn consecutive_keys_land_in_distinct_buckets_and_differ_in_the_top_bits() {
        let build = BuildHasherDefault::<IdHasher>::default();
        let hashes: Vec<u64> = (0u64..1024).map(|n| build.hash_one(n)).collect();
        let buckets: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 1023).collect();
        assert_eq!(buckets.len(), 1024, "a bijection on the low bits");
        let tags: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert!(tags.len() > 100, "the 7 tag bits vary: {}", tags.len());
    }

    #[test]
    fn works_as_a_map() {
        let mut map: IdMap<u64, &str> = IdMap::default();
        for n in 0..10_000u64 {
            map.insert(n, "x");
        }
        assert_eq!(map.len(), 10_000);
        assert!((0..10_000u64).all(|n| map.contains_key(&n)));
        assert!(!map.contains_key(&10_000));
    }
}

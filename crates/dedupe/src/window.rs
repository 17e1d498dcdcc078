//! One client's window: its floor and what is kept of the messages above
//! it.
//!
//! A well-behaved client numbers its messages one after the other and
//! acknowledges them in order, so its entries are a short run just above
//! its floor: a message adds one at the back, an `acked` takes them from
//! the front. That run is a ring (`dense`, slot `i` holding message
//! `floor + 1 + i`), where either is a few instructions; a tree insert and
//! pop per message cost about 55 ns at the server (docs/PERFORMANCE.md,
//! "Tagged messages beside plain"). A message numbered more than
//! [`DENSE_SPAN`] above the floor goes to a tree (`sparse`) instead, so a
//! client that jumps far ahead (the protocol allows 65 536) costs one tree
//! entry per message it sent, not a ring that long; it moves to the ring
//! when the floor comes within the span.

use std::{
    collections::{BTreeMap, VecDeque},
    time::Instant,
};

/// How far above the floor the ring reaches: a window of this many
/// messages in flight costs no tree at all.
pub const DENSE_SPAN: u64 = 64;

/// One client's window: its floor and the messages above it.
#[derive(Debug)]
pub struct Window<V> {
    floor: u64,
    /// Messages `floor + 1 ..= floor + dense.len()`, `None` where nothing
    /// is kept; never longer than [`DENSE_SPAN`].
    dense: VecDeque<Option<V>>,
    /// Messages above `floor + DENSE_SPAN`.
    sparse: BTreeMap<u64, V>,
    pub(crate) last_seen: Instant,
}

impl<V> Window<V> {
    pub(crate) fn new(now: Instant) -> Self {
        Window {
            floor: 0,
            dense: VecDeque::new(),
            sparse: BTreeMap::new(),
            last_seen: now,
        }
    }

    /// The highest `acked` seen.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// The entries, by sequence number.
    pub fn entries(&self) -> impl Iterator<Item = (u64, &V)> {
        let dense = self.dense.iter().zip(self.floor + 1..);
        let dense = dense.filter_map(|(value, seq)| Some((seq, value.as_ref()?)));
        dense.chain(self.sparse.iter().map(|(&seq, value)| (seq, value)))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sparse.is_empty() && self.dense.iter().all(Option::is_none)
    }

    /// Raises the floor to `acked`, dropping the entries at or below it;
    /// returns how many were dropped.
    #[inline]
    pub(crate) fn ack(&mut self, acked: u64) -> usize {
        // Most messages acknowledge nothing new (a datanode sees a third
        // of a client's): the call costs a comparison.
        if acked <= self.floor {
            return 0;
        }
        self.raise_floor(acked)
    }

    fn raise_floor(&mut self, acked: u64) -> usize {
        let passed = acked - self.floor;
        let mut dropped = 0;
        if passed >= self.dense.len() as u64 {
            dropped += self.dense.iter().filter(|slot| slot.is_some()).count();
            self.dense.clear();
        } else {
            for _ in 0..passed {
                dropped += usize::from(self.dense.pop_front().flatten().is_some());
            }
        }
        self.floor = acked;
        if self.sparse.is_empty() {
            return dropped;
        }
        while let Some(first) = self.sparse.first_entry() {
            if *first.key() > acked {
                break;
            }
            first.remove();
            dropped += 1;
        }
        // What the span now reaches moves to the ring.
        while let Some((&seq, _)) = self.sparse.first_key_value() {
            let Some(slot) = self.slot(seq) else {
                break;
            };
            let value = self.sparse.remove(&seq).expect("just seen");
            self.place(slot, value);
        }
        dropped
    }

    /// What is kept of message `seq`.
    pub(crate) fn get_mut(&mut self, seq: u64) -> Option<&mut V> {
        match self.slot(seq) {
            Some(slot) => self.dense.get_mut(slot)?.as_mut(),
            None => self.sparse.get_mut(&seq),
        }
    }

    /// Keeps `value()` for message `seq` unless something is kept already;
    /// `true` if it was new. `seq` must be above the floor.
    pub(crate) fn get_or_insert_with(
        &mut self,
        seq: u64,
        value: impl FnOnce() -> V,
    ) -> (bool, &mut V) {
        debug_assert!(seq > self.floor);
        match self.slot(seq) {
            Some(slot) => {
                let entry = self.ring_slot(slot);
                let new = entry.is_none();
                (new, entry.get_or_insert_with(value))
            }
            None => {
                let mut new = false;
                let entry = self.sparse.entry(seq).or_insert_with(|| {
                    new = true;
                    value()
                });
                (new, entry)
            }
        }
    }

    /// Keeps `value` for message `seq` (replacing what was kept); `true`
    /// if nothing was. `seq` must be above the floor.
    pub(crate) fn insert(&mut self, seq: u64, value: V) -> bool {
        debug_assert!(seq > self.floor);
        match self.slot(seq) {
            Some(slot) => self.place(slot, value),
            None => self.sparse.insert(seq, value).is_none(),
        }
    }

    /// Forgets message `seq`, returning what was kept.
    pub(crate) fn remove(&mut self, seq: u64) -> Option<V> {
        match self.slot(seq) {
            Some(slot) => self.dense.get_mut(slot)?.take(),
            None => self.sparse.remove(&seq),
        }
    }

    /// The ring slot of message `seq` (above the floor), if it is within
    /// the span.
    fn slot(&self, seq: u64) -> Option<usize> {
        let offset = seq.checked_sub(self.floor + 1)?;
        (offset < DENSE_SPAN).then_some(offset as usize)
    }

    fn place(&mut self, slot: usize, value: V) -> bool {
        self.ring_slot(slot).replace(value).is_none()
    }

    /// Ring slot `slot`, the ring lengthened to reach it: usually by one,
    /// the next message in order.
    fn ring_slot(&mut self, slot: usize) -> &mut Option<V> {
        while self.dense.len() <= slot {
            self.dense.push_back(None);
        }
        &mut self.dense[slot]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs<V>(window: &Window<V>) -> Vec<u64> {
        window.entries().map(|(seq, _)| seq).collect()
    }

    #[test]
    fn a_far_message_waits_in_the_tree_then_moves_to_the_ring() {
        let mut window = Window::new(Instant::now());
        let far = DENSE_SPAN + 10;
        assert!(window.insert(far, "far"));
        assert!(window.insert(2, "two"));
        assert_eq!(
            window.get_or_insert_with(2, || "again"),
            (false, &mut "two")
        );
        assert_eq!(seqs(&window), [2, far]);
        assert_eq!(window.dense.len(), 2, "the ring reaches only what is kept");
        assert_eq!(window.sparse.len(), 1);
        // Acknowledging 1 to 20 drops 2 and brings `far` within the span.
        assert_eq!(window.ack(20), 1);
        assert!(window.sparse.is_empty());
        assert_eq!(seqs(&window), [far]);
        assert_eq!(window.get_mut(far), Some(&mut "far"));
        assert_eq!(window.remove(far), Some("far"));
        assert!(window.is_empty());
    }

    #[test]
    fn a_window_far_ahead_costs_what_it_holds() {
        let mut window = Window::new(Instant::now());
        window.insert(65_536, ());
        assert!(window.dense.is_empty(), "no ring 65 536 slots long");
        assert_eq!(window.ack(65_536), 1);
        assert!(window.is_empty());
    }

    #[test]
    fn acknowledging_past_the_ring_empties_it() {
        let mut window = Window::new(Instant::now());
        for seq in 1..=10 {
            window.insert(seq, seq);
        }
        window.remove(4);
        assert_eq!(window.ack(3), 3);
        assert_eq!(seqs(&window), [5, 6, 7, 8, 9, 10]);
        assert_eq!(window.ack(1_000), 6);
        assert_eq!(window.floor(), 1_000);
        assert!(window.is_empty());
        assert_eq!(window.ack(999), 0, "an older acked changes nothing");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64),
        GetOrInsert(u64),
        Remove(u64),
        Ack(u64),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        // Numbers near the floor and far beyond the ring, both.
        let seq = prop_oneof![1..200u64, 1..3 * DENSE_SPAN];
        prop_oneof![
            seq.clone().prop_map(Op::Insert),
            seq.clone().prop_map(Op::GetOrInsert),
            seq.clone().prop_map(Op::Remove),
            seq.prop_map(Op::Ack),
        ]
    }

    proptest::proptest! {
        /// The ring and the tree together behave as one ordered map above
        /// the floor.
        #[test]
        fn behaves_as_an_ordered_map(ops in proptest::collection::vec(op(), 1..200)) {
            let mut window = Window::new(Instant::now());
            let mut model: BTreeMap<u64, u64> = BTreeMap::new();
            let mut floor = 0;
            for (n, op) in ops.into_iter().enumerate() {
                let n = n as u64;
                match op {
                    Op::Insert(seq) if seq > floor => {
                        proptest::prop_assert_eq!(window.insert(seq, n), model.insert(seq, n).is_none());
                    }
                    Op::GetOrInsert(seq) if seq > floor => {
                        let (new, value) = window.get_or_insert_with(seq, || n);
                        let was = model.contains_key(&seq);
                        let expected = *model.entry(seq).or_insert(n);
                        proptest::prop_assert_eq!((new, *value), (!was, expected));
                    }
                    Op::Remove(seq) => {
                        proptest::prop_assert_eq!(window.remove(seq), model.remove(&seq));
                    }
                    Op::Ack(acked) => {
                        let before = model.len();
                        if acked > floor {
                            floor = acked;
                            model.retain(|&seq, _| seq > acked);
                        }
                        proptest::prop_assert_eq!(window.ack(acked), before - model.len());
                    }
                    _ => {}
                }
                let kept: Vec<_> = window.entries().map(|(seq, &v)| (seq, v)).collect();
                let expected: Vec<_> = model.iter().map(|(&seq, &v)| (seq, v)).collect();
                proptest::prop_assert_eq!(kept, expected);
                proptest::prop_assert_eq!(window.is_empty(), model.is_empty());
                proptest::prop_assert!(window.dense.len() as u64 <= DENSE_SPAN);
            }
        }
    }
}

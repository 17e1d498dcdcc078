//! What a node keeps to recognise a message sent again: the exactly-once
//! half of the tagged forms (`SENDID`, `STOREID`; see [`protocol::id`]).
//!
//! # What is kept, and for how long
//!
//! Per client id, a [`Window`]: the highest `acked` the client has sent
//! (its *floor*), and one entry per message numbered above the floor that
//! the node has seen: in flight, or answered (with what the node needs to
//! answer it again, such as the datanode that holds it). An entry goes as
//! soon as a message of the same client carries an `acked` at or above its
//! number: the client has that answer for good and will never send the
//! message again. So what is kept grows with the number of clients and the
//! messages each has in flight (at most [`protocol::id::MAX_WINDOW`]), not
//! with the messages ever sent. A client whose window is empty is a floor
//! alone (its id and two numbers); it is dropped after it has been idle for
//! the node's expiry ([`Windows::expire_idle`]), after which a message of it
//! numbered at or below the old floor would be taken as new (a client that
//! keeps its promise never sends one).
//!
//! [`Windows`] is a plain data structure, with no clock (times are passed
//! in) and no I/O, so the headnode's router can hold one.
//!
//! # Surviving a restart
//!
//! [`sidecar`]: the same state as lines appended to a file beside the
//! node's log file, folded back into windows (and rewritten compacted) when
//! the node starts.
//!
//! # One rule for a log file
//!
//! [`store::TaggedLog`]: a log file (the server's `log.txt`, a datanode's
//! `data.txt`) that writes each tagged message once, with its sidecar.

pub mod sidecar;
pub mod store;
mod window;

pub use window::{Window, DENSE_SPAN};

use std::{
    hash::{BuildHasherDefault, Hasher},
    time::{Duration, Instant},
};

use hashbrown::HashMap;

use protocol::{ClientId, Tag};

/// What a node knows of one message id.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen<'a, V> {
    /// Never seen (or forgotten with its client's idle window).
    New,
    /// Seen; this is what the node keeps of it.
    Known(&'a mut V),
    /// Numbered at or below what its client acknowledged: the client
    /// promised never to send it again.
    Acknowledged,
}

/// A map keyed by client id, hashed by the hash the id carries.
type ClientMap<V> = HashMap<ClientId, V, BuildHasherDefault<CarriedHash>>;

/// The hasher of [`ClientMap`]: a [`ClientId`] hashes as the one `u64` it
/// carries, already mixed with the process's random seed
/// ([`protocol::ClientId`]), which is used as it is rather than mixed
/// again (about 15 instructions per look-up, a few look-ups per message).
#[derive(Debug, Default, Clone, Copy)]
struct CarriedHash(u64);

impl Hasher for CarriedHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by a client id; correct for any other key, if slower.
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// Every client's window.
#[derive(Debug)]
pub struct Windows<V> {
    clients: ClientMap<Window<V>>,
    entries: usize,
}

impl<V> Default for Windows<V> {
    fn default() -> Self {
        Windows {
            clients: ClientMap::default(),
            entries: 0,
        }
    }
}

impl<V> Windows<V> {
    /// Takes `tag`'s `acked` into account (dropping what it acknowledges),
    /// then says what is known of its message.
    pub fn check(&mut self, tag: &Tag, now: Instant) -> Seen<'_, V> {
        let Some(window) = above_floor(&mut self.clients, &mut self.entries, tag, now) else {
            return Seen::Acknowledged;
        };
        match window.get_mut(tag.seq) {
            Some(value) => Seen::Known(value),
            None => Seen::New,
        }
    }

    /// [`Windows::check`], and for a new message keeps `value()` for it at
    /// once, with one lookup of the client and one of the number.
    pub fn check_or_insert(
        &mut self,
        tag: &Tag,
        now: Instant,
        value: impl FnOnce() -> V,
    ) -> Seen<'_, V> {
        let Some(window) = above_floor(&mut self.clients, &mut self.entries, tag, now) else {
            return Seen::Acknowledged;
        };
        match window.get_or_insert_with(tag.seq, value) {
            (true, _) => {
                self.entries += 1;
                Seen::New
            }
            (false, known) => Seen::Known(known),
        }
    }

    /// What is kept of message `(client, seq)`, if anything.
    pub fn get_mut(&mut self, client: &ClientId, seq: u64) -> Option<&mut V> {
        self.clients.get_mut(client)?.get_mut(seq)
    }

    /// Keeps `value` for message `(client, seq)`, unless its client
    /// acknowledged it already.
    pub fn insert(&mut self, client: &ClientId, seq: u64, value: V, now: Instant) {
        let window = self.window(client, now);
        if seq > window.floor() && window.insert(seq, value) {
            self.entries += 1;
        }
    }

    /// Forgets message `(client, seq)` (its outcome was an error: a resend
    /// is tried afresh); returns what was kept.
    pub fn remove(&mut self, client: &ClientId, seq: u64) -> Option<V> {
        let value = self.clients.get_mut(client)?.remove(seq)?;
        self.entries -= 1;
        Some(value)
    }

    /// `client` has every answer up to `acked`: forget those messages.
    pub fn ack(&mut self, client: &ClientId, acked: u64, now: Instant) {
        let window = self.window(client, now);
        self.entries -= window.ack(acked);
    }

    /// Drops the clients with no entry that have sent nothing for `idle`.
    pub fn expire_idle(&mut self, now: Instant, idle: Duration) {
        self.clients.retain(|_, window| {
            !window.is_empty() || now.saturating_duration_since(window.last_seen) < idle
        });
    }

    /// Number of clients known.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Number of entries kept, over every client.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Every client's window.
    pub fn iter(&self) -> impl Iterator<Item = (&ClientId, &Window<V>)> {
        self.clients.iter()
    }

    fn window(&mut self, client: &ClientId, now: Instant) -> &mut Window<V> {
        window_of(&mut self.clients, client, now)
    }
}

/// The window of `tag`'s client once `tag.acked` is taken into account
/// (what it acknowledges is dropped from `entries`), or `None` if the
/// message is at or below its client's floor.
fn above_floor<'a, V>(
    clients: &'a mut ClientMap<Window<V>>,
    entries: &mut usize,
    tag: &Tag,
    now: Instant,
) -> Option<&'a mut Window<V>> {
    let window = window_of(clients, &tag.client, now);
    *entries -= window.ack(tag.acked);
    (tag.seq > window.floor()).then_some(window)
}

/// `client`'s window in `clients`, made if new, marked seen at `now`.
fn window_of<'a, V>(
    clients: &'a mut ClientMap<Window<V>>,
    client: &ClientId,
    now: Instant,
) -> &'a mut Window<V> {
    // Looked up by reference: the id is cloned only for a new client, not
    // once per message.
    let window = clients
        .entry_ref(client)
        .or_insert_with(|| Window::new(now));
    window.last_seen = now;
    window
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(seq: u64, acked: u64) -> Tag {
        Tag {
            client: ClientId::new("c1").unwrap(),
            seq,
            acked,
        }
    }

    #[test]
    fn a_message_is_known_until_its_client_acknowledges_it() {
        let now = Instant::now();
        let mut windows = Windows::default();
        let t1 = tag(1, 0);
        assert_eq!(windows.check(&t1, now), Seen::New);
        windows.insert(&t1.client, 1, "dn1", now);
        windows.insert(&t1.client, 2, "dn2", now);
        assert_eq!(windows.check(&t1, now), Seen::Known(&mut "dn1"));
        assert_eq!(windows.entries(), 2);
        // Message 3 says 1 is answered for good: 1 is forgotten, 2 kept.
        assert_eq!(windows.check(&tag(3, 1), now), Seen::New);
        assert_eq!(windows.entries(), 1);
        assert_eq!(windows.check(&tag(1, 1), now), Seen::Acknowledged);
        assert_eq!(windows.check(&tag(2, 1), now), Seen::Known(&mut "dn2"));
        // An older acked changes nothing.
        windows.ack(&t1.client, 0, now);
        assert_eq!(windows.entries(), 1);
        assert_eq!(windows.remove(&t1.client, 2), Some("dn2"));
        assert_eq!(windows.entries(), 0);
        windows.insert(&t1.client, 1, "late", now);
        assert_eq!(windows.entries(), 0, "below the floor: not kept");
    }

    #[test]
    fn check_or_insert_keeps_a_new_message_and_finds_a_known_one() {
        let now = Instant::now();
        let mut windows = Windows::default();
        assert_eq!(windows.check_or_insert(&tag(2, 0), now, || "a"), Seen::New);
        assert_eq!(
            windows.check_or_insert(&tag(2, 0), now, || "b"),
            Seen::Known(&mut "a"),
            "the first value stays"
        );
        assert_eq!(windows.entries(), 1);
        assert_eq!(
            windows.check_or_insert(&tag(2, 2), now, || "c"),
            Seen::Acknowledged
        );
        assert_eq!(windows.entries(), 0, "acknowledged: forgotten, not kept");
    }

    #[test]
    fn memory_follows_the_window_not_the_messages() {
        let now = Instant::now();
        let mut windows = Windows::default();
        for seq in 1..=100_000u64 {
            let tag = tag(seq, seq.saturating_sub(16));
            assert_eq!(windows.check(&tag, now), Seen::New);
            windows.insert(&tag.client, seq, (), now);
            assert!(windows.entries() <= 16);
        }
        assert_eq!(windows.clients(), 1);
    }

    #[test]
    fn idle_clients_with_nothing_in_flight_expire() {
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        let mut windows = Windows::default();
        windows.check(&tag(1, 0), now);
        let busy = ClientId::new("busy").unwrap();
        windows.insert(&busy, 1, (), now);
        windows.expire_idle(now + minute, minute);
        assert_eq!(windows.clients(), 1, "only the one with an entry stays");
        assert!(windows.get_mut(&busy, 1).is_some());
    }
}

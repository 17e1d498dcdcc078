//! The cluster secret's proofs: who may be a datanode.
//!
//! With a cluster secret (`--cluster-secret-file` on the headnode and every
//! datanode), a process proves that it knows the secret without sending
//! it: it sends an HMAC-SHA256 *tag* of a text the other side chose or can
//! check, keyed with the secret. Each tag covers the text of the message it
//! authenticates, whose first word names the kind of message, so a tag made
//! for one kind can never pass for another:
//!
//! - registration ([`crate::link`]): the headnode answers `REGISTER <name>`
//!   with `CHALLENGE <nonce>` (16 random bytes, fresh for each attempt), and
//!   the datanode answers `PROOF <tag>`, the tag of
//!   `REGISTER <name> <nonce>`; a tag seen once is worth nothing again;
//! - the multicast heartbeat ([`crate::heartbeat`]): `HEARTBEAT <round>
//!   <nonce> <tag>` and `ALIVE <round> <nonce> <name> <tag>`, each tag over
//!   the text before it.
//!
//! A tag is written as 64 lowercase hex digits, and checked with hmac's
//! `verify_slice`, which compares in constant time: a comparison that
//! stopped at the first wrong byte would tell, by its timing, how much of a
//! guess was right.
//!
//! The secret authenticates; it does not encrypt. Anyone who can read the
//! network still reads every message (section 11 of `docs/PROTOCOL.md`).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Shortest secret accepted, in bytes: 128 bits, as many as a random key
/// needs to be out of reach of guessing.
pub const MIN_SECRET_LEN: usize = 16;

/// Bytes of a tag (HMAC-SHA256).
pub const TAG_LEN: usize = 32;

/// Bytes of a registration challenge's nonce.
pub const NONCE_LEN: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// The cluster secret, ready to make and check tags.
#[derive(Clone)]
pub struct ClusterKey {
    /// Keyed once; each tag starts from a copy.
    mac: HmacSha256,
}

impl ClusterKey {
    /// The key of `secret`, or `None` if it is shorter than
    /// [`MIN_SECRET_LEN`].
    pub fn new(secret: &[u8]) -> Option<ClusterKey> {
        if secret.len() < MIN_SECRET_LEN {
            return None;
        }
        let mac = HmacSha256::new_from_slice(secret).ok()?;
        Some(ClusterKey { mac })
    }

    /// The tag of `text`, as 64 lowercase hex digits.
    pub fn tag(&self, text: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(text.as_bytes());
        to_hex(&mac.finalize().into_bytes())
    }

    /// Whether `tag` (64 hex digits) is the tag of `text`, compared in
    /// constant time.
    pub fn verify(&self, text: &str, tag: &str) -> bool {
        let Some(tag) = from_hex::<TAG_LEN>(tag) else {
            return false;
        };
        let mut mac = self.mac.clone();
        mac.update(text.as_bytes());
        mac.verify_slice(&tag).is_ok()
    }
}

impl fmt::Debug for ClusterKey {
    /// Never the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

/// `bytes` as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 15)] as char);
    }
    out
}

/// The `N` bytes written as exactly `2 * N` lowercase hex digits in `text`.
pub fn from_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let value = |digit: u8| match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = value(pair[0])? << 4 | value(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The key of the examples in docs/PROTOCOL.md, section 11.
    pub(crate) fn example_key() -> ClusterKey {
        ClusterKey::new(b"correct horse battery staple").unwrap()
    }

    #[test]
    fn tags_match_the_standard_test_vector_and_verify() {
        // RFC 4231, test case 2 (a key shorter than ours would refuse, so
        // the MAC is checked directly).
        let mut mac = HmacSha256::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            to_hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let key = example_key();
        let tag = key.tag("REGISTER dn1 00112233445566778899aabbccddeeff");
        assert_eq!(tag.len(), 64);
        assert!(key.verify("REGISTER dn1 00112233445566778899aabbccddeeff", &tag));
        assert!(!key.verify("REGISTER dn2 00112233445566778899aabbccddeeff", &tag));
        assert!(!key.verify("REGISTER dn1 00112233445566778899aabbccddeeff", &tag[1..]));
        assert!(!key.verify(
            "REGISTER dn1 00112233445566778899aabbccddeeff",
            &tag.to_uppercase()
        ));
        let other = ClusterKey::new(b"another secret of enough bytes").unwrap();
        assert!(!other.verify("REGISTER dn1 00112233445566778899aabbccddeeff", &tag));
    }

    #[test]
    fn short_secrets_are_refused_and_the_key_never_prints() {
        assert!(ClusterKey::new(&[7; MIN_SECRET_LEN - 1]).is_none());
        assert!(ClusterKey::new(&[7; MIN_SECRET_LEN]).is_some());
        assert_eq!(format!("{:?}", example_key()), "ClusterKey(..)");
    }

    #[test]
    fn hex_round_trips_and_refuses_anything_else() {
        let bytes = [0x00, 0x1f, 0xa0, 0xff];
        assert_eq!(to_hex(&bytes), "001fa0ff");
        assert_eq!(from_hex::<4>("001fa0ff"), Some(bytes));
        for bad in ["001fa0f", "001fa0fff", "001FA0FF", "001fa0fg", "+01fa0ff"] {
            assert_eq!(from_hex::<4>(bad), None, "{bad}");
        }
    }
}

//! The multicast heartbeat's two datagrams.
//!
//! Every round the headnode sends one *probe* to the heartbeat group, and
//! every datanode that hears it answers with one *alive* datagram, unicast
//! to the probe's source address:
//!
//! ```text
//! probe  (headnode -> group):   HEARTBEAT <round> <nonce>
//! alive  (datanode -> headnode): ALIVE <round> <nonce> <name>
//! ```
//!
//! `<round>` is the round's number in decimal, `<nonce>` 16 lowercase hex
//! digits drawn at random for the round, `<name>` the datanode's registered
//! name. An alive datagram counts only if it echoes the current round's
//! number and nonce, so a reply to an old round, or one made up by a
//! process that never saw the probe, is worth nothing.
//!
//! With a cluster secret ([`crate::auth`]) each datagram ends with one more
//! word, the tag of the text before it (` <tag>`, 64 hex digits): a datanode
//! ignores a probe, and the headnode an answer, whose tag is missing or
//! wrong ([`DatagramError::BadTag`]), so nobody without the secret can make
//! a datanode answer or answer for one. The `_with` forms take the key;
//! without one the datagrams are exactly those above.
//!
//! Each datagram holds exactly one frame of the TCP protocol (a 4-byte
//! big-endian length, then the payload), so that a datagram cut short on
//! its way is recognised as such, and the text is the same kind of text as
//! everywhere else. Datagrams are at most [`MAX_DATAGRAM`] bytes; anything
//! that is not exactly one well-formed frame of one of these forms is
//! rejected with a [`DatagramError`], which the receiver counts and drops.
//!
//! Section 10 of `docs/PROTOCOL.md` specifies it, with examples in hex.

use std::fmt;

use bytes::{BufMut, BytesMut};

use crate::{auth::ClusterKey, command::is_valid_name, frame::HEADER_LEN};

/// Largest heartbeat datagram, in bytes: a header, a verb, two numbers and
/// a 64-byte name fit in well under it.
pub const MAX_DATAGRAM: usize = 256;

/// Default heartbeat group: an administratively scoped (site-local)
/// address, RFC 2365, and a port of its own.
pub const DEFAULT_GROUP: &str = "239.255.43.1:10010";

/// The headnode's probe of one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The round's number.
    pub round: u64,
    /// The round's random nonce.
    pub nonce: u64,
}

/// A datanode's answer to a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alive {
    /// The round answered.
    pub round: u64,
    /// The nonce of the probe answered.
    pub nonce: u64,
    /// The datanode's registered name.
    pub name: String,
}

/// Why a datagram was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatagramError {
    /// Not exactly one frame: shorter or longer than its header says, or
    /// over [`MAX_DATAGRAM`].
    Framing,
    /// The payload is not UTF-8.
    BadUtf8,
    /// The text is not a probe or alive datagram of the documented form.
    Malformed,
    /// With a cluster secret: the tag is missing or wrong.
    BadTag,
}

impl fmt::Display for DatagramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DatagramError::Framing => "not exactly one frame of at most 256 bytes",
            DatagramError::BadUtf8 => "not UTF-8",
            DatagramError::Malformed => "not a heartbeat datagram",
            DatagramError::BadTag => "no valid tag of the cluster secret",
        })
    }
}

impl std::error::Error for DatagramError {}

impl Probe {
    /// The datagram, without a tag.
    pub fn encode(&self) -> BytesMut {
        self.encode_with(None)
    }

    /// The datagram, tagged with `key` if there is one.
    pub fn encode_with(&self, key: Option<&ClusterKey>) -> BytesMut {
        datagram(format!("HEARTBEAT {} {:016x}", self.round, self.nonce), key)
    }

    /// Parses an untagged datagram.
    pub fn decode(datagram: &[u8]) -> Result<Probe, DatagramError> {
        Probe::decode_with(datagram, None)
    }

    /// Parses a datagram, which must carry a valid tag of `key` if there is
    /// one.
    pub fn decode_with(datagram: &[u8], key: Option<&ClusterKey>) -> Result<Probe, DatagramError> {
        let mut words = words(datagram, key, "HEARTBEAT", 2)?;
        let round = decimal(words.next())?;
        let nonce = nonce(words.next())?;
        Ok(Probe { round, nonce })
    }
}

impl Alive {
    /// The datagram, without a tag.
    pub fn encode(&self) -> BytesMut {
        self.encode_with(None)
    }

    /// The datagram, tagged with `key` if there is one.
    pub fn encode_with(&self, key: Option<&ClusterKey>) -> BytesMut {
        let text = format!("ALIVE {} {:016x} {}", self.round, self.nonce, self.name);
        datagram(text, key)
    }

    /// Parses an untagged datagram.
    pub fn decode(datagram: &[u8]) -> Result<Alive, DatagramError> {
        Alive::decode_with(datagram, None)
    }

    /// Parses a datagram, which must carry a valid tag of `key` if there is
    /// one.
    pub fn decode_with(datagram: &[u8], key: Option<&ClusterKey>) -> Result<Alive, DatagramError> {
        let mut words = words(datagram, key, "ALIVE", 3)?;
        let round = decimal(words.next())?;
        let nonce = nonce(words.next())?;
        let name = words.next().ok_or(DatagramError::Malformed)?;
        if !is_valid_name(name) {
            return Err(DatagramError::Malformed);
        }
        Ok(Alive {
            round,
            nonce,
            name: name.to_owned(),
        })
    }
}

/// One frame holding `text`, and ` <tag>` of it with a key.
fn datagram(mut text: String, key: Option<&ClusterKey>) -> BytesMut {
    if let Some(key) = key {
        let tag = key.tag(&text);
        text.push(' ');
        text.push_str(&tag);
    }
    let mut out = BytesMut::with_capacity(HEADER_LEN + text.len());
    out.put_u32(text.len() as u32);
    out.put_slice(text.as_bytes());
    out
}

/// The `count` words after `verb` of the one frame in `datagram`.
/// With a `key`, the datagram's last word must be the tag of the text
/// before it, and the words are those of that text.
fn words<'a>(
    datagram: &'a [u8],
    key: Option<&ClusterKey>,
    verb: &str,
    count: usize,
) -> Result<std::str::Split<'a, char>, DatagramError> {
    if datagram.len() > MAX_DATAGRAM || datagram.len() < HEADER_LEN {
        return Err(DatagramError::Framing);
    }
    let (header, payload) = datagram.split_at(HEADER_LEN);
    let declared = u32::from_be_bytes(header.try_into().expect("4 bytes")) as usize;
    if declared != payload.len() {
        return Err(DatagramError::Framing);
    }
    let mut text = std::str::from_utf8(payload).map_err(|_| DatagramError::BadUtf8)?;
    if let Some(key) = key {
        let (body, tag) = text.rsplit_once(' ').ok_or(DatagramError::BadTag)?;
        if !key.verify(body, tag) {
            return Err(DatagramError::BadTag);
        }
        text = body;
    }
    let mut words = text.split(' ');
    if words.next() != Some(verb) || text.split(' ').count() != count + 1 {
        return Err(DatagramError::Malformed);
    }
    Ok(words)
}

fn decimal(word: Option<&str>) -> Result<u64, DatagramError> {
    let word = word.ok_or(DatagramError::Malformed)?;
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DatagramError::Malformed);
    }
    word.parse().map_err(|_| DatagramError::Malformed)
}

fn nonce(word: Option<&str>) -> Result<u64, DatagramError> {
    let word = word.ok_or(DatagramError::Malformed)?;
    if word.len() != 16 || !word.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(DatagramError::Malformed);
    }
    u64::from_str_radix(word, 16).map_err(|_| DatagramError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_round_trip_and_match_the_documented_bytes() {
        let probe = Probe {
            round: 7,
            nonce: 0x1f2e_3d4c_5b6a_7988,
        };
        let bytes = probe.encode();
        assert_eq!(&bytes[..], b"\0\0\0\x1cHEARTBEAT 7 1f2e3d4c5b6a7988");
        assert_eq!(Probe::decode(&bytes), Ok(probe));
        let alive = Alive {
            round: 7,
            nonce: probe.nonce,
            name: "datanode1".into(),
        };
        let bytes = alive.encode();
        assert_eq!(&bytes[..], b"\0\0\0\x22ALIVE 7 1f2e3d4c5b6a7988 datanode1");
        assert_eq!(Alive::decode(&bytes), Ok(alive));
    }

    #[test]
    fn with_a_secret_datagrams_carry_a_tag_that_is_checked() {
        let key = crate::auth::tests::example_key();
        let probe = Probe {
            round: 7,
            nonce: 0x1f2e_3d4c_5b6a_7988,
        };
        let bytes = probe.encode_with(Some(&key));
        // The examples of docs/PROTOCOL.md, section 11 (their tags checked
        // with Python's hmac module).
        let text = "HEARTBEAT 7 1f2e3d4c5b6a7988 \
                    55fc0e6ef9f9bcf70c56c97268da2371aecb97d667e84768509c0a911c6842e3";
        assert_eq!(&bytes[4..], text.as_bytes());
        assert_eq!(Probe::decode_with(&bytes, Some(&key)), Ok(probe));
        assert_eq!(
            Probe::decode_with(&probe.encode(), Some(&key)),
            Err(DatagramError::BadTag),
            "untagged"
        );
        assert_eq!(Probe::decode(&bytes), Err(DatagramError::Malformed));
        let alive = Alive {
            round: 7,
            nonce: probe.nonce,
            name: "datanode1".into(),
        };
        let bytes = alive.encode_with(Some(&key));
        let text = "ALIVE 7 1f2e3d4c5b6a7988 datanode1 \
                    531024ade8225da95bf75818e7bde2df77ba6358eaf41f07563186e48be77e47";
        assert_eq!(&bytes[4..], text.as_bytes());
        assert_eq!(Alive::decode_with(&bytes, Some(&key)), Ok(alive.clone()));
        let other = crate::auth::ClusterKey::new(b"not the cluster's secret").unwrap();
        assert_eq!(
            Alive::decode_with(&bytes, Some(&other)),
            Err(DatagramError::BadTag)
        );
        // A tag moved to another name, or another round, does not fit.
        let tag = std::str::from_utf8(&bytes[4..])
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned();
        let forged = format!("ALIVE 7 1f2e3d4c5b6a7988 datanode2 {tag}");
        let mut datagram = (forged.len() as u32).to_be_bytes().to_vec();
        datagram.extend_from_slice(forged.as_bytes());
        assert_eq!(
            Alive::decode_with(&datagram, Some(&key)),
            Err(DatagramError::BadTag)
        );
        // The longest name still fits in a datagram.
        let longest = Alive {
            round: u64::MAX,
            nonce: u64::MAX,
            name: "n".repeat(crate::command::MAX_NAME_LEN),
        };
        let bytes = longest.encode_with(Some(&key));
        assert!(bytes.len() <= MAX_DATAGRAM, "{}", bytes.len());
        assert_eq!(Alive::decode_with(&bytes, Some(&key)), Ok(longest));
    }

    #[test]
    fn anything_else_is_rejected() {
        let good = Alive {
            round: 1,
            nonce: 2,
            name: "dn1".into(),
        }
        .encode();
        let truncated = &good[..good.len() - 1];
        assert_eq!(Alive::decode(truncated), Err(DatagramError::Framing));
        let mut long = good.to_vec();
        long.push(b'x');
        assert_eq!(Alive::decode(&long), Err(DatagramError::Framing));
        assert_eq!(Alive::decode(&[0; 300]), Err(DatagramError::Framing));
        assert_eq!(Alive::decode(b""), Err(DatagramError::Framing));
        let frame = |text: &[u8]| {
            let mut out = (text.len() as u32).to_be_bytes().to_vec();
            out.extend_from_slice(text);
            out
        };
        for text in [
            &b"ALIVE 1 0000000000000002"[..],
            b"ALIVE 1 0000000000000002 dn1 extra",
            b"ALIVE 1 2 dn1",
            b"ALIVE -1 0000000000000002 dn1",
            b"ALIVE 1 000000000000000G dn1",
            b"ALIVE 1 0000000000000002 bad/name",
            b"ALIVE  1 0000000000000002 dn1",
            b"alive 1 0000000000000002 dn1",
            b"HEARTBEAT 1 0000000000000002",
            b"ALIVE 99999999999999999999 0000000000000002 dn1",
        ] {
            assert_eq!(
                Alive::decode(&frame(text)),
                Err(DatagramError::Malformed),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        assert_eq!(
            Alive::decode(&frame(b"ALIVE 1 0000000000000002 dn\xff")),
            Err(DatagramError::BadUtf8)
        );
        assert_eq!(
            Probe::decode(&frame(b"ALIVE 1 0000000000000002 dn1")),
            Err(DatagramError::Malformed)
        );
    }
}

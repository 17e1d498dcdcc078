//! Message ids: what makes a resent message recognisable.
//!
//! A client that wants exactly-once delivery tags each message with a
//! [`Tag`]: its client id, the message's sequence number, and how far it
//! has every answer. On the wire (`docs/PROTOCOL.md`, section 2):
//!
//! ```text
//! SENDID <client> <seq> <acked> <message>     client -> server or headnode
//! STOREID <client> <seq> <acked> <message>    headnode -> datanode
//! ```
//!
//! - `<client>`: 1 to 64 bytes from `A-Z a-z 0-9 . _ -` (the alphabet of
//!   datanode names); the project's client draws 16 random hex digits.
//! - `<seq>`: the message's number, decimal, from 1, one more per message
//!   of that client. A message sent again keeps its number.
//! - `<acked>`: every message of this client numbered `acked` or less has
//!   had its answer recorded by the client, which will never send them
//!   again; 0 before any. Smaller than `<seq>`. It is what lets a node
//!   forget: what it keeps per client is the answers numbered above the
//!   highest `acked` it has seen, the client's window in flight.
//!
//! The id of a message is `(client, seq)`; the headnode passes the client's
//! tag on to the datanode unchanged, so the same id names the message on
//! every node (a later replication can ask datanodes for it by that id).

use std::{fmt, sync::Arc};

use bytes::{BufMut, BytesMut};

use crate::{command::is_valid_name, ErrorCode, ErrorReply};

/// Verb of a tagged client message.
pub const SEND_TAGGED: &str = "SENDID";
/// Verb of a tagged datanode store.
pub const STORE_TAGGED: &str = "STOREID";

/// Messages beyond a client's `acked` that a node accepts at once: a
/// client with more in flight is refused (`BAD_ARGUMENT`), which bounds
/// what a node keeps per client.
pub const MAX_WINDOW: u64 = 65_536;

/// A client id: 1 to 64 bytes from `A-Z a-z 0-9 . _ -`. Cheap to clone.
///
/// Two ids are equal when their text is; ids that share one allocation
/// (see [`ClientIds`]) compare without reading it.
#[derive(Debug, Clone, PartialOrd, Ord)]
pub struct ClientId(Arc<str>);

impl std::hash::Hash for ClientId {
    // By text, as equality is (shared or not).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for ClientId {
    fn eq(&self, other: &ClientId) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for ClientId {}

impl From<&ClientId> for ClientId {
    fn from(id: &ClientId) -> ClientId {
        id.clone()
    }
}

impl ClientId {
    /// The id in `text`, if it is one.
    pub fn new(text: &str) -> Option<ClientId> {
        is_valid_name(text).then(|| ClientId(text.into()))
    }

    /// The id as written on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parses client ids without an allocation per message: a connection
/// sends the same id in every tagged message, so the last one parsed is
/// kept and handed out again while the text matches.
#[derive(Debug, Default)]
pub struct ClientIds {
    last: Option<ClientId>,
}

impl ClientIds {
    /// The id in `text`, if it is one ([`ClientId::new`]).
    pub fn get(&mut self, text: &str) -> Option<ClientId> {
        match &self.last {
            Some(last) if last.as_str() == text => Some(last.clone()),
            _ => {
                let id = ClientId::new(text)?;
                self.last = Some(id.clone());
                Some(id)
            }
        }
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The tag of one message: whose, which, and how far its client has every
/// answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag {
    /// The client that numbered it.
    pub client: ClientId,
    /// Its number, from 1.
    pub seq: u64,
    /// Every message of the client up to this number is answered, for good.
    pub acked: u64,
}

impl Tag {
    /// Parses `<client> <seq> <acked> <message>`: the tag and the message.
    pub fn parse_argument(argument: Option<&str>) -> Result<(Tag, &str), ErrorReply> {
        Tag::parse_argument_with(argument, &mut ClientIds::default())
    }

    /// [`Tag::parse_argument`], taking the client id from `ids`.
    pub fn parse_argument_with<'a>(
        argument: Option<&'a str>,
        ids: &mut ClientIds,
    ) -> Result<(Tag, &'a str), ErrorReply> {
        let bad = |why: &str| {
            ErrorReply::new(
                ErrorCode::BadArgument,
                format!("a tagged message is <client> <seq> <acked> <message>: {why}"),
            )
        };
        // Word by word with a byte scan: the words are short, and `splitn`'s
        // searcher showed in the headnode's profile (docs/PERFORMANCE.md).
        let (client, rest) = first_word(argument.unwrap_or(""));
        let client = ids
            .get(client)
            .ok_or_else(|| bad("the client id is 1 to 64 characters from A-Z a-z 0-9 . _ -"))?;
        let (seq, rest) = first_word(rest);
        let seq = decimal(seq).filter(|&seq| seq >= 1);
        let seq = seq.ok_or_else(|| bad("the sequence number is a whole number from 1"))?;
        let (acked, message) = first_word(rest);
        let acked = decimal(acked).filter(|&acked| acked < seq);
        let acked =
            acked.ok_or_else(|| bad("acked is a whole number below the sequence number"))?;
        if seq - acked > MAX_WINDOW {
            return Err(bad(&format!(
                "at most {MAX_WINDOW} messages may be unacknowledged"
            )));
        }
        let starts_visible = message.as_bytes().first().is_some_and(u8::is_ascii_graphic);
        if !starts_visible && message.trim().is_empty() {
            return Err(ErrorReply::new(
                ErrorCode::EmptyMessage,
                "the message is empty",
            ));
        }
        Ok((Tag { client, seq, acked }, message))
    }

    /// Appends `<client> <seq> <acked> ` (with the trailing space) to `dst`.
    pub fn write_prefix(&self, dst: &mut BytesMut) {
        dst.put_slice(self.client.as_str().as_bytes());
        dst.put_u8(b' ');
        put_number(dst, self.seq);
        dst.put_u8(b' ');
        put_number(dst, self.acked);
        dst.put_u8(b' ');
    }
}

impl fmt::Display for Tag {
    /// `<client>:<seq>`, the message id, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.client, self.seq)
    }
}

/// A decimal number as the protocol writes them: ASCII digits only, no
/// sign, at most 20 digits. The sidecars write theirs the same way.
pub fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    text.bytes().try_fold(0u64, |n, b| {
        let digit = b.checked_sub(b'0').filter(|&d| d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// `text` up to its first space, and what follows that space (empty if
/// there is none).
fn first_word(text: &str) -> (&str, &str) {
    match text.bytes().position(|b| b == b' ') {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, ""),
    }
}

fn put_number(dst: &mut BytesMut, n: u64) {
    dst.put_slice(itoa::Buffer::new().format(n).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(Tag, &str), ErrorCode> {
        Tag::parse_argument(Some(text)).map_err(|err| err.code)
    }

    #[test]
    fn a_tag_round_trips() {
        let (tag, message) = parse("c0ffee 12 9 Hola mundo").unwrap();
        assert_eq!((tag.client.as_str(), tag.seq, tag.acked), ("c0ffee", 12, 9));
        assert_eq!(message, "Hola mundo");
        let mut out = BytesMut::new();
        tag.write_prefix(&mut out);
        assert_eq!(&out[..], b"c0ffee 12 9 ");
        assert_eq!(tag.to_string(), "c0ffee:12");
        let (_, spaced) = parse("c 1 0  two  spaces ").unwrap();
        assert_eq!(spaced, " two  spaces ", "the message is verbatim");
    }

    #[test]
    fn bad_tags_are_refused_with_their_codes() {
        for text in [
            "",
            "c",
            "c 1",
            "bad/id 1 0 m",
            "c 0 0 m",
            "c 1 1 m",
            "c 5 7 m",
            "c +1 0 m",
            "c -1 0 m",
            "c 1 x m",
            "c 99999999999999999999999 0 m",
            "c 70000 1 m",
        ] {
            assert_eq!(parse(text), Err(ErrorCode::BadArgument), "{text:?}");
        }
        assert_eq!(parse("c 1 0"), Err(ErrorCode::EmptyMessage));
        assert_eq!(parse("c 1 0  "), Err(ErrorCode::EmptyMessage));
        assert_eq!(
            Tag::parse_argument(None).map_err(|e| e.code),
            Err(ErrorCode::BadArgument)
        );
    }

    #[test]
    fn a_repeated_client_id_is_shared_not_parsed_again() {
        let mut ids = ClientIds::default();
        let (a, _) = Tag::parse_argument_with(Some("c1 1 0 m"), &mut ids).unwrap();
        let (b, _) = Tag::parse_argument_with(Some("c1 2 1 m"), &mut ids).unwrap();
        let (c, _) = Tag::parse_argument_with(Some("c2 1 0 m"), &mut ids).unwrap();
        assert!(Arc::ptr_eq(&a.client.0, &b.client.0));
        assert_eq!(a.client, b.client);
        assert_ne!(b.client, c.client);
        assert_eq!(a.client, ClientId::new("c1").unwrap(), "equal by text");
        assert!(ids.get("bad/id").is_none());
        assert_eq!(ids.get("c2"), Some(c.client), "a bad id does not evict");
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        for n in [0, 1, 9, 10, 12345, u64::MAX] {
            let mut out = BytesMut::new();
            put_number(&mut out, n);
            assert_eq!(std::str::from_utf8(&out).unwrap(), n.to_string());
        }
    }
}

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

use std::{
    fmt,
    hash::BuildHasher,
    sync::{Arc, OnceLock},
};

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
/// (see [`ClientIds`]) compare without reading it. The text's hash is
/// computed once, when the id is made, with this process's random seed:
/// the windows and the sidecar records look an id up several times per
/// message, and hashing it each time showed in the nodes' profiles
/// (docs/PERFORMANCE.md, "Tagged messages beside plain"). A peer cannot
/// choose ids that collide, as it cannot know the seed.
#[derive(Clone)]
pub struct ClientId {
    text: Arc<str>,
    hash: u64,
}

/// The seed of every client id's hash in this process.
fn seed() -> &'static foldhash::fast::RandomState {
    static SEED: OnceLock<foldhash::fast::RandomState> = OnceLock::new();
    SEED.get_or_init(Default::default)
}

fn hash_text(text: &str) -> u64 {
    seed().hash_one(text)
}

impl std::hash::Hash for ClientId {
    // The text's hash, computed once; equal texts have equal hashes.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for ClientId {
    fn eq(&self, other: &ClientId) -> bool {
        Arc::ptr_eq(&self.text, &other.text) || (self.hash == other.hash && self.text == other.text)
    }
}

impl Eq for ClientId {}

impl PartialOrd for ClientId {
    fn partial_cmp(&self, other: &ClientId) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ClientId {
    /// By text.
    fn cmp(&self, other: &ClientId) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClientId").field(&&*self.text).finish()
    }
}

impl From<&ClientId> for ClientId {
    fn from(id: &ClientId) -> ClientId {
        id.clone()
    }
}

impl ClientId {
    /// The id in `text`, if it is one.
    pub fn new(text: &str) -> Option<ClientId> {
        is_valid_name(text).then(|| ClientId::with_hash(text, hash_text(text)))
    }

    fn with_hash(text: &str, hash: u64) -> ClientId {
        ClientId {
            text: text.into(),
            hash,
        }
    }

    /// The address of the id's text, never 0: the same for ids that share
    /// one allocation (then they are equal; equal ids need not share one).
    pub fn addr(&self) -> usize {
        Arc::as_ptr(&self.text).cast::<u8>() as usize
    }

    /// The id as written on the wire.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Slots of [`ClientIds`]' cache.
const ID_CACHE_SLOTS: usize = 256;

/// Parses client ids without an allocation per message. A client's
/// connection sends the same id in every tagged message, so the last one
/// parsed is tried first and handed out again while the text matches; a
/// datanode's link carries the ids of every client of the headnode,
/// interleaved, so the others are kept in a small cache (one slot per
/// hash, the newest id wins), bounded whatever a peer sends.
#[derive(Debug, Default)]
pub struct ClientIds {
    last: Option<ClientId>,
    /// Made at the first id that is not the last one.
    cache: Option<Box<[Option<ClientId>; ID_CACHE_SLOTS]>>,
}

impl ClientIds {
    /// The id in `text`, if it is one ([`ClientId::new`]).
    pub fn get(&mut self, text: &str) -> Option<ClientId> {
        if let Some(last) = &self.last {
            if last.as_str() == text {
                return Some(last.clone());
            }
        }
        let hash = hash_text(text);
        let cached = self.cache.as_ref().and_then(|cache| {
            cache[hash as usize % ID_CACHE_SLOTS]
                .as_ref()
                .filter(|id| id.hash == hash && id.as_str() == text)
                .cloned()
        });
        let id = match cached {
            Some(id) => id,
            None if is_valid_name(text) => ClientId::with_hash(text, hash),
            None => return None,
        };
        // The id it replaces as the last one stays findable. A connection
        // that only ever sends one id never makes the cache.
        if let Some(previous) = self.last.replace(id.clone()) {
            let cache = self
                .cache
                .get_or_insert_with(|| Box::new(std::array::from_fn(|_| None)));
            let slot = previous.hash as usize % ID_CACHE_SLOTS;
            cache[slot] = Some(previous);
        }
        Some(id)
    }

    /// The client id that `text` starts with, and what follows the space
    /// after it (empty if there is none); `None` if it is not an id.
    fn leading_id<'a>(&mut self, text: &'a str) -> Option<(ClientId, &'a str)> {
        // The connection's id again: no scan for the space.
        if let Some(last) = &self.last {
            let len = last.as_str().len();
            if text.as_bytes().get(len) == Some(&b' ')
                && text.as_bytes()[..len] == *last.as_str().as_bytes()
            {
                return Some((last.clone(), &text[len + 1..]));
            }
        }
        let (word, rest) = first_word(text);
        Some((self.get(word)?, rest))
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
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
        let (client, rest) = ids
            .leading_id(argument.unwrap_or(""))
            .ok_or_else(|| bad("the client id is 1 to 64 characters from A-Z a-z 0-9 . _ -"))?;
        let (seq, rest) = number_word(rest)
            .filter(|&(seq, _)| seq >= 1)
            .ok_or_else(|| bad("the sequence number is a whole number from 1"))?;
        let (acked, message) = number_word(rest)
            .filter(|&(acked, _)| acked < seq)
            .ok_or_else(|| bad("acked is a whole number below the sequence number"))?;
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

    /// Where the message starts in `argument`, the text this tag was parsed
    /// from (`<client> <seq> <acked> <message>`, as
    /// [`crate::Request::parse_passing_on`] keeps it): the words' lengths
    /// are those of the tag's parts, unless a number came with leading
    /// zeros, and then the words are scanned.
    pub fn message_at(&self, argument: &str) -> usize {
        let bytes = argument.as_bytes();
        let mut at = self.client.as_str().len() + 1;
        for n in [self.seq, self.acked] {
            let digits = decimal_digits(n);
            // A number's word is digits only: a space right after as many
            // as the number has is its end.
            if bytes.get(at + digits) == Some(&b' ') {
                at += digits + 1;
            } else {
                while bytes.get(at).is_some_and(|&byte| byte != b' ') {
                    at += 1;
                }
                at = (at + 1).min(bytes.len());
            }
        }
        at
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
    match number_word(text)? {
        (n, "") if !text.ends_with(' ') => Some(n),
        _ => None,
    }
}

/// The [`decimal`] number that `text` starts with, up to its first space
/// or its end, and what follows that space (empty if there is none); read
/// in one pass, as the words of a tag are read once per message.
fn number_word(text: &str) -> Option<(u64, &str)> {
    let bytes = text.as_bytes();
    // A tag's numbers are short and followed by more text: eight bytes are
    // read as one word, and a number of up to seven digits found and
    // converted in a few operations on it, not one loop turn per digit.
    if let Some(&chunk) = bytes.first_chunk::<8>() {
        // Digits become their values 0..=9; any other byte, something else.
        let values = u64::from_le_bytes(chunk) ^ 0x3030_3030_3030_3030;
        let digits = digits_in(values);
        if digits < 8 {
            if digits == 0 || bytes[digits] != b' ' {
                return None;
            }
            // The digits to the top of the word, zeros (leading zeros) below.
            let n = eight_digits(values << (64 - 8 * digits));
            return Some((n, &text[digits + 1..]));
        }
    }
    let mut n: u64 = 0;
    let mut digits = 0;
    // Nineteen digits never overflow a u64: no check per digit.
    let unchecked = bytes.len().min(19);
    while digits < unchecked {
        let digit = bytes[digits].wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        n = n * 10 + u64::from(digit);
        digits += 1;
    }
    if let Some(digit) = bytes.get(19).filter(|_| digits == 19) {
        // The twentieth, which may.
        let digit = digit.wrapping_sub(b'0');
        if digit <= 9 {
            n = n.checked_mul(10)?.checked_add(u64::from(digit))?;
            digits += 1;
        }
    }
    match bytes.get(digits) {
        _ if digits == 0 => None,
        None => Some((n, "")),
        Some(b' ') => Some((n, &text[digits + 1..])),
        Some(_) => None,
    }
}

/// How many of the eight bytes of `values` (the first byte the lowest),
/// from the first, are digit values (0 to 9): the high bit of each byte is
/// set in `mask` where that byte is above 9, for the first such byte at
/// least. A byte above 9 either has its own high bit or gets it from the
/// addition of 0x76; the bytes below the first such one are at most 9, so
/// no carry reaches it (carries reach only the bytes above, not read).
fn digits_in(values: u64) -> usize {
    let mask = (values | values.wrapping_add(0x7676_7676_7676_7676)) & 0x8080_8080_8080_8080;
    (mask.trailing_zeros() / 8) as usize
}

/// The number whose eight decimal digits are the bytes of `values`, the
/// first (most significant) in the lowest byte: pairs of digits, then
/// pairs of pairs, then the two halves, each step one multiplication of
/// the whole word (no lane overflows into the next: 99, 9 999 and then
/// 99 999 999 fit their 8, 16 and 32 bits).
fn eight_digits(values: u64) -> u64 {
    let pairs = (values * 10 + (values >> 8)) & 0x00FF_00FF_00FF_00FF;
    let quads = (pairs * 100 + (pairs >> 16)) & 0x0000_FFFF_0000_FFFF;
    (quads * 10_000 + (quads >> 32)) & 0xFFFF_FFFF
}

/// How many digits `n` is written with: from its bit length, the few
/// operations of the classic estimate (`std`'s `ilog10` doubled what
/// [`Tag::message_at`] costs).
fn decimal_digits(n: u64) -> usize {
    const POWERS: [u64; 20] = {
        let mut powers = [1u64; 20];
        let mut at = 1;
        while at < 20 {
            powers[at] = powers[at - 1] * 10;
            at += 1;
        }
        powers
    };
    // log10(2) is about 1233 / 4096: at most one below the digits' count.
    let estimate = (((64 - (n | 1).leading_zeros()) * 1233) >> 12) as usize;
    estimate + usize::from((n | 1) >= POWERS[estimate])
}

/// `text` up to its first space, and what follows that space (empty if
/// there is none).
fn first_word(text: &str) -> (&str, &str) {
    match memchr::memchr(b' ', text.as_bytes()) {
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
    fn decimal_digits_are_counted_at_every_power_of_ten() {
        assert_eq!(decimal_digits(0), 1);
        let mut power = 1u64;
        for digits in 1..=20 {
            assert_eq!(decimal_digits(power), digits, "{power}");
            assert_eq!(
                decimal_digits(power - 1),
                (digits - 1).max(1),
                "{}",
                power - 1
            );
            power = power.saturating_mul(10);
        }
        assert_eq!(decimal_digits(u64::MAX), 20);
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
        for argument in [
            "c0ffee 12 9 Hola mundo",
            "c 1 0  two  spaces ",
            "c 0012 011 x",
            "c 10 0 9",
            "c 100 99 1 2",
        ] {
            let (tag, message) = parse(argument).unwrap();
            assert_eq!(&argument[tag.message_at(argument)..], message, "{argument}");
        }
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
        assert!(Arc::ptr_eq(&a.client.text, &b.client.text));
        assert_eq!(a.client, b.client);
        assert_ne!(b.client, c.client);
        assert_eq!(a.client, ClientId::new("c1").unwrap(), "equal by text");
        assert!(ids.get("bad/id").is_none());
        assert_eq!(ids.get("c2"), Some(c.client), "a bad id does not evict");
    }

    #[test]
    fn interleaved_client_ids_are_shared_too() {
        let mut ids = ClientIds::default();
        let a = ids.get("aaaa").unwrap();
        let b = ids.get("bbbb").unwrap();
        let a2 = ids.get("aaaa").unwrap();
        assert!(Arc::ptr_eq(&a.text, &a2.text), "from the cache");
        assert!(!Arc::ptr_eq(&a.text, &b.text));
        // Every slot taken many times over: still right, still bounded.
        for n in 0..10 * ID_CACHE_SLOTS {
            let text = format!("c{n}");
            assert_eq!(ids.get(&text).unwrap().as_str(), text);
        }
        assert_eq!(ids.get("aaaa"), Some(a));
        let (tag, rest) = Tag::parse_argument_with(Some("aaaa 3 1 x"), &mut ids).unwrap();
        assert_eq!(
            (tag.client.as_str(), tag.seq, tag.acked, rest),
            ("aaaa", 3, 1, "x")
        );
        let (tag, _) = Tag::parse_argument_with(Some("aaaab 3 1 x"), &mut ids).unwrap();
        assert_eq!(
            tag.client.as_str(),
            "aaaab",
            "a longer id is not the last one"
        );
    }

    #[test]
    fn decimals_are_digits_only_and_at_most_twenty() {
        assert_eq!(decimal("0"), Some(0));
        assert_eq!(decimal("007"), Some(7));
        assert_eq!(decimal("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            " ",
            "1 ",
            " 1",
            "1 2",
            "18446744073709551616",
            "000000000000000000001",
            "1a",
            "+1",
        ] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
        assert_eq!(number_word("12 rest"), Some((12, "rest")));
        assert_eq!(number_word("12"), Some((12, "")));
        assert_eq!(number_word(" 12"), None);
    }

    /// What `number_word` must return, the slow way.
    fn number_word_by_str(text: &str) -> Option<(u64, &str)> {
        let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
        let digits =
            !word.is_empty() && word.len() <= 20 && word.bytes().all(|b| b.is_ascii_digit());
        Some((word.parse().ok().filter(|_| digits)?, rest))
    }

    proptest::proptest! {
        /// The word-at-a-time path and the byte loop agree with `str::parse`
        /// on every length, digit or not, around the eight-byte word.
        #[test]
        fn number_words_parse_as_str_parse(text in "[0-9]{0,22}[ 0-9a/:\\xe9]{0,12}") {
            proptest::prop_assert_eq!(number_word(&text), number_word_by_str(&text));
        }
    }

    #[test]
    fn number_words_of_every_length_up_to_twenty() {
        for digits in 1..=20 {
            let n = "9".repeat(digits);
            for tail in ["", " ", " rest", "x", "/ a"] {
                let text = format!("{n}{tail}");
                assert_eq!(number_word(&text), number_word_by_str(&text), "{text:?}");
            }
        }
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

//! The headnode-datanode link, in the forms the headnode's hot path needs.
//!
//! A link is a connection whose first frame is `REGISTER <name>`
//! ([`is_register`] tells, before the frame is parsed). After the
//! headnode's `OK <name>`, the headnode sends `STORE <message>` and `PING`
//! requests, pipelined, and the datanode answers each in order with
//! `OK <sentence>`, `ERR <code> <reason>` or `PONG`.
//!
//! These are the same bytes as [`Request`] and [`Reply`] write and parse;
//! the forms here only avoid copies, because the headnode handles every
//! message twice on its links: [`encode_store`] frames a `STORE` straight
//! from the message the headnode keeps (no `Request` holding a copy), and
//! [`LinkReply`] keeps an `OK`'s sentence as the bytes of the frame it came
//! in (no `String` per reply). Tests below check both against the general
//! forms, byte for byte.
//!
//! Section 9 of `docs/PROTOCOL.md` specifies the link.

use std::{fmt, net::SocketAddrV4};

use bytes::{BufMut, Bytes, BytesMut};

use crate::{
    auth::{from_hex, to_hex, ClusterKey, NONCE_LEN},
    encode_frame_with, ErrorReply, Reply, Request, Tag,
};

/// Whether a frame's verb is `REGISTER` (in any case), valid or not: the
/// headnode's test of a connection's role, made on its first frame.
pub fn is_register(payload: &[u8]) -> bool {
    let verb = payload.split(|&b| b == b' ').next().unwrap_or_default();
    verb.eq_ignore_ascii_case(b"REGISTER")
}

/// The text of the headnode's `OK` to `REGISTER <name>`: the name, and in
/// multicast heartbeat mode the group the datanode must answer probes on,
/// `<name> MULTICAST <group>`.
pub fn registered(name: &str, group: Option<SocketAddrV4>) -> String {
    match group {
        Some(group) => format!("{name} MULTICAST {group}"),
        None => name.to_owned(),
    }
}

/// The name and heartbeat group in an `OK` to `REGISTER` ([`registered`]).
/// The group is `None` with TCP heartbeats, and also when the text after
/// the name is not understood: an older or newer headnode still works with
/// TCP heartbeats' rules.
pub fn parse_registered(text: &str) -> (&str, Option<SocketAddrV4>) {
    match text.split_once(' ') {
        Some((name, rest)) => {
            let group = rest
                .strip_prefix("MULTICAST ")
                .and_then(|group| group.parse().ok());
            (name, group)
        }
        None => (text, None),
    }
}

/// The headnode's answer to `REGISTER <name>` when it has a cluster
/// secret: `CHALLENGE <nonce>`, the nonce as 32 hex digits. The datanode
/// must answer [`proof`] (see [`crate::auth`]).
pub fn challenge(nonce: &[u8; NONCE_LEN]) -> String {
    format!("CHALLENGE {}", to_hex(nonce))
}

/// The nonce of a [`challenge`] frame's payload, if it is one.
pub fn parse_challenge(payload: &[u8]) -> Option<[u8; NONCE_LEN]> {
    let text = std::str::from_utf8(payload).ok()?;
    from_hex(text.strip_prefix("CHALLENGE ")?)
}

/// The text whose tag proves the secret at registration:
/// `REGISTER <name> <nonce>`. It binds the proof to the name and to this
/// one challenge.
pub fn proof_text(name: &str, nonce: &[u8; NONCE_LEN]) -> String {
    format!("REGISTER {name} {}", to_hex(nonce))
}

/// The datanode's answer to a [`challenge`]: `PROOF <tag>`, the tag of
/// [`proof_text`].
pub fn proof(key: &ClusterKey, name: &str, nonce: &[u8; NONCE_LEN]) -> String {
    format!("PROOF {}", key.tag(&proof_text(name, nonce)))
}

/// Whether `payload` is the [`proof`] of `name` for `nonce`: `PROOF ` and
/// the right tag, nothing more, compared in constant time.
pub fn is_proof(key: &ClusterKey, name: &str, nonce: &[u8; NONCE_LEN], payload: &[u8]) -> bool {
    let tag = std::str::from_utf8(payload)
        .ok()
        .and_then(|text| text.strip_prefix("PROOF "));
    tag.is_some_and(|tag| key.verify(&proof_text(name, nonce), tag))
}

/// Appends the frame of `STORE <message>` to `out`: the bytes of
/// `Request::Store(message)`, without copying the message into a request.
pub fn encode_store(out: &mut BytesMut, message: &str) {
    encode_frame_with(out, |dst| {
        dst.put_slice(b"STORE ");
        dst.put_slice(message.as_bytes());
    });
}

/// Appends the frame of `STOREID <tag> <message>` to `out`: the bytes of
/// `Request::StoreTagged`, without copying the message.
pub fn encode_store_tagged(out: &mut BytesMut, tag: &Tag, message: &str) {
    encode_frame_with(out, |dst| {
        dst.put_slice(b"STOREID ");
        tag.write_prefix(dst);
        dst.put_slice(message.as_bytes());
    });
}

/// Appends the frame of `STOREID <argument>` to `out`, `argument` being a
/// `SENDID`'s as it came (`<client> <seq> <acked> <message>`, see
/// [`Request::parse_passing_on`]): the same bytes as
/// [`encode_store_tagged`] of its tag and message, with the tag copied
/// instead of written again.
pub fn encode_store_passed_on(out: &mut BytesMut, argument: &str) {
    encode_frame_with(out, |dst| {
        dst.put_slice(b"STOREID ");
        dst.put_slice(argument.as_bytes());
    });
}

/// Appends the frame of `PING` to `out`.
pub fn encode_ping(out: &mut BytesMut) {
    encode_frame_with(out, |dst| Request::Ping.write_payload(dst));
}

/// A datanode's reply on its link.
///
/// Unlike [`Reply`], an `OK` keeps its sentence as the bytes of the frame it
/// came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkReply {
    /// `OK <sentence>`.
    Ok(Sentence),
    /// `PONG`.
    Pong,
    /// `ERR <code> <reason>`.
    Err(ErrorReply),
}

impl LinkReply {
    /// Parses a reply frame's payload, as [`Reply::parse`] does; `None` if
    /// it is not a reply.
    pub fn parse(payload: &Bytes) -> Option<LinkReply> {
        match &payload[..] {
            b"PONG" => Some(LinkReply::Pong),
            b"OK" => Some(LinkReply::Ok(Sentence::default())),
            [b'O', b'K', b' ', ..] => Sentence::new(payload.slice(3..)).map(LinkReply::Ok),
            _ => match Reply::parse(payload)? {
                Reply::Err(err) => Some(LinkReply::Err(err)),
                // Not reached: the cases above took every OK and PONG.
                other => Some(other.into()),
            },
        }
    }
}

impl From<Reply> for LinkReply {
    fn from(reply: Reply) -> Self {
        match reply {
            Reply::Ok(sentence) => LinkReply::Ok(sentence.into()),
            Reply::Pong => LinkReply::Pong,
            Reply::Err(err) => LinkReply::Err(err),
        }
    }
}

impl fmt::Display for LinkReply {
    /// The reply as it appears on the wire.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkReply::Ok(sentence) if sentence.is_empty() => f.write_str("OK"),
            LinkReply::Ok(sentence) => write!(f, "OK {sentence}"),
            LinkReply::Pong => f.write_str("PONG"),
            LinkReply::Err(err) => write!(f, "{err}"),
        }
    }
}

/// The text of an `OK` reply: UTF-8 bytes shared with the frame they were
/// read in.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Sentence(Bytes);

impl Sentence {
    /// The sentence in `bytes`, if they are UTF-8.
    pub fn new(bytes: Bytes) -> Option<Sentence> {
        std::str::from_utf8(&bytes).ok()?;
        Some(Sentence(bytes))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Checked by every constructor; checking again is cheaper than a
        // copy and needs no unsafe code.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Whether the sentence is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Sentence {
    fn from(text: String) -> Self {
        Sentence(Bytes::from(text))
    }
}

impl PartialEq<String> for Sentence {
    fn eq(&self, other: &String) -> bool {
        self.0 == other.as_bytes()
    }
}

impl fmt::Display for Sentence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Sentence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(request: &Request) -> BytesMut {
        let mut out = BytesMut::new();
        encode_frame_with(&mut out, |dst| request.write_payload(dst));
        out
    }

    #[test]
    fn store_and_ping_frames_are_those_of_the_requests() {
        for message in ["Hola", "two\nlines", "Adiós", " spaced "] {
            let mut ours = BytesMut::new();
            encode_store(&mut ours, message);
            assert_eq!(ours, framed(&Request::Store(message.to_owned())));
        }
        let tag = Tag {
            client: crate::ClientId::new("c1").unwrap(),
            seq: 12,
            acked: 10,
        };
        let mut passed_on = BytesMut::new();
        encode_store_passed_on(&mut passed_on, "c1 12 10 Adiós");
        let mut tagged = BytesMut::new();
        encode_store_tagged(&mut tagged, &tag, "Adiós");
        assert_eq!(
            passed_on, tagged,
            "a SENDID's argument copied is its STOREID"
        );
        assert_eq!(
            tagged,
            framed(&Request::StoreTagged(tag, "Adiós".to_owned()))
        );
        let mut ping = BytesMut::new();
        encode_ping(&mut ping);
        assert_eq!(ping, framed(&Request::Ping));
    }

    #[test]
    fn link_replies_parse_as_replies_do() {
        let payloads: [&[u8]; 13] = [
            b"PONG",
            b"PONG ",
            b"OK",
            b"OK ",
            b"OK El dn1 ha registrado satisfactoriamente el mensaje: 'Adi\xc3\xb3s'.",
            b"OKAY",
            b"OK \xff",
            b"ERR STORAGE disk full",
            b"ERR UNAVAILABLE",
            b"ERR NOPE x",
            b"ERR",
            b"",
            b"\xff",
        ];
        for payload in payloads {
            let ours = LinkReply::parse(&Bytes::copy_from_slice(payload));
            let theirs = Reply::parse(payload).map(LinkReply::from);
            assert_eq!(ours, theirs, "{payload:?}");
        }
        let sentence = LinkReply::parse(&Bytes::from_static(b"OK Adi\xc3\xb3s"));
        assert_eq!(sentence.unwrap().to_string(), "OK Adiós");
    }

    #[test]
    fn registration_answers_carry_the_group_in_multicast_mode() {
        let group: SocketAddrV4 = "239.255.43.1:10010".parse().unwrap();
        let text = registered("dn1", Some(group));
        assert_eq!(text, "dn1 MULTICAST 239.255.43.1:10010");
        assert_eq!(parse_registered(&text), ("dn1", Some(group)));
        assert_eq!(parse_registered(&registered("dn1", None)), ("dn1", None));
        assert_eq!(parse_registered("dn1 SOMETHING else"), ("dn1", None));
    }

    #[test]
    fn a_challenge_is_answered_by_the_proof_of_that_name_and_nonce_only() {
        let key = crate::auth::tests::example_key();
        let nonce: [u8; NONCE_LEN] =
            *b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff";
        let text = challenge(&nonce);
        assert_eq!(text, "CHALLENGE 00112233445566778899aabbccddeeff");
        assert_eq!(parse_challenge(text.as_bytes()), Some(nonce));
        assert_eq!(parse_challenge(b"CHALLENGE 0011"), None);
        assert_eq!(parse_challenge(b"OK dn1"), None);
        let answer = proof(&key, "datanode1", &nonce);
        // The example of docs/PROTOCOL.md, section 11.
        assert_eq!(
            answer,
            "PROOF 8507746076221da78808ad3718343fbd04658fd1381d4793d4272decc272970f"
        );
        assert!(is_proof(&key, "datanode1", &nonce, answer.as_bytes()));
        let mut other = nonce;
        other[0] = 1;
        assert!(!is_proof(&key, "datanode1", &other, answer.as_bytes()));
        assert!(!is_proof(&key, "datanode2", &nonce, answer.as_bytes()));
        assert!(!is_proof(
            &key,
            "datanode1",
            &nonce,
            format!("{answer} ").as_bytes()
        ));
        assert!(!is_proof(&key, "datanode1", &nonce, b"PROOF "));
        assert!(!is_proof(&key, "datanode1", &nonce, b"\xff"));
    }

    #[test]
    fn register_is_recognised_whatever_its_case_or_argument() {
        assert!(is_register(b"REGISTER dn1"));
        assert!(is_register(b"register ../bad"));
        assert!(is_register(b"Register"));
        assert!(!is_register(b"SEND REGISTER dn1"));
        assert!(!is_register(b"REGISTERED x"));
        assert!(!is_register(b""));
    }
}

//! Commands and replies: the text inside a frame.
//!
//! A request is a verb, optionally followed by one space and an argument that
//! runs to the end of the frame, verbatim (it may hold spaces, newlines,
//! anything but invalid UTF-8). Verbs are matched without regard to case.
//!
//! | verb       | sent by            | to                 | answered by                |
//! |------------|--------------------|--------------------|----------------------------|
//! | `SEND m`   | client             | server, headnode   | `OK <sentence>` or `ERR`   |
//! | `PING`     | anyone             | anyone             | `PONG`                     |
//! | `REGISTER n` | datanode         | headnode           | `OK <n>` or `ERR`          |
//! | `STORE m`  | headnode           | datanode           | `OK <sentence>` or `ERR`   |
//! | `SENDID c s a m` | client       | server, headnode   | as `SEND`, once per id     |
//! | `STOREID c s a m` | headnode    | datanode           | as `STORE`, once per id    |
//!
//! Replies come back in the order of the requests, so a peer may pipeline.
//! A reply is `OK` with an optional text, `PONG`, or `ERR <CODE> <reason>`,
//! where the code is one of [`ErrorCode`] and the reason is for people.

use std::fmt;

use bytes::{BufMut, BytesMut};

use crate::id::{ClientIds, Tag, SEND_TAGGED, STORE_TAGGED};

/// Longest name a datanode may register with, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// A request, as parsed from one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Store a message (client to server or headnode).
    Send(String),
    /// Liveness probe; answered with `PONG`.
    Ping,
    /// A datanode announces itself to the headnode under a name.
    Register(String),
    /// The headnode asks a datanode to store a message.
    Store(String),
    /// `SENDID`: a message with its id, to be stored once however often
    /// it is sent ([`crate::id`]).
    SendTagged(Tag, String),
    /// `STOREID`: the headnode passes a tagged message on to a datanode.
    StoreTagged(Tag, String),
}

impl Request {
    /// Parses the payload of one frame.
    ///
    /// Every way a payload can be wrong maps to an [`ErrorReply`] that can be
    /// sent back as is: a bad request never needs to close a connection.
    pub fn parse(payload: &[u8]) -> Result<Request, ErrorReply> {
        Request::parse_with(payload, &mut ClientIds::default())
    }

    /// [`Request::parse`], taking tagged messages' client ids from `ids`
    /// (one per connection: no allocation per message for the id).
    pub fn parse_with(payload: &[u8], ids: &mut ClientIds) -> Result<Request, ErrorReply> {
        Request::parse_keeping::<false>(payload, ids)
    }

    /// [`Request::parse_with`] for a node that passes tagged messages on
    /// (the headnode, each `SENDID` as a `STOREID`): the `String` of
    /// [`Request::SendTagged`] and [`Request::StoreTagged`] is then their
    /// whole argument, `<client> <seq> <acked> <message>`, as it came, so
    /// that it is copied on instead of the tag being written again
    /// ([`crate::link::encode_store_passed_on`]); its message starts at
    /// [`Tag::message_at`].
    pub fn parse_passing_on(payload: &[u8], ids: &mut ClientIds) -> Result<Request, ErrorReply> {
        Request::parse_keeping::<true>(payload, ids)
    }

    /// Both, chosen at compile time: the one a node uses carries no test
    /// of the other.
    fn parse_keeping<const WHOLE_TAGGED: bool>(
        payload: &[u8],
        ids: &mut ClientIds,
    ) -> Result<Request, ErrorReply> {
        let text = std::str::from_utf8(payload).map_err(|err| {
            ErrorReply::new(
                ErrorCode::BadUtf8,
                format!("request is not valid UTF-8 (at byte {})", err.valid_up_to()),
            )
        })?;
        let (verb, argument) = match text.split_once(' ') {
            Some((verb, argument)) => (verb, Some(argument)),
            None => (text, None),
        };
        if verb.eq_ignore_ascii_case("SEND") {
            message_argument(argument).map(Request::Send)
        } else if verb.eq_ignore_ascii_case("PING") {
            match argument {
                None => Ok(Request::Ping),
                Some(_) => Err(ErrorReply::new(
                    ErrorCode::BadArgument,
                    "PING takes no argument",
                )),
            }
        } else if verb.eq_ignore_ascii_case("REGISTER") {
            name_argument(argument).map(Request::Register)
        } else if verb.eq_ignore_ascii_case("STORE") {
            message_argument(argument).map(Request::Store)
        } else if verb.eq_ignore_ascii_case(SEND_TAGGED) {
            let (tag, text) = tagged_argument(argument, ids, WHOLE_TAGGED)?;
            Ok(Request::SendTagged(tag, text))
        } else if verb.eq_ignore_ascii_case(STORE_TAGGED) {
            let (tag, text) = tagged_argument(argument, ids, WHOLE_TAGGED)?;
            Ok(Request::StoreTagged(tag, text))
        } else if verb.is_empty() {
            Err(ErrorReply::new(ErrorCode::UnknownCommand, "empty request"))
        } else {
            Err(ErrorReply::new(
                ErrorCode::UnknownCommand,
                format!("unknown command '{}'", truncate(verb, 32)),
            ))
        }
    }

    /// Appends the text of this request (the frame payload) to `dst`.
    pub fn write_payload(&self, dst: &mut BytesMut) {
        let (verb, tag, argument) = match self {
            Request::Send(message) => ("SEND", None, Some(message)),
            Request::Ping => ("PING", None, None),
            Request::Register(name) => ("REGISTER", None, Some(name)),
            Request::Store(message) => ("STORE", None, Some(message)),
            Request::SendTagged(tag, message) => (SEND_TAGGED, Some(tag), Some(message)),
            Request::StoreTagged(tag, message) => (STORE_TAGGED, Some(tag), Some(message)),
        };
        dst.put_slice(verb.as_bytes());
        if let Some(argument) = argument {
            dst.put_u8(b' ');
            if let Some(tag) = tag {
                tag.write_prefix(dst);
            }
            dst.put_slice(argument.as_bytes());
        }
    }

    /// The text of this request, ready to be framed.
    pub fn to_payload(&self) -> BytesMut {
        let mut dst = BytesMut::new();
        self.write_payload(&mut dst);
        dst
    }
}

/// A tagged request's tag, and its message (or, if `whole`, the whole
/// argument).
fn tagged_argument(
    argument: Option<&str>,
    ids: &mut ClientIds,
    whole: bool,
) -> Result<(Tag, String), ErrorReply> {
    let (tag, message) = Tag::parse_argument_with(argument, ids)?;
    let text = match argument {
        Some(argument) if whole => argument,
        _ => message,
    };
    Ok((tag, text.to_owned()))
}

fn message_argument(argument: Option<&str>) -> Result<String, ErrorReply> {
    match argument {
        Some(message) if !message.trim().is_empty() => Ok(message.to_owned()),
        _ => Err(ErrorReply::new(
            ErrorCode::EmptyMessage,
            "the message is empty",
        )),
    }
}

fn name_argument(argument: Option<&str>) -> Result<String, ErrorReply> {
    let name = argument.unwrap_or("");
    if is_valid_name(name) {
        Ok(name.to_owned())
    } else {
        Err(ErrorReply::new(
            ErrorCode::BadArgument,
            format!("a node name is 1 to {MAX_NAME_LEN} characters from A-Z a-z 0-9 . _ -"),
        ))
    }
}

/// Whether `name` is acceptable as a datanode name.
///
/// Names end up inside log sentences and file paths, so they are kept to a
/// conservative alphabet.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn truncate(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// A reply, as parsed from one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Success, with a sentence for people (possibly empty).
    Ok(String),
    /// Answer to `PING`.
    Pong,
    /// Failure.
    Err(ErrorReply),
}

impl Reply {
    /// Parses the payload of one reply frame. `None` if it is not a reply.
    pub fn parse(payload: &[u8]) -> Option<Reply> {
        let text = std::str::from_utf8(payload).ok()?;
        if text == "PONG" {
            return Some(Reply::Pong);
        }
        if text == "OK" {
            return Some(Reply::Ok(String::new()));
        }
        if let Some(sentence) = text.strip_prefix("OK ") {
            return Some(Reply::Ok(sentence.to_owned()));
        }
        let rest = text.strip_prefix("ERR ")?;
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        Some(Reply::Err(ErrorReply::new(
            ErrorCode::from_wire(code)?,
            reason,
        )))
    }

    /// Appends the text of this reply (the frame payload) to `dst`.
    pub fn write_payload(&self, dst: &mut BytesMut) {
        match self {
            Reply::Ok(sentence) if sentence.is_empty() => dst.put_slice(b"OK"),
            Reply::Ok(sentence) => {
                dst.put_slice(b"OK ");
                dst.put_slice(sentence.as_bytes());
            }
            Reply::Pong => dst.put_slice(b"PONG"),
            Reply::Err(err) => err.write_payload(dst),
        }
    }

    /// The text of this reply, ready to be framed.
    pub fn to_payload(&self) -> BytesMut {
        let mut dst = BytesMut::new();
        self.write_payload(&mut dst);
        dst
    }
}

impl fmt::Display for Reply {
    /// The reply as it appears on the wire; this is what clients log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Ok(sentence) if sentence.is_empty() => f.write_str("OK"),
            Reply::Ok(sentence) => write!(f, "OK {sentence}"),
            Reply::Pong => f.write_str("PONG"),
            Reply::Err(err) => write!(f, "{err}"),
        }
    }
}

/// What went wrong, as a stable code a program can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The frame is larger than the node's maximum; its payload was skipped.
    TooLarge,
    /// The payload is not valid UTF-8.
    BadUtf8,
    /// The verb is not one of the protocol's, or the request is empty.
    UnknownCommand,
    /// `SEND` or `STORE` without a message, or with only whitespace.
    EmptyMessage,
    /// The argument is malformed (a bad node name, an argument to `PING`).
    BadArgument,
    /// The command is valid but not on this connection (a client sending
    /// `STORE`, a datanode sending `SEND`, `REGISTER` to the server).
    WrongRole,
    /// `REGISTER` with a name that a live datanode already holds.
    NameTaken,
    /// No datanode could store the message within the time allowed.
    Unavailable,
    /// A datanode's proof of the cluster secret is missing or wrong.
    AuthFailed,
    /// The node could not write its log file.
    Storage,
    /// The node is shutting down and takes no new work.
    ShuttingDown,
    /// The byte stream is no longer a stream of frames; the node closes the
    /// connection after this reply.
    Framing,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::TooLarge,
        ErrorCode::BadUtf8,
        ErrorCode::UnknownCommand,
        ErrorCode::EmptyMessage,
        ErrorCode::BadArgument,
        ErrorCode::WrongRole,
        ErrorCode::NameTaken,
        ErrorCode::Unavailable,
        ErrorCode::AuthFailed,
        ErrorCode::Storage,
        ErrorCode::ShuttingDown,
        ErrorCode::Framing,
    ];

    /// The code as written on the wire.
    pub fn as_wire(self) -> &'static str {
        match self {
            ErrorCode::TooLarge => "TOO_LARGE",
            ErrorCode::BadUtf8 => "BAD_UTF8",
            ErrorCode::UnknownCommand => "UNKNOWN_COMMAND",
            ErrorCode::EmptyMessage => "EMPTY_MESSAGE",
            ErrorCode::BadArgument => "BAD_ARGUMENT",
            ErrorCode::WrongRole => "WRONG_ROLE",
            ErrorCode::NameTaken => "NAME_TAKEN",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::AuthFailed => "AUTH_FAILED",
            ErrorCode::Storage => "STORAGE",
            ErrorCode::ShuttingDown => "SHUTTING_DOWN",
            ErrorCode::Framing => "FRAMING",
        }
    }

    /// Parses a code as written on the wire.
    pub fn from_wire(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_wire() == code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_wire())
    }
}

/// An `ERR` reply: a code and a reason for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// The stable code.
    pub code: ErrorCode,
    /// Human-readable detail; never relied on by programs.
    pub reason: String,
}

impl ErrorReply {
    /// An error reply with the given code and reason.
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        ErrorReply {
            code,
            reason: reason.into(),
        }
    }

    /// The reply to a frame over the maximum.
    pub fn too_large(len: usize, max: usize) -> Self {
        ErrorReply::new(
            ErrorCode::TooLarge,
            format!("frame of {len} bytes exceeds the maximum of {max} bytes"),
        )
    }

    /// The reply to a frame header declaring `len` bytes, beyond any frame
    /// (see [`crate::FrameError::FramingLost`]); the connection closes
    /// after it.
    pub fn framing_lost(len: usize) -> Self {
        ErrorReply::new(
            ErrorCode::Framing,
            format!(
                "a frame header declares {len} bytes: this is not a stream of \
                 length-prefixed frames; closing"
            ),
        )
    }

    /// Appends `ERR <CODE> <reason>` to `dst`.
    pub fn write_payload(&self, dst: &mut BytesMut) {
        dst.put_slice(b"ERR ");
        dst.put_slice(self.code.as_wire().as_bytes());
        if !self.reason.is_empty() {
            dst.put_u8(b' ');
            dst.put_slice(self.reason.as_bytes());
        }
    }
}

impl fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "ERR {}", self.code)
        } else {
            write!(f, "ERR {} {}", self.code, self.reason)
        }
    }
}

impl std::error::Error for ErrorReply {}

impl From<ErrorReply> for Reply {
    fn from(err: ErrorReply) -> Self {
        Reply::Err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(payload: &[u8]) -> ErrorCode {
        Request::parse(payload).unwrap_err().code
    }

    #[test]
    fn parses_every_verb() {
        assert_eq!(
            Request::parse(b"SEND Hola").unwrap(),
            Request::Send("Hola".into())
        );
        assert_eq!(Request::parse(b"PING").unwrap(), Request::Ping);
        assert_eq!(
            Request::parse(b"REGISTER datanode1").unwrap(),
            Request::Register("datanode1".into())
        );
        assert_eq!(
            Request::parse(b"STORE Adi\xc3\xb3s").unwrap(),
            Request::Store("Adiós".into())
        );
    }

    #[test]
    fn verbs_ignore_case_and_arguments_are_verbatim() {
        assert_eq!(
            Request::parse(b"send  two  spaces \nand a newline").unwrap(),
            Request::Send(" two  spaces \nand a newline".into())
        );
        assert_eq!(Request::parse(b"ping").unwrap(), Request::Ping);
    }

    #[test]
    fn bad_requests_get_their_codes() {
        assert_eq!(code_of(b"SEND \xff\xfe"), ErrorCode::BadUtf8);
        assert_eq!(code_of(b"FETCH x"), ErrorCode::UnknownCommand);
        assert_eq!(code_of(b""), ErrorCode::UnknownCommand);
        assert_eq!(code_of(b"SEND"), ErrorCode::EmptyMessage);
        assert_eq!(code_of(b"SEND "), ErrorCode::EmptyMessage);
        assert_eq!(code_of(b"SEND \t \n"), ErrorCode::EmptyMessage);
        assert_eq!(code_of(b"STORE"), ErrorCode::EmptyMessage);
        assert_eq!(code_of(b"PING x"), ErrorCode::BadArgument);
        assert_eq!(code_of(b"REGISTER"), ErrorCode::BadArgument);
        assert_eq!(code_of(b"REGISTER a b"), ErrorCode::BadArgument);
        assert_eq!(code_of(b"REGISTER ../etc"), ErrorCode::BadArgument);
        let long = format!("REGISTER {}", "n".repeat(MAX_NAME_LEN + 1));
        assert_eq!(code_of(long.as_bytes()), ErrorCode::BadArgument);
    }

    #[test]
    fn an_unknown_verb_is_quoted_but_truncated() {
        let err = Request::parse("X".repeat(1000).as_bytes()).unwrap_err();
        assert!(err.reason.len() < 64, "{}", err.reason);
    }

    fn tag() -> Tag {
        let client = crate::id::ClientId::new("c0ffee").unwrap();
        Tag {
            client,
            seq: 7,
            acked: 3,
        }
    }

    #[test]
    fn requests_round_trip() {
        for request in [
            Request::Send("Mensaje de prueba".into()),
            Request::Ping,
            Request::Register("datanode-2".into()),
            Request::Store("a\nb".into()),
            Request::SendTagged(tag(), "Hola mundo".into()),
            Request::StoreTagged(tag(), " spaced ".into()),
        ] {
            assert_eq!(Request::parse(&request.to_payload()).unwrap(), request);
        }
    }

    #[test]
    fn passing_on_keeps_a_tagged_argument_whole() {
        let mut ids = ClientIds::default();
        let whole = |payload: &[u8], ids: &mut ClientIds| Request::parse_passing_on(payload, ids);
        assert_eq!(
            whole(b"SENDID c0ffee 7 3 Hola mundo", &mut ids),
            Ok(Request::SendTagged(tag(), "c0ffee 7 3 Hola mundo".into()))
        );
        assert_eq!(
            whole(b"STOREID c0ffee 7 3  spaced ", &mut ids),
            Ok(Request::StoreTagged(tag(), "c0ffee 7 3  spaced ".into()))
        );
        // Everything else as parse_with reads it, errors included.
        for payload in [
            &b"SEND Hola"[..],
            b"SENDID c0ffee 7 7 x",
            b"SENDID c0ffee 7 3 ",
            b"PING",
        ] {
            assert_eq!(
                whole(payload, &mut ids),
                Request::parse_with(payload, &mut ids)
            );
        }
    }

    #[test]
    fn replies_round_trip() {
        for reply in [
            Reply::Ok("El servidor ha recibido satisfactoriamente su mensaje 'Hola'.".into()),
            Reply::Ok(String::new()),
            Reply::Pong,
            Reply::Err(ErrorReply::new(
                ErrorCode::EmptyMessage,
                "the message is empty",
            )),
            Reply::Err(ErrorReply::new(ErrorCode::Storage, "")),
        ] {
            let payload = reply.to_payload();
            assert_eq!(Reply::parse(&payload).unwrap(), reply);
            assert_eq!(reply.to_string().as_bytes(), &payload[..]);
        }
    }

    #[test]
    fn every_error_code_round_trips() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_wire(code.as_wire()), Some(code));
        }
        assert_eq!(Reply::parse(b"ERR NOPE x"), None);
        assert_eq!(Reply::parse(b"HELLO"), None);
    }
}

/// The examples of `docs/PROTOCOL.md` are the bytes this crate encodes.
#[cfg(test)]
mod documented_examples {
    use bytes::BytesMut;

    use super::*;
    use crate::{encode_frame, sentences::server_received, DEFAULT_MAX_FRAME};

    /// A frame as the document shows it: hex bytes, 24 to a line.
    fn hex_lines(payload: &[u8]) -> String {
        let mut frame = BytesMut::new();
        encode_frame(payload, &mut frame).unwrap();
        frame
            .chunks(24)
            .map(|line| {
                line.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn every_documented_frame_is_what_the_encoder_writes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PROTOCOL.md");
        let doc = std::fs::read_to_string(path).expect("docs/PROTOCOL.md exists");
        let ok = |message: &str| Reply::Ok(server_received(message)).to_payload();
        let frames: Vec<(String, BytesMut)> = vec![
            ("PING".into(), Request::Ping.to_payload()),
            ("PONG".into(), Reply::Pong.to_payload()),
            (
                "SEND Adiós".into(),
                Request::Send("Adiós".into()).to_payload(),
            ),
            ("OK 'Adiós'".into(), ok("Adiós")),
            (
                "SEND Hola".into(),
                Request::Send("Hola".into()).to_payload(),
            ),
            ("OK 'Hola'".into(), ok("Hola")),
            (
                "SENDID c0ffee 12 9 Hola".into(),
                Request::parse(b"SENDID c0ffee 12 9 Hola")
                    .unwrap()
                    .to_payload(),
            ),
            (
                "STOREID c0ffee 12 9 Hola".into(),
                Request::parse(b"STOREID c0ffee 12 9 Hola")
                    .unwrap()
                    .to_payload(),
            ),
            (
                "SEND Sistemas".into(),
                Request::Send("Sistemas".into()).to_payload(),
            ),
            ("OK 'Sistemas'".into(), ok("Sistemas")),
            ("FETCH x".into(), BytesMut::from(&b"FETCH x"[..])),
            (
                "ERR UNKNOWN_COMMAND".into(),
                Reply::from(Request::parse(b"FETCH x").unwrap_err()).to_payload(),
            ),
            (
                "ERR TOO_LARGE".into(),
                Reply::from(ErrorReply::too_large(70_000, DEFAULT_MAX_FRAME)).to_payload(),
            ),
        ];
        for (what, payload) in frames {
            let hex = hex_lines(&payload);
            assert!(
                doc.contains(&format!("\n{hex}\n")),
                "docs/PROTOCOL.md lacks the frame of {what}:\n{hex}"
            );
        }
        assert!(doc.contains("\n00 01 11 70\n"), "the 70000-byte header");
    }
}

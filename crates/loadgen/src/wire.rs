//! The two protocols the generator speaks: ours, and Redis's.
//!
//! Every figure of `scripts/bench.sh` compares a server with Redis; if each
//! side were measured by its own generator, part of any ratio would be the
//! generators' (docs/PERFORMANCE.md measured `redis-benchmark` at 14 us of
//! CPU per request where `loadgen` spends 10). With `--protocol resp` the
//! same connections, windows, timing and counting drive Redis: only the
//! bytes of a request and the reading of a reply differ.
//!
//! - [`Protocol::Frames`]: `SEND <message>` in a length-prefixed frame
//!   (docs/PROTOCOL.md); `OK ...` confirms, `ERR <CODE> ...` refuses.
//! - [`Protocol::Resp`]: `RPUSH mylist <message>` as a RESP array of bulk
//!   strings, the command `redis-benchmark -t rpush` sends, to the same key;
//!   the reply `:<n>` (the list's new length) confirms, `-<CODE> ...`
//!   refuses. With `appendonly yes` Redis appends each `RPUSH` to its AOF
//!   before answering, as our server appends each `SEND` to `log.txt`.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use protocol::{Frame, FrameCodec, FrameError};
use tokio_util::codec::Decoder;

/// The list every `RPUSH` appends to: redis-benchmark's key, so that one
/// `DEL mylist` clears what either generator left.
pub const RESP_KEY: &str = "mylist";

/// What a connection of `--tagged` puts in each request: its client id
/// and the message.
#[derive(Debug, Clone)]
pub struct Tagged {
    /// A frame's first bytes, the same in every request: room for the
    /// length, then `SENDID <client> `.
    head: Vec<u8>,
    /// The message sent, every time.
    message: Vec<u8>,
    /// ` <acked> <message>`, the same for every request of one run.
    tail: Vec<u8>,
}

impl Tagged {
    /// The requests of client `client`, each carrying `message`.
    pub fn new(client: &str, message: Vec<u8>) -> Tagged {
        let mut head = vec![0; 4];
        head.extend_from_slice(b"SENDID ");
        head.extend_from_slice(client.as_bytes());
        head.push(b' ');
        Tagged {
            head,
            message,
            tail: Vec::new(),
        }
    }

    /// Appends the frames `SENDID <client> <seq> <acked> <message>` of
    /// every `seq` of `seqs` to `out`.
    pub fn push_run(
        &mut self,
        out: &mut BytesMut,
        seqs: std::ops::RangeInclusive<u64>,
        acked: u64,
    ) {
        // Everything but the number is copied from what was made once per
        // connection (`head`) or per run (`tail`): the generator's cost per
        // request stays near plain SEND's, one copy of a ready request.
        let mut digits = itoa::Buffer::new();
        self.tail.clear();
        self.tail.push(b' ');
        self.tail.extend_from_slice(digits.format(acked).as_bytes());
        self.tail.push(b' ');
        self.tail.extend_from_slice(&self.message);
        for seq in seqs {
            let start = out.len();
            out.extend_from_slice(&self.head);
            out.extend_from_slice(digits.format(seq).as_bytes());
            out.extend_from_slice(&self.tail);
            let len = u32::try_from(out.len() - start - 4).expect("a message under 4 GiB");
            out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        }
    }
}

#[cfg(test)]
#[test]
fn a_tagged_request_is_a_sendid_frame() {
    let mut tagged = Tagged::new("lg-0", b"xxx".to_vec());
    let mut out = BytesMut::new();
    tagged.push_run(&mut out, 12..=13, 9);
    assert_eq!(
        &out[..],
        b"\x00\x00\x00\x14SENDID lg-0 12 9 xxx\x00\x00\x00\x14SENDID lg-0 13 9 xxx"
    );
}

/// Which protocol a run speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// Our length-prefixed frames: `SEND <message>`, answered `OK ...`.
    Frames,
    /// Redis's RESP: `RPUSH mylist <message>`, answered `:<n>`.
    Resp,
}

impl Protocol {
    /// The request every connection sends, encoded once: a message of
    /// `size` bytes of `x`.
    pub fn request(self, size: usize) -> Bytes {
        let message = vec![b'x'; size];
        match self {
            Protocol::Frames => {
                let mut payload = Vec::with_capacity(5 + size);
                payload.extend_from_slice(b"SEND ");
                payload.extend_from_slice(&message);
                let mut frame = BytesMut::new();
                protocol::encode_frame(&payload, &mut frame).expect("a message under 4 GiB");
                frame.freeze()
            }
            Protocol::Resp => {
                let mut request = BytesMut::new();
                request.extend_from_slice(b"*3\r\n");
                for part in [&b"RPUSH"[..], RESP_KEY.as_bytes(), &message] {
                    request.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
                    request.extend_from_slice(part);
                    request.extend_from_slice(b"\r\n");
                }
                request.freeze()
            }
        }
    }

    /// A `PING` request, and the exact bytes of the `PONG` that answers
    /// it: how the idle connections check that the node serves them.
    pub fn ping(self) -> (&'static [u8], &'static [u8]) {
        match self {
            Protocol::Frames => (b"\x00\x00\x00\x04PING", b"\x00\x00\x00\x04PONG"),
            Protocol::Resp => (b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"),
        }
    }

    /// A reader of this protocol's replies; `max_frame` bounds a frame
    /// (ours) or a reply line (RESP).
    pub fn replies(self, max_frame: usize) -> Replies {
        match self {
            Protocol::Frames => Replies::Frames(FrameCodec::new(max_frame)),
            Protocol::Resp => Replies::Resp {
                max_line: max_frame,
            },
        }
    }
}

/// What one reply said about its request.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Stored: `OK ...`, or `:<n>`.
    Confirmed,
    /// Refused, with the error's code (`STORAGE`; Redis's `ERR`,
    /// `WRONGTYPE`, ...).
    Refused(Bytes),
    /// A reply that is neither.
    Unexpected,
}

/// Reads replies out of the bytes a connection received.
#[derive(Debug)]
pub enum Replies {
    /// Length-prefixed frames.
    Frames(FrameCodec),
    /// RESP replies, each a line ending in CRLF (RPUSH answers nothing
    /// longer). A line longer than `max_line` is lost framing.
    Resp {
        /// The longest reply line accepted.
        max_line: usize,
    },
}

impl Replies {
    /// The next whole reply in `buf`, taken out of it; `None` until one has
    /// arrived. `Err` when the stream can no longer be read as replies.
    pub fn next(&mut self, buf: &mut BytesMut) -> io::Result<Option<Answer>> {
        match self {
            Replies::Frames(codec) => match codec.decode(buf) {
                Ok(Some(Frame::Data(payload))) => Ok(Some(frame_answer(&payload))),
                Ok(Some(Frame::Oversized { .. })) => Ok(Some(Answer::Unexpected)),
                Ok(None) => Ok(None),
                Err(FrameError::Io(err)) => Err(err),
                Err(err @ FrameError::FramingLost { .. }) => {
                    Err(io::Error::new(io::ErrorKind::InvalidData, err.to_string()))
                }
            },
            Replies::Resp { max_line } => {
                let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
                    if buf.len() > *max_line {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("a RESP reply line longer than {max_line} bytes"),
                        ));
                    }
                    return Ok(None);
                };
                let answer = resp_answer(&buf[..end]);
                buf.advance(end + 2);
                Ok(Some(answer))
            }
        }
    }
}

fn frame_answer(payload: &Bytes) -> Answer {
    if payload.starts_with(b"OK") {
        Answer::Confirmed
    } else if let Some(rest) = payload.strip_prefix(b"ERR ") {
        Answer::Refused(first_word(payload, rest))
    } else {
        Answer::Unexpected
    }
}

/// A RESP reply line without its CRLF: `:<digits>` confirms an `RPUSH`.
fn resp_answer(line: &[u8]) -> Answer {
    match line.split_first() {
        Some((b':', digits)) if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) => {
            Answer::Confirmed
        }
        Some((b'-', rest)) => {
            let code = rest.split(|&b| b == b' ').next().unwrap_or_default();
            Answer::Refused(Bytes::copy_from_slice(code))
        }
        _ => Answer::Unexpected,
    }
}

/// The first space-separated word of `rest`, a tail of `payload`, as a
/// slice of it (no copy).
fn first_word(payload: &Bytes, rest: &[u8]) -> Bytes {
    let start = payload.len() - rest.len();
    let len = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    payload.slice(start..start + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frames_request_is_send_and_the_message() {
        assert_eq!(
            &Protocol::Frames.request(3)[..],
            b"\x00\x00\x00\x08SEND xxx"
        );
    }

    #[test]
    fn a_resp_request_is_rpush_of_the_message_to_mylist() {
        assert_eq!(
            &Protocol::Resp.request(3)[..],
            b"*3\r\n$5\r\nRPUSH\r\n$6\r\nmylist\r\n$3\r\nxxx\r\n"
        );
    }

    fn all(protocol: Protocol, bytes: &[u8]) -> (Vec<Answer>, BytesMut) {
        let mut replies = protocol.replies(64);
        let mut buf = BytesMut::from(bytes);
        let mut answers = Vec::new();
        while let Some(answer) = replies.next(&mut buf).unwrap() {
            answers.push(answer);
        }
        (answers, buf)
    }

    #[test]
    fn frame_replies_are_classified_by_their_first_bytes() {
        let mut bytes = BytesMut::new();
        for reply in [&b"OK stored"[..], b"ERR STORAGE disk full", b"PONG"] {
            protocol::encode_frame(reply, &mut bytes).unwrap();
        }
        bytes.extend_from_slice(b"\x00\x00");
        let (answers, rest) = all(Protocol::Frames, &bytes);
        assert_eq!(
            answers,
            [
                Answer::Confirmed,
                Answer::Refused("STORAGE".into()),
                Answer::Unexpected
            ]
        );
        assert_eq!(&rest[..], b"\x00\x00", "half a header waits");
    }

    #[test]
    fn resp_replies_are_integers_errors_or_unexpected() {
        let bytes = b":1\r\n:12345\r\n-WRONGTYPE Operation against a key\r\n+OK\r\n:\r\n:12";
        let (answers, rest) = all(Protocol::Resp, bytes);
        assert_eq!(
            answers,
            [
                Answer::Confirmed,
                Answer::Confirmed,
                Answer::Refused("WRONGTYPE".into()),
                Answer::Unexpected,
                Answer::Unexpected,
            ]
        );
        assert_eq!(&rest[..], b":12", "a line without its CRLF waits");
    }

    #[test]
    fn a_resp_line_past_the_maximum_is_lost_framing() {
        let mut replies = Protocol::Resp.replies(8);
        let mut buf = BytesMut::from(&b"+0123456789"[..]);
        assert!(replies.next(&mut buf).is_err());
    }
}

//! Framing: a 4-byte big-endian length, then that many bytes.
//!
//! This is the wire format of tokio-util's `LengthDelimitedCodec` with its
//! default settings, so any implementation of that codec can talk to us. We
//! decode with our own [`FrameCodec`] because of one difference in behaviour:
//! `LengthDelimitedCodec` ends the stream on a frame over its maximum, which
//! would drop every request pipelined behind it. [`FrameCodec`] instead
//! yields [`Frame::Oversized`] as soon as it reads the header (so the sender
//! gets its error at once), then skips the payload as it arrives, without
//! buffering it, and goes on with the next frame.
//!
//! Only a declared length beyond [`HARD_MAX_FRAME`] is treated as lost
//! framing ([`FrameError::FramingLost`]): such a header is almost certainly
//! not a header at all (say, someone typing text into `nc`), and skipping
//! gigabytes of a stream that will never send them would hang the connection.

use std::{fmt, io};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Default largest payload a node accepts in one frame from a client: 64 KiB.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// Extra room a node allows in frames that wrap a message it relayed.
///
/// A reply or a `STORE` repeats the client's message inside a sentence, so a
/// frame that carries a message of the maximum size is a little larger than
/// the maximum. Node names are at most 64 bytes, the longest sentence is
/// under 100 bytes: 1 KiB is ample.
pub const ENVELOPE_ALLOWANCE: usize = 1024;

/// Declared lengths above this are taken as lost framing, not as large frames.
pub const HARD_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Length of the frame header in bytes.
pub const HEADER_LEN: usize = 4;

/// Parses a `--max-frame` flag, the same on every binary: at least 1 byte,
/// at most [`HARD_MAX_FRAME`] (beyond it a header is taken as lost framing).
pub fn parse_max_frame(text: &str) -> Result<usize, String> {
    let value: usize = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number of bytes"))?;
    if (1..=HARD_MAX_FRAME).contains(&value) {
        Ok(value)
    } else {
        Err(format!("must be between 1 and {HARD_MAX_FRAME} bytes"))
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A frame within the maximum size, with its payload.
    Data(Bytes),
    /// A frame whose declared length exceeds the maximum. Its payload is
    /// being skipped; the stream stays in sync.
    Oversized {
        /// The length the header declared.
        len: usize,
    },
}

/// An error that ends a framed stream.
#[derive(Debug)]
pub enum FrameError {
    /// The underlying transport failed, or ended inside a frame.
    Io(io::Error),
    /// A header declared a length beyond [`HARD_MAX_FRAME`]: the byte stream
    /// is not (or no longer) a stream of frames.
    FramingLost {
        /// The length the header declared.
        len: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Io(err) => write!(f, "{err}"),
            FrameError::FramingLost { len } => {
                write!(f, "framing lost: header declares {len} bytes")
            }
        }
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FrameError::Io(err) => Some(err),
            FrameError::FramingLost { .. } => None,
        }
    }
}

impl From<io::Error> for FrameError {
    fn from(err: io::Error) -> Self {
        FrameError::Io(err)
    }
}

/// Decoder and encoder of length-prefixed frames.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_frame: usize,
    /// Payload bytes of an oversized frame still to be skipped.
    skipping: usize,
}

impl FrameCodec {
    /// A codec that accepts payloads of at most `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameCodec {
            max_frame,
            skipping: 0,
        }
    }

    /// The largest payload this codec decodes as [`Frame::Data`].
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Whether the codec is inside an oversized frame, skipping its payload:
    /// a frame begun and not finished, even with nothing left buffered.
    pub fn is_skipping(&self) -> bool {
        self.skipping > 0
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if self.skipping > 0 {
            let n = self.skipping.min(src.len());
            src.advance(n);
            self.skipping -= n;
            if self.skipping > 0 {
                return Ok(None);
            }
        }
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > self.max_frame {
            if len > HARD_MAX_FRAME.max(self.max_frame) {
                return Err(FrameError::FramingLost { len });
            }
            src.advance(HEADER_LEN);
            self.skipping = len;
            return Ok(Some(Frame::Oversized { len }));
        }
        let total = HEADER_LEN + len;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        Ok(Some(Frame::Data(src.split_to(len).freeze())))
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for FrameCodec {
    type Error = FrameError;

    /// Encodes one frame. The maximum is not enforced on what we send: it
    /// bounds what a node accepts, and peers allow [`ENVELOPE_ALLOWANCE`].
    fn encode(&mut self, payload: T, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(payload.as_ref(), dst)
    }
}

/// Appends one frame holding `payload` to `dst`.
pub fn encode_frame(payload: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
    let len = u32::try_from(payload.len()).map_err(|_| {
        FrameError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "payload longer than 4 GiB",
        ))
    })?;
    dst.reserve(HEADER_LEN + payload.len());
    dst.put_u32(len);
    dst.put_slice(payload);
    Ok(())
}

/// Appends one frame to `dst` whose payload `write` produces in place, so a
/// reply is encoded straight into the output buffer with no copy.
pub fn encode_frame_with(dst: &mut BytesMut, write: impl FnOnce(&mut BytesMut)) {
    let start = dst.len();
    dst.put_u32(0);
    write(dst);
    let len = dst.len() - start - HEADER_LEN;
    let len = u32::try_from(len).expect("a frame we encode is under 4 GiB");
    dst[start..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut buf = BytesMut::new();
        encode_frame(payload, &mut buf).unwrap();
        buf.to_vec()
    }

    fn decode_all(codec: &mut FrameCodec, bytes: &[u8]) -> Vec<Frame> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            out.push(frame);
        }
        out
    }

    #[test]
    fn max_frame_flags_are_bounded() {
        assert_eq!(parse_max_frame("16"), Ok(16));
        assert_eq!(parse_max_frame("16777216"), Ok(HARD_MAX_FRAME));
        for bad in ["0", "16777217", "-1", "64k", ""] {
            assert!(parse_max_frame(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn encodes_big_endian_length_then_payload() {
        assert_eq!(frame(b"PING"), b"\x00\x00\x00\x04PING");
        assert_eq!(frame(b""), b"\x00\x00\x00\x00");
    }

    #[test]
    fn encodes_in_place_like_encode_frame() {
        let mut dst = BytesMut::from(&b"before"[..]);
        encode_frame_with(&mut dst, |buf| buf.put_slice(b"PONG"));
        assert_eq!(&dst[..], b"before\x00\x00\x00\x04PONG");
    }

    #[test]
    fn decodes_back_to_back_frames_without_merging() {
        let mut bytes = frame(b"SEND Hola");
        bytes.extend(frame(b"SEND Sistemas"));
        let frames = decode_all(&mut FrameCodec::default(), &bytes);
        assert_eq!(
            frames,
            vec![
                Frame::Data(Bytes::from_static(b"SEND Hola")),
                Frame::Data(Bytes::from_static(b"SEND Sistemas")),
            ]
        );
    }

    #[test]
    fn decodes_a_frame_split_at_every_byte() {
        let bytes = frame(b"SEND Mensaje de prueba");
        for cut in 0..bytes.len() {
            let mut codec = FrameCodec::default();
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(codec.decode(&mut buf).unwrap(), None, "cut at {cut}");
            buf.extend_from_slice(&bytes[cut..]);
            assert_eq!(
                codec.decode(&mut buf).unwrap(),
                Some(Frame::Data(Bytes::from_static(b"SEND Mensaje de prueba")))
            );
        }
    }

    #[test]
    fn skips_an_oversized_frame_and_keeps_decoding() {
        let mut codec = FrameCodec::new(8);
        let mut bytes = frame(b"0123456789abcdef");
        bytes.extend(frame(b"PING"));
        // Feed one byte at a time: the skip must survive partial reads.
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for byte in bytes {
            buf.extend_from_slice(&[byte]);
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(
            frames,
            vec![
                Frame::Oversized { len: 16 },
                Frame::Data(Bytes::from_static(b"PING"))
            ]
        );
    }

    #[test]
    fn a_frame_of_exactly_the_maximum_is_accepted() {
        let mut codec = FrameCodec::new(4);
        assert_eq!(
            decode_all(&mut codec, &frame(b"PING")),
            vec![Frame::Data(Bytes::from_static(b"PING"))]
        );
    }

    #[test]
    fn a_wild_header_is_lost_framing() {
        // "hello" typed into nc: the header reads as 1.7 GB.
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&b"hello\n"[..]);
        match codec.decode(&mut buf) {
            Err(FrameError::FramingLost { len }) => assert_eq!(len, 0x6865_6c6c),
            other => panic!("expected lost framing, got {other:?}"),
        }
    }
}

//! The wire protocol shared by every node of the system.
//!
//! # Layers
//!
//! The protocol has two layers, each in its own module and each testable
//! without a socket:
//!
//! - [`frame`]: a byte stream is cut into frames, each a 4-byte big-endian
//!   length followed by that many bytes. This is exactly the format of
//!   tokio-util's `LengthDelimitedCodec`, but [`FrameCodec`] differs in what
//!   it does with a frame that is too large: instead of ending the stream it
//!   reports the frame, skips its payload, and keeps the connection usable.
//! - [`command`]: the payload of a frame is UTF-8 text holding one command
//!   (a verb and its argument) or one reply (`OK`, `ERR`, `PONG`).
//!
//! [`heartbeat`] holds the two datagrams of the multicast heartbeat (UDP,
//! one frame per datagram).
//!
//! [`id`] holds the message ids of the tagged forms, `SENDID` and
//! `STOREID`, with which a resent message is stored only once.
//!
//! [`link`] holds the headnode-datanode link's requests and replies in the
//! zero-copy forms the headnode's hot path uses.
//!
//! [`auth`] makes and checks the cluster secret's proofs (HMAC-SHA256),
//! at registration and in the heartbeat.
//!
//! [`escape`] is not part of the wire format: it turns a message into one
//! line of a log file, so that a message can never span or merge lines.
//! [`sentences`] holds the Spanish sentences of the original exercise, which
//! graders compare word for word.
//!
//! The full specification, with example exchanges in hex, is
//! `docs/PROTOCOL.md` at the root of the repository.

pub mod auth;
pub mod command;
pub mod escape;
pub mod frame;
pub mod heartbeat;
pub mod id;
pub mod link;
pub mod sentences;

pub use command::{ErrorCode, ErrorReply, Reply, Request};
pub use frame::{
    encode_frame, encode_frame_with, parse_max_frame, Frame, FrameCodec, FrameError,
    DEFAULT_MAX_FRAME, ENVELOPE_ALLOWANCE, HARD_MAX_FRAME,
};
pub use id::{ClientId, ClientIds, Tag};
pub use link::{LinkReply, Sentence};

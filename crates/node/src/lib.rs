//! The parts every node of the system shares.
//!
//! - [`session`]: the loop that answers a peer's pipelined requests in order,
//!   batching the messages that arrive together into one call of a
//!   [`MessageStore`] (one write to the log file for the whole batch).
//! - [`eager`]: a connection's halves that read the next request right
//!   after a reply is written, saving a one-request-at-a-time peer an
//!   `epoll_wait` per request.
//! - [`watchdog`]: the bounds on a frame left unfinished and on an idle
//!   connection, against peers that hold connections without using them.
//! - [`listener`]: the accept loop, with a connection cap, back-off on accept
//!   errors, and a graceful drain on shutdown.
//! - [`args`]: parsers for numeric flags whose errors say what the flag
//!   accepts.
//! - [`dial`]: connecting with exponential back-off and jitter, for the
//!   nodes that start before their peer is up (the client, the datanode).
//! - [`multicast`]: UDP multicast sockets for the heartbeat, with the
//!   sending and joining interfaces set explicitly.
//! - [`secret`]: the cluster secret's file (`--cluster-secret-file`): its
//!   rules, and making a new one.
//! - [`owner`]: a node started as root becomes the owner of its folder, so
//!   that the files it writes under Docker belong to the host user.
//! - [`runtime`]: logging set-up, the SIGINT/SIGTERM shutdown signal, and
//!   the one mapping from an error's [`Fault`] to a binary's exit status.
//!
//! The crate's own failures are an [`Error`] (dialing, the secret's file); like every crate's
//! error it says whose fault it is.

pub mod args;
pub mod dial;
pub mod eager;
mod error;
pub mod listener;
pub mod multicast;
pub mod owner;
pub mod runtime;
pub mod secret;
pub mod session;
pub mod watchdog;

pub use dial::parse_host_port;
pub use error::Error;
pub use journal::parse_duration;
pub use journal::Fault;
pub use session::{MessageStore, MessageVerb, StoreFuture, StoreResult};

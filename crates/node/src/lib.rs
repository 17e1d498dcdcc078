//! The parts every node of the system shares.
//!
//! - [`session`]: the loop that answers a peer's pipelined requests in order,
//!   batching the messages that arrive together into one call of a
//!   [`MessageStore`] (one write to the log file for the whole batch).
//! - [`listener`]: the accept loop, with a connection cap, back-off on accept
//!   errors, and a graceful drain on shutdown.
//! - [`dial`]: connecting with exponential back-off and jitter, for the
//!   nodes that start before their peer is up (the client, the datanode).
//! - [`multicast`]: UDP multicast sockets for the heartbeat, with the
//!   sending and joining interfaces set explicitly.
//! - [`runtime`]: logging set-up and the SIGINT/SIGTERM shutdown signal.

pub mod dial;
pub mod listener;
pub mod multicast;
pub mod runtime;
pub mod session;

pub use dial::parse_host_port;
pub use journal::parse_duration;
pub use session::{MessageStore, MessageVerb, StoreFuture, StoreResult};

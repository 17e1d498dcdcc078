//! The node crate's error: what dialing a peer, or reading the cluster
//! secret, can fail with.
//!
//! Like every crate's error it names its [`Fault`], from which
//! [`crate::runtime::exit_code`] makes a binary's exit status.

use std::io;

use journal::Fault;

/// Why a node crate operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// [`connect_with_retry`](crate::dial::connect_with_retry) gave up at
    /// its timeout; `source` is the last attempt's error.
    #[error(
        "could not connect to {addr} after {attempts} attempt{}: {source}",
        if *attempts == 1 { "" } else { "s" }
    )]
    Unreachable {
        /// The `host:port` dialed.
        addr: String,
        /// How many attempts were made.
        attempts: u32,
        /// Why the last attempt failed.
        #[source]
        source: io::Error,
    },
    /// Connected, but the socket could not be set up.
    #[error("connected to {addr} but could not set TCP_NODELAY: {source}")]
    Socket {
        /// The `host:port` dialed.
        addr: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The cluster secret's file cannot be used; see [`crate::secret`].
    #[error("{flag} {}: {reason}", path.display())]
    Secret {
        /// The flag that gave the path.
        flag: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
}

impl Error {
    /// Whose fault it is: the network's or the system's ([`Fault::Io`])
    /// for a peer, since one that is not up may come up later; the
    /// caller's for a secret file that cannot be used.
    pub fn fault(&self) -> Fault {
        match self {
            Error::Unreachable { .. } | Error::Socket { .. } => Fault::Io,
            Error::Secret { .. } => Fault::Caller,
        }
    }

    /// The system's kind of error (`TimedOut` when the last attempt hung
    /// until the deadline).
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Unreachable { source, .. } | Error::Socket { source, .. } => source.kind(),
            Error::Secret { .. } => io::ErrorKind::InvalidInput,
        }
    }
}

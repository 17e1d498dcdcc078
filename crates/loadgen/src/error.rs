//! Why a run could not be made at all. Errors during a run (`ERR` replies,
//! lost connections) are not among them: they are counted in the report.

use std::{io, net::SocketAddr};

use node::Fault;

/// Why [`crate::run`] could not measure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Tokio runtime (`--threads`) could not be started.
    #[error("cannot start a runtime of --threads threads: {source}")]
    Runtime {
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The name of `--connect` could not be looked up.
    #[error("cannot resolve --connect {target}: {source}")]
    Resolve {
        /// The `host:port` given.
        target: String,
        /// What the resolver said.
        #[source]
        source: io::Error,
    },
    /// The name of `--connect` resolved to no address.
    #[error("--connect {target}: no address")]
    NoAddress {
        /// The `host:port` given.
        target: String,
    },
    /// Not one connection to the node could be opened.
    #[error("{addr}: {source} (is the node up at --connect?)")]
    Connect {
        /// The address dialed.
        addr: SocketAddr,
        /// Why the first connection failed.
        #[source]
        source: io::Error,
    },
    /// The CPU time or memory of a process could not be read from /proc.
    #[error("cannot read {what} {pid} in /proc: {source}")]
    Proc {
        /// Which process: `--cpu-pids`, `--rss-pid` or `loadgen itself`.
        what: &'static str,
        /// Its PID.
        pid: u32,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// A connection's task ended abnormally (it panicked).
    #[error("a connection task failed: {source}")]
    Task {
        /// Why.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl Error {
    /// Whose fault it is: the environment's ([`Fault::Io`]) in every case,
    /// as a node that is not up or a process that ended may be fine later.
    pub fn fault(&self) -> Fault {
        match self {
            Error::Runtime { .. }
            | Error::Resolve { .. }
            | Error::NoAddress { .. }
            | Error::Connect { .. }
            | Error::Proc { .. }
            | Error::Task { .. } => Fault::Io,
        }
    }
}

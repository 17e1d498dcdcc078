//! The headnode's one error type: why [`crate::run`] could not start.
//!
//! Once it serves, nothing is an error of the process any more: a datanode
//! that fails, a client that sends junk or a disk that fills are answered
//! on the wire (`ERR ...`) and logged, and the headnode goes on.

use std::{io, path::PathBuf};

use node::Fault;

/// Why the headnode could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Flags that cannot work together; the message names them.
    #[error("{0}")]
    Config(String),
    /// A log file in `--dir` cannot be opened or created.
    #[error(
        "cannot open {}: {source}; give --dir a folder this user can create or write",
        path.display()
    )]
    Open {
        /// The file.
        path: PathBuf,
        /// What opening it said.
        #[source]
        source: journal::Error,
    },
    /// The cluster secret's file cannot be used (`--cluster-secret-file`).
    #[error(transparent)]
    Secret(#[from] node::Error),
    /// The multicast heartbeat's socket cannot be set up.
    #[error("multicast heartbeat: {0}")]
    Heartbeat(#[source] io::Error),
    /// The status page's address cannot be listened on.
    #[error(
        "cannot listen on --http {addr}: {source}; give a free HOST:PORT, or leave --http unset"
    )]
    Http {
        /// `--http`.
        addr: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The listening socket cannot tell its address.
    #[error("cannot read the listening address: {0}")]
    Listener(#[source] io::Error),
}

impl Error {
    /// Whose fault it is: a configuration is the caller's.
    pub fn fault(&self) -> Fault {
        match self {
            Error::Config(_) => Fault::Caller,
            Error::Open { source, .. } => source.fault(),
            Error::Secret(err) => err.fault(),
            Error::Heartbeat(_) | Error::Listener(_) | Error::Http { .. } => Fault::Io,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_configuration_is_a_usage_error_and_a_full_disk_is_not() {
        assert_eq!(Error::Config("x".into()).fault(), Fault::Caller);
        let listener = Error::Listener(io::Error::other("x"));
        assert_eq!(listener.fault(), Fault::Io);
        assert_eq!(node::runtime::exit_status(Fault::Caller), 2);
    }
}

//! Why the server could not run. Once it runs, storage failures are not
//! errors of [`crate::run`]: each is answered `ERR STORAGE` to the client
//! whose message it concerns.

use std::{io, path::PathBuf};

use journal::Fault;

/// Why [`crate::run`] failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The log file could not be opened or created.
    #[error("cannot open {}: {source}; give --dir a folder this user can create or write", path.display())]
    Open {
        /// The log file's path.
        path: PathBuf,
        /// Why.
        #[source]
        source: journal::Error,
    },
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
    /// The listening socket given to [`crate::run`] has no address.
    #[error("the listening socket has no address: {source}")]
    Listener {
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Whose fault it is; the binary's exit status follows from it.
    pub fn fault(&self) -> Fault {
        match self {
            Error::Open { source, .. } => source.fault(),
            Error::Listener { .. } | Error::Http { .. } => Fault::Io,
        }
    }
}

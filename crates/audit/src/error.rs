//! The audit's one error type: what stops it before it can say whether the
//! files agree.
//!
//! A disagreement between the files is not an error: it is the report's
//! finding (exit status 1). An [`Error`] means there was nothing to audit or
//! a file could not be read; like every crate's error it names its
//! [`Fault`], from which the binary's exit status comes
//! (`node::runtime::exit_code`: 2 for the caller's, 1 otherwise).

use std::{io, path::PathBuf};

use journal::Fault;

/// Why an audit could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path given on the command line does not exist.
    #[error("{}: no such file or folder", path.display())]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// A file given on the command line is none of the log files.
    #[error(
        "{}: not a log file of either activity (log.txt, respuestas.txt, \
         registro_cliente.txt, registro_server.txt, heartbeat_server.txt, data.txt)",
        path.display()
    )]
    UnknownFile {
        /// The path as given.
        path: PathBuf,
    },
    /// Nothing to audit: no log file at the path (or, with no path, under
    /// the compose layout's folders).
    #[error("{}: holds no log file of either activity", path.display())]
    NoLogs {
        /// The folder searched.
        path: PathBuf,
    },
    /// Two files of one kind (two `registro_server.txt`, two `data.txt` for
    /// one datanode): the audit would not know which one to read.
    #[error("two {kind} files: {} and {}; give the folder of one run", first.display(), second.display())]
    Duplicate {
        /// What the files are (`registro_server.txt`, `data.txt of datanode2`).
        kind: String,
        /// The one found first.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// A file or folder could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Whose fault it is: the caller's for a path that names nothing to
    /// audit, the system's for a file it cannot read.
    pub fn fault(&self) -> Fault {
        match self {
            Error::NotFound { .. }
            | Error::UnknownFile { .. }
            | Error::NoLogs { .. }
            | Error::Duplicate { .. } => Fault::Caller,
            Error::Read { .. } => Fault::Io,
        }
    }
}

//! Why a datanode stops: what [`crate::run`] can fail with, and whose
//! fault each is, from which the binary's exit status follows.

use std::{path::PathBuf, time::Duration};

use node::Fault;
use protocol::ErrorReply;

/// Why a datanode stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work (a bad name); fix it and start again.
    #[error("{flag}: {reason}")]
    Config {
        /// The flag to fix.
        flag: &'static str,
        /// What is wrong with it and what to do.
        reason: String,
    },
    /// data.txt could not be opened or created.
    #[error("cannot open {}: {source}; give --dir a folder this user can create or write", path.display())]
    Open {
        /// The path of data.txt.
        path: PathBuf,
        /// Why.
        #[source]
        source: journal::Error,
    },
    /// The headnode refused our name as invalid: retrying cannot help.
    #[error(
        "the headnode {headnode} refused to register us: {reply} \
         (it does not accept this --name; choose another)"
    )]
    Refused {
        /// The headnode's address (`--headnode`).
        headnode: String,
        /// Its answer to `REGISTER`.
        reply: ErrorReply,
    },
    /// Another live datanode kept our name for all of
    /// `--name-taken-timeout`.
    #[error(
        "the headnode {headnode} kept answering NAME_TAKEN for {waited:?}: another live \
         datanode is registered as {name}; give each datanode its own --name (or host name)"
    )]
    NameTaken {
        /// Our name.
        name: String,
        /// The headnode's address (`--headnode`).
        headnode: String,
        /// `--name-taken-timeout`.
        waited: Duration,
    },
}

impl Error {
    /// Whose fault it is: a name that we or the headnode refuse is the
    /// caller's (a usage error: exit status 2), the rest I/O.
    pub fn fault(&self) -> Fault {
        match self {
            Error::Config { .. } | Error::Refused { .. } | Error::NameTaken { .. } => Fault::Caller,
            Error::Open { source, .. } => source.fault(),
        }
    }
}

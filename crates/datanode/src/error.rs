//! Why a datanode stops: what [`crate::run`] can fail with, and whose
//! fault each is, from which the binary's exit status follows.

use std::path::PathBuf;

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
    #[error("cannot open {}: {source} (check --dir)", path.display())]
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
}

impl Error {
    /// Whose fault it is: a name that we or the headnode refuse is the
    /// caller's (a usage error: exit status 2), the rest I/O.
    pub fn fault(&self) -> Fault {
        match self {
            Error::Config { .. } | Error::Refused { .. } => Fault::Caller,
            Error::Open { source, .. } => source.fault(),
        }
    }
}

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
    /// The cluster secret's file cannot be used.
    #[error(transparent)]
    Secret(#[from] node::Error),
    /// The headnode challenged us for a cluster secret we were not given.
    #[error(
        "the headnode {headnode} admits only datanodes that know its cluster secret: give \
         --cluster-secret-file (DATANODE_CLUSTER_SECRET_FILE) the headnode's secret file"
    )]
    NoSecret {
        /// The headnode's address (`--headnode`).
        headnode: String,
    },
    /// The headnode refused our proof: our secret is not its.
    #[error(
        "the headnode {headnode} refused our proof of the cluster secret: {reply} \
         (--cluster-secret-file {} must hold the same secret as the headnode's)",
        path.display()
    )]
    AuthFailed {
        /// The headnode's address (`--headnode`).
        headnode: String,
        /// Its answer to the proof.
        reply: ErrorReply,
        /// Our secret's file.
        path: PathBuf,
    },
}

impl Error {
    /// Whose fault it is: a name that we or the headnode refuse, and a
    /// secret that is missing or wrong, are the caller's (a usage error:
    /// exit status 2), the rest I/O.
    pub fn fault(&self) -> Fault {
        match self {
            Error::Config { .. }
            | Error::Refused { .. }
            | Error::NoSecret { .. }
            | Error::NameTaken { .. }
            | Error::AuthFailed { .. } => Fault::Caller,
            Error::Secret(err) => err.fault(),
            Error::Open { source, .. } => source.fault(),
        }
    }
}

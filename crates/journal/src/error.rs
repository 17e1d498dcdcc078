//! The journal's errors, and the fault categories every crate's errors use.
//!
//! As in toydb, an error says whose fault it is, because that decides what
//! to do about it: a caller's mistake is fixed by the caller (a binary's
//! user changes a flag: exit status 2, like clap's usage errors), bad data
//! is refused, and an I/O failure is the environment's (a disk, a network)
//! and may pass. [`Fault`] is defined here, in the lowest crate that has
//! errors, so that every crate can classify its own without depending on
//! the `node` crate, which maps a fault to an exit status.
//!
//! The text of an I/O variant starts with the system's own (`No space left
//! on device (os error 28)`): the nodes quote it in their `ERR STORAGE`
//! replies and prefix the file's name themselves. A failed write adds what
//! it means for the batch and what happens next, so that the reply says
//! how the node recovers.

use std::{io, path::PathBuf};

use crate::Seq;

/// Whose fault an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The caller's: a flag, a setting or an argument that cannot work.
    /// Retrying the same call cannot help; a binary exits with status 2.
    Caller,
    /// The data's: input or a peer's answer that is malformed or refused.
    Data,
    /// The environment's: a file, a disk or a network failed.
    Io,
}

/// Why a journal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file (or a folder on its path) could not be created, opened,
    /// repaired or synced when opening.
    #[error("{source}")]
    Open {
        /// The file being opened.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// Another process holds the file's lock (see [`crate::Journal::open`]):
    /// two writers on one file would destroy each other's lines.
    #[error(
        "another process{} is already writing {} (it holds {}); \
         each node needs a folder of its own",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default(),
        path.display(),
        lock.display()
    )]
    Locked {
        /// The file asked for.
        path: PathBuf,
        /// Its lock file.
        lock: PathBuf,
        /// The holder's pid, as it wrote it in the lock file.
        holder: Option<u32>,
    },
    /// A batch could not be written; what of it reached the file was cut
    /// off again, so nothing of it is stored. Later writes are tried as
    /// usual: once the disk has room (or the file is writable again) they
    /// succeed.
    #[error("{source}; nothing of this batch was stored, and later writes are tried again")]
    Write {
        /// The file written to.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// `fdatasync` failed: the journal takes no more writes.
    #[error("{source}")]
    Sync {
        /// The file synced.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// An earlier failure left the file untrustworthy (see the crate docs,
    /// "Failures"): every later write and sync is refused.
    #[error(
        "{} takes no more writes after an earlier failure ({reason}); \
         fix the disk or the file, then restart the node (until then it \
         refuses to confirm what may not be stored)",
        path.display()
    )]
    Failed {
        /// The file that failed.
        path: PathBuf,
        /// The first failure.
        reason: String,
    },
    /// [`Journal::sync_through`](crate::Journal::sync_through) was given a
    /// sequence number this journal never issued (another journal's).
    #[error(
        "{} never wrote batch {} (it has written {written}): \
         pass the Seq its own write returned",
        path.display(),
        seq.get()
    )]
    UnknownSeq {
        /// The journal asked.
        path: PathBuf,
        /// The number given.
        seq: Seq,
        /// How many batches the journal has written.
        written: u64,
    },
}

impl Error {
    /// Whose fault it is: [`Fault::Caller`] for a misused API or a file
    /// another process holds (a configuration that gives two nodes one
    /// folder), otherwise [`Fault::Io`].
    pub fn fault(&self) -> Fault {
        match self {
            Error::UnknownSeq { .. } | Error::Locked { .. } => Fault::Caller,
            // A path that names a file where a folder must be, or the
            // reverse: the flag is wrong, not the disk.
            Error::Open { source, .. }
                if matches!(
                    source.kind(),
                    io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory
                ) =>
            {
                Fault::Caller
            }
            Error::Open { .. }
            | Error::Write { .. }
            | Error::Sync { .. }
            | Error::Failed { .. } => Fault::Io,
        }
    }

    /// The file concerned.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Error::Open { path, .. }
            | Error::Write { path, .. }
            | Error::Sync { path, .. }
            | Error::Failed { path, .. }
            | Error::Locked { path, .. }
            | Error::UnknownSeq { path, .. } => path,
        }
    }
}

/// For callers that work in `io::Result` (`?` in the headnode's `run`):
/// the system's error kind is kept and the text is this error's.
impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = match &err {
            Error::Open { source, .. }
            | Error::Write { source, .. }
            | Error::Sync { source, .. } => source.kind(),
            Error::Failed { .. } => io::ErrorKind::Other,
            Error::Locked { .. } => io::ErrorKind::WouldBlock,
            Error::UnknownSeq { .. } => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, err)
    }
}

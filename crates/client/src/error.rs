//! The client library's one error type.
//!
//! Each variant is one way a run can fail, named by what failed, and
//! [`Error::fault`] says whose fault it is, as toydb's errors do: the
//! caller's ([`Fault::Caller`]: a flag's value cannot work; fix the command
//! line), the data's ([`Fault::Data`]: the peer or the input sent something
//! the protocol does not allow) or the system's ([`Fault::Io`]: a connection,
//! a file). The binary turns the fault into its exit status.
//!
//! Messages name the flag, the file or the peer involved and, where there is
//! one, the thing to do about it.

use std::{io, path::PathBuf, time::Duration};

pub use node::Fault;
use protocol::FrameError;

/// Why a run, or a ping, failed or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The log file (`--log`) cannot be opened or created.
    #[error(
        "cannot open {}: {source}; give --log a file the client can create and write",
        path.display()
    )]
    OpenLog {
        /// The `--log` path.
        path: PathBuf,
        /// What opening it said.
        source: io::Error,
    },
    /// An answer could not be appended to the log file.
    #[error("cannot write {}: {source}", path.display())]
    WriteLog {
        /// The `--log` path.
        path: PathBuf,
        /// What writing said.
        source: io::Error,
    },
    /// No connection was made within `--connect-timeout`.
    #[error(
        "{source}; check that a server or headnode listens at {peer} (--connect), \
         or give it longer to start with --connect-timeout"
    )]
    Connect {
        /// The `--connect` address.
        peer: String,
        /// The last attempt's failure.
        source: node::Error,
    },
    /// A stop request (SIGTERM, Ctrl-C) came before the connection was made.
    #[error("stopped before connecting to {peer}")]
    StoppedBeforeConnecting {
        /// The `--connect` address.
        peer: String,
    },
    /// Reading from or writing to the connection failed.
    #[error("connection lost to {peer}: {source}")]
    ConnectionLost {
        /// The `--connect` address.
        peer: String,
        /// What the connection said.
        source: io::Error,
    },
    /// The peer closed the connection while answers were still owed.
    #[error("{peer} closed the connection without answering every request")]
    PeerClosed {
        /// The `--connect` address.
        peer: String,
    },
    /// The peer did not answer a `PING` in time.
    #[error("{peer} did not answer within {wait:?}")]
    NoAnswer {
        /// The `--connect` address.
        peer: String,
        /// How long the client waited.
        wait: Duration,
    },
    /// Requests were owed and the peer sent nothing for `--reply-timeout`:
    /// the connection is taken as lost (a later issue reconnects and
    /// resends here, once messages carry ids).
    #[error(
        "{peer} sent no reply for {wait:?} while {owed} request(s) waited \
         (--reply-timeout); taking the connection as lost"
    )]
    ReplyTimeout {
        /// The `--connect` address.
        peer: String,
        /// The `--reply-timeout`.
        wait: Duration,
        /// How many requests were unanswered.
        owed: u64,
    },
    /// The peer answered a tagged message with an error that means "not
    /// now" (`SHUTTING_DOWN`, `UNAVAILABLE`): the message is sent again on
    /// the next connection.
    #[error("{peer} answered {reply}; trying again")]
    NotNow {
        /// The `--connect` address.
        peer: String,
        /// The answer.
        reply: String,
    },
    /// The peer sent something that is not an answer to a request.
    #[error("{peer} {problem}; is --connect the address of a server or headnode?")]
    BadReply {
        /// The `--connect` address.
        peer: String,
        /// What it sent, in words: "answered PING with ...".
        problem: String,
    },
    /// The messages could not be read from standard input (`--stdin`).
    #[error("cannot read the messages: {source}")]
    Input {
        /// What reading said; [`io::ErrorKind::InvalidData`] for a line that
        /// is not UTF-8.
        source: io::Error,
    },
}

impl Error {
    /// Whose fault this is.
    pub fn fault(&self) -> Fault {
        match self {
            Error::OpenLog { source, .. } if is_bad_path(source.kind()) => Fault::Caller,
            Error::BadReply { .. } => Fault::Data,
            Error::Input { source } if source.kind() == io::ErrorKind::InvalidData => Fault::Data,
            Error::OpenLog { .. }
            | Error::WriteLog { .. }
            | Error::Connect { .. }
            | Error::StoppedBeforeConnecting { .. }
            | Error::ConnectionLost { .. }
            | Error::PeerClosed { .. }
            | Error::NoAnswer { .. }
            | Error::ReplyTimeout { .. }
            | Error::NotNow { .. }
            | Error::Input { .. } => Fault::Io,
        }
    }

    /// Whether the run may go on over a new connection: the connection was
    /// lost, not the input or the log file.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            Error::ConnectionLost { .. }
                | Error::PeerClosed { .. }
                | Error::ReplyTimeout { .. }
                | Error::NotNow { .. }
        )
    }

    /// The error of a failed read of the peer's replies: the connection's,
    /// or the data's when the bytes stopped being frames.
    pub(crate) fn reading(peer: &str, err: FrameError) -> Error {
        match err {
            FrameError::Io(source) => Error::ConnectionLost {
                peer: peer.to_owned(),
                source,
            },
            lost @ FrameError::FramingLost { .. } => Error::BadReply {
                peer: peer.to_owned(),
                problem: format!("sent bytes that are not frames ({lost})"),
            },
        }
    }
}

/// Whether opening a file failed because of the path the caller gave
/// (rather than the disk or the system).
fn is_bad_path(kind: io::ErrorKind) -> bool {
    use io::ErrorKind::*;
    matches!(
        kind,
        NotFound
            | PermissionDenied
            | AlreadyExists
            | InvalidInput
            | InvalidFilename
            | IsADirectory
            | NotADirectory
            | ReadOnlyFilesystem
            // The journal's lock: another process writes this --log.
            | WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_follow_the_cause() {
        let open = |kind: io::ErrorKind| Error::OpenLog {
            path: "/x/respuestas.txt".into(),
            source: kind.into(),
        };
        assert_eq!(open(io::ErrorKind::IsADirectory).fault(), Fault::Caller);
        assert_eq!(open(io::ErrorKind::PermissionDenied).fault(), Fault::Caller);
        assert_eq!(open(io::ErrorKind::StorageFull).fault(), Fault::Io);
        let input = |kind: io::ErrorKind| Error::Input {
            source: kind.into(),
        };
        assert_eq!(input(io::ErrorKind::InvalidData).fault(), Fault::Data);
        assert_eq!(input(io::ErrorKind::BrokenPipe).fault(), Fault::Io);
        let lost = Error::reading("h:1", FrameError::FramingLost { len: 1 << 30 });
        assert_eq!(lost.fault(), Fault::Data);
    }

    #[test]
    fn messages_name_the_flag_or_the_peer() {
        let open = Error::OpenLog {
            path: "/x/respuestas.txt".into(),
            source: io::ErrorKind::PermissionDenied.into(),
        };
        let text = open.to_string();
        assert!(
            text.starts_with("cannot open /x/respuestas.txt: "),
            "{text}"
        );
        assert!(text.contains("--log"), "{text}");
        let closed = Error::PeerClosed {
            peer: "headnode:10000".into(),
        };
        assert!(closed.to_string().starts_with("headnode:10000 closed"));
    }
}

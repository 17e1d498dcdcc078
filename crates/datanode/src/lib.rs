//! The datanode of Activity 2: a storage node that works for the headnode.
//!
//! # What it does
//!
//! A datanode does not listen. It dials the headnode (the same port clients
//! use), announces itself with `REGISTER <name>`, and once the headnode
//! answers `OK <name>` the direction of the connection reverses: the
//! headnode sends `STORE <message>` and `PING` requests and the datanode
//! answers each, in order, with `OK <sentence>` / `ERR ...` and `PONG`.
//! That side of the link is exactly the session every node shares
//! ([`node::session::Session::run`]) with `STORE` as its message verb, so pipelining,
//! batching, bad input and shutdown behave as at the server.
//!
//! A stored message becomes one line of `<dir>/data.txt`,
//! `YYYY-mm-dd HH:MM:SS -> <message, escaped>`; the messages that arrived
//! together are appended with one `write(2)` ([`journal::Journal`]), and only
//! after that write (and the `fdatasync` that `--fsync always` asks for) does
//! the datanode confirm with
//! `El <name> ha registrado satisfactoriamente el mensaje: '<message>'.`
//!
//! A tagged `STOREID` is written once: its id goes to the sidecar
//! `data.txt.ids` right after its line, and the same id sent again (by a
//! headnode that restarted, or that resent it after a stall or a dropped
//! link) is confirmed again with the same sentence and no second line; the
//! sidecar is read back at start, so this holds across a `kill -9` of the
//! datanode too ([`dedupe::store`]; the one window left is a kill between
//! the two `write(2)`s).
//!
//! # Staying registered
//!
//! The headnode may not be up yet, may restart, or may drop the link. In
//! every case the datanode dials again with exponential back-off and jitter
//! (resolving the headnode's name again each time, as a recreated container
//! gets a new address) and registers again. `ERR NAME_TAKEN` means a link
//! under our name still looks alive to the headnode (typically our own old
//! link, not yet detected dead): the datanode warns and keeps retrying until
//! the headnode lets it in. `ERR BAD_ARGUMENT` means the headnode rejects
//! the name itself; retrying cannot help, so the datanode exits with an error.
//!
//! With `--cluster-secret-file` the datanode answers the headnode's
//! challenge with a proof that it knows the cluster secret, and tags its
//! heartbeat answers ([`register`], [`heartbeat`]).
//!
//! # Errors
//!
//! [`run`] fails with an [`Error`] only before or instead of serving: a
//! `--name` that is not valid (checked before dialing) or that the headnode
//! refuses, both the caller's fault (exit status 2, as for any usage error),
//! or a data.txt that cannot be opened (I/O, exit status 1).
//!
//! # Shutdown
//!
//! On SIGTERM or SIGINT the session stops reading, answers every `STORE` it
//! already accepted (so what it wrote is confirmed), closes the link and the
//! process exits with status 0.
//!
//! The full description of the link is section 9 of `docs/PROTOCOL.md`.

mod error;
pub mod heartbeat;
pub mod idle;
pub mod register;
pub mod store;

pub use error::Error;
pub use idle::IdleRead;
pub use register::REGISTER_TIMEOUT;
pub use store::DataStore;

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::PathBuf,
    time::Duration,
};

use clap::Parser;
use journal::{Durability, Journal};
use node::{
    dial::{connect_with_retry, Backoff},
    session::{Session, SessionConfig, SessionEnd},
    MessageVerb,
};
use protocol::{
    auth::ClusterKey, command::is_valid_name, FrameCodec, DEFAULT_MAX_FRAME, ENVELOPE_ALLOWANCE,
};
use register::{NotRegistered, Registered};
use tokio::net::TcpStream;
use tokio_util::{
    codec::{FramedRead, FramedWrite},
    sync::CancellationToken,
};

/// Name of the file a datanode appends messages to, inside `--dir`.
pub const DATA_FILE: &str = "data.txt";

/// Configuration of the `datanode` binary. Every flag is also an
/// environment variable (`DATANODE_<FLAG>`).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "datanode",
    version,
    about = "Activity 2 storage node: registers with the headnode and appends the messages it \
             is sent to data.txt"
)]
pub struct Config {
    /// Address of the headnode, `host:port`. The host name is resolved again
    /// on every connection attempt.
    #[arg(long, env = "DATANODE_HEADNODE", default_value = "127.0.0.1:10000",
          value_parser = node::parse_host_port)]
    pub headnode: String,

    /// Name to register under (1 to 64 characters from A-Z a-z 0-9 . _ -).
    /// Defaults to the host name (/proc/sys/kernel/hostname, else $HOSTNAME);
    /// under Compose, set the service's `hostname:` or this variable.
    #[arg(long, env = "DATANODE_NAME")]
    pub name: Option<String>,

    /// Folder of data.txt (created if missing).
    #[arg(long, env = "DATANODE_DIR", default_value = ".")]
    pub dir: PathBuf,

    /// When started as root, become the user and group that own --dir
    /// before opening any file, so that the files belong to the folder's
    /// owner: under Docker, the host user who owns the log folder.
    #[arg(long, env = "DATANODE_RUN_AS_OWNER", value_parser = clap::builder::BoolishValueParser::new())]
    pub run_as_owner: bool,

    /// When data.txt is forced to disk before a STORE is confirmed: `never`
    /// (the kernel decides; survives a process crash), `always` (fdatasync
    /// before confirming, shared by concurrent batches), or an interval such
    /// as `1s` (a power loss may lose that much).
    #[arg(long, env = "DATANODE_FSYNC", default_value = "never")]
    pub fsync: Durability,

    /// Largest client message accepted, in bytes. STORE frames may be up to
    /// this plus 1 KiB, as they wrap a client's message.
    #[arg(long, env = "DATANODE_MAX_FRAME", default_value_t = DEFAULT_MAX_FRAME,
          value_parser = protocol::parse_max_frame)]
    pub max_frame: usize,

    /// If nothing at all arrives from the headnode for this long, the link
    /// is taken as dead (its host vanished without closing it) and the
    /// datanode registers again. Must exceed the headnode's heartbeat
    /// interval, since a PING arrives at least that often.
    #[arg(long, env = "DATANODE_IDLE_TIMEOUT", allow_hyphen_values = true, default_value = "30s", value_parser = node::parse_duration)]
    pub idle_timeout: Duration,

    /// How long to keep trying while the headnode says a live datanode
    /// holds our name (NAME_TAKEN) before giving up with exit status 2.
    /// Long enough for the headnode to notice that the holder is our own
    /// previous link, dead; not forever, since two datanodes with one name
    /// (two replicas of one service, a copied compose block) never resolve.
    #[arg(long, env = "DATANODE_NAME_TAKEN_TIMEOUT", allow_hyphen_values = true, default_value = "60s",
          value_parser = node::parse_duration)]
    pub name_taken_timeout: Duration,

    /// File holding the cluster secret: the same file as the headnode's
    /// --cluster-secret-file (at least 16 bytes, mode 0600). The datanode
    /// proves with it that it belongs to the cluster when the headnode
    /// challenges its registration, and tags its heartbeat answers; the
    /// secret itself never crosses the network.
    #[arg(long, env = "DATANODE_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,

    /// Multicast group of the heartbeat probes, instead of the one the
    /// headnode names when it accepts the registration.
    #[arg(long, env = "DATANODE_MULTICAST_GROUP", value_parser = node::multicast::parse_group)]
    pub multicast_group: Option<SocketAddrV4>,

    /// IPv4 address of the interface to hear probes on. Default: the
    /// address this datanode's link to the headnode leaves from.
    #[arg(long, env = "DATANODE_MULTICAST_INTERFACE", value_parser = node::multicast::parse_interface)]
    pub multicast_interface: Option<Ipv4Addr>,
}

impl Config {
    /// The name to register under: `--name`, or else the host name.
    pub fn node_name(&self) -> Result<String, Error> {
        let name = match &self.name {
            Some(name) => name.trim().to_owned(),
            None => host_name().ok_or_else(|| Error::Config {
                flag: "--name",
                reason: "none given and the host name is unknown \
                         (neither /proc/sys/kernel/hostname nor $HOSTNAME): \
                         give --name or DATANODE_NAME"
                    .into(),
            })?,
        };
        if is_valid_name(&name) {
            Ok(name)
        } else {
            Err(Error::Config {
                flag: "--name",
                reason: format!(
                    "'{name}' is not a valid datanode name: use 1 to {} characters from \
                     A-Z a-z 0-9 . _ -",
                    protocol::command::MAX_NAME_LEN
                ),
            })
        }
    }
}

/// The host name, as the kernel or the environment gives it.
pub fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

/// Runs the datanode until `shutdown` is cancelled (or a fatal error).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let name = config.node_name()?;
    let key = match &config.cluster_secret_file {
        Some(path) => Some(node::secret::load("--cluster-secret-file", path)?),
        None => None,
    };
    let path = config.dir.join(DATA_FILE);
    let journal = match Journal::open(&path, config.fsync) {
        Ok(journal) => journal,
        Err(source) => return Err(Error::Open { path, source }),
    };
    tracing::info!(
        %name,
        headnode = %config.headnode,
        data = %path.display(),
        fsync = %config.fsync,
        "datanode starting"
    );
    let tagged = match DataStore::open_tagged(&journal, &name) {
        Ok(tagged) => tagged,
        Err(source) => {
            let path = source.path().to_owned();
            return Err(Error::Open { path, source });
        }
    };
    let store = DataStore::new(journal, name.clone()).with_tagged(tagged);
    let max_frame = config.max_frame.saturating_add(ENVELOPE_ALLOWANCE);
    // Waits between registrations that did not lead to a working link.
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    // When NAME_TAKEN answers began, since the last registration.
    let mut name_taken_since: Option<tokio::time::Instant> = None;
    loop {
        let stream = tokio::select! {
            stream = connect_with_retry(&config.headnode, None) => stream,
            _ = shutdown.cancelled() => return Ok(()),
        };
        match stream {
            Ok(stream) => {
                let link = LinkConfig {
                    name: &name,
                    max_frame,
                    idle_timeout: config.idle_timeout,
                    multicast_group: config.multicast_group,
                    multicast_interface: config.multicast_interface,
                    key: key.as_ref(),
                };
                let headnode = || config.headnode.clone();
                match serve_link(stream, &link, &store, &shutdown).await {
                    LinkEnd::Shutdown => return Ok(()),
                    LinkEnd::Fatal(NotRegistered::BadName(reply)) => {
                        return Err(Error::Refused {
                            headnode: headnode(),
                            reply,
                        })
                    }
                    LinkEnd::Fatal(NotRegistered::AuthFailed(reply)) => {
                        return Err(Error::AuthFailed {
                            headnode: headnode(),
                            reply,
                            path: config.cluster_secret_file.clone().unwrap_or_default(),
                        })
                    }
                    LinkEnd::Fatal(_) => {
                        return Err(Error::NoSecret {
                            headnode: headnode(),
                        })
                    }
                    LinkEnd::Served => {
                        backoff.reset();
                        name_taken_since = None;
                    }
                    LinkEnd::Retry => {}
                    LinkEnd::NameTaken => {
                        let since = *name_taken_since.get_or_insert_with(|| {
                            tracing::warn!(
                                %name,
                                headnode = %config.headnode,
                                patience = ?config.name_taken_timeout,
                                "the headnode says a live datanode already holds the name {name}: \
                                 if it is our previous link, the headnode will see it dead soon; if \
                                 it is another datanode (two replicas of one service, a copied \
                                 compose block), give each datanode its own --name (or host name); \
                                 retrying until --name-taken-timeout"
                            );
                            tokio::time::Instant::now()
                        });
                        if since.elapsed() >= config.name_taken_timeout {
                            return Err(Error::NameTaken {
                                name,
                                headnode: config.headnode.clone(),
                                waited: config.name_taken_timeout,
                            });
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(headnode = %config.headnode, %err, "cannot connect"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}

/// How one connection to the headnode ended.
enum LinkEnd {
    /// Shutdown was requested.
    Shutdown,
    /// We were registered and served the headnode until the link ended.
    Served,
    /// Registration did not succeed this time; try again later.
    Retry,
    /// Registration cannot succeed by retrying (the name, the secret).
    Fatal(NotRegistered),
    /// A live datanode holds our name: our own previous link not yet seen
    /// dead, or another datanode with the same name.
    NameTaken,
}

/// What serving one link needs to know.
struct LinkConfig<'a> {
    name: &'a str,
    max_frame: usize,
    idle_timeout: Duration,
    multicast_group: Option<SocketAddrV4>,
    multicast_interface: Option<Ipv4Addr>,
    key: Option<&'a ClusterKey>,
}

/// Registers on `stream`, then serves the headnode's requests on it (and
/// its heartbeat probes, in multicast mode).
async fn serve_link(
    stream: TcpStream,
    link: &LinkConfig<'_>,
    store: &DataStore,
    shutdown: &CancellationToken,
) -> LinkEnd {
    let LinkConfig {
        name,
        max_frame,
        idle_timeout,
        ..
    } = *link;
    let local = match stream.local_addr() {
        Ok(SocketAddr::V4(local)) => Some(*local.ip()),
        Ok(SocketAddr::V6(local)) => local.ip().to_ipv4_mapped(),
        Err(_) => None,
    };
    let peer = stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (read, write) = stream.into_split();
    let read = IdleRead::new(read, idle_timeout);
    let mut reader = FramedRead::new(read, FrameCodec::new(max_frame));
    let mut writer = FramedWrite::new(write, FrameCodec::new(max_frame));
    let registered = register::register(&mut reader, &mut writer, name, link.key, peer, shutdown);
    let (group, proved) = match registered.await {
        Ok(Registered { group, proved }) => (link.multicast_group.or(group), proved),
        Err(NotRegistered::Shutdown) => return LinkEnd::Shutdown,
        Err(NotRegistered::Retry) => return LinkEnd::Retry,
        Err(NotRegistered::NameTaken) => return LinkEnd::NameTaken,
        Err(fatal) => return LinkEnd::Fatal(fatal),
    };
    // Heartbeat datagrams are tagged only when the headnode checked our
    // proof: then both sides have the secret.
    let key = link.key.filter(|_| proved);
    tracing::info!(%peer, "registered with headnode as {name}");
    let interface = link.multicast_interface.or(local);
    let probes = async {
        let (Some(group), Some(interface)) = (group, interface) else {
            // TCP heartbeats: PINGs come on the link.
            return std::future::pending().await;
        };
        heartbeat::answer_probes(group, interface, name, key, idle_timeout).await
    };
    if group.is_some() {
        // The probes, not the link, now show that the headnode is there.
        reader.get_mut().disarm();
    }
    // From now on the headnode asks and we answer: the shared session loop.
    let writer = writer.into_inner();
    let session = Session::new(reader, writer, peer, SessionConfig::new(MessageVerb::Store))
        .run(store, shutdown);
    let end = tokio::select! {
        end = session => end,
        stopped = probes => {
            match stopped {
                heartbeat::Stopped::CannotJoin(err) => tracing::error!(
                    %peer, ?group, ?interface, %err,
                    "cannot join the heartbeat's multicast group; the headnode will report \
                     this datanode inactive (give --multicast-interface, or run the headnode \
                     with --heartbeat tcp)"
                ),
                heartbeat::Stopped::Silent(silence) => tracing::warn!(
                    %peer, ?silence,
                    "no heartbeat probe from the headnode for the idle timeout; registering again"
                ),
            }
            return LinkEnd::Served;
        }
    };
    match end {
        SessionEnd::Shutdown => LinkEnd::Shutdown,
        SessionEnd::PeerClosed => {
            tracing::warn!(%peer, "the headnode closed the link; registering again");
            LinkEnd::Served
        }
        SessionEnd::FramingLost => {
            tracing::warn!(%peer, "the headnode's stream lost its framing; registering again");
            LinkEnd::Served
        }
        SessionEnd::Io(err) => {
            tracing::warn!(%peer, %err, "lost the link to the headnode; registering again");
            LinkEnd::Served
        }
        // The link's session has no timeouts (its silence is the reader's
        // idle timeout above); kept for completeness.
        SessionEnd::TimedOut(expired) => {
            tracing::warn!(%peer, %expired, "the link timed out; registering again");
            LinkEnd::Served
        }
    }
}

#[cfg(test)]
mod tests {
    use node::Fault;
    use protocol::{ErrorCode, ErrorReply};

    use super::*;

    fn config(name: Option<&str>) -> Config {
        Config::parse_from(
            ["datanode"]
                .into_iter()
                .chain(name.map(|name| ["--name", name]).into_iter().flatten()),
        )
    }

    #[test]
    fn defaults_match_the_brief() {
        let config = config(Some("dn1"));
        assert_eq!(config.headnode, "127.0.0.1:10000");
        assert_eq!(config.dir, PathBuf::from("."));
        assert_eq!(config.fsync, Durability::Never);
        assert_eq!(config.max_frame, DEFAULT_MAX_FRAME);
        assert_eq!(config.idle_timeout, Duration::from_secs(30));
        assert!(Config::try_parse_from(["datanode", "--max-frame", "0"]).is_err());
    }

    #[test]
    fn names_are_validated() {
        assert_eq!(config(Some("datanode1")).node_name().unwrap(), "datanode1");
        assert!(matches!(
            config(Some("../etc")).node_name(),
            Err(Error::Config { .. })
        ));
        assert!(matches!(
            config(Some("two words")).node_name(),
            Err(Error::Config { .. })
        ));
        let err = config(Some("bad name")).node_name().unwrap_err();
        assert_eq!(err.fault(), Fault::Caller);
        assert_eq!(node::runtime::exit_status(err.fault()), 2);
        assert!(err.to_string().starts_with("--name: "), "{err}");
        // Without --name the host name is used; on Linux it exists.
        if host_name().is_some_and(|name| is_valid_name(&name)) {
            assert_eq!(config(None).node_name().ok(), host_name());
        }
    }

    #[test]
    fn a_refused_name_and_a_file_given_for_a_folder_are_usage_errors() {
        let refused = Error::Refused {
            headnode: "127.0.0.1:10000".into(),
            reply: ErrorReply::new(ErrorCode::BadArgument, "a node name is 1 to 64 characters"),
        };
        assert_eq!(node::runtime::exit_status(refused.fault()), 2);
        assert!(refused.to_string().contains("127.0.0.1:10000"), "{refused}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, "").unwrap();
        let path = file.join(DATA_FILE);
        let source = Journal::open(&path, Durability::Never).unwrap_err();
        let open = Error::Open { path, source };
        assert_eq!(node::runtime::exit_status(open.fault()), 2);
        assert!(open.to_string().contains("not-a-folder"), "{open}");
        assert!(open.to_string().contains("not a folder"), "{open}");
    }
}

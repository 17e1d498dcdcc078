//! The headnode of Activity 2: clients send it messages, it stores each on
//! one of its datanodes, tells the client where, and watches the datanodes
//! with heartbeats.
//!
//! # One port, two roles
//!
//! Clients and datanodes dial the same port (10000). A connection's role is
//! decided by its first command, never by the order of arrival: `REGISTER
//! <name>` makes it a datanode link ([`link`]); anything else makes it a
//! client session, served by the shared session loop
//! ([`node::session::Session::run`], given that first frame) with a
//! [`client_session::ClientStore`]. Clients use exactly the Activity 1 commands,
//! `SEND <message>` and `PING`.
//!
//! # Parts
//!
//! - [`router`]: the decisions (placement, heartbeats, failover, waiting
//!   for a datanode, shutdown) as a pure state machine, tested without
//!   sockets or clocks. Its module docs are the design document.
//! - [`placement`]: the `random`, `round-robin` and `least-loaded` policies.
//! - [`driver`]: the single task that owns the router, feeds it events and
//!   clock ticks, carries out its actions, and writes registro_server.txt
//!   before a batch is answered.
//! - [`link`]: the two socket loops of a datanode link.
//! - [`client_session`]: the store behind each client session.
//! - `auth`: the challenge a datanode answers with `--cluster-secret-file`.
//!
//! # Files
//!
//! In `--dir`: `registro_server.txt` (one line per confirmed message, the
//! datanode's sentence as the router checked it) and `heartbeat_server.txt` (one line per known
//! datanode per heartbeat round), and beside the first the sidecar
//! `registro_server.txt.ids`, the ids of tagged messages that a restarted
//! headnode must still recognise (`router/dedupe.rs`).
//!
//! The link protocol is section 9 of `docs/PROTOCOL.md`, the
//! whole of Activity 2 in `docs/ACTIVITY2.md`.

mod auth;
pub mod client_session;
pub mod driver;
mod error;
pub mod http;
mod idmap;
pub mod link;
pub mod multicast;
pub mod placement;
pub mod router;

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use bytes::BytesMut;
use clap::Parser;
use journal::{Durability, Journal};
use node::{
    listener::{Slot, DEFAULT_MAX_CONNECTIONS},
    parse_duration,
    session::{Session, SessionConfig},
    watchdog::{Timeouts, DEFAULT_FRAME_TIMEOUT, DEFAULT_IDLE_TIMEOUT},
    MessageVerb,
};
use protocol::{
    auth::ClusterKey, encode_frame_with, ErrorReply, Frame, FrameCodec, FrameError, Request,
    DEFAULT_MAX_FRAME,
};
use tokio::{
    io::AsyncWriteExt,
    net::{tcp::OwnedWriteHalf, TcpListener, TcpStream},
};
use tokio_util::{codec::FramedRead, sync::CancellationToken};

pub use error::Error;
pub use placement::Placement;
use router::DEFAULT_HEARTBEAT_TIMEOUT;
pub use router::{HeartbeatMode, RouterConfig};

use crate::{
    client_session::ClientStore,
    driver::RouterHandle,
    multicast::{HeartbeatSocket, MulticastConfig},
};

/// File of confirmed messages, inside `--dir`.
pub const REGISTRO_FILE: &str = "registro_server.txt";
/// File of heartbeat reports, inside `--dir`.
pub const HEARTBEAT_FILE: &str = "heartbeat_server.txt";

/// Configuration of the `headnode` binary. Every flag is also an
/// environment variable (`HEADNODE_<FLAG>`).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "headnode",
    version,
    about = "Activity 2 headnode: stores each client message on one datanode and checks the \
             datanodes with heartbeats"
)]
pub struct Config {
    /// Address to listen on, for clients and datanodes alike.
    #[arg(long, env = "HEADNODE_LISTEN", default_value = "0.0.0.0:10000",
          value_parser = node::parse_host_port)]
    pub listen: String,

    /// Folder of registro_server.txt and heartbeat_server.txt (created if
    /// missing).
    #[arg(long, env = "HEADNODE_DIR", default_value = ".")]
    pub dir: PathBuf,

    /// When started as root, become the user and group that own --dir
    /// before opening any file, so that the files belong to the folder's
    /// owner: under Docker, the host user who owns the log folder.
    #[arg(long, env = "HEADNODE_RUN_AS_OWNER", value_parser = clap::builder::BoolishValueParser::new())]
    pub run_as_owner: bool,

    /// Time between heartbeat rounds (each round PINGs every datanode and
    /// writes one line per datanode to heartbeat_server.txt).
    #[arg(long, env = "HEADNODE_HEARTBEAT_INTERVAL", allow_hyphen_values = true, default_value = "5s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// Time a datanode has to answer a heartbeat PING before it is marked
    /// inactive. Must be shorter than the interval. Default: 2s, or 40% of
    /// the interval when that is shorter, so that setting only the interval
    /// always gives a valid pair.
    #[arg(long, env = "HEADNODE_HEARTBEAT_TIMEOUT", allow_hyphen_values = true, value_parser = parse_duration)]
    pub heartbeat_timeout: Option<Duration>,

    /// How heartbeat rounds ask the datanodes: `multicast` (one UDP datagram
    /// to --multicast-group per round, as the course asked) or `tcp` (a PING
    /// on each datanode's link, for networks that carry no multicast, such
    /// as Docker overlay networks and most clouds).
    #[arg(long, env = "HEADNODE_HEARTBEAT", value_enum, default_value_t = HeartbeatMode::Multicast)]
    pub heartbeat: HeartbeatMode,

    /// Multicast group and port of the heartbeat probes (an IPv4 multicast
    /// address; 239.x.y.z is for local use). Datanodes learn it when they
    /// register.
    #[arg(long, env = "HEADNODE_MULTICAST_GROUP", default_value = protocol::heartbeat::DEFAULT_GROUP,
          value_parser = node::multicast::parse_group)]
    pub multicast_group: SocketAddrV4,

    /// Hops a heartbeat probe may travel; 1 keeps it on the local network.
    #[arg(long, env = "HEADNODE_MULTICAST_TTL", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=255))]
    pub multicast_ttl: u32,

    /// IPv4 address of the one interface to send heartbeat probes on.
    /// Default: every address a datanode's link arrived on (127.0.0.1 for
    /// datanodes on this machine, the storage network's under Docker).
    #[arg(long, env = "HEADNODE_MULTICAST_INTERFACE", value_parser = node::multicast::parse_interface)]
    pub multicast_interface: Option<Ipv4Addr>,

    /// Serve the status page (`/`, `/status.json`, `/metrics`) over HTTP at
    /// this HOST:PORT, such as 127.0.0.1:8080. Unset (the default outside
    /// the compose files): no HTTP at all.
    #[arg(long, env = "HEADNODE_HTTP", value_parser = node::parse_host_port)]
    pub http: Option<String>,

    /// How a datanode is chosen for each message, among the active ones.
    #[arg(long, env = "HEADNODE_PLACEMENT", value_enum, default_value_t = Placement::Random)]
    pub placement: Placement,

    /// Time a datanode has to confirm a STORE; after it, the datanode is
    /// marked inactive and its unconfirmed messages go to another datanode.
    #[arg(long, env = "HEADNODE_STORE_TIMEOUT", allow_hyphen_values = true, default_value = "3s", value_parser = parse_duration)]
    pub store_timeout: Duration,

    /// Time a message waits for an active datanode when there is none;
    /// after it, the client gets ERR UNAVAILABLE.
    #[arg(long, env = "HEADNODE_UNAVAILABLE_TIMEOUT", allow_hyphen_values = true, default_value = "10s", value_parser = parse_duration)]
    pub unavailable_timeout: Duration,

    /// Largest client message accepted, in bytes (larger frames get
    /// ERR TOO_LARGE). Datanode replies may be 1 KiB larger.
    #[arg(long, env = "HEADNODE_MAX_FRAME", default_value_t = DEFAULT_MAX_FRAME,
          value_parser = protocol::parse_max_frame)]
    pub max_frame: usize,

    /// Client connections served at once; more wait in the kernel's
    /// backlog, or take the place of the oldest connection that has sent no
    /// whole frame. A datanode's link gives its place back once registered,
    /// so clients never lock datanodes out.
    #[arg(long, env = "HEADNODE_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS,
          allow_hyphen_values = true, value_parser = node::args::count_of_at_least_one)]
    pub max_connections: usize,

    /// How long a request may take to arrive once its first bytes have
    /// (`10s`, `500ms`): a connection that leaves a frame unfinished longer
    /// is closed, so that peers holding connections with half a frame
    /// (slowloris) cannot keep the connection places. Checked every quarter
    /// of the shorter timeout, so a frame gets up to 1.25 times this. `0s`:
    /// no bound.
    #[arg(long, env = "HEADNODE_FRAME_TIMEOUT", allow_hyphen_values = true, default_value = DEFAULT_FRAME_TIMEOUT,
          value_parser = parse_duration)]
    pub frame_timeout: Duration,

    /// How long a client connection may stay open sending nothing while
    /// it is owed nothing (`5m`); it is then closed. `0s`: no bound.
    #[arg(long, env = "HEADNODE_IDLE_TIMEOUT", allow_hyphen_values = true, default_value = DEFAULT_IDLE_TIMEOUT,
          value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// File holding the cluster secret (at least 16 bytes, readable by no
    /// other user: mode 0600). With it, a datanode is admitted only once it
    /// has proved, by an HMAC of a fresh challenge, that it knows the same
    /// secret (its own --cluster-secret-file), and multicast heartbeat
    /// datagrams are authenticated the same way; without it any process
    /// that reaches the port may register under any name. The secret never
    /// crosses the network; it does not encrypt anything.
    #[arg(long, env = "HEADNODE_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,

    /// Write a new random cluster secret (32 bytes from the system, as hex;
    /// mode 0600) to this file unless one is there, then exit: for
    /// --cluster-secret-file of the headnode and every datanode.
    #[arg(long, env = "HEADNODE_CREATE_CLUSTER_SECRET")]
    pub create_cluster_secret: Option<PathBuf>,

    /// When registro_server.txt and heartbeat_server.txt are forced to disk:
    /// `never`, `always` (before answering the client), or an interval such
    /// as `1s`.
    #[arg(long, env = "HEADNODE_FSYNC", default_value = "never")]
    pub fsync: Durability,
}

impl Config {
    /// Checks what clap cannot: the timings must make sense together.
    pub fn validate(&self) -> Result<(), Error> {
        let positive = [
            ("--heartbeat-interval", self.heartbeat_interval),
            ("--heartbeat-timeout", self.heartbeat_timeout()),
            ("--store-timeout", self.store_timeout),
        ];
        for (flag, value) in positive {
            if value.is_zero() {
                return Err(Error::Config(format!("{flag} must be positive")));
            }
        }
        if self.heartbeat_timeout() >= self.heartbeat_interval {
            return Err(Error::Config(format!(
                "--heartbeat-timeout ({:?}) must be shorter than --heartbeat-interval ({:?}): \
                 a round must end before the next one starts",
                self.heartbeat_timeout(),
                self.heartbeat_interval
            )));
        }
        Ok(())
    }

    /// The heartbeat timeout in force: the flag, or its default.
    pub fn heartbeat_timeout(&self) -> Duration {
        self.heartbeat_timeout
            .unwrap_or_else(|| DEFAULT_HEARTBEAT_TIMEOUT.min(self.heartbeat_interval * 2 / 5))
    }

    /// The router's part of the configuration.
    pub fn router_config(&self) -> RouterConfig {
        RouterConfig {
            placement: self.placement,
            heartbeat: self.heartbeat,
            heartbeat_interval: self.heartbeat_interval,
            heartbeat_timeout: self.heartbeat_timeout(),
            store_timeout: self.store_timeout,
            unavailable_timeout: self.unavailable_timeout,
            ..RouterConfig::default()
        }
    }
}

/// What every connection task needs.
#[derive(Debug)]
struct Shared {
    router: RouterHandle,
    /// Client connections, for the status page.
    connections: Arc<status::Connections>,
    max_frame: usize,
    /// Bounds on client connections, and on any connection's first frame.
    timeouts: Timeouts,
    /// The cluster secret, if the headnode has one.
    key: Option<ClusterKey>,
    shutdown: CancellationToken,
}

/// Serves clients and datanodes on `listener` until `shutdown` is
/// cancelled, then drains: pending messages are answered (confirmed, or
/// `ERR SHUTTING_DOWN` within half a second) and connections closed.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    config.validate()?;
    let open = |name: &str| {
        let path = config.dir.join(name);
        Journal::open(&path, config.fsync).map_err(|source| Error::Open { path, source })
    };
    let registro = open(REGISTRO_FILE)?;
    let heartbeats = open(HEARTBEAT_FILE)?;
    let key = match &config.cluster_secret_file {
        Some(path) => Some(node::secret::load("--cluster-secret-file", path)?),
        None => None,
    };
    let ids_path = dedupe::sidecar::path_for(registro.path());
    let (ids, restored) = dedupe::sidecar::open(&ids_path, config.fsync, std::time::Instant::now())
        .map_err(|source| Error::Open {
            path: ids_path.clone(),
            source,
        })?;
    tracing::info!(sidecar = %ids_path.display(), ids = restored.entries(), "message ids read back");
    let multicast = match config.heartbeat {
        HeartbeatMode::Multicast => {
            let socket = HeartbeatSocket::open(MulticastConfig {
                group: config.multicast_group,
                ttl: config.multicast_ttl,
                interface: config.multicast_interface,
            })
            .map_err(Error::Heartbeat)?
            .with_key(key.clone());
            tracing::info!(
                group = %config.multicast_group,
                answers_to = %socket.local_addr().map_err(Error::Heartbeat)?,
                "multicast heartbeat"
            );
            check_multicast(&config).await;
            Some(socket)
        }
        HeartbeatMode::Tcp => None,
    };
    let status_page = match &config.http {
        Some(addr) => {
            let http = status::listen(addr).await.map_err(|source| Error::Http {
                addr: addr.clone(),
                source,
            })?;
            Some(http)
        }
        None => None,
    };
    let addr = listener.local_addr().map_err(Error::Listener)?;
    tracing::info!(
        dir = %config.dir.display(),
        placement = %config.placement,
        heartbeat = %config.heartbeat,
        heartbeat_interval = ?config.heartbeat_interval,
        heartbeat_timeout = ?config.heartbeat_timeout(),
        store_timeout = ?config.store_timeout,
        unavailable_timeout = ?config.unavailable_timeout,
        secret = config.cluster_secret_file.is_some(),
        "listening on {addr}"
    );
    if key.is_none() {
        tracing::warn!(
            "no --cluster-secret-file: any process that reaches {addr} may register as a \
             datanode under any name and answer heartbeats for it; give the headnode and every \
             datanode the same secret file to admit only them"
        );
    }
    let router = driver::spawn(
        config.router_config(),
        rand::random(),
        driver::Files {
            registro,
            heartbeats,
            ids: Some(driver::Ids {
                journal: ids,
                restored,
            }),
        },
        multicast,
        status_page.is_some(),
        shutdown.clone(),
    );
    let connections = Arc::new(status::Connections::default());
    if let Some(http) = status_page {
        tokio::spawn(http::serve(
            http,
            router.clone(),
            Arc::clone(&connections),
            shutdown.clone(),
        ));
    }
    let shared = Arc::new(Shared {
        connections,
        router,
        max_frame: config.max_frame,
        timeouts: Timeouts::from_flags(config.frame_timeout, config.idle_timeout),
        key,
        shutdown: shutdown.clone(),
    });
    node::listener::serve(
        listener,
        shutdown,
        config.max_connections,
        |stream, peer, slot| connection(stream, peer, slot, Arc::clone(&shared)),
    )
    .await;
    tracing::info!("headnode stopped");
    Ok(())
}

/// Says at start-up, clearly, when multicast does not work on this host:
/// a datagram to the group out of `--multicast-interface` (or loopback,
/// where datanodes on this machine listen) must come back. Not fatal: under
/// Docker the probes go out on the storage network, which this cannot test.
async fn check_multicast(config: &Config) {
    let interface = config
        .multicast_interface
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST);
    let group = *config.multicast_group.ip();
    let patience = std::time::Duration::from_secs(1);
    if let Err(err) = node::multicast::self_test(group, interface, patience).await {
        tracing::error!(
            %group,
            %interface,
            %err,
            "multicast does not work on this host's interface {interface}: datanodes there will \
             not hear the heartbeat and will be reported inactive; give the address of a \
             multicast-capable interface with --multicast-interface, or run the headnode with \
             --heartbeat tcp"
        );
    }
}

/// Serves one connection: its first frame decides its role. `slot` is its
/// place among the connections served; a datanode link gives it back.
async fn connection(stream: TcpStream, peer: SocketAddr, mut slot: Slot, shared: Arc<Shared>) {
    let (read, mut write) = stream.into_split();
    let mut reader = FramedRead::new(read, FrameCodec::new(shared.max_frame));
    // Bounded as a client's frames are: whoever connects and never
    // finishes a frame is no datanode either.
    let first = node::listener::read_first_frame(
        &mut reader,
        peer,
        &slot,
        shared.timeouts,
        &shared.shutdown,
    )
    .await;
    let frame = match first {
        None => return,
        Some(Ok(frame)) => frame,
        Some(Err(FrameError::FramingLost { len })) => {
            let err = ErrorReply::framing_lost(len);
            refuse(&mut write, &err).await;
            return;
        }
        Some(Err(FrameError::Io(err))) => {
            tracing::debug!(%peer, %err, "connection failed before its first frame");
            return;
        }
    };
    if let Frame::Data(payload) = &frame {
        if protocol::link::is_register(payload) {
            match Request::parse(payload) {
                Ok(Request::Register(name)) => {
                    if let Some(key) = &shared.key {
                        // The place is held until the proof: whoever cannot
                        // prove takes one only for the proof's timeout.
                        let (reader, write) = (&mut reader, &mut write);
                        if !auth::challenge(reader, write, &name, key, peer, &shared.shutdown).await
                        {
                            return;
                        }
                    }
                    slot.free();
                    let router = shared.router.clone();
                    link::serve(reader, write, peer, name, router, shared.max_frame).await;
                }
                Ok(_) => unreachable!("the verb is REGISTER"),
                // BAD_UTF8 or BAD_ARGUMENT: closed either way, since the
                // peer meant to be a datanode (PROTOCOL.md, section 6).
                Err(err) => {
                    tracing::warn!(%peer, %err, "bad REGISTER");
                    refuse(&mut write, &err).await;
                }
            }
            return;
        }
    }
    let _counted = shared.connections.opened();
    let store = ClientStore::new(shared.router.clone());
    let limits = SessionConfig::new(MessageVerb::Send).with_timeouts(shared.timeouts);
    let end = Session::new(reader, write, peer, limits)
        .with_first(frame)
        .run(&store, &shared.shutdown)
        .await;
    tracing::debug!(%peer, ?end, "client session ended");
}

/// Sends one error reply and closes the connection.
pub(crate) async fn refuse(write: &mut OwnedWriteHalf, err: &ErrorReply) {
    let mut buf = BytesMut::new();
    encode_frame_with(&mut buf, |dst| err.write_payload(dst));
    let _ = write.write_all(&buf).await;
    let _ = write.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        Config::parse_from(std::iter::once("headnode").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_brief() {
        let config = parse(&[]);
        assert_eq!(config.listen, "0.0.0.0:10000");
        assert_eq!(config.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(config.heartbeat_timeout(), Duration::from_secs(2));
        assert_eq!(config.placement, Placement::Random);
        assert_eq!(config.unavailable_timeout, Duration::from_secs(10));
        assert_eq!(config.max_frame, DEFAULT_MAX_FRAME);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn flags_parse_and_timings_are_checked() {
        let config = parse(&[
            "--placement",
            "least-loaded",
            "--heartbeat-interval",
            "200ms",
            "--heartbeat-timeout",
            "150ms",
        ]);
        assert_eq!(config.placement, Placement::LeastLoaded);
        assert!(config.validate().is_ok());
        let config = parse(&["--heartbeat-interval", "1s", "--heartbeat-timeout", "1s"]);
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("shorter"));
        // Only the interval: the default timeout shrinks to fit.
        let config = parse(&["--heartbeat-interval", "1s"]);
        assert_eq!(config.heartbeat_timeout(), Duration::from_millis(400));
        assert!(config.validate().is_ok());
        assert!(Config::try_parse_from(["headnode", "--heartbeat-interval", "5"]).is_err());
        assert!(Config::try_parse_from(["headnode", "--placement", "first"]).is_err());
        assert!(Config::try_parse_from(["headnode", "--max-frame", "0"]).is_err());
    }
}

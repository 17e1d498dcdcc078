//! The headnode's side of the multicast heartbeat: one UDP socket, one task.
//!
//! The router decides when a round starts and what its probe holds
//! ([`crate::router::Action::Multicast`]); the driver hands the probe to
//! this task with the interfaces to send it on, and the task sends one
//! datagram to the group per interface. The same socket (an ephemeral
//! port, logged at start-up) receives the datanodes' unicast answers; each
//! one that parses as an alive datagram goes to the driver, which lets the
//! router judge it. Datagrams that do not parse (truncated, oversized, not
//! UTF-8, anything else) are counted and dropped here, logged at debug:
//! nobody can crash the headnode or change a datanode's state by sending
//! junk at this port. With a cluster secret the probes carry a tag of it,
//! and an answer without a valid tag is dropped the same way, so only a
//! datanode that knows the secret can answer for its name.
//!
//! # Interfaces
//!
//! By default a probe goes out on every local address that a datanode's
//! link arrived on: 127.0.0.1 when the datanodes run on the same machine,
//! the headnode's address on the storage network under Docker. Then the
//! probe reaches exactly the networks the datanodes are on, whatever the
//! routing table says. `--multicast-interface` fixes one address instead.

use std::{
    collections::HashSet,
    io,
    net::{Ipv4Addr, SocketAddrV4},
};

use protocol::{
    auth::ClusterKey,
    heartbeat::{Alive, Probe, MAX_DATAGRAM},
};
use tokio::{net::UdpSocket, sync::mpsc};

use crate::driver::{Event, RouterHandle};

/// Where and how probes are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MulticastConfig {
    /// The heartbeat group.
    pub group: SocketAddrV4,
    /// Hops a probe may travel; 1 keeps it on the local network.
    pub ttl: u32,
    /// The one interface to send on, instead of the links' addresses.
    pub interface: Option<Ipv4Addr>,
}

/// A probe to send, and the interfaces to send it on.
#[derive(Debug)]
pub struct Outgoing {
    /// The round's probe.
    pub probe: Probe,
    /// Local addresses of the interfaces to send it out of.
    pub interfaces: Vec<Ipv4Addr>,
}

/// The open heartbeat socket, before its task starts.
#[derive(Debug)]
pub struct HeartbeatSocket {
    socket: UdpSocket,
    config: MulticastConfig,
    /// With a cluster secret, probes are tagged and answers must be.
    key: Option<ClusterKey>,
}

impl HeartbeatSocket {
    /// Opens the socket; fails, naming the flags, if this host cannot send
    /// multicast as configured.
    pub fn open(config: MulticastConfig) -> io::Result<HeartbeatSocket> {
        let socket = node::multicast::sender(config.ttl)?;
        if let Some(interface) = config.interface {
            socket2::SockRef::from(&socket)
                .set_multicast_if_v4(&interface)
                .map_err(|err| {
                    io::Error::new(
                        err.kind(),
                        format!(
                            "--multicast-interface {interface}: cannot send multicast from this \
                             address ({err}); give the address of a local interface, or use \
                             --heartbeat tcp"
                        ),
                    )
                })?;
        }
        Ok(HeartbeatSocket {
            socket,
            config,
            key: None,
        })
    }

    /// Tags probes with `key`, and takes only answers tagged with it.
    pub fn with_key(mut self, key: Option<ClusterKey>) -> HeartbeatSocket {
        self.key = key;
        self
    }

    /// The heartbeat group.
    pub fn group(&self) -> SocketAddrV4 {
        self.config.group
    }

    /// The socket's local address: where datanodes answer.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.socket.local_addr()
    }

    /// Starts the task; probes sent on the returned channel go out.
    pub fn spawn(self, router: RouterHandle) -> mpsc::UnboundedSender<Outgoing> {
        let (probes, inbox) = mpsc::unbounded_channel();
        tokio::spawn(run(self, inbox, router));
        probes
    }
}

async fn run(
    heartbeat: HeartbeatSocket,
    mut probes: mpsc::UnboundedReceiver<Outgoing>,
    router: RouterHandle,
) {
    let HeartbeatSocket {
        socket,
        config,
        key,
    } = heartbeat;
    let mut failing: HashSet<Ipv4Addr> = HashSet::new();
    let mut rejected: u64 = 0;
    // One byte more than the largest datagram, to tell an oversized one.
    let mut buf = [0u8; MAX_DATAGRAM + 1];
    loop {
        tokio::select! {
            outgoing = probes.recv() => {
                let Some(outgoing) = outgoing else { return };
                let datagram = outgoing.probe.encode_with(key.as_ref());
                send(&socket, &config, &datagram, outgoing.interfaces, &mut failing).await;
            }
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, from)) => match Alive::decode_with(&buf[..len], key.as_ref()) {
                    Ok(alive) => router.send(Event::Alive { alive, from }),
                    Err(err) => {
                        rejected += 1;
                        tracing::debug!(%from, %err, rejected, "heartbeat datagram rejected");
                    }
                },
                // ICMP errors from earlier sends surface here; harmless.
                Err(err) => tracing::debug!(%err, "heartbeat socket receive failed"),
            },
        }
    }
}

async fn send(
    socket: &UdpSocket,
    config: &MulticastConfig,
    datagram: &[u8],
    interfaces: Vec<Ipv4Addr>,
    failing: &mut HashSet<Ipv4Addr>,
) {
    let interfaces = match config.interface {
        Some(interface) => vec![interface],
        None => interfaces,
    };
    for interface in interfaces {
        match node::multicast::send_on(socket, datagram, config.group, interface).await {
            Ok(()) => {
                if failing.remove(&interface) {
                    tracing::info!(%interface, "multicast heartbeat sent again");
                }
            }
            Err(err) => {
                // Said once per interface, not every round.
                if failing.insert(interface) {
                    tracing::error!(
                        group = %config.group,
                        %interface,
                        %err,
                        "cannot send the multicast heartbeat; if this network carries no \
                         multicast, run the headnode with --heartbeat tcp"
                    );
                }
            }
        }
    }
}

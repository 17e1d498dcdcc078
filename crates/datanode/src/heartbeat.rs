//! The datanode's side of the multicast heartbeat.
//!
//! In multicast mode the headnode's answer to `REGISTER` names the
//! heartbeat group (`OK <name> MULTICAST <group>`, or `--multicast-group`
//! overrides it). For the life of that link the datanode then joins the
//! group on the address its link to the headnode leaves from (the storage
//! network's, or 127.0.0.1), and answers every probe it hears with one
//! alive datagram, unicast to the probe's sender, echoing the round and
//! nonce with its name. Anything that is not a probe is dropped, logged at
//! debug. When the headnode checked our cluster secret at registration,
//! probes must carry its tag and answers carry one too: a forged probe
//! (which could aim our answers at any address) gets none.
//!
//! With no TCP `PING`s on the link, the probes are also how the datanode
//! knows its headnode is still there: if no probe it answers arrives for
//! the idle timeout (other datagrams do not count),
//! the link is taken as dead, as [`crate::IdleRead`] does for TCP silence.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    time::Duration,
};

use protocol::{
    auth::ClusterKey,
    heartbeat::{Alive, Probe, MAX_DATAGRAM},
};

/// Why answering probes stopped.
#[derive(Debug)]
pub enum Stopped {
    /// The group could not be joined: nothing will be heard.
    CannotJoin(std::io::Error),
    /// No probe came for the idle timeout.
    Silent(Duration),
}

/// Answers the probes of `group` heard on `interface` as `name`, until no
/// probe has come for `silence`, or the group cannot be joined. With `key`
/// (the headnode checked our secret) only probes tagged with it are
/// answered, and the answers are tagged.
pub async fn answer_probes(
    group: SocketAddrV4,
    interface: Ipv4Addr,
    name: &str,
    key: Option<&ClusterKey>,
    silence: Duration,
) -> Stopped {
    let socket = match node::multicast::receiver(group, interface) {
        Ok(socket) => socket,
        Err(err) => return Stopped::CannotJoin(err),
    };
    tracing::info!(%group, %interface, "answering multicast heartbeat probes");
    let mut buf = [0u8; MAX_DATAGRAM + 1];
    // Only a probe we answer counts as the headnode's sign of life: junk,
    // or a probe without the secret's tag, must not keep a dead link alive.
    let mut deadline = tokio::time::Instant::now() + silence;
    loop {
        let received = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await;
        let (len, from) = match received {
            Err(_) => return Stopped::Silent(silence),
            Ok(Err(err)) => {
                tracing::debug!(%err, "heartbeat receive failed");
                continue;
            }
            Ok(Ok(received)) => received,
        };
        let probe = match Probe::decode_with(&buf[..len], key) {
            Ok(probe) => probe,
            Err(err) => {
                tracing::debug!(%from, %err, "not a heartbeat probe; dropped");
                continue;
            }
        };
        deadline = tokio::time::Instant::now() + silence;
        let alive = Alive {
            round: probe.round,
            nonce: probe.nonce,
            name: name.to_owned(),
        };
        if let Err(err) = socket.send_to(&alive.encode_with(key), from).await {
            tracing::warn!(%from, %err, "cannot answer the heartbeat probe");
        }
    }
}

//! UDP multicast sockets for the heartbeat, set up the way every kind of
//! host needs.
//!
//! Two things decide whether a multicast datagram arrives, and both are
//! set explicitly here rather than left to the routing table:
//!
//! - the *sending interface* (`IP_MULTICAST_IF`): without it the kernel
//!   sends on the interface of the default route, which on a laptop is the
//!   Wi-Fi, in a container with two networks may be the wrong one, and on
//!   127.0.0.1 never reaches a receiver. The headnode sends each probe on
//!   the address its datanodes' links arrived on;
//! - the *joining interface* (`IP_ADD_MEMBERSHIP`): a receiver hears a
//!   group only on the interface it joined it on. A datanode joins on the
//!   address its own link to the headnode leaves from.
//!
//! Loopback works too (sender and receivers on 127.0.0.1, as in the
//! end-to-end tests), as does a bridge between hosts; the TTL (default 1)
//! keeps the datagrams on the local network.

use std::{
    io,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
};

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::UdpSocket;

/// Parses a `--multicast-group` flag: an IPv4 multicast address and a port.
pub fn parse_group(text: &str) -> Result<SocketAddrV4, String> {
    let addr: SocketAddrV4 = text.parse().map_err(|_| {
        format!("'{text}' is not ADDR:PORT with an IPv4 address, such as 239.255.43.1:10010")
    })?;
    if !addr.ip().is_multicast() {
        return Err(format!(
            "{} is not a multicast address (224.0.0.0 to 239.255.255.255; \
             239.x.y.z is for local use)",
            addr.ip()
        ));
    }
    if addr.port() == 0 {
        return Err("the port must not be 0".into());
    }
    Ok(addr)
}

/// Parses a `--multicast-interface` flag: the IPv4 address of a local
/// interface.
pub fn parse_interface(text: &str) -> Result<Ipv4Addr, String> {
    text.parse().map_err(|_| {
        format!("'{text}' is not an IPv4 address (the address of the interface, such as 127.0.0.1)")
    })
}

/// A socket to send probes from (any interface, an ephemeral port) and to
/// receive their unicast answers on.
pub fn sender(ttl: u32) -> io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
    socket.set_multicast_ttl_v4(ttl)?;
    // Datanodes on the sending host itself must hear it.
    socket.set_multicast_loop_v4(true)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

/// Sends `datagram` to `group` out of the interface whose address is
/// `interface`.
pub async fn send_on(
    socket: &UdpSocket,
    datagram: &[u8],
    group: SocketAddrV4,
    interface: Ipv4Addr,
) -> io::Result<()> {
    SockRef::from(socket).set_multicast_if_v4(&interface)?;
    socket.send_to(datagram, SocketAddr::V4(group)).await?;
    Ok(())
}

/// A socket that receives `group`'s datagrams arriving on the interface
/// whose address is `interface`.
///
/// Several receivers on one host (three datanodes on 127.0.0.1) share the
/// group's port: each binds it with `SO_REUSEADDR`, and each gets its own
/// copy of every datagram. Binding the group address rather than
/// 0.0.0.0 keeps unicast traffic to that port out.
pub fn receiver(group: SocketAddrV4, interface: Ipv4Addr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::V4(group).into())?;
    socket.join_multicast_v4(group.ip(), &interface)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// Checks that a datagram to `group`'s address sent out of `interface`
/// comes back to a receiver joined there, within `patience`.
///
/// It uses a port of its own (not the group's), so that the datanodes
/// listening on this host hear nothing. An error means that multicast on
/// that interface does not work here (no multicast route, the interface is
/// down or has no multicast, a firewall): what the heartbeat would need.
pub async fn self_test(
    group: Ipv4Addr,
    interface: Ipv4Addr,
    patience: std::time::Duration,
) -> io::Result<()> {
    let receiver = receiver(SocketAddrV4::new(group, 0), interface)?;
    let port = receiver.local_addr()?.port();
    let sender = sender(1)?;
    let token: [u8; 8] = rand::random();
    send_on(&sender, &token, SocketAddrV4::new(group, port), interface).await?;
    let mut buf = [0; 8];
    let wait = async {
        loop {
            let (len, _) = receiver.recv_from(&mut buf).await?;
            if buf[..len] == token {
                return Ok::<_, io::Error>(());
            }
        }
    };
    tokio::time::timeout(patience, wait).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("a test datagram sent to {group} out of {interface} did not come back"),
        )
    })?
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn groups_must_be_multicast_with_a_port() {
        assert_eq!(
            parse_group("239.255.43.1:10010"),
            Ok("239.255.43.1:10010".parse().unwrap())
        );
        assert!(parse_group("10.0.0.1:10010")
            .unwrap_err()
            .contains("not a multicast"));
        assert!(parse_group("239.1.1.1:0").is_err());
        assert!(parse_group("239.1.1.1").unwrap_err().contains("ADDR:PORT"));
        assert!(parse_interface("eth0").unwrap_err().contains("IPv4"));
    }

    #[tokio::test]
    async fn the_self_test_passes_on_loopback_and_fails_on_a_foreign_address() {
        let group = Ipv4Addr::new(239, 255, 43, 251);
        let patience = Duration::from_secs(5);
        self_test(group, Ipv4Addr::LOCALHOST, patience)
            .await
            .unwrap();
        // Not an address of this host (TEST-NET-1): joining there fails.
        let foreign = Ipv4Addr::new(192, 0, 2, 1);
        assert!(self_test(group, foreign, patience).await.is_err());
    }

    /// Two receivers on loopback share the port and each hears the probe;
    /// the answer comes back unicast to the sender.
    #[tokio::test]
    async fn loopback_multicast_reaches_every_receiver_and_back() {
        let group = parse_group("239.255.43.250:47711").unwrap();
        let lo = Ipv4Addr::LOCALHOST;
        let receivers = [receiver(group, lo).unwrap(), receiver(group, lo).unwrap()];
        let sender = sender(1).unwrap();
        send_on(&sender, b"probe", group, lo).await.unwrap();
        let mut buf = [0; 16];
        for socket in &receivers {
            let (len, from) =
                tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
                    .await
                    .expect("the probe arrives")
                    .unwrap();
            assert_eq!(&buf[..len], b"probe");
            socket.send_to(b"alive", from).await.unwrap();
            let (len, _) = sender.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..len], b"alive");
        }
    }
}

//! The multicast heartbeat with real processes on 127.0.0.1: junk and
//! forged datagrams at the headnode's heartbeat port change nothing.

mod common;

use std::{net::UdpSocket, thread, time::Duration};

use common::*;
use protocol::heartbeat::Alive;

#[test]
fn hostile_datagrams_change_no_heartbeat_and_no_message() {
    let cluster = Cluster::with_datanodes(&["dn1", "dn2", "dn3"], &["--heartbeat", "multicast"]);
    let target = ("127.0.0.1", cluster.heartbeat_port());
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let forged = |round: u64, name: &str| {
        Alive {
            round,
            nonce: 0x0123_4567_89ab_cdef,
            name: name.into(),
        }
        .encode()
        .to_vec()
    };
    let flood = thread::spawn(move || {
        let mut junk: Vec<Vec<u8>> = vec![
            b"\xff\xfe garbage".to_vec(),
            vec![0; 300],
            forged(1, "ghost")[..10].to_vec(),
            b"\0\0\0\x05ALIVE".to_vec(),
            b"\0\0\0\x03\xff\xff\xff".to_vec(),
        ];
        for round in 0..40 {
            // Guessing rounds and nonces for real names, and a name nobody has.
            junk.push(forged(round, "dn2"));
            junk.push(forged(round, "ghost"));
        }
        for _ in 0..10 {
            for datagram in &junk {
                let _ = attacker.send_to(datagram, target);
            }
            thread::sleep(Duration::from_millis(50));
        }
    });
    let log = cluster.root.path().join("registro_cliente.txt");
    let run = cluster.client(&log, &["--count", "3000", "--pipeline", "8"]);
    flood.join().unwrap();
    assert_all_confirmed(&run, 3001);
    let answers = client_answers(&log);
    assert_confirmations_stored(&cluster, &answers);
    assert_eq!(server_records(&cluster.registro_server()), answers);
    // Every round saw exactly the three datanodes, active: the junk neither
    // added a name nor took one out.
    let rounds = heartbeats(&cluster.heartbeat_file());
    assert!(rounds.len() >= 6, "{rounds:?}");
    assert!(
        rounds
            .iter()
            .all(|(name, active)| *active && ["dn1", "dn2", "dn3"].contains(&name.as_str())),
        "{rounds:?}"
    );
    assert!(cluster.head.stderr().contains("multicast heartbeat"));
}

//! The edges of Activity 2: names, roles, no datanode at all, signals.

mod common;

use std::{
    io::{Read, Write},
    time::Duration,
};

use common::*;
use protocol::sentences;

#[test]
fn a_live_name_is_refused_and_freed_when_its_holder_dies() {
    let mut cluster = Cluster::with_datanodes(&["dn1"], &[]);

    // By hand: NAME_TAKEN, then the headnode closes the connection.
    let mut raw = Raw::connect(&cluster.addr());
    let reply = raw.ask("REGISTER dn1");
    assert!(reply.starts_with("ERR NAME_TAKEN "), "{reply}");
    assert_eq!(raw.recv(), None, "closed after the refusal");

    // A bad name: BAD_ARGUMENT, closed.
    let mut raw = Raw::connect(&cluster.addr());
    let reply = raw.ask("REGISTER ../etc");
    assert!(reply.starts_with("ERR BAD_ARGUMENT"), "{reply}");
    assert_eq!(raw.recv(), None);

    // A name that is not UTF-8: BAD_UTF8, closed too, as PROTOCOL.md says.
    let mut stream = std::net::TcpStream::connect(cluster.addr()).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(b"\0\0\0\x0cREGISTER dn\xff").unwrap();
    let mut replies = Vec::new();
    stream
        .read_to_end(&mut replies)
        .expect("closed, not timed out");
    let reply = String::from_utf8_lossy(replies.get(4..).unwrap_or_default());
    assert!(reply.starts_with("ERR BAD_UTF8"), "{reply}");

    // A second datanode binary under the same name keeps being refused...
    let twin_dir = cluster.root.path().join("twin");
    let twin = start_datanode(&cluster.addr(), "dn1", &twin_dir);
    assert!(
        testkit::wait_until(PATIENCE, || twin
            .stderr()
            .contains("already holds the name dn1")),
        "the twin was not refused:\n{}",
        twin.stderr()
    );
    assert!(!twin.stderr().contains("registered with headnode"));
    // ...until the holder dies: then it gets the name by retrying.
    cluster.kill_datanode("dn1");
    assert!(
        testkit::wait_until(PATIENCE, || twin
            .stderr()
            .contains("registered with headnode as dn1")),
        "the twin never took over the name:\n{}",
        twin.stderr()
    );
    let mut client = Raw::connect(&cluster.addr());
    assert_eq!(
        client.ask("SEND hola"),
        format!("OK {}", sentences::headnode_stored("hola", "dn1"))
    );
    assert_eq!(
        testkit::read_records(twin_dir.join("data.txt"))[0].1,
        "hola",
        "stored by the twin"
    );
}

/// Two datanodes with one name (`--scale datanode1=2`) never resolve: the
/// second says so once, with what to do, and gives up with status 2.
#[test]
fn a_twin_that_keeps_hearing_name_taken_gives_up_with_status_2() {
    let cluster = Cluster::with_datanodes(&["dn1"], &[]);
    let twin_dir = cluster.root.path().join("twin").display().to_string();
    let twin = testkit::run(
        "datanode",
        &[
            "--headnode",
            &cluster.addr(),
            "--name",
            "dn1",
            "--dir",
            &twin_dir,
            "--name-taken-timeout",
            "1s",
        ],
        PATIENCE,
    );
    assert_eq!(twin.status.code(), Some(2), "{}", twin.stderr);
    assert_eq!(
        twin.stderr.matches("already holds the name dn1").count(),
        1,
        "said once:\n{}",
        twin.stderr
    );
    assert!(
        twin.stderr.contains("give each datanode its own --name"),
        "{}",
        twin.stderr
    );
}

#[test]
fn roles_come_from_the_first_command_not_from_arrival_order() {
    let mut cluster = Cluster::headnode(&["--unavailable-timeout", "60s"]);
    // A client connects before any datanode, and one sends before any
    // datanode exists: its message waits.
    let mut early = Raw::connect(&cluster.addr());
    let mut waiting = Raw::connect(&cluster.addr());
    assert_eq!(waiting.ask("PING"), "PONG");
    waiting.send("SEND sent before any datanode");

    cluster.start_datanode("dn1");
    cluster.wait_registered("dn1", 1);
    assert_eq!(
        waiting.recv().unwrap(),
        format!(
            "OK {}",
            sentences::headnode_stored("sent before any datanode", "dn1")
        )
    );
    // The connection opened first is still a client: it sent no REGISTER.
    assert_eq!(
        early.ask("SEND hola"),
        format!("OK {}", sentences::headnode_stored("hola", "dn1"))
    );
    // A client that tries REGISTER later is told it has the wrong role, and
    // datanode-only commands are refused too.
    assert!(early.ask("REGISTER dn9").starts_with("ERR WRONG_ROLE"));
    assert!(early.ask("STORE x").starts_with("ERR WRONG_ROLE"));
    assert!(early.ask("SEND ").starts_with("ERR EMPTY_MESSAGE"));
    // Pipelined requests mixing good and bad come back in order.
    for request in ["SEND a", "PING", "FETCH", "SEND b"] {
        early.send(request);
    }
    let replies: Vec<String> = (0..4).map(|_| early.recv().unwrap()).collect();
    assert!(replies[0].ends_with("'a' ha sido registrado en el dn1."));
    assert_eq!(replies[1], "PONG");
    assert!(replies[2].starts_with("ERR UNKNOWN_COMMAND"));
    assert!(replies[3].ends_with("'b' ha sido registrado en el dn1."));

    // A second datanode joining while clients are connected works too.
    cluster.start_datanode("dn2");
    cluster.wait_registered("dn2", 1);
    let log = cluster.root.path().join("registro_cliente.txt");
    assert_all_confirmed(&cluster.client(&log, &["--count", "300"]), 301);
}

#[test]
fn without_datanodes_a_message_gets_unavailable_after_the_timeout() {
    let cluster = Cluster::headnode(&["--unavailable-timeout", "300ms"]);
    let mut raw = Raw::connect(&cluster.addr());
    let reply = raw.ask("SEND nadie me escucha");
    assert!(reply.starts_with("ERR UNAVAILABLE "), "{reply}");

    // The client binary, sending plain SENDs, records the error and exits
    // with a failure. (Tagged, it would resend them until --retry-timeout.)
    let log = cluster.root.path().join("registro_cliente.txt");
    let run = cluster.client(&log, &["--count", "2", "--plain"]);
    assert!(!run.status.success(), "{}", run.stdout);
    let records = testkit::read_records(&log);
    assert_eq!(records.len(), 3);
    assert!(records
        .iter()
        .all(|(_, text)| text.starts_with("ERR UNAVAILABLE")));
    assert!(testkit::read_lines(cluster.registro_server()).is_empty());
}

#[test]
fn sigterm_stops_every_node_quickly_with_status_zero() {
    // A message parked for want of a datanode is answered SHUTTING_DOWN.
    let mut cluster = Cluster::headnode(&["--unavailable-timeout", "60s"]);
    let parked_log = "no active datanode: messages wait for one";
    let parked_count = |cluster: &Cluster| cluster.head.stderr().matches(parked_log).count();
    let mut parked = Raw::connect(&cluster.addr());
    parked.send("SEND waiting");
    assert!(testkit::wait_until(PATIENCE, || parked_count(&cluster) >= 1));

    cluster.start_datanode("dn1");
    cluster.wait_registered("dn1", 1);
    assert!(parked.recv().unwrap().starts_with("OK "), "placed on dn1");
    cluster.kill_datanode("dn1");
    parked.send("SEND waiting again");
    assert!(
        testkit::wait_until(PATIENCE, || parked_count(&cluster) >= 2),
        "{}",
        cluster.head.stderr()
    );

    cluster.head.terminate();
    let reply = parked.recv().unwrap();
    assert!(reply.starts_with("ERR SHUTTING_DOWN"), "{reply}");
    let status = cluster
        .head
        .wait_timeout(Duration::from_secs(30))
        .expect("the headnode exits");
    assert!(status.success(), "headnode: {status}");

    // A datanode exits 0 on SIGTERM too, registered or still dialing.
    let mut cluster = Cluster::with_datanodes(&["dn1", "dn2"], &[]);
    cluster.head.kill();
    for name in ["dn1", "dn2"] {
        let mut node = cluster.datanodes.remove(name).unwrap();
        node.terminate();
        let status = node
            .wait_timeout(Duration::from_secs(30))
            .expect("the datanode exits");
        assert!(status.success(), "{name}: {status}");
    }
    let mut cluster = Cluster::with_datanodes(&["dn3"], &[]);
    let mut node = cluster.datanodes.remove("dn3").unwrap();
    node.terminate();
    let status = node.wait_timeout(Duration::from_secs(30)).expect("exits");
    assert!(status.success(), "dn3: {status}");
    cluster.head.terminate();
    let status = cluster
        .head
        .wait_timeout(Duration::from_secs(30))
        .expect("exits");
    assert!(status.success(), "headnode: {status}");
}

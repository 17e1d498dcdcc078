//! A datanode killed with SIGKILL in the middle of a run, then restarted.

mod common;

use std::{
    path::Path,
    thread::{self, JoinHandle},
};

use common::*;
use testkit::Run;

/// Starts a client sending 20 000 messages (pipeline 16) in the background
/// and returns once datanode `busy` has stored some of them, so that
/// messages are in flight on it.
fn start_long_run(cluster: &Cluster, log: &Path, seed: &str, busy: &str) -> JoinHandle<Run> {
    let args: Vec<String> = [
        "--connect",
        &cluster.addr(),
        "--log",
        &log.display().to_string(),
        "--count",
        "20000",
        "--seed",
        seed,
        "--pipeline",
        "16",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let client = thread::spawn(move || run_client(args));
    let data = cluster.data_file(busy);
    assert!(
        testkit::wait_until(PATIENCE, || complete_lines(&data).len() >= 200),
        "{busy} never stored anything"
    );
    client
}

#[test]
fn a_datanode_killed_mid_run_loses_no_confirmed_message_and_comes_back_multicast() {
    killed_mid_run("multicast");
}

#[test]
fn a_datanode_killed_mid_run_loses_no_confirmed_message_and_comes_back_tcp() {
    killed_mid_run("tcp");
}

/// The kill, with heartbeats in `mode`.
fn killed_mid_run(mode: &str) {
    let mut cluster = Cluster::with_datanodes(&["dn1", "dn2", "dn3"], &["--heartbeat", mode]);
    let log = cluster.root.path().join("registro_cliente.txt");
    // Kill dn2 once it has stored something: messages are in flight on it.
    let client = start_long_run(&cluster, &log, "7", "dn2");
    let victim = cluster.data_file("dn2");
    let mark = heartbeats(&cluster.heartbeat_file()).len();
    cluster.kill_datanode("dn2");
    assert!(
        !client.is_finished(),
        "the client finished before the kill: the test proves nothing; raise --count"
    );
    let stored_before_restart = testkit::read_lines(&victim).len();

    // The client still gets a confirmation for every message...
    let run = client.join().expect("client thread");
    assert_all_confirmed(&run, 20_001);
    let answers = client_answers(&log);
    assert_eq!(answers.len(), 20_001);
    // ...each backed by the data.txt of the datanode it names (a message
    // dn2 wrote but never confirmed may be stored twice: at-least-once).
    assert_confirmations_stored(&cluster, &answers);
    // Confirmed once each, in order: the headnode's registry says the same.
    assert_eq!(server_records(&cluster.registro_server()), answers);
    assert!(
        answers.iter().any(|(_, node)| node == "dn2"),
        "dn2 confirmed nothing before it died"
    );
    let from_dn2 = answers.iter().filter(|(_, node)| node == "dn2").count();
    eprintln!(
        "dn2 stored {stored_before_restart} messages and confirmed {from_dn2} before it \
         died; the difference was stored again elsewhere"
    );

    // The heartbeat reports dn2 inactive. Order of events: the link dropped
    // at the kill, so every round reported after the headnode saw the drop
    // says inactive; at most one round (one already being written at the
    // kill) may still say active. So the inactive line comes at most one
    // round after the kill, i.e. within one interval plus the timeout.
    let inactive_after_kill = || {
        heartbeats(&cluster.heartbeat_file())[mark..]
            .iter()
            .any(|line| *line == ("dn2".to_owned(), false))
    };
    assert!(
        testkit::wait_until(PATIENCE, inactive_after_kill),
        "dn2 never reported inactive"
    );
    let after: Vec<bool> = heartbeats(&cluster.heartbeat_file())[mark..]
        .iter()
        .filter(|(name, _)| name == "dn2")
        .map(|(_, active)| *active)
        .collect();
    let first_inactive = after.iter().position(|active| !active).expect("seen");
    assert!(
        first_inactive <= 1,
        "dn2 reported active in {first_inactive} rounds after its death: {after:?}"
    );
    assert!(
        after[first_inactive..].iter().all(|active| !active),
        "a dead datanode reported active again: {after:?}"
    );

    // Restart dn2 with the same name and folder: active again...
    let lines_before = heartbeats(&cluster.heartbeat_file()).len();
    cluster.start_datanode("dn2");
    cluster.wait_registered("dn2", 1);
    assert!(
        testkit::wait_until(PATIENCE, || {
            heartbeats(&cluster.heartbeat_file())[lines_before..]
                .iter()
                .any(|line| *line == ("dn2".to_owned(), true))
        }),
        "dn2 never reported active again"
    );
    // ...and it receives messages again.
    let second_log = cluster.root.path().join("second.txt");
    let run = cluster.client(&second_log, &["--count", "1000", "--pipeline", "4"]);
    assert_all_confirmed(&run, 1001);
    let answers = client_answers(&second_log);
    assert_confirmations_stored(&cluster, &answers);
    assert!(answers.iter().any(|(_, node)| node == "dn2"));
    assert!(testkit::read_lines(&victim).len() > stored_before_restart);
}

/// A datanode that stops answering without closing its link (SIGSTOP): its
/// messages fail over after the store timeout or a missed heartbeat; when
/// it resumes (SIGCONT) it writes what it had received (second copies) and
/// answers a PING, and is active again.
#[test]
fn a_stalled_datanode_is_bypassed_and_comes_back_by_itself() {
    let cluster = Cluster::with_datanodes(&["dn1", "dn2", "dn3"], &["--store-timeout", "300ms"]);
    let log = cluster.root.path().join("registro_cliente.txt");
    let client = start_long_run(&cluster, &log, "11", "dn2");
    let victim = cluster.data_file("dn2");
    let pid = cluster.datanodes["dn2"].pid();
    let mark = heartbeats(&cluster.heartbeat_file()).len();
    signal(pid, "-STOP");
    assert!(
        !client.is_finished(),
        "the client finished before the stall: the test proves nothing; raise --count"
    );
    let run = client.join().expect("client thread");
    // Resume dn2 before any assertion, so that a failure leaves no
    // stopped process behind.
    let inactive_seen = testkit::wait_until(PATIENCE, || {
        heartbeats(&cluster.heartbeat_file())[mark..]
            .iter()
            .any(|line| *line == ("dn2".to_owned(), false))
    });
    let resumed_at = heartbeats(&cluster.heartbeat_file()).len();
    signal(pid, "-CONT");
    assert!(inactive_seen, "the stalled dn2 was never reported inactive");

    assert_all_confirmed(&run, 20_001);
    let answers = client_answers(&log);
    assert_eq!(server_records(&cluster.registro_server()), answers);
    // Back by itself: it answers a PING, and is reported active again.
    assert!(
        testkit::wait_until(PATIENCE, || {
            heartbeats(&cluster.heartbeat_file())[resumed_at..]
                .iter()
                .any(|line| *line == ("dn2".to_owned(), true))
        }),
        "dn2 never came back"
    );
    // Whatever it wrote late is a second copy: every confirmation is still
    // backed by the datanode it names, and confirmed only once.
    assert_confirmations_stored(&cluster, &answers);
    let from_dn2 = answers.iter().filter(|(_, node)| node == "dn2").count();
    let on_dn2 = testkit::read_lines(&victim).len();
    assert!(on_dn2 >= from_dn2);
    eprintln!(
        "dn2 confirmed {from_dn2} messages and holds {on_dn2} (second copies: {})",
        on_dn2 - from_dn2
    );
}

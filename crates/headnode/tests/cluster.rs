//! Activity 2 end to end: a headnode, three datanodes and the client, as
//! real processes on 127.0.0.1.

mod common;

use std::collections::HashMap;

use common::*;

/// The whole of Activity 2 in one run: every message lands on exactly the
/// datanode its answer names, both registries tell the same story line
/// for line, random placement is fair, and the heartbeat sees all three.
#[test]
fn three_datanodes_store_every_message_where_the_answer_says() {
    // Heartbeats lenient enough that a datanode starved by a loaded machine
    // is not taken for dead: then no message fails over, none is stored
    // twice, and the data files can be compared exactly.
    let lenient = ["--heartbeat-interval", "1s", "--heartbeat-timeout", "900ms"];
    let cluster = Cluster::with_datanodes(&["dn1", "dn2", "dn3"], &lenient);
    let log = cluster.root.path().join("registro_cliente.txt");
    let run = cluster.client(&log, &["--count", "3000", "--seed", "3"]);
    // 3000 drawn messages, then "exit".
    let total = 3001;
    assert_all_confirmed(&run, total);

    let answers = client_answers(&log);
    assert_eq!(answers.len(), total);

    // Nothing failed, so nothing was stored twice: each datanode's data.txt
    // holds exactly the messages confirmed from it (with multiplicities).
    let mut confirmed: HashMap<&str, HashMap<String, usize>> = HashMap::new();
    for (message, node) in &answers {
        *confirmed
            .entry(node.as_str())
            .or_default()
            .entry(message.clone())
            .or_default() += 1;
    }
    for name in ["dn1", "dn2", "dn3"] {
        let stored = data_counts(&cluster.data_file(name));
        assert_eq!(
            stored,
            confirmed.remove(name).unwrap_or_default(),
            "data.txt of {name} differs from what was confirmed from it"
        );
    }
    assert!(
        confirmed.is_empty(),
        "answers name unknown datanodes: {confirmed:?}"
    );

    // registro_server.txt and registro_cliente.txt agree line for line.
    let server = server_records(&cluster.registro_server());
    assert_eq!(server, answers, "the two registries disagree");

    // Random placement: each datanode gets a third, ~1000 +- 26 (one
    // standard deviation). 25%..42% is over 9 deviations from the mean on
    // either side: a correct uniform draw never fails this.
    let mut shares: HashMap<&str, usize> = HashMap::new();
    for (_, node) in &answers {
        *shares.entry(node.as_str()).or_default() += 1;
    }
    for name in ["dn1", "dn2", "dn3"] {
        let share = shares.get(name).copied().unwrap_or(0);
        assert!(
            (total * 25 / 100..=total * 42 / 100).contains(&share),
            "{name} stored {share} of {total}: {shares:?}"
        );
    }

    // The heartbeat log shows a round with all three active.
    assert!(
        testkit::wait_until(PATIENCE, || {
            let lines = heartbeats(&cluster.heartbeat_file());
            lines.len() >= 3 && {
                let mut last: Vec<(String, bool)> = lines[lines.len() - 3..].to_vec();
                last.sort();
                last == [
                    ("dn1".to_owned(), true),
                    ("dn2".to_owned(), true),
                    ("dn3".to_owned(), true),
                ]
            }
        }),
        "heartbeat_server.txt never showed all three active: {:?}",
        heartbeats(&cluster.heartbeat_file())
    );
}

/// A headnode killed and started again on the same port: the datanodes
/// register again by themselves and clients are served again.
#[test]
fn datanodes_register_again_with_a_restarted_headnode() {
    let mut cluster = Cluster::with_datanodes(&["dn1", "dn2", "dn3"], &[]);
    let first_log = cluster.root.path().join("first.txt");
    assert_all_confirmed(&cluster.client(&first_log, &["--count", "200"]), 201);

    let addr = cluster.addr();
    cluster.head.kill();
    // The datanodes notice and start dialing again; nothing listens yet.
    let head = start_headnode(&cluster.head_dir(), &addr, &[]);
    assert_eq!(
        head.addr_string(),
        addr,
        "the new headnode got the same port"
    );
    cluster.head = head;
    for name in ["dn1", "dn2", "dn3"] {
        cluster.wait_registered(name, 2);
    }

    let second_log = cluster.root.path().join("second.txt");
    let run = cluster.client(&second_log, &["--count", "600", "--pipeline", "8"]);
    assert_all_confirmed(&run, 601);
    let answers = client_answers(&second_log);
    assert_confirmations_stored(&cluster, &answers);
    // The new headnode appended to the same registry; both runs are in it.
    assert_eq!(server_records(&cluster.registro_server()).len(), 201 + 601);
    // And the new headnode spread the second run over all three.
    for name in ["dn1", "dn2", "dn3"] {
        assert!(
            answers.iter().any(|(_, node)| node == name),
            "{name} got nothing after the restart"
        );
    }
}

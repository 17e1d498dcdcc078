//! Who may be a datanode (issue 11, item 4), with real processes: without
//! a cluster secret anyone may, as before, and the headnode says so; with
//! one, an impostor never takes a name, forged heartbeat answers count for
//! nothing, and the real datanode takes its name back from a holder that
//! stopped proving.

mod common;

use std::{
    net::{Ipv4Addr, SocketAddrV4, UdpSocket},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::Duration,
};

use common::*;
use protocol::{
    auth::ClusterKey,
    heartbeat::{Alive, DEFAULT_GROUP},
    link,
};

/// A private secret file in `dir`.
fn secret_file(dir: &Path, name: &str, secret: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

const SECRET: &str = "the cluster's own secret, 32+ bytes";

/// Registers `name` on a raw connection; returns it and the headnode's
/// first answer (`OK ...`, or `CHALLENGE <nonce>`).
fn ask_to_register(cluster: &Cluster, name: &str) -> (Raw, String) {
    let mut raw = Raw::connect(&cluster.addr());
    let answer = raw.ask(&format!("REGISTER {name}"));
    (raw, answer)
}

/// An impostor asks for `name` and answers the challenge with `proof`:
/// refused with `ERR AUTH_FAILED`, then the connection closes.
fn assert_impostor_refused(cluster: &Cluster, name: &str, proof: &str) {
    let (mut raw, answer) = ask_to_register(cluster, name);
    assert!(answer.starts_with("CHALLENGE "), "{answer}");
    let answer = raw.ask(proof);
    assert!(answer.starts_with("ERR AUTH_FAILED "), "{answer}");
    assert_eq!(raw.recv(), None, "closed after the refusal");
}

#[test]
fn without_a_secret_anyone_may_register_and_the_headnode_says_so_once() {
    let cluster = Cluster::headnode(&["--heartbeat", "tcp"]);
    let (_raw, answer) = ask_to_register(&cluster, "anyone");
    // The bytes of before: the answer to REGISTER is the OK itself.
    assert_eq!(answer, "OK anyone");
    let warning = "no --cluster-secret-file: any process";
    assert!(cluster.head.logged(warning, PATIENCE));
    assert_eq!(cluster.head.stderr().matches(warning).count(), 1);
}

#[test]
fn a_datanode_with_a_secret_still_registers_with_a_headnode_without_one() {
    let mut cluster = Cluster::headnode(&[]);
    let secret = secret_file(cluster.root.path(), "secret", SECRET);
    cluster.start_datanode_with("dn1", &["--cluster-secret-file", secret.to_str().unwrap()]);
    cluster.wait_registered("dn1", 1);
    let stderr = cluster.datanodes["dn1"].stderr();
    assert!(
        stderr.contains("without asking for the cluster secret"),
        "{stderr}"
    );
    // Untagged heartbeats, as the headnode speaks: dn1 is reported active.
    assert!(testkit::wait_until(PATIENCE, || {
        heartbeats(&cluster.heartbeat_file()).contains(&("dn1".to_owned(), true))
    }));
}

#[test]
fn bad_secret_files_and_wrong_secrets_stop_a_node_with_status_2() {
    let root = testkit::TempDir::new().unwrap();
    let dir = root.path().display().to_string();
    let open = root.path().join("open");
    std::fs::write(&open, SECRET).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let short = secret_file(root.path(), "short", "too short");
    for (file, says) in [(&open, "mode 0644"), (&short, "fewer than the 16")] {
        let path = file.to_str().unwrap();
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--dir",
            &dir,
            "--cluster-secret-file",
            path,
        ];
        let run = testkit::run("headnode", &args, PATIENCE);
        assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
        let named = format!("--cluster-secret-file {path}: ");
        assert!(
            run.stderr.contains(&named) && run.stderr.contains(says),
            "{}",
            run.stderr
        );
    }

    let good = secret_file(root.path(), "good", SECRET);
    let wrong = secret_file(root.path(), "wrong", "not the cluster's secret at all");
    let mut cluster = Cluster::headnode(&["--cluster-secret-file", good.to_str().unwrap()]);
    let data = cluster.data_dir("x").display().to_string();
    let addr = cluster.addr();
    let datanode = |extra: &[&str]| {
        let mut args = vec!["--headnode", &addr, "--name", "x"];
        args.extend(["--dir", &data]);
        args.extend(extra);
        testkit::run("datanode", &args, PATIENCE)
    };
    let run = datanode(&[]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("give --cluster-secret-file"),
        "{}",
        run.stderr
    );
    let run = datanode(&["--cluster-secret-file", wrong.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("refused our proof"), "{}", run.stderr);
    assert!(
        run.stderr.contains(wrong.to_str().unwrap()),
        "{}",
        run.stderr
    );
    // The one with the secret is let in.
    cluster.start_datanode_with("dn1", &["--cluster-secret-file", good.to_str().unwrap()]);
    cluster.wait_registered("dn1", 1);
    let stderr = cluster.head.stderr();
    assert_eq!(
        stderr
            .matches("did not prove it knows the cluster secret")
            .count(),
        2
    );
    assert!(!stderr.contains("no --cluster-secret-file"), "{stderr}");
}

/// Sends, for every probe this headnode sends, forged answers naming
/// `name`: one untagged and one tagged with a wrong key, until `stop`.
fn forge_answers(
    cluster: &Cluster,
    name: &'static str,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<u64> {
    let heartbeat_port = cluster.heartbeat_port();
    let group: SocketAddrV4 = DEFAULT_GROUP.parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket
        .bind(&std::net::SocketAddr::V4(group).into())
        .unwrap();
    socket
        .join_multicast_v4(group.ip(), &Ipv4Addr::LOCALHOST)
        .unwrap();
    let socket: UdpSocket = socket.into();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let wrong = ClusterKey::new(b"a key that is not the cluster's").unwrap();
    thread::spawn(move || {
        let mut forged = 0;
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            let Ok((len, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            if from.port() != heartbeat_port {
                continue; // another test's headnode
            }
            // HEARTBEAT <round> <nonce> <tag>: the round and nonce are in
            // the clear for anyone on the network to copy.
            let text = std::str::from_utf8(&buf[4..len]).unwrap();
            let words: Vec<&str> = text.split(' ').collect();
            assert_eq!((words[0], words.len()), ("HEARTBEAT", 4), "{text}");
            let round = words[1].parse().unwrap();
            let nonce = u64::from_str_radix(words[2], 16).unwrap();
            let alive = Alive {
                round,
                nonce,
                name: name.into(),
            };
            for datagram in [alive.encode(), alive.encode_with(Some(&wrong))] {
                socket
                    .send_to(&datagram, ("127.0.0.1", heartbeat_port))
                    .unwrap();
                forged += 1;
            }
        }
        forged
    })
}

#[test]
fn with_a_secret_impostors_never_take_a_name_and_the_real_datanode_is_never_locked_out() {
    let root = testkit::TempDir::new().unwrap();
    let secret = secret_file(root.path(), "secret", SECRET);
    let secret_flag = ["--cluster-secret-file", secret.to_str().unwrap()];
    let mut cluster = Cluster::headnode(&secret_flag);
    for name in ["dn1", "dn2"] {
        cluster.start_datanode_with(name, &secret_flag);
    }
    for name in ["dn1", "dn2"] {
        cluster.wait_registered(name, 1);
    }
    let key = node::secret::load("--cluster-secret-file", &secret).unwrap();

    // Impostors: a live name, a new one, a proof that is no proof.
    assert_impostor_refused(&cluster, "dn1", "PROOF 0123");
    assert_impostor_refused(&cluster, "ghost", &format!("PROOF {}", "0".repeat(64)));
    assert_impostor_refused(&cluster, "dn2", "OK dn2");
    // A proof made for another name and an older challenge is worth nothing.
    let (mut raw, challenge) = ask_to_register(&cluster, "ghost");
    let nonce = link::parse_challenge(challenge.as_bytes()).unwrap();
    let answer = raw.ask(&link::proof(&key, "dn1", &nonce));
    assert!(answer.starts_with("ERR AUTH_FAILED"), "{answer}");
    let (mut raw, _) = ask_to_register(&cluster, "ghost");
    let answer = raw.ask(&link::proof(&key, "ghost", &nonce));
    assert!(answer.starts_with("ERR AUTH_FAILED"), "replayed: {answer}");

    // The scenario: dn1 stalls and misses a heartbeat; an impostor
    // cannot take its name, forged answers do not keep anyone active, and
    // dn1, resumed, is active again on its own link.
    let stop = Arc::new(AtomicBool::new(false));
    let forger = forge_answers(&cluster, "dn1", Arc::clone(&stop));
    let pid = cluster.datanodes["dn1"].pid();
    let mark = heartbeats(&cluster.heartbeat_file()).len();
    signal(pid, "-STOP");
    let inactive = testkit::wait_until(PATIENCE, || {
        heartbeats(&cluster.heartbeat_file())[mark..].contains(&("dn1".to_owned(), false))
    });
    let refused = std::panic::catch_unwind(|| assert_impostor_refused(&cluster, "dn1", "PROOF 00"));
    // A few more rounds with dn1 stopped: the forged answers, every round.
    let stopped_rounds = heartbeats(&cluster.heartbeat_file()).len();
    let more = testkit::wait_until(PATIENCE, || {
        heartbeats(&cluster.heartbeat_file()).len() >= stopped_rounds + 2 * 3
    });
    let while_stopped = heartbeats(&cluster.heartbeat_file())[stopped_rounds..].to_vec();
    signal(pid, "-CONT");
    stop.store(true, Ordering::Relaxed);
    let forged = forger.join().unwrap();
    assert!(inactive, "the stopped dn1 was never reported inactive");
    assert!(
        refused.is_ok(),
        "an impostor took or was offered dn1's name"
    );
    assert!(
        more && forged > 0,
        "no rounds or no forgeries while dn1 was stopped"
    );
    assert!(
        !while_stopped.contains(&("dn1".to_owned(), true)),
        "a forged answer made the stopped dn1 active: {while_stopped:?}"
    );
    let resumed = heartbeats(&cluster.heartbeat_file()).len();
    assert!(testkit::wait_until(PATIENCE, || {
        heartbeats(&cluster.heartbeat_file())[resumed..].contains(&("dn1".to_owned(), true))
    }));
    assert_eq!(
        cluster.datanodes["dn1"]
            .stderr()
            .matches("registered with headnode")
            .count(),
        1,
        "dn1 kept its link"
    );

    // A holder that proved once and then stops answering (a hung process)
    // holds the name only until its first missed round: the real dn3 then
    // takes it over.
    let (mut holder, challenge) = ask_to_register(&cluster, "dn3");
    let nonce = link::parse_challenge(challenge.as_bytes()).unwrap();
    let answer = holder.ask(&link::proof(&key, "dn3", &nonce));
    assert!(answer.starts_with("OK dn3"), "{answer}");
    cluster.start_datanode_with("dn3", &secret_flag);
    cluster.wait_registered("dn3", 1);
    assert_eq!(holder.recv(), None, "the hung holder's link was closed");

    // Messages go only where they are stored.
    let log = cluster.root.path().join("registro_cliente.txt");
    let run = cluster.client(&log, &["--count", "300", "--pipeline", "4"]);
    assert_all_confirmed(&run, 301);
    let answers = client_answers(&log);
    assert!(answers
        .iter()
        .all(|(_, node)| ["dn1", "dn2", "dn3"].contains(&node.as_str())));
    assert_confirmations_stored(&cluster, &answers);
    assert_eq!(server_records(&cluster.registro_server()), answers);
}

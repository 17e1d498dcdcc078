//! The multicast heartbeat across hosts: the headnode and each datanode in
//! a network namespace of its own, joined by a Linux bridge that the test
//! creates, so that every probe really leaves one network stack and enters
//! another (on 127.0.0.1 it never leaves the host's).
//!
//! Needs root and `ip` (iproute2); where either is missing the test says so
//! and passes, except under `CI=true`, where it fails. Docker sets the
//! FORWARD chain's policy to DROP and bridged frames pass through iptables,
//! so the test accepts its bridge's own traffic there with one rule, removed
//! again when the lab is dropped (also when the test fails). A lab left
//! behind by a killed test run is removed by the next run.

mod common;

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use common::*;
use testkit::{Node, TempDir};

/// Prefix of every namespace, bridge and veth name: `i343` and the pid.
const PREFIX: &str = "i343";
const SUBNET: &str = "10.243.0";

/// Namespaces on one bridge, with the iptables rule that lets it forward.
struct Lab {
    id: u32,
    hosts: Vec<String>,
    rule: Option<[String; 6]>,
}

impl Lab {
    /// Host `i` (0-based) gets address 10.243.0.(i+1). `Err` says why the
    /// lab cannot be built here.
    fn new(hosts: usize) -> Result<Lab, String> {
        if !output("id", &["-u"]).is_ok_and(|uid| uid.trim() == "0") {
            return Err("needs root (network namespaces and a bridge)".into());
        }
        if output("ip", &["-V"]).is_err() {
            return Err("needs `ip` (iproute2)".into());
        }
        remove_stale_labs();
        let id = std::process::id();
        let mut lab = Lab {
            id,
            hosts: Vec::new(),
            rule: None,
        };
        let bridge = lab.bridge();
        // From here on, dropping `lab` (an early return too) undoes it all.
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["link", "set", &bridge, "up"])?;
        if output("iptables", &["-S", "FORWARD"]).is_ok() {
            let rule = ["FORWARD", "-i", &bridge, "-o", &bridge, "-j"].map(String::from);
            let mut insert = vec!["-I"];
            insert.extend(rule.iter().map(String::as_str));
            insert.push("ACCEPT");
            run("iptables", &insert)?;
            lab.rule = Some(rule);
        }
        for index in 0..hosts {
            let ns = format!("{PREFIX}-{id}-{index}");
            ip(&["netns", "add", &ns])?;
            lab.hosts.push(ns.clone());
            let (outside, inside) = (
                format!("{PREFIX}{id}h{index}"),
                format!("{PREFIX}{id}n{index}"),
            );
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ])?;
            ip(&["link", "set", &inside, "netns", &ns])?;
            ip(&["link", "set", &outside, "master", &bridge])?;
            ip(&["link", "set", &outside, "up"])?;
            let addr = format!("{}/24", lab.addr(index));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &inside])?;
            ip(&["-n", &ns, "link", "set", &inside, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(lab)
    }

    fn bridge(&self) -> String {
        format!("{PREFIX}b{}", self.id)
    }

    fn addr(&self, host: usize) -> String {
        format!("{SUBNET}.{}", host + 1)
    }

    /// The launcher that runs a program in host `host`'s namespace.
    fn launcher(&self, host: usize) -> [&str; 4] {
        ["ip", "netns", "exec", &self.hosts[host]]
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth inside it, and its peer.
        for ns in &self.hosts {
            let _ = ip(&["netns", "delete", ns]);
        }
        let _ = ip(&["link", "delete", &self.bridge()]);
        if let Some(rule) = &self.rule {
            let mut delete = vec!["-D"];
            delete.extend(rule.iter().map(String::as_str));
            delete.push("ACCEPT");
            let _ = run("iptables", &delete);
        }
    }
}

/// Removes what a test run killed before its drop left: namespaces,
/// bridges and rules whose pid is gone.
fn remove_stale_labs() {
    let alive = |id: &str| Path::new("/proc").join(id).exists();
    let namespaces = output("ip", &["netns", "list"]).unwrap_or_default();
    for ns in namespaces
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        if let Some(id) = ns.strip_prefix(&format!("{PREFIX}-")) {
            if !alive(id.split('-').next().unwrap_or_default()) {
                let _ = ip(&["netns", "delete", ns]);
            }
        }
    }
    let bridges = output("ip", &["-o", "link", "show", "type", "bridge"]).unwrap_or_default();
    for line in bridges.lines() {
        let name = line.split(": ").nth(1).unwrap_or_default();
        if let Some(id) = name.strip_prefix(&format!("{PREFIX}b")) {
            if !alive(id) {
                let _ = ip(&["link", "delete", name]);
            }
        }
    }
    let rules = output("iptables", &["-S", "FORWARD"]).unwrap_or_default();
    for rule in rules.lines() {
        let words: Vec<&str> = rule.split_whitespace().collect();
        let Some(bridge) = words.iter().find(|w| w.starts_with(&format!("{PREFIX}b"))) else {
            continue;
        };
        if !alive(&bridge[PREFIX.len() + 1..]) {
            let mut delete = vec!["-D"];
            delete.extend(&words[1..]);
            let _ = run("iptables", &delete);
        }
    }
}

fn output(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stderr(Stdio::piped())
        .output()
        .map_err(|err| format!("{program}: {err}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    output(program, args).map(drop)
}

fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

/// The lab, or `None` with the reason printed (a failure under CI=true).
fn lab_or_skip(hosts: usize) -> Option<Lab> {
    match Lab::new(hosts) {
        Ok(lab) => Some(lab),
        Err(reason) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("the namespace test cannot run under CI=true: {reason}")
        }
        Err(reason) => {
            eprintln!("SKIPPED the namespace test: {reason}");
            None
        }
    }
}

#[test]
fn multicast_heartbeats_cross_a_bridge_between_namespaces() {
    let Some(lab) = lab_or_skip(4) else { return };
    let root = TempDir::new().unwrap();
    let dir = |name: &str| root.path().join(name).display().to_string();
    let listen = format!("{}:0", lab.addr(0));
    let head_dir = dir("headnode");
    let head = Node::spawn_via(
        &lab.launcher(0),
        "headnode",
        &[
            "--listen",
            &listen,
            "--dir",
            &head_dir,
            "--heartbeat",
            "multicast",
            "--heartbeat-interval",
            "300ms",
            "--heartbeat-timeout",
            "200ms",
        ],
        true,
    );
    let head_addr = head.addr_string();
    let start = |index: usize| {
        let name = format!("dn{index}");
        Node::spawn_via(
            &lab.launcher(index),
            "datanode",
            &[
                "--headnode",
                &head_addr,
                "--name",
                &name,
                "--dir",
                &dir(&name),
            ],
            false,
        )
    };
    let mut datanodes: Vec<Node> = (1..=3).map(start).collect();
    for (index, node) in datanodes.iter().enumerate() {
        let line = format!("registered with headnode as dn{}", index + 1);
        assert!(
            testkit::wait_until(PATIENCE, || node.stderr().contains(&line)),
            "dn{} registered across the bridge:\n{}",
            index + 1,
            node.stderr()
        );
    }
    // From now on every round reports the three: three rounds' worth of
    // lines after the one in flight, every one of them active.
    let heartbeat_file = root.path().join("headnode/heartbeat_server.txt");
    let seen = heartbeats(&heartbeat_file).len();
    assert!(
        testkit::wait_until(PATIENCE, || heartbeats(&heartbeat_file).len() >= seen + 12),
        "heartbeat rounds go on:\n{}",
        head.stderr()
    );
    let rounds = heartbeats(&heartbeat_file);
    let last = &rounds[rounds.len() - 9..];
    assert!(
        last.iter().all(|(_, active)| *active),
        "every datanode answers the probes across the bridge: {last:?}\nheadnode:\n{}",
        head.stderr()
    );
    for (index, node) in datanodes.iter().enumerate() {
        let joined = format!("interface={}", lab.addr(index + 1));
        assert!(
            node.stderr().contains(&joined),
            "dn{} joined the group on its own network:\n{}",
            index + 1,
            node.stderr()
        );
    }

    // Messages sent from the headnode's namespace, stored across the bridge.
    let log = root.path().join("registro_cliente.txt");
    let log_arg = log.display().to_string();
    let client = testkit::run_via(
        &lab.launcher(0),
        "client",
        &["--connect", &head_addr, "--log", &log_arg, "--count", "300"],
        Duration::from_secs(300),
    );
    assert_all_confirmed(&client, 301);
    for (message, datanode) in client_answers(&log) {
        let stored = complete_lines(&root.path().join(&datanode).join("data.txt"));
        assert!(
            stored
                .iter()
                .any(|line| line.ends_with(&format!(" -> {message}"))),
            "'{message}' is in {datanode}'s data.txt"
        );
    }

    // dn2 dies: inactive within a round; started again: active again.
    let seen = heartbeats(&heartbeat_file).len();
    datanodes[1].kill();
    assert!(
        testkit::wait_until(PATIENCE, || reported(&heartbeat_file, seen, "dn2", false)),
        "dn2 reported inactive after kill -9"
    );
    let seen = heartbeats(&heartbeat_file).len();
    datanodes[1] = start(2);
    assert!(
        testkit::wait_until(PATIENCE, || reported(&heartbeat_file, seen, "dn2", true)),
        "dn2 active again once restarted:\n{}",
        head.stderr()
    );
}

/// Whether a heartbeat line after the first `seen` says `name` is `active`.
fn reported(file: &Path, seen: usize, name: &str, active: bool) -> bool {
    heartbeats(file)
        .get(seen..)
        .is_some_and(|lines| lines.iter().any(|(n, a)| n == name && *a == active))
}

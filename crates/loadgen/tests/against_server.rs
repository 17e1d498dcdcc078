//! The load generator against a real `server` process: every message is
//! confirmed, counted, and lands in log.txt; idle connections are accepted
//! and the server's memory is read. No timing is asserted.

use std::time::Duration;

use testkit::{read_lines, run, Node, TempDir};

const TIMEOUT: Duration = Duration::from_secs(120);

fn server(dir: &TempDir) -> Node {
    let dir = dir.path().to_str().unwrap();
    Node::spawn(
        "server",
        &["--listen", "127.0.0.1:0", "--dir", dir, "--fsync", "never"],
    )
}

#[test]
fn every_pipelined_message_is_confirmed_and_logged() {
    let dir = TempDir::new().unwrap();
    let server = server(&dir);
    let addr = server.addr_string();
    let args = [
        "--connect",
        &addr,
        "--connections",
        "4",
        "--pipeline",
        "8",
        "--messages",
        "500",
        "--size",
        "20",
    ];
    let out = run("loadgen", &args, TIMEOUT);
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("confirmed: 500 of 500"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("errors: 0 "), "{}", out.stdout);
    let lines = read_lines(dir.path().join("log.txt"));
    assert_eq!(lines.len(), 500);
    assert!(lines.iter().all(|l| l.ends_with(&"x".repeat(20))));
}

/// `--tagged`: every message a `SENDID`, each id new, so each is logged
/// once, and the sidecar holds what is not yet acknowledged.
#[test]
fn tagged_messages_are_confirmed_and_logged_once() {
    let dir = TempDir::new().unwrap();
    let server = server(&dir);
    let addr = server.addr_string();
    let args = [
        "--connect",
        &addr,
        "--connections",
        "2",
        "--pipeline",
        "8",
        "--messages",
        "400",
        "--tagged",
    ];
    let out = run("loadgen", &args, TIMEOUT);
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("confirmed: 400 of 400"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("errors: 0 "), "{}", out.stdout);
    assert_eq!(read_lines(dir.path().join("log.txt")).len(), 400);
    assert!(dir.path().join("log.txt.ids").exists());
}

#[test]
fn json_output_reports_the_same() {
    let dir = TempDir::new().unwrap();
    let server = server(&dir);
    let addr = server.addr_string();
    let out = run(
        "loadgen",
        &["--connect", &addr, "--messages", "50", "--json"],
        TIMEOUT,
    );
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    let json = out.stdout.trim();
    assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
    assert!(json.contains("\"confirmed\":50,"), "{json}");
    assert!(json.contains("\"errors\":0,"), "{json}");
}

#[test]
fn idle_connections_are_accepted_and_memory_is_read() {
    let dir = TempDir::new().unwrap();
    let server = server(&dir);
    let addr = server.addr_string();
    let pid = server.pid().to_string();
    let out = run(
        "loadgen",
        &[
            "--connect",
            &addr,
            "--idle-connections",
            "40",
            "--rss-pid",
            &pid,
        ],
        TIMEOUT,
    );
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("idle connections: 40 of 40 accepted"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("rss: "), "{}", out.stdout);
}

#[test]
fn a_node_that_is_not_there_fails_cleanly() {
    let dir = TempDir::new().unwrap();
    // Bind and stop a server, so the port is very likely free.
    let addr = {
        let mut node = server(&dir);
        let addr = node.addr_string();
        node.kill();
        addr
    };
    let out = run("loadgen", &["--connect", &addr, "--messages", "5"], TIMEOUT);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
}

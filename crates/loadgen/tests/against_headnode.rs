//! The load generator against Activity 2: a real headnode and two real
//! datanodes. Every pipelined message is confirmed and stored exactly once
//! across the datanodes. No timing is asserted.

use std::time::Duration;

use testkit::{read_lines, run, wait_until, Node, TempDir};

const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn every_message_sent_through_the_headnode_is_confirmed_and_stored() {
    let dir = TempDir::new().unwrap();
    let path = |sub: &str| dir.path().join(sub).to_str().unwrap().to_owned();
    let headnode = Node::spawn(
        "headnode",
        &["--listen", "127.0.0.1:0", "--dir", &path("head")],
    );
    let addr = headnode.addr_string();
    let datanodes: Vec<Node> = ["dn1", "dn2"]
        .iter()
        .map(|name| {
            Node::spawn_quiet(
                "datanode",
                &["--headnode", &addr, "--name", name, "--dir", &path(name)],
            )
        })
        .collect();
    for datanode in &datanodes {
        assert!(
            wait_until(TIMEOUT, || datanode
                .stderr()
                .contains("registered with headnode")),
            "{}",
            datanode.stderr()
        );
    }

    let args = [
        "--connect",
        &addr,
        "--connections",
        "3",
        "--pipeline",
        "8",
        "--messages",
        "300",
    ];
    let out = run("loadgen", &args, TIMEOUT);
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("confirmed: 300 of 300"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("errors: 0 "), "{}", out.stdout);
    let stored: usize = ["dn1", "dn2"]
        .iter()
        .map(|name| read_lines(dir.path().join(name).join("data.txt")).len())
        .sum();
    assert_eq!(stored, 300);
}

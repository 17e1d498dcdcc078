//! One writer per folder (issue 11, item 1): a second server given the
//! folder of a running one refuses to start, naming the folder and the
//! holder, and the first goes on undisturbed.

use std::time::Duration;

use testkit::{run, Node, TempDir};

#[test]
fn a_second_server_on_a_folder_in_use_is_refused() {
    let root = TempDir::new().unwrap();
    let dir = root.path().join("server");
    let dir_arg = dir.to_str().unwrap();
    let first = Node::spawn("server", &["--listen", "127.0.0.1:0", "--dir", dir_arg]);
    let second = run(
        "server",
        &["--listen", "127.0.0.1:0", "--dir", dir_arg],
        Duration::from_secs(60),
    );
    assert_eq!(
        second.status.code(),
        Some(node::runtime::USAGE_ERROR as i32),
        "{}",
        second.stderr
    );
    for expected in [dir_arg, &format!("pid {}", first.pid()), "--dir"] {
        assert!(
            second.stderr.contains(expected),
            "no '{expected}' in: {}",
            second.stderr
        );
    }
    let log = root.path().join("respuestas.txt");
    let addr = first.addr_string();
    let client = run(
        "client",
        &[
            "--connect",
            &addr,
            "--log",
            log.to_str().unwrap(),
            "--count",
            "5",
        ],
        Duration::from_secs(60),
    );
    assert!(client.status.success(), "{}", client.stderr);
    assert_eq!(
        testkit::read_lines(dir.join("log.txt")).len(),
        6,
        "5 and exit"
    );
}

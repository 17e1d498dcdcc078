//! `--reply-timeout` with the real binary (issue 11, item 6): against a
//! peer that accepts and never answers, `client --count 3` stops instead
//! of waiting forever, exits 1 and says which flag decided it.

use std::{net::TcpListener, time::Duration};

#[test]
fn a_peer_that_never_answers_ends_the_run_after_the_reply_timeout() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    // Accepts (the kernel does) and never reads or answers.
    let dir = testkit::TempDir::new().unwrap();
    let log = dir.path().join("respuestas.txt");
    let run = testkit::run(
        "client",
        &[
            "--connect",
            &addr,
            "--log",
            log.to_str().unwrap(),
            "--count",
            "3",
            "--reply-timeout",
            "300ms",
            // Reconnections to a peer that never answers end after this.
            "--retry-timeout",
            "1s",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("--reply-timeout"), "{}", run.stderr);
    assert!(run.stdout.contains("confirmed 0"), "{}", run.stdout);
    drop(silent);
}

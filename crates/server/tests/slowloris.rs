//! Slowloris and idle connections (issue 11, item 5), with real processes:
//! more connections than `--max-connections`, each holding half a frame
//! header, do not keep `client --ping` from being answered, and every one
//! of them is closed once `--frame-timeout` has passed; connections that
//! send nothing at all are closed after `--idle-timeout`.

use std::{
    net::TcpStream,
    time::{Duration, Instant},
};

use testkit::{all_closed, assert_flood_survived, flood_size, half_open_flood, Node, TempDir};

const PATIENCE: Duration = Duration::from_secs(60);

#[test]
fn a_half_open_flood_is_closed_and_a_ping_still_answered() {
    let root = TempDir::new().unwrap();
    let flood = flood_size(300);
    let max = (flood * 2 / 3).max(1).to_string();
    let server = Node::spawn(
        "server",
        &[
            "--listen",
            "127.0.0.1:0",
            "--dir",
            root.path().to_str().unwrap(),
            "--max-connections",
            &max,
            "--frame-timeout",
            "1s",
            "--idle-timeout",
            "2s",
        ],
    );
    let idle: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(server.addr()).unwrap())
        .collect();
    let mut held = half_open_flood(server.addr(), flood);
    let started = Instant::now();
    let answered = assert_flood_survived(&server.addr_string(), &mut held, PATIENCE);
    eprintln!("ping answered after {answered:?} under a flood of {flood}");
    let mut idle = idle;
    assert!(
        all_closed(&mut idle, PATIENCE),
        "an idle connection was kept"
    );
    eprintln!(
        "all {flood} held connections closed after {:?}",
        started.elapsed()
    );
}

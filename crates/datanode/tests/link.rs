//! The datanode against a headnode played by the test, byte by byte: what
//! it sends, what it writes, and how it reacts to every answer to REGISTER.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    time::{Duration, Instant},
};

use protocol::sentences;
use testkit::{Node, TempDir};

const PATIENCE: Duration = Duration::from_secs(60);

/// A listening socket standing in for the headnode.
struct FakeHead {
    listener: TcpListener,
}

impl FakeHead {
    fn new() -> FakeHead {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        FakeHead { listener }
    }

    fn addr(&self) -> String {
        self.listener.local_addr().unwrap().to_string()
    }

    /// The next connection from the datanode (which dials with back-off).
    fn accept(&self) -> Link {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream.set_read_timeout(Some(PATIENCE)).unwrap();
                    return Link { stream };
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "the datanode never dialed");
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(err) => panic!("accept: {err}"),
            }
        }
    }
}

struct Link {
    stream: TcpStream,
}

impl Link {
    fn send(&mut self, payload: &str) {
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(payload.as_bytes());
        self.stream.write_all(&frame).unwrap();
    }

    fn recv(&mut self) -> Option<String> {
        let mut header = [0u8; 4];
        if self.stream.read_exact(&mut header).is_err() {
            return None;
        }
        let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
        self.stream.read_exact(&mut payload).ok()?;
        Some(String::from_utf8(payload).unwrap())
    }
}

fn datanode(head: &FakeHead, dir: &TempDir, extra: &[&str]) -> Node {
    let dir = dir.path().display().to_string();
    let addr = head.addr();
    let mut args = vec!["--headnode", &addr, "--name", "dn1", "--dir", &dir];
    args.extend(extra);
    Node::spawn_quiet("datanode", &args)
}

#[test]
fn registers_stores_then_confirms_and_answers_pings_in_order() {
    let head = FakeHead::new();
    let dir = TempDir::new().unwrap();
    let _node = datanode(&head, &dir, &[]);
    let mut link = head.accept();
    assert_eq!(link.recv().unwrap(), "REGISTER dn1");
    link.send("OK dn1");
    // Pipelined, with a newline in a message and a bad request in between.
    for request in [
        "STORE Hola",
        "PING",
        "STORE dos\nlíneas",
        "SEND x",
        "STORE Adiós",
    ] {
        link.send(request);
    }
    let replies: Vec<String> = (0..5).map(|_| link.recv().unwrap()).collect();
    assert_eq!(
        replies[0],
        format!("OK {}", sentences::datanode_stored("dn1", "Hola"))
    );
    assert_eq!(replies[1], "PONG");
    assert_eq!(
        replies[2],
        format!("OK {}", sentences::datanode_stored("dn1", "dos\nlíneas"))
    );
    assert!(replies[3].starts_with("ERR WRONG_ROLE"), "{}", replies[3]);
    assert_eq!(
        replies[4],
        format!("OK {}", sentences::datanode_stored("dn1", "Adiós"))
    );
    // Confirmed means written: the lines are there, escaped, in order.
    let records = testkit::read_records(dir.path().join("data.txt"));
    let messages: Vec<&str> = records.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(messages, ["Hola", "dos\nlíneas", "Adiós"]);
    assert!(records
        .iter()
        .all(|(stamp, _)| testkit::is_timestamp(stamp)));
    let raw = testkit::read_lines(dir.path().join("data.txt"));
    assert!(raw[1].ends_with(r" -> dos\nlíneas"), "{}", raw[1]);
}

#[test]
fn retries_when_the_name_is_taken_or_the_link_goes_silent_or_drops() {
    let head = FakeHead::new();
    let dir = TempDir::new().unwrap();
    let node = datanode(&head, &dir, &["--idle-timeout", "1s"]);

    // NAME_TAKEN: the datanode warns and dials again.
    let mut link = head.accept();
    assert_eq!(link.recv().unwrap(), "REGISTER dn1");
    link.send("ERR NAME_TAKEN a live datanode is registered as 'dn1'");
    drop(link);

    // Registered, then silence: after the idle timeout it registers again.
    let mut link = head.accept();
    assert_eq!(link.recv().unwrap(), "REGISTER dn1");
    link.send("OK dn1");
    link.send("STORE uno");
    assert!(link.recv().unwrap().starts_with("OK El dn1 "));
    let mut silent = head.accept();
    assert_eq!(link.recv(), None, "the silent link was closed");
    assert_eq!(silent.recv().unwrap(), "REGISTER dn1");

    // Registered, then the headnode closes the link: registers again.
    silent.send("OK dn1");
    drop(silent);
    let mut link = head.accept();
    assert_eq!(link.recv().unwrap(), "REGISTER dn1");
    assert!(node.logged("already holds the name dn1", PATIENCE));
    assert!(node.logged("registered with headnode as dn1", PATIENCE));
}

#[test]
fn a_refused_name_ends_the_process_with_an_error() {
    let head = FakeHead::new();
    let dir = TempDir::new().unwrap();
    let mut node = datanode(&head, &dir, &[]);
    let mut link = head.accept();
    assert_eq!(link.recv().unwrap(), "REGISTER dn1");
    link.send("ERR BAD_ARGUMENT a node name is 1 to 64 characters");
    let status = node.wait_timeout(PATIENCE).expect("exits");
    assert!(!status.success());
    assert!(node.stderr().contains("refused"), "{}", node.stderr());
}

/// Runs a datanode under `name` that has no headnode to reach.
fn run_named(name: &str) -> testkit::Run {
    let args = ["--name", name, "--headnode", "127.0.0.1:9"];
    testkit::run("datanode", &args, PATIENCE)
}

#[test]
fn an_invalid_name_is_refused_at_start() {
    let run = run_named("no spaces");
    assert!(!run.status.success());
    assert!(
        run.stderr.contains("not a valid datanode name"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_invalid_name_exits_as_a_usage_error() {
    let run = run_named("bad name");
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("--name"), "{}", run.stderr);
}

#[test]
fn sigterm_answers_what_was_accepted_then_exits_zero() {
    let head = FakeHead::new();
    let dir = TempDir::new().unwrap();
    let mut node = datanode(&head, &dir, &[]);
    let mut link = head.accept();
    assert_eq!(link.recv().unwrap(), "REGISTER dn1");
    link.send("OK dn1");
    link.send("STORE antes");
    assert!(link.recv().unwrap().starts_with("OK "));
    node.terminate();
    assert_eq!(link.recv(), None, "the link is closed");
    let status = node.wait_timeout(PATIENCE).expect("exits");
    assert!(status.success(), "{status}");
    // Also while still dialing a headnode that is not there.
    let nobody = FakeHead::new();
    let addr = nobody.addr();
    drop(nobody);
    let dir = dir.path().display().to_string();
    let node = Node::spawn_quiet(
        "datanode",
        &["--headnode", &addr, "--name", "dn2", "--dir", &dir],
    );
    assert!(testkit::wait_until(PATIENCE, || node
        .stderr()
        .contains("not reachable yet")));
    node.terminate();
    let mut node = node;
    let status = node.wait_timeout(PATIENCE).expect("exits");
    assert!(status.success(), "{status}");
}

/// With a cluster secret: the datanode proves it for the challenge's nonce
/// and its name, and then answers only probes tagged with the secret, its
/// answers tagged too (a forged probe, untagged or wrongly tagged, gets
/// nothing: it could aim the answers at any address).
#[tokio::test]
async fn with_a_secret_it_proves_registration_and_answers_only_tagged_probes() {
    use protocol::{
        auth::ClusterKey,
        heartbeat::{Alive, Probe},
        link as wire,
    };
    use std::os::unix::fs::PermissionsExt;

    let dir = TempDir::new().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "a secret of the test cluster\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let key = ClusterKey::new(b"a secret of the test cluster").unwrap();
    let head = FakeHead::new();
    let _node = datanode(
        &head,
        &dir,
        &["--cluster-secret-file", secret.to_str().unwrap()],
    );
    // A group port of this test's own, so no other test's datanode hears it.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let group: std::net::SocketAddrV4 = format!("239.255.43.1:{port}").parse().unwrap();
    let (mut link, nonce) = tokio::task::spawn_blocking(move || {
        let mut link = head.accept();
        assert_eq!(link.recv().unwrap(), "REGISTER dn1");
        let nonce = [7u8; protocol::auth::NONCE_LEN];
        link.send(&wire::challenge(&nonce));
        (link, nonce)
    })
    .await
    .unwrap();
    let proof = tokio::task::spawn_blocking(move || {
        let proof = link.recv().unwrap();
        link.send(&format!("OK dn1 MULTICAST {group}"));
        (link, proof)
    });
    let (_link, proof) = proof.await.unwrap();
    assert_eq!(proof, wire::proof(&key, "dn1", &nonce));

    let sender = node::multicast::sender(1).unwrap();
    let wrong = ClusterKey::new(b"not the test cluster's secret").unwrap();
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let answer = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no answer to a tagged probe"
        );
        // Forged first, then the real one: were a forged one answered, its
        // answer would come first.
        for (round, key) in [(1, None), (2, Some(&wrong)), (3, Some(&key))] {
            let probe = Probe { round, nonce: 9 }.encode_with(key);
            node::multicast::send_on(&sender, &probe, group, std::net::Ipv4Addr::LOCALHOST)
                .await
                .unwrap();
        }
        let wait = Duration::from_millis(300);
        if let Ok(Ok((len, _))) = tokio::time::timeout(wait, sender.recv_from(&mut buf)).await {
            break buf[..len].to_vec();
        }
    };
    let alive = Alive::decode_with(&answer, Some(&key)).expect("a tagged answer");
    assert_eq!(
        (alive.round, alive.nonce, alive.name.as_str()),
        (3, 9, "dn1")
    );
}

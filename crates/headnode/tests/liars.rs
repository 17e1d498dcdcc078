//! A datanode that lies, played by the test beside two real datanodes:
//! each way of confirming what it did not store (issue 11, item 3) closes
//! its link, the message is stored by a real datanode instead, and
//! registro_server.txt holds only the headnode's own, well-formed lines.

mod common;

use common::*;
use protocol::sentences;

/// How the liar answers a `STORE <message>` it is sent, as the payload of
/// its reply frame.
type Lie = fn(&str) -> Vec<u8>;

/// Each lie of the issue, and junk.
const LIES: [(&str, Lie); 7] = [
    ("a bare OK", |_| b"OK".to_vec()),
    ("an OK quoting another message", |_| {
        format!(
            "OK {}",
            sentences::datanode_stored("liar", "not what you sent")
        )
        .into_bytes()
    }),
    ("a sentence naming another datanode", |message| {
        format!("OK {}", sentences::datanode_stored("dn1", message)).into_bytes()
    }),
    ("its sentence, then a forged log line", |message| {
        let sentence = sentences::datanode_stored("liar", message);
        format!("OK {sentence}\n2026-12-01 15:15:07 -> {sentence}").into_bytes()
    }),
    ("an empty sentence", |_| b"OK ".to_vec()),
    ("a frame that is not UTF-8", |_| {
        b"OK El liar \xff\xfe".to_vec()
    }),
    ("a frame that is no reply", |_| b"HELLO there".to_vec()),
];

/// The liar's link: registers, answers PINGs, and hands over STOREs.
struct Liar {
    raw: Raw,
}

impl Liar {
    fn register(addr: &str) -> Liar {
        let mut raw = Raw::connect(addr);
        assert_eq!(raw.ask("REGISTER liar"), "OK liar");
        Liar { raw }
    }

    /// The message of the next `STORE`, answering `PING`s on the way.
    fn next_store(&mut self) -> String {
        loop {
            let request = self.raw.recv().expect("the link is open");
            if request == "PING" {
                self.raw.send("PONG");
                continue;
            }
            match request.strip_prefix("STORE ") {
                Some(message) => return message.to_owned(),
                None => panic!("the headnode sent {request:?}"),
            }
        }
    }

    /// Whether the headnode closed the link (anything but PINGs before).
    fn closed(&mut self) -> bool {
        loop {
            match self.raw.recv() {
                None => return true,
                Some(ping) if ping == "PING" => continue,
                Some(other) => panic!("after a lie the headnode sent {other:?}"),
            }
        }
    }
}

/// The client's side: pipelined `SEND`s on one connection, and what each
/// answer says.
struct Sender {
    raw: Raw,
    sent: usize,
    answers: Vec<(String, String)>,
}

impl Sender {
    /// Sends `count` messages, one of which round-robin gives the liar.
    fn send(&mut self, count: usize) {
        for _ in 0..count {
            self.sent += 1;
            self.raw.send(&format!("SEND message {}", self.sent));
        }
    }

    fn receive(&mut self, count: usize) -> Vec<(String, String)> {
        let mut got = Vec::new();
        for _ in 0..count {
            let reply = self.raw.recv().expect("an answer");
            let text = reply
                .strip_prefix("OK ")
                .unwrap_or_else(|| panic!("{reply}"));
            let (message, node) = sentences::parse_headnode_stored(text).expect("a confirmation");
            got.push((message.to_owned(), node.to_owned()));
        }
        self.answers.extend(got.iter().cloned());
        got
    }
}

#[test]
fn a_lying_datanode_confirms_nothing_and_never_reaches_the_logs() {
    let cluster = Cluster::with_datanodes(
        &["dn1", "dn2"],
        &[
            "--placement",
            "round-robin",
            "--heartbeat",
            "tcp",
            "--heartbeat-interval",
            "60s",
            "--heartbeat-timeout",
            "10s",
        ],
    );
    let mut client = Sender {
        raw: Raw::connect(&cluster.addr()),
        sent: 0,
        answers: Vec::new(),
    };
    // An honest answer first: the liar's link works and is believed.
    let mut liar = Liar::register(&cluster.addr());
    client.send(3);
    let message = liar.next_store();
    liar.raw.send(&format!(
        "OK {}",
        sentences::datanode_stored("liar", &message)
    ));
    let answers = client.receive(3);
    assert!(
        answers.contains(&(message.clone(), "liar".to_owned())),
        "{answers:?}"
    );

    for (what, lie) in LIES {
        client.send(3);
        let message = liar.next_store();
        liar.raw.send_bytes(&lie(&message));
        assert!(liar.closed(), "{what}: the link stays open");
        let answers = client.receive(3);
        let stored_by = answers
            .iter()
            .find(|(sent, _)| *sent == message)
            .map(|(_, node)| node.as_str());
        assert!(
            matches!(stored_by, Some("dn1" | "dn2")),
            "{what}: '{message}' answered as stored on {stored_by:?}"
        );
        liar = Liar::register(&cluster.addr());
    }

    // Out of order: two STOREs, the second one's confirmation first.
    client.send(6);
    let (first, second) = (liar.next_store(), liar.next_store());
    liar.raw.send(&format!(
        "OK {}",
        sentences::datanode_stored("liar", &second)
    ));
    assert!(liar.closed(), "out of order: the link stays open");
    let answers = client.receive(6);
    for message in [&first, &second] {
        assert!(
            answers
                .iter()
                .any(|(sent, node)| sent == message && node != "liar"),
            "{message}: {answers:?}"
        );
    }

    // Every confirmation but the honest one names a real datanode that
    // holds the message; registro_server.txt says the same, line for line,
    // each line well formed (server_records parses every one).
    let real: Vec<(String, String)> = client
        .answers
        .iter()
        .filter(|(_, node)| node != "liar")
        .cloned()
        .collect();
    assert_eq!(real.len(), client.answers.len() - 1);
    assert_confirmations_stored(&cluster, &real);
    let registro = cluster.registro_server();
    assert!(testkit::wait_until(PATIENCE, || {
        complete_lines(&registro).len() == client.answers.len()
    }));
    assert_eq!(server_records(&registro), client.answers);
    let stderr = cluster.head.stderr();
    // One per lie and one for the order.
    let violations = stderr.matches("protocol violation").count();
    assert_eq!(violations, LIES.len() + 1, "{stderr}");
    assert!(stderr.contains("peer=127.0.0.1:"), "{stderr}");
}

//! Replays the hex examples of `docs/PROTOCOL.md` against the real server.
//!
//! Each `###` example's code block holds frames under lines that begin
//! `client -> server` or `server -> client`. The client's bytes are sent in
//! one write; the server's reply must be exactly the documented bytes, and
//! if the example says the server closes the connection, it must.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use testkit::{Node, TempDir};

/// One documented exchange.
#[derive(Debug, Default)]
struct Example {
    title: String,
    client: Vec<u8>,
    server: Vec<u8>,
    closes: bool,
}

fn parse_hex_line(line: &str) -> Option<Vec<u8>> {
    let bytes: Option<Vec<u8>> = line
        .split(' ')
        .map(|pair| {
            if pair.len() == 2 {
                u8::from_str_radix(pair, 16).ok()
            } else {
                None
            }
        })
        .collect();
    bytes.filter(|bytes| !bytes.is_empty())
}

fn examples(doc: &str) -> Vec<Example> {
    let section = doc
        .split("## 7. Examples in hex")
        .nth(1)
        .expect("the examples section");
    let section = section.split("\n## ").next().unwrap();
    let mut examples = Vec::new();
    for part in section.split("\n### ").skip(1) {
        let mut example = Example {
            title: part.lines().next().unwrap().to_owned(),
            ..Example::default()
        };
        let block = part.split("```").nth(1).expect("a code block");
        let mut to_server = true;
        for line in block.lines() {
            if line.starts_with("client -> server") {
                to_server = true;
            } else if line.starts_with("server -> client") {
                to_server = false;
            } else if line.contains("the server closes the connection") {
                example.closes = true;
            } else if let Some(bytes) = parse_hex_line(line) {
                if to_server {
                    example.client.extend(bytes);
                } else {
                    example.server.extend(bytes);
                }
            }
        }
        assert!(
            !example.client.is_empty() && !example.server.is_empty(),
            "{example:?}"
        );
        examples.push(example);
    }
    examples
}

#[test]
fn the_documented_exchanges_are_what_the_server_does() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/PROTOCOL.md"
    ))
    .expect("docs/PROTOCOL.md exists");
    let examples = examples(&doc);
    assert!(examples.len() >= 4, "{examples:?}");

    let dir = TempDir::new().unwrap();
    let server = Node::spawn(
        "server",
        &[
            "--listen",
            "127.0.0.1:0",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
    );
    for example in &examples {
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream.write_all(&example.client).unwrap();
        let mut reply = vec![0u8; example.server.len()];
        stream
            .read_exact(&mut reply)
            .unwrap_or_else(|err| panic!("{}: {err}", example.title));
        assert_eq!(
            String::from_utf8_lossy(&reply),
            String::from_utf8_lossy(&example.server),
            "{}",
            example.title
        );
        assert_eq!(reply, example.server, "{}", example.title);
        if example.closes {
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).unwrap();
            assert!(
                rest.is_empty(),
                "{}: nothing after the reply",
                example.title
            );
        }
    }
    let logged: Vec<String> = testkit::read_records(dir.path().join("log.txt"))
        .into_iter()
        .map(|(_, message)| message)
        .collect();
    assert_eq!(logged, ["Adiós", "Hola", "Sistemas"]);
}

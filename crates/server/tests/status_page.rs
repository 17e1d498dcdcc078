//! The server's status page while clients send: each route, the JSON read
//! as JSON, `/metrics` read by a Prometheus text-format parser.

use std::time::Duration;

use serde_json::Value;
use testkit::{http_get, run, Node, TempDir};

#[test]
fn the_status_page_counts_what_the_server_logged() {
    let dir = TempDir::new().unwrap();
    let dir_arg = dir.path().display().to_string();
    let server = Node::spawn(
        "server",
        &[
            "--listen",
            "127.0.0.1:0",
            "--dir",
            &dir_arg,
            "--http",
            "127.0.0.1:0",
        ],
    );
    let http = testkit::status_page_addr(&server.stderr()).expect("the status page's address");
    let log = dir.path().join("respuestas.txt").display().to_string();
    let addr = server.addr_string();
    let client = run(
        "client",
        &["--connect", &addr, "--log", &log, "--count", "100"],
        Duration::from_secs(120),
    );
    assert!(client.status.success(), "{}", client.stderr);

    let (code, content_type, page) = http_get(&http, "/");
    assert_eq!(code, 200);
    assert!(content_type.starts_with("text/html"));
    assert!(page.contains("<title>INF343 server</title>"));

    let (code, _, body) = http_get(&http, "/status.json");
    assert_eq!(code, 200);
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["logged_total"], 101, "{status}");
    assert_eq!(status["refused_total"], 0);
    assert_eq!(status["connections_total"], 1);

    let (code, _, text) = http_get(&http, "/metrics");
    assert_eq!(code, 200);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus text format");
    let logged = scrape
        .samples
        .iter()
        .find(|sample| sample.metric == "server_messages_logged_total")
        .expect("server_messages_logged_total");
    assert!(
        matches!(
            logged.value,
            prometheus_parse::Value::Counter(n) | prometheus_parse::Value::Untyped(n) if n == 101.0
        ),
        "{text}"
    );
}

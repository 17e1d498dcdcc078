//! The status page while a real cluster runs on 127.0.0.1: each route, the
//! JSON read as JSON, `/metrics` read by a Prometheus text-format parser.

mod common;

use common::*;
use serde_json::Value;
use testkit::http_get as get;

/// The status page's address, from the headnode's log.
fn http_addr(cluster: &Cluster) -> String {
    let mut addr = None;
    testkit::wait_until(PATIENCE, || {
        addr = testkit::status_page_addr(&cluster.head.stderr());
        addr.is_some()
    });
    addr.expect("the headnode logs its status page")
}

fn status(addr: &str) -> Value {
    let (code, content_type, body) = get(addr, "/status.json");
    assert_eq!(code, 200);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    serde_json::from_str(&body).unwrap()
}

fn datanode_active(status: &Value, name: &str) -> Option<bool> {
    status["datanodes"]
        .as_array()?
        .iter()
        .find(|node| node["name"] == name)?["active"]
        .as_bool()
}

#[test]
fn every_route_tells_the_state_of_a_running_cluster() {
    let mut cluster = Cluster::with_datanodes(
        &["dn1", "dn2", "dn3"],
        &["--http", "127.0.0.1:0", "--placement", "round-robin"],
    );
    let addr = http_addr(&cluster);
    let log = cluster.root.path().join("registro_cliente.txt");
    let run = cluster.client(&log, &["--count", "300", "--pipeline", "4"]);
    assert_all_confirmed(&run, 301);

    // The page: one self-contained document.
    let (code, content_type, page) = get(&addr, "/");
    assert_eq!(code, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(page.contains("<title>INF343 headnode</title>"));
    for external in ["src=\"http", "href=\"http", "@import", "url(http"] {
        assert!(
            !page.contains(external),
            "no CDN, no external font: {external}"
        );
    }

    for (asset, kind) in [("/chart.js", "text/javascript"), ("/style.css", "text/css")] {
        let (code, content_type, body) = get(&addr, asset);
        assert_eq!(code, 200, "{asset}");
        assert!(
            content_type.starts_with(kind) && !body.is_empty(),
            "{asset}"
        );
    }

    // status.json: three active datanodes that stored the 301 messages.
    let now = status(&addr);
    let nodes = now["datanodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{now}");
    assert!(nodes.iter().all(|node| node["active"] == true), "{now}");
    let stored: u64 = nodes
        .iter()
        .map(|node| node["stored"].as_u64().unwrap())
        .sum();
    assert_eq!(stored, 301);
    assert_eq!(now["stored_total"], 301);
    let per_second: u64 = now["stored_per_second"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .sum::<u64>();
    assert!(per_second <= 301, "the last minute, done seconds only");
    assert!(now["heartbeat_rounds"].as_u64().unwrap() >= 1);

    // /metrics, parsed as Prometheus text.
    let (code, _, text) = get(&addr, "/metrics");
    assert_eq!(code, 200);
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let stored_per_node: Vec<(String, f64)> = scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == "headnode_messages_stored_total")
        .map(|sample| {
            let value = match sample.value {
                prometheus_parse::Value::Counter(n) | prometheus_parse::Value::Untyped(n) => n,
                ref other => panic!("not a counter: {other:?}"),
            };
            (sample.labels["datanode"].to_owned(), value)
        })
        .collect();
    assert_eq!(stored_per_node.len(), 3, "{text}");
    assert_eq!(stored_per_node.iter().map(|(_, n)| n).sum::<f64>(), 301.0);
    for (name, n) in &stored_per_node {
        let json = nodes
            .iter()
            .find(|node| node["name"] == name.as_str())
            .unwrap();
        assert_eq!(
            json["stored"].as_f64(),
            Some(*n),
            "{name}: the same count in both"
        );
    }
    assert!(
        scrape.samples.iter().any(|sample| sample
            .metric
            .starts_with("headnode_heartbeat_round_trip_seconds")),
        "{text}"
    );

    // dn2 dies: the page says so within a round.
    cluster.kill_datanode("dn2");
    assert!(
        testkit::wait_until(PATIENCE, || datanode_active(&status(&addr), "dn2")
            == Some(false)),
        "dn2 inactive on the status page"
    );
    assert_eq!(datanode_active(&status(&addr), "dn1"), Some(true));
}

//! End to end: real runs (headnode, datanodes, client, server as processes
//! on 127.0.0.1), then `audit` on the folder they wrote, while the headnode
//! still writes its heartbeats.

// The Activity 2 cluster of the headnode's own end-to-end tests, reused
// rather than copied.
#[path = "../../headnode/tests/common/mod.rs"]
mod common;

use std::{path::Path, thread, time::Duration};

use common::{assert_all_confirmed, heartbeats, run_client, Cluster, PATIENCE};
use serde_json::Value;
use testkit::Node;

/// Runs `audit --json` on `root`; its exit code and report.
fn audit(root: &Path) -> (Option<i32>, Value, String) {
    let run = testkit::run(
        "audit",
        &["--json", root.to_str().unwrap()],
        Duration::from_secs(60),
    );
    let report = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|err| panic!("not JSON ({err}): {}\n{}", run.stdout, run.stderr));
    let table = testkit::run("audit", &[root.to_str().unwrap()], Duration::from_secs(60));
    (run.status.code(), report, table.stdout)
}

fn status<'v>(activity: &'v Value, id: &str) -> &'v str {
    activity["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}"))["status"]
        .as_str()
        .unwrap()
}

fn client_log(cluster: &Cluster) -> std::path::PathBuf {
    cluster.root.path().join("client/registro_cliente.txt")
}

#[test]
fn a_clean_run_audits_with_every_guarantee_holding() {
    let cluster = Cluster::with_datanodes(&["dn1", "dn2", "dn3"], &[]);
    let log = client_log(&cluster);
    let run = cluster.client(&log, &["--count", "3000", "--pipeline", "8", "--seed", "3"]);
    assert_all_confirmed(&run, 3001);
    // A heartbeat round after the run, so the timeline has something to say.
    assert!(testkit::wait_until(PATIENCE, || heartbeats(
        &cluster.heartbeat_file()
    )
    .len()
        >= 6));

    let (code, report, table) = audit(cluster.root.path());
    assert_eq!(code, Some(0), "{table}");
    assert!(table.ends_with("audit: every guarantee holds\n"), "{table}");
    let activity2 = &report["activity2"];
    assert_eq!(activity2["confirmed"], 3001);
    let stored: u64 = activity2["datanodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["stored"].as_u64().unwrap())
        .sum();
    assert_eq!(stored, 3001, "a clean run stores each message once");
    for id in [
        "confirmed-stored",
        "confirmed-recorded",
        "recorded-stored",
        "stored-twice",
        "stored-unconfirmed",
    ] {
        assert_eq!(status(activity2, id), "holds", "{id}:\n{table}");
    }
    assert!(activity2["errors_by_code"].as_object().unwrap().is_empty());
    assert_eq!(activity2["placement"]["datanodes"], 3);
    assert!(activity2["placement"]["p_value"].as_f64().is_some());
    for timeline in activity2["heartbeat"]["datanodes"].as_array().unwrap() {
        assert_eq!(timeline["share_active"], 1.0, "{timeline}");
        assert!(timeline["changes"].as_array().unwrap().is_empty());
    }
    assert!(report["activity1"].is_null());
}

#[test]
fn a_failover_run_audits_with_every_guarantee_and_names_the_killed_datanode() {
    let mut cluster = Cluster::with_datanodes(&["dn1", "dn2", "dn3"], &[]);
    // A round that saw dn2 active, so that the kill is a change of state.
    assert!(
        testkit::wait_until(PATIENCE, || heartbeats(&cluster.heartbeat_file())
            .contains(&("dn2".to_owned(), true))),
        "dn2 never reported active"
    );
    let log = client_log(&cluster);
    let args: Vec<String> = [
        "--connect",
        &cluster.addr(),
        "--log",
        log.to_str().unwrap(),
        "--count",
        "20000",
        "--seed",
        "7",
        "--pipeline",
        "16",
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    let client = thread::spawn(move || run_client(args));
    let victim = cluster.data_file("dn2");
    assert!(
        testkit::wait_until(PATIENCE, || common::complete_lines(&victim).len() >= 200),
        "dn2 never stored anything"
    );
    cluster.kill_datanode("dn2");
    assert!(
        !client.is_finished(),
        "the client finished before the kill; raise --count"
    );
    assert_all_confirmed(&client.join().expect("client thread"), 20_001);
    assert!(
        testkit::wait_until(PATIENCE, || heartbeats(&cluster.heartbeat_file())
            .iter()
            .any(|line| *line == ("dn2".to_owned(), false))),
        "dn2 never reported inactive"
    );

    let (code, report, table) = audit(cluster.root.path());
    assert_eq!(code, Some(0), "{table}");
    let activity2 = &report["activity2"];
    assert_eq!(activity2["confirmed"], 20_001);
    for id in [
        "readable",
        "confirmed-stored",
        "confirmed-recorded",
        "recorded-stored",
    ] {
        assert_eq!(status(activity2, id), "holds", "{id}:\n{table}");
    }
    let dn2 = activity2["heartbeat"]["datanodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|timeline| timeline["datanode"] == "dn2")
        .expect("dn2 in the timeline");
    // Its last change is the kill (a loaded machine may have it miss a
    // round before, and come back).
    let change = dn2["changes"]
        .as_array()
        .unwrap()
        .last()
        .expect("a change of state")
        .clone();
    assert_eq!(change["active"], false, "{dn2}");
    assert!(testkit::is_timestamp(change["time"].as_str().unwrap()));
    assert!(dn2["share_active"].as_f64().unwrap() < 1.0);
    // The table says it too, with the time and the line.
    let line = format!(
        "inactive at {} (line {})",
        change["time"].as_str().unwrap(),
        change["line"]
    );
    assert!(table.contains(&line), "{line} not in:\n{table}");
}

#[test]
fn an_activity1_run_audits_per_sender() {
    let root = testkit::TempDir::new().unwrap();
    let dir = root.path().join("server");
    let server = Node::spawn(
        "server",
        &["--listen", "127.0.0.1:0", "--dir", dir.to_str().unwrap()],
    );
    let log = root.path().join("client/respuestas.txt");
    for seed in ["1", "2"] {
        let run = testkit::run(
            "client",
            &[
                "--connect",
                &server.addr_string(),
                "--log",
                log.to_str().unwrap(),
                "--count",
                "300",
                "--pipeline",
                "4",
                "--seed",
                seed,
            ],
            PATIENCE,
        );
        assert!(run.status.success(), "{}", run.stderr);
    }
    let (code, report, table) = audit(root.path());
    assert_eq!(code, Some(0), "{table}");
    let activity1 = &report["activity1"];
    assert_eq!(activity1["confirmed"], 602);
    let senders = activity1["senders"].as_array().unwrap();
    assert_eq!(senders.len(), 2, "one sender per client run");
    for sender in senders {
        assert_eq!(sender["logged"], 301);
        assert_eq!(sender["confirmed"], 301);
    }
    assert_eq!(status(activity1, "logged-unconfirmed"), "holds");
    assert!(report["activity2"].is_null());
}

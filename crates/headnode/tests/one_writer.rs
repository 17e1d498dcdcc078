//! One writer per folder (issue 11, item 1), with real processes: a second
//! datanode given a folder in use is refused at start-up, naming the folder
//! and the holder, and the full-disk scenario loses nothing that
//! was confirmed.

mod common;

use std::{collections::HashMap, path::Path, time::Duration};

use common::{Cluster, PATIENCE};
use protocol::sentences;
use testkit::{run, run_with_stdin, Tmpfs};

/// Runs a datanode on `dir` to completion (it is expected to refuse).
fn refused_datanode(cluster: &Cluster, name: &str, dir: &Path) -> testkit::Run {
    let dir = dir.display().to_string();
    let addr = cluster.addr();
    run(
        "datanode",
        &["--headnode", &addr, "--name", name, "--dir", &dir],
        PATIENCE,
    )
}

/// Asserts that `run` is a refusal for the folder `dir` held by `holder`.
fn assert_refused(run: &testkit::Run, dir: &Path, holder: u32) {
    assert_eq!(
        run.status.code(),
        Some(node::runtime::USAGE_ERROR as i32),
        "a folder in use is a configuration to fix: {}",
        run.stderr
    );
    let folder = dir.display().to_string();
    assert!(
        run.stderr.contains(&folder),
        "names the folder: {}",
        run.stderr
    );
    let pid = format!("pid {holder}");
    assert!(
        run.stderr.contains(&pid),
        "names the holder: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--dir"),
        "says what to do: {}",
        run.stderr
    );
}

#[test]
fn a_second_datanode_on_a_folder_in_use_is_refused() {
    let mut cluster = Cluster::with_datanodes(&["datanode1"], &[]);
    let dir = cluster.data_dir("datanode1");
    let holder = cluster.datanodes["datanode1"].pid();
    let second = refused_datanode(&cluster, "datanode2", &dir);
    assert_refused(&second, &dir, holder);
    // The lock dies with its holder, however it dies.
    cluster.kill_datanode("datanode1");
    let node = common::start_datanode(&cluster.addr(), "datanode2", &dir);
    cluster.datanodes.insert("datanode2".into(), node);
    cluster.wait_registered("datanode2", 1);
}

/// `(message, datanode)` of the confirmations in a client's log; its
/// `ERR` lines are left out.
fn confirmations(log: &Path) -> Vec<(String, String)> {
    testkit::read_records(log)
        .into_iter()
        .filter_map(|(_, text)| {
            let (message, node) = sentences::parse_headnode_stored(&text)?;
            Some((message.to_owned(), node.to_owned()))
        })
        .collect()
}

/// The scenario: two datanodes given one folder on a 64 KiB tmpfs,
/// then the disk fills. The second is refused; whatever the first
/// confirmed, before, during and after the full disk, is in its data.txt,
/// one line each, and the file holds nothing but whole records.
#[test]
fn a_full_disk_under_a_shared_folder_loses_nothing_confirmed() {
    let mut cluster = Cluster::headnode(&["--placement", "round-robin"]);
    let shared = cluster.root.path().join("shared");
    let Some(disk) = Tmpfs::mount(
        "a_full_disk_under_a_shared_folder_loses_nothing_confirmed",
        &shared,
        "64k",
    ) else {
        return;
    };
    let first = common::start_datanode(&cluster.addr(), "shA", disk.path());
    cluster.datanodes.insert("shA".into(), first);
    cluster.wait_registered("shA", 1);
    let second = refused_datanode(&cluster, "shB", disk.path());
    assert_refused(&second, disk.path(), cluster.datanodes["shA"].pid());

    let client = |log: &str, prefix: &str, count: usize| {
        let input: String = (1..=count).map(|n| format!("{prefix}-{n:05}\n")).collect();
        let log = cluster.root.path().join(log);
        let args = [
            "--connect",
            &cluster.addr(),
            "--log",
            log.to_str().unwrap(),
            "--stdin",
        ];
        run_with_stdin("client", &args, Some(&input), Duration::from_secs(300));
        confirmations(&log)
    };
    let mut confirmed = client("c1.txt", "msg", 200);
    assert_eq!(confirmed.len(), 200, "an empty disk stores everything");
    let filler = disk.fill();
    confirmed.extend(client("c2.txt", "late", 50));
    std::fs::remove_file(filler).unwrap();
    let after = client("c3.txt", "after", 20);
    assert_eq!(after.len(), 20, "stores again once the disk has room");
    confirmed.extend(after);

    let data = disk.path().join("data.txt");
    let bytes = std::fs::read(&data).unwrap();
    assert!(!bytes.contains(&0), "no NUL bytes in data.txt");
    let mut held: HashMap<String, usize> = HashMap::new();
    for (stamp, message) in testkit::read_records(&data) {
        assert!(testkit::is_timestamp(&stamp), "bad stamp {stamp:?}");
        assert!(
            !message.contains(" -> "),
            "one record per line, not two merged: {message:?}"
        );
        *held.entry(message).or_default() += 1;
    }
    for (message, node) in &confirmed {
        assert_eq!(node, "shA");
        assert_eq!(
            held.get(message),
            Some(&1),
            "'{message}' confirmed, not held once"
        );
    }
}

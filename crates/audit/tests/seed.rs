//! The `audit` binary on the original Python version's own sample logs
//! (copied from the course presentation into tests/fixtures/seed), and its
//! usage errors.

use std::{path::PathBuf, time::Duration};

use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed")
}

fn audit(args: &[&str]) -> testkit::Run {
    testkit::run("audit", args, Duration::from_secs(60))
}

fn check<'v>(activity: &'v Value, id: &str) -> &'v Value {
    activity["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}"))
}

#[test]
fn the_seeds_merged_message_is_reported_as_sent_by_nobody() {
    let seed = fixtures();
    let run = audit(&[seed.join("activity1").to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("'Esistemas' confirmed once but in no line of"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("nobody sent"));
    assert!(
        run.stdout.contains("respuestas.txt line 8"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .ends_with("audit: BROKEN: confirmed-logged (Activity 1)\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn the_seeds_activity2_is_read_as_written_and_its_breaks_named_by_line() {
    let run = audit(&["--json", fixtures().to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(report["holds"], false);
    let activity2 = &report["activity2"];
    // "datanode 2" in the sentences is the folder datanode2: three
    // datanodes, not six.
    let names: Vec<&str> = activity2["datanodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["datanode"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["datanode0", "datanode1", "datanode2"]);
    assert_eq!(activity2["confirmed"], 29);
    // Every confirmation is in the data.txt its answer names...
    assert_eq!(check(activity2, "confirmed-stored")["status"], "holds");
    // ...but the presentation cut most registro_server.txt lines short,
    // so the client's confirmations are not all recorded there.
    let readable = check(activity2, "readable");
    assert_eq!(readable["status"], "broken");
    assert_eq!(readable["findings"][0]["lines"][0], 2);
    assert!(readable["findings"][0]["file"]
        .as_str()
        .unwrap()
        .ends_with("registro_server.txt"));
    assert_eq!(check(activity2, "confirmed-recorded")["status"], "broken");
    // The Python client lost answers: copies beyond the confirmations.
    assert_eq!(check(activity2, "stored-twice")["status"], "note");
    assert_eq!(
        check(&report["activity1"], "confirmed-logged")["status"],
        "broken"
    );
}

#[test]
fn usage_errors_exit_2() {
    let missing = fixtures().join("no-such-folder");
    let run = audit(&[missing.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(2));
    assert!(
        run.stderr.contains("no such file or folder"),
        "{}",
        run.stderr
    );
    let not_a_log = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    assert_eq!(audit(&[not_a_log.to_str().unwrap()]).status.code(), Some(2));
    let empty = tempfile::tempdir().unwrap();
    let run = audit(&["--logs", empty.path().to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(2));
    assert!(run.stderr.contains("holds no log file"), "{}", run.stderr);
    assert_eq!(audit(&["--frobnicate"]).status.code(), Some(2));
}

#[test]
fn with_no_path_the_compose_layout_is_audited() {
    // --logs names the folder compose writes under; both activities found.
    let run = audit(&["--logs", fixtures().to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1));
    assert!(run.stdout.starts_with("Activity 1\n"), "{}", run.stdout);
    assert!(run.stdout.contains("\nActivity 2\n"));
}

#[test]
fn the_files_are_never_written() {
    let before = snapshot();
    audit(&[fixtures().to_str().unwrap()]);
    assert_eq!(snapshot(), before);
}

/// Every fixture's path, length and modification time.
fn snapshot() -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut files = Vec::new();
    let mut folders = vec![fixtures()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::metadata(&path).unwrap();
            if meta.is_dir() {
                folders.push(path);
            } else {
                files.push((path, meta.len(), meta.modified().unwrap()));
            }
        }
    }
    files.sort();
    files
}

//! Every binary answers a flag value it cannot use with exit status 2 and
//! a message that names the flag, the value and what it accepts (see
//! `node::args` and `node::runtime::exit_code`).

use std::time::Duration;

use testkit::{run, TempDir};

/// `(binary, flags, what the message must say)`.
const CASES: &[(&str, &[&str], &str)] = &[
    ("client", &["--pipeline", "0"], "1 or more"),
    ("client", &["--seed", "abc"], "0 to 18446744073709551615"),
    ("client", &["--count", "-1"], "cannot be negative"),
    ("client", &["--connect-timeout", "-1s"], "such as 500ms, 5s"),
    ("client", &["--connect-timeout", "5"], "has no unit"),
    ("client", &["--connect", "nohost"], "HOST:PORT"),
    ("server", &["--max-connections", "0"], "1 or more"),
    ("server", &["--fsync", "sometimes"], "sometimes"),
    ("headnode", &["--max-connections", "0"], "1 or more"),
    ("headnode", &["--heartbeat-interval", "-1s"], "is negative"),
    ("headnode", &["--placement", "nearest"], "round-robin"),
    ("datanode", &["--idle-timeout", "-5s"], "is negative"),
    ("datanode", &["--name", "../etc"], "--name"),
];

#[test]
fn a_bad_flag_value_is_a_usage_error_that_says_what_the_flag_accepts() {
    for (binary, flags, says) in CASES {
        let out = run(binary, flags, Duration::from_secs(60));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{binary} {flags:?}:\n{}",
            out.stderr
        );
        assert!(
            out.stderr.contains(flags[0]) && out.stderr.contains(flags[1]),
            "{binary} {flags:?}: the message names the flag and the value:\n{}",
            out.stderr
        );
        assert!(
            out.stderr.contains(says),
            "{binary} {flags:?}: the message says {says:?}:\n{}",
            out.stderr
        );
    }
}

/// A file where a folder must be: status 2, and the message says so.
#[test]
fn a_folder_flag_that_names_a_file_is_a_usage_error() {
    let root = TempDir::new().unwrap();
    let file = root.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let file = file.display().to_string();
    let log = format!("{file}/respuestas.txt");
    let cases: [(&str, Vec<&str>, &str); 4] = [
        (
            "server",
            vec!["--listen", "127.0.0.1:0", "--dir", &file],
            "--dir",
        ),
        (
            "headnode",
            vec!["--listen", "127.0.0.1:0", "--dir", &file],
            "--dir",
        ),
        ("datanode", vec!["--dir", &file], "--dir"),
        ("client", vec!["--log", &log, "--count", "1"], "--log"),
    ];
    for (binary, flags, flag) in cases {
        let out = run(binary, &flags, Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(2), "{binary}:\n{}", out.stderr);
        assert!(
            out.stderr.contains("is a file, not a folder") && out.stderr.contains(flag),
            "{binary}:\n{}",
            out.stderr
        );
    }
}

//! Shared helpers of the Activity 2 end-to-end tests: a headnode and its
//! datanodes as real processes on 127.0.0.1, the client binary, raw
//! protocol connections, and readers for the log files.

#![allow(dead_code)] // each test file uses a different part

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    time::Duration,
};

use protocol::sentences;
use testkit::{Node, Run, TempDir};

/// Generous: the machine running the tests may be loaded.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Short heartbeats so that tests see several rounds quickly (unless a
/// test gives its own `--heartbeat-interval` and `--heartbeat-timeout`).
pub const HEARTBEAT: [&str; 4] = [
    "--heartbeat-interval",
    "200ms",
    "--heartbeat-timeout",
    "150ms",
];

/// A headnode, its datanodes, and the folder they write in.
pub struct Cluster {
    pub root: TempDir,
    pub head: Node,
    pub datanodes: HashMap<String, Node>,
}

impl Cluster {
    /// A headnode on an ephemeral port with short heartbeats, plus `extra`
    /// flags, and no datanode.
    pub fn headnode(extra: &[&str]) -> Cluster {
        let root = TempDir::new().expect("temp dir");
        let head = start_headnode(&root.path().join("headnode"), "127.0.0.1:0", extra);
        Cluster {
            root,
            head,
            datanodes: HashMap::new(),
        }
    }

    /// A headnode and datanodes `names`, all registered.
    pub fn with_datanodes(names: &[&str], extra: &[&str]) -> Cluster {
        let mut cluster = Cluster::headnode(extra);
        for name in names {
            cluster.start_datanode(name);
        }
        for name in names {
            cluster.wait_registered(name, 1);
        }
        cluster
    }

    pub fn addr(&self) -> String {
        self.head.addr_string()
    }

    pub fn head_dir(&self) -> PathBuf {
        self.root.path().join("headnode")
    }

    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// Starts datanode `name` (its folder is `<root>/<name>`), without
    /// waiting for it to register.
    pub fn start_datanode(&mut self, name: &str) {
        self.start_datanode_with(name, &[]);
    }

    /// [`Cluster::start_datanode`] with `extra` flags.
    pub fn start_datanode_with(&mut self, name: &str, extra: &[&str]) {
        let node = start_datanode_with(&self.addr(), name, &self.data_dir(name), extra);
        self.datanodes.insert(name.to_owned(), node);
    }

    /// The headnode's heartbeat port, from its `answers_to=...` log line.
    pub fn heartbeat_port(&self) -> u16 {
        let mut port = None;
        testkit::wait_until(PATIENCE, || {
            let stderr = self.head.stderr();
            port = stderr
                .split("answers_to=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|addr| addr.rsplit(':').next())
                .and_then(|port| port.parse().ok());
            port.is_some()
        });
        port.expect("the headnode logs its heartbeat socket")
    }

    /// Waits until datanode `name` has logged its registration `times`
    /// times in total.
    pub fn wait_registered(&self, name: &str, times: usize) {
        let node = &self.datanodes[name];
        let line = format!("registered with headnode as {name}");
        assert!(
            testkit::wait_until(PATIENCE, || node.stderr().matches(&line).count() >= times),
            "{name} did not register (x{times}):\n{}\nheadnode:\n{}",
            node.stderr(),
            self.head.stderr()
        );
    }

    pub fn kill_datanode(&mut self, name: &str) {
        let mut node = self.datanodes.remove(name).expect("running");
        node.kill();
    }

    pub fn registro_server(&self) -> PathBuf {
        self.head_dir().join("registro_server.txt")
    }

    pub fn heartbeat_file(&self) -> PathBuf {
        self.head_dir().join("heartbeat_server.txt")
    }

    pub fn data_file(&self, name: &str) -> PathBuf {
        self.data_dir(name).join("data.txt")
    }

    /// Runs the client against the headnode, logging to `log`.
    pub fn client(&self, log: &Path, extra: &[&str]) -> Run {
        let mut args = vec![
            "--connect".to_owned(),
            self.addr(),
            "--log".to_owned(),
            log.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        run_client(args)
    }
}

pub fn start_headnode(dir: &Path, listen: &str, extra: &[&str]) -> Node {
    let dir = dir.display().to_string();
    let mut args = vec!["--listen", listen, "--dir", &dir];
    if !extra.contains(&"--heartbeat-interval") {
        args.extend(HEARTBEAT);
    }
    args.extend(extra);
    Node::spawn("headnode", &args)
}

pub fn start_datanode(headnode: &str, name: &str, dir: &Path) -> Node {
    start_datanode_with(headnode, name, dir, &[])
}

/// [`start_datanode`] with `extra` flags.
pub fn start_datanode_with(headnode: &str, name: &str, dir: &Path, extra: &[&str]) -> Node {
    let dir = dir.display().to_string();
    let mut args = vec!["--headnode", headnode, "--name", name, "--dir", &dir];
    args.extend(extra);
    Node::spawn_quiet("datanode", &args)
}

/// Runs the client binary with owned arguments (usable from a thread).
pub fn run_client(args: Vec<String>) -> Run {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    testkit::run("client", &args, Duration::from_secs(300))
}

/// Asserts the client run confirmed every message.
pub fn assert_all_confirmed(run: &Run, count: usize) {
    assert!(
        run.status.success(),
        "client failed ({}):\nstdout tail: {}\nstderr: {}",
        run.status,
        tail(&run.stdout),
        run.stderr
    );
    let summary = format!("sent {count}, confirmed {count}, errors 0");
    assert!(
        run.stdout.contains(&summary),
        "expected '{summary}' in:\n{}",
        tail(&run.stdout)
    );
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// `(message, datanode)` of each line of a client's registro_cliente.txt.
pub fn client_answers(log: &Path) -> Vec<(String, String)> {
    testkit::read_records(log)
        .into_iter()
        .map(|(stamp, text)| {
            assert!(testkit::is_timestamp(&stamp), "bad time stamp {stamp:?}");
            let (message, node) = sentences::parse_headnode_stored(&text)
                .unwrap_or_else(|| panic!("not a confirmation: {text:?}"));
            (message.to_owned(), node.to_owned())
        })
        .collect()
}

/// `(message, datanode)` of each line of registro_server.txt.
pub fn server_records(path: &Path) -> Vec<(String, String)> {
    testkit::read_records(path)
        .into_iter()
        .map(|(stamp, text)| {
            assert!(testkit::is_timestamp(&stamp), "bad time stamp {stamp:?}");
            let (node, message) = sentences::parse_datanode_stored(&text)
                .unwrap_or_else(|| panic!("not a datanode sentence: {text:?}"));
            (message.to_owned(), node.to_owned())
        })
        .collect()
}

/// How many times each message is in a datanode's data.txt.
pub fn data_counts(path: &Path) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for (stamp, message) in testkit::read_records(path) {
        assert!(testkit::is_timestamp(&stamp), "bad time stamp {stamp:?}");
        *counts.entry(message).or_default() += 1;
    }
    counts
}

/// The complete lines of a file another process may be appending to (a
/// reader can see a write half done): a partial last line is left out.
pub fn complete_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
    complete.lines().map(str::to_owned).collect()
}

/// `(datanode, active)` of each line of heartbeat_server.txt, which the
/// headnode may be writing to.
pub fn heartbeats(path: &Path) -> Vec<(String, bool)> {
    complete_lines(path)
        .iter()
        .map(|line| {
            let (stamp, text) = journal::parse_record(line)
                .unwrap_or_else(|| panic!("malformed heartbeat line {line:?}"));
            assert!(testkit::is_timestamp(stamp), "bad time stamp {stamp:?}");
            let (name, active) = sentences::parse_heartbeat(&text)
                .unwrap_or_else(|| panic!("not a heartbeat sentence: {text:?}"));
            (name.to_owned(), active)
        })
        .collect()
}

/// Asserts that every confirmation is backed by the data.txt of the
/// datanode it names, counting repeated messages: a datanode must hold a
/// message at least as many times as it was confirmed from it.
pub fn assert_confirmations_stored(cluster: &Cluster, answers: &[(String, String)]) {
    let mut confirmed: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
    for (message, node) in answers {
        *confirmed
            .entry(node.as_str())
            .or_default()
            .entry(message.as_str())
            .or_default() += 1;
    }
    for (node, messages) in confirmed {
        let stored = data_counts(&cluster.data_file(node));
        for (message, times) in messages {
            let held = stored.get(message).copied().unwrap_or(0);
            assert!(
                held >= times,
                "{node} confirmed '{message}' {times} times but holds it {held} times"
            );
        }
    }
}

/// A raw protocol connection, for what the client binary does not do.
pub struct Raw {
    stream: TcpStream,
}

impl Raw {
    pub fn connect(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(PATIENCE))
            .expect("set timeout");
        Raw { stream }
    }

    pub fn send(&mut self, payload: &str) {
        self.send_bytes(payload.as_bytes());
    }

    /// Sends one frame of any bytes, UTF-8 or not.
    pub fn send_bytes(&mut self, payload: &[u8]) {
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).expect("send");
    }

    /// The next reply, or `None` if the peer closed the connection.
    pub fn recv(&mut self) -> Option<String> {
        let mut header = [0u8; 4];
        match self.stream.read_exact(&mut header) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return None,
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(err) => panic!("read: {err}"),
        }
        let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
        self.stream.read_exact(&mut payload).expect("read payload");
        Some(String::from_utf8(payload).expect("UTF-8 reply"))
    }

    pub fn ask(&mut self, payload: &str) -> String {
        self.send(payload);
        self.recv().expect("a reply")
    }
}

/// Sends `signal` (`-STOP`, `-CONT`, ...) to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid}");
}

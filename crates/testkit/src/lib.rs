//! Support for end-to-end tests: the real binaries, started as processes on
//! 127.0.0.1 with ephemeral ports, and the log files they write.
//!
//! A listening node is started with `--listen 127.0.0.1:0`; [`Node::spawn`]
//! reads its stderr until the `listening on <addr>` line and exposes the
//! address. Every node is killed when its [`Node`] is dropped, so a failing
//! test leaves no process behind.
//!
//! The binaries are found next to the test executable's `deps/` folder
//! (`target/debug/`); [`binary`] runs `cargo build` for each one the first
//! time a test process asks for it, so no test ever starts a stale binary.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{mpsc, Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

pub mod fault;

pub use tempfile::TempDir;

/// The path of one of the workspace's binaries, brought up to date first.
///
/// `cargo test --workspace` builds the binaries of the packages that have
/// integration tests, but not the others (`client` has none of its own), and
/// `cargo test -p headnode` builds only `headnode` while its tests also start
/// `datanode` and `client`. A test that started a stale or missing binary
/// would test old code or fail, so the first call for each binary in a test
/// process runs `cargo build` for it with the same cargo, profile and target
/// folder; when nothing changed that takes a fraction of a second.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    // target/debug/deps/<test> -> target/debug/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps");
    build_once(name, profile_dir);
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing after cargo build",
        path.display()
    );
    path
}

/// Runs `cargo build --package <name> --bin <name>` for the profile whose
/// output folder is `profile_dir` (`target/debug` or `target/release`), once
/// per binary and test process.
fn build_once(name: &str, profile_dir: &Path) {
    // Tests run on many threads: the first one builds, the others wait for
    // it rather than queueing on cargo's own lock.
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|poison| poison.into_inner());
    if built.iter().any(|done| done == name) {
        return;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args([
        "build",
        "--quiet",
        "--locked",
        "--package",
        name,
        "--bin",
        name,
    ]);
    if let Some(target_dir) = profile_dir.parent() {
        command.arg("--target-dir").arg(target_dir);
    }
    if profile_dir
        .file_name()
        .is_some_and(|profile| profile == "release")
    {
        command.arg("--release");
    }
    let status = command
        .status()
        .unwrap_or_else(|err| panic!("run cargo to build {name}: {err}"));
    assert!(
        status.success(),
        "cargo build --bin {name} failed: {status}"
    );
    built.push(name.to_owned());
}

/// A running node. Killed on drop.
pub struct Node {
    name: String,
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Signalled when the stderr reader has read everything (the process
    /// closed its stderr, normally by exiting).
    stderr_closed: Mutex<mpsc::Receiver<()>>,
    addr: Option<SocketAddr>,
}

impl Node {
    /// Starts binary `name` with `args` and waits until it logs
    /// `listening on <addr>` (give it `--listen 127.0.0.1:0`).
    pub fn spawn(name: &str, args: &[&str]) -> Node {
        Node::start(&[], name, args, true)
    }

    /// Starts binary `name` with `args` without waiting for anything.
    pub fn spawn_quiet(name: &str, args: &[&str]) -> Node {
        Node::start(&[], name, args, false)
    }

    /// Like [`Node::spawn`] (`wait_listening`) or [`Node::spawn_quiet`],
    /// run through `launcher`, a command that execs the binary in place
    /// (such as `ip netns exec NS`), so that the process is still the node.
    pub fn spawn_via(launcher: &[&str], name: &str, args: &[&str], wait_listening: bool) -> Node {
        Node::start(launcher, name, args, wait_listening)
    }

    fn start(launcher: &[&str], name: &str, args: &[&str], wait_listening: bool) -> Node {
        let mut child = command(launcher, name)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("start {name}: {err}"));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (found, listening) = mpsc::channel();
        let (closed, stderr_closed) = mpsc::channel();
        let pipe = child.stderr.take().expect("stderr is piped");
        let lines = Arc::clone(&stderr);
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = listening_addr(&line) {
                    let _ = found.send(addr);
                }
                lines.lock().unwrap().push(line);
            }
            let _ = closed.send(());
        });
        let mut node = Node {
            name: name.to_owned(),
            child,
            stderr,
            stderr_closed: Mutex::new(stderr_closed),
            addr: None,
        };
        if wait_listening {
            match listening.recv_timeout(Duration::from_secs(20)) {
                Ok(addr) => node.addr = Some(addr),
                Err(_) => panic!(
                    "{name} did not report a listening address:\n{}",
                    node.stderr()
                ),
            }
        }
        node
    }

    /// The address the node listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("this node was not started with spawn()")
    }

    /// The address as `host:port`, for flags.
    pub fn addr_string(&self) -> String {
        self.addr().to_string()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the node logged so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Whether the node logs `text` within `timeout`. Its stderr is read
    /// by another thread, so a line written before an answer the test has
    /// seen may not be in [`Node::stderr`] yet.
    pub fn logged(&self, text: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.stderr().contains(text))
    }

    /// Sends SIGKILL: the node dies with no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM, as `docker stop` does.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.name);
    }

    /// Waits up to `timeout` for the node to exit. Once it has, everything
    /// it wrote to stderr is in [`Node::stderr`].
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                // The reader may still be behind the exit by a few lines.
                let closed = self.stderr_closed.lock().unwrap();
                let _ = closed.recv_timeout(deadline.saturating_duration_since(Instant::now()));
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in a `... listening on <addr>` log line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// The output of a binary run to completion.
#[derive(Debug)]
pub struct Run {
    /// Exit status.
    pub status: ExitStatus,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

/// The command that starts binary `name`, through `launcher` if not empty.
fn command(launcher: &[&str], name: &str) -> Command {
    match launcher.split_first() {
        None => Command::new(binary(name)),
        Some((program, launcher_args)) => {
            let mut command = Command::new(program);
            command.args(launcher_args).arg(binary(name));
            command
        }
    }
}

/// Runs binary `name` with `args` to completion (killed after `timeout`).
pub fn run(name: &str, args: &[&str], timeout: Duration) -> Run {
    run_with_stdin(name, args, None, timeout)
}

/// Like [`run`], through `launcher` (see [`Node::spawn_via`]).
pub fn run_via(launcher: &[&str], name: &str, args: &[&str], timeout: Duration) -> Run {
    run_inner(launcher, name, args, None, timeout)
}

/// Like [`run`], feeding `stdin` to the process.
pub fn run_with_stdin(name: &str, args: &[&str], stdin: Option<&str>, timeout: Duration) -> Run {
    run_inner(&[], name, args, stdin, timeout)
}

fn run_inner(
    launcher: &[&str],
    name: &str,
    args: &[&str],
    stdin: Option<&str>,
    timeout: Duration,
) -> Run {
    use std::io::{Read, Write};
    let mut child = command(launcher, name)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("start {name}: {err}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let input = input.to_owned();
        thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let mut out_pipe = child.stdout.take().expect("stdout is piped");
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let out = thread::spawn(move || {
        let mut text = String::new();
        let _ = out_pipe.read_to_string(&mut text);
        text
    });
    let err = thread::spawn(move || {
        let mut text = String::new();
        let _ = err_pipe.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let status = child.wait().expect("reap the child");
            let stderr = err.join().unwrap_or_default();
            panic!("{name} {args:?} still running after {timeout:?} ({status}):\n{stderr}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Run {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// The lines of a log file (empty if it does not exist).
pub fn read_lines(path: impl AsRef<Path>) -> Vec<String> {
    match std::fs::read_to_string(path.as_ref()) {
        Ok(text) => {
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "{} ends inside a line",
                path.as_ref().display()
            );
            text.lines().map(str::to_owned).collect()
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(err) => panic!("read {}: {err}", path.as_ref().display()),
    }
}

/// Splits each line into its left part and its unescaped text, asserting
/// that every line is a well-formed record.
pub fn read_records(path: impl AsRef<Path>) -> Vec<(String, String)> {
    read_lines(path.as_ref())
        .iter()
        .map(|line| {
            let (left, text) = journal::parse_record(line).unwrap_or_else(|| {
                panic!("malformed line in {}: {line:?}", path.as_ref().display())
            });
            (left.to_owned(), text)
        })
        .collect()
}

/// Whether `left` is a `YYYY-mm-dd HH:MM:SS` time stamp.
pub use journal::is_timestamp;

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    condition()
}

/// The soft limit on this process's open files (`ulimit -n`), if known.
pub fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// How many connections a flood test may open: `wanted`, or fewer when
/// `ulimit -n` is low (both ends of each connection are on this machine,
/// and the node under test has the same limit), printing so.
pub fn flood_size(wanted: usize) -> usize {
    let limit = open_files_limit().unwrap_or(1024);
    let room = limit.saturating_sub(128) / 2;
    if room < wanted {
        eprintln!("ulimit -n is {limit}: flooding with {room} connections instead of {wanted}");
    }
    wanted.min(room)
}

/// Opens `count` connections to `addr` that each send half a frame
/// header (two of its four bytes) and then nothing: a slowloris flood.
/// Connections beyond what the node accepts wait in its backlog.
pub fn half_open_flood(addr: SocketAddr, count: usize) -> Vec<std::net::TcpStream> {
    use std::io::Write;
    (0..count)
        .map(|n| {
            let mut stream = std::net::TcpStream::connect(addr)
                .unwrap_or_else(|err| panic!("flood connection {n} to {addr}: {err}"));
            stream.write_all(&[0, 0]).expect("half a header");
            stream
        })
        .collect()
}

/// Whether the peer closes every one of `streams` within `timeout` (a read
/// sees the end, or a reset), reading nothing but the end.
pub fn all_closed(streams: &mut [std::net::TcpStream], timeout: Duration) -> bool {
    use std::io::Read;
    let deadline = Instant::now() + timeout;
    streams.iter_mut().all(|stream| loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream
            .set_read_timeout(Some(left))
            .expect("set a read timeout");
        let mut byte = [0u8; 64];
        match stream.read(&mut byte) {
            Ok(0) => return true,
            Ok(_) => continue, // a reply to something: keep reading to the end
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    })
}

/// Asserts that, under a flood whose connections are `held`, `client
/// --ping` at `addr` is answered, and that the node then closes every held
/// connection within `patience`. Returns how long the ping took.
pub fn assert_flood_survived(
    addr: &str,
    held: &mut [std::net::TcpStream],
    patience: Duration,
) -> Duration {
    let started = Instant::now();
    let ping = run(
        "client",
        &["--connect", addr, "--ping", "--connect-timeout", "30s"],
        patience,
    );
    let answered = started.elapsed();
    assert!(
        ping.status.success(),
        "ping under the flood: {}",
        ping.stderr
    );
    assert!(
        all_closed(held, patience),
        "a half-open connection was kept"
    );
    answered
}

/// A small tmpfs mounted on a folder, for tests of a full disk; unmounted
/// on drop.
///
/// Mounting needs root (CI runs as root): [`Tmpfs::mount`] returns `None`
/// elsewhere, after printing why the test is skipped, so that a developer's
/// run says so instead of failing or passing in silence.
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it: `64k`) on
    /// `dir`, created if missing; `None` (the test should return) if it
    /// cannot. `test` names the test in the skip message.
    pub fn mount(test: &str, dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("create the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs {
                dir: dir.to_path_buf(),
            }),
            Ok(out) => {
                eprintln!(
                    "SKIPPED {test}: cannot mount a tmpfs (needs root; CI runs as root): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(err) => {
                eprintln!("SKIPPED {test}: cannot run mount: {err}");
                None
            }
        }
    }

    /// The mounted folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Fills the file system with `filler` until a write fails (the disk is
    /// full); returns the filler's path.
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.dir.join("filler");
        let mut file = std::fs::File::create(&path).expect("create the filler");
        let block = [0u8; 1024];
        while file.write_all(&block).is_ok() {}
        // What a partial block left room for.
        while file.write_all(&block[..1]).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process a failed test left running may still hold a file.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// `GET path` from the HTTP server at `addr` (HTTP/1.1, one request, the
/// connection closed after it): the status code, the content type
/// (lowercase) and the body. For the status pages' tests.
pub fn http_get(addr: &str, path: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the HTTP server");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("set a read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("a whole HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status code");
    let content_type = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

/// The `HOST:PORT` of a node's status page, from its `status page on
/// http://HOST:PORT/` log line in `stderr`.
pub fn status_page_addr(stderr: &str) -> Option<String> {
    stderr
        .split("status page on http://")
        .nth(1)?
        .split('/')
        .next()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_listening_address_in_a_log_line() {
        assert_eq!(
            listening_addr("2026-11-26T23:00:00Z  INFO server: listening on 127.0.0.1:41234"),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        assert_eq!(listening_addr("INFO started"), None);
    }

    #[test]
    fn recognises_time_stamps() {
        assert!(is_timestamp("2019-10-05 01:57:38"));
        assert!(!is_timestamp("172.19.0.3:46274"));
    }
}

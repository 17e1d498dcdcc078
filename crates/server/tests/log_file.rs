//! What happens to `log.txt` under a running server, with real processes
//! (issue 11): logrotate's `copytruncate` followed by a full disk never pads
//! the file with NUL bytes; `create`-style rotation (rename, or remove)
//! moves the writes to a new `log.txt` without losing a line; a file made
//! immutable is answered `ERR STORAGE`, saying how it recovers, until it is
//! writable again.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    time::Duration,
};

use protocol::sentences::server_received;
use testkit::{read_records, wait_until, Node, TempDir, Tmpfs};

const PATIENCE: Duration = Duration::from_secs(60);

/// One connection to the server, one request at a time.
struct Conn(TcpStream);

impl Conn {
    fn open(server: &Node) -> Conn {
        let stream = TcpStream::connect(server.addr()).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        Conn(stream)
    }

    /// Sends `SEND <message>` and returns the reply.
    fn send(&mut self, message: &str) -> String {
        let payload = format!("SEND {message}");
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(payload.as_bytes());
        self.0.write_all(&frame).unwrap();
        let mut header = [0; 4];
        self.0.read_exact(&mut header).unwrap();
        let mut reply = vec![0; u32::from_be_bytes(header) as usize];
        self.0.read_exact(&mut reply).unwrap();
        String::from_utf8(reply).unwrap()
    }

    /// Sends `message` and asserts that it is confirmed.
    fn confirmed(&mut self, message: &str) {
        let reply = self.send(message);
        assert_eq!(reply, format!("OK {}", server_received(message)));
    }
}

fn server(dir: &Path) -> Node {
    Node::spawn(
        "server",
        &["--listen", "127.0.0.1:0", "--dir", dir.to_str().unwrap()],
    )
}

fn messages(path: &Path) -> Vec<String> {
    read_records(path)
        .into_iter()
        .map(|(_, text)| text)
        .collect()
}

fn truncate(path: &Path) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

/// The sequence: the file truncated under the server, then a write
/// that fails halfway (the disk fills inside it), then a good one. The file
/// holds the two good lines and nothing else, and no NUL byte.
#[test]
fn copytruncate_then_a_full_disk_leaves_whole_lines_only() {
    let root = TempDir::new().unwrap();
    let Some(disk) = Tmpfs::mount(
        "copytruncate_then_a_full_disk_leaves_whole_lines_only",
        &root.path().join("disk"),
        "64k",
    ) else {
        return;
    };
    let server = server(disk.path());
    let log = disk.path().join("log.txt");
    let mut conn = Conn::open(&server);
    for n in 0..100 {
        conn.confirmed(&format!("before rotation {n}"));
    }
    truncate(&log);
    conn.confirmed("small");
    let filler = disk.fill();
    // Larger than what is left of the file's last page: part of it is
    // written before the disk says it is full.
    let reply = conn.send(&"x".repeat(6000));
    assert!(reply.starts_with("ERR STORAGE"), "{reply}");
    assert!(reply.contains("later writes are tried again"), "{reply}");
    std::fs::remove_file(filler).unwrap();
    conn.confirmed("good");
    let bytes = std::fs::read(&log).unwrap();
    assert!(
        !bytes.contains(&0),
        "NUL bytes in log.txt: {} bytes",
        bytes.len()
    );
    assert_eq!(messages(&log), ["small", "good"]);
}

/// logrotate's `create` (rename, new empty file) and a plain `rm`: within
/// about a second the server writes to the file at the path again, and
/// every confirmed message is in exactly one of the files.
#[test]
fn renamed_or_removed_log_files_are_followed() {
    let root = TempDir::new().unwrap();
    let dir = root.path().join("server");
    let server = server(&dir);
    let log = dir.join("log.txt");
    let rotated = dir.join("log.txt.1");
    let mut conn = Conn::open(&server);
    let mut confirmed = Vec::new();
    let mut send = |conn: &mut Conn| {
        let message = format!("message {}", confirmed.len());
        conn.confirmed(&message);
        confirmed.push(message);
    };
    send(&mut conn);

    std::fs::rename(&log, &rotated).unwrap();
    std::fs::write(&log, "").unwrap();
    assert!(
        wait_until(PATIENCE, || {
            send(&mut conn);
            !messages(&log).is_empty()
        }),
        "log.txt never got a line after the rename"
    );
    let mut held = messages(&rotated);
    std::fs::remove_file(&rotated).unwrap();
    std::fs::rename(&log, &rotated).unwrap();
    assert!(
        wait_until(PATIENCE, || {
            send(&mut conn);
            log.exists()
        }),
        "log.txt was never created again"
    );
    held.extend(messages(&rotated));
    held.extend(messages(&log));
    assert_eq!(held, confirmed, "each confirmed message once, in order");
}

/// `chattr +i` makes every write fail with `EPERM`: `ERR STORAGE`, whose
/// reason says that later writes are tried again; and they are: once the
/// flag is off, messages are confirmed again without a restart.
#[test]
fn an_immutable_log_file_is_storage_errors_until_it_is_writable_again() {
    let root = TempDir::new().unwrap();
    let dir = root.path().join("server");
    let server = server(&dir);
    let log = dir.join("log.txt");
    let mut conn = Conn::open(&server);
    conn.confirmed("before");
    let chattr = |flag: &str| {
        std::process::Command::new("chattr")
            .arg(flag)
            .arg(&log)
            .output()
    };
    match chattr("+i") {
        Ok(out) if out.status.success() => {}
        other => {
            eprintln!(
                "SKIPPED an_immutable_log_file_is_storage_errors_until_it_is_writable_again: \
                 chattr +i needs root and a file system with the flag: {other:?}"
            );
            return;
        }
    }
    let reply = conn.send("while immutable");
    let undone = chattr("-i");
    assert!(reply.starts_with("ERR STORAGE"), "{reply}");
    assert!(reply.contains("later writes are tried again"), "{reply}");
    assert!(undone.unwrap().status.success());
    conn.confirmed("after");
    assert_eq!(messages(&log), ["before", "after"]);
}

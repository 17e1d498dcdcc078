//! Activity 1 end to end: the real `server` and `client` binaries on
//! 127.0.0.1, checked through the files they write and raw sockets.
//!
//! Nothing here asserts a duration: the bounds are only there so that a hung
//! process fails the test instead of hanging it.

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    thread,
    time::Duration,
};

use protocol::sentences::{parse_server_received, server_received};
use testkit::{is_timestamp, read_lines, read_records, run, run_with_stdin, Node, Run, TempDir};

const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn start_server(dir: &Path, extra: &[&str]) -> Node {
    let dir = dir.to_str().unwrap();
    let mut args = vec!["--listen", "127.0.0.1:0", "--dir", dir];
    args.extend_from_slice(extra);
    Node::spawn("server", &args)
}

fn client(server: &Node, log: &Path, extra: &[&str]) -> Run {
    let addr = server.addr_string();
    let mut args = vec!["--connect", &addr, "--log", log.to_str().unwrap()];
    args.extend_from_slice(extra);
    run("client", &args, RUN_TIMEOUT)
}

fn assert_success(run: &Run) {
    assert!(
        run.status.success(),
        "client failed ({}):\nstdout tail: {}\nstderr: {}",
        run.status,
        run.stdout.lines().last().unwrap_or(""),
        run.stderr
    );
}

/// The messages a client's answers confirm, asserting the line format
/// `YYYY-mm-dd HH:MM:SS -> El servidor ha recibido ... '<message>'.`.
fn confirmed_messages(answers: &Path) -> Vec<String> {
    read_records(answers)
        .into_iter()
        .map(|(stamp, sentence)| {
            assert!(is_timestamp(&stamp), "bad time stamp {stamp:?}");
            parse_server_received(&sentence)
                .unwrap_or_else(|| panic!("not a confirmation: {sentence:?}"))
                .to_owned()
        })
        .collect()
}

/// The `(sender, message)` records of log.txt, asserting that each sender
/// is `127.0.0.1:<port>`.
fn logged(dir: &Path) -> Vec<(SocketAddr, String)> {
    read_records(dir.join("log.txt"))
        .into_iter()
        .map(|(left, message)| {
            let sender: SocketAddr = left
                .parse()
                .unwrap_or_else(|_| panic!("bad sender {left:?}"));
            assert_eq!(sender.ip().to_string(), "127.0.0.1", "{left}");
            (sender, message)
        })
        .collect()
}

fn messages_of(records: &[(SocketAddr, String)]) -> Vec<String> {
    records.iter().map(|(_, m)| m.clone()).collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A raw protocol connection, for what the client binary never sends.
struct Conn {
    stream: TcpStream,
}

impl Conn {
    fn open(server: &Node) -> Conn {
        let stream = TcpStream::connect(server.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Conn { stream }
    }

    fn send(&mut self, payload: &[u8]) {
        self.stream.write_all(&frame(payload)).unwrap();
    }

    /// The next reply, or `None` at the end of the stream.
    fn recv(&mut self) -> Option<String> {
        let mut header = [0u8; 4];
        match self.stream.read_exact(&mut header) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return None,
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(err) => panic!("read failed: {err}"),
        }
        let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
        self.stream.read_exact(&mut payload).unwrap();
        Some(String::from_utf8(payload).expect("replies are UTF-8"))
    }

    fn ask(&mut self, payload: &[u8]) -> String {
        self.send(payload);
        self.recv().expect("a reply")
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

fn ok(message: &str) -> String {
    format!("OK {}", server_received(message))
}

#[test]
fn a_seeded_client_is_logged_and_answered_line_for_line() {
    let dir = TempDir::new().unwrap();
    let server = start_server(dir.path(), &[]);
    let answers = dir.path().join("respuestas.txt");
    let first = client(&server, &answers, &["--count", "500", "--seed", "7"]);
    assert_success(&first);
    assert!(
        first
            .stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("sent 501, confirmed 501, errors 0, "),
        "{}",
        first.stdout
    );

    let records = logged(dir.path());
    assert_eq!(records.len(), 501);
    assert!(
        records.iter().all(|(sender, _)| *sender == records[0].0),
        "one connection, one sender"
    );
    let sent = messages_of(&records);
    assert_eq!(sent.last().map(String::as_str), Some("exit"));
    assert_eq!(sent.iter().filter(|m| *m == "exit").count(), 1);
    assert_eq!(confirmed_messages(&answers), sent, "answers match log.txt");
    // Every answer was also printed, before the summary.
    let printed: Vec<&str> = first.stdout.lines().collect();
    assert_eq!(printed.len(), 502);
    assert_eq!(printed[0], server_received(&sent[0]));

    // The same seed draws the same sequence.
    let again = dir.path().join("again.txt");
    assert_success(&client(&server, &again, &["--count", "500", "--seed", "7"]));
    assert_eq!(confirmed_messages(&again), sent);
    let records = logged(dir.path());
    assert_eq!(records.len(), 1002);
    assert_eq!(messages_of(&records[501..]), sent);
    assert_ne!(records[0].0, records[501].0, "a new connection each run");
}

#[test]
fn twenty_clients_at_once_are_all_served() {
    let dir = TempDir::new().unwrap();
    let server = Arc::new(start_server(dir.path(), &[]));
    let clients: Vec<_> = (0..20)
        .map(|n| {
            let server = Arc::clone(&server);
            let answers = dir.path().join(format!("answers-{n}.txt"));
            thread::spawn(move || {
                let pipeline = if n % 2 == 0 { "1" } else { "8" };
                let seed = n.to_string();
                let run = client(
                    &server,
                    &answers,
                    &["--count", "50", "--seed", &seed, "--pipeline", pipeline],
                );
                assert_success(&run);
                confirmed_messages(&answers)
            })
        })
        .collect();
    let mut answered: Vec<Vec<String>> = clients
        .into_iter()
        .map(|client| client.join().unwrap())
        .collect();
    for messages in &answered {
        assert_eq!(messages.len(), 51, "every answer of every client");
    }

    let records = logged(dir.path());
    assert_eq!(records.len(), 20 * 51);
    // Each client is one connection: its lines, in order, are its messages.
    let mut by_sender: HashMap<SocketAddr, Vec<String>> = HashMap::new();
    for (sender, message) in records {
        by_sender.entry(sender).or_default().push(message);
    }
    let mut logged: Vec<Vec<String>> = by_sender.into_values().collect();
    logged.sort();
    answered.sort();
    assert_eq!(logged, answered);
}

#[test]
fn ten_thousand_pipelined_messages_never_merge() {
    let dir = TempDir::new().unwrap();
    let server = start_server(dir.path(), &[]);
    let messages: Vec<String> = (0..10_000)
        .map(|n| match n % 100 {
            0 => format!("line\nbreak {n}"),
            1 => format!("carriage\rreturn {n}"),
            2 => format!("back\\slash {n}"),
            3 => format!("all\r\n\\n of them\n{n}"),
            _ => format!("m{n}"),
        })
        .collect();
    let mut bytes = Vec::new();
    for message in &messages {
        bytes.extend(frame(format!("SEND {message}").as_bytes()));
    }

    let mut conn = Conn::open(&server);
    let mut writer = conn.stream.try_clone().unwrap();
    // Written from another thread, so that the replies are read meanwhile
    // and neither side's buffers can fill up and stall the other.
    let write = thread::spawn(move || writer.write_all(&bytes).unwrap());
    for message in &messages {
        assert_eq!(conn.recv().as_deref(), Some(ok(message).as_str()));
    }
    write.join().unwrap();

    let lines = read_lines(dir.path().join("log.txt"));
    assert_eq!(lines.len(), 10_000);
    assert!(lines[0].ends_with(" -> line\\nbreak 0"), "{}", lines[0]);
    assert!(
        lines[3].ends_with(r" -> all\r\n\\n of them\n3"),
        "{}",
        lines[3]
    );
    assert_eq!(messages_of(&logged(dir.path())), messages);
}

#[test]
fn bad_input_gets_its_error_and_the_server_keeps_serving() {
    let dir = TempDir::new().unwrap();
    let server = Arc::new(start_server(dir.path(), &[]));
    // A well-behaved client runs meanwhile.
    let answers = dir.path().join("respuestas.txt");
    let background = {
        let server = Arc::clone(&server);
        let answers = answers.clone();
        thread::spawn(move || {
            let run = client(&server, &answers, &["--count", "300", "--pipeline", "4"]);
            assert_success(&run);
        })
    };
    let mut bad = Conn::open(&server);
    let mut good = Conn::open(&server);
    let mut good_messages = Vec::new();
    let mut check_good = |n: usize| {
        let message = format!("good {n}");
        assert_eq!(good.ask(format!("SEND {message}").as_bytes()), ok(&message));
        good_messages.push(message);
    };

    // One byte over the 64 KiB maximum: refused at once, skipped, and the
    // same connection goes on.
    let mut oversized = b"SEND ".to_vec();
    oversized.resize(65_537, b'x');
    let reply = bad.ask(&oversized);
    assert!(reply.starts_with("ERR TOO_LARGE "), "{reply}");
    check_good(0);
    assert_eq!(bad.ask(b"SEND after big"), ok("after big"));

    let cases: [(&[u8], &str); 8] = [
        (b"SEND \xff\xfe", "ERR BAD_UTF8 "),
        (b"FETCH x", "ERR UNKNOWN_COMMAND "),
        (b"", "ERR UNKNOWN_COMMAND "),
        (b"SEND ", "ERR EMPTY_MESSAGE "),
        (b"SEND", "ERR EMPTY_MESSAGE "),
        (b"REGISTER datanode1", "ERR WRONG_ROLE "),
        (b"STORE x", "ERR WRONG_ROLE "),
        (b"PING extra", "ERR BAD_ARGUMENT "),
    ];
    for (n, (payload, expected)) in cases.iter().enumerate() {
        let reply = bad.ask(payload);
        assert!(reply.starts_with(expected), "{payload:?} -> {reply}");
        check_good(n + 1);
    }
    assert_eq!(bad.ask(b"ping"), "PONG");
    assert_eq!(bad.ask(b"send still here"), ok("still here"));

    // Text typed into a raw socket: the "header" declares ~1.7 GB.
    bad.stream.write_all(b"hello there\n").unwrap();
    let reply = bad.recv().expect("an answer before the close");
    assert!(reply.starts_with("ERR FRAMING "), "{reply}");
    assert_eq!(bad.recv(), None, "closed after ERR FRAMING");
    check_good(99);

    background.join().unwrap();
    let drawn = confirmed_messages(&answers);
    assert_eq!(drawn.len(), 301);

    let mut expected: Vec<String> = ["after big", "still here"]
        .into_iter()
        .map(String::from)
        .chain(good_messages)
        .chain(drawn)
        .collect();
    let mut logged = messages_of(&logged(dir.path()));
    expected.sort();
    logged.sort();
    assert_eq!(
        logged, expected,
        "a line for each good message, none for bad input"
    );
}

#[test]
fn sigterm_drains_and_keeps_everything_confirmed() {
    let dir = TempDir::new().unwrap();
    let mut server = start_server(dir.path(), &["--fsync", "always"]);
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let idle = Conn::open(&server);
    let senders: Vec<_> = (0..3)
        .map(|t| {
            let mut conn = Conn::open(&server);
            let confirmed = Arc::clone(&confirmed);
            let count = Arc::clone(&count);
            thread::spawn(move || {
                for n in 0.. {
                    let message = format!("t{t}-{n}");
                    if conn
                        .stream
                        .write_all(&frame(format!("SEND {message}").as_bytes()))
                        .is_err()
                    {
                        return;
                    }
                    match conn.recv() {
                        Some(reply) if reply == ok(&message) => {
                            confirmed.lock().unwrap().push(message);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(reply) => panic!("unexpected {reply}"),
                        None => return,
                    }
                }
            })
        })
        .collect();
    assert!(
        testkit::wait_until(Duration::from_secs(60), || count.load(Ordering::Relaxed)
            >= 100),
        "the clients made no progress"
    );

    server.terminate();
    let status = server
        .wait_timeout(Duration::from_secs(10))
        .expect("the server exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
    for sender in senders {
        sender.join().unwrap();
    }
    let mut idle = idle;
    assert_eq!(idle.recv(), None, "idle connections are closed");

    let logged = messages_of(&logged(dir.path()));
    let confirmed = confirmed.lock().unwrap();
    assert!(confirmed.len() >= 100);
    for message in confirmed.iter() {
        assert!(
            logged.contains(message),
            "{message} was confirmed but not logged"
        );
    }
}

/// `docker stop` of a client in the middle of a run: it stops sending,
/// records the answer to every message it had sent, and exits 1 (the run was
/// not completed) well before Docker's grace period.
#[test]
fn sigterm_stops_the_client_after_recording_every_answer_owed() {
    let dir = TempDir::new().unwrap();
    let server = start_server(dir.path(), &[]);
    let answers = dir.path().join("respuestas.txt");
    let addr = server.addr_string();
    let args = [
        "--connect",
        &addr,
        "--log",
        answers.to_str().unwrap(),
        "--count",
        "10000000",
        "--pipeline",
        "16",
    ];
    let mut client = Node::spawn_quiet("client", &args);
    assert!(
        testkit::wait_until(Duration::from_secs(60), || read_lines(&answers).len()
            >= 2000),
        "the client made no progress:\n{}",
        client.stderr()
    );
    client.terminate();
    let status = client
        .wait_timeout(Duration::from_secs(30))
        .expect("the client exits after SIGTERM");
    assert_eq!(status.code(), Some(1), "{}", client.stderr());
    assert!(
        client
            .stderr()
            .contains("interrupted: stopped sending after"),
        "{}",
        client.stderr()
    );
    // Every message sent was answered and recorded: the two files hold the
    // same messages, each line whole.
    let confirmed = confirmed_messages(&answers);
    assert!(confirmed.len() < 10_000_000);
    assert_eq!(messages_of(&logged(dir.path())), confirmed);
}

#[test]
fn the_client_waits_for_a_late_server_and_gives_up_on_none() {
    let dir = TempDir::new().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let answers = dir.path().join("respuestas.txt");
    let early = {
        let (addr, answers) = (addr.clone(), answers.clone());
        thread::spawn(move || {
            run(
                "client",
                &[
                    "--connect",
                    &addr,
                    "--log",
                    answers.to_str().unwrap(),
                    "--count",
                    "5",
                    "--connect-timeout",
                    "90s",
                ],
                RUN_TIMEOUT,
            )
        })
    };
    // Not a synchronisation: only gives the client time to be refused first.
    thread::sleep(Duration::from_millis(500));
    let listen = addr.clone();
    let dir_arg = dir.path().to_str().unwrap();
    let _server = Node::spawn("server", &["--listen", &listen, "--dir", dir_arg]);
    let early = early.join().unwrap();
    assert_success(&early);
    assert_eq!(confirmed_messages(&answers).len(), 6);
    assert_eq!(logged(dir.path()).len(), 6);

    let nowhere = format!("127.0.0.1:{}", free_port());
    let refused = run(
        "client",
        &[
            "--connect",
            &nowhere,
            "--log",
            dir.path().join("none.txt").to_str().unwrap(),
            "--connect-timeout",
            "500ms",
        ],
        RUN_TIMEOUT,
    );
    assert!(!refused.status.success());
    assert!(
        refused.stderr.contains("could not connect to"),
        "{}",
        refused.stderr
    );
    assert!(read_lines(dir.path().join("none.txt")).is_empty());
}

#[test]
fn stdin_mode_and_ping_mode() {
    let dir = TempDir::new().unwrap();
    let server = start_server(dir.path(), &[]);
    let addr = server.addr_string();
    let answers = dir.path().join("respuestas.txt");
    let log = answers.to_str().unwrap();

    let typed = run_with_stdin(
        "client",
        &["--connect", &addr, "--log", log, "--stdin"],
        Some("Hola\n\n   \nmulti  word message\nAdiós\nexit\nnot sent\n"),
        RUN_TIMEOUT,
    );
    assert_success(&typed);
    let expected = ["Hola", "multi  word message", "Adiós", "exit"];
    assert_eq!(confirmed_messages(&answers), expected);
    assert_eq!(messages_of(&logged(dir.path())), expected);

    // The end of the input ends the run too.
    let piped = run_with_stdin(
        "client",
        &["--connect", &addr, "--log", log, "--stdin"],
        Some("uno\ndos"),
        RUN_TIMEOUT,
    );
    assert_success(&piped);
    assert_eq!(confirmed_messages(&answers)[4..], ["uno", "dos"]);

    let probe_log = dir.path().join("ping.txt");
    let ping = |connect: &str| {
        run(
            "client",
            &[
                "--ping",
                "--connect",
                connect,
                "--log",
                probe_log.to_str().unwrap(),
                "--connect-timeout",
                "500ms",
            ],
            RUN_TIMEOUT,
        )
    };
    assert_success(&ping(&addr));
    assert!(!probe_log.exists(), "--ping writes no log file");
    let nowhere = format!("127.0.0.1:{}", free_port());
    assert!(!ping(&nowhere).status.success());
    assert_eq!(logged(dir.path()).len(), 6, "PING logs nothing");
}

#[test]
fn the_exit_status_says_whether_everything_was_confirmed() {
    let dir = TempDir::new().unwrap();
    // 16 bytes: "SEND Hola" fits, "SEND Distribuidos" does not.
    let server = start_server(dir.path(), &["--max-frame", "16"]);
    let answers = dir.path().join("respuestas.txt");
    // Plain SENDs: a tag would take frame room too.
    let run = client(
        &server,
        &answers,
        &["--count", "40", "--seed", "5", "--plain"],
    );
    assert!(!run.status.success(), "errors must fail the run");
    let summary = run.stdout.lines().last().unwrap();
    assert!(summary.starts_with("sent 41, confirmed "), "{summary}");
    assert!(!summary.contains("errors 0,"), "{summary}");

    let records = read_records(&answers);
    assert_eq!(records.len(), 41);
    let mut confirmed = Vec::new();
    let mut refused = 0;
    for (stamp, answer) in &records {
        assert!(is_timestamp(stamp));
        match parse_server_received(answer) {
            Some(message) => {
                assert!(message.len() + 5 <= 16, "{message}");
                confirmed.push(message.to_owned());
            }
            None => {
                assert!(answer.starts_with("ERR TOO_LARGE "), "{answer}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0 && !confirmed.is_empty());
    assert_eq!(confirmed.last().map(String::as_str), Some("exit"));
    assert!(summary.contains(&format!("errors {refused},")), "{summary}");
    assert_eq!(
        messages_of(&logged(dir.path())),
        confirmed,
        "only confirmed messages are logged"
    );

    // Against the same server, messages that fit are all confirmed: 0.
    let fits = run_with_stdin(
        "client",
        &[
            "--connect",
            &server.addr_string(),
            "--log",
            answers.to_str().unwrap(),
            "--stdin",
            "--plain",
        ],
        Some("Hola\nINF343\n"),
        RUN_TIMEOUT,
    );
    assert_success(&fits);
}

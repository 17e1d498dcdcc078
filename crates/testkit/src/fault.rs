//! Tools of the fault suites (`tests/faults.rs` of the server and the
//! headnode): a client run in the background on numbered messages, a
//! random moment of that run, a TCP proxy that can cut its connections, and
//! a small random generator whose seed is printed so that a failing trial
//! can be replayed (`FAULT_SEED`).

use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use crate::Run;

/// A number from the environment (`FAULT_TRIALS`, `FAULT_COUNT`), or
/// `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: enough to pick moments; seeded from `FAULT_SEED` or the
/// clock, and the seed printed.
pub struct Rng(u64);

impl Rng {
    /// A generator for `test`, its seed printed.
    pub fn new(test: &str) -> Rng {
        let seed = env_or(
            "FAULT_SEED",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1),
        );
        eprintln!("{test}: FAULT_SEED={seed}");
        Rng(seed | 1)
    }

    /// Uniform in `low..high` (`low` if the range is empty).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        if high <= low {
            low
        } else {
            low + x % (high - low)
        }
    }

    /// A duration uniform in `low..high` milliseconds.
    pub fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(self.range(low, high))
    }
}

/// The messages of one trial: `<prefix>-<n>` for n in 1..=count, unique
/// over the trials of a test, one per line.
pub fn numbered(prefix: &str, count: u64) -> String {
    let mut text = String::with_capacity(count as usize * 12);
    for n in 1..=count {
        text.push_str(&format!("{prefix}-{n:06}\n"));
    }
    text
}

/// Starts the client on `messages` (`--stdin`) with `args`, in the
/// background.
pub fn client_in_background(args: Vec<String>, messages: String) -> JoinHandle<Run> {
    thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::run_with_stdin("client", &args, Some(&messages), Duration::from_secs(300))
    })
}

/// Waits until `log` has at least `lines` complete lines (or `client` has
/// ended); true if the client is still running, so that the fault falls in
/// the middle of the run.
pub fn wait_lines(log: &Path, lines: u64, client: &JoinHandle<Run>) -> bool {
    // The lines of a trial all have about the same length: read the size,
    // not the text, so that polling costs nothing.
    let mut per_line = None;
    loop {
        if client.is_finished() {
            return false;
        }
        if per_line.is_none() {
            if let Ok(text) = std::fs::read_to_string(log) {
                per_line = text.find('\n').map(|end| end as u64 + 1);
            }
        }
        if let (Some(per_line), Ok(meta)) = (per_line, std::fs::metadata(log)) {
            if meta.len() >= lines * per_line {
                return true;
            }
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// Sends `signal` (`-KILL`, `-STOP`, `-CONT`) to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid} failed");
}

/// A TCP proxy in threads: forwards every connection to `upstream`, and
/// [`Proxy::cut`] drops all of them at once (both directions), as a lost
/// network path would.
pub struct Proxy {
    addr: SocketAddr,
    open: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// A proxy on an ephemeral port of 127.0.0.1.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (streams, stopped) = (Arc::clone(&open), Arc::clone(&stop));
        thread::spawn(move || {
            for down in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(down) = down else { continue };
                let Ok(up) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = (down.set_nodelay(true), up.set_nodelay(true));
                let mut open = streams.lock().unwrap();
                for (from, to) in [(&down, &up), (&up, &down)] {
                    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
                        continue;
                    };
                    thread::spawn(move || {
                        let mut buf = [0u8; 64 * 1024];
                        loop {
                            match from.read(&mut buf) {
                                // A half close (the client's end of input)
                                // is passed on as one: answers still flow.
                                Ok(0) => {
                                    let _ = to.shutdown(Shutdown::Write);
                                    break;
                                }
                                Ok(n) if to.write_all(&buf[..n]).is_ok() => {}
                                _ => {
                                    let _ = to.shutdown(Shutdown::Both);
                                    let _ = from.shutdown(Shutdown::Both);
                                    break;
                                }
                            }
                        }
                    });
                }
                open.push(down);
                open.push(up);
            }
        });
        Proxy { addr, open, stop }
    }

    /// The address to give the client.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every connection open through the proxy; new ones are
    /// accepted again.
    pub fn cut(&self) -> usize {
        let mut open = self.open.lock().unwrap();
        for stream in open.iter() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let cut = open.len() / 2;
        open.clear();
        cut
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
        self.cut();
    }
}

/// The log file of trial `trial` in `dir`.
pub fn trial_log(dir: &Path, trial: u64) -> PathBuf {
    dir.join(format!("cliente-{trial}.txt"))
}

/// Asserts the client run ended 0 with every one of `count` messages
/// confirmed; returns its stdout's summary line.
pub fn assert_run_confirmed(run: &Run, count: u64) -> String {
    let summary = run
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("sent "))
        .unwrap_or("")
        .to_owned();
    assert!(
        run.status.success()
            && summary.contains(&format!("sent {count}, confirmed {count}, errors 0")),
        "the client did not confirm all {count} ({}): {summary}\nstderr:\n{}",
        run.status,
        run.stderr
    );
    summary
}

//! The floor: the least a node can do and still be our server.
//!
//! It reads frames, appends one `IP:PORT -> <message>` line per `SEND` to a
//! file with one `write(2)` per batch (whatever one `read(2)` brought),
//! and only then answers `OK` to each (`PONG` to `PING`), with one write.
//! No runtime, no readiness polling: one plain blocking thread per
//! connection, so a request costs exactly one `read`, one `write` to the
//! file and one `write` to the socket, and the thread sleeps in `read`.
//! It escapes nothing, checks nothing, builds no sentence and keeps no
//! order between connections' lines beyond what `O_APPEND` gives.
//!
//! `scripts/bench.sh` runs it beside the server and Redis, so that figures
//! 1 and 2 can say how far the server is from what the system calls
//! themselves cost on this machine (docs/PERFORMANCE.md). Unlike the
//! trivial sink (`sink.rs`), it writes the file, as the server must.
//!
//! ```text
//! cargo run --release -p loadgen --example floor -- 127.0.0.1:5998 /tmp/floor.txt
//! ```

use std::{
    fs::{File, OpenOptions},
    io::{self, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::Arc,
};

const OK: &[u8] = b"\x00\x00\x00\x02OK";
const PONG: &[u8] = b"\x00\x00\x00\x04PONG";

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:5998".into());
    let path = args.next().unwrap_or_else(|| "floor.txt".into());
    let log = Arc::new(OpenOptions::new().create(true).append(true).open(&path)?);
    let listener = TcpListener::bind(&listen)?;
    eprintln!("floor: listening on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        let stream = stream?;
        stream.set_nodelay(true)?;
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            let _ = answer(stream, &log);
        });
    }
    Ok(())
}

fn answer(mut stream: TcpStream, mut log: &File) -> io::Result<()> {
    let left = match stream.peer_addr()? {
        SocketAddr::V4(addr) => addr.to_string(),
        SocketAddr::V6(addr) => addr.to_string(),
    };
    let mut inbuf = vec![0u8; 64 * 1024];
    let mut filled = 0;
    let mut lines = Vec::with_capacity(64 * 1024);
    let mut out = Vec::with_capacity(16 * 1024);
    loop {
        if filled == inbuf.len() {
            inbuf.resize(inbuf.len() * 2, 0);
        }
        let n = stream.read(&mut inbuf[filled..])?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        let mut at = 0;
        while filled - at >= 4 {
            let len = u32::from_be_bytes([inbuf[at], inbuf[at + 1], inbuf[at + 2], inbuf[at + 3]])
                as usize;
            if filled - at < 4 + len {
                break;
            }
            let payload = &inbuf[at + 4..at + 4 + len];
            if let Some(message) = payload.strip_prefix(b"SEND ") {
                lines.extend_from_slice(left.as_bytes());
                lines.extend_from_slice(b" -> ");
                lines.extend_from_slice(message);
                lines.push(b'\n');
                out.extend_from_slice(OK);
            } else {
                out.extend_from_slice(PONG);
            }
            at += 4 + len;
        }
        inbuf.copy_within(at..filled, 0);
        filled -= at;
        if !lines.is_empty() {
            log.write_all(&lines)?;
            lines.clear();
        }
        stream.write_all(&out)?;
        out.clear();
    }
}

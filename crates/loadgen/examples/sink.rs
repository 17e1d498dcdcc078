//! A trivial sink: answers `PONG` to `PING` and `OK` to every other frame,
//! storing nothing.
//!
//! It does the least a node could do per request (find the frame boundary,
//! write a 6-byte reply), so `loadgen` against it shows the generator's own
//! ceiling: a node measured well below that figure is not being held back
//! by the generator.
//!
//! ```text
//! cargo run --release -p loadgen --example sink -- 127.0.0.1:5999
//! ```

use bytes::{Buf, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const OK: &[u8] = b"\x00\x00\x00\x02OK";
const PONG: &[u8] = b"\x00\x00\x00\x04PONG";

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5999".into());
    let listener = TcpListener::bind(&listen).await?;
    eprintln!("sink: listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(answer(stream));
    }
}

async fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    let mut inbuf = BytesMut::with_capacity(64 * 1024);
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        if stream.read_buf(&mut inbuf).await? == 0 {
            return Ok(());
        }
        while inbuf.len() >= 4 {
            let len = u32::from_be_bytes([inbuf[0], inbuf[1], inbuf[2], inbuf[3]]) as usize;
            if inbuf.len() < 4 + len {
                break;
            }
            let reply = if &inbuf[4..4 + len] == b"PING" {
                PONG
            } else {
                OK
            };
            inbuf.advance(4 + len);
            out.extend_from_slice(reply);
        }
        stream.write_all(&out).await?;
        out.clear();
    }
}

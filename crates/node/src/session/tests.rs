//! The session loop against in-memory streams and stores.

use std::time::Duration;

use futures::SinkExt;
use protocol::frame::encode_frame;
use tokio::io::{AsyncReadExt, DuplexStream};
use tokio_util::codec::Framed;

use super::*;

/// Answers `stored 'm'` after a delay that shrinks with each batch, so
/// that later batches finish first unless the session keeps order.
struct SlowEcho {
    delays: std::sync::Mutex<u64>,
}

impl MessageStore for SlowEcho {
    fn store(&self, _peer: SocketAddr, messages: Vec<String>) -> StoreFuture {
        let delay = {
            let mut delays = self.delays.lock().unwrap();
            *delays = delays.saturating_sub(1);
            *delays
        };
        async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            messages
                .into_iter()
                .map(|m| {
                    if m == "fail" {
                        Err(ErrorReply::new(ErrorCode::Storage, "disk on fire"))
                    } else {
                        Ok(format!("stored '{m}'"))
                    }
                })
                .collect()
        }
        .boxed()
    }
}

fn peer() -> SocketAddr {
    "127.0.0.1:4000".parse().unwrap()
}

/// Starts a session on one end of a pipe; returns the other end.
fn start(verb: MessageVerb, max_frame: usize) -> (DuplexStream, CancellationToken) {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        let (read, write) = tokio::io::split(theirs);
        let reader = FramedRead::new(read, FrameCodec::new(max_frame));
        let store = SlowEcho {
            delays: std::sync::Mutex::new(20),
        };
        Session::new(reader, write, peer(), SessionConfig::new(verb))
            .run(&store, &token)
            .await;
    });
    (ours, shutdown)
}

async fn exchange(verb: MessageVerb, requests: &[&[u8]]) -> Vec<String> {
    let (pipe, _shutdown) = start(verb, 64);
    let mut framed = Framed::new(pipe, FrameCodec::new(1024));
    for request in requests {
        framed.feed(*request).await.unwrap();
    }
    SinkExt::<&[u8]>::flush(&mut framed).await.unwrap();
    let mut replies = Vec::new();
    for _ in requests {
        match framed.next().await.unwrap().unwrap() {
            Frame::Data(payload) => replies.push(String::from_utf8(payload.to_vec()).unwrap()),
            other => panic!("unexpected {other:?}"),
        }
    }
    replies
}

#[tokio::test]
async fn answers_pipelined_requests_in_order() {
    let requests: Vec<String> = (0..500).map(|n| format!("SEND m{n}")).collect();
    let requests: Vec<&[u8]> = requests.iter().map(|r| r.as_bytes()).collect();
    let replies = exchange(MessageVerb::Send, &requests).await;
    for (n, reply) in replies.iter().enumerate() {
        assert_eq!(reply, &format!("OK stored 'm{n}'"));
    }
}

#[tokio::test]
async fn mixes_bad_input_with_good_without_losing_order() {
    let replies = exchange(
        MessageVerb::Send,
        &[
            b"SEND a",
            b"PING",
            b"\xff",
            b"JUMP",
            b"SEND ",
            b"STORE x",
            b"REGISTER dn1",
            b"SEND fail",
            b"SEND b",
        ],
    )
    .await;
    let codes: Vec<&str> = replies
        .iter()
        .map(|r| r.split(' ').take(2).last().unwrap())
        .collect();
    assert_eq!(replies[0], "OK stored 'a'");
    assert_eq!(replies[1], "PONG");
    assert_eq!(
        &codes[2..8],
        [
            "BAD_UTF8",
            "UNKNOWN_COMMAND",
            "EMPTY_MESSAGE",
            "WRONG_ROLE",
            "WRONG_ROLE",
            "STORAGE"
        ]
    );
    assert_eq!(replies[8], "OK stored 'b'");
}

#[tokio::test]
async fn store_verb_sessions_refuse_send() {
    let replies = exchange(MessageVerb::Store, &[b"STORE a", b"SEND b"]).await;
    assert_eq!(replies[0], "OK stored 'a'");
    assert!(replies[1].starts_with("ERR WRONG_ROLE"), "{}", replies[1]);
}

#[tokio::test]
async fn an_oversized_frame_is_skipped_and_the_session_goes_on() {
    let big = vec![b'x'; 100];
    let replies = exchange(MessageVerb::Send, &[&big, b"SEND after"]).await;
    assert_eq!(
        replies[0],
        "ERR TOO_LARGE frame of 100 bytes exceeds the maximum of 64 bytes"
    );
    assert_eq!(replies[1], "OK stored 'after'");
}

#[tokio::test]
async fn lost_framing_is_answered_then_closed() {
    let (mut pipe, _shutdown) = start(MessageVerb::Send, 64);
    let mut bytes = BytesMut::new();
    encode_frame(b"SEND first", &mut bytes).unwrap();
    bytes.extend_from_slice(b"hello there\n");
    pipe.write_all(&bytes).await.unwrap();
    let mut received = Vec::new();
    pipe.read_to_end(&mut received).await.unwrap();
    let mut buf = BytesMut::from(&received[..]);
    let mut codec = FrameCodec::new(1024);
    use tokio_util::codec::Decoder;
    let first = codec.decode(&mut buf).unwrap().unwrap();
    let second = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(first, Frame::Data("OK stored 'first'".into()));
    let Frame::Data(second) = second else {
        panic!()
    };
    assert!(second.starts_with(b"ERR FRAMING"), "{second:?}");
    assert!(buf.is_empty(), "nothing after the framing error");
}

#[tokio::test]
async fn shutdown_answers_accepted_requests_then_closes() {
    let (pipe, shutdown) = start(MessageVerb::Send, 64);
    let mut framed = Framed::new(pipe, FrameCodec::new(1024));
    framed.send(&b"SEND slow"[..]).await.unwrap();
    // Let the session accept it, then ask it to stop.
    tokio::time::sleep(Duration::from_millis(5)).await;
    shutdown.cancel();
    let reply = framed.next().await.unwrap().unwrap();
    assert_eq!(reply, Frame::Data("OK stored 'slow'".into()));
    assert!(framed.next().await.is_none(), "closed after the last reply");
}

/// A session with timeouts on one end of a pipe; its end comes back
/// through the handle.
fn start_bounded(timeouts: Timeouts) -> (DuplexStream, tokio::task::JoinHandle<SessionEnd>) {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let session = tokio::spawn(async move {
        let (read, write) = tokio::io::split(theirs);
        let reader = FramedRead::new(read, FrameCodec::new(64));
        let config = SessionConfig::new(MessageVerb::Send).with_timeouts(timeouts);
        let store = SlowEcho {
            delays: std::sync::Mutex::new(0),
        };
        Session::new(reader, write, peer(), config)
            .run(&store, &CancellationToken::new())
            .await
    });
    (ours, session)
}

const BOUNDS: Timeouts = Timeouts {
    frame: Some(Duration::from_secs(2)),
    idle: Some(Duration::from_secs(60)),
};

#[tokio::test(start_paused = true)]
async fn half_a_header_is_closed_after_the_frame_timeout() {
    let (mut pipe, session) = start_bounded(BOUNDS);
    let started = tokio::time::Instant::now();
    pipe.write_all(&[0, 0]).await.unwrap();
    let mut rest = Vec::new();
    pipe.read_to_end(&mut rest).await.unwrap();
    let waited = started.elapsed();
    assert!(rest.is_empty(), "no reply to half a frame");
    assert!(
        waited >= Duration::from_secs(2) && waited <= Duration::from_millis(2600),
        "{waited:?}"
    );
    let end = session.await.unwrap();
    assert!(
        matches!(end, SessionEnd::TimedOut(Expired::Frame(_))),
        "{end:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_but_steady_peer_is_served_and_an_idle_one_closed() {
    let (pipe, session) = start_bounded(BOUNDS);
    let mut framed = Framed::new(pipe, FrameCodec::new(1024));
    // Whole frames a minute apart minus a second: never idle too long.
    for n in 0..3 {
        tokio::time::sleep(Duration::from_secs(59)).await;
        framed.send(format!("SEND m{n}").as_bytes()).await.unwrap();
        let reply = framed.next().await.unwrap().unwrap();
        assert_eq!(
            reply,
            Frame::Data(format!("OK stored 'm{n}'").into_bytes().into())
        );
    }
    let started = tokio::time::Instant::now();
    assert!(framed.next().await.is_none(), "closed when idle");
    assert!(started.elapsed() >= Duration::from_secs(60));
    let end = session.await.unwrap();
    assert!(
        matches!(end, SessionEnd::TimedOut(Expired::Idle(_))),
        "{end:?}"
    );
}

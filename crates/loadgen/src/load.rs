//! The load: connections that keep a window of requests in flight.
//!
//! Each connection is one task running a small state machine over the two
//! halves of its socket. Whenever the window has room it appends that many
//! copies of the pre-encoded request frame to its output buffer and writes
//! them with one system call; whenever bytes arrive it decodes every
//! complete reply and frees their places. Writing and reading are
//! `select!`ed rather than done in turn, so a large window of large messages
//! cannot deadlock with a node that stops reading while its replies wait.
//!
//! One connection without pipelining (figure 1 of `scripts/bench.sh`) is
//! driven by [`request_reply`] instead: a plain blocking loop, one `write`
//! and one `read` per request, which is the least a client can do. The
//! task above would add a `read` that finds nothing, an `epoll_wait` and
//! the runtime's wake-up to every request: CPU taken, on a pinned run, from
//! the node being measured, and the same for every node, so it would only
//! pull every ratio towards 1.
//!
//! Timing costs two clock reads per system call, not per request: requests
//! written together share their send time, replies read together share
//! their arrival time. Replies come in request order, so a queue of
//! `(send time, count)` runs matches them up.

use std::{
    collections::VecDeque,
    io::{self, Read, Write},
    time::Instant,
};

use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{
    stats::{Errors, Latencies},
    wire::{Answer, Replies, Tagged},
};

/// What one connection achieved.
#[derive(Debug, Default)]
pub struct ConnectionResult {
    /// Requests written.
    pub sent: u64,
    /// `OK` replies.
    pub confirmed: u64,
    /// Send-to-reply times.
    pub latencies: Latencies,
    /// What went wrong.
    pub errors: Errors,
}

/// Sends `share` copies of `request` on `stream` (or, with `tagged`, its
/// numbered `SENDID` frames), keeping at most `window` unanswered, and
/// classifies every reply that `replies` reads.
pub async fn drive(
    mut stream: TcpStream,
    request: Bytes,
    share: u64,
    window: usize,
    mut replies: Replies,
    mut tagged: Option<Tagged>,
) -> ConnectionResult {
    let mut result = ConnectionResult::default();
    let (mut rd, mut wr) = stream.split();
    let mut inbuf = BytesMut::with_capacity(64 * 1024);
    let mut out = BytesMut::with_capacity(request.len() * window);
    let mut written = 0usize;
    // Runs of requests sent together: (send time, how many still unanswered).
    let mut runs: VecDeque<(Instant, u64)> = VecDeque::with_capacity(window);
    let mut in_flight = 0u64;
    let mut answered = 0u64;

    while answered < share {
        if written == out.len() {
            out.clear();
            written = 0;
            let room = (window as u64 - in_flight).min(share - result.sent);
            if room > 0 {
                match &mut tagged {
                    None => {
                        for _ in 0..room {
                            out.extend_from_slice(&request);
                        }
                    }
                    // Numbered from 1; every answer read is acknowledged.
                    Some(tagged) => {
                        tagged.push_run(&mut out, result.sent + 1..=result.sent + room, answered);
                    }
                }
                runs.push_back((Instant::now(), room));
                in_flight += room;
                result.sent += room;
            }
        }
        let lost: Option<io::Error> = tokio::select! {
            biased;
            n = wr.write(&out[written..]), if written < out.len() => match n {
                Ok(0) => Some(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    None
                }
                Err(err) => Some(err),
            },
            n = rd.read_buf(&mut inbuf) => match n {
                Ok(0) => Some(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {
                    let now = Instant::now();
                    let mut lost = None;
                    // Replies of one run read together have one latency:
                    // record them as one histogram entry.
                    let mut same: Option<(Instant, u64)> = None;
                    loop {
                        let answer = match replies.next(&mut inbuf) {
                            Ok(Some(answer)) => answer,
                            Ok(None) => break,
                            Err(err) => { lost = Some(err); break; }
                        };
                        let Some(run) = runs.front_mut() else {
                            // A reply nobody asked for: the stream is out of step.
                            result.errors.bad_replies += 1;
                            continue;
                        };
                        match &mut same {
                            Some((sent, count)) if *sent == run.0 => *count += 1,
                            _ => {
                                if let Some((sent, count)) = same {
                                    result.latencies.record_n(now - sent, count);
                                }
                                same = Some((run.0, 1));
                            }
                        }
                        run.1 -= 1;
                        if run.1 == 0 {
                            runs.pop_front();
                        }
                        in_flight -= 1;
                        answered += 1;
                        match answer {
                            Answer::Confirmed => result.confirmed += 1,
                            Answer::Refused(code) => result.errors.count_refused(&code),
                            Answer::Unexpected => result.errors.bad_replies += 1,
                        }
                    }
                    if let Some((sent, count)) = same {
                        result.latencies.record_n(now - sent, count);
                    }
                    lost
                }
                Err(err) => Some(err),
            },
        };
        if let Some(err) = lost {
            tracing::debug!(%err, in_flight, "connection lost");
            result.errors.lost_connections += 1;
            result.errors.unanswered += in_flight;
            result.errors.unsent += share - result.sent;
            break;
        }
    }
    let _ = wr.shutdown().await;
    result
}

/// Sends `share` copies of `request` on `stream` one at a time, each after
/// the previous one's reply, with blocking system calls; classifies every
/// reply like [`drive`].
///
/// Only for a window of one: with more in flight, two blocking writers (this
/// loop and the node answering it) could wait on each other's full buffers.
pub fn request_reply(
    mut stream: std::net::TcpStream,
    request: &[u8],
    share: u64,
    mut replies: Replies,
) -> ConnectionResult {
    let mut result = ConnectionResult::default();
    let mut inbuf = BytesMut::with_capacity(4096);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut in_flight = 0;
    let lost = 'requests: loop {
        if result.sent == share {
            break None;
        }
        let sent = Instant::now();
        if let Err(err) = stream.write_all(request) {
            break Some(err);
        }
        result.sent += 1;
        in_flight = 1;
        let answer = loop {
            match replies.next(&mut inbuf) {
                Ok(Some(answer)) => break answer,
                Ok(None) => {}
                Err(err) => break 'requests Some(err),
            }
            // Read into a plain buffer and copy the few bytes of a reply:
            // safe Rust cannot read into a `BytesMut`'s spare capacity.
            match stream.read(&mut chunk) {
                Ok(0) => break 'requests Some(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => inbuf.extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => break 'requests Some(err),
            }
        };
        result.latencies.record(sent.elapsed());
        in_flight = 0;
        match answer {
            Answer::Confirmed => result.confirmed += 1,
            Answer::Refused(code) => result.errors.count_refused(&code),
            Answer::Unexpected => result.errors.bad_replies += 1,
        }
        if !inbuf.is_empty() {
            // Bytes beyond the one reply owed: the stream is out of step.
            result.errors.bad_replies += 1;
            break Some(io::Error::new(
                io::ErrorKind::InvalidData,
                "a reply nobody asked for",
            ));
        }
    };
    if let Some(err) = lost {
        tracing::debug!(%err, in_flight, "connection lost");
        result.errors.lost_connections += 1;
        result.errors.unanswered += in_flight;
        result.errors.unsent += share - result.sent;
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    result
}

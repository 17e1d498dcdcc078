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
//! Timing costs two clock reads per system call, not per request: requests
//! written together share their send time, replies read together share
//! their arrival time. Replies come in request order, so a queue of
//! `(send time, count)` runs matches them up.

use std::{collections::VecDeque, io, time::Instant};

use bytes::{Bytes, BytesMut};
use protocol::{Frame, FrameCodec, FrameError};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_util::codec::Decoder;

use crate::stats::{Errors, Latencies};

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

/// Sends `share` copies of `request` on `stream`, keeping at most `window`
/// unanswered, and classifies every reply.
pub async fn drive(
    mut stream: TcpStream,
    request: Bytes,
    share: u64,
    window: usize,
    max_frame: usize,
) -> ConnectionResult {
    let mut result = ConnectionResult::default();
    let (mut rd, mut wr) = stream.split();
    let mut codec = FrameCodec::new(max_frame);
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
                for _ in 0..room {
                    out.extend_from_slice(&request);
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
                        let frame = match codec.decode(&mut inbuf) {
                            Ok(Some(frame)) => frame,
                            Ok(None) => break,
                            Err(FrameError::Io(err)) => { lost = Some(err); break; }
                            Err(err @ FrameError::FramingLost { .. }) => {
                                lost = Some(io::Error::new(io::ErrorKind::InvalidData, err.to_string()));
                                break;
                            }
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
                        match frame {
                            Frame::Data(payload) if payload.starts_with(b"OK") => result.confirmed += 1,
                            Frame::Data(payload) if payload.starts_with(b"ERR ") => {
                                result.errors.count_err_reply(&payload);
                            }
                            _ => result.errors.bad_replies += 1,
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

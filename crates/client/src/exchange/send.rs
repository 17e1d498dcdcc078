//! The sending half of a run: `SEND` frames, as many in one write as the
//! window and the source allow.

use std::sync::Arc;

use bytes::BytesMut;
use protocol::{encode_frame_with, Request, Tag};
use tokio::{
    io::{AsyncWrite, AsyncWriteExt},
    sync::{mpsc, Semaphore},
};
use tokio_util::sync::CancellationToken;

use super::tagging::{Feed, Tagging};
use crate::Error;

/// At most this many bytes of requests are gathered into one write.
const MAX_WRITE: usize = 256 * 1024;

/// How the sending half ended, when not on an error.
pub(super) enum SendEnd {
    /// Every message of the source was sent.
    SourceDone,
    /// A stop request came first.
    Interrupted,
}

/// The sending half: writes the messages of `source` as `SEND` frames while
/// the window has room, announcing each write's count on `sent` before it,
/// until the source ends or `stop` is cancelled.
pub(super) async fn send_all<W>(
    mut writer: W,
    feed: Feed,
    tagging: Option<Arc<Tagging>>,
    window: Arc<Semaphore>,
    sent: mpsc::UnboundedSender<u64>,
    stop: CancellationToken,
) -> Result<SendEnd, Error>
where
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::new();
    let mut failure = None;
    let mut end = SendEnd::SourceDone;
    // A new connection first sends again what the last one left
    // unanswered, with the same ids, in order.
    let resend = tagging.as_ref().map(|t| t.unanswered()).unwrap_or_default();
    if !resend.is_empty() {
        for (tag, message) in resend {
            let place = tokio::select! {
                biased;
                () = stop.cancelled() => None,
                place = window.acquire() => Some(place),
            };
            let Some(place) = place else {
                break;
            };
            place.expect("never closed").forget();
            let _ = sent.send(1);
            encode_send(message, Some(tag), &mut buf);
            if buf.len() >= MAX_WRITE || window.available_permits() == 0 {
                if writer.write_all(&buf).await.is_err() {
                    return Ok(SendEnd::SourceDone);
                }
                buf.clear();
            }
        }
        if writer.write_all(&buf).await.is_err() {
            return Ok(SendEnd::SourceDone);
        }
        buf.clear();
    }
    loop {
        let mut source = feed.0.lock().await;
        // A stop request ends either wait: for the next message (a person
        // may never type one) and for a place in the window.
        let next = tokio::select! {
            biased;
            () = stop.cancelled() => None,
            next = source.next() => Some(next),
        };
        let first = match next {
            None => {
                end = SendEnd::Interrupted;
                break;
            }
            // Numbered (and kept until answered) before anything can
            // cancel this task: a new connection would send it again.
            Some(Ok(Some(message))) => message,
            Some(Ok(None)) => break,
            Some(Err(err)) => {
                failure = Some(Error::Input { source: err });
                break;
            }
        };
        let tag = tagging.as_ref().map(|t| t.number(&first));
        let place = tokio::select! {
            biased;
            () = stop.cancelled() => None,
            place = window.acquire() => Some(place),
        };
        let Some(place) = place else {
            end = SendEnd::Interrupted;
            break;
        };
        place.expect("never closed").forget();
        encode_send(first, tag, &mut buf);
        let mut count = 1;
        // Put whatever else is ready, within the window, in the same write.
        while buf.len() < MAX_WRITE {
            let Ok(place) = window.try_acquire() else {
                break;
            };
            match source.next_now() {
                Some(Ok(Some(message))) => {
                    place.forget();
                    let tag = tagging.as_ref().map(|t| t.number(&message));
                    encode_send(message, tag, &mut buf);
                    count += 1;
                }
                Some(Err(err)) => {
                    failure = Some(Error::Input { source: err });
                    break;
                }
                // Over, or nothing ready yet: the place goes back.
                Some(Ok(None)) | None => break,
            }
        }
        // Announced before the write, so that the receiver never sees a
        // reply to a request it does not know of.
        let _ = sent.send(count);
        if let Err(err) = writer.write_all(&buf).await {
            // The receiver sees the connection fail and reports it.
            tracing::debug!(%err, "write failed");
            return Ok(SendEnd::SourceDone);
        }
        buf.clear();
        if failure.is_some() {
            break;
        }
    }
    // Closed before the connection's write side, so that a receiver that
    // sees the peer close after that also sees this sender finished.
    drop(sent);
    // Tell the peer no more requests come; it still answers those it has.
    let _ = writer.shutdown().await;
    failure.map_or(Ok(end), Err)
}

fn encode_send(message: String, tag: Option<Tag>, buf: &mut BytesMut) {
    let request = match tag {
        Some(tag) => Request::SendTagged(tag, message),
        None => Request::Send(message),
    };
    encode_frame_with(buf, |dst| request.write_payload(dst));
}

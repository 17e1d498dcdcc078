//! The socket side of one datanode link.
//!
//! After a connection's first frame turned out to be `REGISTER <name>`, the
//! connection task becomes two loops over the two halves of the socket:
//!
//! - the writer takes the byte buffers the driver hands it (the answer to
//!   `REGISTER`, then `STORE` and `PING` frames) and writes them, coalescing
//!   whatever has queued up into one `write`;
//! - the reader takes the datanode's replies, parses them, and passes every
//!   reply that has already arrived to the driver as one event.
//!
//! The link ends when either loop ends: the driver dropped the link (the
//! registration was refused, the router closed it, shutdown), or the
//! datanode closed or broke the connection, or sent something that is not a
//! reply. The driver is then told the link is closed, which is harmless if
//! it closed the link itself.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use protocol::{Frame, FrameCodec, LinkReply, ENVELOPE_ALLOWANCE};
use tokio::{
    io::AsyncWriteExt,
    net::tcp::{OwnedReadHalf, OwnedWriteHalf},
    sync::mpsc,
};
use tokio_util::codec::FramedRead;

use crate::{
    driver::{Event, RouterHandle},
    router::LinkId,
};

/// Replies passed to the driver in one event at most.
const MAX_REPLIES_PER_EVENT: usize = 1024;

/// Bytes coalesced into one write at most.
const MAX_WRITE: usize = 256 * 1024;

/// Serves the link of a connection whose first frame was
/// `REGISTER <name>`; `reader` has consumed exactly that frame.
pub async fn serve(
    reader: FramedRead<OwnedReadHalf, FrameCodec>,
    writer: OwnedWriteHalf,
    peer: SocketAddr,
    name: String,
    router: RouterHandle,
    max_frame: usize,
) {
    let link = router.new_link();
    let (out, outgoing) = mpsc::unbounded_channel();
    tracing::debug!(%peer, %name, %link, "datanode asks to register");
    let local = match writer.local_addr() {
        Ok(SocketAddr::V4(local)) => Some(*local.ip()),
        // An IPv4-mapped address is a V6 one here; the others have no
        // IPv4 multicast.
        Ok(SocketAddr::V6(local)) => local.ip().to_ipv4_mapped(),
        Err(_) => None,
    };
    router.send(Event::Register {
        link,
        name: name.clone(),
        out,
        local,
        peer,
    });
    // Replies repeat the client's message inside a sentence.
    let reader = reader.map_decoder(|_| FrameCodec::new(max_frame + ENVELOPE_ALLOWANCE));
    tokio::select! {
        result = write_loop(writer, outgoing) => {
            if let Err(err) = result {
                tracing::warn!(%peer, %name, %err, "cannot write to the datanode");
            }
        }
        why = read_loop(reader, link, peer, &router) => {
            tracing::debug!(%peer, %name, %link, why, "datanode link ended");
        }
    }
    router.send(Event::Closed { link });
}

async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut outgoing: mpsc::UnboundedReceiver<Bytes>,
) -> std::io::Result<()> {
    let mut coalesced = BytesMut::new();
    while let Some(first) = outgoing.recv().await {
        match outgoing.try_recv() {
            Err(_) => writer.write_all(&first).await?,
            Ok(second) => {
                coalesced.clear();
                coalesced.extend_from_slice(&first);
                coalesced.extend_from_slice(&second);
                while coalesced.len() < MAX_WRITE {
                    match outgoing.try_recv() {
                        Ok(more) => coalesced.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                writer.write_all(&coalesced).await?;
            }
        }
    }
    // The driver dropped the link: say so to the datanode.
    writer.shutdown().await
}

async fn read_loop(
    mut reader: FramedRead<OwnedReadHalf, FrameCodec>,
    link: LinkId,
    peer: SocketAddr,
    router: &RouterHandle,
) -> &'static str {
    loop {
        let Some(item) = reader.next().await else {
            return "closed by the datanode";
        };
        // Under load a read holds hundreds of replies: size for a good
        // share of them at once rather than growing one by one.
        let mut replies = Vec::with_capacity(64);
        let mut next = Some(item);
        let mut why = None;
        while let Some(item) = next.take() {
            match item {
                Ok(Frame::Data(payload)) => match LinkReply::parse(&payload) {
                    Some(reply) => replies.push(reply),
                    None => {
                        why = Some("the datanode sent something that is not a reply");
                        // At most a few hundred bytes of it: it may be 64 KiB.
                        let said = payload.slice(..payload.len().min(200));
                        tracing::warn!(
                            %link, %peer, ?said, len = payload.len(),
                            "protocol violation on a datanode link (a frame that is not a \
                             reply); closing it, its messages go to other datanodes"
                        );
                        break;
                    }
                },
                Ok(Frame::Oversized { len }) => {
                    why = Some("the datanode sent an oversized frame");
                    tracing::warn!(%link, %peer, len, "oversized reply; closing the link");
                    break;
                }
                Err(_) => {
                    why = Some("the connection failed");
                    break;
                }
            }
            if replies.len() < MAX_REPLIES_PER_EVENT {
                // Take whatever else has arrived, without waiting.
                next = reader.next().now_or_never().flatten();
            }
        }
        if !replies.is_empty() {
            router.send(Event::Replies { link, replies });
        }
        if let Some(why) = why {
            return why;
        }
    }
}

//! Registering on a fresh connection: `REGISTER <name>`, the cluster
//! secret's challenge when the headnode has one, and its answer.
//!
//! ```text
//! datanode -> REGISTER <name>
//! headnode -> CHALLENGE <nonce>       only with a cluster secret
//! datanode -> PROOF <tag>             the HMAC of "REGISTER <name> <nonce>"
//! headnode -> OK <name> [MULTICAST <group>] | ERR <code> <reason>
//! ```
//!
//! A challenge to a datanode without `--cluster-secret-file`, and
//! `ERR AUTH_FAILED` (its secret is not the headnode's), cannot get better
//! by retrying: the datanode stops with an error naming the flag. A datanode
//! with a secret whose headnode does not challenge it registers all the
//! same, warning that the headnode admits anyone, and heartbeats stay
//! untagged: the secret guards the headnode's door, and that headnode has
//! none.

use std::{net::SocketAddr, net::SocketAddrV4, time::Duration};

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use protocol::{auth::ClusterKey, link, ErrorCode, ErrorReply, Frame, FrameCodec, Reply, Request};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::{
    codec::{FramedRead, FramedWrite},
    sync::CancellationToken,
};

/// How long the datanode waits for each answer of the headnode while it
/// registers before it gives up on that connection and dials again.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// A registration the headnode accepted.
#[derive(Debug)]
pub struct Registered {
    /// The heartbeat group it named, if any (multicast heartbeats).
    pub group: Option<SocketAddrV4>,
    /// Whether the headnode checked our secret: its heartbeat datagrams
    /// are then tagged, and ours must be.
    pub proved: bool,
}

/// Why a registration did not succeed.
#[derive(Debug)]
pub enum NotRegistered {
    /// Shutdown was requested meanwhile.
    Shutdown,
    /// Not this time (no answer, a lost connection): retry.
    Retry,
    /// A live datanode holds our name: our own previous link not yet seen
    /// dead, or another datanode with the same name. The caller retries
    /// for `--name-taken-timeout`, having said so once.
    NameTaken,
    /// The headnode refuses the name itself: retrying cannot help.
    BadName(ErrorReply),
    /// The headnode wants a proof of a secret we were not given.
    NoSecret,
    /// The headnode refused our proof: our secret is not its.
    AuthFailed(ErrorReply),
}

/// Registers as `name` on a fresh connection.
pub async fn register<R, W>(
    reader: &mut FramedRead<R, FrameCodec>,
    writer: &mut FramedWrite<W, FrameCodec>,
    name: &str,
    key: Option<&ClusterKey>,
    peer: SocketAddr,
    shutdown: &CancellationToken,
) -> Result<Registered, NotRegistered>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    send(
        writer,
        Request::Register(name.to_owned()).to_payload(),
        peer,
    )
    .await?;
    let mut answer = next_answer(reader, peer, shutdown).await?;
    let mut proved = false;
    if let Some(nonce) = link::parse_challenge(&answer) {
        let Some(key) = key else {
            return Err(NotRegistered::NoSecret);
        };
        let proof = link::proof(key, name, &nonce);
        send(writer, BytesMut::from(proof.as_bytes()), peer).await?;
        answer = next_answer(reader, peer, shutdown).await?;
        proved = true;
    }
    match Reply::parse(&answer) {
        Some(Reply::Ok(text)) => {
            if key.is_some() && !proved {
                tracing::warn!(
                    %peer,
                    "the headnode registered us without asking for the cluster secret: it runs \
                     without --cluster-secret-file, and any process may register with it"
                );
            }
            let group = link::parse_registered(&text).1;
            Ok(Registered { group, proved })
        }
        Some(Reply::Err(err)) => match err.code {
            ErrorCode::NameTaken => Err(NotRegistered::NameTaken),
            ErrorCode::BadArgument => Err(NotRegistered::BadName(err)),
            ErrorCode::AuthFailed => Err(NotRegistered::AuthFailed(err)),
            _ => {
                tracing::warn!(%peer, %err, "registration refused; retrying");
                Err(NotRegistered::Retry)
            }
        },
        other => {
            tracing::warn!(%peer, reply = ?other, "unexpected answer to REGISTER; retrying");
            Err(NotRegistered::Retry)
        }
    }
}

async fn send<W: AsyncWrite + Unpin>(
    writer: &mut FramedWrite<W, FrameCodec>,
    payload: BytesMut,
    peer: SocketAddr,
) -> Result<(), NotRegistered> {
    writer.send(payload).await.map_err(|err| {
        tracing::warn!(%peer, %err, "could not send to the headnode while registering");
        NotRegistered::Retry
    })
}

/// The payload of the headnode's next frame.
async fn next_answer<R: AsyncRead + Unpin>(
    reader: &mut FramedRead<R, FrameCodec>,
    peer: SocketAddr,
    shutdown: &CancellationToken,
) -> Result<Bytes, NotRegistered> {
    let answer = tokio::select! {
        answer = tokio::time::timeout(REGISTER_TIMEOUT, reader.next()) => answer,
        _ = shutdown.cancelled() => return Err(NotRegistered::Shutdown),
    };
    match answer {
        Ok(Some(Ok(Frame::Data(payload)))) => return Ok(payload),
        Ok(None) => {
            tracing::warn!(%peer, "the headnode closed the connection before answering REGISTER")
        }
        Ok(Some(Ok(Frame::Oversized { len }))) => {
            tracing::warn!(%peer, len, "oversized answer to REGISTER")
        }
        Ok(Some(Err(err))) => tracing::warn!(%peer, %err, "lost the connection while registering"),
        Err(_) => tracing::warn!(%peer, timeout = ?REGISTER_TIMEOUT, "no answer to REGISTER"),
    }
    Err(NotRegistered::Retry)
}

//! Registration with a cluster secret: the challenge a datanode must
//! answer before its `REGISTER` counts.
//!
//! With `--cluster-secret-file`, the headnode answers `REGISTER <name>` with
//! `CHALLENGE <nonce>`, 16 bytes from the operating system's generator,
//! fresh for each attempt, and waits [`PROOF_TIMEOUT`] for `PROOF <tag>`,
//! the HMAC-SHA256 of `REGISTER <name> <nonce>` under the secret
//! ([`protocol::auth`]). Only then does the router hear of the datanode: a
//! process without the secret never takes a name, nor takes one over, nor
//! holds a connection place for longer than the timeout. A missing, late or
//! wrong proof is answered `ERR AUTH_FAILED` and the connection closed,
//! logged with the peer's address and the name it asked for.
//!
//! Without a secret nothing of this happens (the wire is as before), and
//! the headnode says at start-up that any process may register.

use std::{net::SocketAddr, time::Duration};

use bytes::BytesMut;
use futures::StreamExt;
use protocol::{
    auth::{ClusterKey, NONCE_LEN},
    encode_frame_with, link, ErrorCode, ErrorReply, Frame, FrameCodec,
};
use rand::RngCore;
use tokio::{
    io::AsyncWriteExt,
    net::tcp::{OwnedReadHalf, OwnedWriteHalf},
};
use tokio_util::{codec::FramedRead, sync::CancellationToken};

/// How long a datanode has to answer the challenge; as long as a datanode
/// waits for the answer to its `REGISTER`.
pub const PROOF_TIMEOUT: Duration = Duration::from_secs(10);

/// Challenges the datanode that asked to register as `name`; whether it
/// proved that it knows the secret. A refusal has been sent when not.
pub async fn challenge(
    reader: &mut FramedRead<OwnedReadHalf, FrameCodec>,
    write: &mut OwnedWriteHalf,
    name: &str,
    key: &ClusterKey,
    peer: SocketAddr,
    shutdown: &CancellationToken,
) -> bool {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut out = BytesMut::new();
    let challenge = link::challenge(&nonce);
    encode_frame_with(&mut out, |dst| dst.extend_from_slice(challenge.as_bytes()));
    if write.write_all(&out).await.is_err() {
        return false;
    }
    let answer = tokio::select! {
        answer = tokio::time::timeout(PROOF_TIMEOUT, reader.next()) => answer,
        _ = shutdown.cancelled() => return false,
    };
    let why = match answer {
        Ok(Some(Ok(Frame::Data(payload)))) if link::is_proof(key, name, &nonce, &payload) => {
            return true
        }
        Ok(Some(Ok(Frame::Data(_)))) => "a wrong proof of the cluster secret",
        Ok(Some(Ok(Frame::Oversized { .. }))) => "an oversized frame instead of a proof",
        Ok(None | Some(Err(_))) => "closed the connection instead of proving",
        Err(_) => "no proof in time",
    };
    tracing::warn!(
        %peer,
        %name,
        why,
        "registration refused: the datanode did not prove it knows the cluster secret \
         (give it the headnode's --cluster-secret-file)"
    );
    let err = ErrorReply::new(
        ErrorCode::AuthFailed,
        format!("{why}: this headnode admits only datanodes that know its cluster secret"),
    );
    crate::refuse(write, &err).await;
    false
}

//! Tagged messages (`SENDID`) at the server: each id written to log.txt
//! once, however often its client sends it.
//!
//! The rule is the one every log file of the project follows,
//! [`dedupe::store::TaggedLog`] (the datanode's data.txt follows it too):
//! a new id is written and its id appended to the sidecar `log.txt.ids`
//! before it is confirmed; an id already stored is answered again,
//! `OK El servidor ha recibido ...`, with nothing written; an id at or
//! below what its client acknowledged is refused `ERR BAD_ARGUMENT`. The
//! sidecar is read back when the server starts, so a client that resends
//! to a restarted server gets the answers of what it had stored.
//!
//! The one window left is the one [`dedupe::store`] states: the server
//! killed between the `write(2)` of a batch to log.txt and that of its ids
//! to the sidecar.

use dedupe::store::{Answers, TaggedLog};
use journal::Journal;
use protocol::sentences;

pub use dedupe::store::IDLE_EXPIRY;

/// The dedupe state of a server: the windows and the sidecar.
pub type Tagged = TaggedLog;

/// Reads the sidecar of `log` (`log.txt.ids`) and opens it to append.
pub fn open(log: &Journal) -> Result<Tagged, journal::Error> {
    TaggedLog::open(
        log,
        Answers {
            stored: Box::new(sentences::server_received),
            failed: crate::store::WRITE_FAILED,
        },
    )
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use journal::Durability;
    use node::MessageStore;
    use protocol::{ClientId, ErrorCode, Tag};

    use super::*;
    use crate::LogStore;

    fn tag(seq: u64, acked: u64) -> Option<Tag> {
        Some(Tag {
            client: ClientId::new("c1").unwrap(),
            seq,
            acked,
        })
    }

    fn open(dir: &std::path::Path, durability: Durability) -> LogStore {
        let journal = Journal::open(dir.join("log.txt"), durability).unwrap();
        let tagged = super::open(&journal).unwrap();
        LogStore::new(journal).with_tagged(tagged)
    }

    fn lines(dir: &std::path::Path) -> Vec<String> {
        let log = std::fs::read_to_string(dir.join("log.txt")).unwrap();
        log.lines()
            .map(|l| l.split(" -> ").nth(1).unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn a_resent_id_is_answered_again_and_logged_once_even_after_a_restart() {
        for durability in [Durability::Never, Durability::Always] {
            let dir = tempfile::tempdir().unwrap();
            let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
            let store = open(dir.path(), durability);
            let batch = |seqs: &[(u64, u64)]| {
                let messages = seqs.iter().map(|(s, _)| format!("m{s}")).collect();
                let tags = seqs.iter().map(|&(s, a)| tag(s, a)).collect();
                (messages, tags)
            };
            let (messages, tags) = batch(&[(1, 0), (2, 0), (2, 0)]);
            let first = store.store_tagged(peer, messages, tags).await;
            assert!(first.iter().all(Result::is_ok), "{first:?}");
            let (messages, tags) = batch(&[(2, 1), (3, 1)]);
            let again = store.store_tagged(peer, messages, tags).await;
            assert_eq!(again[0], Ok(sentences::server_received("m2")));
            assert_eq!(lines(dir.path()), ["m1", "m2", "m3"]);
            // Plain messages are never deduplicated.
            store.store(peer, vec!["m1".into()]).await;
            drop(store);

            let store = open(dir.path(), durability);
            let (messages, tags) = batch(&[(1, 1), (3, 1), (4, 1)]);
            let after = store.store_tagged(peer, messages, tags).await;
            assert_eq!(after[0].as_ref().unwrap_err().code, ErrorCode::BadArgument);
            assert_eq!(after[1], Ok(sentences::server_received("m3")));
            assert_eq!(lines(dir.path()), ["m1", "m2", "m3", "m1", "m4"]);
        }
    }
}

//! The server's [`MessageStore`]: `log.txt`, one line per message.
//!
//! A batch (the messages one client pipelined and that arrived together) is
//! turned into one [`Record`] of `IP:PORT -> <escaped message>` lines and
//! written with one [`Journal::write`], that is one `write(2)`, in the call
//! to [`MessageStore::store`] itself: the batches of a session reach the
//! file in the order they were handed over, whatever order the session
//! later polls their futures in. Only once the write is
//! [durable](journal::Written::durable) (after the fsync the mode asks
//! for) is each message confirmed. Lines are escaped, so a message can never span or merge lines,
//! and the journal's single write under a lock keeps the lines of concurrent
//! clients whole.

use std::{net::SocketAddr, sync::Arc};

use journal::{Journal, Record};
use node::{MessageStore, StoreFuture};
use protocol::{sentences, Tag};

use crate::tagged::Tagged;

/// Appends messages to the server's log file.
#[derive(Debug, Clone)]
pub struct LogStore {
    journal: Journal,
    /// What recognises tagged messages sent again; without it tags are
    /// ignored.
    tagged: Option<Arc<Tagged>>,
}

impl LogStore {
    /// A store writing to `journal`.
    pub fn new(journal: Journal) -> Self {
        LogStore {
            journal,
            tagged: None,
        }
    }

    /// This store, writing each tagged message once ([`crate::tagged`]).
    pub fn with_tagged(mut self, tagged: Tagged) -> Self {
        self.tagged = Some(Arc::new(tagged));
        self
    }

    /// The journal written to.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }
}

/// The left part of a log line: `IP:PORT`, with an IPv4 client that reached
/// a dual-stack socket (`::ffff:10.0.0.3`) shown as plain IPv4, as the
/// original exercise's logs show it. Other IPv6 addresses are bracketed.
pub fn sender(peer: SocketAddr) -> String {
    SocketAddr::new(peer.ip().to_canonical(), peer.port()).to_string()
}

/// What [`LogStore::store`] keeps between calls on one thread: the lines
/// of a batch are built in one reused buffer (it is written before `store`
/// returns), and the last sender's `IP:PORT` text is kept, since a
/// session's batches all come from one peer. Without it, every batch cost
/// a formatted address and a line buffer grown from empty: two allocations
/// and a `fmt` call even for a batch of one (figure 1 of
/// docs/PERFORMANCE.md).
struct Scratch {
    peer: Option<SocketAddr>,
    left: String,
    record: Record,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = const {
        std::cell::RefCell::new(Scratch { peer: None, left: String::new(), record: Record::new() })
    };
}

/// A reused line buffer bigger than this is dropped after its batch, so
/// that one huge batch does not pin its memory for the thread's life.
const SCRATCH_KEEP: usize = 1 << 20;

/// What an `ERR STORAGE` says could not be done, plain or tagged.
pub(crate) const WRITE_FAILED: &str = "the server could not write its log file";

impl MessageStore for LogStore {
    fn store_tagged(
        &self,
        peer: SocketAddr,
        messages: Vec<String>,
        tags: Vec<Option<Tag>>,
    ) -> StoreFuture {
        match &self.tagged {
            Some(tagged) => tagged.store(&self.journal, &sender(peer), messages, tags),
            None => self.store(peer, messages),
        }
    }

    fn store(&self, peer: SocketAddr, messages: Vec<String>) -> StoreFuture {
        let written = SCRATCH.with(|scratch| {
            let scratch = &mut *scratch.borrow_mut();
            if scratch.peer != Some(peer) {
                scratch.left = sender(peer);
                scratch.peer = Some(peer);
            }
            let record = &mut scratch.record;
            record.clear();
            for message in &messages {
                record.push(&scratch.left, message);
            }
            let written = self.journal.write(record.as_bytes());
            if record.capacity() > SCRATCH_KEEP {
                *record = Record::new();
            }
            written
        });
        node::session::answer_when_durable(
            written,
            messages,
            sentences::server_received,
            WRITE_FAILED,
        )
    }
}

#[cfg(test)]
mod tests {
    use journal::Durability;
    use protocol::ErrorCode;

    use super::*;

    #[test]
    fn senders_are_shown_canonically() {
        let mapped: SocketAddr = "[::ffff:172.19.0.3]:46274".parse().unwrap();
        assert_eq!(sender(mapped), "172.19.0.3:46274");
        let v4: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(sender(v4), "127.0.0.1:5000");
        let v6: SocketAddr = "[::1]:5000".parse().unwrap();
        assert_eq!(sender(v6), "[::1]:5000");
    }

    #[tokio::test]
    async fn a_batch_is_one_line_per_message_then_confirmed() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path().join("log.txt"), Durability::Always).unwrap();
        let store = LogStore::new(journal);
        let peer: SocketAddr = "[::ffff:10.0.0.7]:40000".parse().unwrap();
        let results = store
            .store(
                peer,
                vec!["Hola".into(), "two\nlines".into(), "Adiós".into()],
            )
            .await;
        assert_eq!(
            results,
            vec![
                Ok("El servidor ha recibido satisfactoriamente su mensaje 'Hola'.".into()),
                Ok("El servidor ha recibido satisfactoriamente su mensaje 'two\nlines'.".into()),
                Ok("El servidor ha recibido satisfactoriamente su mensaje 'Adiós'.".into()),
            ]
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("log.txt")).unwrap(),
            "10.0.0.7:40000 -> Hola\n10.0.0.7:40000 -> two\\nlines\n10.0.0.7:40000 -> Adiós\n"
        );
    }

    #[tokio::test]
    async fn the_write_happens_before_the_future_is_polled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.txt");
        let store = LogStore::new(Journal::open(&path, Durability::Never).unwrap());
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let earlier = store.store(peer, vec!["first".into()]);
        let later = store.store(peer, vec!["second".into()]);
        // Polled in the reverse order: the file still has the call order.
        later.await;
        earlier.await;
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "127.0.0.1:1 -> first\n127.0.0.1:1 -> second\n"
        );
    }

    /// The reused sender text follows the peer: batches of two clients
    /// interleaved on one thread each carry their own address.
    #[tokio::test]
    async fn interleaved_peers_each_get_their_own_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.txt");
        let store = LogStore::new(Journal::open(&path, Durability::Never).unwrap());
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        for (peer, message) in [(a, "a1"), (b, "b1"), (b, "b2"), (a, "a2")] {
            store.store(peer, vec![message.into()]).await;
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "127.0.0.1:1 -> a1\n127.0.0.1:2 -> b1\n127.0.0.1:2 -> b2\n127.0.0.1:1 -> a2\n"
        );
    }

    /// `/dev/full` accepts the open and fails every write with ENOSPC.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_failed_write_answers_storage_for_the_whole_batch() {
        let store = LogStore::new(Journal::open("/dev/full", Durability::Never).unwrap());
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let results = store.store(peer, vec!["a".into(), "b".into()]).await;
        assert_eq!(results.len(), 2);
        for result in results {
            assert_eq!(result.unwrap_err().code, ErrorCode::Storage);
        }
    }
}

//! The datanode's [`MessageStore`]: `STORE`s become lines of data.txt,
//! `STOREID`s too, once per id ([`dedupe::store`]).

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
};

use dedupe::store::{Answers, TaggedLog};
use journal::{timestamp, Journal, Record};
use node::{MessageStore, StoreFuture};
use protocol::{sentences, Tag};

/// What an `ERR STORAGE` says could not be done, plain or tagged.
const WRITE_FAILED: &str = "cannot write data.txt";

/// Appends stored messages to data.txt and confirms them.
#[derive(Debug)]
pub struct DataStore {
    journal: Journal,
    name: String,
    /// The line buffer of the last batch, kept for the next one: under load
    /// a batch is hundreds of lines, and growing a new buffer from empty
    /// each time (a dozen reallocations of up to tens of kilobytes) showed
    /// in the datanode's profile.
    spare: Mutex<Option<Record>>,
    /// What recognises a `STOREID` stored already (data.txt.ids); without
    /// it tags are ignored.
    tagged: Option<Arc<TaggedLog>>,
}

impl DataStore {
    /// A store writing to `journal`, confirming under `name`.
    pub fn new(journal: Journal, name: String) -> Self {
        DataStore {
            journal,
            name,
            spare: Mutex::new(None),
            tagged: None,
        }
    }

    /// Reads the sidecar of data.txt (`data.txt.ids`): the ids of the
    /// tagged messages stored, answered again without a second line
    /// ([`dedupe::store`]).
    pub fn open_tagged(journal: &Journal, name: &str) -> Result<TaggedLog, journal::Error> {
        let name = name.to_owned();
        TaggedLog::open(
            journal,
            Answers {
                stored: Box::new(move |message| sentences::datanode_stored(&name, message)),
                failed: WRITE_FAILED,
            },
        )
    }

    /// This store, writing each `STOREID` once.
    pub fn with_tagged(mut self, tagged: TaggedLog) -> Self {
        self.tagged = Some(Arc::new(tagged));
        self
    }

    fn spare(&self) -> std::sync::MutexGuard<'_, Option<Record>> {
        self.spare.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The path of data.txt.
    pub fn path(&self) -> &Path {
        self.journal.path()
    }
}

impl MessageStore for DataStore {
    fn store_tagged(
        &self,
        peer: SocketAddr,
        messages: Vec<String>,
        tags: Vec<Option<Tag>>,
    ) -> StoreFuture {
        match &self.tagged {
            Some(tagged) => tagged.store(&self.journal, &timestamp(), messages, tags),
            None => self.store(peer, messages),
        }
    }

    fn store(&self, _peer: SocketAddr, messages: Vec<String>) -> StoreFuture {
        let stamp = timestamp();
        let mut record = self.spare().take().unwrap_or_default();
        record.clear();
        for message in &messages {
            record.push(&stamp, message);
        }
        // The write(2) happens in this call, so data.txt keeps the order in
        // which the STOREs arrived even though the session may poll the
        // batches' futures in any order. The bytes are then the kernel's,
        // so the buffer is free for the next batch at once.
        let written = self.journal.write(record.as_bytes());
        *self.spare() = Some(record);
        let name = self.name.clone();
        node::session::answer_when_durable(
            written,
            messages,
            move |message| sentences::datanode_stored(&name, message),
            WRITE_FAILED,
        )
    }
}

#[cfg(test)]
mod tests {
    use journal::Durability;

    use super::*;
    use crate::DATA_FILE;

    #[tokio::test]
    async fn stores_escaped_lines_then_confirms() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path().join(DATA_FILE), Durability::Never).unwrap();
        let store = DataStore::new(journal, "dn1".into());
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let first = store.store(peer, vec!["Hola".into(), "two\nlines".into()]);
        let second = store.store(peer, vec!["Adiós".into()]);
        // Awaited in reverse: the file still has the order of the calls.
        let second = second.await;
        let first = first.await;
        assert_eq!(
            first,
            vec![
                Ok(sentences::datanode_stored("dn1", "Hola")),
                Ok(sentences::datanode_stored("dn1", "two\nlines")),
            ]
        );
        assert_eq!(second, vec![Ok(sentences::datanode_stored("dn1", "Adiós"))]);
        let text = std::fs::read_to_string(store.path()).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let texts: Vec<_> = lines
            .iter()
            .map(|line| journal::parse_record(line).unwrap().1)
            .collect();
        assert_eq!(texts, ["Hola", "two\nlines", "Adiós"]);
        assert!(lines[1].ends_with(r"-> two\nlines"), "{}", lines[1]);
    }

    /// The datanode killed after writing and before confirming: a restarted
    /// one, sent the same STOREID again, confirms it and writes nothing.
    #[tokio::test]
    async fn a_storeid_sent_again_is_confirmed_once_written_even_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let tag = |seq| {
            Some(Tag {
                client: protocol::ClientId::new("c1").unwrap(),
                seq,
                acked: 0,
            })
        };
        let open = || {
            let journal = Journal::open(dir.path().join(DATA_FILE), Durability::Never).unwrap();
            let tagged = DataStore::open_tagged(&journal, "dn1").unwrap();
            DataStore::new(journal, "dn1".into()).with_tagged(tagged)
        };
        let store = open();
        let first = store
            .store_tagged(peer, vec!["a".into(), "b".into()], vec![tag(1), tag(2)])
            .await;
        assert_eq!(first[1], Ok(sentences::datanode_stored("dn1", "b")));
        drop(store);
        assert!(dir.path().join("data.txt.ids").exists());
        let store = open();
        let again = store
            .store_tagged(peer, vec!["b".into(), "c".into()], vec![tag(2), tag(3)])
            .await;
        assert_eq!(
            again,
            vec![
                Ok(sentences::datanode_stored("dn1", "b")),
                Ok(sentences::datanode_stored("dn1", "c")),
            ]
        );
        let texts: Vec<_> = std::fs::read_to_string(store.path())
            .unwrap()
            .lines()
            .map(|line| journal::parse_record(line).unwrap().1)
            .collect();
        assert_eq!(texts, ["a", "b", "c"]);
    }
}

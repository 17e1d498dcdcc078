//! A log file that writes each tagged message once, however often its
//! client sends it: the one rule shared by the server (`log.txt`, Activity
//! 1) and the datanode (`data.txt`, Activity 2).
//!
//! A tagged message is looked up in the clients' windows ([`Windows`])
//! before its batch is written:
//!
//! - new: written with the batch, and its id appended to the sidecar
//!   `<log>.ids` (`C <client> <seqs> <acked>`, one record per client of
//!   the batch: [`sidecar`]) right after, in the same
//!   call, before it is confirmed;
//! - already stored: answered again, with the node's usual sentence, with
//!   nothing written;
//! - still being made durable by another batch (`--fsync always`): answered
//!   with that batch's outcome, once it has one;
//! - at or below what its client acknowledged: refused, `ERR BAD_ARGUMENT`
//!   (the client promised never to send it again).
//!
//! A message whose write failed is forgotten, so that sending it again
//! tries again. When the node starts, the sidecar is read back
//! ([`sidecar::open`]): a resend to a restarted node gets the answers of
//! what it had stored.
//!
//! The one window left: the node killed between the `write(2)` of a batch
//! to its log file and the `write(2)` of its ids to the sidecar (two system
//! calls of one thread, one right after the other, with nothing waited for
//! between) forgets those ids, and a resend writes them again: at most one
//! batch per runtime thread. The sidecar's write comes after the store's
//! lock is released, so that the two threads of a busy server do not wait
//! on each other's second write.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{
    future::{BoxFuture, Shared},
    FutureExt,
};
use journal::{Durability, Journal, Record};
use protocol::{ErrorCode, ErrorReply, Tag};
use tokio::sync::oneshot;

use crate::{sidecar, Seen, Windows};

/// A client with nothing in flight is forgotten after this long idle (its
/// floor alone; see [`crate`]).
pub const IDLE_EXPIRY: Duration = Duration::from_secs(600);

/// Checks expiry once every this many tagged batches.
const EXPIRY_EVERY: u32 = 4096;

type Durable = Shared<BoxFuture<'static, Result<(), String>>>;

/// What the store answers: the sentence of a stored message, and the
/// start of the text of a storage error (followed by `: <error>`).
pub struct Answers {
    /// The `OK` sentence of a message stored (now or before).
    pub stored: Box<dyn Fn(&str) -> String + Send + Sync>,
    /// What could not be done, as in `the server could not write its log
    /// file`.
    pub failed: &'static str,
}

/// One result per message, in order, as a node's store gives them.
pub type Results = Vec<Result<String, ErrorReply>>;

/// What is kept of a message id.
#[derive(Clone)]
enum Entry {
    /// In the log file.
    Stored,
    /// Written, waiting for the fsync of `--fsync always`.
    Written(Durable),
}

/// The dedupe state of one log file: the windows and the sidecar.
pub struct TaggedLog {
    state: Mutex<State>,
    sidecar: Journal,
    answers: Answers,
}

struct State {
    windows: Windows<Entry>,
    batches: u32,
    /// The lines and the ids of the last batch, kept for the next one
    /// (both are written before the lock is released).
    record: Record,
    /// The sidecar records of the batch being stored.
    records: sidecar::Records,
}

/// A reused buffer bigger than this is dropped after its batch.
const SCRATCH_KEEP: usize = 1 << 20;

impl std::fmt::Debug for TaggedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaggedLog")
            .field("sidecar", &self.sidecar.path())
            .finish_non_exhaustive()
    }
}

impl TaggedLog {
    /// Reads the sidecar of `log` (`<log>.ids`) and opens it to append.
    pub fn open(log: &Journal, answers: Answers) -> Result<TaggedLog, journal::Error> {
        let path = sidecar::path_for(log.path());
        let (sidecar, stored) = sidecar::open(&path, log.durability(), Instant::now())?;
        let mut windows = Windows::default();
        let now = Instant::now();
        for (client, window) in stored.iter() {
            windows.ack(client, window.floor(), now);
            for (seq, _) in window.entries() {
                windows.insert(client, seq, Entry::Stored, now);
            }
        }
        tracing::info!(sidecar = %path.display(), ids = windows.entries(), clients = windows.clients(),
            "message ids read back");
        Ok(TaggedLog {
            state: Mutex::new(State {
                windows,
                batches: 0,
                record: Record::new(),
                records: sidecar::Records::default(),
            }),
            sidecar,
            answers,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of message ids kept.
    pub fn entries(&self) -> usize {
        self.lock().windows.entries()
    }

    /// Stores a batch with tags (`tags[i]` is message `i`'s) to `log`, each
    /// line starting with `left`; see the module docs.
    pub fn store(
        self: &Arc<Self>,
        log: &Journal,
        left: &str,
        messages: Vec<String>,
        tags: Vec<Option<Tag>>,
    ) -> BoxFuture<'static, Results> {
        enum Plan {
            Write,
            Again,
            Wait(Durable),
            Refuse(ErrorReply),
        }
        let now = Instant::now();
        let mut fresh: Vec<&Tag> = Vec::new();
        let mut plans = Vec::with_capacity(messages.len());
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut record = std::mem::take(&mut state.record);
        record.clear();
        for (index, message) in messages.iter().enumerate() {
            let tag = tags.get(index).and_then(Option::as_ref);
            // A new one is kept as stored at once: a second copy in this
            // batch is answered again, not written again.
            let seen = tag.map(|tag| state.windows.check_or_insert(tag, now, || Entry::Stored));
            let plan = match seen {
                None | Some(Seen::New) => Plan::Write,
                Some(Seen::Known(Entry::Stored)) => Plan::Again,
                Some(Seen::Known(Entry::Written(durable))) => Plan::Wait(durable.clone()),
                Some(Seen::Acknowledged) => Plan::Refuse(acknowledged(tag.expect("tagged"))),
            };
            if matches!(plan, Plan::Write) {
                record.push(left, message);
                if let Some(tag) = tag {
                    state.records.push(sidecar::Kind::Stored, tag, None);
                    fresh.push(tag);
                }
            }
            plans.push(plan);
        }
        // The sidecar's records, written after the lock is released: they
        // are independent of other batches', and a copy of one of these
        // messages answered meanwhile is answered for good (its client will
        // not resend it), or, with `--fsync always`, waits for `durable`,
        // which covers the sidecar too.
        let mut ids = Vec::new();
        state.records.write_to(&mut ids);
        let written = log.write(record.as_bytes());
        if record.capacity() <= SCRATCH_KEEP {
            state.record = record;
        }
        let (side_done, side) = oneshot::channel::<journal::Written>();
        let write_side = written.is_ok() && !ids.is_empty();
        let durable: Durable = match written {
            Err(err) => {
                for tag in &fresh {
                    state.windows.remove(&tag.client, tag.seq);
                }
                futures::future::ready(Err(err.to_string()))
                    .boxed()
                    .shared()
            }
            Ok(written) => {
                let durable = async move {
                    written.durable().await.map_err(|err| err.to_string())?;
                    // Nothing comes when there was nothing to write, or
                    // the write failed (logged where it failed).
                    if let Ok(side) = side.await {
                        if let Err(err) = side.durable().await {
                            tracing::error!(%err, "cannot sync the sidecar");
                        }
                    }
                    Ok(())
                }
                .boxed()
                .shared();
                if log.durability() == Durability::Always && !fresh.is_empty() {
                    for tag in &fresh {
                        if let Some(entry) = state.windows.get_mut(&tag.client, tag.seq) {
                            *entry = Entry::Written(durable.clone());
                        }
                    }
                    // Settled whether or not the session still waits.
                    let (tagged, durable, fresh) = (
                        Arc::clone(self),
                        durable.clone(),
                        fresh.iter().map(|&tag| tag.clone()).collect::<Vec<_>>(),
                    );
                    tokio::spawn(async move {
                        let ok = durable.await.is_ok();
                        let mut state = tagged.lock();
                        for tag in fresh {
                            if ok {
                                if let Some(entry) = state.windows.get_mut(&tag.client, tag.seq) {
                                    *entry = Entry::Stored;
                                }
                            } else {
                                state.windows.remove(&tag.client, tag.seq);
                            }
                        }
                    });
                }
                durable
            }
        };
        state.batches += 1;
        if state.batches.is_multiple_of(EXPIRY_EVERY) {
            state.windows.expire_idle(now, IDLE_EXPIRY);
        }
        drop(guard);
        if write_side {
            match self.sidecar.write(&ids) {
                Ok(side) => {
                    let _ = side_done.send(side);
                }
                Err(err) => tracing::error!(%err,
                    "cannot append to the sidecar; a resend after a restart could be stored twice"),
            }
        }
        let this = Arc::clone(self);
        async move {
            let own = durable.await;
            let mut results = Vec::with_capacity(messages.len());
            for (plan, message) in plans.into_iter().zip(&messages) {
                let outcome = match plan {
                    Plan::Write => own.clone(),
                    Plan::Again => Ok(()),
                    Plan::Wait(other) => other.await,
                    Plan::Refuse(err) => {
                        results.push(Err(err));
                        continue;
                    }
                };
                results.push(match outcome {
                    Ok(()) => Ok((this.answers.stored)(message)),
                    Err(err) => Err(ErrorReply::new(
                        ErrorCode::Storage,
                        format!("{}: {err}", this.answers.failed),
                    )),
                });
            }
            results
        }
        .boxed()
    }
}

/// The refusal of a message its client acknowledged already.
pub fn acknowledged(tag: &Tag) -> ErrorReply {
    ErrorReply::new(
        ErrorCode::BadArgument,
        format!(
            "message {tag} is at or below what its client acknowledged ({}): it was answered already",
            tag.acked
        ),
    )
}

#[cfg(test)]
mod tests {
    use protocol::ClientId;

    use super::*;

    fn tag(seq: u64, acked: u64) -> Option<Tag> {
        Some(Tag {
            client: ClientId::new("c1").unwrap(),
            seq,
            acked,
        })
    }

    fn answers() -> Answers {
        Answers {
            stored: Box::new(|m| format!("stored '{m}'")),
            failed: "cannot write",
        }
    }

    fn open(dir: &std::path::Path, durability: Durability) -> (Journal, Arc<TaggedLog>) {
        let journal = Journal::open(dir.join("data.txt"), durability).unwrap();
        let tagged = TaggedLog::open(&journal, answers()).unwrap();
        (journal, Arc::new(tagged))
    }

    fn lines(dir: &std::path::Path) -> Vec<String> {
        let log = std::fs::read_to_string(dir.join("data.txt")).unwrap();
        log.lines()
            .map(|l| l.split(" -> ").nth(1).unwrap().to_owned())
            .collect()
    }

    fn batch(seqs: &[(u64, u64)]) -> (Vec<String>, Vec<Option<Tag>>) {
        let messages = seqs.iter().map(|(s, _)| format!("m{s}")).collect();
        let tags = seqs.iter().map(|&(s, a)| tag(s, a)).collect();
        (messages, tags)
    }

    #[tokio::test]
    async fn a_resent_id_is_answered_again_and_written_once_even_after_a_restart() {
        for durability in [Durability::Never, Durability::Always] {
            let dir = tempfile::tempdir().unwrap();
            let (journal, store) = open(dir.path(), durability);
            let (messages, tags) = batch(&[(1, 0), (2, 0), (2, 0)]);
            let first = store.store(&journal, "x", messages, tags).await;
            assert!(first.iter().all(Result::is_ok), "{first:?}");
            let (messages, tags) = batch(&[(2, 1), (3, 1)]);
            let again = store.store(&journal, "x", messages, tags).await;
            assert_eq!(again[0], Ok("stored 'm2'".into()));
            assert_eq!(lines(dir.path()), ["m1", "m2", "m3"]);
            // Untagged messages are never deduplicated.
            store
                .store(&journal, "x", vec!["m1".into()], vec![None])
                .await;
            drop((journal, store));

            let (journal, store) = open(dir.path(), durability);
            assert_eq!(store.entries(), 2, "2 and 3, above the floor 1");
            let (messages, tags) = batch(&[(1, 1), (3, 1), (4, 1)]);
            let after = store.store(&journal, "x", messages, tags).await;
            assert_eq!(after[0].as_ref().unwrap_err().code, ErrorCode::BadArgument);
            assert_eq!(after[1], Ok("stored 'm3'".into()));
            assert_eq!(lines(dir.path()), ["m1", "m2", "m3", "m1", "m4"]);
        }
    }

    /// `/dev/full` fails every write: the id is forgotten, a resend tries
    /// again.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_failed_write_forgets_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let sidecar = Journal::open(dir.path().join("log.txt.ids"), Durability::Never).unwrap();
        let tagged = Arc::new(TaggedLog {
            state: Mutex::new(State {
                windows: Windows::default(),
                batches: 0,
                record: Record::new(),
                records: sidecar::Records::default(),
            }),
            sidecar,
            answers: answers(),
        });
        let full = Journal::open("/dev/full", Durability::Never).unwrap();
        for _ in 0..2 {
            let results = tagged
                .store(&full, "x", vec!["m".into()], vec![tag(1, 0)])
                .await;
            assert_eq!(results[0].as_ref().unwrap_err().code, ErrorCode::Storage);
            assert!(
                results[0]
                    .as_ref()
                    .unwrap_err()
                    .to_string()
                    .contains("cannot write: "),
                "{results:?}"
            );
        }
        assert_eq!(tagged.entries(), 0);
    }
}

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
//! batch per runtime thread. The store's lock covers the windows and the
//! log file's `write(2)` only: the lines and the sidecar's records are
//! made before it is taken (as if every message were new; again, without
//! the copies, only when some were not), and the sidecar is written after
//! it is released, so that the two threads of a busy server do not wait
//! on each other and nothing but the release comes between the writes.

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
    ///
    /// The lock is held only for the window look-ups and the log's
    /// `write(2)`: the lines are escaped and the sidecar's records made
    /// before it is taken (as if every message were new, the usual case).
    /// Held across the escaping and the records, it kept the server's
    /// second runtime thread waiting on a futex for much of its time
    /// (docs/PERFORMANCE.md, "Tagged messages beside plain").
    pub fn store(
        self: &Arc<Self>,
        log: &Journal,
        left: &str,
        messages: Vec<String>,
        tags: Vec<Option<Tag>>,
    ) -> BoxFuture<'static, Results> {
        SCRATCH.with_borrow_mut(|scratch| self.store_with(scratch, log, left, messages, tags))
    }

    fn store_with(
        self: &Arc<Self>,
        scratch: &mut Scratch,
        log: &Journal,
        left: &str,
        messages: Vec<String>,
        tags: Vec<Option<Tag>>,
    ) -> BoxFuture<'static, Results> {
        let now = Instant::now();
        let Scratch {
            record,
            records,
            ids,
        } = scratch;
        record.clear();
        for message in &messages {
            record.push(left, message);
        }
        // The sidecar's bytes too, as if every tagged message were new: made
        // here, they leave nothing but the lock's release between the two
        // `write(2)`s, the crash window (see the module docs).
        let tagged = tags.iter().flatten().count();
        stored_records(records, ids, tags.iter().flatten());
        let always = log.durability() == Durability::Always;
        // What is not written as new (a copy, a refusal), by index: empty
        // but for a resend, so that the usual batch keeps no plan per
        // message.
        let mut others: Vec<(usize, Plan)> = Vec::new();
        let mut guard = self.lock();
        let state = &mut *guard;
        for (index, tag) in tags.iter().enumerate() {
            let Some(tag) = tag else {
                continue;
            };
            // A new one is kept as stored at once: a second copy in this
            // batch is answered again, not written again.
            match state.windows.check_or_insert(tag, now, || Entry::Stored) {
                Seen::New => {}
                Seen::Known(Entry::Stored) => others.push((index, Plan::Again)),
                Seen::Known(Entry::Written(durable)) => {
                    others.push((index, Plan::Wait(durable.clone())));
                }
                Seen::Acknowledged => others.push((index, Plan::Refuse(acknowledged(tag)))),
            }
        }
        // Every message's plan, made only when some are not new.
        let plans = (!others.is_empty()).then(|| plans_of(messages.len(), &mut others));
        if let Some(plans) = &plans {
            // Copies or refusals (a resend): the lines again, of the new
            // messages only.
            record.clear();
            for (plan, message) in plans.iter().zip(&messages) {
                if matches!(plan, Plan::Write) {
                    record.push(left, message);
                }
            }
        }
        // The tagged messages written as new, by index.
        let fresh: Vec<usize> = tags
            .iter()
            .enumerate()
            .filter(|&(index, tag)| {
                tag.is_some()
                    && plans
                        .as_ref()
                        .is_none_or(|plans| matches!(plans[index], Plan::Write))
            })
            .map(|(index, _)| index)
            .collect();
        let written = log.write(record.as_bytes());
        if record.capacity() > SCRATCH_KEEP {
            *record = Record::new();
        }
        let tag_of = |index: usize| tags[index].as_ref().expect("fresh messages are tagged");
        // Only `--fsync always` has anything to wait for once written.
        let (written, to_sync) = match written {
            Ok(written) if always => (Ok(()), Some(written)),
            Ok(_) => (Ok(()), None),
            Err(err) => {
                for &index in &fresh {
                    let tag = tag_of(index);
                    state.windows.remove(&tag.client, tag.seq);
                }
                (Err(err.to_string()), None)
            }
        };
        // With `--fsync always` a copy that arrives before the fsync waits
        // for this batch's outcome, which covers the sidecar too.
        let mut side_done = None;
        let shared = to_sync.map(|written| {
            let (done, side) = oneshot::channel::<journal::Written>();
            side_done = Some(done);
            let durable: Durable = async move {
                written.durable().await.map_err(|err| err.to_string())?;
                // Nothing comes when there was nothing to write, or the
                // write failed (logged where it failed).
                if let Ok(side) = side.await {
                    if let Err(err) = side.durable().await {
                        tracing::error!(%err, "cannot sync the sidecar");
                    }
                }
                Ok(())
            }
            .boxed()
            .shared();
            for &index in &fresh {
                let tag = tag_of(index);
                if let Some(entry) = state.windows.get_mut(&tag.client, tag.seq) {
                    *entry = Entry::Written(durable.clone());
                }
            }
            durable
        });
        state.batches += 1;
        if state.batches.is_multiple_of(EXPIRY_EVERY) {
            state.windows.expire_idle(now, IDLE_EXPIRY);
        }
        drop(guard);
        // The sidecar's records, written after the lock is released: they
        // are independent of other batches', and a copy of one of these
        // messages answered meanwhile is answered for good (its client will
        // not resend it), or, with `--fsync always`, waits for `shared`.
        if written.is_ok() && !fresh.is_empty() {
            if fresh.len() != tagged {
                // Some were copies (a resend): the records of the new ones.
                stored_records(records, ids, fresh.iter().map(|&index| tag_of(index)));
            }
            match self.sidecar.write(ids) {
                Ok(side) => {
                    if let Some(done) = side_done {
                        let _ = done.send(side);
                    }
                }
                Err(err) => tracing::error!(%err,
                    "cannot append to the sidecar; a resend after a restart could be stored twice"),
            }
            if ids.capacity() > SCRATCH_KEEP {
                *ids = Vec::new();
            }
        }
        match (shared, plans) {
            (Some(durable), plans) => {
                if !fresh.is_empty() {
                    let fresh = fresh.iter().map(|&i| tag_of(i).clone()).collect();
                    self.settle_when_durable(durable.clone(), fresh);
                }
                let plans = plans.unwrap_or_else(|| plans_of(messages.len(), &mut others));
                self.answer_later(durable, plans, messages)
            }
            (None, None) => {
                // Every message new (or untagged), nothing to wait for:
                // answered now, with no future to share.
                let results = messages
                    .iter()
                    .map(|message| self.answer(written.clone(), message))
                    .collect();
                futures::future::ready(results).boxed()
            }
            (None, Some(plans)) if plans.iter().all(|plan| !matches!(plan, Plan::Wait(_))) => {
                let own = written;
                let results = plans
                    .into_iter()
                    .zip(&messages)
                    .map(|(plan, message)| match plan {
                        Plan::Write => self.answer(own.clone(), message),
                        Plan::Again => self.answer(Ok(()), message),
                        Plan::Refuse(err) => Err(err),
                        Plan::Wait(_) => unreachable!("no copy waits"),
                    })
                    .collect();
                futures::future::ready(results).boxed()
            }
            (None, Some(plans)) => {
                let own = futures::future::ready(written).boxed().shared();
                self.answer_later(own, plans, messages)
            }
        }
    }

    /// With `--fsync always`: once the batch is durable its ids are marked
    /// stored (or forgotten, if the fsync failed), whether or not the
    /// session still waits.
    fn settle_when_durable(self: &Arc<Self>, durable: Durable, fresh: Vec<Tag>) {
        // Weak: a store dropped meanwhile (its node stopping) is let go,
        // with its sidecar's lock, at once.
        let tagged = Arc::downgrade(self);
        tokio::spawn(async move {
            let ok = durable.await.is_ok();
            let Some(tagged) = tagged.upgrade() else {
                return;
            };
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

    /// The answers, once this batch's outcome (`own`) and those of the batches its copies wait for are known.
    fn answer_later(
        self: &Arc<Self>,
        own: Durable,
        plans: Vec<Plan>,
        messages: Vec<String>,
    ) -> BoxFuture<'static, Results> {
        let this = Arc::clone(self);
        async move {
            let own = own.await;
            let mut results = Vec::with_capacity(messages.len());
            for (plan, message) in plans.into_iter().zip(&messages) {
                results.push(match plan {
                    Plan::Write => this.answer(own.clone(), message),
                    Plan::Again => this.answer(Ok(()), message),
                    Plan::Wait(other) => this.answer(other.await, message),
                    Plan::Refuse(err) => Err(err),
                });
            }
            results
        }
        .boxed()
    }

    fn answer(&self, outcome: Result<(), String>, message: &str) -> Result<String, ErrorReply> {
        match outcome {
            Ok(()) => Ok((self.answers.stored)(message)),
            Err(err) => Err(ErrorReply::new(
                ErrorCode::Storage,
                format!("{}: {err}", self.answers.failed),
            )),
        }
    }
}

/// What one message of a batch gets.
enum Plan {
    Write,
    Again,
    Wait(Durable),
    Refuse(ErrorReply),
}

/// The plan of each of `count` messages: those of `others` (by index,
/// taken from it), `Write` for the rest.
fn plans_of(count: usize, others: &mut Vec<(usize, Plan)>) -> Vec<Plan> {
    let mut plans: Vec<Plan> = (0..count).map(|_| Plan::Write).collect();
    for (index, plan) in others.drain(..) {
        plans[index] = plan;
    }
    plans
}

/// What [`TaggedLog::store`] reuses from batch to batch on one thread: the
/// lines and the sidecar's records and their bytes, made outside the lock.
#[derive(Default)]
struct Scratch {
    record: Record,
    records: sidecar::Records,
    ids: Vec<u8>,
}

/// `ids` becomes the sidecar's records of `tags`, stored.
fn stored_records<'a>(
    records: &mut sidecar::Records,
    ids: &mut Vec<u8>,
    tags: impl Iterator<Item = &'a Tag>,
) {
    for tag in tags {
        records.push(sidecar::Kind::Stored, tag, None);
    }
    ids.clear();
    records.write_to(ids);
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
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

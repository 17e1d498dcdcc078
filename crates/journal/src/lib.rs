//! The log files every node writes: append-only, one record per line.
//!
//! # Records
//!
//! Every file of the system (`log.txt`, `respuestas.txt`, `data.txt`,
//! `registro_server.txt`, `registro_cliente.txt`, `heartbeat_server.txt`) is
//! a sequence of lines `<left> -> <text>`, where `<left>` is a sender's
//! `IP:PORT` or a `YYYY-mm-dd HH:MM:SS` local time stamp and `<text>` is
//! escaped with [`protocol::escape`], so one record is always exactly one
//! line. [`Record`] builds them; [`parse_record`] reads one back.
//!
//! # Writing, then waiting for the disk
//!
//! A [`Journal`] owns one file opened with `O_APPEND`. Appending a batch is
//! two steps, so that the order of the lines is fixed by the type rather
//! than by when a future is first polled:
//!
//! 1. [`Journal::write`] is synchronous. It writes the whole batch with a
//!    single `write(2)` under a lock, so records from concurrent writers
//!    never interleave inside a line and a batch that pipelined requests
//!    produced costs one system call. When it returns, the bytes are in the
//!    file (the kernel's page cache): other processes see them and a crash
//!    of this process cannot lose them. Batches are in the file in the order
//!    of the calls, and each gets the next [`Seq`], so a caller that must
//!    keep the order of arrivals (the sessions, the headnode's passes) only
//!    has to call `write` in that order.
//! 2. [`Written::durable`] then waits as the durability mode requires (see
//!    below); only after it returns `Ok` may the batch be confirmed to
//!    anyone. [`Journal::sync_through`] forces any mode's writes up to a
//!    [`Seq`] to disk.
//!
//! [`Journal::append`] does both in one call, for callers to which the order
//! across batches does not matter.
//!
//! # Durability
//!
//! What reaches the disk, and when, is the [`Durability`] mode:
//!
//! - `never`: the kernel writes the page cache back when it likes (about 30 s
//!   on Linux). A process crash loses nothing confirmed; a power loss or
//!   kernel crash can lose what was confirmed in the last ~30 s.
//! - `always`: [`Written::durable`] returns only after `fdatasync(2)` covered
//!   the batch. Nothing confirmed is lost, even on power loss. Batches
//!   written while a sync is running wait for the next one, which then
//!   covers all of them at once (group commit): throughput grows with
//!   concurrency instead of being one disk flush per message.
//! - an interval such as `1s`: a background task syncs at least that often
//!   while there are unsynced writes. A process crash loses nothing; a power
//!   loss can lose what was confirmed in the last interval.
//!
//! With `always` or an interval, opening a file also syncs it and the
//! folders on its path that it had to create, so that a new file cannot
//! vanish on power loss together with the records synced into it.
//!
//! # One writer
//!
//! A journal holds an exclusive lock on its file for its whole life (an
//! `flock` on `.<name>.lock` beside it, released by the kernel when the
//! process dies, however it dies), and opening a file that another process
//! holds fails with [`Error::Locked`], naming that process. Two processes
//! appending to one file would each repair the file by what only it
//! wrote, cutting the other's confirmed lines (issue 11).
//!
//! # Rotation
//!
//! Both ways logrotate rotates a file work under a running node:
//!
//! - `copytruncate` (the file is copied, then truncated to 0): writes go on
//!   at the new end, since the file is opened with `O_APPEND`. Lines written
//!   between the copy and the truncation are lost, as with any program
//!   (logrotate's own warning); prefer `create`.
//! - `create` (the file is renamed, a new one may be created) or a plain
//!   `mv`/`rm`: at most a second later ([`Journal::write`] checks the path
//!   then), writes go to the file at the path, created if need be. Until
//!   then they still land, confirmed, in the renamed file, so compress it
//!   a cycle later (`delaycompress`). With a durable mode the old file is
//!   synced before it is left.
//!
//! No signal is needed. The lock file is not a log: rotate `*.txt`, not
//! `.*.lock`.
//!
//! # Failures
//!
//! A failed write is cut off at once (see [`Journal::write`]): only what
//! that write put at the end of the file, read back to check, never bytes
//! it did not write, and never by extending the file. Later writes are tried
//! as usual, so a node stores again once the disk has room. A failed
//! sync is different: Linux reports a write-back error once and may then
//! mark the pages clean, so a later sync that succeeds proves nothing about
//! the records before it. After a failed sync, or a failed write that could
//! not be cut off, the journal therefore refuses every later write and
//! sync ([`Error::Failed`]): the node answers `ERR STORAGE` rather than
//! confirm what may not be on disk, until an operator has looked at the
//! disk and restarted it (the error says so). What was confirmed
//! before the failure stays confirmed; with an interval, records confirmed
//! since the previous sync may be lost on a power loss, as that mode allows.
//!
//! # Recovery
//!
//! Opening a file whose last line is incomplete (a torn write: power loss,
//! full disk) cuts that partial line off, so the next record starts on a line
//! of its own. The cut record was never confirmed: confirmation follows a
//! complete write.

//!
//! # Errors
//!
//! Every fallible call returns an [`Error`], whose [`Error::fault`] says
//! whether the caller, the data or I/O is to blame ([`Fault`]); the binaries
//! turn that into their exit status. Only [`Journal::append`] still answers
//! in `io::Result`, for the callers written against it before [`Error`]
//! existed.

mod durability;
mod error;
mod file;
mod lock;
mod record;

pub use durability::{parse_duration, Durability};
pub use error::{Error, Fault};
pub use record::{is_timestamp, parse_record, timestamp, Record};

use std::{
    fs::File,
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock, Weak},
    time::Duration,
};

use tokio::sync::Notify;

use crate::file::Appender;

/// An append-only log file. Cheap to clone; clones share the file.
#[derive(Clone, Debug)]
pub struct Journal {
    inner: Arc<Inner>,
}

/// The number of a written batch: the n-th [`Journal::write`] of a journal
/// (since it was opened) returns `Seq` n, and a higher number is later in
/// the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(u64);

impl Seq {
    /// The number, from 1; 0 stands for an empty batch, which wrote nothing.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// A batch that [`Journal::write`] put in the file, not yet confirmed.
///
/// Await [`Written::durable`] before confirming it: with `--fsync always`
/// that is when `fdatasync` has covered it.
#[derive(Debug)]
#[must_use = "the batch is written but not yet durable: await `durable()` before confirming it"]
pub struct Written {
    journal: Journal,
    seq: Seq,
}

impl Written {
    /// The batch's sequence number.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// Waits until the batch is as durable as the journal's mode promises:
    /// on disk with [`Durability::Always`], at once otherwise (the other
    /// modes confirm what is in the file).
    pub async fn durable(self) -> Result<(), Error> {
        if self.journal.inner.durability == Durability::Always {
            self.journal.sync_through(self.seq).await?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    durability: Durability,
    file: Mutex<Appender>,
    /// A second handle on the same file, so that a sync does not hold the
    /// write lock: writes go on while the disk flushes. Replaced, under the
    /// write lock, when a rotation makes the journal open a new file.
    sync_file: Mutex<Arc<File>>,
    /// Held for the journal's life: no other process writes the file.
    _lock: Option<lock::WriterLock>,
    sync: Mutex<SyncState>,
    synced: Notify,
    /// Set, once and for good, by a failure after which the file can no
    /// longer be trusted (see "Failures" above): why.
    failed: OnceLock<String>,
    /// Tests make the next sync fail, as a disk would.
    #[cfg(test)]
    fail_next_sync: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Number of batches written so far: the last [`Seq`] issued.
    written: u64,
    /// Every batch up to this sequence number is on disk.
    synced: u64,
    /// Whether a sync is running (its caller is the group's leader).
    syncing: bool,
}

impl Journal {
    /// Opens (creating it and its folder if needed) the file at `path`.
    ///
    /// With [`Durability::Interval`] this spawns a flusher task, so it must
    /// be called within a Tokio runtime; the task ends when the last clone of
    /// the journal is dropped.
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> Result<Journal, Error> {
        let path = path.as_ref().to_path_buf();
        let opened = file::open(&path, durability)?;
        let sync_file = opened.file.try_clone().map_err(|source| Error::Open {
            path: path.clone(),
            source,
        })?;
        let inner = Arc::new(Inner {
            file: Mutex::new(Appender::new(opened.file, &path, durability, opened.len)),
            path,
            durability,
            sync_file: Mutex::new(Arc::new(sync_file)),
            _lock: opened.lock,
            sync: Mutex::new(SyncState::default()),
            synced: Notify::new(),
            failed: OnceLock::new(),
            #[cfg(test)]
            fail_next_sync: std::sync::atomic::AtomicBool::new(false),
        });
        if let Durability::Interval(every) = durability {
            tokio::spawn(flush_periodically(Arc::downgrade(&inner), every));
        }
        Ok(Journal { inner })
    }

    /// The path of the file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The durability mode the journal was opened with.
    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    /// Writes `records` (whole lines, each ending in `\n`) with one
    /// `write(2)`, now, whatever the durability mode; see [`Written`] for
    /// what to await before confirming them.
    ///
    /// A failed write is cut off the file again; after a failure that
    /// leaves the file untrustworthy every later call fails too (see
    /// "Failures" above). An empty batch writes nothing. Before writing, it
    /// notices (at most once a second) that the file was rotated away and
    /// goes on in the new one ("Rotation" above).
    pub fn write(&self, records: &[u8]) -> Result<Written, Error> {
        self.inner.check()?;
        if records.is_empty() {
            return Ok(self.written(Seq(0)));
        }
        debug_assert!(records.ends_with(b"\n"), "records must be whole lines");
        // A write of a few kilobytes to the page cache takes about a
        // microsecond: cheaper than handing it to a blocking thread.
        let mut file = self.inner.file.lock().unwrap_or_else(|e| e.into_inner());
        match file.follow() {
            Ok(None) => {}
            Ok(Some(rotated)) => *self.inner.lock_sync_file() = Arc::new(rotated),
            Err(source) => {
                self.inner
                    .fail(format!("syncing the file rotated away failed: {source}"));
                return Err(Error::Sync {
                    path: self.inner.path.clone(),
                    source,
                });
            }
        }
        if let Err((source, cut_off)) = file.append(records) {
            if !cut_off {
                self.inner
                    .fail(format!("a failed write could not be cut off: {source}"));
            }
            return Err(Error::Write {
                path: self.inner.path.clone(),
                source,
            });
        }
        // Numbered under the file lock, so sequence order is file order.
        let mut sync = self.inner.lock_sync();
        sync.written += 1;
        Ok(self.written(Seq(sync.written)))
    }

    fn written(&self, seq: Seq) -> Written {
        Written {
            journal: self.clone(),
            seq,
        }
    }

    /// [`write`](Journal::write), then [`durable`](Written::durable): for
    /// callers to which the order across batches does not matter (it is the
    /// order in which the futures are first polled).
    ///
    /// Answers in `io::Result`, as it did before [`Error`] existed, for the
    /// callers not yet moved to `write` (the headnode's driver, the client):
    /// the error's text and kind are kept.
    pub async fn append(&self, records: &[u8]) -> io::Result<()> {
        self.write(records)?.durable().await?;
        Ok(())
    }

    /// Makes every batch written so far durable.
    pub async fn sync(&self) -> Result<(), Error> {
        self.inner.check()?;
        let seq = self.inner.lock_sync().written;
        self.sync_through(Seq(seq)).await
    }

    /// Waits until batch `seq` and every one before it are on disk, in any
    /// durability mode, leading a sync if none is running. Concurrent
    /// callers share syncs (group commit).
    ///
    /// `seq` must come from this journal's [`write`](Journal::write):
    /// another's is refused as [`Error::UnknownSeq`] if this one has not
    /// written that many batches.
    pub async fn sync_through(&self, seq: Seq) -> Result<(), Error> {
        loop {
            let notified = self.inner.synced.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let target = {
                let mut sync = self.inner.lock_sync();
                if sync.synced >= seq.0 {
                    return Ok(());
                }
                // A leader's sync failed: this batch is not on disk.
                self.inner.check()?;
                if seq.0 > sync.written {
                    return Err(Error::UnknownSeq {
                        path: self.inner.path.clone(),
                        seq,
                        written: sync.written,
                    });
                }
                if sync.syncing {
                    None
                } else {
                    sync.syncing = true;
                    Some(sync.written)
                }
            };
            match target {
                Some(target) => return self.inner.run_sync(target).await,
                None => notified.await,
            }
        }
    }
}

impl Inner {
    fn lock_sync(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.sync.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_sync_file(&self) -> std::sync::MutexGuard<'_, Arc<File>> {
        self.sync_file.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err` once the journal has failed for good.
    fn check(&self) -> Result<(), Error> {
        match self.failed.get() {
            None => Ok(()),
            Some(reason) => Err(Error::Failed {
                path: self.path.clone(),
                reason: reason.clone(),
            }),
        }
    }

    /// Marks the journal failed for good.
    fn fail(&self, reason: String) {
        tracing::error!(path = %self.path.display(), %reason, "log file failed; refusing further writes");
        let _ = self.failed.set(reason);
    }

    /// Syncs the file, covering every batch numbered up to `target`.
    /// Called by the one task that set `syncing`.
    async fn run_sync(&self, target: u64) -> Result<(), Error> {
        // Taken after `target` was: every batch up to it is in this file,
        // or in one rotated away, which was synced before it was left.
        let file = Arc::clone(&self.lock_sync_file());
        #[cfg(test)]
        let fail = self
            .fail_next_sync
            .swap(false, std::sync::atomic::Ordering::SeqCst);
        #[cfg(not(test))]
        let fail = false;
        let result = match tokio::task::spawn_blocking(move || {
            if fail {
                return Err(io::Error::other("injected sync failure"));
            }
            file.sync_data()
        })
        .await
        {
            Ok(result) => result,
            Err(join) => Err(io::Error::other(join)),
        };
        {
            let mut sync = self.lock_sync();
            sync.syncing = false;
            match &result {
                Ok(()) => sync.synced = sync.synced.max(target),
                // Before waking anyone, so that no waiter elects itself
                // leader and "succeeds" on pages the kernel marked clean.
                Err(err) => self.fail(format!("fsync failed: {err}")),
            }
        }
        // Wake everyone: those covered return, the others elect a new leader.
        self.synced.notify_waiters();
        result.map_err(|source| Error::Sync {
            path: self.path.clone(),
            source,
        })
    }
}

/// The flusher of [`Durability::Interval`].
async fn flush_periodically(inner: Weak<Inner>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let journal = Journal { inner };
        if let Err(err) = journal.sync().await {
            tracing::error!(path = %journal.path().display(), %err, "periodic sync failed");
        }
    }
}

#[cfg(test)]
mod tests;

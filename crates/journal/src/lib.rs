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
//! # Writing
//!
//! A [`Journal`] owns one file opened with `O_APPEND`. [`Journal::append`]
//! writes a whole batch of records with a single `write(2)` under a lock, so
//! records from concurrent writers never interleave inside a line, and a
//! batch that pipelined requests produced costs one system call. When
//! `append` returns, the bytes are in the file (the kernel's page cache):
//! other processes see them and a crash of this process cannot lose them.
//!
//! # Durability
//!
//! What reaches the disk, and when, is the [`Durability`] mode:
//!
//! - `never`: the kernel writes the page cache back when it likes (about 30 s
//!   on Linux). A process crash loses nothing confirmed; a power loss or
//!   kernel crash can lose what was confirmed in the last ~30 s.
//! - `always`: `append` returns only after `fdatasync(2)` covered the batch.
//!   Nothing confirmed is lost, even on power loss. Appends that arrive while
//!   a sync is running wait for the next one, which then covers all of them
//!   at once (group commit): throughput grows with concurrency instead of
//!   being one disk flush per message.
//! - an interval such as `1s`: a background task syncs at least that often
//!   while there are unsynced writes. A process crash loses nothing; a power
//!   loss can lose what was confirmed in the last interval.
//!
//! With `always` or an interval, opening a file also syncs it and the
//! folders on its path that it had to create, so that a new file cannot
//! vanish on power loss together with the records synced into it.
//!
//! # Failures
//!
//! A failed write is cut off at once (see [`Journal::append`]). A failed
//! sync is different: Linux reports a write-back error once and may then
//! mark the pages clean, so a later sync that succeeds proves nothing about
//! the records before it. After a failed sync, or a failed write that could
//! not be cut off, the journal therefore refuses every later append and
//! sync: the node answers `ERR STORAGE` rather than confirm what may not be
//! on disk, and an operator must look at the disk. What was confirmed
//! before the failure stays confirmed; with an interval, records confirmed
//! since the previous sync may be lost on a power loss, as that mode allows.
//!
//! # Recovery
//!
//! Opening a file whose last line is incomplete (a torn write: power loss,
//! full disk) cuts that partial line off, so the next record starts on a line
//! of its own. The cut record was never confirmed: confirmation follows a
//! complete write.

mod durability;
mod record;

pub use durability::{parse_duration, Durability};
pub use record::{parse_record, timestamp, Record};

use std::{
    fs::{File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock, Weak},
    time::Duration,
};

use tokio::sync::Notify;

/// An append-only log file. Cheap to clone; clones share the file.
#[derive(Clone, Debug)]
pub struct Journal {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    durability: Durability,
    file: Mutex<Appender>,
    /// A second handle on the same file, so that a sync does not hold the
    /// write lock: appends go on while the disk flushes.
    sync_file: Arc<File>,
    sync: Mutex<SyncState>,
    synced: Notify,
    /// Set, once and for good, by a failure after which the file can no
    /// longer be trusted (see "Failures" above): why.
    failed: OnceLock<String>,
    /// Tests make the next sync fail, as a disk would.
    #[cfg(test)]
    fail_next_sync: std::sync::atomic::AtomicBool,
}

/// The write end of the file and its length, known without a system call.
#[derive(Debug)]
struct Appender {
    file: File,
    /// Length of the file after the last complete append.
    len: u64,
}

impl Appender {
    /// Writes `records` whole, or puts the file back as it was.
    ///
    /// A failed `write_all` (disk full, quota) may leave part of the batch
    /// in the file; cutting it off at once keeps the next record on a line
    /// of its own and keeps unconfirmed text out of the log.
    /// `Err` carries the write's error, and whether the file could be put
    /// back (`false`: it may end in a partial batch).
    fn append(&mut self, records: &[u8]) -> Result<(), (io::Error, bool)> {
        match self.file.write_all(records) {
            Ok(()) => {
                self.len += records.len() as u64;
                Ok(())
            }
            Err(err) => Err((err, self.rollback())),
        }
    }

    /// Cuts the file back to its last complete append; `false` if it could
    /// not.
    fn rollback(&mut self) -> bool {
        match self.file.set_len(self.len) {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(%err, "could not cut a partly written batch");
                false
            }
        }
    }
}

#[derive(Debug, Default)]
struct SyncState {
    /// Number of appends written so far; an append's sequence number.
    written: u64,
    /// Every append up to this sequence number is on disk.
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
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> io::Result<Journal> {
        let path = path.as_ref().to_path_buf();
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // The folders whose entries change: the file's own, and each one
        // created on the way to it, up to the first that existed.
        let mut changed = vec![dir.clone()];
        let mut ancestor = dir.as_path();
        while !ancestor.exists() {
            let parent = match ancestor.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                Some(_) => Path::new("."),
                None => break,
            };
            changed.push(parent.to_path_buf());
            ancestor = parent;
        }
        std::fs::create_dir_all(&dir)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        if let Some(cut) = cut_torn_tail(&mut file)? {
            tracing::warn!(path = %path.display(), bytes = cut, "cut an incomplete last line");
        }
        if durability != Durability::Never {
            // What an earlier run left in the page cache, the cut above, and
            // the entries that make the file findable after a power loss.
            file.sync_all()?;
            for dir in &changed {
                match sync_dir(dir) {
                    Ok(()) => {}
                    // Some file systems (certain FUSE and network mounts)
                    // cannot sync a folder: not a reason to refuse to run.
                    Err(err)
                        if matches!(
                            err.kind(),
                            io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
                        ) =>
                    {
                        tracing::warn!(dir = %dir.display(), %err,
                            "cannot sync this folder: a new file in it may not survive a power loss");
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        let len = file.seek(SeekFrom::End(0))?;
        let sync_file = Arc::new(file.try_clone()?);
        let inner = Arc::new(Inner {
            path,
            durability,
            file: Mutex::new(Appender { file, len }),
            sync_file,
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

    /// Appends `records` (whole lines, each ending in `\n`) with one write,
    /// then waits as the durability mode requires.
    ///
    /// On error nothing of the batch may be confirmed. A failed write is
    /// cut off the file; after a failed sync every later call fails too
    /// (see "Failures" above).
    pub async fn append(&self, records: &[u8]) -> io::Result<()> {
        self.inner.check()?;
        if records.is_empty() {
            return Ok(());
        }
        debug_assert!(records.ends_with(b"\n"), "records must be whole lines");
        let seq = self.write(records)?;
        if self.inner.durability == Durability::Always {
            self.sync_through(seq).await?;
        }
        Ok(())
    }

    /// Writes without waiting for the disk, whatever the mode. Returns the
    /// append's sequence number.
    fn write(&self, records: &[u8]) -> io::Result<u64> {
        // A write of a few kilobytes to the page cache takes about a
        // microsecond: cheaper than handing it to a blocking thread.
        let mut file = self.inner.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err((err, cut_off)) = file.append(records) {
            if !cut_off {
                self.inner
                    .fail(format!("a failed write could not be cut off: {err}"));
            }
            return Err(err);
        }
        // Numbered under the file lock, so sequence order is file order.
        let mut sync = self.inner.sync.lock().unwrap_or_else(|e| e.into_inner());
        sync.written += 1;
        Ok(sync.written)
    }

    /// Makes every append made so far durable.
    pub async fn sync(&self) -> io::Result<()> {
        self.inner.check()?;
        let seq = self.inner.lock_sync().written;
        self.sync_through(seq).await
    }

    /// Waits until append `seq` is on disk, leading a sync if none is running.
    async fn sync_through(&self, seq: u64) -> io::Result<()> {
        loop {
            let notified = self.inner.synced.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let target = {
                let mut sync = self.inner.lock_sync();
                if sync.synced >= seq {
                    return Ok(());
                }
                // A leader's sync failed: this append is not on disk.
                self.inner.check()?;
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

    /// `Err` once the journal has failed for good.
    fn check(&self) -> io::Result<()> {
        match self.failed.get() {
            None => Ok(()),
            Some(reason) => Err(io::Error::other(format!(
                "{} takes no more writes after an earlier failure ({reason}); \
                 check the disk and restart",
                self.path.display()
            ))),
        }
    }

    /// Marks the journal failed for good.
    fn fail(&self, reason: String) {
        tracing::error!(path = %self.path.display(), %reason, "log file failed; refusing further writes");
        let _ = self.failed.set(reason);
    }

    /// Syncs the file, covering every append numbered up to `target`.
    /// Called by the one task that set `syncing`.
    async fn run_sync(&self, target: u64) -> io::Result<()> {
        let file = Arc::clone(&self.sync_file);
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
        result
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

/// Syncs a folder, so that the entries created in it survive a power loss.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Folders cannot be opened for syncing there; NTFS journals them.
        let _ = dir;
        Ok(())
    }
}

/// Truncates `file` after its last newline. Returns how many bytes were cut.
fn cut_torn_tail(file: &mut File) -> io::Result<Option<u64>> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(None);
    }
    // Look back in chunks for the last newline.
    let mut end = len;
    let mut chunk = vec![0u8; 4096];
    loop {
        let start = end.saturating_sub(chunk.len() as u64);
        let buf = &mut chunk[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(buf)?;
        if let Some(at) = buf.iter().rposition(|&b| b == b'\n') {
            let keep = start + at as u64 + 1;
            return truncate_to(file, len, keep);
        }
        if start == 0 {
            return truncate_to(file, len, 0);
        }
        end = start;
    }
}

fn truncate_to(file: &mut File, len: u64, keep: u64) -> io::Result<Option<u64>> {
    if keep == len {
        return Ok(None);
    }
    file.set_len(keep)?;
    Ok(Some(len - keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(journal: &Journal) -> String {
        std::fs::read_to_string(journal.path()).unwrap()
    }

    #[tokio::test]
    async fn appends_whole_lines_and_creates_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path().join("a/b/log.txt"), Durability::Never).unwrap();
        journal.append(b"one\n").await.unwrap();
        journal.append(b"two\nthree\n").await.unwrap();
        assert_eq!(read(&journal), "one\ntwo\nthree\n");
    }

    #[tokio::test]
    async fn reopening_appends_after_existing_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.txt");
        Journal::open(&path, Durability::Never)
            .unwrap()
            .append(b"first\n")
            .await
            .unwrap();
        Journal::open(&path, Durability::Never)
            .unwrap()
            .append(b"second\n")
            .await
            .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\nsecond\n");
    }

    #[tokio::test]
    async fn a_torn_last_line_is_cut_at_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.txt");
        let whole = "2019-10-05 02:50:15 -> Hola\n2019-10-05 02:50:15 -> Adiós\n";
        for cut in 0..=whole.len() {
            std::fs::write(&path, &whole.as_bytes()[..cut]).unwrap();
            let journal = Journal::open(&path, Durability::Never).unwrap();
            journal.append(b"next\n").await.unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            let kept = whole.as_bytes()[..cut]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |at| at + 1);
            assert_eq!(text, format!("{}next\n", &whole[..kept]), "cut at {cut}");
        }
    }

    #[tokio::test]
    async fn a_partly_written_batch_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path().join("log.txt"), Durability::Never).unwrap();
        journal.append(b"kept\n").await.unwrap();
        {
            // What a write that failed halfway leaves behind.
            let mut appender = journal.inner.file.lock().unwrap();
            appender.file.write_all(b"half of a ba").unwrap();
            assert!(appender.rollback());
        }
        journal.append(b"next\n").await.unwrap();
        assert_eq!(read(&journal), "kept\nnext\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_never_interleave_and_always_mode_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path().join("log.txt"), Durability::Always).unwrap();
        let mut tasks = Vec::new();
        for writer in 0..16 {
            let journal = journal.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..50 {
                    let line = format!("{writer}:{n}:{}\n", "x".repeat(writer * 10));
                    journal.append(line.as_bytes()).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let text = read(&journal);
        assert_eq!(text.lines().count(), 16 * 50);
        for line in text.lines() {
            let mut parts = line.split(':');
            let writer: usize = parts.next().unwrap().parse().unwrap();
            parts.next().unwrap();
            assert_eq!(parts.next().unwrap(), "x".repeat(writer * 10));
        }
        let sync = journal.inner.lock_sync();
        assert_eq!(
            sync.synced, sync.written,
            "every append was covered by a sync"
        );
        assert!(!sync.syncing);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_failed_sync_nothing_more_is_confirmed() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path().join("log.txt"), Durability::Always).unwrap();
        journal.append(b"synced\n").await.unwrap();
        journal
            .inner
            .fail_next_sync
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // A group of appends waiting on the failing sync: none succeeds,
        // neither the leader nor those that would lead the next sync.
        let tasks: Vec<_> = (0..8)
            .map(|n| {
                let journal = journal.clone();
                tokio::spawn(async move { journal.append(format!("{n}\n").as_bytes()).await })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().is_err());
        }
        let err = journal.append(b"later\n").await.unwrap_err();
        assert!(err.to_string().contains("earlier failure"), "{err}");
        assert!(journal.sync().await.is_err());
        // Nothing was written after the failure was known.
        assert!(!read(&journal).contains("later"));
    }

    #[tokio::test]
    async fn durable_modes_sync_the_new_file_and_its_new_folders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/folders/log.txt");
        let journal = Journal::open(&path, Durability::Always).unwrap();
        journal.append(b"x\n").await.unwrap();
        assert_eq!(read(&journal), "x\n");
        // A relative path without a folder syncs the current one.
        assert!(sync_dir(Path::new(".")).is_ok());
    }

    #[tokio::test]
    async fn interval_mode_syncs_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(
            dir.path().join("log.txt"),
            Durability::Interval(Duration::from_millis(10)),
        )
        .unwrap();
        journal.append(b"x\n").await.unwrap();
        for _ in 0..500 {
            if journal.inner.lock_sync().synced == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the flusher never synced");
    }
}

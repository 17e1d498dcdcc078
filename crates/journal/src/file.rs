//! The file under a journal: opening it under its lock (cutting a torn last
//! line, making a new file findable after a power loss), appending a batch
//! whole or not at all, and following the path when the file is rotated.
//! Plain `std::io`; [`crate::Journal`] turns the errors into its own,
//! naming the file.

use std::{
    fs::{File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{lock::WriterLock, Durability, Error};

/// A journal's file, open for appending.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) file: File,
    pub(crate) len: u64,
    /// `None` for what is not a regular file (`/dev/full` in tests), which
    /// has no torn lines to repair either.
    pub(crate) lock: Option<WriterLock>,
}

/// Opens (creating it and its folders if needed) the file at `path` for
/// appending, under its [`WriterLock`]; cuts an incomplete last line off;
/// with a durable mode syncs the file and the folders whose entries
/// changed.
pub(crate) fn open(path: &Path, durability: Durability) -> Result<Opened, Error> {
    let io_error = |source| Error::Open {
        path: path.to_path_buf(),
        source,
    };
    let dir = parent(path);
    if std::fs::metadata(&dir).is_ok_and(|meta| !meta.is_dir()) {
        // create_dir_all would say only "File exists".
        return Err(io_error(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is a file, not a folder", dir.display()),
        )));
    }
    let changed = folders_to_create(&dir);
    std::fs::create_dir_all(&dir).map_err(io_error)?;
    let special = std::fs::metadata(path).is_ok_and(|meta| !meta.is_file());
    // Before the file is touched: the repair below must not cut another
    // writer's line short.
    let lock = if special {
        None
    } else {
        Some(WriterLock::acquire(path)?)
    };
    let (file, len) = open_locked(path, durability, &changed).map_err(io_error)?;
    Ok(Opened { file, len, lock })
}

/// The folders whose entries change when `dir` is created: `dir`, and each
/// one created on the way to it, up to the first that exists.
fn folders_to_create(dir: &Path) -> Vec<PathBuf> {
    let mut changed = vec![dir.to_path_buf()];
    let mut ancestor = dir;
    while !ancestor.exists() {
        let parent = match ancestor.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            Some(_) => Path::new("."),
            None => break,
        };
        changed.push(parent.to_path_buf());
        ancestor = parent;
    }
    changed
}

fn open_locked(
    path: &Path,
    durability: Durability,
    changed: &[PathBuf],
) -> io::Result<(File, u64)> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)?;
    if let Some(cut) = cut_torn_tail(&mut file)? {
        tracing::warn!(path = %path.display(), bytes = cut, "cut an incomplete last line");
    }
    if durability != Durability::Never {
        // What an earlier run left in the page cache, the cut above, and
        // the entries that make the file findable after a power loss.
        file.sync_all()?;
        for dir in changed {
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
    Ok((file, len))
}

/// How often a journal checks that its path still names the file it
/// writes (see [`Appender::follow`]): a `stat(2)` per batch would cost
/// about as much as the write itself, and a rotation needs no quicker
/// answer than this.
pub(crate) const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

/// The write end of a journal's file, and what it knows of the file.
#[derive(Debug)]
pub(crate) struct Appender {
    pub(crate) file: File,
    path: PathBuf,
    durability: Durability,
    /// The file's identity when opened, to notice that the path now names
    /// another file (or none).
    identity: Option<Identity>,
    /// Where this journal believes the file ends: only to notice (and log)
    /// a truncation; never used to cut or to position a write, which
    /// `O_APPEND` puts at the real end.
    end: u64,
    /// When [`Appender::follow`] next looks at the path.
    next_follow: Instant,
    /// [`FOLLOW_INTERVAL`], but for tests.
    follow_every: Duration,
}

/// Device and inode: what makes a file the same file.
type Identity = (u64, u64);

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> Option<Identity> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> Option<Identity> {
    None
}

impl Appender {
    /// The appender of `file`, just opened at `path`, `len` bytes long.
    pub(crate) fn new(file: File, path: &Path, durability: Durability, len: u64) -> Appender {
        Appender {
            identity: file.metadata().ok().as_ref().and_then(identity),
            file,
            path: path.to_path_buf(),
            durability,
            end: len,
            next_follow: Instant::now() + FOLLOW_INTERVAL,
            follow_every: FOLLOW_INTERVAL,
        }
    }

    /// Makes [`Appender::follow`] look at the path `every` from now on,
    /// the first time after `every`.
    #[cfg(test)]
    pub(crate) fn follow_every(&mut self, every: Duration) {
        self.follow_every = every;
        self.next_follow = Instant::now() + every;
    }

    /// Writes `records` whole, or takes back what of them reached the file.
    ///
    /// A failed write (disk full, quota) may leave part of the batch in the
    /// file; cutting it off at once keeps the next record on a line of its
    /// own and keeps unconfirmed text out of the log. `Err` carries the
    /// write's error, and whether the file is as it was (`false`: it may
    /// end in a partial batch).
    pub(crate) fn append(&mut self, records: &[u8]) -> Result<(), (io::Error, bool)> {
        // write_all, but counting what went out: a short write (the disk
        // filled) is followed by the write that fails.
        let mut wrote = 0;
        while wrote < records.len() {
            match self.file.write(&records[wrote..]) {
                Ok(0) => {
                    let err = io::Error::from(io::ErrorKind::WriteZero);
                    return Err((err, self.take_back(&records[..wrote])));
                }
                Ok(n) => wrote += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err((err, self.take_back(&records[..wrote]))),
            }
        }
        self.end += records.len() as u64;
        Ok(())
    }

    /// Cuts `ours`, the part of a failed batch that reached the file, off
    /// its end; `false` if it could not be done safely.
    ///
    /// Only bytes this journal wrote are ever cut: the file must end with
    /// exactly `ours` (with `O_APPEND` that is where they went), read back
    /// to check, and the file only ever gets shorter. A file that was
    /// truncated or rotated meanwhile (logrotate's `copytruncate`) is left
    /// as it is, rather than cut back to a length it no longer has, which
    /// would pad it with NUL bytes. The one window left is another process
    /// truncating the file between the check and the cut (ftruncate has no
    /// compare-and-set), microseconds after a failed write.
    pub(crate) fn take_back(&mut self, ours: &[u8]) -> bool {
        if ours.is_empty() {
            return true;
        }
        let taken = (|| -> io::Result<bool> {
            let len = self.file.metadata()?.len();
            let Some(keep) = len.checked_sub(ours.len() as u64) else {
                return Ok(false);
            };
            let mut tail = vec![0; ours.len()];
            (&self.file).seek(SeekFrom::Start(keep))?;
            (&self.file).read_exact(&mut tail)?;
            if tail != ours {
                return Ok(false);
            }
            self.file.set_len(keep)?;
            self.end = keep;
            Ok(true)
        })();
        match taken {
            Ok(true) => true,
            Ok(false) => {
                tracing::error!(path = %self.path.display(), bytes = ours.len(),
                    "a partly written batch is no longer at the end of the file; left as it is");
                false
            }
            Err(err) => {
                tracing::error!(path = %self.path.display(), %err,
                    "could not cut a partly written batch");
                false
            }
        }
    }

    /// Notices a rotation, at most once per `follow_every`: if the path
    /// now names another file (logrotate's `create`: renamed away, a new
    /// one made) or none (renamed or removed), writes go on in the file at
    /// the path, created if need be; returns the new file, for syncing.
    /// A truncation (`copytruncate`) needs nothing: `O_APPEND` writes at
    /// the new end; it is only logged.
    ///
    /// With a durable mode the old file is synced first, so that what was
    /// confirmed in it stays confirmed; `Err` is that sync's failure, after
    /// which nothing more may be confirmed. A path that cannot be opened is
    /// logged and tried again later; meanwhile the old file takes the writes.
    pub(crate) fn follow(&mut self) -> io::Result<Option<File>> {
        let now = Instant::now();
        if now < self.next_follow || self.identity.is_none() {
            return Ok(None);
        }
        self.next_follow = now + self.follow_every;
        match std::fs::metadata(&self.path) {
            Ok(meta) if identity(&meta) == self.identity => {
                if meta.len() < self.end {
                    tracing::info!(path = %self.path.display(), was = self.end, now = meta.len(),
                        "the log file was truncated (rotated by copying?); appending at its new end");
                }
                self.end = meta.len();
                return Ok(None);
            }
            Ok(_) => tracing::info!(path = %self.path.display(),
                "the log file was replaced (rotated); writing to the new one"),
            Err(err) if err.kind() == io::ErrorKind::NotFound => tracing::info!(
                path = %self.path.display(),
                "the log file was renamed or removed (rotated); starting a new one"),
            Err(err) => {
                tracing::warn!(path = %self.path.display(), %err, "cannot check the log file");
                return Ok(None);
            }
        }
        if self.durability != Durability::Never {
            self.file.sync_data()?;
        }
        let opened = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.path)
            .and_then(|file| Ok((file.metadata()?, file)));
        let (meta, file) = match opened {
            Ok(opened) => opened,
            Err(err) => {
                tracing::warn!(path = %self.path.display(), %err,
                    "cannot open the new log file; writing to the old one meanwhile");
                return Ok(None);
            }
        };
        if self.durability != Durability::Never {
            if let Err(err) = sync_dir(&parent(&self.path)) {
                tracing::warn!(path = %self.path.display(), %err,
                    "cannot sync the folder of the new log file");
            }
        }
        let sync = file.try_clone()?;
        self.identity = identity(&meta);
        self.end = meta.len();
        self.file = file;
        Ok(Some(sync))
    }
}

/// The folder of `path` (`.` for a bare file name).
pub(crate) fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Syncs a folder, so that the entries created in it survive a power loss.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
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

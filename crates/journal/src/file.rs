//! The file under a journal: opening it (cutting a torn last line, making
//! a new file findable after a power loss) and appending a batch whole or
//! not at all. Plain `std::io`; [`crate::Journal`] turns the errors into
//! its own, naming the file.

use std::{
    fs::{File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use crate::Durability;

/// Opens (creating it and its folders if needed) the file at `path` for
/// appending, cuts an incomplete last line off, and with a durable mode
/// syncs the file and the folders whose entries changed. Returns the file
/// and its length.
pub(crate) fn open(path: &Path, durability: Durability) -> io::Result<(File, u64)> {
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
        .open(path)?;
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
    Ok((file, len))
}

/// The write end of the file and its length, known without a system call.
#[derive(Debug)]
pub(crate) struct Appender {
    pub(crate) file: File,
    /// Length of the file after the last complete append.
    pub(crate) len: u64,
}

impl Appender {
    /// Writes `records` whole, or puts the file back as it was.
    ///
    /// A failed `write_all` (disk full, quota) may leave part of the batch
    /// in the file; cutting it off at once keeps the next record on a line
    /// of its own and keeps unconfirmed text out of the log.
    /// `Err` carries the write's error, and whether the file could be put
    /// back (`false`: it may end in a partial batch).
    pub(crate) fn append(&mut self, records: &[u8]) -> Result<(), (io::Error, bool)> {
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
    pub(crate) fn rollback(&mut self) -> bool {
        match self.file.set_len(self.len) {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(%err, "could not cut a partly written batch");
                false
            }
        }
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

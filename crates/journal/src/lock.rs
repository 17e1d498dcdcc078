//! One writer per file: the lock a [`crate::Journal`] holds for its life.
//!
//! Two processes appending to one file lose each other's lines: each knows
//! only what it wrote itself, so repairing after a failed write, or cutting
//! a torn last line on open, could cut the other's records (issue 11: two
//! datanodes given one `--dir`). So a journal takes an exclusive lock
//! before it touches its file, and a second process that asks for the same
//! file is refused with [`Error::Locked`](crate::Error::Locked), naming the
//! file and, when it can, the holder's pid.
//!
//! The lock is `flock(2)` (std's [`File::try_lock`]) on a file of its own
//! beside the log, `.<name>.lock` (`.log.txt.lock` for `log.txt`), rather
//! than on the log itself: rotating the log (renaming it away, see
//! [`crate::file`]) must not move the lock with it. The kernel releases an
//! `flock` when its holder dies, even by `kill -9`, so a lock file left
//! behind never keeps a node from starting. The holder writes its pid into
//! the file, for the refusal's message only; the pid is never trusted for
//! anything else.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read, Write},
    path::{Path, PathBuf},
};

use crate::Error;

/// An exclusive lock on a journal's file, held until dropped.
#[derive(Debug)]
pub(crate) struct WriterLock {
    /// Kept open: closing it releases the lock.
    _file: File,
}

/// The lock file of the log at `path`: `.<name>.lock` in the same folder.
pub(crate) fn lock_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.lock"))
}

impl WriterLock {
    /// Takes the lock of the log at `path` (whose folder must exist), or
    /// says who holds it. Never waits.
    pub(crate) fn acquire(path: &Path) -> Result<WriterLock, Error> {
        let lock = lock_path(path);
        let open_error = |source| Error::Open {
            path: lock.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(open_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                    holder: read_pid(&mut file),
                    lock,
                })
            }
            Err(TryLockError::Error(source)) => return Err(open_error(source)),
        }
        // Ours now: record who we are for the next one refused.
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.write_all(pid.as_bytes()))
            .map_err(open_error)?;
        Ok(WriterLock { _file: file })
    }
}

/// The pid a holder wrote into its lock file, if it has yet.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_sits_beside_the_log() {
        assert_eq!(
            lock_path(Path::new("/logs/server/log.txt")),
            Path::new("/logs/server/.log.txt.lock")
        );
        assert_eq!(
            lock_path(Path::new("data.txt")),
            Path::new(".data.txt.lock")
        );
    }

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.txt");
        let first = WriterLock::acquire(&path).unwrap();
        // A second open file description, as another process would have.
        let err = WriterLock::acquire(&path).unwrap_err();
        match &err {
            Error::Locked { holder, lock, .. } => {
                assert_eq!(*holder, Some(std::process::id()));
                assert_eq!(lock, &lock_path(&path));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(err.fault(), crate::Fault::Caller);
        drop(first);
        WriterLock::acquire(&path).expect("free once the holder is gone");
    }
}

//! Running as the owner of the folder a node writes in.
//!
//! Under Docker a node writes into a host folder mounted at `/logs`. Files
//! it creates belong to the user it runs as, and the person who ran
//! `docker compose up` must be able to read and delete them without sudo.
//! Compose cannot know that person's uid (`$UID` is a shell variable, not
//! in the environment), but the folders can: the repository holds the log
//! folders, so on a fresh clone they belong to whoever cloned it.
//!
//! So a node given `--run-as-owner` that starts as root switches, before it
//! opens any file and before any thread exists, to the user and group that
//! own its folder (`setgroups([])`, `setgid`, `setuid`, in that order, so
//! that no root privilege is left). It needs `CAP_SETUID` and `CAP_SETGID`,
//! the only capabilities the compose files give; every capability goes
//! with the switch. A folder owned by root (created by the Docker daemon
//! because it did not exist) or missing keeps the node as root, and the
//! node says so, with the remedy. Not root (a `user:` in the compose file,
//! `cargo run`): nothing changes.

use std::{
    io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use nix::unistd::{self, Gid, Uid};

/// What [`run_as_owner_of`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Not running as root: the process stays who it is.
    NotRoot,
    /// The folder belongs to root, or does not exist yet: still root.
    StayedRoot,
    /// Now running as the folder's owner.
    Switched {
        /// The folder's user id.
        uid: u32,
        /// The folder's group id.
        gid: u32,
    },
}

/// Switches to the owner of `dir` if running as root (see the module docs).
///
/// Call it before any thread starts: `setuid` changes every thread, but
/// only the ones that exist when it runs are certain to see it.
pub fn run_as_owner_of(dir: &Path) -> io::Result<Owner> {
    if !unistd::geteuid().is_root() {
        return Ok(Owner::NotRoot);
    }
    let metadata = match std::fs::metadata(dir) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Owner::StayedRoot),
        Err(err) => return Err(err),
    };
    let (uid, gid) = (metadata.uid(), metadata.gid());
    if uid == 0 {
        return Ok(Owner::StayedRoot);
    }
    let switch = || -> nix::Result<()> {
        unistd::setgroups(&[])?;
        unistd::setgid(Gid::from_raw(gid))?;
        unistd::setuid(Uid::from_raw(uid))
    };
    switch().map_err(|errno| {
        io::Error::new(
            io::Error::from(errno).kind(),
            format!(
                "cannot switch to uid {uid} gid {gid}, the owner of {}: {errno}; give the \
                 container the SETUID and SETGID capabilities (the compose files do), or run \
                 it as that user (TAREA1_UID and TAREA1_GID in the compose files)",
                dir.display()
            ),
        )
    })?;
    Ok(Owner::Switched { uid, gid })
}

/// What a binary's `--run-as-owner` did, to log once tracing is set up.
#[derive(Debug)]
pub struct Adoption {
    dir: PathBuf,
    outcome: Option<io::Result<Owner>>,
}

/// [`run_as_owner_of`] `dir` if `enabled` (the binary's `--run-as-owner`);
/// call it first thing in `main`, then [`Adoption::log`] once logging is on.
pub fn adopt(enabled: bool, dir: &Path) -> Adoption {
    Adoption {
        dir: dir.to_owned(),
        outcome: enabled.then(|| run_as_owner_of(dir)),
    }
}

impl Adoption {
    /// Says what happened: the switch, or why the node is still root.
    pub fn log(&self) {
        let dir = self.dir.display();
        match &self.outcome {
            None | Some(Ok(Owner::NotRoot)) => {}
            Some(Ok(Owner::Switched { uid, gid })) => {
                tracing::info!(%dir, uid, gid, "running as the owner of the folder");
            }
            Some(Ok(Owner::StayedRoot)) => tracing::warn!(
                %dir,
                "the folder belongs to root (or does not exist yet), so its files will too; to \
                 own them, create the host folder yourself before starting the container"
            ),
            Some(Err(err)) => tracing::warn!(%dir, %err, "staying root"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one case every machine can check without changing who the
    /// test runs as: switching happens only for root, to a non-root owner.
    #[test]
    fn a_folder_owned_by_root_or_missing_keeps_the_process_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("not-there");
        let expected = if unistd::geteuid().is_root() {
            Owner::StayedRoot
        } else {
            Owner::NotRoot
        };
        assert_eq!(run_as_owner_of(&missing).unwrap(), expected);
        if unistd::geteuid().is_root() {
            // A temporary folder made by root belongs to root.
            assert_eq!(run_as_owner_of(dir.path()).unwrap(), Owner::StayedRoot);
        }
    }
}

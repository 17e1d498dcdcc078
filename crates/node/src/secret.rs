//! The cluster secret's file: `--cluster-secret-file` on the headnode and
//! every datanode.
//!
//! The secret is the file's content, less one line ending at its end (so
//! that `echo` and editors can write it). The rules, each refused at start-up
//! with an error that names the flag and the path and says what to do:
//!
//! - the file exists and is a regular file;
//! - no permission for "other" users (mode `0600` or `0640`, not `0644`):
//!   a secret every local user can read is no secret, and ssh refuses its
//!   keys for the same reason;
//! - at least [`MIN_SECRET_LEN`] (16) bytes, at most [`MAX_SECRET_LEN`]
//!   (4096): a secret is something no one can guess; a longer file is not
//!   a secret but a mistake (a wrong path).
//!
//! [`create`] writes a new one: 32 random bytes from the operating system,
//! as 64 hex digits and a line feed, mode `0600`. The Compose file runs it
//! once, before the cluster starts (see docs/DOCKER.md).

use std::{
    io::{self, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

pub use protocol::auth::{ClusterKey, MIN_SECRET_LEN};
use rand::RngCore;

use crate::Error;

/// Longest secret file accepted, in bytes.
pub const MAX_SECRET_LEN: u64 = 4096;

/// Reads the secret in `path`, given as `flag`, with the rules above.
pub fn load(flag: &'static str, path: &Path) -> Result<ClusterKey, Error> {
    let refuse = |reason: String| Error::Secret {
        flag,
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|err| {
        refuse(match err.kind() {
            io::ErrorKind::NotFound => "no such file: create it (`headnode \
                --create-cluster-secret PATH` writes a random one) or give the right path"
                .into(),
            _ => cannot_read(&err),
        })
    })?;
    if !meta.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(refuse(format!(
            "every user of this machine may read or change it (mode {mode:04o}): make it \
             private with `chmod 600` (it may stay readable by its group)"
        )));
    }
    if meta.len() > MAX_SECRET_LEN {
        return Err(refuse(format!(
            "{} bytes, more than the {MAX_SECRET_LEN} a secret may have: is it the right file?",
            meta.len()
        )));
    }
    let content = std::fs::read(path).map_err(|err| refuse(cannot_read(&err)))?;
    let secret = content
        .strip_suffix(b"\r\n")
        .or_else(|| content.strip_suffix(b"\n"))
        .unwrap_or(&content);
    if secret.is_empty() {
        return Err(refuse("empty: it must hold the cluster secret".into()));
    }
    ClusterKey::new(secret).ok_or_else(|| {
        refuse(format!(
            "{} bytes, fewer than the {MIN_SECRET_LEN} a secret needs: write a longer one \
             (`headnode --create-cluster-secret PATH` makes a random one)",
            secret.len()
        ))
    })
}

/// Why the file cannot be read, and for a permission what to do: the
/// file must be readable by this process's user (under Docker, root has no
/// `CAP_DAC_OVERRIDE`, and a node reads it as the owner of its folder).
fn cannot_read(err: &io::Error) -> String {
    if err.kind() == io::ErrorKind::PermissionDenied {
        format!(
            "cannot read it as uid {}: {err}; it must belong to the user this node runs as \
             (under Docker, the owner of its log folder)",
            nix::unistd::getuid()
        )
    } else {
        format!("cannot read it: {err}")
    }
}

/// Writes a new random secret to `path` (mode `0600`) unless a file is
/// there already; returns whether it wrote one.
pub fn create(path: &Path) -> io::Result<bool> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let mut text = protocol::auth::to_hex(&bytes);
    text.push('\n');
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match file {
        Ok(mut file) => {
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            Ok(true)
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, content: &[u8], mode: u32) -> std::path::PathBuf {
        let path = dir.join("secret");
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn refusal(path: &Path) -> String {
        let err = load("--cluster-secret-file", path).unwrap_err();
        assert_eq!(err.fault(), journal::Fault::Caller);
        let text = err.to_string();
        assert!(text.starts_with("--cluster-secret-file "), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        text
    }

    #[test]
    fn a_good_secret_loads_with_or_without_its_line_ending() {
        let dir = tempfile::tempdir().unwrap();
        let key = |content: &[u8]| {
            load("--cluster-secret-file", &write(dir.path(), content, 0o600)).unwrap()
        };
        let text = "HEARTBEAT 1 0000000000000001";
        let tag = key(b"0123456789abcdef").tag(text);
        assert!(key(b"0123456789abcdef\n").verify(text, &tag));
        assert!(key(b"0123456789abcdef\r\n").verify(text, &tag));
        assert!(!key(b"0123456789abcdef \n").verify(text, &tag));
        load(
            "--cluster-secret-file",
            &write(dir.path(), &[b'x'; 16], 0o640),
        )
        .unwrap();
    }

    #[test]
    fn each_bad_file_is_refused_naming_the_flag_the_path_and_the_remedy() {
        let dir = tempfile::tempdir().unwrap();
        assert!(refusal(&dir.path().join("missing")).contains("no such file"));
        assert!(refusal(dir.path()).contains("not a regular file"));
        assert!(refusal(&write(dir.path(), b"", 0o600)).contains("empty"));
        assert!(refusal(&write(dir.path(), b"\n", 0o600)).contains("empty"));
        assert!(
            refusal(&write(dir.path(), b"fifteen bytes!!", 0o600)).contains("fewer than the 16")
        );
        let open = refusal(&write(dir.path(), &[b'x'; 32], 0o644));
        assert!(
            open.contains("mode 0644") && open.contains("chmod 600"),
            "{open}"
        );
        assert!(refusal(&write(dir.path(), &[b'x'; 5000], 0o600)).contains("more than the 4096"));
    }

    #[test]
    fn a_created_secret_is_private_random_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster_secret");
        assert!(create(&path).unwrap());
        let first = std::fs::read_to_string(&path).unwrap();
        assert_eq!(first.len(), 65);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        load("--cluster-secret-file", &path).unwrap();
        assert!(!create(&path).unwrap(), "kept");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
        let other = dir.path().join("other");
        create(&other).unwrap();
        assert_ne!(std::fs::read_to_string(&other).unwrap(), first);
    }
}

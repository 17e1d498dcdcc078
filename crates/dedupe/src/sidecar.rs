//! The sidecar file: a node's [`Windows`] as lines beside
//! its log file, so that a restarted node still recognises what it stored.
//!
//! # Format
//!
//! One record per line, fields separated by one space:
//!
//! ```text
//! <kind> <client> <seq> <acked> [<node>]
//! S c0ffee 12 9 datanode2     the headnode sent c0ffee:12 to datanode2 (it may hold it)
//! C c0ffee 12 9 datanode2     datanode2 confirmed c0ffee:12 (the headnode's answer)
//! C c0ffee 12 9               stored here (server: in log.txt; datanode: in data.txt)
//! ```
//!
//! `<acked>` is the client's `acked` as the message carried it. Client ids
//! and node names hold no space (both are from `A-Z a-z 0-9 . _ -`), so a
//! line never needs escaping. A line that does not parse (one cut short by
//! a crash) is skipped.
//!
//! # Lifetime
//!
//! The node appends records as it goes, through a [`Journal`] (one
//! `write(2)` per batch, the node's `--fsync` mode, one writer per file).
//! When it starts, [`open`] reads the file, folds it into windows (a later
//! record of a message replaces an earlier one; a record at or below its
//! client's highest `acked` is dropped), and rewrites the file with only
//! what is left, one record per entry, before appending again: the file
//! holds what was appended since the node last started, and what it keeps
//! in memory afterwards is what any [`Windows`] keeps.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    time::Instant,
};

use journal::{Durability, Journal};
use protocol::{ClientId, Tag};

use crate::Windows;

/// What a record says of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `S`: sent to a datanode, not yet confirmed (the headnode's).
    Sent,
    /// `C`: stored (confirmed by the node named, or here).
    Stored,
}

/// What the sidecar keeps of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Sent or stored.
    pub kind: Kind,
    /// The node named, if any.
    pub node: Option<String>,
}

/// The sidecar's name for a log file: `<file>.ids` (`log.txt.ids`), so that
/// a rotation of `*.txt` leaves it alone.
pub fn path_for(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".ids");
    PathBuf::from(name)
}

/// Appends one record to `out`.
pub fn push(out: &mut Vec<u8>, kind: Kind, tag: &Tag, node: Option<&str>) {
    out.extend_from_slice(match kind {
        Kind::Sent => b"S ",
        Kind::Stored => b"C ",
    });
    out.extend_from_slice(tag.client.as_str().as_bytes());
    let mut digits = itoa::Buffer::new();
    out.push(b' ');
    out.extend_from_slice(digits.format(tag.seq).as_bytes());
    out.push(b' ');
    out.extend_from_slice(digits.format(tag.acked).as_bytes());
    if let Some(node) = node {
        out.push(b' ');
        out.extend_from_slice(node.as_bytes());
    }
    out.push(b'\n');
}

/// Parses one line; `None` if it is not a record.
pub fn parse(line: &str) -> Option<(Kind, Tag, Option<&str>)> {
    let mut fields = line.split(' ');
    let kind = match fields.next()? {
        "S" => Kind::Sent,
        "C" => Kind::Stored,
        _ => return None,
    };
    let client = ClientId::new(fields.next()?)?;
    let seq: u64 = fields.next()?.parse().ok()?;
    let acked: u64 = fields.next()?.parse().ok()?;
    let node = fields.next();
    if fields.next().is_some()
        || acked >= seq
        || node.is_some_and(|n| !protocol::command::is_valid_name(n))
    {
        return None;
    }
    Some((kind, Tag { client, seq, acked }, node))
}

/// Reads the sidecar at `path` (none yet is an empty one), rewrites it
/// compacted, and opens it for appending: the journal to append to and the
/// windows it held, with `now` as every client's last activity.
pub fn open(
    path: &Path,
    durability: Durability,
    now: Instant,
) -> Result<(Journal, Windows<Entry>), journal::Error> {
    let open_error = |source: io::Error| journal::Error::Open {
        path: path.to_owned(),
        source,
    };
    let mut windows = Windows::default();
    let mut kept = 0usize;
    match fs::read(path) {
        Ok(bytes) => {
            // Only whole lines: what follows the last line feed was cut
            // short, even if it reads as a record.
            let whole = bytes.len() - bytes.iter().rev().take_while(|&&b| b != b'\n').count();
            for line in String::from_utf8_lossy(&bytes[..whole]).lines() {
                let Some((kind, tag, node)) = parse(line) else {
                    continue;
                };
                windows.ack(&tag.client, tag.acked, now);
                let entry = Entry {
                    kind,
                    node: node.map(str::to_owned),
                };
                // A later record of a message replaces the earlier one.
                windows.remove(&tag.client, tag.seq);
                windows.insert(&tag.client, tag.seq, entry, now);
                kept += 1;
            }
            compact(path, &windows).map_err(open_error)?;
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(open_error(err)),
    }
    tracing::debug!(path = %path.display(), records = kept, entries = windows.entries(),
        clients = windows.clients(), "sidecar read");
    let journal = Journal::open(path, durability)?;
    Ok((journal, windows))
}

/// Rewrites the file at `path` with one record per entry of `windows`
/// (written aside, synced, then renamed over it).
fn compact(path: &Path, windows: &Windows<Entry>) -> io::Result<()> {
    let mut out = Vec::new();
    for (client, window) in windows.iter() {
        for (seq, entry) in window.entries() {
            let tag = Tag {
                client: client.clone(),
                seq,
                acked: window.floor().min(seq - 1),
            };
            push(&mut out, entry.kind, &tag, entry.node.as_deref());
        }
    }
    let aside = path.with_extension("ids.new");
    let mut file = fs::File::create(&aside)?;
    file.write_all(&out)?;
    file.sync_data()?;
    fs::rename(&aside, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(client: &str, seq: u64, acked: u64) -> Tag {
        Tag {
            client: ClientId::new(client).unwrap(),
            seq,
            acked,
        }
    }

    #[test]
    fn records_round_trip_and_junk_is_skipped() {
        let mut out = Vec::new();
        push(&mut out, Kind::Sent, &tag("c1", 12, 9), Some("dn2"));
        push(&mut out, Kind::Stored, &tag("c1", 12, 9), None);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "S c1 12 9 dn2\nC c1 12 9\n");
        let lines: Vec<_> = text.lines().map(parse).collect();
        assert_eq!(lines[0], Some((Kind::Sent, tag("c1", 12, 9), Some("dn2"))));
        assert_eq!(lines[1], Some((Kind::Stored, tag("c1", 12, 9), None)));
        for junk in [
            "",
            "X c1 1 0",
            "C c1 1",
            "C c1 1 1",
            "C c/1 2 0",
            "C c1 2 0 a b",
            "C c1 2 0 d/n",
        ] {
            assert_eq!(parse(junk), None, "{junk:?}");
        }
    }

    #[tokio::test]
    async fn a_restart_keeps_what_is_unacknowledged_and_compacts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("registro_server.txt"));
        assert!(path.ends_with("registro_server.txt.ids"));
        let now = Instant::now();
        let (journal, windows) = open(&path, Durability::Never, now).unwrap();
        assert_eq!(windows.entries(), 0);
        let mut out = Vec::new();
        for seq in 1..=10 {
            let tag = tag("c1", seq, seq.saturating_sub(3));
            push(&mut out, Kind::Sent, &tag, Some("dn1"));
            push(&mut out, Kind::Stored, &tag, Some("dn2"));
        }
        push(&mut out, Kind::Sent, &tag("c2", 1, 0), Some("dn3"));
        journal.append(&out).await.unwrap();
        drop(journal);
        // A line cut short by a crash.
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"C c2 1 0 dn")
            .unwrap();

        let (_journal, mut windows) = open(&path, Durability::Never, now).unwrap();
        // c1 acknowledged up to 7: 8, 9, 10 are kept, as confirmed by dn2.
        assert_eq!(windows.entries(), 4);
        let stored = Entry {
            kind: Kind::Stored,
            node: Some("dn2".into()),
        };
        let c1 = ClientId::new("c1").unwrap();
        for seq in 8..=10 {
            assert_eq!(windows.get_mut(&c1, seq), Some(&mut stored.clone()));
        }
        let c2 = ClientId::new("c2").unwrap();
        assert_eq!(windows.get_mut(&c2, 1).unwrap().kind, Kind::Sent);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4, "compacted: {text}");
        assert!(text.lines().all(|line| parse(line).is_some()));
    }
}

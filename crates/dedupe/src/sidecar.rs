//! The sidecar file: a node's [`Windows`] as lines beside
//! its log file, so that a restarted node still recognises what it stored.
//!
//! # Format
//!
//! One record per line, fields separated by one space:
//!
//! ```text
//! <kind> <client> <seqs> <acked> [<node>]
//! S c0ffee 12 9 datanode2       the headnode sent c0ffee:12 to datanode2 (it may hold it)
//! C c0ffee 12,15 9 datanode2    datanode2 confirmed c0ffee:12 and c0ffee:15 (the headnode's answer)
//! C c0ffee 10-25 9              c0ffee:10 to c0ffee:25 stored here (server: in log.txt; datanode: in data.txt)
//! ```
//!
//! `<seqs>` lists message numbers in increasing order, separated by
//! commas, a run of consecutive numbers written `<first>-<last>`. One record
//! holds what one batch (one `write(2)`) says of the messages of one client
//! with one kind and node (of all of them, or of those that came together:
//! see [`Records`]): a client's pipelined window is one short record instead
//! of a line per message, which keeps the sidecar a small fraction of its
//! log file (docs/PERFORMANCE.md, "Tagged messages beside plain"). `<acked>` is
//! the highest `acked` the batch's messages of that client carried. Client
//! ids and node names hold no space (both are from `A-Z a-z 0-9 . _ -`), so
//! a line never needs escaping. A line that does not parse (one cut short by
//! a crash) is skipped.
//!
//! # Lifetime
//!
//! The node appends records as it goes, through a [`Journal`] (one
//! `write(2)` per batch, the node's `--fsync` mode, one writer per file),
//! collected per batch in [`Records`]. When it starts, [`open`] reads the
//! file, folds it into windows (a later record of a message replaces an
//! earlier one; a message at or below its client's highest `acked` is
//! dropped), and rewrites the file with only what is left before appending
//! again: the file holds what was appended since the node last started,
//! and what it keeps in memory afterwards is what any [`Windows`] keeps.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use journal::{Durability, Journal};
use protocol::{id::decimal, ClientId, Tag};

use crate::Windows;

/// What a record says of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

/// What one batch says of its messages, written grouped: one record per
/// run of messages of one client, kind and node (see the module docs).
///
/// A message joins the group of the same client, kind and node among the
/// last eight groups started, compared by the addresses of the texts (a
/// few integers, without reading them), or starts a new one. A batch's
/// messages come one client at a time (a headnode's spread over a few
/// datanodes), so the groups are as long as with a look-up of every group
/// of the batch, without its hashing, which, with sorting before it, cost
/// more than the rest of the ledger (docs/PERFORMANCE.md, "Tagged messages
/// beside plain"). A client seen again after many others, or its id in
/// another allocation (the nodes share one per connection,
/// [`protocol::ClientIds`]), starts a second record in the same batch; the
/// fold reads them alike. The groups are written in the order they were
/// started, `S` before `C`, and their number lists are kept for the next
/// batch's groups.
#[derive(Debug, Default)]
pub struct Records {
    groups: Vec<Group>,
    /// The groups started last, by the addresses of their texts, and where
    /// in `groups` each is.
    recent: [(Shared, usize); RECENT_GROUPS],
    /// Where in `recent` the next group goes.
    next_recent: usize,
    /// Number lists of groups written, kept for the next pass's groups.
    spare: Vec<Vec<u64>>,
}

/// A group's key by the addresses of its texts: what [`Records`] compares
/// its recent groups by first, a few integers, without reading the texts.
/// Every address kept is of a text that a group of this batch holds, so
/// none is reused while it is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shared {
    kind: Kind,
    client: usize,
    node: usize,
}

impl Shared {
    fn of(kind: Kind, client: &ClientId, node: Option<&Arc<str>>) -> Shared {
        Shared {
            kind,
            client: client.addr(),
            node: node.map_or(0, |node| Arc::as_ptr(node).cast::<u8>() as usize),
        }
    }
}

impl Default for Shared {
    /// No group: no text is at address 0.
    fn default() -> Shared {
        Shared {
            kind: Kind::Sent,
            client: 0,
            node: 0,
        }
    }
}

#[derive(Debug)]
struct Group {
    kind: Kind,
    client: ClientId,
    node: Option<Arc<str>>,
    seqs: Vec<u64>,
    acked: u64,
}

impl Records {
    /// Adds what is known of message `tag` (on `node`, for the headnode).
    pub fn push(&mut self, kind: Kind, tag: &Tag, node: Option<&Arc<str>>) {
        let shared = Shared::of(kind, &tag.client, node);
        let at = match self.recent.iter().find(|(recent, _)| *recent == shared) {
            Some(&(_, at)) => at,
            None => self.add(kind, tag, node),
        };
        let group = &mut self.groups[at];
        group.seqs.push(tag.seq);
        group.acked = group.acked.max(tag.acked);
    }

    /// A new group for `tag`'s client, `kind` and `node`, made recent in
    /// place of the oldest.
    #[cold]
    fn add(&mut self, kind: Kind, tag: &Tag, node: Option<&Arc<str>>) -> usize {
        let at = self.groups.len();
        self.groups.push(Group {
            kind,
            client: tag.client.clone(),
            node: node.cloned(),
            seqs: self.spare.pop().unwrap_or_default(),
            acked: 0,
        });
        // By the group's own texts, which live as long as it: the message's
        // may be freed, and their addresses reused, before the next push.
        let group = &self.groups[at];
        self.recent[self.next_recent] = (Shared::of(kind, &group.client, group.node.as_ref()), at);
        self.next_recent = (self.next_recent + 1) % RECENT_GROUPS;
        at
    }

    /// Whether nothing was added since the last [`Records::write_to`].
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Appends the records to `out` as lines, and forgets them.
    ///
    /// Within one batch a message is named once per kind, and `S` lines come
    /// before `C` lines, so grouping changes nothing a later fold reads.
    pub fn write_to(&mut self, out: &mut Vec<u8>) {
        // In the order the groups were started, `S` before `C`.
        for kind in [Kind::Sent, Kind::Stored] {
            for group in self.groups.iter_mut().filter(|group| group.kind == kind) {
                group.seqs.sort_unstable();
                write_record(
                    out,
                    kind,
                    &group.client,
                    &group.seqs,
                    group.acked,
                    group.node.as_deref(),
                );
            }
        }
        for mut group in self.groups.drain(..) {
            if group.seqs.capacity() <= SPARE_SEQS_KEEP {
                group.seqs.clear();
                self.spare.push(group.seqs);
            }
        }
        self.spare.truncate(SPARE_LISTS_KEEP);
        self.recent = Default::default();
        self.next_recent = 0;
    }
}

/// Groups a message may join ([`Records`]): a client spread over a few
/// datanodes, for both kinds.
const RECENT_GROUPS: usize = 8;

/// A group's number list longer than this is not kept for reuse.
const SPARE_SEQS_KEEP: usize = 4096;
/// Number lists kept for reuse, at most.
const SPARE_LISTS_KEEP: usize = 1024;

/// Appends one record to `out`: `seqs` sorted, duplicates allowed.
fn write_record(
    out: &mut Vec<u8>,
    kind: Kind,
    client: &ClientId,
    seqs: &[u64],
    acked: u64,
    node: Option<&str>,
) {
    out.extend_from_slice(match kind {
        Kind::Sent => b"S ",
        Kind::Stored => b"C ",
    });
    out.extend_from_slice(client.as_str().as_bytes());
    out.push(b' ');
    let mut digits = itoa::Buffer::new();
    let mut at = 0;
    while at < seqs.len() {
        if at > 0 {
            out.push(b',');
        }
        let first = seqs[at];
        let mut last = first;
        at += 1;
        while at < seqs.len() && (seqs[at] == last || seqs[at] == last + 1) {
            last = seqs[at];
            at += 1;
        }
        out.extend_from_slice(digits.format(first).as_bytes());
        if last != first {
            out.push(b'-');
            out.extend_from_slice(digits.format(last).as_bytes());
        }
    }
    out.push(b' ');
    out.extend_from_slice(digits.format(acked).as_bytes());
    if let Some(node) = node {
        out.push(b' ');
        out.extend_from_slice(node.as_bytes());
    }
    out.push(b'\n');
}

/// One record read back.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Sent or stored.
    pub kind: Kind,
    /// Whose messages.
    pub client: ClientId,
    /// Their numbers, as runs `(first, last)`, increasing.
    pub runs: Vec<(u64, u64)>,
    /// The highest `acked` they carried.
    pub acked: u64,
    /// The node named, if any.
    pub node: Option<&'a str>,
}

impl Parsed<'_> {
    /// Every message number of the record, in order.
    pub fn seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.runs.iter().flat_map(|&(first, last)| first..=last)
    }
}

/// Parses one line; `None` if it is not a record.
pub fn parse(line: &str) -> Option<Parsed<'_>> {
    let mut fields = line.split(' ');
    let kind = match fields.next()? {
        "S" => Kind::Sent,
        "C" => Kind::Stored,
        _ => return None,
    };
    let client = ClientId::new(fields.next()?)?;
    let runs = parse_runs(fields.next()?)?;
    let acked = decimal(fields.next()?)?;
    let node = fields.next();
    let highest = runs.last()?.1;
    if fields.next().is_some()
        || acked >= highest
        || node.is_some_and(|n| !protocol::command::is_valid_name(n))
    {
        return None;
    }
    Some(Parsed {
        kind,
        client,
        runs,
        acked,
        node,
    })
}

/// `<seqs>`: increasing numbers from 1 and runs, a run at most a window
/// long (so that a damaged line cannot make a node keep more than a
/// client could have in flight).
fn parse_runs(text: &str) -> Option<Vec<(u64, u64)>> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for item in text.split(',') {
        let (first, last) = match item.split_once('-') {
            Some((first, last)) => (decimal(first)?, decimal(last)?),
            None => (decimal(item)?, decimal(item)?),
        };
        let after_previous = runs.last().is_none_or(|&(_, previous)| first > previous);
        if first == 0 || last < first || last - first >= protocol::id::MAX_WINDOW || !after_previous
        {
            return None;
        }
        runs.push((first, last));
    }
    Some(runs)
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
                let Some(record) = parse(line) else {
                    continue;
                };
                windows.ack(&record.client, record.acked, now);
                for seq in record.seqs() {
                    let entry = Entry {
                        kind: record.kind,
                        node: record.node.map(str::to_owned),
                    };
                    // A later record of a message replaces the earlier one.
                    windows.remove(&record.client, seq);
                    windows.insert(&record.client, seq, entry, now);
                }
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

/// Rewrites the file at `path` with the entries of `windows`, grouped as
/// a batch's are (written aside, synced, then renamed over it).
fn compact(path: &Path, windows: &Windows<Entry>) -> io::Result<()> {
    let mut records = Records::default();
    // One allocation per node name, so that its entries group ([`Records`]).
    let mut nodes: hashbrown::HashSet<Arc<str>> = hashbrown::HashSet::new();
    for (client, window) in windows.iter() {
        for (seq, entry) in window.entries() {
            let tag = Tag {
                client: client.clone(),
                seq,
                // Every entry is above the floor.
                acked: window.floor(),
            };
            let node = (entry.node.as_deref())
                .map(|name| Arc::clone(nodes.get_or_insert_with(name, |name| Arc::from(name))));
            records.push(entry.kind, &tag, node.as_ref());
        }
    }
    let mut out = Vec::new();
    records.write_to(&mut out);
    let aside = path.with_extension("ids.new");
    let mut file = fs::File::create(&aside)?;
    file.write_all(&out)?;
    file.sync_data()?;
    fs::rename(&aside, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tag whose id shares its allocation with the others of its client,
    /// as a node's connection parses them.
    fn tag(client: &str, seq: u64, acked: u64) -> Tag {
        thread_local! {
            static IDS: std::cell::RefCell<protocol::ClientIds> = Default::default();
        }
        let client = IDS.with(|ids| ids.borrow_mut().get(client).unwrap());
        Tag { client, seq, acked }
    }

    fn written(records: &mut Records) -> String {
        let mut out = Vec::new();
        records.write_to(&mut out);
        assert!(records.is_empty());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_batch_is_one_record_per_client_kind_and_node() {
        let (dn1, dn2): (Arc<str>, Arc<str>) = ("dn1".into(), "dn2".into());
        let mut records = Records::default();
        for (seq, acked) in [(12, 9), (10, 8), (11, 9), (15, 9), (20, 12)] {
            records.push(Kind::Stored, &tag("c1", seq, acked), None);
        }
        records.push(Kind::Stored, &tag("c0", 3, 0), None);
        assert_eq!(
            written(&mut records),
            "C c1 10-12,15,20 12\nC c0 3 0\n",
            "in the order first seen"
        );
        records.push(Kind::Stored, &tag("c1", 4, 0), Some(&dn2));
        records.push(Kind::Sent, &tag("c1", 5, 0), Some(&dn1));
        records.push(Kind::Sent, &tag("c1", 6, 0), Some(&dn2));
        records.push(Kind::Sent, &tag("c1", 7, 0), Some(&dn1));
        assert_eq!(
            written(&mut records),
            "S c1 5,7 0 dn1\nS c1 6 0 dn2\nC c1 4 0 dn2\n",
            "S before C"
        );
        assert_eq!(written(&mut records), "", "nothing new");
    }

    /// What `records` says, read back: (kind, client, seq, node) in order.
    fn read_back(records: &mut Records) -> Vec<(Kind, String, u64, Option<String>)> {
        let text = written(records);
        let mut out = Vec::new();
        for line in text.lines() {
            let record = parse(line).unwrap();
            for seq in record.seqs() {
                let node = record.node.map(str::to_owned);
                out.push((record.kind, record.client.to_string(), seq, node));
            }
        }
        out
    }

    #[test]
    fn a_client_spread_over_datanodes_is_a_record_per_datanode() {
        let nodes: Vec<Arc<str>> = ["dn1", "dn2", "dn3"].map(Arc::from).into();
        let mut records = Records::default();
        let mut ids = protocol::ClientIds::default();
        for client in 0..7 {
            let id = ids.get(&format!("c{client}")).unwrap();
            for seq in 1..=12u64 {
                let tag = Tag {
                    client: id.clone(),
                    seq,
                    acked: 0,
                };
                records.push(Kind::Sent, &tag, Some(&nodes[seq as usize % 3]));
            }
        }
        let text = written(&mut records);
        assert_eq!(text.lines().count(), 7 * 3, "{text}");
        assert!(
            text.starts_with("S c0 1,4,7,10 0 dn2\nS c0 2,5,8,11 0 dn3\n"),
            "{text}"
        );
    }

    #[test]
    fn groups_beyond_the_recent_ones_make_more_records_that_say_the_same() {
        let nodes: Vec<Arc<str>> = ["dn1", "dn2", "dn3"].map(Arc::from).into();
        let mut records = Records::default();
        let mut pushed = Vec::new();
        for seq in 1..=12u64 {
            for client in 0..7 {
                for kind in [Kind::Stored, Kind::Sent] {
                    let node = (seq as usize + client) % nodes.len();
                    let name = format!("c{client}");
                    records.push(kind, &tag(&name, seq, 0), Some(&nodes[node]));
                    pushed.push((kind, name, seq, Some(nodes[node].to_string())));
                }
            }
        }
        let read = read_back(&mut records);
        let sent = read
            .iter()
            .take_while(|(kind, ..)| *kind == Kind::Sent)
            .count();
        assert_eq!(sent, read.len() / 2, "every S before every C");
        let (mut read, mut pushed) = (read, pushed);
        read.sort();
        pushed.sort();
        assert_eq!(read, pushed);
    }

    #[test]
    fn records_round_trip_and_junk_is_skipped() {
        let record = parse("C c1 10-12,15 9 dn2").unwrap();
        assert_eq!(record.kind, Kind::Stored);
        assert_eq!(record.client.as_str(), "c1");
        assert_eq!(record.seqs().collect::<Vec<_>>(), [10, 11, 12, 15]);
        assert_eq!((record.acked, record.node), (9, Some("dn2")));
        let plain = parse("S c1 12 9").unwrap();
        assert_eq!(
            (plain.kind, plain.runs, plain.node),
            (Kind::Sent, vec![(12, 12)], None)
        );
        for junk in [
            "",
            "X c1 1 0",
            "C c1 1",
            "C c1 1 1",
            "C c/1 2 0",
            "C c1 2 0 a b",
            "C c1 2 0 d/n",
            "C c1 0 0",
            "C c1 5-3 0",
            "C c1 5,5 0",
            "C c1 7,5 0",
            "C c1 1-99999999 0",
            "C c1 1,,2 0",
            "C c1 +1 0",
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
        let (dn1, dn2, dn3): (Arc<str>, Arc<str>, Arc<str>) =
            ("dn1".into(), "dn2".into(), "dn3".into());
        let mut out = Vec::new();
        for seq in 1..=10 {
            // One batch per message: sent, then confirmed by another.
            let mut records = Records::default();
            let tag = tag("c1", seq, seq.saturating_sub(3));
            records.push(Kind::Sent, &tag, Some(&dn1));
            records.write_to(&mut out);
            records.push(Kind::Stored, &tag, Some(&dn2));
            records.write_to(&mut out);
        }
        let mut records = Records::default();
        records.push(Kind::Sent, &tag("c2", 1, 0), Some(&dn3));
        records.write_to(&mut out);
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
        let mut text: Vec<_> = fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        text.sort();
        assert_eq!(text, ["C c1 8-10 7 dn2", "S c2 1 0 dn3"], "compacted");
    }
}

//! The three files that say where a message is, read into one ledger.
//!
//! For every pair (message, datanode) the ledger keeps the line numbers of
//! its confirmations in `registro_cliente.txt` (`Su mensaje '<m>' ha sido
//! registrado en el <name>.`), of its records in `registro_server.txt`
//! (`El <name> ha registrado satisfactoriamente el mensaje: '<m>'.`) and of
//! its copies in that datanode's `data.txt` (`<time> -> <m>`). The
//! guarantees are then inequalities between the three counts of each pair,
//! with multiplicities: messages repeat (a client draws from a list of
//! sixteen), so a message is known by its text and counted, never looked
//! up once.
//!
//! Messages borrow from the files' buffers; the pair's key is the text and a
//! small datanode number, so a million lines cost a million hash look-ups
//! and no copy. Datanode names are read as the seed wrote them too: its
//! `datanode 2` (with a space) is `datanode2`, the name of its folder; a
//! name of this project holds no space (`protocol::command::is_valid_name`),
//! so taking spaces out never joins two names.

use std::{borrow::Cow, collections::HashMap};

use crate::{
    answers::{count_error, error_code, ErrorCounts},
    logfile::{with_left, LogFile, Record, Unreadable},
    readable::UnreadableLines,
};

/// A datanode, by its number in [`Names`].
pub type NodeId = u16;

/// Datanode names, each with a number, in the order first seen.
#[derive(Debug, Default)]
pub struct Names {
    names: Vec<String>,
    ids: HashMap<String, NodeId>,
}

impl Names {
    /// The number of `name`, read as the seed's `datanode 2` is.
    pub fn id(&mut self, name: &str) -> NodeId {
        let name: Cow<'_, str> = if name.contains(' ') {
            Cow::Owned(name.replace(' ', ""))
        } else {
            Cow::Borrowed(name)
        };
        if let Some(&id) = self.ids.get(name.as_ref()) {
            return id;
        }
        let id = NodeId::try_from(self.names.len()).expect("fewer than 65536 datanode names");
        self.names.push(name.clone().into_owned());
        self.ids.insert(name.into_owned(), id);
        id
    }

    /// The name of `id`.
    pub fn name(&self, id: NodeId) -> &str {
        &self.names[usize::from(id)]
    }

    /// How many names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name was seen.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Where one message is, according to each file, as line numbers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Confirmations in registro_cliente.txt naming this datanode.
    pub confirmed: Vec<u32>,
    /// Records in registro_server.txt naming this datanode.
    pub recorded: Vec<u32>,
    /// Copies in this datanode's data.txt.
    pub stored: Vec<u32>,
}

/// A message and the datanode it concerns.
pub type Key<'a> = (Cow<'a, str>, NodeId);

/// Everything the three kinds of files say about where messages are.
#[derive(Debug, Default)]
pub struct Ledger<'a> {
    /// Datanode names.
    pub names: Names,
    /// Each (message, datanode) pair.
    pub tallies: HashMap<Key<'a>, Tally>,
    /// Error answers in registro_cliente.txt, by code.
    pub errors_by_code: ErrorCounts,
    /// Lines of registro_cliente.txt that are no answer.
    pub cliente_unreadable: UnreadableLines,
    /// Lines of registro_server.txt that are no datanode sentence.
    pub server_unreadable: UnreadableLines,
    /// Lines of each data.txt that are no record, by datanode.
    pub data_unreadable: HashMap<NodeId, UnreadableLines>,
}

/// Which of the three counts a line adds to.
#[derive(Debug, Clone, Copy)]
enum Column {
    Confirmed,
    Recorded,
    Stored,
}

impl<'a> Ledger<'a> {
    /// Adds a client's answers.
    pub fn read_cliente(&mut self, file: &'a LogFile) {
        for (line, record) in file.records() {
            match timestamped(record) {
                Ok(record) => {
                    if let Some(code) = error_code(&record.text) {
                        count_error(&mut self.errors_by_code, code, line);
                        continue;
                    }
                    let parsed = sub_str(record.text, |text| {
                        protocol::sentences::parse_headnode_stored(text)
                    });
                    match parsed {
                        Some((message, node)) => {
                            let node = self.names.id(&node);
                            self.add(message, node, Column::Confirmed, line);
                        }
                        None => self.cliente_unreadable.add(line, Unreadable::BadSentence),
                    }
                }
                Err(why) => self.cliente_unreadable.add(line, why),
            }
        }
    }

    /// Adds the headnode's records.
    pub fn read_server(&mut self, file: &'a LogFile) {
        for (line, record) in file.records() {
            match timestamped(record) {
                Ok(record) => {
                    let parsed = sub_str(record.text, |text| {
                        protocol::sentences::parse_datanode_stored(text)
                            .map(|(node, message)| (message, node))
                    });
                    match parsed {
                        Some((message, node)) => {
                            let node = self.names.id(&node);
                            self.add(message, node, Column::Recorded, line);
                        }
                        None => self.server_unreadable.add(line, Unreadable::BadSentence),
                    }
                }
                Err(why) => self.server_unreadable.add(line, why),
            }
        }
    }

    /// Adds the copies in datanode `name`'s data.txt.
    pub fn read_data(&mut self, name: &str, file: &'a LogFile) {
        let node = self.names.id(name);
        let mut unreadable = UnreadableLines::default();
        for (line, record) in file.records() {
            match timestamped(record) {
                Ok(record) => self.add(record.text, node, Column::Stored, line),
                Err(why) => unreadable.add(line, why),
            }
        }
        self.data_unreadable.insert(node, unreadable);
    }

    fn add(&mut self, message: Cow<'a, str>, node: NodeId, column: Column, line: u32) {
        let tally = self.tallies.entry((message, node)).or_default();
        match column {
            Column::Confirmed => tally.confirmed.push(line),
            Column::Recorded => tally.recorded.push(line),
            Column::Stored => tally.stored.push(line),
        }
    }
}

/// A record whose left part is a time stamp, as every Activity 2 file has.
pub fn timestamped(record: Result<Record<'_>, Unreadable>) -> Result<Record<'_>, Unreadable> {
    with_left(record, journal::is_timestamp)
}

/// The message and name that `parse` finds in `text`, borrowed from the
/// file when `text` is, copied when it was unescaped.
fn sub_str<'a>(
    text: Cow<'a, str>,
    parse: impl Fn(&str) -> Option<(&str, &str)>,
) -> Option<(Cow<'a, str>, String)> {
    match text {
        Cow::Borrowed(text) => {
            let (message, node) = parse(text)?;
            Some((Cow::Borrowed(message), node.to_owned()))
        }
        Cow::Owned(text) => {
            let (message, node) = parse(&text)?;
            Some((Cow::Owned(message.to_owned()), node.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_spaced_names_are_the_folders_names() {
        let mut names = Names::default();
        let folder = names.id("datanode2");
        assert_eq!(names.id("datanode 2"), folder);
        assert_ne!(names.id("datanode1"), folder);
        assert_eq!(names.name(folder), "datanode2");
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn each_file_adds_to_its_count_of_the_pair() {
        let cliente = LogFile::from_bytes(
            "registro_cliente.txt".into(),
            b"2019-10-05 02:50:14 -> Su mensaje 'a\\nb' ha sido registrado en el dn1.\n\
              2019-10-05 02:50:14 -> ERR UNAVAILABLE no datanode\n\
              2019-10-05 02:50:14 -> Su mensaje 'Hola' ha sido registrado en el dn1.\n"
                .to_vec(),
        );
        let server = LogFile::from_bytes(
            "registro_server.txt".into(),
            b"2019-10-05 02:50:14 -> El dn1 ha registrado satisfactoriamente el mensaje: 'Hola'.\n\
              2019-10-05 02:50:14 -> El dn1 ha registrado satisfactoriamente el mensaje:\n"
                .to_vec(),
        );
        let data = LogFile::from_bytes(
            "data.txt".into(),
            b"2019-10-05 02:50:14 -> Hola\n2019-10-05 02:50:14 -> a\\nb\n".to_vec(),
        );
        let mut ledger = Ledger::default();
        ledger.read_data("dn1", &data);
        ledger.read_cliente(&cliente);
        ledger.read_server(&server);
        let hola = &ledger.tallies[&(Cow::Borrowed("Hola"), 0)];
        assert_eq!(
            (
                hola.confirmed.as_slice(),
                hola.recorded.as_slice(),
                hola.stored.as_slice()
            ),
            (&[3][..], &[1][..], &[1][..])
        );
        let two_lines = &ledger.tallies[&(Cow::Borrowed("a\nb"), 0)];
        assert_eq!(
            (
                two_lines.confirmed.len(),
                two_lines.recorded.len(),
                two_lines.stored.len()
            ),
            (1, 0, 1)
        );
        assert_eq!(ledger.errors_by_code["UNAVAILABLE"].count, 1);
        assert_eq!(
            ledger.server_unreadable.lines(),
            [(Unreadable::BadSentence, vec![2])]
        );
    }
}

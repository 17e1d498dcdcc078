//! One log file, read once, and its lines as records.
//!
//! A file is read whole into memory with one `read`, and every record
//! borrows from that buffer: a message is copied only when it holds an
//! escape to undo ([`protocol::escape::unescape`]), which the messages of a
//! real run almost never do. Lines are found with `memchr`.
//!
//! A file may be in the middle of a write (the run is still going, or a
//! power loss tore its last line): bytes after the last line feed are not a
//! line yet. They are left out and reported as the file's incomplete last
//! line, never as a disagreement; the node that writes the file cuts such a
//! line off when it next opens it (see the journal crate).

use std::{
    borrow::Cow,
    path::{Path, PathBuf},
};

use serde::Serialize;

use crate::Error;

/// The separator between a record's two parts (`journal::record`).
const SEPARATOR: &[u8] = b" -> ";

/// A log file's bytes, up to its last complete line.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    bytes: Vec<u8>,
    /// Where the complete lines end (after the last line feed).
    complete: usize,
}

/// One line, split into its two parts, the text unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// A sender's `IP:PORT`, or a time stamp.
    pub left: &'a str,
    /// The message or sentence, as it was before escaping.
    pub text: Cow<'a, str>,
}

/// Why a line is not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unreadable {
    /// The line is not UTF-8.
    NotUtf8,
    /// The line has no ` -> `.
    NoSeparator,
    /// The text holds an escape that `escape` never writes.
    BadEscape,
    /// The left part is not what this file writes there (a time stamp, or
    /// an `IP:PORT`).
    BadLeft,
    /// The text is not a sentence this file holds.
    BadSentence,
}

impl Unreadable {
    /// In words, after "N line(s)".
    pub fn describe(self) -> &'static str {
        match self {
            Unreadable::NotUtf8 => "are not UTF-8",
            Unreadable::NoSeparator => "have no ' -> '",
            Unreadable::BadEscape => "hold a malformed escape",
            Unreadable::BadLeft => "have no time stamp or address before ' -> '",
            Unreadable::BadSentence => "are not a sentence this file holds",
        }
    }
}

/// What the audit says about a file it read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSummary {
    /// The path.
    pub path: PathBuf,
    /// Complete lines.
    pub lines: u32,
    /// The number of an incomplete last line (a write in progress or a
    /// torn one), which was left out.
    pub incomplete_line: Option<u32>,
}

impl LogFile {
    /// Reads `path` whole.
    pub fn read(path: &Path) -> Result<LogFile, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(LogFile::from_bytes(path.to_owned(), bytes))
    }

    /// A file with these contents, for tests and callers that have them.
    pub fn from_bytes(path: PathBuf, bytes: Vec<u8>) -> LogFile {
        let complete = memchr::memrchr(b'\n', &bytes).map_or(0, |at| at + 1);
        LogFile {
            path,
            bytes,
            complete,
        }
    }

    /// The path it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Each complete line with its number (from 1), without its line feed.
    pub fn lines(&self) -> impl Iterator<Item = (u32, &[u8])> + '_ {
        let complete = &self.bytes[..self.complete];
        let mut start = 0;
        let mut number = 0u32;
        memchr::memchr_iter(b'\n', complete).map(move |end| {
            let line = &complete[start..end];
            start = end + 1;
            number += 1;
            (number, line)
        })
    }

    /// Each complete line as a record, or why it is not one.
    pub fn records(&self) -> impl Iterator<Item = (u32, Result<Record<'_>, Unreadable>)> + '_ {
        self.lines()
            .map(|(number, line)| (number, parse_record(line)))
    }

    /// Its line count and incomplete last line, for the report.
    pub fn summary(&self) -> FileSummary {
        let lines = memchr::memchr_iter(b'\n', &self.bytes[..self.complete]).count() as u32;
        FileSummary {
            path: self.path.clone(),
            lines,
            incomplete_line: (self.complete < self.bytes.len()).then_some(lines + 1),
        }
    }
}

/// Splits a line at its first ` -> ` and undoes the escapes of the text.
pub fn parse_record(line: &[u8]) -> Result<Record<'_>, Unreadable> {
    let line = std::str::from_utf8(line).map_err(|_| Unreadable::NotUtf8)?;
    // Neither a time stamp nor an address holds " -> ", so the first one
    // ends the left part; a time stamp is 19 bytes, tried first.
    let at = if line.as_bytes().get(19..23) == Some(SEPARATOR) {
        19
    } else {
        memchr::memmem::find(line.as_bytes(), SEPARATOR).ok_or(Unreadable::NoSeparator)?
    };
    let (left, text) = (&line[..at], &line[at + SEPARATOR.len()..]);
    let text = if text.contains('\\') {
        Cow::Owned(protocol::escape::unescape(text).ok_or(Unreadable::BadEscape)?)
    } else {
        Cow::Borrowed(text)
    };
    Ok(Record { left, text })
}

/// `record`, if its left part passes `left_is` (a time stamp, an
/// address): the nodes write nothing else there.
pub fn with_left<'a>(
    record: Result<Record<'a>, Unreadable>,
    left_is: impl Fn(&str) -> bool,
) -> Result<Record<'a>, Unreadable> {
    match record {
        Ok(record) if left_is(record.left) => Ok(record),
        Ok(_) => Err(Unreadable::BadLeft),
        Err(why) => Err(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> LogFile {
        LogFile::from_bytes("x.txt".into(), text.as_bytes().to_vec())
    }

    #[test]
    fn records_borrow_unless_escaped() {
        let record = parse_record(b"2019-10-05 02:50:15 -> Hola").unwrap();
        assert_eq!(record.left, "2019-10-05 02:50:15");
        assert!(matches!(record.text, Cow::Borrowed("Hola")));
        let record = parse_record(br"172.19.0.3:46274 -> two\nlines -> and a \\").unwrap();
        assert_eq!(record.left, "172.19.0.3:46274");
        assert_eq!(record.text, "two\nlines -> and a \\");
    }

    #[test]
    fn unreadable_lines_say_why() {
        assert_eq!(parse_record(b"no separator"), Err(Unreadable::NoSeparator));
        assert_eq!(parse_record(br"t -> bad\q"), Err(Unreadable::BadEscape));
        assert_eq!(parse_record(b"t -> \xff"), Err(Unreadable::NotUtf8));
    }

    #[test]
    fn an_incomplete_last_line_is_left_out_and_reported() {
        let log = file("a -> 1\nb -> 2\nc -> hal");
        let lines: Vec<u32> = log.lines().map(|(n, _)| n).collect();
        assert_eq!(lines, [1, 2]);
        assert_eq!(log.summary().lines, 2);
        assert_eq!(log.summary().incomplete_line, Some(3));
        assert_eq!(file("").summary().incomplete_line, None);
        assert_eq!(
            file("torn").summary(),
            FileSummary {
                path: "x.txt".into(),
                lines: 0,
                incomplete_line: Some(1)
            }
        );
        assert_eq!(file("a -> 1\n").summary().incomplete_line, None);
    }

    #[test]
    fn a_left_part_that_is_not_what_the_file_holds_is_unreadable() {
        let record = parse_record(b"172.19.0.3:46274 -> Hola");
        assert!(with_left(record.clone(), |left| left.contains(':')).is_ok());
        assert_eq!(
            with_left(record, journal::is_timestamp),
            Err(Unreadable::BadLeft)
        );
        assert_eq!(
            with_left(Err(Unreadable::NotUtf8), |_| true),
            Err(Unreadable::NotUtf8)
        );
    }
}

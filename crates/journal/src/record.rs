//! Building and reading the `<left> -> <text>` lines of the log files.

use protocol::escape::{escape_into, unescape};

/// Separator between the two parts of a record, as in the seed's files.
pub const SEPARATOR: &str = " -> ";

/// A buffer of records to append in one write.
///
/// Reusing one `Record` buffer across batches avoids an allocation per line.
#[derive(Debug, Default)]
pub struct Record {
    buf: String,
    lines: usize,
}

impl Record {
    /// An empty batch (`const`, so a reused buffer can live in a
    /// `thread_local!` with no lazy initialisation).
    pub const fn new() -> Self {
        Record {
            buf: String::new(),
            lines: 0,
        }
    }

    /// Adds `<left> -> <text>\n`, escaping `text`. `left` (an address or a
    /// time stamp) is written as is.
    pub fn push(&mut self, left: &str, text: &str) -> &mut Self {
        self.buf.push_str(left);
        self.buf.push_str(SEPARATOR);
        escape_into(text, &mut self.buf);
        self.buf.push('\n');
        self.lines += 1;
        self
    }

    /// Adds `<left> -> <text>\n` where `text` is `parts` joined, escaping
    /// each part: the same line as [`Record::push`] of the joined text
    /// (escaping works character by character), without building it.
    pub fn push_parts(&mut self, left: &str, parts: &[&str]) -> &mut Self {
        self.buf.push_str(left);
        self.buf.push_str(SEPARATOR);
        for part in parts {
            escape_into(part, &mut self.buf);
        }
        self.buf.push('\n');
        self.lines += 1;
        self
    }

    /// The bytes to append.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_bytes()
    }

    /// How many lines the batch holds.
    pub fn len(&self) -> usize {
        self.lines
    }

    /// Whether the batch holds no line.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// Bytes the buffer holds without growing: what a reused `Record`
    /// keeps allocated.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Empties the batch, keeping its buffer.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.lines = 0;
    }
}

/// The current local time as the seed's files write it: `2019-10-05 01:57:38`.
pub fn timestamp() -> String {
    // Converting to local time and formatting is costly (figures in
    // docs/PERFORMANCE.md), and the headnode and datanodes stamp every
    // batch; within one second the text is the same, so each thread keeps
    // the last one. The second is read
    // from the same instant that is then formatted, so the cache can never
    // pair a second with the text of another; a new second is converted
    // afresh, so a change of the UTC offset shows from its first second.
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> =
            const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let now = chrono::Utc::now();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != now.timestamp() {
            *last = (now.timestamp(), format_local(now));
        }
        last.1.clone()
    })
}

fn format_local(instant: chrono::DateTime<chrono::Utc>) -> String {
    instant
        .with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Whether `left` is a time stamp as [`timestamp`] writes it
/// (`YYYY-mm-dd HH:MM:SS`): what readers of the files (the audit, the
/// tests) check the left part of a line against.
pub fn is_timestamp(left: &str) -> bool {
    let b = left.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b' ',
            13 | 16 => c == b':',
            _ => c.is_ascii_digit(),
        })
}

/// Splits a log line into its left part and its unescaped text.
pub fn parse_record(line: &str) -> Option<(&str, String)> {
    let (left, text) = line.split_once(SEPARATOR)?;
    Some((left, unescape(text)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_one_escaped_line_each() {
        let mut record = Record::new();
        record
            .push("172.19.0.3:46274", "Hola")
            .push("172.19.0.3:46274", "two\nlines");
        assert_eq!(
            std::str::from_utf8(record.as_bytes()).unwrap(),
            "172.19.0.3:46274 -> Hola\n172.19.0.3:46274 -> two\\nlines\n"
        );
        assert_eq!(record.len(), 2);
        record.clear();
        assert!(record.is_empty());
    }

    #[test]
    fn a_line_pushed_in_parts_is_the_line_of_the_whole() {
        let parts = ["El dn1 ", "two\nlines \\ ", "", "\u{2028}'."];
        let (mut whole, mut pieces) = (Record::new(), Record::new());
        whole.push("2019-10-05 01:57:38", &parts.concat());
        pieces.push_parts("2019-10-05 01:57:38", &parts);
        assert_eq!(whole.as_bytes(), pieces.as_bytes());
        assert_eq!(pieces.len(), 1);
    }

    #[test]
    fn records_parse_back() {
        let mut record = Record::new();
        record.push("2019-10-05 01:57:38", "a -> b\\c\r");
        let line = std::str::from_utf8(record.as_bytes())
            .unwrap()
            .trim_end_matches('\n');
        assert_eq!(
            parse_record(line),
            Some(("2019-10-05 01:57:38", "a -> b\\c\r".to_string()))
        );
    }

    #[test]
    fn cached_timestamps_match_a_fresh_conversion() {
        for _ in 0..1000 {
            let before = format_local(chrono::Utc::now());
            let stamp = timestamp();
            let after = format_local(chrono::Utc::now());
            assert!(
                stamp == before || stamp == after,
                "{before} {stamp} {after}"
            );
        }
    }

    #[test]
    fn timestamps_have_the_seed_format() {
        let stamp = timestamp();
        assert!(is_timestamp(&stamp), "{stamp}");
        assert!(is_timestamp("2019-10-05 01:57:38"));
        assert!(!is_timestamp("172.19.0.3:46274"));
        assert!(!is_timestamp("2019-10-05 01:57:3x"));
        assert!(chrono::NaiveDateTime::parse_from_str(&stamp, "%Y-%m-%d %H:%M:%S").is_ok());
    }
}

//! Escaping a message into exactly one line of a log file.
//!
//! A message may hold any Unicode text, including line breaks. Log files hold
//! one record per line, so before a message is written into a line:
//!
//! | in the message                      | in the log line   |
//! |-------------------------------------|-------------------|
//! | backslash `\`                       | `\\`              |
//! | line feed (U+000A)                  | `\n`              |
//! | carriage return (U+000D)            | `\r`              |
//! | any other control character except tab (U+0000–U+001F, U+007F) | `\xHH` (two hex digits) |
//! | U+0085, U+2028, U+2029 (Unicode line breaks) | `\u{85}`, `\u{2028}`, `\u{2029}` |
//!
//! Everything else, including tabs and non-ASCII letters such as the `ó` of
//! "Adiós", is written as is. The escaping is reversible ([`unescape`]), so a
//! grader's script can recover the exact message from a log line.

use std::borrow::Cow;

/// Whether `c` must be escaped.
fn needs_escape(c: char) -> bool {
    c == '\\'
        || (c.is_ascii_control() && c != '\t')
        || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Bytes that may start a character that must be escaped: ASCII controls
/// except tab, DEL, backslash, and the UTF-8 lead bytes of U+0085 (`C2`)
/// and of U+2028/U+2029 (`E2`). Nearly every byte of a real message is
/// not one of these, so the scan below costs one table look-up per byte
/// instead of decoding characters.
static MAY_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b != b'\t' as usize;
        b += 1;
    }
    table[0x7f] = true;
    table[b'\\' as usize] = true;
    table[0xc2] = true;
    table[0xe2] = true;
    table
};

/// Byte offset of the first character of `text` that must be escaped.
fn find_escape(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(offset) = bytes[at..].iter().position(|&b| MAY_ESCAPE[b as usize]) {
        at += offset;
        // `at` is a character boundary: the table holds no continuation byte.
        let c = text[at..].chars().next().expect("a char starts here");
        if needs_escape(c) {
            return Some(at);
        }
        at += c.len_utf8();
    }
    None
}

/// Escapes `message` for a log line; borrows when nothing needs escaping.
pub fn escape(message: &str) -> Cow<'_, str> {
    if find_escape(message).is_some() {
        let mut out = String::with_capacity(message.len() + 8);
        escape_into(message, &mut out);
        Cow::Owned(out)
    } else {
        Cow::Borrowed(message)
    }
}

/// Appends `message`, escaped, to `out`.
pub fn escape_into(message: &str, out: &mut String) {
    use std::fmt::Write as _;
    let mut rest = message;
    while let Some(at) = find_escape(rest) {
        out.push_str(&rest[..at]);
        let c = rest[at..]
            .chars()
            .next()
            .expect("found a char at this index");
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
        rest = &rest[at + c.len_utf8()..];
    }
    out.push_str(rest);
}

/// Reverses [`escape`]. `None` if `line` holds a malformed escape.
pub fn unescape(line: &str) -> Option<String> {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            'x' => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(char::from(u8::from_str_radix(&hex, 16).ok()?));
            }
            'u' => {
                if chars.next()? != '{' {
                    return None;
                }
                let hex: String = chars.by_ref().take_while(|&c| c != '}').collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        assert!(matches!(
            escape("Adiós\tINF343"),
            Cow::Borrowed("Adiós\tINF343")
        ));
    }

    #[test]
    fn line_breaks_and_backslashes_are_escaped() {
        assert_eq!(escape("a\nb\rc\\d"), r"a\nb\rc\\d");
        assert_eq!(escape("nul\0bell\x07del\x7f"), r"nul\x00bell\x07del\x7f");
        assert_eq!(
            escape("ls\u{2028}ps\u{2029}nel\u{85}"),
            r"ls\u{2028}ps\u{2029}nel\u{85}"
        );
    }

    #[test]
    fn escaped_text_is_always_one_line() {
        let nasty = "x\n\r\u{b}\u{c}\u{1c}\u{1d}\u{1e}\u{85}\u{2028}\u{2029}\\y";
        assert_eq!(escape(nasty).lines().count(), 1);
    }

    #[test]
    fn the_byte_scan_agrees_with_the_char_rule_for_every_char() {
        // Every char from U+0000 to U+3000, alone and between letters.
        for code in 0..0x3000u32 {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            for text in [c.to_string(), format!("a{c}b")] {
                let expected = text.char_indices().find(|&(_, c)| needs_escape(c));
                assert_eq!(find_escape(&text), expected.map(|(at, _)| at), "{code:#x}");
            }
        }
        // Lead bytes shared with characters that are left alone.
        assert_eq!(
            escape("\u{80}\u{a9}\u{2000}\u{20ac}\u{2027}"),
            "\u{80}\u{a9}\u{2000}\u{20ac}\u{2027}"
        );
    }

    #[test]
    fn unescape_reverses_escape() {
        for message in [
            "Hola",
            "a\nb",
            "\\n is not a newline",
            "\0\x01\x1f\x7f",
            "ls\u{2028}ps",
            "trailing\\",
            "Enviando mensaje al headnode",
        ] {
            assert_eq!(unescape(&escape(message)).as_deref(), Some(message));
        }
        assert_eq!(unescape(r"bad\q"), None);
        assert_eq!(unescape("dangling\\"), None);
    }
}

//! Error answers, as a client's file records them: `ERR <CODE> <reason>`
//! (docs/PROTOCOL.md, section 4), counted by code for both activities.

use std::collections::BTreeMap;

use serde::Serialize;

/// How often one error code was answered, and where first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeCount {
    /// Answers with this code.
    pub count: u64,
    /// The first line holding one.
    pub first_line: u32,
}

/// Error answers by code, in the order of the codes' names.
pub type ErrorCounts = BTreeMap<String, CodeCount>;

/// The code of an error answer, or `None` if `text` is not one. A code the
/// protocol does not know is still a code: it is counted as written.
pub fn error_code(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("ERR ")?;
    let code = rest.split(' ').next().unwrap_or(rest);
    (!code.is_empty()).then_some(code)
}

/// Counts one error answer of `code` at `line`.
pub fn count_error(counts: &mut ErrorCounts, code: &str, line: u32) {
    counts
        .entry(code.to_owned())
        .and_modify(|seen| seen.count += 1)
        .or_insert(CodeCount {
            count: 1,
            first_line: line,
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_are_counted_by_code() {
        assert_eq!(
            error_code("ERR UNAVAILABLE no datanode within 10s"),
            Some("UNAVAILABLE")
        );
        assert_eq!(error_code("ERR STORAGE"), Some("STORAGE"));
        assert_eq!(
            error_code("Su mensaje 'ERR X' ha sido registrado en el dn1."),
            None
        );
        assert_eq!(error_code("ERR "), None);
        let mut counts = ErrorCounts::new();
        count_error(&mut counts, "UNAVAILABLE", 4);
        count_error(&mut counts, "UNAVAILABLE", 9);
        count_error(&mut counts, "SHUTTING_DOWN", 12);
        assert_eq!(
            counts["UNAVAILABLE"],
            CodeCount {
                count: 2,
                first_line: 4
            }
        );
        assert_eq!(
            counts.keys().collect::<Vec<_>>(),
            ["SHUTTING_DOWN", "UNAVAILABLE"]
        );
    }
}

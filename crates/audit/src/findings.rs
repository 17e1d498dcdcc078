//! What the audit concludes: checks, each holding or not, with the lines
//! that show it.
//!
//! A check is either a **guarantee** (docs/ACTIVITY2.md, "The delivery
//! guarantee", and its Activity 1 counterpart), which fails the audit when
//! broken, or an **observation** that the guarantees allow (a message stored
//! twice, stored but never confirmed), which is reported and fails nothing.
//! Every finding names its file and quotes its line numbers, at most
//! `max_lines` of them; the rest are counted.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing found.
    Holds,
    /// A guarantee is broken: the audit fails.
    Broken,
    /// An observation has something to say; the audit does not fail.
    Note,
    /// The files needed were not there.
    Skipped,
}

/// One check and what it found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// A stable name for scripts (`confirmed-stored`).
    pub id: &'static str,
    /// What it checks, in words.
    pub title: String,
    /// Whether it is a guarantee (broken fails the audit).
    pub guarantee: bool,
    /// The outcome.
    pub status: Status,
    /// Why it was skipped, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_because: Option<String>,
    /// What was found, at most `max_lines` of them.
    pub findings: Vec<Finding>,
    /// Findings left out of the list.
    pub more_findings: usize,
}

/// One disagreement or observation, and where it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// What, in words.
    pub what: String,
    /// The file the lines are in.
    pub file: PathBuf,
    /// Line numbers (from 1), at most `max_lines` of them.
    pub lines: Vec<u32>,
    /// Line numbers left out of the list.
    pub more_lines: usize,
}

/// Builds findings, keeping at most `max` of everything listed.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Line numbers per finding, and findings per check.
    pub max: usize,
}

impl Limit {
    /// A finding about `lines` of `file`.
    pub fn finding(&self, what: String, file: &Path, lines: &[u32]) -> Finding {
        let shown = lines.len().min(self.max);
        Finding {
            what,
            file: file.to_owned(),
            lines: lines[..shown].to_vec(),
            more_lines: lines.len() - shown,
        }
    }

    /// A guarantee: holds when nothing was found, broken otherwise.
    pub fn guarantee(&self, id: &'static str, title: String, findings: Vec<Finding>) -> Check {
        let status = if findings.is_empty() {
            Status::Holds
        } else {
            Status::Broken
        };
        self.check(id, title, true, status, findings)
    }

    /// An observation: a note when something was found.
    pub fn observation(&self, id: &'static str, title: String, findings: Vec<Finding>) -> Check {
        let status = if findings.is_empty() {
            Status::Holds
        } else {
            Status::Note
        };
        self.check(id, title, false, status, findings)
    }

    fn check(
        &self,
        id: &'static str,
        title: String,
        guarantee: bool,
        status: Status,
        mut findings: Vec<Finding>,
    ) -> Check {
        let more_findings = findings.len().saturating_sub(self.max);
        findings.truncate(self.max);
        Check {
            id,
            title,
            guarantee,
            status,
            skipped_because: None,
            findings,
            more_findings,
        }
    }
}

/// A check that could not be made, and why.
pub fn skipped(id: &'static str, title: String, guarantee: bool, because: String) -> Check {
    Check {
        id,
        title,
        guarantee,
        status: Status::Skipped,
        skipped_because: Some(because),
        findings: Vec::new(),
        more_findings: 0,
    }
}

/// Whether every guarantee among `checks` holds.
pub fn all_hold(checks: &[Check]) -> bool {
    checks.iter().all(|check| check.status != Status::Broken)
}

/// `message` as the report quotes it: escaped as in the log files (so it is
/// one line) and cut after 60 characters.
pub fn quote(message: &str) -> String {
    let escaped = protocol::escape::escape(message);
    match escaped.char_indices().nth(60) {
        Some((at, _)) => format!("'{}...'", &escaped[..at]),
        None => format!("'{escaped}'"),
    }
}

/// `n` with the right form of `one`: `1 time`, `2 times`.
pub fn times(n: usize) -> String {
    if n == 1 {
        "once".to_owned()
    } else {
        format!("{n} times")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_keep_at_most_the_limit_and_count_the_rest() {
        let limit = Limit { max: 2 };
        let finding = limit.finding("x".into(), Path::new("f"), &[1, 2, 3, 4]);
        assert_eq!(finding.lines, [1, 2]);
        assert_eq!(finding.more_lines, 2);
        let check = limit.guarantee("g", "g".into(), vec![finding.clone(); 3]);
        assert_eq!(
            (check.status, check.findings.len(), check.more_findings),
            (Status::Broken, 2, 1)
        );
        assert_eq!(
            limit.guarantee("g", "g".into(), vec![]).status,
            Status::Holds
        );
        assert_eq!(
            limit.observation("o", "o".into(), vec![finding]).status,
            Status::Note
        );
    }

    #[test]
    fn quotes_are_one_line_and_short() {
        assert_eq!(quote("Hola"), "'Hola'");
        assert_eq!(quote("a\nb"), r"'a\nb'");
        assert_eq!(quote(&"x".repeat(100)), format!("'{}...'", "x".repeat(60)));
        assert_eq!(times(1), "once");
        assert_eq!(times(3), "3 times");
    }
}

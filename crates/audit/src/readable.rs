//! The checks every file gets: each complete line is a record of its file,
//! and an incomplete last line is said, not counted.

use std::{collections::BTreeMap, path::Path};

use crate::{
    findings::{Check, Finding, Limit},
    logfile::{FileSummary, Unreadable},
};

/// The lines of one file that are not records of it.
#[derive(Debug, Default, Clone)]
pub struct UnreadableLines {
    lines: BTreeMap<Unreadable, Vec<u32>>,
}

impl UnreadableLines {
    /// Notes that `line` is not a record, for `why`.
    pub fn add(&mut self, line: u32, why: Unreadable) {
        self.lines.entry(why).or_default().push(line);
    }

    /// The lines, by reason.
    pub fn lines(&self) -> Vec<(Unreadable, Vec<u32>)> {
        self.lines
            .iter()
            .map(|(why, lines)| (*why, lines.clone()))
            .collect()
    }

    /// The findings, one per reason.
    fn findings(&self, path: &Path, limit: &Limit) -> impl Iterator<Item = Finding> + '_ {
        let path = path.to_owned();
        let limit = *limit;
        self.lines.iter().map(move |(why, lines)| {
            let what = format!("{} line(s) with {}", lines.len(), why.describe());
            limit.finding(what, &path, lines)
        })
    }
}

/// The guarantee that every line was written by a node of this project (or
/// the original): the nodes never write any other.
pub fn readable_check(limit: &Limit, files: &[(&Path, &UnreadableLines)]) -> Check {
    let findings = files
        .iter()
        .flat_map(|(path, unreadable)| unreadable.findings(path, limit))
        .collect();
    limit.guarantee(
        "readable",
        "every complete line is a record its file holds".to_owned(),
        findings,
    )
}

/// The observation of files whose last line is incomplete.
pub fn complete_check(limit: &Limit, files: &[FileSummary]) -> Check {
    let findings = files
        .iter()
        .filter_map(|file| {
            let line = file.incomplete_line?;
            let what = "incomplete last line, left out (a write in progress, or torn by a crash)"
                .to_owned();
            Some(limit.finding(what, &file.path, &[line]))
        })
        .collect();
    limit.observation(
        "complete",
        "every file ends with a complete line".to_owned(),
        findings,
    )
}

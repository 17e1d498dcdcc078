//! `audit`: reads the log files of a run and checks them against each
//! other, so that a grader or a teacher need not do it with `grep` and
//! `wc -l`.
//!
//! # What it checks
//!
//! - Activity 2 ([`activity2`]): every confirmation the client recorded is
//!   in the `data.txt` of the datanode it names and in the headnode's
//!   `registro_server.txt`, and every line of that is in its datanode's
//!   `data.txt`, counting repeated messages (the delivery guarantee of
//!   docs/ACTIVITY2.md); what at-least-once delivery allows beside it
//!   (stored twice, stored but never confirmed, answers the client never
//!   recorded); messages per datanode; error answers by code; placement
//!   fairness (chi-square against uniform); the heartbeat timeline.
//! - Activity 1 ([`activity1`]): `log.txt` against `respuestas.txt`, per
//!   sender.
//! - Both: every complete line is a line the nodes write; an incomplete
//!   last line (a write in progress, a torn one) is left out and said.
//!
//! # Design
//!
//! [`layout`] finds the files by name; [`logfile`] reads each whole, once,
//! and hands out its lines as records borrowing from the buffer, with the
//! protocol crate's `unescape` undoing the escapes when a line has any. Each
//! activity folds its files into counts per message and checks inequalities
//! between them, in one pass per file with one hash look-up per line (a
//! million-message run is audited in about a second: docs/PERFORMANCE.md).
//! The result is a [`Report`] of plain data: [`render`] draws it as a table,
//! serde as JSON. Nothing is ever written: files are opened for reading
//! only.
//!
//! Files are taken as they are: the seed's own sample lines (`datanode 2`
//! with a space, sentences cut short, merged messages such as
//! `'Esistemas'`, reported as confirmations of messages nobody sent), a
//! run still going (read in the order that keeps it consistent; see
//! [`activity2`]), invalid UTF-8 or foreign lines (reported with their
//! line numbers, never a crash).

pub mod activity1;
pub mod activity2;
mod answers;
mod config;
mod error;
pub mod findings;
pub mod layout;
pub mod logfile;
mod readable;
pub mod render;
mod stats;

pub use activity1::Activity1Report;
pub use activity2::Activity2Report;
pub use answers::{CodeCount, ErrorCounts};
pub use config::Config;
pub use error::Error;
pub use findings::{Check, Finding, Status};

use serde::Serialize;

/// The audit of one run: each activity whose files were found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Whether every guarantee holds (the exit status is 0 exactly then).
    pub holds: bool,
    /// Activity 1, if any of its files was found.
    pub activity1: Option<Activity1Report>,
    /// Activity 2, if any of its files was found.
    pub activity2: Option<Activity2Report>,
}

/// Finds the files `config` names and audits them.
pub fn run(config: &Config) -> Result<Report, Error> {
    let layout = layout::Layout::find(&config.paths, &config.logs)?;
    let limit = findings::Limit {
        max: config.max_lines,
    };
    let activity1 = layout
        .activity1
        .any()
        .then(|| activity1::audit(&layout.activity1, &limit))
        .transpose()?;
    let activity2 = layout
        .activity2
        .any()
        .then(|| activity2::audit(&layout.activity2, &limit))
        .transpose()?;
    Ok(Report {
        holds: activity1.as_ref().is_none_or(|report| report.holds)
            && activity2.as_ref().is_none_or(|report| report.holds),
        activity1,
        activity2,
    })
}

//! Activity 1: the server's `log.txt` against the client's `respuestas.txt`.
//!
//! The server logs `IP:PORT -> <message>` before it confirms, so every
//! confirmation in `respuestas.txt` (`El servidor ha recibido
//! satisfactoriamente su mensaje '<m>'.`) must match a line of `log.txt`
//! holding `<m>`: that is this activity's guarantee. `respuestas.txt` does
//! not say which connection a confirmation answered, so confirmations are
//! matched, in file order, with the earliest unmatched `log.txt` line
//! holding the same message; a client's run is one connection, so the
//! senders' counts come out right for one client at a time, and the
//! guarantee is exact whatever the order (it is a count per message).
//!
//! A confirmation no line matches is a message nobody sent: the original
//! Python version, reading with one `recv(4096)` per message, merged two
//! messages into one and confirmed that (`'Esistemas'` in its sample).
//! Logged lines never confirmed are allowed (the client stopped, or its
//! answer file is another one) and only reported.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
};

use serde::Serialize;

use crate::{
    answers::{count_error, error_code, ErrorCounts},
    findings::{all_hold, quote, skipped, times, Check, Limit},
    layout::Activity1Files,
    logfile::{with_left, FileSummary, LogFile, Unreadable},
    readable::{complete_check, readable_check, UnreadableLines},
    Error,
};

/// The audit of Activity 1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Activity1Report {
    /// Whether every guarantee holds.
    pub holds: bool,
    /// The files read.
    pub files: Vec<FileSummary>,
    /// `log.txt` per sender, in the order of their first line.
    pub senders: Vec<SenderRow>,
    /// Confirmations in `respuestas.txt`.
    pub confirmed: u64,
    /// Error answers in `respuestas.txt`, by code.
    pub errors_by_code: ErrorCounts,
    /// The checks.
    pub checks: Vec<Check>,
}

/// One sender's lines of `log.txt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SenderRow {
    /// `IP:PORT`, as logged.
    pub sender: String,
    /// Lines logged.
    pub logged: u64,
    /// Of those, matched with a confirmation.
    pub confirmed: u64,
    /// Its first line.
    pub first_line: u32,
    /// Its last line.
    pub last_line: u32,
}

/// Reads and checks the files found (respuestas.txt first: see the crate
/// docs on auditing a run still going).
pub fn audit(files: &Activity1Files, limit: &Limit) -> Result<Activity1Report, Error> {
    let respuestas = files.respuestas.as_deref().map(LogFile::read).transpose()?;
    let log = files.log.as_deref().map(LogFile::read).transpose()?;
    Ok(check(log.as_ref(), respuestas.as_ref(), limit))
}

/// A message of log.txt waiting for its confirmation.
struct Logged {
    sender: usize,
    line: u32,
}

/// Checks `log` against `respuestas`, either of which may be missing.
pub fn check(
    log: Option<&LogFile>,
    respuestas: Option<&LogFile>,
    limit: &Limit,
) -> Activity1Report {
    let mut senders: Vec<SenderRow> = Vec::new();
    let mut sender_index: HashMap<&str, usize> = HashMap::new();
    let mut waiting: HashMap<std::borrow::Cow<'_, str>, VecDeque<Logged>> = HashMap::new();
    let mut log_unreadable = UnreadableLines::default();
    for (line, record) in log.iter().flat_map(|file| file.records()) {
        let record = match with_left(record, |left| left.parse::<SocketAddr>().is_ok()) {
            Ok(record) => record,
            Err(why) => {
                log_unreadable.add(line, why);
                continue;
            }
        };
        let sender = *sender_index.entry(record.left).or_insert_with(|| {
            senders.push(SenderRow {
                sender: record.left.to_owned(),
                logged: 0,
                confirmed: 0,
                first_line: line,
                last_line: line,
            });
            senders.len() - 1
        });
        senders[sender].logged += 1;
        senders[sender].last_line = line;
        waiting
            .entry(record.text)
            .or_default()
            .push_back(Logged { sender, line });
    }

    let mut confirmed = 0;
    let mut errors_by_code = ErrorCounts::new();
    let mut answers_unreadable = UnreadableLines::default();
    // Confirmations no log.txt line matches, by message.
    let mut unmatched: Vec<(String, Vec<u32>)> = Vec::new();
    let mut unmatched_index: HashMap<String, usize> = HashMap::new();
    for (line, record) in respuestas.iter().flat_map(|file| file.records()) {
        let record = match with_left(record, journal::is_timestamp) {
            Ok(record) => record,
            Err(why) => {
                answers_unreadable.add(line, why);
                continue;
            }
        };
        if let Some(code) = error_code(&record.text) {
            count_error(&mut errors_by_code, code, line);
            continue;
        }
        let Some(message) = protocol::sentences::parse_server_received(&record.text) else {
            answers_unreadable.add(line, Unreadable::BadSentence);
            continue;
        };
        confirmed += 1;
        match waiting.get_mut(message).and_then(VecDeque::pop_front) {
            Some(logged) => senders[logged.sender].confirmed += 1,
            None => {
                let at = *unmatched_index
                    .entry(message.to_owned())
                    .or_insert_with(|| {
                        unmatched.push((message.to_owned(), Vec::new()));
                        unmatched.len() - 1
                    });
                unmatched[at].1.push(line);
            }
        }
    }

    let mut files_read = Vec::new();
    let mut readable = Vec::new();
    for (file, unreadable) in [(log, &log_unreadable), (respuestas, &answers_unreadable)] {
        if let Some(file) = file {
            files_read.push(file.summary());
            readable.push((file.path(), unreadable));
        }
    }
    let mut checks = vec![readable_check(limit, &readable)];
    let title = "every confirmation in respuestas.txt is a message in log.txt".to_owned();
    checks.push(match (log, respuestas) {
        (Some(log), Some(respuestas)) => {
            let findings = unmatched
                .iter()
                .map(|(message, lines)| {
                    let logged = log_count(log, message);
                    let what = if logged == 0 {
                        format!(
                            "{} confirmed {} but in no line of {}: a message nobody sent \
                             (the original's merged reads produce such)",
                            quote(message),
                            times(lines.len()),
                            log.path().display()
                        )
                    } else {
                        format!(
                            "{} confirmed {} but logged {}",
                            quote(message),
                            times(lines.len() + logged),
                            times(logged)
                        )
                    };
                    limit.finding(what, respuestas.path(), lines)
                })
                .collect();
            limit.guarantee("confirmed-logged", title, findings)
        }
        _ => skipped(
            "confirmed-logged",
            title,
            true,
            "needs both log.txt and respuestas.txt".into(),
        ),
    });
    let title = "every message in log.txt is confirmed in respuestas.txt".to_owned();
    checks.push(match (log, respuestas) {
        (Some(log), Some(_)) => {
            let mut lines_of: Vec<Vec<u32>> = vec![Vec::new(); senders.len()];
            for logged in waiting.values().flatten() {
                lines_of[logged.sender].push(logged.line);
            }
            let findings = senders
                .iter()
                .zip(&mut lines_of)
                .filter(|(_, lines)| !lines.is_empty())
                .map(|(sender, lines)| {
                    lines.sort_unstable();
                    let what = format!(
                        "{}: {} message(s) logged but not confirmed (allowed: the client \
                         stopped before their answers, or records them elsewhere)",
                        sender.sender,
                        lines.len()
                    );
                    limit.finding(what, log.path(), lines)
                })
                .collect();
            limit.observation("logged-unconfirmed", title, findings)
        }
        _ => skipped(
            "logged-unconfirmed",
            title,
            false,
            "needs both log.txt and respuestas.txt".into(),
        ),
    });
    checks.push(complete_check(limit, &files_read));
    Activity1Report {
        holds: all_hold(&checks),
        files: files_read,
        senders,
        confirmed,
        errors_by_code,
        checks,
    }
}

/// How many lines of `log` hold `message` (for the few unmatched ones).
fn log_count(log: &LogFile, message: &str) -> usize {
    log.records()
        .filter(|(_, record)| record.as_ref().is_ok_and(|record| record.text == message))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::Status;

    fn file(name: &str, text: &str) -> LogFile {
        LogFile::from_bytes(name.into(), text.as_bytes().to_vec())
    }

    fn answer(message: &str) -> String {
        format!(
            "2019-10-05 01:57:38 -> {}\n",
            protocol::escape::escape(&protocol::sentences::server_received(message))
        )
    }

    fn status(report: &Activity1Report, id: &str) -> Status {
        report
            .checks
            .iter()
            .find(|check| check.id == id)
            .unwrap()
            .status
    }

    const LIMIT: Limit = Limit { max: 10 };

    #[test]
    fn agreeing_files_hold_per_sender() {
        let log = file(
            "log.txt",
            "10.0.0.2:1 -> Hola\n10.0.0.3:7 -> Hola\n10.0.0.2:1 -> two\\nlines\n",
        );
        let answers = file(
            "respuestas.txt",
            &[answer("Hola"), answer("two\nlines"), answer("Hola")].concat(),
        );
        let report = check(Some(&log), Some(&answers), &LIMIT);
        assert!(report.holds, "{report:#?}");
        assert_eq!(report.confirmed, 3);
        assert_eq!(report.senders.len(), 2);
        assert_eq!(
            (report.senders[0].logged, report.senders[0].confirmed),
            (2, 2)
        );
        assert_eq!(
            (report.senders[1].first_line, report.senders[1].confirmed),
            (2, 1)
        );
        assert_eq!(status(&report, "logged-unconfirmed"), Status::Holds);
    }

    #[test]
    fn a_confirmation_nobody_sent_breaks_the_guarantee_with_its_line() {
        let log = file("log.txt", "10.0.0.2:1 -> Hola\n10.0.0.2:1 -> exit\n");
        let answers = file(
            "respuestas.txt",
            &[answer("Hola"), answer("Hola"), answer("Esistemas")].concat(),
        );
        let report = check(Some(&log), Some(&answers), &LIMIT);
        assert!(!report.holds);
        let broken = &report
            .checks
            .iter()
            .find(|c| c.id == "confirmed-logged")
            .unwrap();
        assert_eq!(broken.status, Status::Broken);
        assert_eq!(broken.findings.len(), 2);
        assert_eq!(broken.findings[0].lines, [2]);
        assert!(broken.findings[0]
            .what
            .contains("'Hola' confirmed 2 times but logged once"));
        assert_eq!(broken.findings[1].lines, [3]);
        assert!(
            broken.findings[1].what.contains("nobody sent"),
            "{}",
            broken.findings[1].what
        );
        // The unconfirmed "exit" is noted, with its line.
        let noted = report
            .checks
            .iter()
            .find(|c| c.id == "logged-unconfirmed")
            .unwrap();
        assert_eq!(noted.status, Status::Note);
        assert_eq!(noted.findings[0].lines, [2]);
    }

    #[test]
    fn error_answers_are_counted_and_bad_lines_named() {
        let log = file("log.txt", "10.0.0.2:1 -> Hola\nnot an address -> x\n");
        let answers = file(
            "respuestas.txt",
            "2019-10-05 01:57:39 -> ERR TOO_LARGE frame of 70000 bytes\n\
             2019-10-05 01:57:39 -> Su mensaje 'x' ha sido registrado en el dn1.\n\
             2019-10-05 01:57:39 -> El servidor ha recibido satisfactoriamente su mensaje 'Ho",
        );
        let report = check(Some(&log), Some(&answers), &LIMIT);
        assert_eq!(report.errors_by_code["TOO_LARGE"].count, 1);
        assert_eq!(status(&report, "readable"), Status::Broken);
        let readable = &report.checks[0];
        assert_eq!(readable.findings.len(), 2);
        assert_eq!(readable.findings[0].lines, [2]);
        assert_eq!(readable.findings[1].lines, [2]);
        assert_eq!(status(&report, "complete"), Status::Note);
        assert_eq!(report.files[1].incomplete_line, Some(3));
    }

    #[test]
    fn a_missing_file_skips_the_cross_checks() {
        let log = file("log.txt", "10.0.0.2:1 -> Hola\n");
        let report = check(Some(&log), None, &LIMIT);
        assert!(report.holds);
        assert_eq!(status(&report, "confirmed-logged"), Status::Skipped);
    }
}

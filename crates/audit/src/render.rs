//! The report as a table a person reads at a glance: per activity, the
//! files read, the counts, then every check on one line with `ok`,
//! `BROKEN`, `note` or `skipped`, and under each finding its file and line
//! numbers; a last line says whether every guarantee holds.

use std::fmt::Write as _;

use crate::{
    activity2::heartbeat::HeartbeatReport, Activity1Report, Activity2Report, Check, ErrorCounts,
    Finding, Report, Status,
};

/// The whole report as text.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    if let Some(activity1) = &report.activity1 {
        activity1_section(&mut out, activity1);
    }
    if let Some(activity2) = &report.activity2 {
        activity2_section(&mut out, activity2);
    }
    let broken: Vec<String> = [
        report.activity1.as_ref().map(|a| ("Activity 1", &a.checks)),
        report.activity2.as_ref().map(|a| ("Activity 2", &a.checks)),
    ]
    .into_iter()
    .flatten()
    .flat_map(|(activity, checks)| {
        checks
            .iter()
            .filter(|check| check.status == Status::Broken)
            .map(move |check| format!("{} ({activity})", check.id))
    })
    .collect();
    if broken.is_empty() {
        out.push_str("audit: every guarantee holds\n");
    } else {
        let _ = writeln!(out, "audit: BROKEN: {}", broken.join(", "));
    }
    out
}

fn activity1_section(out: &mut String, report: &Activity1Report) {
    out.push_str("Activity 1\n");
    files(out, &report.files);
    let mut rows = vec![cells(["sender", "logged", "confirmed", "lines"])];
    for sender in &report.senders {
        rows.push(vec![
            sender.sender.clone(),
            sender.logged.to_string(),
            sender.confirmed.to_string(),
            format!("{}-{}", sender.first_line, sender.last_line),
        ]);
    }
    if report.senders.is_empty() {
        out.push_str("  no message in log.txt\n");
    } else {
        columns(out, "  ", &rows, &[false, true, true, false]);
    }
    let _ = writeln!(
        out,
        "  confirmations in respuestas.txt: {}",
        report.confirmed
    );
    errors(out, &report.errors_by_code);
    checks(out, &report.checks);
}

fn activity2_section(out: &mut String, report: &Activity2Report) {
    out.push_str("Activity 2\n");
    files(out, &report.files);
    let mut rows = vec![cells([
        "datanode",
        "stored",
        "confirmed",
        "recorded",
        "share",
    ])];
    for row in &report.datanodes {
        rows.push(vec![
            row.datanode.clone(),
            if row.data_file {
                row.stored.to_string()
            } else {
                "no data.txt".to_owned()
            },
            row.confirmed.to_string(),
            row.recorded.to_string(),
            format!("{:.1}%", row.share_confirmed * 100.0),
        ]);
    }
    if report.datanodes.is_empty() {
        out.push_str("  no datanode named in any file\n");
    } else {
        columns(out, "  ", &rows, &[false, true, true, true, true]);
    }
    errors(out, &report.errors_by_code);
    match &report.placement {
        Some(placement) => {
            let _ = writeln!(
                out,
                "  placement over {} datanodes ({} messages in {}): chi-square {:.2}, {} degree(s) of freedom, p = {:.3}\n    {}",
                placement.datanodes,
                placement.messages,
                placement.counted_in,
                placement.chi_square,
                placement.degrees_of_freedom,
                placement.p_value,
                placement.verdict
            );
        }
        None => {
            out.push_str("  placement: not tested (needs two datanodes and a confirmed message)\n")
        }
    }
    if let Some(heartbeat) = &report.heartbeat {
        heartbeat_section(out, heartbeat);
    }
    checks(out, &report.checks);
}

fn heartbeat_section(out: &mut String, heartbeat: &HeartbeatReport) {
    let (Some(first), Some(last)) = (&heartbeat.first_round, &heartbeat.last_round) else {
        out.push_str("  heartbeat: no round yet\n");
        return;
    };
    let _ = writeln!(
        out,
        "  heartbeat: {} rounds, {} (line {}) to {} (line {})",
        heartbeat.rounds, first.time, first.line, last.time, last.line
    );
    let mut rows = vec![cells([
        "datanode",
        "rounds",
        "active",
        "first round",
        "last round",
        "changes of state",
    ])];
    for timeline in &heartbeat.datanodes {
        let state = |active| if active { "active" } else { "inactive" };
        let mut changes: Vec<String> = timeline
            .changes
            .iter()
            .take(6)
            .map(|change| {
                format!(
                    "{} at {} (line {})",
                    state(change.active),
                    change.at.time,
                    change.at.line
                )
            })
            .collect();
        if timeline.changes.len() > 6 {
            changes.push(format!("and {} more", timeline.changes.len() - 6));
        }
        if changes.is_empty() {
            changes.push(format!(
                "none ({} throughout)",
                state(timeline.first_active)
            ));
        }
        rows.push(vec![
            timeline.datanode.clone(),
            timeline.rounds.to_string(),
            format!("{:.1}%", timeline.share_active * 100.0),
            format!(
                "{} at {}",
                timeline.first_round.round, timeline.first_round.time
            ),
            format!(
                "{} at {}",
                timeline.last_round.round, timeline.last_round.time
            ),
            changes.join("; "),
        ]);
    }
    columns(
        out,
        "    ",
        &rows,
        &[false, true, true, false, false, false],
    );
}

fn files(out: &mut String, files: &[crate::logfile::FileSummary]) {
    let rows: Vec<Vec<String>> = files
        .iter()
        .map(|file| {
            let mut lines = format!("{} lines", file.lines);
            if let Some(line) = file.incomplete_line {
                let _ = write!(lines, ", line {line} incomplete (left out)");
            }
            vec![file.path.display().to_string(), lines]
        })
        .collect();
    columns(out, "  ", &rows, &[false, false]);
}

fn errors(out: &mut String, errors: &ErrorCounts) {
    if errors.is_empty() {
        out.push_str("  error answers: none\n");
        return;
    }
    let listed: Vec<String> = errors
        .iter()
        .map(|(code, seen)| format!("{code} {} (first at line {})", seen.count, seen.first_line))
        .collect();
    let _ = writeln!(out, "  error answers: {}", listed.join(", "));
}

fn checks(out: &mut String, checks: &[Check]) {
    out.push_str("  checks\n");
    for check in checks {
        let status = match check.status {
            Status::Holds => "ok",
            Status::Broken => "BROKEN",
            Status::Note => "note",
            Status::Skipped => "skipped",
        };
        let _ = write!(out, "    {status:<8}{}", check.title);
        match &check.skipped_because {
            Some(because) => {
                let _ = writeln!(out, " ({because})");
            }
            None => out.push('\n'),
        }
        for finding in &check.findings {
            finding_lines(out, finding);
        }
        if check.more_findings > 0 {
            let _ = writeln!(
                out,
                "            and {} more like these (--max-lines)",
                check.more_findings
            );
        }
    }
}

fn finding_lines(out: &mut String, finding: &Finding) {
    let _ = writeln!(out, "            {}", finding.what);
    let numbers: Vec<String> = finding.lines.iter().map(u32::to_string).collect();
    let more = if finding.more_lines > 0 {
        format!(" and {} more", finding.more_lines)
    } else {
        String::new()
    };
    let noun = if finding.lines.len() + finding.more_lines == 1 {
        "line"
    } else {
        "lines"
    };
    let _ = writeln!(
        out,
        "              {} {noun} {}{more}",
        finding.file.display(),
        numbers.join(", ")
    );
}

fn cells<const N: usize>(names: [&str; N]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

/// `rows` in aligned columns, numbers (`right[i]`) to the right; the last
/// column is not padded.
fn columns(out: &mut String, indent: &str, rows: &[Vec<String>], right: &[bool]) {
    let count = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..count)
        .map(|i| {
            rows.iter()
                .filter_map(|row| row.get(i))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        out.push_str(indent);
        for (i, cell) in row.iter().enumerate() {
            let last = i + 1 == row.len();
            let pad = widths[i] - cell.chars().count();
            if right.get(i).copied().unwrap_or(false) {
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                if !last {
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            if !last {
                out.push_str("  ");
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_numbers_right() {
        let mut out = String::new();
        let rows = vec![
            cells(["name", "n"]),
            cells(["dn1", "1000"]),
            cells(["datanode22", "7"]),
        ];
        columns(&mut out, "", &rows, &[false, true]);
        assert_eq!(
            out,
            "name           n\ndn1         1000\ndatanode22     7\n"
        );
    }
}

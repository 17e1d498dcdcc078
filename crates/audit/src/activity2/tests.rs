//! Made-up runs, each with one kind of disagreement (or none), checked
//! whole through [`check`].

use super::*;
use crate::findings::Status;
use protocol::{escape::escape, sentences};

const LIMIT: Limit = Limit { max: 10 };
const T: &str = "2026-01-01 12:00:00";

/// A run written as the nodes write it.
#[derive(Default)]
struct Run {
    cliente: String,
    server: String,
    data: BTreeMap<String, String>,
    heartbeat: Option<String>,
}

impl Run {
    /// Three datanodes with a data.txt each (empty).
    fn new() -> Run {
        let mut run = Run::default();
        for name in ["dn1", "dn2", "dn3"] {
            run.data.insert(name.to_owned(), String::new());
        }
        run
    }

    fn line(file: &mut String, text: &str) {
        file.push_str(&format!("{T} -> {}\n", escape(text)));
    }

    fn store(&mut self, node: &str, message: &str) -> &mut Self {
        Run::line(self.data.get_mut(node).unwrap(), message);
        self
    }

    fn record(&mut self, node: &str, message: &str) -> &mut Self {
        Run::line(&mut self.server, &sentences::datanode_stored(node, message));
        self
    }

    fn confirm(&mut self, node: &str, message: &str) -> &mut Self {
        Run::line(
            &mut self.cliente,
            &sentences::headnode_stored(message, node),
        );
        self
    }

    /// A message stored, recorded and confirmed, as a clean run does.
    fn deliver(&mut self, node: &str, message: &str) -> &mut Self {
        self.store(node, message)
            .record(node, message)
            .confirm(node, message)
    }

    fn logs(&self) -> Activity2Logs {
        let file =
            |name: &str, text: &str| LogFile::from_bytes(name.into(), text.as_bytes().to_vec());
        Activity2Logs {
            cliente: Some(file("registro_cliente.txt", &self.cliente)),
            server: Some(file("registro_server.txt", &self.server)),
            heartbeat: self
                .heartbeat
                .as_deref()
                .map(|text| file("heartbeat_server.txt", text)),
            data: self
                .data
                .iter()
                .map(|(name, text)| (name.clone(), file(&format!("{name}/data.txt"), text)))
                .collect(),
        }
    }

    fn report(&self) -> Activity2Report {
        check(&self.logs(), &LIMIT)
    }
}

fn check_of<'r>(report: &'r Activity2Report, id: &str) -> &'r Check {
    report
        .checks
        .iter()
        .find(|check| check.id == id)
        .unwrap_or_else(|| panic!("no check {id}"))
}

/// The ids of the checks that are not `Holds`.
fn flagged(report: &Activity2Report) -> Vec<(&'static str, Status)> {
    report
        .checks
        .iter()
        .filter(|check| check.status != Status::Holds)
        .map(|check| (check.id, check.status))
        .collect()
}

#[test]
fn a_clean_run_holds_and_counts_per_datanode() {
    let mut run = Run::new();
    run.deliver("dn1", "Hola")
        .deliver("dn2", "Hola")
        .deliver("dn3", "two\nlines")
        .deliver("dn1", "Hola");
    Run::line(
        &mut run.cliente,
        "ERR UNAVAILABLE no datanode could store the message within 10s",
    );
    let report = run.report();
    assert!(report.holds, "{report:#?}");
    assert_eq!(flagged(&report), []);
    assert_eq!(report.confirmed, 4);
    let dn1 = &report.datanodes[0];
    assert_eq!(
        (
            dn1.datanode.as_str(),
            dn1.stored,
            dn1.confirmed,
            dn1.recorded
        ),
        ("dn1", 2, 2, 2)
    );
    assert_eq!(dn1.share_confirmed, 0.5);
    assert_eq!(report.errors_by_code["UNAVAILABLE"].count, 1);
    assert_eq!(report.errors_by_code["UNAVAILABLE"].first_line, 5);
    let placement = report.placement.unwrap();
    assert_eq!((placement.datanodes, placement.messages), (3, 4));
}

#[test]
fn a_confirmation_missing_from_its_datanode_is_broken_with_its_line() {
    let mut run = Run::new();
    run.deliver("dn1", "Hola")
        .record("dn2", "Adiós")
        .confirm("dn2", "Adiós");
    // Stored on another datanode than the answer names.
    run.store("dn3", "Adiós");
    let report = run.report();
    assert!(!report.holds);
    assert_eq!(
        flagged(&report),
        [
            ("confirmed-stored", Status::Broken),
            ("recorded-stored", Status::Broken),
            // A copy of a confirmed message, where the answer did not say.
            ("stored-twice", Status::Note)
        ]
    );
    let finding = &check_of(&report, "confirmed-stored").findings[0];
    assert_eq!(finding.lines, [2]);
    assert_eq!(finding.file, std::path::Path::new("registro_cliente.txt"));
    assert!(
        finding.what.contains(
            "'Adiós' confirmed once by dn2, which holds it never (1 copy on other datanodes)"
        ),
        "{}",
        finding.what
    );
    assert_eq!(check_of(&report, "recorded-stored").findings[0].lines, [2]);
}

#[test]
fn multiplicities_count_a_repeated_message_stored_too_few_times() {
    let mut run = Run::new();
    run.deliver("dn1", "Hola")
        .record("dn1", "Hola")
        .confirm("dn1", "Hola");
    let report = run.report();
    let finding = &check_of(&report, "confirmed-stored").findings[0];
    assert!(
        finding
            .what
            .contains("confirmed 2 times by dn1, which holds it once"),
        "{}",
        finding.what
    );
    // The confirmation beyond the one copy.
    assert_eq!(finding.lines, [2]);
}

#[test]
fn a_confirmation_the_headnode_never_recorded_is_broken() {
    let mut run = Run::new();
    run.deliver("dn1", "Hola")
        .store("dn2", "Sockets")
        .confirm("dn2", "Sockets");
    let report = run.report();
    assert_eq!(flagged(&report), [("confirmed-recorded", Status::Broken)]);
    assert_eq!(
        check_of(&report, "confirmed-recorded").findings[0].lines,
        [2]
    );
}

#[test]
fn a_record_the_client_lacks_is_a_note() {
    let mut run = Run::new();
    run.deliver("dn1", "Hola")
        .store("dn2", "Sockets")
        .record("dn2", "Sockets");
    let report = run.report();
    assert!(report.holds);
    assert_eq!(
        flagged(&report),
        [
            ("recorded-unconfirmed", Status::Note),
            ("stored-unconfirmed", Status::Note)
        ]
    );
    let finding = &check_of(&report, "recorded-unconfirmed").findings[0];
    assert_eq!(
        (finding.file.to_str(), finding.lines.as_slice()),
        (Some("registro_server.txt"), &[2][..])
    );
}

#[test]
fn second_copies_are_stored_twice_and_allowed() {
    let mut run = Run::new();
    // dn2 wrote it and died before confirming; dn3 stored it again.
    run.store("dn2", "Hola")
        .deliver("dn3", "Hola")
        .deliver("dn3", "Adiós")
        .store("dn3", "Adiós");
    let report = run.report();
    assert!(report.holds, "{report:#?}");
    assert_eq!(flagged(&report), [("stored-twice", Status::Note)]);
    let findings = &check_of(&report, "stored-twice").findings;
    assert_eq!(findings.len(), 2);
    assert_eq!(
        (findings[0].file.to_str(), findings[0].lines.as_slice()),
        (Some("dn2/data.txt"), &[1][..])
    );
    assert_eq!(
        (findings[1].file.to_str(), findings[1].lines.as_slice()),
        (Some("dn3/data.txt"), &[3][..])
    );
}

#[test]
fn a_confirmation_in_no_data_file_is_a_message_nobody_sent() {
    let mut run = Run::new();
    run.deliver("dn1", "Hola")
        .record("dn1", "HolaSistemas")
        .confirm("dn1", "HolaSistemas");
    let report = run.report();
    let what = &check_of(&report, "confirmed-stored").findings[0].what;
    assert!(what.contains("nobody sent"), "{what}");
}

#[test]
fn a_datanode_without_its_data_file_is_named() {
    let mut run = Run::new();
    run.deliver("dn1", "Hola")
        .record("dn9", "Hola")
        .confirm("dn9", "Hola");
    let report = run.report();
    let what = &check_of(&report, "confirmed-stored").findings[0].what;
    assert!(what.contains("dn9, whose data.txt was not read"), "{what}");
    assert!(
        !report
            .datanodes
            .iter()
            .find(|row| row.datanode == "dn9")
            .unwrap()
            .data_file
    );
}

#[test]
fn foreign_lines_are_broken_and_a_torn_last_line_only_noted() {
    let mut run = Run::new();
    run.deliver("dn1", "Hola");
    run.server.push_str("garbage\n");
    run.cliente
        .push_str("2026-01-01 12:00:01 -> Su mensaje 'Ad");
    let report = run.report();
    assert_eq!(
        flagged(&report),
        [("readable", Status::Broken), ("complete", Status::Note)]
    );
    let readable = check_of(&report, "readable");
    assert_eq!(
        readable.findings[0].file,
        std::path::Path::new("registro_server.txt")
    );
    assert_eq!(readable.findings[0].lines, [2]);
    assert_eq!(check_of(&report, "complete").findings[0].lines, [2]);
    assert_eq!(report.files[0].incomplete_line, Some(2));
}

#[test]
fn the_seeds_spaced_names_match_their_folders() {
    let mut run = Run::default();
    run.data.insert("datanode2".into(), String::new());
    run.store("datanode2", "Distribuidos");
    Run::line(
        &mut run.cliente,
        "Su mensaje 'Distribuidos' ha sido registrado en el datanode 2.",
    );
    Run::line(
        &mut run.server,
        "El datanode 2 ha registrado satisfactoriamente el mensaje: 'Distribuidos'.",
    );
    let report = run.report();
    assert!(report.holds, "{report:#?}");
    assert_eq!(report.datanodes.len(), 1);
    assert_eq!(report.datanodes[0].confirmed, 1);
}

#[test]
fn the_heartbeat_timeline_is_in_the_report_and_counts_for_placement() {
    let mut run = Run::new();
    run.data.remove("dn3");
    run.deliver("dn1", "Hola").deliver("dn2", "Hola");
    let mut beats = String::new();
    for (name, active) in [
        ("dn1", true),
        ("dn2", true),
        ("dn3", true),
        ("dn1", true),
        ("dn2", false),
        ("dn3", true),
    ] {
        let sentence = if active {
            sentences::heartbeat_active(name)
        } else {
            sentences::heartbeat_inactive(name)
        };
        Run::line(&mut beats, &sentence);
    }
    run.heartbeat = Some(beats);
    let report = run.report();
    let heartbeat = report.heartbeat.as_ref().unwrap();
    assert_eq!(heartbeat.rounds, 2);
    assert_eq!(heartbeat.datanodes[1].changes[0].at.line, 5);
    // dn3 was active, though it stored nothing: a candidate all the same.
    assert_eq!(report.placement.as_ref().unwrap().datanodes, 3);
}

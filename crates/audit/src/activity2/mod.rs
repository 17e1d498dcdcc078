//! Activity 2: the client's, the headnode's and the datanodes' files
//! checked against each other.
//!
//! [`ledger`] reads `registro_cliente.txt`, `registro_server.txt` and every
//! `data.txt` into counts per (message, datanode); [`checks`] states the
//! delivery guarantee of docs/ACTIVITY2.md as inequalities between them;
//! [`placement`] tests the spread over the datanodes against uniform;
//! [`heartbeat`] reads `heartbeat_server.txt` as a timeline per datanode.
//!
//! Files are read in the order the nodes write them backwards: the client's
//! first, then the headnode's, then the datanodes'. A datanode appends a
//! message before it confirms, the headnode records the confirmation before
//! it answers, and the client records the answer last; so every line read
//! from the client's file was already in the others when they were read,
//! and a run still going audits clean (its newer copies show as stored but
//! not yet confirmed).

pub mod checks;
pub mod heartbeat;
pub mod ledger;
pub mod placement;

use std::collections::BTreeMap;

use serde::Serialize;

use self::{heartbeat::HeartbeatReport, ledger::Ledger, placement::Placement};
use crate::{
    answers::ErrorCounts,
    findings::{all_hold, Check, Limit},
    layout::Activity2Files,
    logfile::{FileSummary, LogFile},
    readable::{complete_check, readable_check, UnreadableLines},
    Error,
};

/// The audit of Activity 2.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Activity2Report {
    /// Whether every guarantee holds.
    pub holds: bool,
    /// The files read.
    pub files: Vec<FileSummary>,
    /// Messages per datanode.
    pub datanodes: Vec<DatanodeRow>,
    /// Confirmations in registro_cliente.txt.
    pub confirmed: u64,
    /// Error answers in registro_cliente.txt, by code.
    pub errors_by_code: ErrorCounts,
    /// Placement fairness, when there is something to test.
    pub placement: Option<Placement>,
    /// The heartbeat timeline, when heartbeat_server.txt was read.
    pub heartbeat: Option<HeartbeatReport>,
    /// The checks.
    pub checks: Vec<Check>,
}

/// One datanode's messages, as each file counts them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatanodeRow {
    /// Its name (the seed's `datanode 2` read as `datanode2`).
    pub datanode: String,
    /// Whether its data.txt was read.
    pub data_file: bool,
    /// Lines of its data.txt.
    pub stored: u64,
    /// Confirmations naming it in registro_cliente.txt.
    pub confirmed: u64,
    /// Lines naming it in registro_server.txt.
    pub recorded: u64,
    /// Its share of the confirmations, from 0 to 1.
    pub share_confirmed: f64,
}

/// The files of one run, read.
#[derive(Debug, Default)]
pub struct Activity2Logs {
    /// registro_cliente.txt.
    pub cliente: Option<LogFile>,
    /// registro_server.txt.
    pub server: Option<LogFile>,
    /// heartbeat_server.txt.
    pub heartbeat: Option<LogFile>,
    /// Each datanode's data.txt, by the name of its folder.
    pub data: BTreeMap<String, LogFile>,
}

impl Activity2Logs {
    /// Reads the files found, the client's first (see the module docs).
    pub fn read(files: &Activity2Files) -> Result<Activity2Logs, Error> {
        let read =
            |path: &Option<std::path::PathBuf>| path.as_deref().map(LogFile::read).transpose();
        let cliente = read(&files.registro_cliente)?;
        let server = read(&files.registro_server)?;
        let data = files
            .data
            .iter()
            .map(|(name, path)| Ok((name.clone(), LogFile::read(path)?)))
            .collect::<Result<_, Error>>()?;
        let heartbeat = read(&files.heartbeat)?;
        Ok(Activity2Logs {
            cliente,
            server,
            heartbeat,
            data,
        })
    }
}

/// Reads and checks the files found.
pub fn audit(files: &Activity2Files, limit: &Limit) -> Result<Activity2Report, Error> {
    Ok(check(&Activity2Logs::read(files)?, limit))
}

/// Checks the files of one run against each other.
pub fn check(logs: &Activity2Logs, limit: &Limit) -> Activity2Report {
    let mut ledger = Ledger::default();
    let mut sources = checks::Sources {
        cliente: logs.cliente.as_ref().map(LogFile::path),
        server: logs.server.as_ref().map(LogFile::path),
        data: BTreeMap::new(),
    };
    for (name, file) in &logs.data {
        ledger.read_data(name, file);
        sources.data.insert(ledger.names.id(name), file.path());
    }
    if let Some(file) = &logs.cliente {
        ledger.read_cliente(file);
    }
    if let Some(file) = &logs.server {
        ledger.read_server(file);
    }
    let (heartbeat, heartbeat_unreadable) = match &logs.heartbeat {
        Some(file) => {
            let (report, unreadable) = heartbeat::read(file, &mut ledger.names);
            (Some(report), unreadable)
        }
        None => (None, UnreadableLines::default()),
    };

    let rows = rows(&ledger, &sources);
    let placement = placement_test(&rows, logs, heartbeat.as_ref());

    let mut readable: Vec<(&std::path::Path, &UnreadableLines)> = Vec::new();
    let mut files = Vec::new();
    if let Some(file) = &logs.cliente {
        files.push(file.summary());
        readable.push((file.path(), &ledger.cliente_unreadable));
    }
    if let Some(file) = &logs.server {
        files.push(file.summary());
        readable.push((file.path(), &ledger.server_unreadable));
    }
    if let Some(file) = &logs.heartbeat {
        files.push(file.summary());
        readable.push((file.path(), &heartbeat_unreadable));
    }
    for (node, path) in &sources.data {
        let file = &logs.data[ledger.names.name(*node)];
        files.push(file.summary());
        readable.push((path, &ledger.data_unreadable[node]));
    }
    let mut all_checks = vec![readable_check(limit, &readable)];
    all_checks.extend(checks::checks(&ledger, &sources, limit));
    all_checks.push(complete_check(limit, &files));
    Activity2Report {
        holds: all_hold(&all_checks),
        files,
        confirmed: rows.iter().map(|row| row.confirmed).sum(),
        datanodes: rows,
        errors_by_code: ledger.errors_by_code.clone(),
        placement,
        heartbeat,
        checks: all_checks,
    }
}

/// A row per datanode named anywhere, in the order first seen.
fn rows(ledger: &Ledger<'_>, sources: &checks::Sources<'_>) -> Vec<DatanodeRow> {
    let mut rows: Vec<DatanodeRow> = (0..ledger.names.len())
        .map(|node| DatanodeRow {
            datanode: ledger.names.name(node as ledger::NodeId).to_owned(),
            data_file: sources.data.contains_key(&(node as ledger::NodeId)),
            stored: 0,
            confirmed: 0,
            recorded: 0,
            share_confirmed: 0.0,
        })
        .collect();
    for ((_, node), tally) in &ledger.tallies {
        let row = &mut rows[usize::from(*node)];
        row.stored += tally.stored.len() as u64;
        row.confirmed += tally.confirmed.len() as u64;
        row.recorded += tally.recorded.len() as u64;
    }
    let confirmed: u64 = rows.iter().map(|row| row.confirmed).sum();
    if confirmed > 0 {
        for row in &mut rows {
            row.share_confirmed = row.confirmed as f64 / confirmed as f64;
        }
    }
    rows
}

/// The test over the datanodes that could take messages: those with a
/// data.txt or a message, and those a heartbeat found active. Counts come
/// from the headnode's record of placements when it was read.
fn placement_test(
    rows: &[DatanodeRow],
    logs: &Activity2Logs,
    heartbeat: Option<&HeartbeatReport>,
) -> Option<Placement> {
    let ever_active = |name: &str| {
        heartbeat.is_some_and(|report| {
            report
                .datanodes
                .iter()
                .any(|timeline| timeline.datanode == name && timeline.rounds_active > 0)
        })
    };
    let (counted_in, count): (&str, fn(&DatanodeRow) -> u64) = if logs.server.is_some() {
        ("registro_server.txt", |row| row.recorded)
    } else {
        ("registro_cliente.txt", |row| row.confirmed)
    };
    let counts: Vec<u64> = rows
        .iter()
        .filter(|row| row.data_file || count(row) > 0 || ever_active(&row.datanode))
        .map(count)
        .collect();
    placement::test(&counts, counted_in)
}

#[cfg(test)]
mod tests;

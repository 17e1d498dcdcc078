//! The cross-checks of the ledger: the delivery guarantee of
//! docs/ACTIVITY2.md as inequalities between the counts of each (message,
//! datanode) pair, and what at-least-once delivery allows beside them.
//!
//! | check | kind | holds when, for every pair |
//! |---|---|---|
//! | `confirmed-stored` | guarantee 1 | confirmed <= stored |
//! | `confirmed-recorded` | guarantee 1 | confirmed <= recorded |
//! | `recorded-stored` | guarantee 1 | recorded <= stored |
//! | `recorded-unconfirmed` | observation | recorded <= confirmed |
//! | `stored-unconfirmed` | observation | no copy of a message never confirmed |
//! | `stored-twice` | observation | stored <= confirmed |
//!
//! A shortfall quotes the lines beyond what backs them: with `n` copies and
//! `n + 2` confirmations of a pair, the last two confirmations. The count
//! is exact; which two is a choice, since the files do not say which copy
//! answered which confirmation.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use super::ledger::{Ledger, NodeId, Tally};
use crate::findings::{quote, skipped, times, Check, Finding, Limit};

/// The files the checks need, and where they are.
pub struct Sources<'p> {
    /// registro_cliente.txt, if read.
    pub cliente: Option<&'p Path>,
    /// registro_server.txt, if read.
    pub server: Option<&'p Path>,
    /// Each datanode's data.txt, by number.
    pub data: BTreeMap<NodeId, &'p Path>,
}

/// Every cross-check, in the order of the table above.
pub fn checks<'l>(ledger: &'l Ledger<'_>, sources: &Sources<'_>, limit: &Limit) -> Vec<Check> {
    // Confirmations and copies of each message over every datanode.
    let mut per_message: HashMap<&str, (usize, usize)> = HashMap::new();
    for ((message, _), tally) in &ledger.tallies {
        let totals = per_message.entry(message.as_ref()).or_default();
        totals.0 += tally.confirmed.len();
        totals.1 += tally.stored.len();
    }
    let mut pairs: Vec<(&str, NodeId, &Tally)> = ledger
        .tallies
        .iter()
        .map(|((message, node), tally)| (message.as_ref(), *node, tally))
        .collect();
    // Findings in the order of the files' lines, the same on every run.
    pairs.sort_unstable_by_key(|(_, _, tally)| {
        (
            tally.confirmed.first().copied(),
            tally.recorded.first().copied(),
            tally.stored.first().copied(),
        )
    });
    let name = |node| ledger.names.name(node);
    let no_data = "no data.txt was read";
    let mut checks = Vec::new();

    let title =
        "every confirmation in registro_cliente.txt is in the data.txt of the datanode it names"
            .to_owned();
    checks.push(match sources.cliente {
        Some(_) if sources.data.is_empty() => skipped("confirmed-stored", title, true, no_data.into()),
        Some(cliente) => {
            let findings = shortfalls(ledger, &pairs, sources, limit, cliente, |tally| (&tally.confirmed, tally.stored.len()), |message, node, wanted, held| {
                let elsewhere = per_message[message].1 - held;
                let hint = match (per_message[message].1, elsewhere) {
                    (0, _) => " and no data.txt holds it: a message nobody sent (the original's merged messages look so)".to_owned(),
                    (_, 0) => String::new(),
                    (_, n) => format!(" ({} on other datanodes)", times(n).replace("once", "1 copy").replace(" times", " copies")),
                };
                format!("{} confirmed {} by {}, which holds it {}{hint}", quote(message), times(wanted), name(node), times_or_never(held))
            });
            limit.guarantee("confirmed-stored", title, findings)
        }
        None => skipped("confirmed-stored", title, true, "no registro_cliente.txt was read".into()),
    });

    let title =
        "every confirmation in registro_cliente.txt is recorded in registro_server.txt".to_owned();
    checks.push(match (sources.cliente, sources.server) {
        (Some(cliente), Some(_)) => {
            let findings = shortfalls(
                ledger,
                &pairs,
                sources,
                limit,
                cliente,
                |tally| (&tally.confirmed, tally.recorded.len()),
                |message, node, wanted, held| {
                    format!(
                        "{} confirmed {} by {}, recorded {} in registro_server.txt",
                        quote(message),
                        times(wanted),
                        name(node),
                        times_or_never(held)
                    )
                },
            );
            limit.guarantee("confirmed-recorded", title, findings)
        }
        _ => skipped(
            "confirmed-recorded",
            title,
            true,
            "needs registro_cliente.txt and registro_server.txt".into(),
        ),
    });

    let title =
        "every line of registro_server.txt is in the data.txt of the datanode it names".to_owned();
    checks.push(match sources.server {
        Some(_) if sources.data.is_empty() => {
            skipped("recorded-stored", title, true, no_data.into())
        }
        Some(server) => {
            let findings = shortfalls(
                ledger,
                &pairs,
                sources,
                limit,
                server,
                |tally| (&tally.recorded, tally.stored.len()),
                |message, node, wanted, held| {
                    format!(
                        "{} recorded {} from {}, which holds it {}",
                        quote(message),
                        times(wanted),
                        name(node),
                        times_or_never(held)
                    )
                },
            );
            limit.guarantee("recorded-stored", title, findings)
        }
        None => skipped(
            "recorded-stored",
            title,
            true,
            "no registro_server.txt was read".into(),
        ),
    });

    let title = "every line of registro_server.txt reached registro_cliente.txt".to_owned();
    checks.push(match (sources.cliente, sources.server) {
        (Some(_), Some(server)) => {
            let findings = per_datanode(ledger, &pairs, limit, server, |_, tally| surplus(&tally.recorded, tally.confirmed.len()), |node, lines| {
                format!("{} confirmation(s) from {} that registro_cliente.txt lacks (allowed: a client that lost its connection never records the answer)", lines, name(node))
            });
            limit.observation("recorded-unconfirmed", title, findings)
        }
        _ => skipped("recorded-unconfirmed", title, false, "needs registro_cliente.txt and registro_server.txt".into()),
    });

    let title = "every message stored was confirmed".to_owned();
    let unconfirmed = selector::<'l>(|message, tally| {
        if per_message[message].0 == 0 {
            &tally.stored[..]
        } else {
            &[][..]
        }
    });
    checks.push(match sources.cliente {
        Some(_) => {
            let findings = data_findings(ledger, &pairs, sources, limit, unconfirmed, |node, lines| {
                format!("{lines} line(s) of {} hold messages never confirmed (allowed: their answer was an error, or never came)", name(node))
            });
            limit.observation("stored-unconfirmed", title, findings)
        }
        None => skipped("stored-unconfirmed", title, false, "no registro_cliente.txt was read".into()),
    });

    let title = "no message is stored more often than confirmed".to_owned();
    let twice = selector::<'l>(|message, tally| {
        if per_message[message].0 > 0 {
            surplus(&tally.stored, tally.confirmed.len())
        } else {
            &[][..]
        }
    });
    checks.push(match sources.cliente {
        Some(_) => {
            let findings = data_findings(ledger, &pairs, sources, limit, twice, |node, lines| {
                format!("{lines} copies in {} beyond the confirmations of their message (allowed: at least once stores a message again when its datanode failed or stalled before confirming)", name(node))
            });
            limit.observation("stored-twice", title, findings)
        }
        None => skipped("stored-twice", title, false, "no registro_cliente.txt was read".into()),
    });
    checks
}

/// `select` as is: names the lifetime that ties its answer to the tally.
fn selector<'t>(
    select: impl Fn(&str, &'t Tally) -> &'t [u32],
) -> impl Fn(&str, &'t Tally) -> &'t [u32] {
    select
}

/// `lines` past the first `backed`.
fn surplus(lines: &[u32], backed: usize) -> &[u32] {
    lines.get(backed..).unwrap_or(&[])
}

fn times_or_never(n: usize) -> String {
    if n == 0 {
        "never".to_owned()
    } else {
        times(n)
    }
}

/// The pairs whose lines in `file` outnumber what backs them; a datanode
/// with no data.txt is one finding of its own when `counts` needs copies.
fn shortfalls(
    ledger: &Ledger<'_>,
    pairs: &[(&str, NodeId, &Tally)],
    sources: &Sources<'_>,
    limit: &Limit,
    file: &Path,
    counts: impl Fn(&Tally) -> (&Vec<u32>, usize),
    what: impl Fn(&str, NodeId, usize, usize) -> String,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut without_data: HashMap<NodeId, Vec<u32>> = HashMap::new();
    for &(message, node, tally) in pairs {
        let (lines, backing) = counts(tally);
        if lines.len() <= backing {
            continue;
        }
        let needs_copies = backing == tally.stored.len();
        if needs_copies && !sources.data.contains_key(&node) {
            without_data.entry(node).or_default().extend(lines);
            continue;
        }
        findings.push(limit.finding(
            what(message, node, lines.len(), backing),
            file,
            &lines[backing..],
        ));
    }
    let mut without_data: Vec<_> = without_data.into_iter().collect();
    without_data.sort_unstable();
    for (node, mut lines) in without_data {
        lines.sort_unstable();
        findings.push(limit.finding(
            format!(
                "{} line(s) name {}, whose data.txt was not read",
                lines.len(),
                ledger.names.name(node)
            ),
            file,
            &lines,
        ));
    }
    findings
}

/// One finding per datanode, of the lines `select` picks in `file`.
fn per_datanode<'t>(
    ledger: &Ledger<'_>,
    pairs: &[(&str, NodeId, &'t Tally)],
    limit: &Limit,
    file: &Path,
    select: impl Fn(&str, &'t Tally) -> &'t [u32],
    what: impl Fn(NodeId, usize) -> String,
) -> Vec<Finding> {
    let mut lines: Vec<Vec<u32>> = vec![Vec::new(); ledger.names.len()];
    for &(message, node, tally) in pairs {
        lines[usize::from(node)].extend_from_slice(select(message, tally));
    }
    lines
        .into_iter()
        .enumerate()
        .filter(|(_, lines)| !lines.is_empty())
        .map(|(node, mut lines)| {
            lines.sort_unstable();
            let node = node as NodeId;
            limit.finding(what(node, lines.len()), file, &lines)
        })
        .collect()
}

/// [`per_datanode`], each datanode's lines in its own data.txt.
fn data_findings<'t>(
    ledger: &Ledger<'_>,
    pairs: &[(&str, NodeId, &'t Tally)],
    sources: &Sources<'_>,
    limit: &Limit,
    select: impl Fn(&str, &'t Tally) -> &'t [u32],
    what: impl Fn(NodeId, usize) -> String,
) -> Vec<Finding> {
    sources
        .data
        .iter()
        .flat_map(|(&node, &path)| {
            let mine: Vec<_> = pairs
                .iter()
                .copied()
                .filter(|&(_, n, _)| n == node)
                .collect();
            per_datanode(ledger, &mine, limit, path, &select, &what)
        })
        .collect()
}

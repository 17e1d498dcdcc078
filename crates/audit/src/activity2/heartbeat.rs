//! The heartbeat timeline: `heartbeat_server.txt` read as rounds.
//!
//! The headnode writes one round as one batch: a line per known datanode,
//! in registration order, all with the round's time stamp
//! (`El <name> aun está activo.` / `El <name> se encuentra inactivo.`). The
//! file does not number rounds, so a round is recognised as a run of lines
//! with one time stamp and no name twice: a new time stamp, or a name
//! already in the current round, starts the next. (Two rounds within one
//! second, as short test intervals give, are still told apart by the
//! repeated name.) For each datanode the timeline keeps its first and last
//! round, the share of its rounds in which it was active, and every change
//! of state, with its time and line.

use serde::Serialize;

use super::ledger::{timestamped, Names, NodeId};
use crate::{
    logfile::{LogFile, Unreadable},
    readable::UnreadableLines,
};

/// A round, where it is in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoundRef {
    /// Its number, from 1.
    pub round: u32,
    /// Its time stamp.
    pub time: String,
    /// The line.
    pub line: u32,
}

/// One change of a datanode's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The round, time and line that show the new state.
    #[serde(flatten)]
    pub at: RoundRef,
    /// The new state: active or not.
    pub active: bool,
}

/// One datanode's heartbeat history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    /// Its name.
    pub datanode: String,
    /// The first round that names it.
    pub first_round: RoundRef,
    /// The last round that names it.
    pub last_round: RoundRef,
    /// Whether it was active in its first round.
    pub first_active: bool,
    /// Rounds that name it.
    pub rounds: u32,
    /// Of those, rounds in which it was active.
    pub rounds_active: u32,
    /// `rounds_active / rounds`, from 0 to 1.
    pub share_active: f64,
    /// Every change of state after its first round, in order.
    pub changes: Vec<Change>,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeartbeatReport {
    /// Rounds in the file.
    pub rounds: u32,
    /// The first round.
    pub first_round: Option<RoundRef>,
    /// The last round.
    pub last_round: Option<RoundRef>,
    /// Each datanode, in the order first named.
    pub datanodes: Vec<Timeline>,
}

/// Reads `file` into rounds; `names` gives the datanodes their numbers.
pub fn read(file: &LogFile, names: &mut Names) -> (HeartbeatReport, UnreadableLines) {
    let mut unreadable = UnreadableLines::default();
    let mut timelines: Vec<Option<Timeline>> = Vec::new();
    let mut order: Vec<NodeId> = Vec::new();
    let mut round: Option<RoundRef> = None;
    let mut first_round = None;
    let mut in_round: Vec<NodeId> = Vec::new();
    for (line, record) in file.records() {
        let record = match timestamped(record) {
            Ok(record) => record,
            Err(why) => {
                unreadable.add(line, why);
                continue;
            }
        };
        let Some((name, active)) = protocol::sentences::parse_heartbeat(&record.text) else {
            unreadable.add(line, Unreadable::BadSentence);
            continue;
        };
        let node = names.id(name);
        let new_round = match &round {
            Some(current) => current.time != record.left || in_round.contains(&node),
            None => true,
        };
        if new_round {
            let number = round.as_ref().map_or(1, |current| current.round + 1);
            round = Some(RoundRef {
                round: number,
                time: record.left.to_owned(),
                line,
            });
            in_round.clear();
            first_round.get_or_insert_with(|| round.clone().expect("just set"));
        }
        in_round.push(node);
        let at = RoundRef {
            line,
            ..round.clone().expect("a round is open")
        };
        let slot = usize::from(node);
        if timelines.len() <= slot {
            timelines.resize(slot + 1, None);
        }
        match &mut timelines[slot] {
            None => {
                order.push(node);
                timelines[slot] = Some(Timeline {
                    datanode: names.name(node).to_owned(),
                    first_round: at.clone(),
                    last_round: at,
                    first_active: active,
                    rounds: 1,
                    rounds_active: u32::from(active),
                    share_active: 0.0,
                    changes: Vec::new(),
                });
            }
            Some(timeline) => {
                let was_active = timeline
                    .changes
                    .last()
                    .map_or(timeline.first_active, |c| c.active);
                if was_active != active {
                    timeline.changes.push(Change {
                        at: at.clone(),
                        active,
                    });
                }
                timeline.last_round = at;
                timeline.rounds += 1;
                timeline.rounds_active += u32::from(active);
            }
        }
    }
    let datanodes = order
        .into_iter()
        .filter_map(|node| timelines[usize::from(node)].take())
        .map(|mut timeline| {
            timeline.share_active = f64::from(timeline.rounds_active) / f64::from(timeline.rounds);
            timeline
        })
        .collect();
    let report = HeartbeatReport {
        rounds: round.as_ref().map_or(0, |last| last.round),
        first_round,
        last_round: round,
        datanodes,
    };
    (report, unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(time: &str, name: &str, active: bool) -> String {
        let sentence = if active {
            protocol::sentences::heartbeat_active(name)
        } else {
            protocol::sentences::heartbeat_inactive(name)
        };
        format!("2026-01-01 {time} -> {sentence}\n")
    }

    #[test]
    fn rounds_changes_and_shares() {
        let text = [
            beat("12:00:00", "dn1", true),
            // Second round, same second: told apart by the repeated name.
            beat("12:00:00", "dn1", true),
            beat("12:00:00", "dn2", true),
            beat("12:00:05", "dn1", true),
            beat("12:00:05", "dn2", false),
            beat("12:00:10", "dn1", true),
            beat("12:00:10", "dn2", false),
            beat("12:00:15", "dn1", true),
            beat("12:00:15", "dn2", true),
            "2026-01-01 12:00:15 -> El dn3 duerme.\n".to_owned(),
        ]
        .concat();
        let file = LogFile::from_bytes("heartbeat_server.txt".into(), text.into_bytes());
        let (report, unreadable) = read(&file, &mut Names::default());
        assert_eq!(report.rounds, 5);
        assert_eq!(report.first_round.as_ref().unwrap().line, 1);
        assert_eq!(
            report.last_round.as_ref().unwrap().time,
            "2026-01-01 12:00:15"
        );
        let dn1 = &report.datanodes[0];
        assert_eq!(
            (dn1.rounds, dn1.rounds_active, dn1.changes.len()),
            (5, 5, 0)
        );
        let dn2 = &report.datanodes[1];
        assert_eq!(dn2.first_round.round, 2);
        assert_eq!((dn2.rounds, dn2.rounds_active), (4, 2));
        assert_eq!(dn2.share_active, 0.5);
        let changes: Vec<(u32, u32, bool)> = dn2
            .changes
            .iter()
            .map(|c| (c.at.round, c.at.line, c.active))
            .collect();
        assert_eq!(changes, [(3, 5, false), (5, 9, true)]);
        assert_eq!(dn2.changes[0].at.time, "2026-01-01 12:00:05");
        assert_eq!(unreadable.lines(), [(Unreadable::BadSentence, vec![10])]);
    }
}

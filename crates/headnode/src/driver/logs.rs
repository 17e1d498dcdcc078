//! The headnode's two log files, as the driver writes them.
//!
//! # registro_server.txt
//!
//! The driver writes it: the lines of every batch answered in a pass go out
//! with one `write(2)` (and, with `--fsync always`, one shared sync), and
//! only then are those batches' outcomes sent to their sessions, so a line
//! is in the file before its client is answered. Datanodes confirm in any
//! order, but each session's lines must be in the order of its messages,
//! batch after batch, so that registro_server.txt and the client's
//! registro_cliente.txt tell the same story line for line: the driver
//! numbers each session's batches as they are submitted and holds a batch
//! that is answered before an earlier one of the same session until that
//! one is logged. Lines of different sessions interleave batch by batch.
//!
//! # heartbeat_server.txt
//!
//! Each round's report goes to a task of its own ([`write_heartbeats`]), so
//! that a slow disk never holds up routing.

use journal::{timestamp, Durability, Journal, Record};
use protocol::{sentences, ErrorCode, ErrorReply};
use tokio::sync::mpsc;

use super::{Answer, Order, Report, SessionId, Waiter};
use crate::{idmap::IdMap, router::Outcome};

/// A batch is answered: log it if every earlier batch of its session is,
/// else hold it until they are.
pub(super) fn log_in_session_order(
    orders: &mut IdMap<SessionId, Order>,
    registro: &mut Registro,
    token: Waiter,
    outcomes: Vec<Outcome>,
) {
    let Some(order) = orders.get_mut(&token.session) else {
        // Every submission made an entry; this cannot happen.
        registro.log(token.reply, outcomes);
        return;
    };
    if token.seq != order.logged {
        order.early.insert(token.seq, (token.reply, outcomes));
        return;
    }
    registro.log(token.reply, outcomes);
    order.logged += 1;
    while let Some((reply, outcomes)) = order.early.remove(&order.logged) {
        registro.log(reply, outcomes);
        order.logged += 1;
    }
    if order.logged == order.submitted {
        orders.remove(&token.session);
    }
}

/// registro_server.txt and the answers waiting for this pass's write.
pub(super) struct Registro {
    journal: Journal,
    /// This pass's lines; taken only while they are written.
    record: Option<Record>,
    stamp: Option<String>,
    answers: Vec<(Answer, Vec<Outcome>)>,
}

impl Registro {
    pub(super) fn new(journal: Journal) -> Self {
        Registro {
            journal,
            record: Some(Record::new()),
            stamp: None,
            answers: Vec::new(),
        }
    }

    /// Adds a batch's lines, `<time> -> El <name> ha registrado
    /// satisfactoriamente el mensaje: '<message>'.` per stored message,
    /// built from what the router knows (the datanode's reply was checked
    /// to be exactly this sentence, and is not used), and keeps its answer
    /// until they are written.
    pub(super) fn log(&mut self, reply: Answer, outcomes: Vec<Outcome>) {
        let record = self.record.get_or_insert_with(Record::new);
        // A copy answered again was logged when it was first confirmed.
        let mut stored = outcomes
            .iter()
            .flatten()
            .filter(|stored| !stored.again)
            .peekable();
        if stored.peek().is_some() {
            let stamp = self.stamp.get_or_insert_with(timestamp);
            for stored in stored {
                let parts = sentences::datanode_stored_parts(&stored.node, stored.message());
                record.push_parts(stamp, &parts);
            }
        }
        self.answers.push((reply, outcomes));
    }

    /// Writes this pass's lines with one write, then answers their batches.
    pub(super) fn write(&mut self) {
        if self.answers.is_empty() {
            return;
        }
        self.stamp = None;
        let answers = std::mem::take(&mut self.answers);
        let mut record = self.record.take().unwrap_or_default();
        if record.is_empty() {
            self.record = Some(record);
            send_outcomes(answers, Ok(()));
            return;
        }
        // The write(2) happens here, in the order of the passes; only an
        // fsync (with --fsync always) is left to wait for.
        let written = self.journal.write(record.as_bytes());
        record.clear();
        self.record = Some(record);
        match written {
            Err(err) => send_outcomes(answers, Err(err)),
            Ok(_) if self.journal.durability() != Durability::Always => {
                send_outcomes(answers, Ok(()))
            }
            Ok(written) => {
                tokio::spawn(async move { send_outcomes(answers, written.durable().await) });
            }
        }
    }
}

/// Sends each batch its outcomes; if registro_server.txt could not be
/// written, what was stored is reported as a storage error instead.
fn send_outcomes(answers: Vec<(Answer, Vec<Outcome>)>, written: Result<(), journal::Error>) {
    if let Err(err) = &written {
        tracing::error!(%err, "cannot write registro_server.txt");
    }
    for (reply, mut outcomes) in answers {
        if let Err(err) = &written {
            for outcome in &mut outcomes {
                if let Ok(stored) = outcome {
                    *outcome = Err(ErrorReply::new(
                        ErrorCode::Storage,
                        format!(
                            "stored on {} but registro_server.txt cannot be written: {err}",
                            stored.node
                        ),
                    ));
                }
            }
        }
        // The session may have gone (its client vanished).
        let _ = reply.send(outcomes);
    }
}

/// Appends each heartbeat report to heartbeat_server.txt, one line per
/// datanode: `YYYY-mm-dd HH:MM:SS -> El <name> aun está activo.` or
/// `... -> El <name> se encuentra inactivo.`
pub(super) async fn write_heartbeats(
    journal: Journal,
    mut reports: mpsc::UnboundedReceiver<Report>,
) {
    let mut record = Record::new();
    while let Some(report) = reports.recv().await {
        let stamp = timestamp();
        record.clear();
        for (name, active) in &report {
            let sentence = if *active {
                sentences::heartbeat_active(name)
            } else {
                sentences::heartbeat_inactive(name)
            };
            record.push(&stamp, &sentence);
        }
        tracing::debug!(?report, "heartbeat round");
        if let Err(err) = journal.append(record.as_bytes()).await {
            tracing::error!(path = %journal.path().display(), %err, "cannot write the heartbeat log");
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use journal::Durability;
    use protocol::{sentences, ErrorCode, ErrorReply};
    use tokio::sync::oneshot;

    use super::*;
    use crate::router::Stored;

    fn stored(node: &str, message: &str) -> Outcome {
        Ok(Stored::new(node.into(), message.into(), false))
    }

    /// The messages of a journal's lines, without their time stamps.
    pub(in crate::driver) fn lines(journal: &Journal) -> Vec<String> {
        std::fs::read_to_string(journal.path())
            .unwrap()
            .lines()
            .map(|line| journal::parse_record(line).unwrap().1)
            .collect()
    }

    #[tokio::test]
    async fn a_session_is_logged_in_its_order_and_answered_after_its_lines() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path().join("registro.txt"), Durability::Never).unwrap();
        let mut registro = Registro::new(journal.clone());
        let mut orders: IdMap<SessionId, Order> = IdMap::default();
        let (one, other) = (SessionId(1), SessionId(2));
        let mut waiters = Vec::new();
        let mut receivers = Vec::new();
        for (session, seq) in [(one, 0), (one, 1), (one, 2), (other, 0)] {
            orders.entry(session).or_default().submitted += 1;
            let (reply, answer) = oneshot::channel();
            waiters.push(Some(Waiter {
                session,
                seq,
                reply,
            }));
            receivers.push(answer);
        }
        let mut finish = |index: usize, outcomes: Vec<Outcome>| {
            let waiter = waiters[index].take().unwrap();
            log_in_session_order(&mut orders, &mut registro, waiter, outcomes);
            registro.write();
        };
        // The third batch of session 1 is answered first: held.
        finish(2, vec![stored("dn1", "c")]);
        assert!(lines(&journal).is_empty());
        assert!(
            receivers[2].try_recv().is_err(),
            "not answered before its line"
        );
        // Another session is not held up by it.
        finish(3, vec![stored("dn3", "x")]);
        assert_eq!(
            lines(&journal),
            ["El dn3 ha registrado satisfactoriamente el mensaje: 'x'."]
        );
        assert_eq!(receivers[3].try_recv().unwrap().len(), 1);
        // The first arrives: it is logged, the third still waits for the second.
        let refused = Err(ErrorReply::new(ErrorCode::Storage, "disk full"));
        finish(0, vec![stored("dn2", "a"), refused]);
        finish(1, vec![stored("dn1", "b")]);
        let expected: Vec<String> = [("dn3", "x"), ("dn2", "a"), ("dn1", "b"), ("dn1", "c")]
            .iter()
            .map(|(node, message)| sentences::datanode_stored(node, message))
            .collect();
        assert_eq!(lines(&journal), expected, "no line for the refused message");
        for receiver in &mut receivers[..3] {
            assert!(receiver.try_recv().is_ok());
        }
        assert!(orders.is_empty(), "nothing kept once every batch is logged");
    }
}

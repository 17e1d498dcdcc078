//! What a run achieved, and how each answer is recorded.

use std::time::Duration;

use protocol::Reply;

use crate::Error;

/// What a run achieved.
#[derive(Debug)]
pub struct Summary {
    /// Messages written to the connection.
    pub sent: u64,
    /// Messages answered `OK`.
    pub confirmed: u64,
    /// Messages answered with an error.
    pub errors: u64,
    /// Time from the connection to the last answer.
    pub elapsed: Duration,
    /// Why the run stopped early (connection lost, unreadable reply, input
    /// error), if it did.
    pub failure: Option<Error>,
    /// Whether sending was stopped by a stop request before the messages
    /// ran out (what was sent was still answered).
    pub interrupted: bool,
    /// Connections made again after one was lost.
    pub reconnects: u64,
    /// Messages sent again, with their ids, on a new connection.
    pub resent: u64,
}

impl Summary {
    /// Nothing sent yet.
    pub fn empty() -> Summary {
        Summary {
            sent: 0,
            confirmed: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            failure: None,
            interrupted: false,
            reconnects: 0,
            resent: 0,
        }
    }

    /// Messages sent that got no answer (the connection was lost).
    pub fn unanswered(&self) -> u64 {
        self.sent - self.confirmed - self.errors
    }

    /// Whether every message sent was confirmed and the run ended normally
    /// (not stopped early, not interrupted).
    pub fn all_confirmed(&self) -> bool {
        self.failure.is_none() && !self.interrupted && self.confirmed == self.sent
    }
}

impl std::fmt::Display for Summary {
    /// `sent 501, confirmed 501, errors 0, 8123 msg/s in 61.7 ms` (or `in
    /// 2.35 s` from a second on), with the
    /// unanswered count and the failure when there are.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {}, confirmed {}, errors {}",
            self.sent, self.confirmed, self.errors
        )?;
        if self.unanswered() > 0 {
            write!(f, ", unanswered {}", self.unanswered())?;
        }
        if self.reconnects > 0 {
            write!(
                f,
                ", reconnects {}, resent {}",
                self.reconnects, self.resent
            )?;
        }
        let seconds = self.elapsed.as_secs_f64();
        let rate = if seconds > 0.0 {
            self.confirmed as f64 / seconds
        } else {
            0.0
        };
        // Below a second, milliseconds: "in 0.00 s" says nothing.
        if seconds < 1.0 {
            write!(f, ", {rate:.0} msg/s in {:.1} ms", seconds * 1000.0)?;
        } else {
            write!(f, ", {rate:.0} msg/s in {seconds:.2} s")?;
        }
        if let Some(failure) = &self.failure {
            write!(f, " (stopped early: {failure})")?;
        } else if self.interrupted {
            write!(f, " (interrupted: sending stopped on request)")?;
        }
        Ok(())
    }
}

/// How an answer is recorded: the `OK` sentence without `OK `, as the
/// original client wrote it, or `ERR <CODE> <reason>`. The flag says whether
/// the message was confirmed. `None` for a reply that cannot answer a
/// message (`PONG`).
pub fn answer_text(reply: &Reply) -> Option<(String, bool)> {
    match reply {
        Reply::Ok(sentence) => Some((sentence.clone(), true)),
        Reply::Err(err) => Some((err.to_string(), false)),
        Reply::Pong => None,
    }
}

#[cfg(test)]
mod tests {
    use protocol::{ErrorCode, ErrorReply};

    use super::*;

    #[test]
    fn answers_are_recorded_like_the_original_client() {
        let ok = Reply::Ok("El servidor ha recibido satisfactoriamente su mensaje 'Hola'.".into());
        assert_eq!(
            answer_text(&ok),
            Some((
                "El servidor ha recibido satisfactoriamente su mensaje 'Hola'.".into(),
                true
            ))
        );
        let err = Reply::Err(ErrorReply::new(ErrorCode::TooLarge, "frame of 9 bytes"));
        assert_eq!(
            answer_text(&err),
            Some(("ERR TOO_LARGE frame of 9 bytes".into(), false))
        );
        assert_eq!(answer_text(&Reply::Pong), None);
    }

    #[test]
    fn the_summary_reads_as_one_line() {
        let summary = Summary {
            sent: 501,
            confirmed: 501,
            errors: 0,
            elapsed: Duration::from_millis(500),
            failure: None,
            interrupted: false,
            reconnects: 0,
            resent: 0,
        };
        assert_eq!(
            summary.to_string(),
            "sent 501, confirmed 501, errors 0, 1002 msg/s in 500.0 ms"
        );
        assert!(summary.all_confirmed());
        let long = Summary {
            sent: 500,
            confirmed: 500,
            errors: 0,
            elapsed: Duration::from_millis(2500),
            failure: None,
            interrupted: false,
            reconnects: 0,
            resent: 0,
        };
        assert!(long.to_string().ends_with("200 msg/s in 2.50 s"), "{long}");
        let interrupted = Summary {
            interrupted: true,
            ..summary
        };
        assert_eq!(
            interrupted.to_string(),
            "sent 501, confirmed 501, errors 0, 1002 msg/s in 500.0 ms \
             (interrupted: sending stopped on request)"
        );
    }
}

//! The client's message ids: each message drawn from the source is
//! numbered and kept until its answer is recorded, so that after a lost
//! connection every unanswered message can be sent again, with the same
//! id, in order (`SENDID <client> <seq> <acked> <message>`,
//! `docs/PROTOCOL.md`).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use protocol::{ClientId, ErrorCode, Tag};

use crate::messages::Source;

/// The messages of a run, shared by the successive connections: whichever
/// connection's sender is running takes the next one.
#[derive(Debug, Clone)]
pub struct Feed(pub(crate) Arc<tokio::sync::Mutex<Source>>);

impl From<Source> for Feed {
    fn from(source: Source) -> Self {
        Feed(Arc::new(tokio::sync::Mutex::new(source)))
    }
}

/// The ids of a run: the client id, the next number, and the messages
/// taken from the source and not yet answered, oldest first.
#[derive(Debug)]
pub struct Tagging {
    client: ClientId,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Numbers given so far: the next message is `given + 1`.
    given: u64,
    unanswered: VecDeque<(u64, String)>,
}

impl Tagging {
    /// Ids for client `client`, from 1.
    pub fn new(client: ClientId) -> Arc<Tagging> {
        Arc::new(Tagging {
            client,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers `message`, keeps it until answered, and returns its tag.
    pub fn number(&self, message: &str) -> Tag {
        let mut state = self.lock();
        state.given += 1;
        let seq = state.given;
        state.unanswered.push_back((seq, message.to_owned()));
        self.tag(&state, seq)
    }

    fn tag(&self, state: &State, seq: u64) -> Tag {
        let acked = state
            .unanswered
            .front()
            .map_or(state.given, |(first, _)| first - 1);
        Tag {
            client: self.client.clone(),
            seq,
            acked: acked.min(seq - 1),
        }
    }

    /// The oldest unanswered message got its answer.
    pub fn answered(&self) {
        self.lock().unanswered.pop_front();
    }

    /// Every message not yet answered, with its tag, oldest first: what a
    /// new connection sends first.
    pub fn unanswered(&self) -> Vec<(Tag, String)> {
        let state = self.lock();
        state
            .unanswered
            .iter()
            .map(|(seq, message)| (self.tag(&state, *seq), message.clone()))
            .collect()
    }

    /// Messages numbered so far.
    pub fn given(&self) -> u64 {
        self.lock().given
    }
}

/// Whether an `ERR` answer to a tagged message says "not now" rather than
/// "never": the message is sent again on the next connection instead of
/// being recorded.
pub fn is_transient(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::ShuttingDown | ErrorCode::Unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acked_follows_the_oldest_unanswered_message() {
        let ids = Tagging::new(ClientId::new("c1").unwrap());
        let a = ids.number("a");
        let b = ids.number("b");
        assert_eq!((a.seq, a.acked, b.seq, b.acked), (1, 0, 2, 0));
        ids.answered();
        let c = ids.number("c");
        assert_eq!((c.seq, c.acked), (3, 1));
        let resend: Vec<_> = ids
            .unanswered()
            .into_iter()
            .map(|(t, m)| (t.seq, t.acked, m))
            .collect();
        assert_eq!(resend, [(2, 1, "b".into()), (3, 1, "c".into())]);
        ids.answered();
        ids.answered();
        assert!(ids.unanswered().is_empty());
        assert_eq!(ids.number("d").acked, 3);
    }
}

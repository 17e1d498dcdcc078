//! Messages waiting for an outcome, and the rule that each gets exactly one.
//!
//! A client session submits its messages as a *batch*; the batch is
//! answered, in one [`super::Action::Done`], once every one of its messages
//! has an outcome. Each message remembers the link it was last sent on
//! (`on`), the links that refused it, and the last refusal.
//!
//! A message is answered exactly once: [`Pending::settle`] records the first
//! outcome for it and ignores every later one. In particular the first `OK`
//! wins, from whichever link it comes (a stalled datanode that wakes up may
//! confirm before the replacement it failed over to does; either
//! confirmation names a datanode that wrote the message). A message can
//! thus be written twice (at-least-once), but is confirmed once.
//!
//! A message with no candidate datanode is *parked* (`on` is `None`) with a
//! deadline, in the order it was parked; the router places it when a
//! datanode becomes active, or answers it `ERR UNAVAILABLE` at the deadline.

use std::{collections::VecDeque, time::Instant};

use protocol::{sentences, ErrorReply, Tag};

use super::{LinkId, MessageText, Outcome};
use crate::idmap::IdMap;

/// One message: its batch and its place in the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct MsgId {
    pub batch: u64,
    pub index: usize,
}

/// A message without an outcome yet.
#[derive(Debug)]
pub(super) struct Msg {
    pub text: MessageText,
    /// The link it was last sent on; `None` while parked.
    pub on: Option<LinkId>,
    /// Links that answered `ERR` to it.
    pub refused: Vec<LinkId>,
    pub last_error: Option<ErrorReply>,
    /// Its tag, if it is the copy of a tagged message that is placed (a
    /// copy sent again meanwhile waits for it instead).
    pub tag: Option<Tag>,
    /// The datanode that may hold it, once a tagged message was sent (see
    /// `dedupe.rs`).
    pub holder: Option<super::dedupe::Node>,
}

#[derive(Debug)]
enum Slot {
    Pending(Msg),
    Done(Outcome),
}

#[derive(Debug)]
struct Batch<T> {
    token: T,
    slots: Vec<Slot>,
    remaining: usize,
}

/// A parked message and when it gives up.
#[derive(Debug, Clone, Copy)]
pub(super) struct Parked {
    pub msg: MsgId,
    pub deadline: Instant,
}

/// The batches not fully answered, and the parked messages.
#[derive(Debug)]
pub(super) struct Pending<T> {
    batches: IdMap<u64, Batch<T>>,
    next_batch: u64,
    parked: VecDeque<Parked>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Pending {
            batches: IdMap::default(),
            next_batch: 0,
            parked: VecDeque::new(),
        }
    }
}

impl<T> Pending<T> {
    /// Adds a batch of `messages` (not empty), those with a tag in `tags`
    /// as their whole argument; returns their ids, in order.
    pub fn add(
        &mut self,
        token: T,
        messages: Vec<String>,
        tags: &[Option<Tag>],
    ) -> impl Iterator<Item = MsgId> {
        let batch = self.next_batch;
        self.next_batch += 1;
        let count = messages.len();
        let slots = messages
            .into_iter()
            .enumerate()
            .map(|(index, text)| {
                let text = match tags.get(index) {
                    Some(Some(tag)) => MessageText::tagged(text, tag),
                    _ => MessageText::plain(text),
                };
                Slot::Pending(Msg {
                    text,
                    on: None,
                    refused: Vec::new(),
                    last_error: None,
                    tag: None,
                    holder: None,
                })
            })
            .collect();
        self.batches.insert(
            batch,
            Batch {
                token,
                slots,
                remaining: count,
            },
        );
        (0..count).map(move |index| MsgId { batch, index })
    }

    /// Number of batches not fully answered.
    pub fn batches(&self) -> usize {
        self.batches.len()
    }

    /// Message `id`, if it has no outcome yet.
    pub fn get_mut(&mut self, id: MsgId) -> Option<&mut Msg> {
        match self.batches.get_mut(&id.batch)?.slots.get_mut(id.index)? {
            Slot::Pending(msg) => Some(msg),
            Slot::Done(_) => None,
        }
    }

    /// The text of message `id`, while it is known: until it has an
    /// outcome, and after, if it was stored, until its batch is answered.
    pub fn text(&self, id: MsgId) -> Option<&str> {
        match self.batches.get(&id.batch)?.slots.get(id.index)? {
            Slot::Pending(msg) => Some(msg.text.message()),
            Slot::Done(Ok(stored)) => Some(stored.message()),
            Slot::Done(Err(_)) => None,
        }
    }

    /// Whether `sentence`, from datanode `name`, confirms message `id`: it
    /// is that datanode's sentence for the message. Once the message's text
    /// is gone (its batch was answered; it failed), a late confirmation can
    /// only be checked for its shape and name; it changes nothing anyway.
    pub fn confirms(&self, id: MsgId, name: &str, sentence: &str) -> bool {
        match self.text(id) {
            Some(message) => sentences::is_datanode_stored(sentence, name, message),
            None => sentences::parse_datanode_stored(sentence).is_some_and(|(by, _)| by == name),
        }
    }

    /// Whether message `id` still waits and is on no link.
    pub fn is_parked(&self, id: MsgId) -> bool {
        matches!(
            self.batches
                .get(&id.batch)
                .and_then(|b| b.slots.get(id.index)),
            Some(Slot::Pending(Msg { on: None, .. }))
        )
    }

    /// Every message without an outcome.
    pub fn ids(&self) -> Vec<MsgId> {
        self.batches
            .iter()
            .flat_map(|(&batch, b)| {
                b.slots
                    .iter()
                    .enumerate()
                    .filter(|(_, slot)| matches!(slot, Slot::Pending(_)))
                    .map(move |(index, _)| MsgId { batch, index })
            })
            .collect()
    }

    /// Records `outcome` as message `id`'s, unless it has one already.
    /// Returns its batch, token and outcomes in order, when that completed
    /// it.
    pub fn settle(&mut self, id: MsgId, outcome: Outcome) -> Option<(T, Vec<Outcome>)> {
        let batch = self.batches.get_mut(&id.batch)?;
        let slot = batch.slots.get_mut(id.index)?;
        if !matches!(slot, Slot::Pending(_)) {
            return None;
        }
        *slot = Slot::Done(outcome);
        batch.remaining -= 1;
        if batch.remaining > 0 {
            return None;
        }
        let batch = self.batches.remove(&id.batch).expect("present");
        let outcomes = batch
            .slots
            .into_iter()
            .map(|slot| match slot {
                Slot::Done(outcome) => outcome,
                Slot::Pending(_) => unreachable!("every slot is done"),
            })
            .collect();
        Some((batch.token, outcomes))
    }

    /// Parks message `id` until `deadline`.
    pub fn park(&mut self, id: MsgId, deadline: Instant) {
        self.parked.push_back(Parked { msg: id, deadline });
    }

    /// Whether nothing is parked.
    pub fn none_parked(&self) -> bool {
        self.parked.is_empty()
    }

    /// The earliest deadline of a parked message.
    pub fn next_parked_deadline(&self) -> Option<Instant> {
        self.parked.front().map(|parked| parked.deadline)
    }

    /// Takes every parked message that is still parked, in parking order.
    pub fn unpark_all(&mut self) -> Vec<Parked> {
        let parked = std::mem::take(&mut self.parked);
        parked
            .into_iter()
            .filter(|parked| self.is_parked(parked.msg))
            .collect()
    }

    /// Takes the next parked message whose deadline has come, if any.
    pub fn next_expired(&mut self, now: Instant) -> Option<MsgId> {
        while self.parked.front().is_some_and(|p| now >= p.deadline) {
            let parked = self.parked.pop_front().expect("front exists");
            if self.is_parked(parked.msg) {
                return Some(parked.msg);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use protocol::ErrorCode;

    use super::*;

    fn refused() -> Outcome {
        Err(ErrorReply::new(ErrorCode::Storage, "disk full"))
    }

    #[test]
    fn a_batch_completes_once_each_message_is_settled_once() {
        let mut pending = Pending::default();
        let ids: Vec<MsgId> = pending
            .add("t", vec!["a".into(), "b".into()], &[])
            .collect();
        assert_eq!(pending.settle(ids[1], refused()), None);
        assert_eq!(pending.settle(ids[1], refused()), None, "ignored");
        assert!(pending.get_mut(ids[1]).is_none());
        assert_eq!(pending.ids(), [ids[0]]);
        let (token, outcomes) = pending.settle(ids[0], refused()).unwrap();
        assert_eq!((token, outcomes.len()), ("t", 2));
        assert_eq!(pending.batches(), 0);
        assert_eq!(pending.settle(ids[0], refused()), None, "batch gone");
    }

    #[test]
    fn a_tagged_message_keeps_its_whole_argument_and_knows_its_message() {
        let mut pending = Pending::default();
        let tag = |seq, acked| {
            Some(Tag {
                client: protocol::ClientId::new("c0ffee").unwrap(),
                seq,
                acked,
            })
        };
        // As the session passes them on: a tagged one whole, leading zeros
        // and all; a plain one as it came.
        let texts = vec![
            "c0ffee 007 03 Hola mundo".into(),
            "plano".into(),
            "c0ffee 8 3  x".into(),
        ];
        let ids: Vec<MsgId> = pending
            .add("t", texts, &[tag(7, 3), None, tag(8, 3)])
            .collect();
        let messages: Vec<String> = ids
            .iter()
            .map(|&id| pending.get_mut(id).unwrap().text.message().to_owned())
            .collect();
        assert_eq!(messages, ["Hola mundo", "plano", " x"]);
        assert_eq!(pending.text(ids[0]), Some("Hola mundo"));
        assert_eq!(
            pending.get_mut(ids[0]).unwrap().text.whole(),
            "c0ffee 007 03 Hola mundo"
        );
    }

    #[test]
    fn parked_messages_expire_in_order_and_settled_ones_are_skipped() {
        let now = Instant::now();
        let second = Duration::from_secs(1);
        let mut pending = Pending::default();
        let ids: Vec<MsgId> = pending
            .add(1, vec!["a".into(), "b".into(), "c".into()], &[])
            .collect();
        for (n, id) in ids.iter().enumerate() {
            pending.park(*id, now + second * n as u32);
        }
        assert_eq!(pending.next_parked_deadline(), Some(now));
        pending.settle(ids[1], refused());
        assert_eq!(pending.next_expired(now + second * 5), Some(ids[0]));
        assert_eq!(pending.next_expired(now + second * 5), Some(ids[2]));
        assert_eq!(pending.next_expired(now + second * 5), None);
        assert!(pending.none_parked());
    }

    #[test]
    fn unparking_keeps_order_and_drops_what_was_placed() {
        let now = Instant::now();
        let mut pending = Pending::default();
        let ids: Vec<MsgId> = pending.add(1, vec!["a".into(), "b".into()], &[]).collect();
        pending.park(ids[0], now);
        pending.park(ids[1], now);
        pending.get_mut(ids[0]).unwrap().on = Some(LinkId(1));
        let unparked: Vec<MsgId> = pending.unpark_all().iter().map(|p| p.msg).collect();
        assert_eq!(unparked, [ids[1]]);
        assert!(pending.none_parked());
    }
}

//! The datanode table and each datanode's link.
//!
//! A datanode is known by its name from its first registration on, and
//! stays in the table (in registration order, which placement and reports
//! follow) for the life of the headnode, so that every heartbeat round can
//! report it. At most one *link* (a registered TCP connection) belongs to a
//! name at a time. A datanode is *active* when it may receive messages: it
//! is linked, and since it registered or last answered a heartbeat it has
//! neither missed one nor left a `STORE` unconfirmed for longer than the
//! store timeout.
//!
//! Requests on a link are answered in order, so each link keeps the FIFO of
//! requests it owes replies to ([`Owed`]); a reply is matched with the
//! front of that queue. The frames decided for a link wait in its `out`
//! buffer until the driver takes them.

use std::{collections::VecDeque, net::SocketAddr, sync::Arc, time::Instant};

use bytes::BytesMut;
use protocol::link::{encode_ping, encode_store, encode_store_passed_on};

use super::{pending::MsgId, LinkId};
use crate::idmap::IdMap;

/// One datanode, linked or not.
#[derive(Debug)]
pub(super) struct Datanode {
    pub name: Arc<str>,
    pub link: Option<Link>,
    pub active: bool,
    /// Its last heartbeat answer, for the status page.
    pub heard: Option<super::status::Heard>,
    /// Messages moved from it to another datanode (it dropped or went
    /// silent with them), for the status page.
    pub failed_over: u64,
}

impl Datanode {
    /// Its link, if it is linked and active: whether it may get messages.
    pub fn serving(&self) -> Option<&Link> {
        self.link.as_ref().filter(|_| self.active)
    }

    fn serving_mut(&mut self) -> Option<&mut Link> {
        self.link.as_mut().filter(|_| self.active)
    }
}

/// A request a link owes a reply to.
#[derive(Debug)]
pub(super) enum Owed {
    /// A `STORE` of message `msg`, sent at `sent`.
    Store { msg: MsgId, sent: Instant },
    /// The `PING` of heartbeat round `round`.
    Ping { round: u64 },
}

/// One registered connection.
#[derive(Debug)]
pub(super) struct Link {
    pub id: LinkId,
    /// The datanode's address, for the logs.
    pub peer: SocketAddr,
    /// Requests sent and not answered yet, oldest first.
    queue: VecDeque<Owed>,
    /// How many of them are `STORE`s: the load least-loaded looks at.
    pub stores: usize,
    /// The heartbeat round this datanode has been asked about and has not
    /// answered yet.
    pub awaiting: Option<u64>,
    /// Frames decided for this link and not yet taken by the driver.
    pub out: BytesMut,
}

impl Link {
    fn new(id: LinkId, peer: SocketAddr) -> Self {
        Link {
            id,
            peer,
            queue: VecDeque::new(),
            stores: 0,
            awaiting: None,
            out: BytesMut::new(),
        }
    }

    /// Sends `STORE <text>` for message `msg`, or, if tagged, `STOREID
    /// <text>`, `text` being then its `SENDID`'s argument.
    pub fn send_store(&mut self, msg: MsgId, tagged: bool, text: &str, now: Instant) {
        if tagged {
            encode_store_passed_on(&mut self.out, text);
        } else {
            encode_store(&mut self.out, text);
        }
        self.queue.push_back(Owed::Store { msg, sent: now });
        self.stores += 1;
    }

    /// Asks about heartbeat round `round`: by a `PING` on the link when
    /// `ping`, else by the multicast probe the router sends once for all.
    pub fn ask(&mut self, round: u64, ping: bool) {
        if ping {
            encode_ping(&mut self.out);
            self.queue.push_back(Owed::Ping { round });
        }
        self.awaiting = Some(round);
    }

    /// The request the next reply answers, taken off the queue.
    pub fn take_owed(&mut self) -> Option<Owed> {
        let owed = self.queue.pop_front()?;
        if matches!(owed, Owed::Store { .. }) {
            self.stores -= 1;
        }
        Some(owed)
    }

    /// Puts back what [`Link::take_owed`] took (the reply did not fit).
    pub fn restore_owed(&mut self, owed: Owed) {
        if matches!(owed, Owed::Store { .. }) {
            self.stores += 1;
        }
        self.queue.push_front(owed);
    }

    /// When the oldest `STORE` still owed was sent.
    pub fn oldest_store(&self) -> Option<Instant> {
        self.queue.iter().find_map(|owed| match owed {
            Owed::Store { sent, .. } => Some(*sent),
            Owed::Ping { .. } => None,
        })
    }

    /// The messages whose `STORE`s are owed, oldest first.
    pub fn store_ids(&self) -> Vec<MsgId> {
        self.queue
            .iter()
            .filter_map(|owed| match owed {
                Owed::Store { msg, .. } => Some(*msg),
                Owed::Ping { .. } => None,
            })
            .collect()
    }
}

/// Every datanode ever registered, and which link belongs to which.
#[derive(Debug, Default)]
pub(super) struct Datanodes {
    nodes: Vec<Datanode>,
    by_link: IdMap<LinkId, usize>,
}

impl Datanodes {
    /// Number of datanodes known.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Every datanode, in registration order.
    pub fn iter(&self) -> std::slice::Iter<'_, Datanode> {
        self.nodes.iter()
    }

    /// Datanode number `index`.
    pub fn get(&self, index: usize) -> &Datanode {
        &self.nodes[index]
    }

    /// Datanode number `index`, to change.
    pub fn get_mut(&mut self, index: usize) -> &mut Datanode {
        &mut self.nodes[index]
    }

    /// The index of datanode `name`, if it ever registered.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| &*node.name == name)
    }

    /// The index of the datanode `link` belongs to, while it does.
    pub fn of_link(&self, link: LinkId) -> Option<usize> {
        self.by_link.get(&link).copied()
    }

    /// The index of datanode `name`, added (unlinked, inactive) if new.
    pub fn find_or_add(&mut self, name: &str) -> usize {
        self.find(name).unwrap_or_else(|| {
            self.nodes.push(Datanode {
                name: name.into(),
                link: None,
                active: false,
                heard: None,
                failed_over: 0,
            });
            self.nodes.len() - 1
        })
    }

    /// Gives datanode `index` the new link `link` from `peer` (it has
    /// none).
    pub fn attach(&mut self, index: usize, link: LinkId, peer: SocketAddr) {
        debug_assert!(self.nodes[index].link.is_none());
        self.nodes[index].link = Some(Link::new(link, peer));
        self.by_link.insert(link, index);
    }

    /// Takes datanode `index`'s link away (it is gone); it is inactive.
    pub fn detach(&mut self, index: usize) -> Option<Link> {
        let node = &mut self.nodes[index];
        node.active = false;
        let link = node.link.take()?;
        self.by_link.remove(&link.id);
        Some(link)
    }

    /// Unlinks every datanode; returns the links that were open.
    pub fn detach_all(&mut self) -> Vec<LinkId> {
        self.by_link.clear();
        self.nodes
            .iter_mut()
            .filter_map(|node| {
                node.active = false;
                node.link.take().map(|link| link.id)
            })
            .collect()
    }

    /// Every link, to send on.
    pub fn links_mut(&mut self) -> impl Iterator<Item = &mut Link> {
        self.nodes.iter_mut().filter_map(|node| node.link.as_mut())
    }

    /// The link of datanode `index` if it is serving.
    pub fn serving_mut(&mut self, index: usize) -> Option<&mut Link> {
        self.nodes[index].serving_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(index: usize) -> MsgId {
        MsgId { batch: 0, index }
    }

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    #[test]
    fn a_link_owes_in_order_and_counts_its_stores() {
        let now = Instant::now();
        let mut link = Link::new(LinkId(1), peer());
        link.send_store(msg(0), false, "a", now);
        link.ask(7, true);
        link.send_store(msg(1), false, "b", now);
        assert_eq!((link.stores, link.awaiting), (2, Some(7)));
        assert_eq!(link.store_ids(), [msg(0), msg(1)]);
        assert_eq!(link.oldest_store(), Some(now));
        let first = link.take_owed().unwrap();
        assert!(matches!(first, Owed::Store { msg: m, .. } if m == msg(0)));
        assert_eq!(link.stores, 1);
        link.restore_owed(first);
        assert_eq!(link.stores, 2);
        link.take_owed();
        assert!(matches!(link.take_owed(), Some(Owed::Ping { round: 7 })));
        assert_eq!(link.store_ids(), [msg(1)]);
    }

    #[test]
    fn names_keep_their_place_across_links() {
        let mut table = Datanodes::default();
        let dn1 = table.find_or_add("dn1");
        let dn2 = table.find_or_add("dn2");
        table.attach(dn1, LinkId(1), peer());
        table.attach(dn2, LinkId(2), peer());
        assert_eq!(table.of_link(LinkId(2)), Some(dn2));
        assert!(table.detach(dn1).is_some());
        assert_eq!(table.of_link(LinkId(1)), None);
        assert_eq!(table.find_or_add("dn1"), dn1, "known by its name");
        table.attach(dn1, LinkId(3), peer());
        assert_eq!(table.of_link(LinkId(3)), Some(dn1));
        assert_eq!(table.detach_all(), [LinkId(3), LinkId(2)]);
        assert_eq!(table.len(), 2);
        assert!(table.iter().all(|node| node.link.is_none() && !node.active));
    }
}

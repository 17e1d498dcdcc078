//! Scenarios across the router's parts: registration, protocol
//! violations, shutdown, and a long randomized run that checks every
//! promise at once.

use super::sim::*;

#[test]
fn a_live_name_is_taken_but_a_dead_one_can_come_back() {
    let mut sim = Sim::three(Placement::Random);
    let err = sim.register(9, "dn1").unwrap_err();
    assert_eq!(err.code, ErrorCode::NameTaken);
    assert_eq!(
        sim.register(9, "bad name").unwrap_err().code,
        ErrorCode::BadArgument
    );
    // After its link dropped, the name is free again.
    sim.drop_link(1);
    sim.register(10, "dn1").unwrap();
    assert!(sim.router.status("dn1").unwrap().active);
    // A holder that went silent (link not yet seen dead) is replaced,
    // and its old link closed.
    sim.advance(1000 * MS);
    sim.serve(10, None);
    sim.serve(3, None);
    sim.advance(300 * MS);
    assert!(!sim.router.status("dn2").unwrap().active);
    sim.register(11, "dn2").unwrap();
    assert!(sim.closed.contains(&LinkId(2)));
    assert!(sim.router.status("dn2").unwrap().active);
    // Replies on the replaced link are ignored.
    sim.router.reply(LinkId(2), Reply::Pong, sim.now);
    sim.collect();
    assert_eq!(sim.router.active_nodes().len(), 3);
}

#[test]
fn a_reply_nobody_asked_for_closes_the_link() {
    let mut sim = Sim::three(Placement::Random);
    sim.router.reply(LinkId(2), Reply::Pong, sim.now);
    sim.collect();
    assert!(sim.closed.contains(&LinkId(2)));
    assert!(!sim.router.status("dn2").unwrap().linked);
    let mut sim = Sim::three(Placement::RoundRobin);
    sim.submit(1, &["x"]);
    assert_eq!(sim.stores_owed(1), 1);
    sim.router.reply(LinkId(1), Reply::Pong, sim.now);
    sim.collect();
    assert!(sim.closed.contains(&LinkId(1)), "PONG where OK was owed");
    assert_eq!(sim.stores_owed(2), 1, "its message failed over");
}

/// Each way of confirming what was not asked: the liar's link is closed,
/// its message fails over, and no outcome names the liar.
#[test]
fn a_confirmation_that_is_not_the_datanode_s_sentence_closes_its_link() {
    type Lie = fn(&str, &str) -> String;
    let lies: [(&str, Lie); 6] = [
        ("a bare OK", |_, _| String::new()),
        ("another message", |name, _| {
            sentences::datanode_stored(name, "not what you sent")
        }),
        ("another datanode's name", |_, message| {
            sentences::datanode_stored("dn2", message)
        }),
        ("a forged second line", |name, message| {
            let sentence = sentences::datanode_stored(name, message);
            format!("{sentence}\n2026-12-01 15:15:07 -> {sentence}")
        }),
        ("the server's sentence", |_, message| {
            sentences::server_received(message)
        }),
        ("its own sentence, in lower case", |name, message| {
            sentences::datanode_stored(name, message).to_lowercase()
        }),
    ];
    for (what, lie) in lies {
        let mut sim = Sim::three(Placement::RoundRobin);
        sim.submit(1, &["Hola"]);
        assert!(sim.answer_with(1, |name, request| {
            let Request::Store(message) = request else {
                panic!("{request:?}")
            };
            Reply::Ok(lie(name, message))
        }));
        assert!(sim.closed.contains(&LinkId(1)), "{what}: link kept");
        assert!(!sim.router.status("dn1").unwrap().linked, "{what}");
        assert!(!sim.done.contains_key(&1), "{what}: answered from the lie");
        assert_eq!(sim.stores_owed(2), 1, "{what}: failed over");
        sim.serve_all();
        assert_eq!(sim.stored_on(1), ["dn2"], "{what}");
        assert_confirmations_hold(&sim);
    }
}

/// Replies come in the order of the requests: an `OK` for a later message
/// first is a lie about the earlier one; both fail over.
#[test]
fn a_confirmation_out_of_order_closes_the_link() {
    let mut sim = Sim::three(Placement::RoundRobin);
    sim.submit(1, &["a", "b", "c", "d"]);
    assert_eq!(sim.stores_owed(1), 2, "a and d on dn1");
    sim.answer_with(1, |name, _| {
        Reply::Ok(sentences::datanode_stored(name, "d"))
    });
    assert!(sim.closed.contains(&LinkId(1)));
    sim.serve_all();
    assert_eq!(sim.outcome(1).len(), 4);
    assert!(sim.stored_on(1).iter().all(|node| node != "dn1"));
    assert_confirmations_hold(&sim);
    // The liar registers again and is trusted again, as long as it tells
    // the truth.
    sim.register(4, "dn1").unwrap();
    sim.submit(2, &["e", "f", "g"]);
    sim.serve_all();
    assert!(sim.stored_on(2).contains(&"dn1".to_owned()));
    assert_confirmations_hold(&sim);
}

#[test]
fn shutdown_answers_parked_at_once_and_sent_within_the_grace() {
    let mut sim = Sim::new(Placement::Random);
    sim.submit(1, &["parked"]);
    sim.register(1, "dn1").unwrap();
    sim.drop_link(1);
    sim.register(2, "dn2").unwrap();
    sim.serve(2, None);
    sim.register(3, "dn3").unwrap();
    sim.submit(2, &["sent", "also sent"]);
    sim.drop_link(2);
    sim.submit(3, &["sent and confirmed"]);
    sim.router.shutdown(sim.now);
    sim.collect();
    sim.submit(4, &["too late"]);
    assert_eq!(
        sim.outcome(4)[0].as_ref().unwrap_err().code,
        ErrorCode::ShuttingDown
    );
    // Messages already on dn3 may still be confirmed during the grace.
    sim.serve(3, Some(1));
    assert!(sim.done.contains_key(&1));
    sim.advance(200 * MS);
    assert!(sim.done.contains_key(&2) && sim.done.contains_key(&3));
    assert!(sim.closed.contains(&LinkId(3)));
    assert_eq!(sim.router.next_deadline(), None);
    assert_eq!(sim.router.pending_batches(), 0);
}

#[test]
fn shutdown_with_nothing_pending_closes_links_at_once() {
    let mut sim = Sim::three(Placement::Random);
    sim.router.shutdown(sim.now);
    sim.collect();
    let mut closed = sim.closed.clone();
    closed.sort();
    assert_eq!(closed, [LinkId(1), LinkId(2), LinkId(3)]);
    assert_eq!(sim.router.next_deadline(), None);
    assert_eq!(
        sim.router
            .register(LinkId(4), "dn4", "127.0.0.1:4".parse().unwrap(), sim.now)
            .unwrap_err()
            .code,
        ErrorCode::ShuttingDown
    );
}

#[test]
fn heavy_traffic_with_random_failures_keeps_every_promise() {
    // A long randomized run: datanodes answer in random amounts, drop,
    // stall, lie and come back; every batch is answered exactly once and
    // every confirmation names a datanode that stored the message.
    use rand::Rng;
    let mut rng = StdRng::seed_from_u64(3);
    let mut sim = Sim::three(Placement::Random);
    let mut next_link = 4;
    let mut token = 0;
    for step in 0..3000 {
        match rng.gen_range(0..100) {
            0..=39 => {
                token += 1;
                let n = rng.gen_range(1..20);
                let messages: Vec<String> = (0..n).map(|i| format!("t{token}m{i}")).collect();
                let messages: Vec<&str> = messages.iter().map(String::as_str).collect();
                sim.submit(token, &messages);
            }
            40..=79 => {
                let live = sim.live_links();
                if !live.is_empty() {
                    let link = live[rng.gen_range(0..live.len())];
                    let n = rng.gen_range(0..10);
                    sim.serve(link, Some(n));
                }
            }
            80..=81 => {
                let live = sim.live_links();
                if live.len() > 1 {
                    sim.drop_link(live[rng.gen_range(0..live.len())]);
                }
            }
            82 => {
                // A datanode confirms a message it did not store.
                let live = sim.live_links();
                if live.len() > 1 {
                    let link = live[rng.gen_range(0..live.len())];
                    sim.answer_with(link, |name, request| match request {
                        Request::Store(message) => {
                            Reply::Ok(sentences::datanode_stored(name, &format!("{message}!")))
                        }
                        _ => Reply::Pong,
                    });
                }
            }
            83..=85 => {
                let name = format!("dn{}", rng.gen_range(1..=3));
                if sim.register(next_link, &name).is_ok() {
                    next_link += 1;
                }
            }
            _ => sim.advance(rng.gen_range(1..200) * MS),
        }
        if step % 500 == 0 {
            assert_confirmations_hold(&sim);
        }
    }
    // Let everything settle: live datanodes answer everything.
    for _ in 0..50 {
        sim.serve_all();
        sim.advance(100 * MS);
    }
    sim.serve_all();
    sim.advance(3000 * MS);
    assert_eq!(sim.done.len(), token as usize, "every batch answered");
    assert_eq!(sim.router.pending_batches(), 0);
    assert_confirmations_hold(&sim);
}

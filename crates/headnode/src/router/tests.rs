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
            .register(LinkId(4), "dn4", sim.now)
            .unwrap_err()
            .code,
        ErrorCode::ShuttingDown
    );
}

#[test]
fn heavy_traffic_with_random_failures_keeps_every_promise() {
    // A long randomized run: datanodes answer in random amounts, drop,
    // stall and come back; every batch is answered exactly once and
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
            82..=84 => {
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

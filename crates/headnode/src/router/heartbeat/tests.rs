//! The heartbeat rules, driven through the simulation harness.

use super::super::sim::*;
use super::PROBE_SENDS;

#[test]
fn heartbeat_reports_every_datanode_each_round() {
    let mut sim = Sim::three(Placement::Random);
    sim.advance(1000 * MS);
    // Each got a PING; the round waits for the answers.
    assert_eq!((sim.owed(1), sim.owed(2), sim.owed(3)), (1, 1, 1));
    assert!(sim.reports.is_empty());
    sim.serve_all();
    assert_eq!(
        sim.last_report(),
        [("dn1", true), ("dn2", true), ("dn3", true)],
        "reported as soon as all answered"
    );
    assert_eq!(sim.reports.len(), 1);
}

#[test]
fn a_silent_datanode_is_marked_inactive_after_the_timeout() {
    let mut sim = Sim::three(Placement::Random);
    sim.advance(1000 * MS);
    sim.serve(1, None);
    sim.serve(3, None);
    sim.advance(299 * MS);
    assert!(sim.reports.is_empty(), "still within the timeout");
    assert!(sim.router.status("dn2").unwrap().active);
    sim.advance(MS);
    assert_eq!(
        sim.last_report(),
        [("dn1", true), ("dn2", false), ("dn3", true)]
    );
    assert!(!sim.router.status("dn2").unwrap().active);
    // No new message goes to it.
    sim.submit(1, &["a"; 30]);
    assert_eq!(sim.stores_owed(2), 0);
    // It answers the old PING late: active again, gets messages again.
    sim.serve(2, None);
    assert!(sim.router.status("dn2").unwrap().active);
    sim.serve_all();
    sim.submit(2, &["b"; 30]);
    assert!(sim.stores_owed(2) > 0);
}

#[test]
fn a_dropped_datanode_stays_known_and_comes_back_by_registering() {
    let mut sim = Sim::three(Placement::Random);
    sim.drop_link(2);
    sim.advance(1000 * MS);
    sim.serve_all();
    assert_eq!(
        sim.last_report(),
        [("dn1", true), ("dn2", false), ("dn3", true)]
    );
    sim.advance(1000 * MS);
    sim.serve_all();
    assert_eq!(sim.reports.len(), 2);
    assert_eq!(sim.last_report()[1], ("dn2", false), "reported every round");
    sim.register(4, "dn2").unwrap();
    sim.advance(1000 * MS);
    sim.serve_all();
    assert_eq!(
        sim.last_report(),
        [("dn1", true), ("dn2", true), ("dn3", true)]
    );
    sim.submit(1, &["x"; 30]);
    assert!(sim.stores_owed(4) > 0, "receives messages again");
}

#[test]
fn a_round_never_empties_the_active_set() {
    let mut sim = Sim::three(Placement::Random);
    sim.advance(1000 * MS);
    // Mid-round, every PING unanswered: all three are still active.
    assert_eq!(sim.router.active_nodes().len(), 3);
    sim.submit(1, &["during the round"]);
    assert_eq!(
        sim.stores_owed(1) + sim.stores_owed(2) + sim.stores_owed(3),
        1
    );
    sim.serve_all();
    assert!(sim.outcome(1)[0].is_ok());
}

#[test]
fn a_missed_heartbeat_fails_over_messages_in_flight() {
    let mut sim = Sim::three(Placement::RoundRobin);
    sim.advance(1000 * MS);
    sim.serve(1, None);
    sim.serve(3, None);
    sim.submit(1, &["a", "b", "c"]);
    sim.advance(300 * MS);
    assert!(!sim.router.status("dn2").unwrap().active);
    sim.serve(1, None);
    sim.serve(3, None);
    assert_eq!(sim.outcome(1).len(), 3);
    assert!(sim.stored_on(1).iter().all(|n| n != "dn2"));
}

fn multicast() -> Sim {
    Sim::three_with_mode(Placement::RoundRobin, HeartbeatMode::Multicast)
}

#[test]
fn the_first_round_starts_at_the_first_registration() {
    let mut sim = Sim::with_mode(Placement::Random, HeartbeatMode::Multicast);
    sim.advance(2500 * MS);
    assert!(sim.probes.is_empty(), "no datanode, no probe");
    sim.register(1, "dn1").unwrap();
    sim.advance(Duration::ZERO);
    assert_eq!(sim.probes.len(), 1, "at once");
    assert_eq!(sim.answer_probe("dn1"), Some(Ok(())));
    assert_eq!(sim.last_report(), [("dn1", true)]);
    sim.advance(999 * MS);
    assert_eq!(sim.probes.len(), 1);
    sim.advance(MS);
    assert_eq!(sim.probes.len(), 2, "then every interval");
}

#[test]
fn a_multicast_round_sends_one_probe_and_no_ping() {
    let mut sim = multicast();
    sim.advance(1000 * MS);
    assert_eq!(sim.probes.len(), 1);
    assert_eq!((sim.owed(1), sim.owed(2), sim.owed(3)), (0, 0, 0));
    for name in ["dn1", "dn2", "dn3"] {
        assert_eq!(sim.answer_probe(name), Some(Ok(())));
    }
    assert_eq!(
        sim.last_report(),
        [("dn1", true), ("dn2", true), ("dn3", true)],
        "reported as soon as all answered"
    );
    sim.advance(1000 * MS);
    assert_eq!(sim.probes.len(), 2);
    assert_ne!(
        sim.probes[0].nonce, sim.probes[1].nonce,
        "a fresh nonce per round"
    );
    assert_eq!(sim.probes[1].round, sim.probes[0].round + 1);
}

#[test]
fn the_probe_goes_out_again_until_everyone_answered() {
    let mut sim = multicast();
    sim.advance(1000 * MS);
    assert_eq!(sim.probes.len(), 1);
    // The timeout is 300 ms: copies at 75, 150 and 225 ms.
    sim.advance(74 * MS);
    assert_eq!(sim.probes.len(), 1);
    sim.advance(MS);
    assert_eq!(sim.probes.len(), 2);
    assert_eq!(sim.probes[1], sim.probes[0], "the same round and nonce");
    // dn1 heard only the copy (it joined the group late): it counts.
    assert_eq!(sim.answer_probe("dn1"), Some(Ok(())));
    assert_eq!(sim.answer_probe("dn2"), Some(Ok(())));
    sim.advance(150 * MS);
    assert_eq!(sim.probes.len(), 4, "dn3 is still silent");
    assert_eq!(sim.answer_probe("dn3"), Some(Ok(())));
    assert_eq!(
        sim.last_report(),
        [("dn1", true), ("dn2", true), ("dn3", true)]
    );
    sim.advance(774 * MS);
    assert_eq!(sim.probes.len(), 4, "no copy once everyone answered");
    sim.advance(MS);
    assert_eq!(sim.probes.len(), 5, "the next round");
    // A silent datanode hears PROBE_SENDS copies, then is reported.
    sim.advance(300 * MS);
    assert_eq!(sim.probes.len(), 5 + PROBE_SENDS as usize - 1);
    assert_eq!(
        sim.last_report(),
        [("dn1", false), ("dn2", false), ("dn3", false)]
    );
}

#[test]
fn only_the_current_round_and_nonce_count() {
    let mut sim = multicast();
    sim.advance(1000 * MS);
    let probe = sim.probes[0];
    let alive = |round, nonce, name: &str| Alive {
        round,
        nonce,
        name: name.into(),
    };
    let now = sim.now;
    let wrong_nonce = alive(probe.round, probe.nonce ^ 1, "dn1");
    assert_eq!(sim.router.alive(&wrong_nonce, now), Err(Ignored::Stale));
    let old_round = alive(probe.round - 1, probe.nonce, "dn1");
    assert_eq!(sim.router.alive(&old_round, now), Err(Ignored::Stale));
    let stranger = alive(probe.round, probe.nonce, "intruder");
    assert_eq!(sim.router.alive(&stranger, now), Err(Ignored::UnknownName));
    assert_eq!(sim.answer_probe("dn1"), Some(Ok(())));
    assert_eq!(sim.answer_probe("dn1"), Some(Err(Ignored::NotAwaited)));
    sim.collect();
    // dn2 and dn3 stay silent: the bad answers made nobody active.
    sim.advance(300 * MS);
    assert_eq!(
        sim.last_report(),
        [("dn1", true), ("dn2", false), ("dn3", false)]
    );
    // An answer to the round that ended is stale: still inactive.
    let late = alive(probe.round, probe.nonce, "dn2");
    assert_eq!(sim.router.alive(&late, sim.now), Err(Ignored::Stale));
    assert!(!sim.router.status("dn2").unwrap().active);
    // Answering the next round brings it back.
    sim.advance(700 * MS);
    assert_eq!(sim.answer_probe("dn2"), Some(Ok(())));
    assert!(sim.router.status("dn2").unwrap().active);
}

#[test]
fn a_multicast_answer_without_a_link_is_not_alive() {
    let mut sim = multicast();
    sim.drop_link(2);
    sim.advance(1000 * MS);
    assert_eq!(sim.answer_probe("dn2"), Some(Err(Ignored::NotLinked)));
    sim.answer_probe("dn1");
    sim.answer_probe("dn3");
    assert_eq!(
        sim.last_report(),
        [("dn1", true), ("dn2", false), ("dn3", true)],
        "reported without waiting for the unlinked"
    );
    sim.submit(1, &["a"; 6]);
    assert_eq!(sim.stores_owed(2), 0);
}

#[test]
fn a_link_with_no_multicast_answer_goes_inactive_and_its_messages_fail_over() {
    let mut sim = multicast();
    sim.advance(1000 * MS);
    sim.submit(1, &["a", "b", "c"]);
    assert_eq!(sim.stores_owed(2), 1);
    sim.answer_probe("dn1");
    sim.answer_probe("dn3");
    // Mid-round nobody is taken out: dn2 still counts.
    assert_eq!(sim.router.active_nodes().len(), 3);
    sim.advance(300 * MS);
    assert!(!sim.router.status("dn2").unwrap().active);
    assert_eq!(sim.stores_owed(1) + sim.stores_owed(3), 3);
    sim.serve(1, None);
    sim.serve(3, None);
    assert!(sim.stored_on(1).iter().all(|n| n != "dn2"));
    assert_confirmations_hold(&sim);
}

#[test]
fn tcp_rounds_send_no_probe() {
    let mut sim = Sim::three(Placement::Random);
    sim.advance(1000 * MS);
    assert!(sim.probes.is_empty());
    assert_eq!((sim.owed(1), sim.owed(2), sim.owed(3)), (1, 1, 1));
    // A multicast answer counts for nothing in TCP mode: no round has a
    // nonce anyone was sent.
    let alive = Alive {
        round: 2,
        nonce: 0,
        name: "dn1".into(),
    };
    assert_eq!(sim.router.alive(&alive, sim.now), Err(Ignored::Stale));
}

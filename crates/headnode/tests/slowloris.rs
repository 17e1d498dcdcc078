//! Slowloris at the headnode (issue 11, item 5), with real processes:
//! registered datanode links hold no connection place, so even
//! `--max-connections 1` serves three datanodes and a client; a half-open
//! flood larger than the cap is closed after `--frame-timeout`, a datanode
//! that starts during it registers, and clients are served again.

mod common;

use common::{assert_all_confirmed, Cluster, PATIENCE};
use testkit::{flood_size, half_open_flood};

#[test]
fn datanode_links_take_no_place_and_a_flood_locks_nobody_out() {
    let bounds = ["--frame-timeout", "1s", "--idle-timeout", "3s"];
    let mut cluster = Cluster::with_datanodes(
        &["dn1", "dn2", "dn3"],
        &[&["--max-connections", "1"][..], &bounds].concat(),
    );
    let log = cluster.root.path().join("registro_cliente.txt");
    assert_all_confirmed(&cluster.client(&log, &["--count", "20"]), 21);

    // One place, taken many times over by connections holding half a
    // header; a datanode restarted meanwhile registers all the same.
    let mut held = half_open_flood(cluster.head.addr(), flood_size(100));
    cluster.kill_datanode("dn3");
    cluster.start_datanode("dn3");
    cluster.wait_registered("dn3", 1);
    testkit::assert_flood_survived(&cluster.addr(), &mut held, PATIENCE);
    let log = cluster.root.path().join("after.txt");
    assert_all_confirmed(&cluster.client(&log, &["--count", "20"]), 21);
}

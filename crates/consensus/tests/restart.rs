//! A validator restarted in the middle of a height replays its write-ahead log (its own proposal,
//! votes and timeouts, re-derived identically) and then makes progress with its peer.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{check_consistent, init_logs, make_nodes, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_mid_height_replays_wal() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    // Two validators of equal power: one alone (50%) cannot decide, so it sits in height 1,
    // going through rounds, proposing, voting and timing out, all recorded in its WAL.
    let mut nodes = make_nodes(dir.path(), 2);
    nodes[0].start();
    wait_until("lone validator reaches round 2", Duration::from_secs(20), || nodes[0].handle.round() >= 2)
        .await;
    assert_eq!(nodes[0].committed(), 0);
    let round = nodes[0].handle.round();
    nodes[0].stop().await;

    // Restart: WAL replay brings it back to the round it was in, without waiting for timeouts.
    nodes[0].start();
    wait_until("replayed back to the same round", Duration::from_millis(1500), || {
        nodes[0].handle.height() == 1 && nodes[0].handle.round() >= round
    })
    .await;
    assert!(nodes[0].handle.is_running());

    nodes[1].start();
    wait_until("both commit 3 heights", Duration::from_secs(30), || nodes.iter().all(|n| n.committed() >= 3))
        .await;
    check_consistent(&nodes);
    for n in &mut nodes {
        n.stop().await;
    }
}

//! A validator restarted in the middle of a height replays its write-ahead log: its own proposal
//! is re-derived from the block it had stored (not rebuilt), its recorded votes are reused, and
//! it then makes progress with its peer.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{check_consistent, init_logs, make_nodes, wait_until};
use gonka_consensus::validator_address;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_mid_height_replays_wal() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    // Two validators of equal power: one alone (50%) cannot decide, so it sits in height 1 with
    // its proposal and votes recorded in its WAL. Run the proposer of (height 1, round 0):
    // index (1 + 0) mod 2 in address order.
    let mut nodes = make_nodes(dir.path(), 2);
    let addr = |i: usize| validator_address(&nodes[i].app.validators[i].public_key);
    let proposer = if addr(0) < addr(1) { 1 } else { 0 };
    let other = 1 - proposer;

    nodes[proposer].start();
    wait_until("proposer built its block", Duration::from_secs(20), || nodes[proposer].built() == 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(nodes[proposer].committed(), 0);
    nodes[proposer].stop().await;

    nodes[proposer].start();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(nodes[proposer].is_alive(), "restarted node failed (WAL replay)");
    assert_eq!(nodes[proposer].built(), 1, "the replayed proposal must reuse the stored block");

    nodes[other].start();
    wait_until("both commit 3 heights", Duration::from_secs(30), || nodes.iter().all(|n| n.committed() >= 3))
        .await;
    check_consistent(&nodes);
    for n in &mut nodes {
        n.stop().await;
    }
}

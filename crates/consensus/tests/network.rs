//! In-process network of 4 validators on loopback: normal progress, one node down and catching up
//! through sync, and a stall with 2 of 4 down that resumes when they return.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Node, check_consistent, init_logs, make_nodes, wait_until};

const N: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_validators() {
    init_logs();
    let test_start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = make_nodes(dir.path(), N);

    // (a) all four commit heights 1..=5 with identical blocks.
    for n in &mut nodes {
        n.start();
    }
    wait_until("all 4 nodes commit height 5", Duration::from_secs(30), || {
        nodes.iter().all(|n| n.committed() >= 5)
    })
    .await;
    check_consistent(&nodes);
    // Blocks are identical; certificates may hold different (2/3+) signature sets.
    let first: Vec<Vec<u8>> = nodes[0].blocks()[..5].iter().map(|b| b.0.clone()).collect();
    for n in &nodes[1..] {
        let blocks: Vec<Vec<u8>> = n.blocks()[..5].iter().map(|b| b.0.clone()).collect();
        assert_eq!(blocks, first);
    }
    assert!(nodes.iter().all(|n| n.handle.peers() > 0 && n.handle.height() >= 5));

    // Pace: each height lasts at least the block interval (200 ms), even with empty blocks.
    let h0 = nodes.iter().map(Node::committed).min().unwrap();
    let t0 = Instant::now();
    wait_until("5 more heights", Duration::from_secs(20), || nodes.iter().all(|n| n.committed() >= h0 + 5))
        .await;
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(750), "5 heights in {took:?}: faster than the block interval");

    // (b) one node down: the other three keep going; it catches up through sync on restart.
    nodes[3].stop().await;
    let base = nodes[..3].iter().map(Node::committed).max().unwrap();
    let lagging = nodes[3].committed();
    wait_until("3 nodes commit 5 more heights without node 3", Duration::from_secs(30), || {
        nodes[..3].iter().all(|n| n.committed() >= base + 5)
    })
    .await;
    assert_eq!(nodes[3].committed(), lagging, "stopped node must not commit");
    nodes[3].start();
    let target = nodes[..3].iter().map(Node::committed).max().unwrap();
    eprintln!("node 3 restarts at {lagging}, network at {target}");
    wait_until("restarted node 3 catches up", Duration::from_secs(30), || nodes[3].committed() >= target)
        .await;
    check_consistent(&nodes);

    // (c) two of four (half the power) down: no progress; back up: progress resumes.
    nodes[2].stop().await;
    nodes[3].stop().await;
    tokio::time::sleep(Duration::from_millis(1000)).await; // let an in-flight decision land
    let stalled: Vec<u64> = nodes[..2].iter().map(Node::committed).collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        nodes[..2].iter().map(Node::committed).collect::<Vec<_>>(),
        stalled,
        "no progress without quorum"
    );
    nodes[2].start();
    nodes[3].start();
    let top = *stalled.iter().max().unwrap();
    eprintln!(
        "stalled at {stalled:?}; nodes 2,3 restart at {}, {}",
        nodes[2].committed(),
        nodes[3].committed()
    );
    wait_until("all 4 progress again after quorum returns", Duration::from_secs(40), || {
        nodes.iter().all(|n| n.committed() >= top + 3)
    })
    .await;
    check_consistent(&nodes);

    for n in &mut nodes {
        n.stop().await;
    }
    assert!(nodes.iter().all(|n| !n.handle.is_running()));
    eprintln!("total {:.1}s", test_start.elapsed().as_secs_f32());
}

//! In-process network of 4 validators on loopback: normal progress, one node down and catching up
//! through sync, and a stall with 2 of 4 down that resumes when they return.

// Test helpers outside `#[test]` functions: panicking on a poisoned lock or a failed node is the
// desired behaviour.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gonka_consensus::{
    Application, ConsensusConfig, ConsensusHandle, Timeouts, ValidatorInfo, commit_info, run, verify_commit,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const N: usize = 4;

/// Committed blocks and a build counter; shared so a restarted node keeps its state.
#[derive(Default)]
struct AppState {
    blocks: Vec<(Vec<u8>, Vec<u8>)>,
    counter: u64,
}

#[derive(Clone)]
struct TestApp {
    validators: Vec<ValidatorInfo>,
    state: Arc<Mutex<AppState>>,
}

/// Block = magic, height, build counter, proposer key.
fn encode_block(height: u64, counter: u64, proposer: [u8; 32]) -> Vec<u8> {
    let mut b = b"TBLK".to_vec();
    b.extend_from_slice(&height.to_be_bytes());
    b.extend_from_slice(&counter.to_be_bytes());
    b.extend_from_slice(&proposer);
    b
}

impl Application for TestApp {
    fn last_committed_height(&self) -> u64 {
        self.state.lock().unwrap().blocks.len() as u64
    }

    fn validator_set(&self, height: u64) -> Option<Vec<ValidatorInfo>> {
        (height <= self.last_committed_height() + 2).then(|| self.validators.clone())
    }

    fn build_block(&mut self, height: u64, _round: u32, proposer: [u8; 32]) -> Vec<u8> {
        let mut s = self.state.lock().unwrap();
        s.counter += 1;
        encode_block(height, s.counter, proposer)
    }

    fn check_block(&mut self, height: u64, proposer: [u8; 32], block: &[u8]) -> bool {
        block.len() == 4 + 8 + 8 + 32
            && block.starts_with(b"TBLK")
            && block[4..12] == height.to_be_bytes()
            && block[20..] == proposer
            && height == self.last_committed_height() + 1
    }

    fn commit_block(
        &mut self,
        height: u64,
        _round: u32,
        block: &[u8],
        certificate: &[u8],
    ) -> anyhow::Result<()> {
        let mut s = self.state.lock().unwrap();
        anyhow::ensure!(height == s.blocks.len() as u64 + 1, "out of order commit {height}");
        verify_commit(certificate, height, block, &self.validators)?;
        s.blocks.push((block.to_vec(), certificate.to_vec()));
        Ok(())
    }

    fn committed_block(&self, height: u64) -> Option<(Vec<u8>, Vec<u8>)> {
        let s = self.state.lock().unwrap();
        s.blocks.get(usize::try_from(height).ok()?.checked_sub(1)?).cloned()
    }

    fn history_min_height(&self) -> u64 {
        1
    }
}

struct Node {
    config: ConsensusConfig,
    app: TestApp,
    handle: ConsensusHandle,
    running: Option<(watch::Sender<bool>, JoinHandle<anyhow::Result<()>>)>,
}

impl Node {
    fn start(&mut self) {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(run(self.config.clone(), self.app.clone(), self.handle.clone(), rx));
        self.running = Some((tx, task));
    }

    async fn stop(&mut self) {
        let (tx, task) = self.running.take().expect("node running");
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(20), task).await.expect("node stops").unwrap().unwrap();
    }

    fn committed(&self) -> u64 {
        self.app.last_committed_height()
    }

    fn blocks(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.app.state.lock().unwrap().blocks.clone()
    }
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

fn key(i: usize) -> [u8; 32] {
    [i as u8 + 1; 32]
}

fn public_key(i: usize) -> [u8; 32] {
    ed25519_consensus::SigningKey::from(key(i)).verification_key().to_bytes()
}

async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("[{:>5.1}s] {what}", start.elapsed().as_secs_f32());
}

/// All nodes agree on every height they have both committed; certificates verify.
fn check_consistent(nodes: &[Node]) {
    let chains: Vec<_> = nodes.iter().map(Node::blocks).collect();
    let max = chains.iter().map(Vec::len).max().unwrap();
    for h in 0..max {
        let mut seen: Option<&Vec<u8>> = None;
        for chain in &chains {
            if let Some((block, cert)) = chain.get(h) {
                let info = commit_info(cert).unwrap();
                assert_eq!(info.height, h as u64 + 1);
                if let Some(s) = seen {
                    assert_eq!(s, block, "nodes disagree at height {}", h + 1);
                }
                seen = Some(block);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_validators() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();

    let test_start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(N);
    let addrs: Vec<SocketAddr> = ports.iter().map(|p| SocketAddr::from(([127, 0, 0, 1], *p))).collect();
    let validators: Vec<ValidatorInfo> =
        (0..N).map(|i| ValidatorInfo { public_key: public_key(i), voting_power: 10 }).collect();

    let timeouts = Timeouts {
        propose: Duration::from_millis(1000),
        prevote: Duration::from_millis(300),
        precommit: Duration::from_millis(300),
        rebroadcast: Duration::from_millis(1000),
        delta: Duration::from_millis(200),
        max: Duration::from_secs(4),
    };

    let mut nodes: Vec<Node> = (0..N)
        .map(|i| {
            let mut config =
                ConsensusConfig::new(PathBuf::from(dir.path()).join(format!("node{i}")), key(i), addrs[i]);
            config.peers = addrs.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, a)| *a).collect();
            config.block_interval_ms = 200;
            config.timeouts = timeouts.clone();
            config.max_block_bytes = 1 << 20;
            Node {
                config,
                app: TestApp { validators: validators.clone(), state: Arc::default() },
                handle: ConsensusHandle::new(),
                running: None,
            }
        })
        .collect();

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

//! Shared test harness: a trivial in-memory application and in-process nodes on loopback.

// Not every test binary uses every helper; panicking helpers are the desired behaviour in tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gonka_consensus::{
    Application, ConsensusConfig, ConsensusHandle, Timeouts, ValidatorInfo, commit_info, run, verify_commit,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// Committed blocks and a build counter; shared so a restarted node keeps its state.
#[derive(Default)]
pub struct AppState {
    blocks: Vec<(Vec<u8>, Vec<u8>)>,
    counter: u64,
}

#[derive(Clone)]
pub struct TestApp {
    pub validators: Vec<ValidatorInfo>,
    pub state: Arc<Mutex<AppState>>,
}

/// Block = magic, height, build counter, proposer key.
pub fn encode_block(height: u64, counter: u64, proposer: [u8; 32]) -> Vec<u8> {
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

pub struct Node {
    pub config: ConsensusConfig,
    pub app: TestApp,
    pub handle: ConsensusHandle,
    pub running: Option<(watch::Sender<bool>, JoinHandle<anyhow::Result<()>>)>,
}

impl Node {
    pub fn start(&mut self) {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(run(self.config.clone(), self.app.clone(), self.handle.clone(), rx));
        self.running = Some((tx, task));
    }

    pub async fn stop(&mut self) {
        let (tx, task) = self.running.take().expect("node running");
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(20), task).await.expect("node stops").unwrap().unwrap();
    }

    /// The node's `run` task is still going (it has not failed).
    pub fn is_alive(&self) -> bool {
        self.running.as_ref().is_some_and(|(_, task)| !task.is_finished())
    }

    /// How many blocks this node's application has built.
    pub fn built(&self) -> u64 {
        self.app.state.lock().unwrap().counter
    }

    pub fn committed(&self) -> u64 {
        self.app.last_committed_height()
    }

    pub fn blocks(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.app.state.lock().unwrap().blocks.clone()
    }
}

pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

pub fn key(i: usize) -> [u8; 32] {
    [i as u8 + 1; 32]
}

pub fn public_key(i: usize) -> [u8; 32] {
    ed25519_consensus::SigningKey::from(key(i)).verification_key().to_bytes()
}

pub async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("[{:>5.1}s] {what}", start.elapsed().as_secs_f32());
}

/// All nodes agree on every height they have both committed; certificates verify.
pub fn check_consistent(nodes: &[Node]) {
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

/// Test timeouts: short, so a missing proposer or a round change costs about a second.
pub fn test_timeouts() -> Timeouts {
    Timeouts {
        propose: Duration::from_millis(1000),
        prevote: Duration::from_millis(300),
        precommit: Duration::from_millis(300),
        rebroadcast: Duration::from_millis(1000),
        delta: Duration::from_millis(200),
        max: Duration::from_secs(4),
    }
}

/// `n` validators of equal power, each peered with all others, homes under `dir`.
pub fn make_nodes(dir: &Path, n: usize) -> Vec<Node> {
    let ports = free_ports(n);
    let addrs: Vec<SocketAddr> = ports.iter().map(|p| SocketAddr::from(([127, 0, 0, 1], *p))).collect();
    let validators: Vec<ValidatorInfo> =
        (0..n).map(|i| ValidatorInfo { public_key: public_key(i), voting_power: 10 }).collect();
    (0..n)
        .map(|i| {
            let mut config = ConsensusConfig::new(dir.join(format!("node{i}")), key(i), addrs[i]);
            config.peers =
                addrs.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, a)| a.to_string()).collect();
            config.block_interval_ms = 200;
            config.timeouts = test_timeouts();
            config.max_block_bytes = 1 << 20;
            Node {
                config,
                app: TestApp { validators: validators.clone(), state: Arc::default() },
                handle: ConsensusHandle::new(),
                running: None,
            }
        })
        .collect()
}

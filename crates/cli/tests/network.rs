//! A network of 4 validator processes on loopback: blocks finalize, every node reports the same app
//! hash at every height, a transaction sent to any node is included exactly once, the network keeps
//! going with one validator killed (kill -9 in the middle of a stream of transactions) and the node
//! catches up on restart with the same state, and with more than 1/3 of the power stopped progress
//! halts until it returns.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gonka_chain::{Msg, Tx};
use gonka_node::devnet::DevnetPlan;
use gonka_node::keyring::Keyring;
use gonka_primitives::codec::Encode;
use gonka_primitives::{AccountKey, Amount, Hash};
use serde_json::{Value, json};

const GONKA: &str = env!("CARGO_BIN_EXE_gonka");

struct Network {
    plan: DevnetPlan,
    dir: PathBuf,
    children: Vec<Option<Child>>,
    http: reqwest::Client,
}

impl Network {
    fn setup(dir: &Path, hosts: usize) -> Network {
        let base_port = 20_000 + (std::process::id() % 2_000) as u16 * 16;
        let status = Command::new(GONKA)
            .args([
                "devnet",
                "--setup-only",
                "--no-poc",
                "--block-interval-ms",
                "300",
                "--hosts",
                &hosts.to_string(),
            ])
            .args(["--base-port", &base_port.to_string(), "--home"])
            .arg(dir)
            .stdout(Stdio::null())
            .status()
            .expect("run gonka devnet --setup-only");
        assert!(status.success());
        let plan = DevnetPlan::load(dir).expect("devnet.json");
        let children = (0..hosts).map(|_| None).collect();
        Network { plan, dir: dir.to_path_buf(), children, http: reqwest::Client::new() }
    }

    fn start(&mut self, i: usize) {
        let home = &self.plan.nodes[i].home;
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(home.join("node.log")).expect("log");
        let child = Command::new(GONKA)
            .args(["node", "start", "--home"])
            .arg(home)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn node");
        self.children[i] = Some(child);
    }

    fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            child.kill().expect("kill -9");
            child.wait().expect("reap");
        }
    }

    fn terminate(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
            let deadline = Instant::now() + Duration::from_secs(15);
            while child.try_wait().expect("wait").is_none() {
                assert!(Instant::now() < deadline, "node {i} ignored SIGTERM");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    async fn get(&self, i: usize, path: &str) -> Option<Value> {
        let url = format!("{}{path}", self.plan.nodes[i].api_url);
        let response = self.http.get(url).timeout(Duration::from_secs(2)).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    async fn height(&self, i: usize) -> Option<u64> {
        self.get(i, "/status").await.and_then(|s| s["height"].as_u64())
    }

    async fn wait_height(&self, nodes: &[usize], at_least: u64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let mut heights = Vec::new();
            for &i in nodes {
                heights.push(self.height(i).await.unwrap_or(0));
            }
            if heights.iter().all(|h| *h >= at_least) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nodes {nodes:?} stuck at {heights:?}, wanted {at_least}; logs in {}",
                self.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn min_height(&self, nodes: &[usize]) -> u64 {
        let mut min = u64::MAX;
        for &i in nodes {
            min = min.min(self.height(i).await.unwrap_or(0));
        }
        min
    }

    async fn submit(&self, i: usize, tx: &Tx) -> Value {
        let url = format!("{}/txs", self.plan.nodes[i].api_url);
        let response = self
            .http
            .post(url)
            .json(&json!({"tx": hex::encode(tx.to_bytes())}))
            .send()
            .await
            .expect("submit");
        response.json().await.expect("json")
    }

    /// Asserts every node in `nodes` has the same block hash and app hash at every height up to `height`.
    async fn assert_same_chain(&self, nodes: &[usize], height: u64) {
        for h in 1..=height {
            let mut seen: Option<(Value, Value)> = None;
            for &i in nodes {
                let block = self
                    .get(i, &format!("/blocks/{h}"))
                    .await
                    .unwrap_or_else(|| panic!("node {i} lacks block {h}"));
                let ids = (block["hash"].clone(), block["app_hash"].clone());
                match &seen {
                    None => seen = Some(ids),
                    Some(first) => assert_eq!(first, &ids, "node {i} differs at height {h}"),
                }
            }
        }
    }

    /// Heights of the blocks (on node `i`, up to `height`) that contain `hash`.
    async fn inclusions(&self, i: usize, height: u64, hash: &Hash) -> Vec<u64> {
        let mut found = Vec::new();
        for h in 1..=height {
            let block = self.get(i, &format!("/blocks/{h}")).await.expect("block");
            let hashes = block["txs"].as_array().cloned().unwrap_or_default();
            found.extend(hashes.iter().filter(|t| t["hash"] == json!(hash)).map(|_| h));
        }
        found
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill9(i);
        }
    }
}

fn host_key(plan: &DevnetPlan, i: usize) -> AccountKey {
    Keyring::new(plan.nodes[i].home.join("keys")).load("host", None).expect("host key")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_agree_survive_a_crash_and_halt_without_quorum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut net = Network::setup(dir.path(), 4);
    let all = [0, 1, 2, 3];
    for i in all {
        net.start(i);
    }
    net.wait_height(&all, 3, Duration::from_secs(60)).await;

    // A transaction sent to any node is included exactly once, on every node.
    let chain_id = net.plan.chain_id.clone();
    let mut sent = Vec::new();
    for i in all {
        let key = host_key(&net.plan, i);
        let to = AccountKey::from_seed(format!("recipient-{i}").as_bytes()).address();
        let tx = Tx::new(&chain_id, &key, 0, vec![Msg::BankSend { to, amount: Amount(1_000 + i as u128) }]);
        let target = (i + 1) % 4;
        let reply = net.submit(target, &tx).await;
        assert_eq!(reply["accepted"], json!(true), "{reply}");
        // The same bytes again, to another node: refused there or dropped as a duplicate, never twice in a block.
        net.submit((target + 1) % 4, &tx).await;
        sent.push(tx.hash());
    }
    let start = net.min_height(&all).await;
    net.wait_height(&all, start + 4, Duration::from_secs(30)).await;
    let height = net.min_height(&all).await;
    for hash in &sent {
        for i in all {
            let found = net
                .get(i, &format!("/txs/{hash}"))
                .await
                .unwrap_or_else(|| panic!("node {i} lacks tx {hash}"));
            assert_eq!(found["result"]["ok"], json!(true), "{found}");
        }
        assert_eq!(net.inclusions(0, height, hash).await.len(), 1, "tx {hash} must be in exactly one block");
    }
    net.assert_same_chain(&all, height).await;

    // kill -9 one validator in the middle of a stream of transactions; the other three keep going.
    let developer = Keyring::new(net.plan.keyring.clone()).load("developer", None).expect("developer key");
    let mut stream = Vec::new();
    for sequence in 0..60u64 {
        let to = AccountKey::from_seed(&sequence.to_be_bytes()).address();
        let tx = Tx::new(&chain_id, &developer, sequence, vec![Msg::BankSend { to, amount: Amount(7) }]);
        assert_eq!(net.submit(0, &tx).await["accepted"], json!(true));
        stream.push(tx.hash());
        if sequence == 30 {
            net.kill9(3);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let survivors = [0, 1, 2];
    let before = net.min_height(&survivors).await;
    net.wait_height(&survivors, before + 5, Duration::from_secs(30)).await;

    // It restarts and catches up, with the same blocks and app hashes and no committed tx lost.
    net.start(3);
    let target = net.min_height(&survivors).await;
    net.wait_height(&all, target, Duration::from_secs(60)).await;
    let height = net.min_height(&all).await;
    net.assert_same_chain(&all, height).await;
    for hash in &stream {
        let on_0 = net.get(0, &format!("/txs/{hash}")).await.expect("committed on node 0");
        let on_3 = net.get(3, &format!("/txs/{hash}")).await.expect("committed on the restarted node");
        assert_eq!(on_0["height"], on_3["height"]);
    }
    let developer_path = format!("/accounts/{}", developer.address());
    assert_eq!(net.get(0, &developer_path).await.map(|a| a["sequence"].clone()), Some(json!(60)));

    // Stop validators holding half the power (more than 1/3): no block is finalized...
    net.terminate(2);
    net.terminate(3);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stalled = net.min_height(&[0, 1]).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = [net.height(0).await.unwrap_or(0), net.height(1).await.unwrap_or(0)];
    assert!(later.iter().all(|h| *h <= stalled + 1), "progress without quorum: {stalled} -> {later:?}");

    // ...until they return.
    net.start(2);
    net.start(3);
    net.wait_height(&all, stalled + 4, Duration::from_secs(60)).await;
    let height = net.min_height(&all).await;
    net.assert_same_chain(&all, height).await;
}

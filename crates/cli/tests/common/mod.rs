//! The multi-process network harness the CLI tests share: devnet homes, node processes started and
//! killed one by one, REST helpers.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gonka_chain::{Genesis, RequestTerms, SignedRequest, Tx};
use gonka_client::devnet::DevnetPlan;
use gonka_client::signing::{RequestChoice, body_choice, signed_headers};
use gonka_primitives::Hash;
use gonka_primitives::codec::Encode;
use gonka_primitives::{AccountKey, Address};
use serde_json::{Value, json};

pub const GONKA: &str = env!("CARGO_BIN_EXE_gonka");

/// The first of `count` consecutive ports that are free now, all below Linux's ephemeral range (32768
/// and up): ports there can be taken at any moment by the outgoing connections of the nodes started
/// first, and a node that cannot bind its port never comes up.
pub fn free_port_base(count: u16) -> u16 {
    const FIRST: u16 = 20_000;
    const END: u16 = 32_768;
    let slots = (END - FIRST) / count;
    let start = (std::process::id() % u32::from(slots)) as u16;
    for i in 0..slots {
        let base = FIRST + (start + i) % slots * count;
        if (base..base + count).all(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()) {
            return base;
        }
    }
    panic!("no {count} consecutive free ports in {FIRST}..{END}");
}

/// A devnet whose node processes the test starts and kills itself.
pub struct Network {
    pub plan: DevnetPlan,
    pub dir: PathBuf,
    children: Vec<Option<Child>>,
    pub http: reqwest::Client,
}

impl Network {
    /// Makes the homes of a devnet of `hosts` with `gonka devnet --setup-only ARGS…`; nothing runs yet.
    pub fn setup(dir: &Path, hosts: usize, args: &[&str]) -> Network {
        let base_port = free_port_base(16);
        let status = Command::new(GONKA)
            .args(["devnet", "--setup-only", "--hosts", &hosts.to_string()])
            .args(args)
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

    pub fn start(&mut self, i: usize) {
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

    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            child.kill().expect("kill -9");
            child.wait().expect("reap");
        }
    }

    pub fn terminate(&mut self, i: usize) {
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

    pub async fn get(&self, i: usize, path: &str) -> Option<Value> {
        let url = format!("{}{path}", self.plan.nodes[i].api_url);
        let response = self.http.get(url).timeout(Duration::from_secs(2)).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    pub async fn height(&self, i: usize) -> Option<u64> {
        self.get(i, "/status").await.and_then(|s| s["height"].as_u64())
    }

    pub async fn wait_height(&self, nodes: &[usize], at_least: u64, within: Duration) {
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

    pub async fn min_height(&self, nodes: &[usize]) -> u64 {
        let mut min = u64::MAX;
        for &i in nodes {
            min = min.min(self.height(i).await.unwrap_or(0));
        }
        min
    }

    pub async fn submit(&self, i: usize, tx: &Tx) -> Value {
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
    pub async fn assert_same_chain(&self, nodes: &[usize], height: u64) {
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
    pub async fn inclusions(&self, i: usize, height: u64, hash: &Hash) -> Vec<u64> {
        let mut found = Vec::new();
        for h in 1..=height {
            let block = self.get(i, &format!("/blocks/{h}")).await.expect("block");
            let hashes = block["txs"].as_array().cloned().unwrap_or_default();
            found.extend(hashes.iter().filter(|t| t["hash"] == json!(hash)).map(|_| h));
        }
        found
    }
}

/// A request as a developer sends it to a TA.
pub struct Signed {
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
    pub id: Hash,
}

pub fn sign(genesis: &Genesis, key: &AccountKey, body: Vec<u8>, ta: &Address, timestamp_ns: u64) -> Signed {
    let (model, max_tokens) = body_choice(&body).unwrap();
    let model = genesis.params.inference.model_named(&model).unwrap().content_hash;
    // A bound well above the base price: load may raise the price while a test runs.
    let base = genesis.params.inference.model(&model).unwrap().price_per_token;
    let max_price_per_token = gonka_primitives::Amount(base.0 * 4);
    let choice = RequestChoice {
        chain_id: &genesis.chain_id,
        transfer_agent: *ta,
        model,
        max_tokens,
        timestamp_ns,
        max_price_per_token,
    };
    let headers = signed_headers(key, &body, &choice);
    let terms = RequestTerms {
        transfer_agent: *ta,
        body_hash: Hash::digest(&body),
        body_len: body.len() as u32,
        timestamp_ns,
        model,
        max_tokens,
        max_price_per_token,
    };
    let id = SignedRequest::sign(key, &genesis.chain_id, terms).id();
    Signed { id, body, headers }
}

pub async fn post(http: &reqwest::Client, url: &str, request: &Signed) -> reqwest::Response {
    let mut builder =
        http.post(format!("{url}/v1/chat/completions")).header("content-type", "application/json");
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    builder.body(request.body.clone()).send().await.unwrap()
}

impl Drop for Network {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill9(i);
        }
    }
}

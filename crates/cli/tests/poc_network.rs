//! `gonka devnet` with Proof of Compute: 4 validator hosts with unequal compute (1, 1, 2 and 2 sprint
//! workers on one machine) run two full epochs. Their weights come out roughly proportional to their
//! compute, voting power follows the weights at each SetNewValidators — bounded by what the previous
//! stage confirmed (genesis power for the first; `docs/spec/poc.md` §5.1) — and blocks keep
//! finalizing through the sprints.
#![allow(clippy::print_stdout)]

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use gonka_client::devnet::{DevnetPlan, GENESIS_WEIGHT};
use serde_json::Value;

const GONKA: &str = env!("CARGO_BIN_EXE_gonka");
/// Sprint workers per host.
const WORKERS: [u64; 4] = [1, 1, 2, 2];
/// A short epoch: first PoC at 10, 12 blocks of sprint, weights effective at S + 24.
const PARAMS: &str = r#"{
  "epoch": {"epoch_length": 50, "epoch_shift": 40, "poc_stage_duration": 12, "poc_exchange_duration": 2,
            "poc_validation_delay": 2, "poc_validation_duration": 8, "set_new_validators_delay": 2,
            "inference_validation_cutoff": 5},
  "poc": {"r_target": "1.372"}
}"#;

/// Kills the devnet (and so its nodes) when the test ends, however it ends.
struct Devnet(Child);

impl Drop for Devnet {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn get(http: &reqwest::Client, url: &str) -> Option<Value> {
    let response = http.get(url).timeout(Duration::from_secs(3)).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

async fn wait_height(http: &reqwest::Client, plan: &DevnetPlan, at_least: u64, within: Duration, dir: &str) {
    let deadline = Instant::now() + within;
    loop {
        let mut heights = Vec::new();
        for node in &plan.nodes {
            let status = get(http, &format!("{}/status", node.api_url)).await;
            heights.push(status.and_then(|s| s["height"].as_u64()).unwrap_or(0));
        }
        if heights.iter().all(|h| *h >= at_least) {
            return;
        }
        assert!(Instant::now() < deadline, "stuck at {heights:?}, wanted {at_least}; logs under {dir}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `(participant address → (poc_weight, power))` from node 0.
async fn weights(http: &reqwest::Client, plan: &DevnetPlan) -> Vec<(u64, u64)> {
    let poc = get(http, &format!("{}/poc", plan.nodes[0].api_url)).await.expect("/poc");
    plan.nodes
        .iter()
        .map(|node| {
            let row = poc["weights"]
                .as_array()
                .and_then(|rows| rows.iter().find(|r| r["participant"] == node.address.to_string()))
                .unwrap_or_else(|| panic!("no weight row for {}: {poc}", node.name));
            (row["poc_weight"].as_u64().unwrap_or(0), row["power"].as_u64().unwrap_or(0))
        })
        .collect()
}

/// The voting power of each node (by validator key) that decides the next height.
async fn voting_power(http: &reqwest::Client, plan: &DevnetPlan) -> Vec<u64> {
    let set = get(http, &format!("{}/validators", plan.nodes[0].api_url)).await.expect("/validators");
    plan.nodes
        .iter()
        .map(|node| {
            set["validators"]
                .as_array()
                .and_then(|v| v.iter().find(|v| v["validator_key"] == node.validator_key.to_string()))
                .and_then(|v| v["voting_power"].as_u64())
                .unwrap_or(0)
        })
        .collect()
}

/// Largest gap between consecutive block times (proposer clocks) in `heights`, on node 0.
async fn largest_block_gap_ms(
    http: &reqwest::Client,
    plan: &DevnetPlan,
    heights: std::ops::RangeInclusive<u64>,
) -> u64 {
    let mut times = Vec::new();
    for h in heights {
        let block = get(http, &format!("{}/blocks/{h}", plan.nodes[0].api_url)).await.expect("block");
        times.push(block["header"]["time_ms"].as_u64().expect("time"));
    }
    times.windows(2).map(|w| w[1].saturating_sub(w[0])).max().unwrap_or(0)
}

fn assert_proportional(weights: &[(u64, u64)], epoch: u64) {
    let w: Vec<f64> = weights.iter().map(|(w, _)| *w as f64).collect();
    assert!(w.iter().all(|w| *w > 0.0), "epoch {epoch}: every host found valid nonces: {weights:?}");
    let (single, double) = ((w[0] + w[1]) / 2.0, (w[2] + w[3]) / 2.0);
    let ratio = double / single;
    println!("epoch {epoch}: weights {weights:?}; 2-worker / 1-worker hosts = {ratio:.2} (compute ratio 2)");
    assert!(
        (1.4..=2.8).contains(&ratio),
        "epoch {epoch}: weights {weights:?} are not ~ proportional to compute"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hosts_with_unequal_compute_run_two_epochs_and_power_follows_weight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base_port = 24_000 + (std::process::id() % 1_000) as u16 * 8;
    let workers: Vec<String> = WORKERS.iter().map(u64::to_string).collect();
    let log = std::fs::File::create(dir.path().join("devnet.out")).expect("log");
    let child = Command::new(GONKA)
        .args([
            "devnet",
            "--hosts",
            "4",
            "--base-port",
            &base_port.to_string(),
            "--poc-workers",
            &workers.join(","),
        ])
        .args(["--params", PARAMS, "--home"])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start gonka devnet");
    let _devnet = Devnet(child);
    let dir_text = dir.path().display().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.path().join("devnet.json").exists() {
        assert!(Instant::now() < deadline, "devnet.json never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let plan = DevnetPlan::load(dir.path()).expect("devnet.json");
    let http = reqwest::Client::new();
    let params: Value = serde_json::from_str(PARAMS).expect("params");
    let epoch = &params["epoch"];
    let field = |name: &str| epoch[name].as_u64().expect("param");
    let first_poc = field("epoch_length") - field("epoch_shift");
    let to_effective = field("poc_stage_duration")
        + field("poc_validation_delay")
        + field("poc_validation_duration")
        + field("set_new_validators_delay");

    // The most power each host may be settled: max(last confirmed weight, power held).
    let mut ceiling = [GENESIS_WEIGHT; 4];
    for epoch in 1..=2u64 {
        let start = first_poc + (epoch - 1) * field("epoch_length");
        let effective = start + to_effective;
        wait_height(&http, &plan, effective + 1, Duration::from_secs(240), &dir_text).await;
        let weights = weights(&http, &plan).await;
        assert_proportional(&weights, epoch);
        let powers: Vec<u64> = weights.iter().map(|(_, power)| *power).collect();
        assert_eq!(
            voting_power(&http, &plan).await,
            powers,
            "epoch {epoch}: voting power is the capped weight"
        );
        let bounded: Vec<u64> = weights.iter().zip(ceiling).map(|((w, _), c)| (*w).min(c)).collect();
        assert_eq!(
            bounded, powers,
            "epoch {epoch}: power is the weight up to the ceiling (no host reaches the 50 % cap)"
        );
        for (c, (w, p)) in ceiling.iter_mut().zip(&weights) {
            *c = (*w).max(*p);
        }
        let gap = largest_block_gap_ms(&http, &plan, start..=start + field("poc_stage_duration")).await;
        println!("epoch {epoch}: largest interval between blocks during the sprint {gap} ms");
        assert!(gap < 3_000, "blocks stalled during the sprint: {gap} ms");
    }
    let out = std::fs::read_to_string(dir.path().join("devnet.out")).expect("devnet output");
    assert!(out.contains("poc sprinting"), "the devnet shows sprint progress:\n{out}");
}

//! `gonka bench chain`: 4 validator processes on loopback under a saturating stream of signed
//! transfers. Prints finalized tx/s, block interval, commit latency from submission (p50/p99) and the
//! store size per 100k accounts, each with its ratio to the target.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::stats::{mean, percentile};
use anyhow::Context;
use futures::StreamExt;
use gonka_chain::{GenesisAccount, State, Tx};
use gonka_client::devnet::{DevnetOptions, setup};
use gonka_primitives::codec::Encode;
use gonka_primitives::{AccountKey, Amount, Hash};
use serde_json::{Value, json};

#[derive(clap::Args, Debug)]
pub struct ChainArgs {
    /// Validators.
    #[arg(long, default_value_t = 4)]
    hosts: usize,
    /// Sending accounts (each sends `--txs-per-account` transfers in sequence).
    #[arg(long, default_value_t = 2_000)]
    accounts: usize,
    /// Transfers per sending account.
    #[arg(long, default_value_t = 10)]
    txs_per_account: u64,
    /// Target interval between block starts in milliseconds (the devnet profile's).
    #[arg(long, default_value_t = gonka_client::devnet::DEVNET_BLOCK_INTERVAL_MS)]
    block_interval_ms: u64,
    /// Offered load (tx/s) of the paced phase, where block interval and commit latency are measured.
    #[arg(long, default_value_t = 1000.0)]
    paced_tps: f64,
    /// First port of the benchmark network.
    #[arg(long, default_value_t = 27600)]
    base_port: u16,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Targets from the chain issue.
const TARGET_TPS: f64 = 1_000.0;
const TARGET_BLOCK_INTERVAL_MS: f64 = 1_000.0;
const TARGET_LATENCY_P50_MS: f64 = 2_000.0;

/// Store bytes for a state of `accounts` funded accounts (genesis written to a fresh redb file).
fn store_bytes_for(accounts: usize) -> anyhow::Result<u64> {
    let dir = tempfile::tempdir()?;
    let authority = AccountKey::from_seed(b"authority");
    let mut genesis = gonka_chain::Genesis {
        chain_id: "size".into(),
        genesis_time_ms: 0,
        params: gonka_chain::Params::devnet(authority.address()),
        accounts: Vec::with_capacity(accounts),
        participants: vec![gonka_chain::GenesisParticipant {
            address: authority.address(),
            account_key: authority.public_key(),
            api_url: "http://127.0.0.1:1".into(),
            validator_key: gonka_primitives::ValidatorKey::from_secret_bytes([1; 32]).public_key(),
            operational_key: authority.public_key(),
            weight: 1,
            collateral: gonka_primitives::Amount::ZERO,
            validation_key: None,
        }],
        developers: Vec::new(),
        tokenomics: Default::default(),
    };
    for i in 0..accounts as u64 {
        let address = gonka_primitives::Address::from_public_key(&{
            let mut k = [2u8; 33];
            k[1..9].copy_from_slice(&i.to_be_bytes());
            k
        });
        genesis.accounts.push(GenesisAccount { address, balance: Amount(1_000_000) });
    }
    let state = State::from_genesis(&genesis)?;
    let path = dir.path().join("chain.redb");
    let store = gonka_store::Store::open(&path)?;
    store.init_genesis(&state)?;
    drop(store);
    Ok(std::fs::metadata(&path)?.len())
}

/// Follows node 0's block stream, recording when each transaction hash was seen committed and the
/// block times.
async fn follow_blocks(
    url: String,
    commits: Arc<Mutex<BTreeMap<Hash, Instant>>>,
    blocks: Arc<Mutex<Vec<(u64, u64, usize)>>>,
) -> anyhow::Result<()> {
    let response = reqwest::Client::new().get(format!("{url}/events")).send().await?;
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    while let Some(chunk) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) else { continue };
            let Ok(block) = serde_json::from_str::<Value>(data.trim()) else { continue };
            let now = Instant::now();
            let txs = block["txs"].as_array().cloned().unwrap_or_default();
            let mut map = commits.lock().unwrap_or_else(|p| p.into_inner());
            for tx in &txs {
                if let Some(hash) = tx["hash"].as_str().and_then(Hash::from_hex) {
                    map.entry(hash).or_insert(now);
                }
            }
            drop(map);
            let height = block["height"].as_u64().unwrap_or(0);
            let time_ms = block["time_ms"].as_u64().unwrap_or(0);
            blocks.lock().unwrap_or_else(|p| p.into_inner()).push((height, time_ms, txs.len()));
        }
    }
    Ok(())
}

#[allow(clippy::print_stdout, clippy::cast_precision_loss, clippy::too_many_lines)]
pub(crate) async fn chain_bench(args: ChainArgs, exe: &std::path::Path) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let senders: Vec<AccountKey> =
        (0..args.accounts).map(|i| AccountKey::from_seed(format!("bench-sender-{i}").as_bytes())).collect();
    let extra = senders
        .iter()
        .map(|k| GenesisAccount { address: k.address(), balance: Amount(1_000_000_000) })
        .collect();
    let plan = setup(&DevnetOptions {
        hosts: args.hosts,
        dir: dir.path().to_path_buf(),
        base_port: args.base_port,
        host_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        chain_id: "gonka-bench".into(),
        block_interval_ms: args.block_interval_ms,
        mainnet_profile: false,
        extra_accounts: extra,
        params_override: None,
        // Transfers are what is measured here; sprints would compete for the same two cores.
        poc: gonka_node::host::PocConfig { enabled: false, ..Default::default() },
        poc_workers: Vec::new(),
        inference: gonka_node::inference::InferenceConfig { enabled: false, ..Default::default() },
        models: Vec::new(),
        weights: Vec::new(),
        byzantine: Vec::new(),
    })?;

    // Sign everything before the clock starts: the client should not be what is measured.
    let signing = Instant::now();
    let mut per_node: Vec<Vec<Vec<String>>> = vec![Vec::new(); args.hosts];
    for sequence in 0..args.txs_per_account {
        let mut rounds: Vec<Vec<String>> = vec![Vec::new(); args.hosts];
        for (i, key) in senders.iter().enumerate() {
            let to = senders[(i + 1) % senders.len()].address();
            let tx = Tx::new(
                "gonka-bench",
                key,
                sequence,
                vec![gonka_chain::BankMsg::Send { to, amount: Amount(1) }.into()],
            );
            rounds[i % args.hosts].push(hex::encode(tx.to_bytes()));
        }
        for (node, round) in rounds.into_iter().enumerate() {
            per_node[node].push(round);
        }
    }
    let total = senders.len() * args.txs_per_account as usize;
    eprintln!(
        "signed {total} transfers in {:.1} s; starting {} validators",
        signing.elapsed().as_secs_f64(),
        args.hosts
    );

    let mut children = Vec::new();
    for node in &plan.nodes {
        children.push(gonka_client::devnet::spawn_node(exe, &node.home)?);
    }
    let outcome = run_load(&plan, per_node, &args).await;
    gonka_client::devnet::stop_all(&mut children);
    let LoadOutcome { tps, intervals, latencies, committed, blocks: blocks_seen } = outcome?;
    let interval_p50 = percentile(&intervals, 0.5);
    let interval_mean = mean(&intervals);

    let size_accounts = 100_000;
    let size_bytes = store_bytes_for(size_accounts)?;
    let size_mib = size_bytes as f64 / (1024.0 * 1024.0);
    let p50 = percentile(&latencies, 0.5);
    let p99 = percentile(&latencies, 0.99);
    let report = json!({
        "validators": args.hosts,
        "transfers_submitted": total,
        "transfers_committed": committed,
        "blocks": blocks_seen,
        "finalized_tps": tps,
        "finalized_tps_vs_target_1000": tps / TARGET_TPS,
        "paced_tps": args.paced_tps,
        "block_interval_ms_p50": interval_p50,
        "block_interval_ms_mean": interval_mean,
        "block_interval_mean_vs_target_1000": interval_mean / TARGET_BLOCK_INTERVAL_MS,
        "commit_latency_ms_p50": p50,
        "commit_latency_ms_p99": p99,
        "commit_latency_p50_vs_target_2000": p50 / TARGET_LATENCY_P50_MS,
        "store_bytes_per_100k_accounts": size_bytes,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "chain benchmark: {} validators on loopback, {} transfers ({} committed, {} blocks)",
            args.hosts, total, committed, blocks_seen
        );
        println!(
            "  finalized transfers   {tps:>9.0} tx/s   target >= 1000   ratio {:.2}x {}",
            tps / TARGET_TPS,
            verdict(tps >= TARGET_TPS)
        );
        println!(
            "  block interval mean   {interval_mean:>9.0} ms     target <= 1000   ratio {:.2}  (p50 {interval_p50:.0} ms; block times come from each proposer's clock) {}",
            interval_mean / TARGET_BLOCK_INTERVAL_MS,
            verdict(interval_mean <= TARGET_BLOCK_INTERVAL_MS)
        );
        println!(
            "  commit latency p50    {p50:>9.0} ms     target <= 2000   ratio {:.2} {}",
            p50 / TARGET_LATENCY_P50_MS,
            verdict(p50 <= TARGET_LATENCY_P50_MS)
        );
        println!("  commit latency p99    {p99:>9.0} ms");
        println!("  store per 100k accts  {size_mib:>9.1} MiB    ({size_bytes} bytes)");
    }
    Ok(())
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

/// What the two load phases measured.
struct LoadOutcome {
    /// Saturation phase: committed transfers per second.
    tps: f64,
    /// Paced phase: block intervals (ms), sorted.
    intervals: Vec<f64>,
    /// Paced phase: submission-to-commit latencies (ms), sorted.
    latencies: Vec<f64>,
    /// Transfers committed, both phases.
    committed: usize,
    /// Blocks seen, both phases.
    blocks: usize,
}

type Commits = Arc<Mutex<BTreeMap<Hash, Instant>>>;

/// Submits `rounds` (per node, in sequence order) to the nodes. With `rate`, the whole network is
/// offered `rate` tx/s; without, as fast as the nodes accept. Returns each tx's submission time.
async fn submit(
    plan: &gonka_client::devnet::DevnetPlan,
    per_node: Vec<Vec<String>>,
    rate: Option<f64>,
) -> anyhow::Result<Vec<(Hash, Instant)>> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let hosts = per_node.len();
    let mut tasks = Vec::new();
    for (node, txs) in per_node.into_iter().enumerate() {
        let url = format!("{}/txs/batch", plan.nodes[node].api_url);
        let http = http.clone();
        // Paced: every node sends a chunk each 100 ms tick.
        let chunk_size = rate.map_or(500, |r| ((r / hosts as f64) / 10.0).ceil().max(1.0) as usize);
        tasks.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            let start = tokio::time::Instant::now();
            for (tick, chunk) in txs.chunks(chunk_size).enumerate() {
                if rate.is_some() {
                    tokio::time::sleep_until(start + Duration::from_millis(100 * tick as u64)).await;
                }
                let now = Instant::now();
                let mut pending: Vec<String> = chunk.to_vec();
                while !pending.is_empty() {
                    let reply: Value =
                        http.post(&url).json(&json!({"txs": pending})).send().await?.json().await?;
                    let results = reply["results"].as_array().cloned().unwrap_or_default();
                    // A full mempool answers per tx; back off and retry those.
                    let retry: Vec<String> = pending
                        .iter()
                        .zip(results.iter())
                        .filter(|(_, r)| r["error"].as_str().is_some_and(|e| e.contains("mempool full")))
                        .map(|(tx, _)| tx.clone())
                        .collect();
                    if !retry.is_empty() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    pending = retry;
                }
                for tx in chunk {
                    if let Ok(bytes) = hex::decode(tx) {
                        sent.push((Hash::digest(&bytes), now));
                    }
                }
            }
            anyhow::Ok(sent)
        }));
    }
    let mut sent = Vec::new();
    for task in tasks {
        sent.extend(task.await.context("submitter panicked")??);
    }
    Ok(sent)
}

async fn wait_commits(commits: &Commits, sent: &[(Hash, Instant)], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let done = {
            let map = commits.lock().unwrap_or_else(|p| p.into_inner());
            sent.iter().filter(|(h, _)| map.contains_key(h)).count()
        };
        if done >= sent.len() || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[allow(clippy::cast_precision_loss)]
async fn run_load(
    plan: &gonka_client::devnet::DevnetPlan,
    per_node: Vec<Vec<Vec<String>>>,
    args: &ChainArgs,
) -> anyhow::Result<LoadOutcome> {
    let client = gonka_client::rest::NodeClient::new(&plan.nodes[0].api_url);
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.status().await.map_or(0, |s| s.chain.height) < 2 {
        anyhow::ensure!(Instant::now() < deadline, "the benchmark network did not start within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let commits: Commits = Arc::new(Mutex::new(BTreeMap::new()));
    let blocks = Arc::new(Mutex::new(Vec::new()));
    let follower =
        tokio::spawn(follow_blocks(plan.nodes[0].api_url.clone(), commits.clone(), blocks.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Phase 1, saturation: the first half of every account's transfers, as fast as accepted.
    let split = (args.txs_per_account / 2) as usize;
    let saturation: Vec<Vec<String>> = per_node.iter().map(|rounds| rounds[..split].concat()).collect();
    let paced: Vec<Vec<String>> = per_node.iter().map(|rounds| rounds[split..].concat()).collect();
    let start = Instant::now();
    let sent = submit(plan, saturation, None).await?;
    eprintln!("saturation: submitted {} transfers in {:.1} s", sent.len(), start.elapsed().as_secs_f64());
    wait_commits(&commits, &sent, Duration::from_secs(120)).await;
    let (committed_1, last) = {
        let map = commits.lock().unwrap_or_else(|p| p.into_inner());
        let times: Vec<Instant> = sent.iter().filter_map(|(h, _)| map.get(h).copied()).collect();
        (times.len(), times.into_iter().max())
    };
    let tps = last.map_or(f64::NAN, |l| committed_1 as f64 / l.duration_since(start).as_secs_f64());

    // Phase 2, paced at the target rate: block interval and commit latency under that load.
    let blocks_before = blocks.lock().unwrap_or_else(|p| p.into_inner()).len();
    let sent = submit(plan, paced, Some(args.paced_tps)).await?;
    eprintln!("paced: submitted {} transfers at {} tx/s", sent.len(), args.paced_tps);
    wait_commits(&commits, &sent, Duration::from_secs(120)).await;
    follower.abort();
    let commits = commits.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut latencies: Vec<f64> = sent
        .iter()
        .filter_map(|(h, at)| commits.get(h).map(|c| c.duration_since(*at).as_secs_f64() * 1000.0))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let blocks = blocks.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut intervals: Vec<f64> = blocks[blocks_before.saturating_sub(1)..]
        .windows(2)
        .map(|w| w[1].1.saturating_sub(w[0].1) as f64)
        .collect();
    intervals.sort_by(f64::total_cmp);
    Ok(LoadOutcome {
        tps,
        intervals,
        committed: committed_1 + latencies.len(),
        latencies,
        blocks: blocks.len(),
    })
}

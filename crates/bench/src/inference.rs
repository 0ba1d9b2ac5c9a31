//! `gonka bench inference`: the paid path (gateway → TA → executor) against the same engine answering
//! directly (`gonka serve`), same prompts, same run: added time to first token, aggregate tokens per
//! second with 8 concurrent developers, and the receipts the chain absorbs meanwhile.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use gonka_chain::{GenesisAccount, ModelPrice};
use gonka_client::devnet::{DevnetOptions, DevnetPlan, setup};
use gonka_client::gateway::Gateway;
use gonka_primitives::{AccountKey, Amount, Hash};
use serde_json::{Value, json};

use crate::stats::percentile;
use gonka_client::devnet::{spawn_node, stop_all};

#[derive(clap::Args, Debug)]
pub struct InferenceArgs {
    /// Concurrent developers in the aggregate phase.
    #[arg(long, default_value_t = 8)]
    developers: usize,
    /// Requests each developer sends in the aggregate phase.
    #[arg(long, default_value_t = 4)]
    requests: usize,
    /// Completion tokens per aggregate request.
    #[arg(long, default_value_t = 64)]
    max_tokens: u32,
    /// Sequential streamed requests timed for time to first token, per path.
    #[arg(long, default_value_t = 30)]
    ttft_samples: usize,
    /// First port of the benchmark devnet.
    #[arg(long, default_value_t = 26_900)]
    base_port: u16,
    /// One user prompt per line.
    #[arg(long, default_value = "bench/prompts.txt")]
    prompts: std::path::PathBuf,
}

/// Target: added TTFT p50 on loopback, ms.
const TARGET_ADDED_TTFT_MS: f64 = 5.0;
/// Target: aggregate throughput of the paid path relative to direct.
const TARGET_THROUGHPUT_RATIO: f64 = 0.9;

pub(crate) fn request_body(model: &str, prompt: &str, max_tokens: u32, stream: bool) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "model": model, "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens, "temperature": 0, "stream": stream,
    }))
    .unwrap_or_default()
}

/// Posts a chat completion body to `url`; an error status is an error.
pub(crate) async fn post_chat(
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> anyhow::Result<reqwest::Response> {
    let response = http
        .post(format!("{url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    anyhow::ensure!(response.status().is_success(), "{url}: {}", response.status());
    Ok(response)
}

/// Milliseconds from sending a streamed request to its first content chunk.
pub(crate) async fn ttft_ms(http: &reqwest::Client, url: &str, body: Vec<u8>) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut chunks = post_chat(http, url, body).await?.bytes_stream();
    let mut first = None;
    while let Some(chunk) = chunks.next().await {
        // The first chunk only names the role (`"content":""`); the first token's text is not empty.
        if first.is_none()
            && String::from_utf8_lossy(&chunk?)
                .split("\"content\":\"")
                .skip(1)
                .any(|rest| !rest.starts_with('"'))
        {
            first = Some(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    first.context("the stream carried no content")
}

/// Completion tokens per second of `urls.len()` concurrent clients each sending `requests` requests.
async fn aggregate(
    http: &reqwest::Client,
    urls: &[String],
    bodies: &[Vec<u8>],
    requests: usize,
) -> anyhow::Result<(f64, u64)> {
    let started = Instant::now();
    let tasks = urls.iter().enumerate().map(|(i, url)| {
        let (http, url) = (http.clone(), url.clone());
        let bodies: Vec<Vec<u8>> =
            (0..requests).map(|r| bodies[(i * requests + r) % bodies.len()].clone()).collect();
        async move {
            let mut tokens = 0u64;
            for body in bodies {
                let answer: Value = post_chat(&http, &url, body).await?.json().await?;
                tokens += answer["usage"]["completion_tokens"].as_u64().unwrap_or(0);
            }
            anyhow::Ok(tokens)
        }
    });
    let mut tokens = 0;
    for result in futures::future::join_all(tasks).await {
        tokens += result?;
    }
    Ok((tokens as f64 / started.elapsed().as_secs_f64(), tokens))
}

pub(crate) async fn wait_ready(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(response) = http.get(format!("{url}{path}")).send().await
            && let Ok(body) = response.json::<Value>().await
            && check(&body)
        {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{url} did not come up");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Start and Finish receipts included in blocks `from..=to` of `node`.
async fn receipts(http: &reqwest::Client, node: &str, from: u64, to: u64) -> anyhow::Result<u64> {
    let mut count = 0;
    for height in from..=to {
        let block: Value = http.get(format!("{node}/blocks/{height}")).send().await?.json().await?;
        for tx in block["txs"].as_array().into_iter().flatten() {
            for event in tx["events"].as_array().into_iter().flatten() {
                if matches!(event["kind"].as_str(), Some("inference_started" | "inference_finished")) {
                    count += 1;
                }
            }
        }
    }
    Ok(count)
}

async fn height(http: &reqwest::Client, node: &str) -> anyhow::Result<u64> {
    let status: Value = http.get(format!("{node}/status")).send().await?.json().await?;
    status["height"].as_u64().context("no height")
}

/// Everything the benchmark started, stopped however it ends.
pub(crate) struct Processes(pub(crate) Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        stop_all(&mut self.0);
    }
}

/// The prompts of `path`, one per non-empty line.
pub(crate) fn read_prompts(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let prompts: Vec<String> = std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    anyhow::ensure!(!prompts.is_empty(), "{} holds no prompt", path.display());
    Ok(prompts)
}

/// A two-host devnet for the paid-path benchmarks in `dir`: host-0 is every request's TA, host-1 holds
/// nearly all the power and executes them; `developers` are funded; the model is priced at 1,000.
pub(crate) fn two_host_devnet(
    dir: &std::path::Path,
    base_port: u16,
    chain_id: &str,
    developers: &[AccountKey],
    poc: gonka_node::host::PocConfig,
    params_override: Option<Value>,
) -> anyhow::Result<DevnetPlan> {
    let model = crate::default_model()?;
    let content_hash = Hash::from_hex(&model.content_hash).context("model hash")?;
    setup(&DevnetOptions {
        hosts: 2,
        dir: dir.to_path_buf(),
        base_port,
        host_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        chain_id: chain_id.into(),
        block_interval_ms: gonka_client::devnet::DEVNET_BLOCK_INTERVAL_MS,
        mainnet_profile: false,
        extra_accounts: developers
            .iter()
            .map(|k| GenesisAccount { address: k.address(), balance: Amount(1_000_000_000_000_000) })
            .collect(),
        params_override,
        poc,
        poc_workers: Vec::new(),
        // The hosts listen on loopback.
        inference: gonka_node::inference::InferenceConfig {
            allow_private_executors: true,
            ..Default::default()
        },
        models: vec![ModelPrice {
            name: model.name,
            content_hash,
            price_per_token: Amount(1000),
            cached_price_ppm: gonka_chain::FULL_PRICE_PPM,
            validation: Default::default(),
        }],
        weights: vec![1, 1_000_000],
        byzantine: Vec::new(),
    })
}

/// Starts `plan`'s nodes, waits until both make blocks, and serves one gateway per developer key
/// through host-0: the processes and the gateways' URLs.
pub(crate) async fn start_paid_path(
    plan: &DevnetPlan,
    exe: &std::path::Path,
    http: &reqwest::Client,
    developers: &[AccountKey],
) -> anyhow::Result<(Processes, Vec<String>)> {
    let mut processes = Processes(Vec::new());
    for node in &plan.nodes {
        processes.0.push(spawn_node(exe, &node.home)?);
    }
    for node in &plan.nodes {
        wait_ready(http, &node.api_url, "/status", |s| s["height"].as_u64().is_some_and(|h| h >= 2)).await?;
    }
    let mut gateways = Vec::new();
    for key in developers {
        let gateway = Arc::new(Gateway::connect(key.clone(), &plan.nodes[0].api_url).await?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        gateways.push(format!("http://{}", listener.local_addr()?));
        tokio::spawn(async move { axum::serve(listener, gonka_client::gateway::router(gateway)).await });
    }
    Ok((processes, gateways))
}

#[allow(clippy::print_stdout, clippy::too_many_lines)]
pub(crate) async fn inference_bench(args: InferenceArgs, exe: &std::path::Path) -> anyhow::Result<()> {
    let prompts = read_prompts(&args.prompts)?;
    anyhow::ensure!(args.developers > 0, "need developers");
    let model = crate::default_model()?;
    let dir = tempfile::tempdir()?;
    let developers: Vec<AccountKey> = (0..args.developers)
        .map(|i| AccountKey::from_seed(format!("bench-developer-{i}").as_bytes()))
        .collect();
    let plan = two_host_devnet(
        dir.path(),
        args.base_port,
        "gonka-bench-inference",
        &developers,
        gonka_node::host::PocConfig { enabled: false, ..Default::default() },
        None,
    )?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(300)).build()?;
    let (mut processes, gateways) = start_paid_path(&plan, exe, &http, &developers).await?;
    let direct_addr: SocketAddr = ([127, 0, 0, 1], args.base_port + 10).into();
    processes.0.push(
        Command::new(exe)
            .args(["serve", "--listen", &direct_addr.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting gonka serve")?,
    );
    let direct = format!("http://{direct_addr}");
    let ta = plan.nodes[0].api_url.clone();
    wait_ready(&http, &direct, "/health", |_| true).await?;

    // Time to first token, one request at a time, alternating paths so drift hits both alike.
    let (mut direct_ttft, mut path_ttft) = (Vec::new(), Vec::new());
    for i in 0..args.ttft_samples {
        let body = request_body(&model.name, &prompts[i % prompts.len()], 8, true);
        direct_ttft.push(ttft_ms(&http, &direct, body.clone()).await?);
        path_ttft.push(ttft_ms(&http, &gateways[0], body).await?);
    }
    direct_ttft.sort_by(f64::total_cmp);
    path_ttft.sort_by(f64::total_cmp);

    // Aggregate throughput with concurrent developers.
    let bodies: Vec<Vec<u8>> =
        prompts.iter().map(|p| request_body(&model.name, p, args.max_tokens, false)).collect();
    let direct_urls = vec![direct.clone(); args.developers];
    let (direct_tps, direct_tokens) = aggregate(&http, &direct_urls, &bodies, args.requests).await?;
    let first_height = height(&http, &ta).await? + 1;
    let started = Instant::now();
    let (path_tps, path_tokens) = aggregate(&http, &gateways, &bodies, args.requests).await?;
    let elapsed = started.elapsed().as_secs_f64();
    // Let the last Finish receipts land before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let last_height = height(&http, &ta).await?;
    let included = receipts(&http, &ta, first_height, last_height).await?;
    let expected = 2 * (args.developers * args.requests) as u64;

    let (d50, d99, p50, p99) = (
        percentile(&direct_ttft, 0.5),
        percentile(&direct_ttft, 0.99),
        percentile(&path_ttft, 0.5),
        percentile(&path_ttft, 0.99),
    );
    let ratio = path_tps / direct_tps;
    let pass = |ok: bool| if ok { "PASS" } else { "FAIL" };
    println!(
        "inference benchmark: gateway -> TA (host-0) -> executor (host-1) vs the same engine direct (gonka serve), {} on loopback",
        model.name
    );
    println!(
        "  TTFT direct p50/p99   {d50:>7.1} / {d99:>7.1} ms   paid path p50/p99 {p50:>7.1} / {p99:>7.1} ms ({} samples each)",
        args.ttft_samples
    );
    println!(
        "  added TTFT p50        {:>7.1} ms (target <= {TARGET_ADDED_TTFT_MS}) {}   p99 {:>7.1} ms",
        p50 - d50,
        pass(p50 - d50 <= TARGET_ADDED_TTFT_MS),
        p99 - d99
    );
    println!(
        "  {} developers x {} requests x {} tokens: direct {direct_tps:>6.1} tok/s ({direct_tokens} tokens), paid path {path_tps:>6.1} tok/s ({path_tokens} tokens); ratio {ratio:.2} (target >= {TARGET_THROUGHPUT_RATIO}) {}",
        args.developers,
        args.requests,
        args.max_tokens,
        pass(ratio >= TARGET_THROUGHPUT_RATIO)
    );
    println!(
        "  receipts absorbed     {included} of {expected} Start+Finish in blocks {first_height}..={last_height}: {:.1} receipts/s over the {elapsed:.1} s phase",
        included as f64 / elapsed
    );
    drop(processes);
    Ok(())
}

//! `gonka bench serving-during-poc`: the paid path while every host races a PoC sprint, against the
//! same path outside the sprint, same run (issue 17, Measure). The original network loses 68–75 % of
//! its output tokens/s while PoC runs; here the engine serves at normal priority and the sprint workers
//! run niced, so the question is what the sprint still costs: aggregate completion tokens/s of
//! concurrent developers and TTFT of a streamed request under that load, in two windows of equal length.

use std::time::{Duration, Instant};

use gonka_primitives::AccountKey;
use serde_json::Value;

use crate::inference::{post_chat, read_prompts, request_body, start_paid_path, ttft_ms, two_host_devnet};
use crate::stats::percentile;

#[derive(clap::Args, Debug)]
pub struct ServingPocArgs {
    /// Concurrent developers sending non-streamed requests.
    #[arg(long, default_value_t = 4)]
    developers: usize,
    /// Completion tokens per request.
    #[arg(long, default_value_t = 32)]
    max_tokens: u32,
    /// Seconds of each window.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// First port of the benchmark devnet.
    #[arg(long, default_value_t = 26_950)]
    base_port: u16,
    /// One user prompt per line.
    #[arg(long, default_value = "bench/prompts.txt")]
    prompts: std::path::PathBuf,
}

/// The first PoC starts at height 40 and sprints 40 blocks: a window of inference before it and a
/// window inside it both fit.
const PARAMS: &str = r#"{"epoch": {"epoch_length": 200, "epoch_shift": 160, "poc_stage_duration": 40,
  "poc_exchange_duration": 2, "poc_validation_delay": 2, "poc_validation_duration": 8,
  "set_new_validators_delay": 2, "inference_validation_cutoff": 5}}"#;

/// What one window measured.
struct Window {
    tokens_per_second: f64,
    tokens: u64,
    ttft: Vec<f64>,
}

/// `developers` clients sending requests back to back and one client timing streamed requests, for
/// `seconds`.
async fn window(
    http: &reqwest::Client,
    gateways: &[String],
    bodies: &[Vec<u8>],
    streamed: &[Vec<u8>],
    seconds: u64,
) -> anyhow::Result<Window> {
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let step = gateways.len().max(1);
    let senders = gateways[1..].iter().enumerate().map(|(i, url)| {
        let (http, url) = (http.clone(), url.clone());
        let bodies = bodies.to_vec();
        async move {
            let (mut tokens, mut n) = (0u64, i);
            while Instant::now() < until {
                let answer: Value =
                    post_chat(&http, &url, bodies[n % bodies.len()].clone()).await?.json().await?;
                tokens += answer["usage"]["completion_tokens"].as_u64().unwrap_or(0);
                n += step;
            }
            anyhow::Ok(tokens)
        }
    });
    let sampler = async {
        let mut ttft = Vec::new();
        let mut n = 0;
        while Instant::now() < until {
            ttft.push(ttft_ms(http, &gateways[0], streamed[n % streamed.len()].clone()).await?);
            n += 1;
        }
        anyhow::Ok(ttft)
    };
    let (sent, ttft) = tokio::join!(futures::future::join_all(senders), sampler);
    let mut tokens = 0;
    for result in sent {
        tokens += result?;
    }
    let mut ttft = ttft?;
    ttft.sort_by(f64::total_cmp);
    Ok(Window { tokens_per_second: tokens as f64 / started.elapsed().as_secs_f64(), tokens, ttft })
}

async fn status(http: &reqwest::Client, node: &str) -> anyhow::Result<Value> {
    Ok(http.get(format!("{node}/status")).send().await?.json().await?)
}

#[allow(clippy::print_stdout)]
pub(crate) async fn serving_poc_bench(args: ServingPocArgs, exe: &std::path::Path) -> anyhow::Result<()> {
    let prompts = read_prompts(&args.prompts)?;
    anyhow::ensure!(args.developers > 0, "need developers");
    let model = crate::default_model()?;
    let dir = tempfile::tempdir()?;
    let developers: Vec<AccountKey> = (0..=args.developers)
        .map(|i| AccountKey::from_seed(format!("bench-poc-developer-{i}").as_bytes()))
        .collect();
    // Both hosts race PoC with one worker each (the devnet's default).
    let plan = two_host_devnet(
        dir.path(),
        args.base_port,
        "gonka-bench-serving-poc",
        &developers,
        gonka_node::host::PocConfig { enabled: true, workers: 1, ..Default::default() },
        Some(serde_json::from_str(PARAMS)?),
    )?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(300)).build()?;
    let (processes, gateways) = start_paid_path(&plan, exe, &http, &developers).await?;
    let (ta, executor) = (plan.nodes[0].api_url.clone(), plan.nodes[1].api_url.clone());
    let bodies: Vec<Vec<u8>> =
        prompts.iter().map(|p| request_body(&model.name, p, args.max_tokens, false)).collect();
    let streamed: Vec<Vec<u8>> = prompts.iter().map(|p| request_body(&model.name, p, 8, true)).collect();

    // Outside the sprint: the inference phase before the first PoC.
    let outside_from = status(&http, &ta).await?["height"].as_u64().unwrap_or(0);
    let outside = window(&http, &gateways, &bodies, &streamed, args.seconds).await?;
    let outside_phase = status(&http, &ta).await?["phase"].as_str().unwrap_or("").to_string();
    anyhow::ensure!(
        outside_phase == "inference",
        "the first window ran into {outside_phase}: lower --seconds"
    );

    // Inside: once both hosts are sprinting.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let mut sprinting = 0;
        for node in [&ta, &executor] {
            let progress: Value = http.get(format!("{node}/poc/progress")).send().await?.json().await?;
            sprinting += usize::from(progress["activity"] == "sprinting");
        }
        if sprinting == 2 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the hosts never started sprinting");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let inside_from = status(&http, &ta).await?["height"].as_u64().unwrap_or(0);
    let inside = window(&http, &gateways, &bodies, &streamed, args.seconds).await?;
    let inside_phase = status(&http, &ta).await?["phase"].as_str().unwrap_or("").to_string();
    anyhow::ensure!(
        inside_phase == "poc_generate",
        "the sprint ended inside the window ({inside_phase}): lower --seconds"
    );

    let ratio = inside.tokens_per_second / outside.tokens_per_second;
    let (o50, i50) = (percentile(&outside.ttft, 0.5), percentile(&inside.ttft, 0.5));
    println!(
        "serving during PoC: gateway -> TA (host-0) -> executor (host-1), both hosts racing PoC with one niced worker, {} developers x {} tokens, {} s windows, {}",
        args.developers, args.max_tokens, args.seconds, model.name
    );
    println!(
        "  outside the sprint (from height {outside_from}): {:>6.1} tok/s ({} tokens), TTFT p50 {o50:>6.1} ms p90 {:>6.1} ms ({} samples)",
        outside.tokens_per_second,
        outside.tokens,
        percentile(&outside.ttft, 0.9),
        outside.ttft.len()
    );
    println!(
        "  inside the sprint  (from height {inside_from}): {:>6.1} tok/s ({} tokens), TTFT p50 {i50:>6.1} ms p90 {:>6.1} ms ({} samples)",
        inside.tokens_per_second,
        inside.tokens,
        percentile(&inside.ttft, 0.9),
        inside.ttft.len()
    );
    println!(
        "  during the sprint: throughput ratio {ratio:.2} ({:.0} % of output tokens/s lost; the original network loses 68-75 %), TTFT p50 x{:.2}",
        (1.0 - ratio) * 100.0,
        i50 / o50
    );
    drop(processes);
    Ok(())
}

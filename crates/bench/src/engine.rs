//! `gonka bench engine` and `gonka bench scoring-gap`: the embedded engine, measured through its real
//! scheduler.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use gonka_engine::{
    ChatMessage, Engine, EngineConfig, FinishReason, GenerationEvent, GenerationRequest, Generator,
    SamplingParams,
};
use serde_json::json;

use crate::stats::percentile;

#[derive(clap::Args, Debug)]
pub struct EngineArgs {
    /// One user prompt per line.
    #[arg(long, default_value = "bench/prompts.txt")]
    prompts: PathBuf,
    /// Tokens generated per request.
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    /// Concurrent streams for the aggregate figure.
    #[arg(long, default_value_t = 8)]
    streams: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub struct GapArgs {
    /// One user prompt per line.
    #[arg(long, default_value = "bench/prompts-scoring.txt")]
    prompts: PathBuf,
    /// Tokens generated per answer.
    #[arg(long, default_value_t = 48)]
    max_tokens: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn load(max_sequences: usize) -> anyhow::Result<(Engine, String)> {
    let model = crate::default_model()?;
    let config =
        EngineConfig { max_sequences, threads: gonka_engine::compute_threads(), ..EngineConfig::default() };
    let engine = Engine::load(&model.path, &model.name, &model.content_hash, config)?;
    Ok((engine, model.path.display().to_string()))
}

pub(crate) fn read_prompts(path: &PathBuf) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let prompts: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    if prompts.is_empty() {
        bail!("{} holds no prompts", path.display());
    }
    Ok(prompts)
}

pub(crate) fn render(engine: &Engine, prompt: &str) -> anyhow::Result<Vec<u32>> {
    Ok(engine.render_chat(&[ChatMessage { role: "user".into(), content: prompt.into() }])?)
}

/// One finished request, with the arrival time of every token.
pub(crate) struct Run {
    submitted: Instant,
    pub(crate) token_times: Vec<Instant>,
    pub(crate) tokens: Vec<u32>,
    logprobs: Vec<f32>,
    prompt_tokens: usize,
    pub(crate) reason: FinishReason,
    /// Prompt tokens the engine's prefix cache supplied.
    pub(crate) cached_tokens: usize,
}

pub(crate) async fn generate(engine: &Engine, request: GenerationRequest) -> anyhow::Result<Run> {
    let prompt_tokens = request.prompt_tokens.len();
    let submitted = Instant::now();
    let mut stream = engine.submit(request)?;
    let (mut token_times, mut tokens, mut logprobs) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(event) = stream.recv().await {
        match event {
            GenerationEvent::Token { id, logprobs: lp, .. } => {
                token_times.push(Instant::now());
                tokens.push(id);
                logprobs.extend(lp.map(|p| p.chosen.logprob));
            }
            GenerationEvent::Finished { reason, usage } => {
                let cached_tokens = usage.cached_tokens;
                return Ok(Run {
                    submitted,
                    token_times,
                    tokens,
                    logprobs,
                    prompt_tokens,
                    reason,
                    cached_tokens,
                });
            }
            GenerationEvent::Failed(e) => bail!("generation failed: {e}"),
        }
    }
    bail!("the engine closed the stream without finishing")
}

pub(crate) fn request(
    prompt_tokens: Vec<u32>,
    max_tokens: usize,
    sampling: SamplingParams,
    logprobs: bool,
) -> GenerationRequest {
    GenerationRequest {
        prompt_tokens,
        sampling,
        max_tokens,
        stop: Vec::new(),
        top_logprobs: logprobs.then_some(0),
        ignore_eos: true,
    }
}

fn greedy() -> SamplingParams {
    SamplingParams { temperature: 0.0, ..SamplingParams::default() }
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

#[allow(clippy::print_stdout, clippy::cast_precision_loss)]
pub(crate) async fn engine_bench(args: EngineArgs) -> anyhow::Result<()> {
    let (engine, model_path) = load(args.streams.max(1))?;
    let prompts: Vec<Vec<u32>> =
        read_prompts(&args.prompts)?.iter().map(|p| render(&engine, p)).collect::<anyhow::Result<_>>()?;
    generate(&engine, request(prompts[0].clone(), 8, greedy(), false)).await?; // warm-up

    // Single stream, one prompt after another.
    let mut singles = Vec::with_capacity(prompts.len());
    for prompt in &prompts {
        singles.push(generate(&engine, request(prompt.clone(), args.max_tokens, greedy(), false)).await?);
    }
    let mut ttft_ms: Vec<f64> = Vec::new();
    let (mut prefill_tokens, mut prefill_secs, mut decode_tokens, mut decode_secs) =
        (0usize, 0.0, 0usize, 0.0);
    for run in &singles {
        let (Some(first), Some(last)) = (run.token_times.first(), run.token_times.last()) else { continue };
        let ttft = first.duration_since(run.submitted).as_secs_f64();
        ttft_ms.push(ttft * 1e3);
        prefill_tokens += run.prompt_tokens;
        prefill_secs += ttft;
        decode_tokens += run.tokens.len() - 1;
        decode_secs += last.duration_since(*first).as_secs_f64();
    }
    ttft_ms.sort_by(f64::total_cmp);

    // Concurrent streams: tokens/s over the window in which every stream of a group is decoding.
    let (mut window_tokens, mut window_secs) = (0usize, 0.0);
    for group in prompts.chunks(args.streams).filter(|g| g.len() == args.streams) {
        let runs = futures_join(&engine, group, args.max_tokens).await?;
        let start = runs.iter().filter_map(|r| r.token_times.first()).max().copied();
        let end = runs.iter().filter_map(|r| r.token_times.last()).min().copied();
        let (Some(start), Some(end)) = (start, end) else { continue };
        if end <= start {
            continue;
        }
        window_tokens +=
            runs.iter().flat_map(|r| &r.token_times).filter(|t| **t > start && **t <= end).count();
        window_secs += end.duration_since(start).as_secs_f64();
    }

    // Scoring: re-score every single-stream answer in one teacher-forced pass. Besides the completion
    // tokens scored, count the tokens recomputed (the prompt and all completion tokens but the last).
    let (mut scored_tokens, mut recomputed_tokens, mut scoring_secs) = (0usize, 0usize, 0.0);
    for (prompt, run) in prompts.iter().zip(&singles) {
        let started = Instant::now();
        let scores = engine.score(prompt.clone(), run.tokens.clone(), 5).await?;
        scoring_secs += started.elapsed().as_secs_f64();
        scored_tokens += scores.len();
        recomputed_tokens += prompt.len() + run.tokens.len().saturating_sub(1);
    }

    let ratio = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let decode_tok_s = ratio(decode_tokens, decode_secs);
    let stopped_early = singles.iter().filter(|r| r.reason == FinishReason::Stop).count();
    let report = json!({
        "engine": "gonka-rs",
        "model": model_path,
        "threads": gonka_engine::compute_threads(),
        "n_prompts": prompts.len(),
        "max_tokens": args.max_tokens,
        "answers_ended_by_eos": stopped_early,
        "prefill_tok_s": ratio(prefill_tokens, prefill_secs),
        "decode_tok_s": decode_tok_s,
        format!("decode_{}_streams_tok_s", args.streams): ratio(window_tokens, window_secs),
        "ttft_ms_p50": percentile(&ttft_ms, 0.5),
        "ttft_ms_p99": percentile(&ttft_ms, 0.99),
        "scoring_tok_s": ratio(scored_tokens, scoring_secs),
        "scoring_recomputed_tok_s": ratio(recomputed_tokens, scoring_secs),
        "peak_rss_mib": peak_rss_mib(),
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

async fn futures_join(engine: &Engine, group: &[Vec<u32>], max_tokens: usize) -> anyhow::Result<Vec<Run>> {
    let runs = futures::future::join_all(
        group.iter().map(|p| generate(engine, request(p.clone(), max_tokens, greedy(), false))),
    )
    .await;
    runs.into_iter().collect()
}

#[allow(clippy::print_stdout, clippy::cast_precision_loss)]
pub(crate) async fn scoring_gap(args: GapArgs) -> anyhow::Result<()> {
    let (engine, model_path) = load(8)?;
    let prompts = read_prompts(&args.prompts)?;
    let (mut max_abs, mut sum_abs, mut positions, mut exact, mut answers) =
        (0f64, 0f64, 0usize, 0usize, 0usize);
    let started = Instant::now();
    // Generate in groups of 8 so answers come from batched decode steps, as in production.
    for (group_index, group) in prompts.chunks(8).enumerate() {
        let mut pending = Vec::new();
        for (i, prompt) in group.iter().enumerate() {
            let tokens = render(&engine, prompt)?;
            let seed = (group_index * 8 + i) as u64;
            let sampling = SamplingParams { top_p: 0.95, seed, ..SamplingParams::default() };
            pending.push((tokens.clone(), request(tokens, args.max_tokens, sampling, true)));
        }
        let runs = futures::future::join_all(pending.iter().map(|(_, r)| generate(&engine, r.clone()))).await;
        for ((prompt, _), run) in pending.into_iter().zip(runs) {
            let run = run?;
            let scores = engine.score(prompt, run.tokens.clone(), 0).await?;
            for (generated, scored) in run.logprobs.iter().zip(&scores) {
                let diff = f64::from((generated - scored.logprob).abs());
                max_abs = max_abs.max(diff);
                sum_abs += diff;
                positions += 1;
                exact += usize::from(diff == 0.0);
            }
            answers += 1;
        }
    }
    let report = json!({
        "model": model_path,
        "answers": answers,
        "positions": positions,
        "max_abs_logprob_diff": max_abs,
        "mean_abs_logprob_diff": if positions > 0 { sum_abs / positions as f64 } else { 0.0 },
        "bit_identical_fraction": if positions > 0 { exact as f64 / positions as f64 } else { 0.0 },
        "seconds": started.elapsed().as_secs_f64(),
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

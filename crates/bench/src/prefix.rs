//! `gonka bench prefix-cache`: time to first token of questions after one long shared system prompt
//! (about 2,000 tokens, what agents resend with every request), on an engine with the prefix cache and
//! on one without, in the same run. The first question on the cached engine fills the cache and is
//! reported apart; the answers of both engines are compared token for token.

use std::time::Instant;

use gonka_engine::{ChatMessage, Engine, EngineConfig, Generator, SamplingParams};
use serde_json::json;

use crate::engine::{generate, request};
use crate::stats::{percentile, sorted};

/// Arguments of `gonka bench prefix-cache`.
#[derive(clap::Args, Debug)]
pub struct PrefixArgs {
    /// Questions asked after the shared system prompt.
    #[arg(long, default_value_t = 8)]
    questions: usize,
    /// Tokens generated per answer.
    #[arg(long, default_value_t = 8)]
    max_tokens: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

const INSTRUCTIONS: &str = "You are the support assistant of a small hardware shop. Be precise and brief; \
    quote prices in euros; never promise delivery dates; ask one clarifying question when a request is \
    ambiguous; refuse anything unrelated to the shop's products, opening hours or returns. ";

fn load(prefix_cache_tokens: usize) -> anyhow::Result<Engine> {
    let model = crate::default_model()?;
    let config = EngineConfig {
        max_sequences: 1,
        threads: gonka_engine::compute_threads(),
        prefix_cache_tokens,
        ..EngineConfig::default()
    };
    Ok(Engine::load(&model.path, &model.name, &model.content_hash, config)?)
}

/// TTFT in ms, the cached tokens and the answer of each question on `engine`.
async fn ask(
    engine: &Engine,
    system: &str,
    questions: usize,
    max_tokens: usize,
) -> anyhow::Result<Vec<(f64, usize, Vec<u32>)>> {
    let mut out = Vec::with_capacity(questions);
    for i in 0..questions {
        let messages = [
            ChatMessage { role: "system".into(), content: system.into() },
            ChatMessage {
                role: "user".into(),
                content: format!("Question {i}: do you sell size {i} hex keys?"),
            },
        ];
        let prompt = engine.render_chat(&messages)?;
        let sampling = SamplingParams { temperature: 0.0, ..SamplingParams::default() };
        let started = Instant::now();
        let run = generate(engine, request(prompt, max_tokens, sampling, false)).await?;
        let ttft = run.token_times.first().map_or(0.0, |t| t.duration_since(started).as_secs_f64() * 1e3);
        out.push((ttft, run.cached_tokens, run.tokens));
    }
    Ok(out)
}

#[allow(clippy::print_stdout)]
pub(crate) async fn prefix_bench(args: PrefixArgs) -> anyhow::Result<()> {
    let questions = args.questions.max(2);
    let cached_engine = load(4096)?;
    let system = INSTRUCTIONS.repeat(40);
    let prompt_tokens =
        cached_engine.render_chat(&[ChatMessage { role: "system".into(), content: system.clone() }])?.len();
    let plain_engine = load(0)?;
    let plain = ask(&plain_engine, &system, questions, args.max_tokens).await?;
    drop(plain_engine);
    let cached = ask(&cached_engine, &system, questions, args.max_tokens).await?;
    let identical = plain.iter().zip(&cached).all(|(a, b)| a.2 == b.2);
    let ttft = |runs: &[(f64, usize, Vec<u32>)]| sorted(runs.iter().map(|r| r.0).collect());
    let without = ttft(&plain[1..]);
    let with = ttft(&cached[1..]);
    let report = json!({
        "system_prompt_tokens": prompt_tokens,
        "questions": questions,
        "ttft_ms_p50_without_cache": percentile(&without, 0.5),
        "ttft_ms_p50_with_cache": percentile(&with, 0.5),
        "ratio": percentile(&without, 0.5) / percentile(&with, 0.5),
        "first_question_with_cache_ms": cached[0].0,
        "cached_tokens_per_later_question": cached[1].1,
        "answers_identical": identical,
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    anyhow::ensure!(identical, "answers differ with and without the prefix cache");
    Ok(())
}

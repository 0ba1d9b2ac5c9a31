//! `gonka bench structured`: what constrained decoding costs (issue 16). Every prompt is answered twice
//! on the same engine, one after the other: under a JSON Schema, and free with the same sampling and
//! exactly as many tokens; the figure is decode tokens/s of the first against the second. The grammar
//! engine's own costs are timed apart: compiling a schema, and one mask per token.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use gonka_engine::{OutputGrammar, SamplingParams};
use serde_json::json;

use crate::engine::{Run, generate, load, read_prompts, render, request};
use crate::stats::{mean, percentile, sorted};

/// Arguments of `gonka bench structured`.
#[derive(clap::Args, Debug)]
pub struct StructuredArgs {
    /// One user prompt per line.
    #[arg(long, default_value = "bench/prompts.txt")]
    prompts: PathBuf,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 160)]
    max_tokens: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The schema every answer is constrained to: nested objects, an enum, bounded numbers, an array.
fn schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "topic": {"type": "string", "maxLength": 60},
            "answer": {"type": "string", "maxLength": 200},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "category": {"enum": ["science", "history", "art", "advice", "other"]},
            "related": {"type": "array", "maxItems": 3, "items": {
                "type": "object",
                "properties": {"name": {"type": "string", "maxLength": 40}, "score": {"type": "integer", "minimum": 0, "maximum": 10}},
                "required": ["name", "score"], "additionalProperties": false}}
        },
        "required": ["topic", "answer", "confidence", "category", "related"],
        "additionalProperties": false
    })
}

/// Decode tokens and seconds of a run (first token to last).
fn decode(run: &Run) -> (usize, f64) {
    match (run.token_times.first(), run.token_times.last()) {
        (Some(first), Some(last)) => (run.tokens.len() - 1, last.duration_since(*first).as_secs_f64()),
        _ => (0, 0.0),
    }
}

#[allow(clippy::print_stdout, clippy::cast_precision_loss)]
pub(crate) async fn structured_bench(args: StructuredArgs) -> anyhow::Result<()> {
    let (engine, _) = load(1)?;
    let engine = Arc::new(engine);
    let grammar = OutputGrammar::JsonSchema(schema().to_string());
    let prompts = read_prompts(&args.prompts)?;

    // The grammar engine alone: the first compile builds the token trie and slices, later ones reuse it.
    let started = Instant::now();
    engine.grammars().compile(&grammar)?;
    let first_compile_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut compile_ms = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        engine.grammars().compile(&grammar)?;
        compile_ms.push(started.elapsed().as_secs_f64() * 1e3);
    }

    let (mut constrained, mut free) = ((0usize, 0.0f64), (0usize, 0.0f64));
    let (mut parsed, mut ended, mut answers) = (0usize, 0usize, 0usize);
    let mut mask_us = Vec::new();
    for (i, prompt) in prompts.iter().enumerate() {
        let prompt_tokens = render(&engine, prompt)?;
        let sampling = SamplingParams { temperature: 0.7, seed: i as u64, ..SamplingParams::default() };
        let mut shaped = request(prompt_tokens.clone(), args.max_tokens, sampling.clone(), false);
        shaped.sampling.grammar = Some(grammar.clone());
        shaped.ignore_eos = false;
        let run = generate(&engine, shaped).await?;
        let text = engine.tokenizer().decode(&run.tokens);
        answers += 1;
        if run.reason == gonka_engine::FinishReason::Stop {
            ended += 1;
            let json = text.trim_end_matches("<|im_end|>");
            parsed += usize::from(serde_json::from_str::<serde_json::Value>(json).is_ok());
        }
        let (tokens, secs) = decode(&run);
        constrained.0 += tokens;
        constrained.1 += secs;

        // The same sampling, free, for exactly as many tokens.
        let unconstrained =
            generate(&engine, request(prompt_tokens, run.tokens.len(), sampling, false)).await?;
        let (tokens, secs) = decode(&unconstrained);
        free.0 += tokens;
        free.1 += secs;

        let mut constraint = engine.grammars().compile(&grammar)?;
        for &token in &run.tokens {
            let started = Instant::now();
            let _ = constraint.step(token);
            mask_us.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    let rate = |(tokens, secs): (usize, f64)| if secs > 0.0 { tokens as f64 / secs } else { 0.0 };
    let mask_us = sorted(mask_us);
    let compile_ms = sorted(compile_ms);
    let report = json!({
        "answers": answers,
        "answers_ended_by_the_model": ended,
        "of_those_parse": parsed,
        "constrained_decode_tok_s": rate(constrained),
        "free_decode_tok_s": rate(free),
        "ratio": rate(constrained) / rate(free),
        "mask_us_per_token": {"mean": mean(&mask_us), "p50": percentile(&mask_us, 0.5), "p99": percentile(&mask_us, 0.99)},
        "compile_ms": {"first": first_compile_ms, "p50": percentile(&compile_ms, 0.5)},
        "threads": gonka_engine::compute_threads(),
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

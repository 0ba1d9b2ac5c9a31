//! Run the embedded LLM: model store, tokenizer, chat template, batched generation and scoring.
#![deny(missing_docs)]

pub use gonka_engine_api::{
    Backend, ChatMessage, CompletionText, EngineError, FinishReason, GenerationDefaults, GenerationEvent,
    GenerationRequest, GenerationStream, Generator, LogitAdjustments, ModelInfo, OutputGrammar,
    PositionLogprobs, Replay, SamplingParams, ScoreFuture, ScoreRequest, ScoredPosition, Scorer,
    TokenLogprob, Usage, choice_seed,
};

pub mod chat;
pub mod constraint;
pub mod engine;
pub mod gguf;
pub mod kernels;
pub mod model;
pub mod poc;
pub mod prefix;
pub mod reference;
pub mod sampler;
pub mod score;
pub mod store;
pub mod text;
pub mod tokenizer;

pub use engine::{Engine, EngineConfig};

/// Threads for the numeric kernels: `GONKA_THREADS`, else every available core.
pub fn compute_threads() -> usize {
    std::env::var("GONKA_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

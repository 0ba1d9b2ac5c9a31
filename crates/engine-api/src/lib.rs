//! The engine's contract with its callers: what a generation request holds, what comes back, the
//! [`Generator`] trait the HTTP layer serves from and the [`Scorer`] trait validators re-score answers
//! with. Nothing here pulls in a model runtime: the embedded engine (`gonka-engine`, on candle and its
//! own kernels) implements both traits, and so does [`fake::FakeEngine`], a deterministic stand-in any
//! crate's tests and the simulator can use.
#![deny(missing_docs)]

pub mod fake;

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// How the next token is drawn from the model's distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// Softmax temperature; `0.0` means greedy (argmax).
    pub temperature: f32,
    /// Nucleus mass in `(0, 1]`; `1.0` disables nucleus filtering.
    pub top_p: f32,
    /// Keep only the `top_k` most likely tokens; `0` disables the filter.
    pub top_k: usize,
    /// Seed of the request's own random stream: the same seed and request give the same tokens.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self { temperature: 1.0, top_p: 1.0, top_k: 0, seed: 0 }
    }
}

/// One generation job, already tokenized and validated against the engine's limits by the caller
/// (see [`Generator::check`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    /// Prompt token ids, chat template applied.
    pub prompt_tokens: Vec<u32>,
    /// Sampling settings.
    pub sampling: SamplingParams,
    /// Most completion tokens to generate.
    pub max_tokens: usize,
    /// Generation stops before any of these strings would appear in the output.
    pub stop: Vec<String>,
    /// `Some(n)`: report the sampled token's logprob and its `n` most likely alternatives (n ≤ 20).
    pub top_logprobs: Option<usize>,
    /// Keep generating past end-of-turn tokens until `max_tokens` (benchmarks; not exposed on the API).
    pub ignore_eos: bool,
}

/// A candidate token and its log-probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    /// Token id.
    pub id: u32,
    /// Token text (lossy UTF-8 of `bytes`).
    pub text: String,
    /// Raw bytes of the token.
    pub bytes: Vec<u8>,
    /// Natural-log probability under the unmodified model distribution (temperature 1, no filters).
    pub logprob: f32,
}

/// The logprob record of one generated position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionLogprobs {
    /// The token that was emitted.
    pub chosen: TokenLogprob,
    /// The most likely tokens at this position, best first.
    pub top: Vec<TokenLogprob>,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End-of-turn token or a stop sequence.
    Stop,
    /// `max_tokens` or the context length was reached.
    Length,
}

/// Token counts of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated (including a final end-of-turn token, excluding nothing else).
    pub completion_tokens: usize,
}

/// What a running generation sends back, in order: any number of `Token`, then exactly one of
/// `Finished` or `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    /// One generated token.
    Token {
        /// Token id.
        id: u32,
        /// Text that became final with this token (may be empty while UTF-8 bytes or a possible stop
        /// sequence are held back).
        text: String,
        /// Logprobs, when the request asked for them.
        logprobs: Option<PositionLogprobs>,
    },
    /// Generation ended normally.
    Finished {
        /// Why it ended.
        reason: FinishReason,
        /// Exact token counts.
        usage: Usage,
    },
    /// Generation failed inside the engine.
    Failed(EngineError),
}

/// Errors the engine reports to its callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The prompt plus `max_tokens` does not fit the model's context window.
    #[error(
        "prompt has {prompt_tokens} tokens; with max_tokens {max_tokens} it exceeds the context length {context_length}"
    )]
    ContextLengthExceeded {
        /// Prompt tokens.
        prompt_tokens: usize,
        /// Requested completion tokens.
        max_tokens: usize,
        /// The model's context length.
        context_length: usize,
    },
    /// A request parameter is outside what the engine accepts.
    #[error("invalid parameter `{param}`: {message}")]
    InvalidParameter {
        /// Field name as the API spells it.
        param: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The wait queue is full; the caller should retry later.
    #[error("the engine queue is full ({queue_capacity} waiting requests)")]
    Overloaded {
        /// Configured queue bound.
        queue_capacity: usize,
    },
    /// The engine thread has stopped.
    #[error("the engine is shut down")]
    ShutDown,
    /// A numeric or model failure while running the request.
    #[error("model failure: {0}")]
    Model(String),
}

/// One message of a chat, as the chat template consumes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, …
    pub role: String,
    /// Plain text content.
    pub content: String,
}

/// Facts about the loaded model that the API reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Name clients use in `model` (e.g. `SmolLM2-135M-Instruct`).
    pub name: String,
    /// sha256 of the GGUF file the engine runs: the model's identity.
    pub content_hash: String,
    /// Maximum prompt + completion tokens.
    pub context_length: usize,
}

/// A stream of [`GenerationEvent`]s. Dropping it cancels the generation and frees its slot.
pub type GenerationStream = mpsc::Receiver<GenerationEvent>;

/// Something that turns chats into tokens: the embedded engine, or later an external one.
///
/// Contract: `submit` never blocks on model work; it either queues the request and returns a stream,
/// or fails at once (`Overloaded`, `ContextLengthExceeded`, `ShutDown`). Every accepted request ends
/// with exactly one `Finished` or `Failed` event unless the caller drops the stream first.
pub trait Generator: Send + Sync + 'static {
    /// The served model.
    fn model_info(&self) -> &ModelInfo;
    /// Apply the model's chat template and tokenize, ready for generation.
    fn render_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, EngineError>;
    /// Queue a request.
    fn submit(&self, request: GenerationRequest) -> Result<GenerationStream, EngineError>;
    /// Requests waiting for a slot right now.
    fn queue_depth(&self) -> usize;
    /// Requests generating right now.
    fn active_sequences(&self) -> usize;
}

/// The score of one completion position under teacher forcing.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredPosition {
    /// The given token.
    pub token: u32,
    /// Its logprob under the model (temperature 1, no filters).
    pub logprob: f32,
    /// The `top_k` most likely tokens with their logprobs, best first.
    pub top: Vec<(u32, f32)>,
}

/// A teacher-forced scoring job: the logprob of every completion token after the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreRequest {
    /// Prompt token ids, chat template applied.
    pub prompt_tokens: Vec<u32>,
    /// The completion to score.
    pub completion_tokens: Vec<u32>,
    /// Alternatives to report per position.
    pub top_k: usize,
}

/// A scoring in progress.
pub type ScoreFuture = Pin<Box<dyn Future<Output = Result<Vec<ScoredPosition>, EngineError>> + Send>>;

/// Something that re-scores an answer under the served model: what a validator runs.
///
/// Contract: the scores of a completion are the logprobs the same engine reported while generating it
/// (the embedded engine is bit-identical between the two paths); a request that does not fit the
/// context window fails with `ContextLengthExceeded`, never with a partial result.
pub trait Scorer: Send + Sync + 'static {
    /// Queues `request`; the future resolves when it is scored.
    fn score(&self, request: ScoreRequest) -> ScoreFuture;
}

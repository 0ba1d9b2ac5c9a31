//! The engine's contract with its callers: what a generation request holds, what comes back, the
//! [`Generator`] trait the HTTP layer serves from and the [`Scorer`] trait validators re-score answers
//! with. Nothing here pulls in a model runtime: the embedded engine (`gonka-engine`, on candle and its
//! own kernels) implements both traits, and so does [`fake::FakeEngine`], a deterministic stand-in any
//! crate's tests and the simulator can use.
#![deny(missing_docs)]

pub mod fake;

use std::collections::BTreeMap;
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
    /// Penalties and biases added to the logits before every draw (none by default).
    #[serde(default, skip_serializing_if = "LogitAdjustments::is_none")]
    pub adjustments: LogitAdjustments,
    /// The grammar the output must stay inside (structured outputs); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar: Option<OutputGrammar>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            seed: 0,
            adjustments: LogitAdjustments::default(),
            grammar: None,
        }
    }
}

/// What a constrained answer must be (`docs/spec/validation.md` §3.2): at every position the sampler
/// draws only among the tokens that keep the output a prefix of a sentence of this grammar, and ends
/// only where the output is a whole one. The set of allowed tokens after a given prefix is a pure
/// function of the grammar, the tokenizer and the prefix, so a validator rebuilds each position's mask
/// from the answer itself. Engines compile it with one pinned grammar engine (llguidance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputGrammar {
    /// JSON matching a JSON Schema, given as JSON text (OpenAI's `json_schema` response format; `{"type":
    /// "object"}` for `json_object`). Objects are written compactly with `", "` and `": "` separators and
    /// their properties in the schema's order.
    JsonSchema(String),
    /// A grammar in llguidance's Lark dialect: what a forced tool call must be (the call syntax, with
    /// each function's parameter schema nested as `%json`).
    Lark(String),
}

impl OutputGrammar {
    /// The request field an invalid grammar is blamed on.
    pub fn param(&self) -> &'static str {
        match self {
            OutputGrammar::JsonSchema(_) => "response_format.json_schema.schema",
            OutputGrammar::Lark(_) => "tools",
        }
    }
}

/// OpenAI's `presence_penalty`, `frequency_penalty` and `logit_bias`: what the sampler adds to the
/// model's logits before it draws (`docs/spec/validation.md` §3.1). They change only the distribution
/// the draw walks; reported logprobs stay the model's own. Every engine applies them through
/// [`LogitAdjustments::apply`], so a validator replaying a draw rebuilds exactly the logits it was made
/// from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogitAdjustments {
    /// Subtracted once from the logit of every token already generated (OpenAI: −2 to 2).
    pub presence_penalty: f32,
    /// Subtracted from the logit of every token once per time it was already generated (−2 to 2).
    pub frequency_penalty: f32,
    /// `(token id, bias)` added to that token's logit (−100 to 100; ±100 bans or forces it), ids
    /// strictly increasing.
    pub logit_bias: Vec<(u32, f32)>,
}

impl LogitAdjustments {
    /// Whether nothing is adjusted: the sampler then draws from the model's logits as they are.
    pub fn is_none(&self) -> bool {
        !self.penalizes() && self.logit_bias.is_empty()
    }

    /// Whether the logits depend on the tokens generated so far.
    pub fn penalizes(&self) -> bool {
        self.presence_penalty != 0.0 || self.frequency_penalty != 0.0
    }

    /// The completion tokens before a position as [`LogitAdjustments::apply`] takes them: how many
    /// times each token id occurs (empty when nothing penalizes, since then counts change nothing).
    pub fn counts(&self, previous: &[u32]) -> BTreeMap<u32, u32> {
        let mut counts = BTreeMap::new();
        if self.penalizes() {
            for &token in previous {
                *counts.entry(token).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Adjusts `logits` (one position's row) in place, given how many times each token was generated
    /// before this position (`counts`): for a token generated `c > 0` times,
    /// `logit − (frequency_penalty · c + presence_penalty)`, all in f32; then every biased token gets
    /// `+ bias`. Ids outside `logits` are skipped (engines refuse such biases before generating).
    pub fn apply(&self, logits: &mut [f32], counts: &BTreeMap<u32, u32>) {
        if self.penalizes() {
            for (&token, &count) in counts {
                if let Some(logit) = logits.get_mut(token as usize) {
                    #[allow(clippy::cast_precision_loss)]
                    let penalty = self.frequency_penalty * count as f32 + self.presence_penalty;
                    *logit -= penalty;
                }
            }
        }
        for &(token, bias) in &self.logit_bias {
            if let Some(logit) = logits.get_mut(token as usize) {
                *logit += bias;
            }
        }
    }
}

/// The seed answer `choice` of a request seeded `seed` is sampled with when it asks for several
/// (`n`): the request's own seed for the first, then the next ones, wrapping. A validator replays each
/// choice with its own.
pub fn choice_seed(seed: u64, choice: usize) -> u64 {
    seed.wrapping_add(choice as u64)
}

/// Domain of the per-position uniform draw.
const SAMPLING_DOMAIN: &[u8] = b"gonka/sampling/v1";

/// The uniform number in `[0, 1)` that position `position` (0-based, counting completion tokens) of a
/// request seeded `seed` draws its token with: the top 53 bits of SHA-256(domain ‖ seed ‖ position),
/// integers big-endian (`docs/spec/validation.md` §3). Every engine samples with it, so anyone who knows
/// the seed can replay the draw at any position without running the ones before it.
pub fn sampling_uniform(seed: u64, position: u64) -> f64 {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(SAMPLING_DOMAIN);
    hasher.update(seed.to_be_bytes());
    hasher.update(position.to_be_bytes());
    let digest: [u8; 32] = hasher.finalize().into();
    let bits = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) >> 11;
    #[allow(clippy::cast_precision_loss)]
    let uniform = bits as f64 / (1u64 << 53) as f64;
    uniform
}

/// What replaying the seeded sampler at one position says about a given token.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Replay {
    /// The token this engine's sampler draws here, with the request's seed and settings.
    pub drawn: u32,
    /// How far the given token is from being drawn, in probability mass: `0` when it is the token drawn;
    /// otherwise the mass between the seeded draw and the given token's interval of the cumulative
    /// distribution the sampler walks (greedy: the probability of the best token minus the given
    /// token's, at temperature 1). `1` for a token the sampler could not draw at all.
    pub margin: f32,
}

/// Draws a token from candidates `(id, weight ≥ 0)` walked in order, `total` being their weights summed
/// in that same order: the first whose cumulative weight exceeds `uniform × total` (the last one if
/// rounding leaves none). With `given`, the result also says how far that token is from being drawn
/// ([`Replay::margin`]). Generation and replay both draw through this one function, so the same
/// distribution and seed give the same token in both.
pub fn draw_candidates(
    candidates: impl IntoIterator<Item = (u32, f64)>,
    total: f64,
    uniform: f64,
    given: Option<u32>,
) -> Replay {
    let target = uniform * total;
    let mut cumulative = 0.0;
    let mut drawn = None;
    let mut last = 0;
    let mut interval = None;
    for (id, weight) in candidates {
        let before = cumulative;
        cumulative += weight;
        last = id;
        if drawn.is_none() && cumulative > target {
            drawn = Some(id);
        }
        if given == Some(id) {
            interval = Some((before, cumulative));
        }
        if drawn.is_some() && (given.is_none() || interval.is_some()) {
            break;
        }
    }
    let drawn = drawn.unwrap_or(last);
    let margin = match (given, interval) {
        (None, _) => 0.0,
        (Some(token), _) if token == drawn => 0.0,
        (Some(_), None) => 1.0,
        (Some(_), Some((low, high))) => {
            let gap = if target < low { low - target } else { target - high };
            #[allow(clippy::cast_possible_truncation)]
            let margin = (gap / total) as f32;
            // Not drawn: never exactly 0, so a zero tolerance refuses it.
            margin.max(f32::MIN_POSITIVE)
        }
    };
    Replay { drawn, margin }
}

/// Greedy decoding's replay: the best token is drawn; a given other token is `p(best) − p(given)` from
/// being drawn (probabilities at temperature 1, from logprobs).
pub fn greedy_replay(best: (u32, f32), given: u32, given_logprob: f32) -> Replay {
    if given == best.0 {
        return Replay { drawn: best.0, margin: 0.0 };
    }
    let gap = (best.1.exp() - given_logprob.exp()).max(f32::MIN_POSITIVE);
    Replay { drawn: best.0, margin: gap }
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
    /// Prompt tokens whose keys and values came from the engine's prefix cache instead of being
    /// computed (OpenAI's `prompt_tokens_details.cached_tokens`).
    #[serde(default)]
    pub cached_tokens: usize,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Name clients use in `model` (e.g. `SmolLM2-135M-Instruct`).
    pub name: String,
    /// sha256 of the GGUF file the engine runs: the model's identity.
    pub content_hash: String,
    /// Maximum prompt + completion tokens.
    pub context_length: usize,
    /// The sampling parameters a request that omits them gets.
    pub defaults: GenerationDefaults,
}

/// The sampling parameters a model recommends (its generation config, as vLLM applies a Hugging Face
/// model's `generation_config.json`): what a request that omits `temperature` or `top_p` is sampled
/// with. Validators rebuild a request with the same defaults, from the same model manifest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GenerationDefaults {
    /// Softmax temperature.
    pub temperature: f32,
    /// Nucleus mass.
    pub top_p: f32,
}

impl GenerationDefaults {
    /// OpenAI's defaults (temperature 1, no nucleus filter), for a model that recommends none.
    pub const OPENAI: GenerationDefaults = GenerationDefaults { temperature: 1.0, top_p: 1.0 };
}

impl Default for GenerationDefaults {
    fn default() -> Self {
        Self::OPENAI
    }
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
    /// Whether `submit` would accept `request`'s parameters (its grammar compiles, its ids are in the
    /// vocabulary, …), without queueing it: what a transfer agent asks before it escrows for a request.
    fn check(&self, request: &GenerationRequest) -> Result<(), EngineError> {
        let _ = request;
        Ok(())
    }
    /// Whether `submit_choices(request, n)` would accept `request` with `n` answers: [`Self::check`]
    /// and, for an engine that runs the answers together, whether they fit at once.
    fn check_choices(&self, request: &GenerationRequest, n: usize) -> Result<(), EngineError> {
        let _ = n;
        self.check(request)
    }
    /// Queue a request.
    fn submit(&self, request: GenerationRequest) -> Result<GenerationStream, EngineError>;
    /// Queue `n ≥ 1` answers to one request (OpenAI's `n`): answer `i` is sampled with
    /// [`choice_seed`]`(seed, i)`, otherwise exactly as `request`. An engine that can shares the
    /// prompt's prefill among them; this default submits them one by one. All or none are queued.
    fn submit_choices(
        &self,
        request: GenerationRequest,
        n: usize,
    ) -> Result<Vec<GenerationStream>, EngineError> {
        let seed = request.sampling.seed;
        (0..n.max(1))
            .map(|choice| {
                let mut request = request.clone();
                request.sampling.seed = choice_seed(seed, choice);
                self.submit(request)
            })
            .collect()
    }
    /// Requests waiting for a slot right now.
    fn queue_depth(&self) -> usize;
    /// Requests generating right now.
    fn active_sequences(&self) -> usize;
    /// Token ids of `text` as it stands, no chat template (the `prompt` of `/v1/completions`); control
    /// tokens written in the text are matched as such. Engines without a tokenizer of their own refuse.
    fn tokenize(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        let _ = text;
        Err(EngineError::InvalidParameter {
            param: "prompt",
            message: "this engine serves chats only".into(),
        })
    }
    /// The raw bytes of token `id` (empty for an id outside the vocabulary).
    fn token_bytes(&self, id: u32) -> Vec<u8> {
        let _ = id;
        Vec::new()
    }
    /// Teacher-forced logprobs of a prompt's own tokens (`echo` with `logprobs`, vLLM's
    /// `prompt_logprobs`): position `i` scores `prompt[i + 1]` after `prompt[..=i]`, with `top_k`
    /// alternatives. Engines that cannot score refuse.
    fn score_prompt(&self, prompt: Vec<u32>, top_k: usize) -> ScoreFuture {
        let _ = (prompt, top_k);
        Box::pin(std::future::ready(Err(EngineError::InvalidParameter {
            param: "prompt_logprobs",
            message: "this engine does not score prompts".into(),
        })))
    }
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
    /// The given token's rank under the model: 1 for the most likely token, 1 + the number of
    /// tokens more likely than it otherwise (vLLM's `rank` of prompt logprobs).
    pub rank: u32,
    /// The seeded sampler replayed here, when the request named the sampling.
    pub replay: Option<Replay>,
}

/// A teacher-forced scoring job: the logprob of every completion token after the prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRequest {
    /// Prompt token ids, chat template applied.
    pub prompt_tokens: Vec<u32>,
    /// The completion to score.
    pub completion_tokens: Vec<u32>,
    /// Alternatives to report per position.
    pub top_k: usize,
    /// The sampling the completion was generated with: each position also replays the seeded sampler
    /// ([`Replay`]).
    pub sampling: Option<SamplingParams>,
}

/// The text an engine streams for a completion's tokens, and where the completion ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionText {
    /// The text a client receives for these tokens.
    pub text: String,
    /// The index of the token that ended the answer (an end-of-turn token, a stop sequence, or the
    /// `max_tokens`-th token), if one did. A completion whose tokens go on past it is not one this
    /// engine could have produced.
    pub ended_at: Option<usize>,
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

    /// The text generation streams for `completion` after a prompt of `prompt_len` tokens, with stop
    /// sequences `stop` and `max_tokens`, as the client received it (a completion cut short by its
    /// client has no held-back tail).
    fn completion_text(
        &self,
        prompt_len: usize,
        completion: &[u32],
        stop: &[String],
        max_tokens: usize,
    ) -> CompletionText;
}

/// An engine that both serves and re-scores: what a host runs as executor and as validator.
pub trait Backend: Generator + Scorer {}

impl<T: Generator + Scorer> Backend for T {}

//! Answers in the simulator (`docs/spec/sim.md` §1): what an executor generates on the fake engine —
//! honestly, or as its Byzantine module cheats — the payload it keeps for validators, and a validator's
//! re-scoring of a payload, which feeds the same pure verdict a real host computes
//! (`gonka_host::verdict::verdict`).

use gonka_chain::Inference;
use gonka_engine_api::fake::{FakeEngine, FakeModel, answer_of, completion_text, distribution, score};
use gonka_engine_api::{ChatMessage, Generator, SamplingParams};
use gonka_host::verdict::{Payload, RecordedPosition, Rescored, Rescoring, logprobs_hash, sampling_seed};
use gonka_primitives::Hash;

/// Every simulated request samples at this temperature (seeded, so validators replay every draw).
pub const TEMPERATURE: f32 = 1.0;

/// Top logprobs an executor records per position (the chain's `recorded_top_k`; the fake has 5
/// candidates).
pub const RECORDED_TOP_K: usize = 5;

/// An answer as an executor generated it: its tokens and what it records of each position.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The tokens.
    pub tokens: Vec<u32>,
    /// Each position as recorded.
    pub recorded: Vec<RecordedPosition>,
}

/// The sampling every simulated request of inference `id` uses.
pub fn sampling(id: &Hash) -> SamplingParams {
    SamplingParams { temperature: TEMPERATURE, seed: sampling_seed(None, id), ..SamplingParams::default() }
}

/// The prompt tokens of a simulated request's body (its text is the one user message).
pub fn prompt_of(engine: &FakeEngine, body: &str) -> Vec<u32> {
    engine.render_chat(&[ChatMessage { role: "user".into(), content: body.into() }]).unwrap_or_default()
}

/// What `model` answers to `prompt` with `seed`, recorded as it generated it.
pub fn generate(model: FakeModel, prompt: &[u32], max_tokens: usize, seed: u64) -> Generated {
    let tokens = answer_of(model, prompt, max_tokens, TEMPERATURE, seed);
    Generated {
        recorded: tokens
            .iter()
            .map(|t| RecordedPosition {
                token: t.id,
                logprob: t.logprob,
                top: t.candidates.iter().take(RECORDED_TOP_K).copied().collect(),
            })
            .collect(),
        tokens: tokens.into_iter().map(|t| t.id).collect(),
    }
}

/// `tokens` recorded as the real model scores them (what a pre-filling executor reports).
pub fn scored_by_the_real_model(prompt: &[u32], tokens: &[u32]) -> Vec<RecordedPosition> {
    score(prompt, tokens, RECORDED_TOP_K, None)
        .into_iter()
        .map(|p| RecordedPosition { token: p.token, logprob: p.logprob, top: p.top })
        .collect()
}

/// `generated`, recorded at position `at` as if the executor had emitted `token` there (what an
/// executor that edits its answer reports).
pub fn edited(prompt: &[u32], mut generated: Generated, at: usize, token: u32) -> Generated {
    generated.tokens[at] = token;
    let candidates = distribution(prompt, &generated.tokens[..at]);
    let logprob = candidates.iter().find(|(t, _)| *t == token).map_or(-30.0, |(_, l)| *l);
    generated.recorded[at].token = token;
    generated.recorded[at].logprob = logprob;
    generated
}

/// Tokens per block of the simulated prefix cache.
pub const PREFIX_BLOCK_TOKENS: usize = 8;
/// Prompts the simulated prefix cache remembers.
const PREFIX_CACHE_PROMPTS: usize = 8;

/// An executor's prefix cache as the fake engine would keep one (the real one:
/// `crates/engine/src/prefix.rs`): the last few prompts it served, in memory (a crash empties it).
/// A prompt's cached tokens are its longest whole-block prefix shared with one of them, never the whole
/// prompt (its last token is always computed).
#[derive(Debug, Default)]
pub struct PrefixCache {
    recent: std::collections::VecDeque<Vec<u32>>,
}

impl PrefixCache {
    /// Serves `prompt`: the tokens it finds cached, then remembers it.
    pub fn serve(&mut self, prompt: &[u32]) -> u32 {
        let shared = self
            .recent
            .iter()
            .map(|seen| seen.iter().zip(prompt).take_while(|(a, b)| a == b).count())
            .max()
            .unwrap_or(0);
        let cached = (shared.min(prompt.len().saturating_sub(1)) / PREFIX_BLOCK_TOKENS) * PREFIX_BLOCK_TOKENS;
        if self.recent.len() == PREFIX_CACHE_PROMPTS {
            self.recent.pop_front();
        }
        self.recent.push_back(prompt.to_vec());
        u32::try_from(cached).unwrap_or(u32::MAX)
    }
}

/// The payload an executor keeps for `generated`, answering `body`.
pub fn payload(
    body: &str,
    generated: Generated,
    prompt_tokens: u32,
    max_tokens: u32,
    seed: u64,
    height: u64,
) -> Payload {
    let text = completion_text(&generated.tokens, max_tokens as usize).text;
    Payload {
        response_hash: Hash::digest(text.as_bytes()),
        logprobs_hash: logprobs_hash(&generated.recorded),
        body: body.to_string(),
        completion: text,
        completion_tokens: u32::try_from(generated.tokens.len()).unwrap_or(u32::MAX),
        completion_token_ids: generated.tokens,
        recorded: generated.recorded,
        prompt_tokens,
        // The fake engine keeps no prefix cache: every prompt token is billed in full.
        cached_tokens: 0,
        seed,
        stored_height: height,
        more_choices: Vec::new(),
    }
}

/// A validator's re-scoring of `payload` for the inference `id` recorded as `record`, on the fake
/// engine (the real model).
pub fn rescore(engine: &FakeEngine, payload: &Payload, record: &Inference, id: &Hash) -> Rescoring {
    let prompt = prompt_of(engine, &payload.body);
    let sampling = sampling(id);
    let positions = score(&prompt, &payload.completion_token_ids, RECORDED_TOP_K, Some(&sampling))
        .into_iter()
        .map(|p| Rescored {
            logprob: p.logprob,
            top: p.top,
            replay_margin: p.replay.map_or(1.0, |r| r.margin),
        })
        .collect();
    let text = completion_text(&payload.completion_token_ids, record.max_tokens as usize);
    Rescoring {
        prompt_tokens: u32::try_from(prompt.len()).unwrap_or(u32::MAX),
        seed: sampling.seed,
        max_tokens: record.max_tokens,
        text: text.text,
        ended_at: text.ended_at,
        positions,
        choices: 1,
        more_choices: Vec::new(),
    }
}

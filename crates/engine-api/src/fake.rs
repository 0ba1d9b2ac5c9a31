//! A deterministic fake engine: [`Generator`] and [`Scorer`] with no model behind them, for the tests of
//! any crate and for the simulator.
//!
//! Its "model" is a hash: the distribution at each position is a function of the prompt and the tokens
//! so far, so generating and scoring the same completion report the same logprobs (as the embedded
//! engine does), a seeded sampler draws the same tokens for the same seed, and an answer's length is a
//! function of the prompt. Tokens are the words of a small vocabulary, so answers read as text.

use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::{
    ChatMessage, CompletionText, EngineError, FinishReason, GenerationEvent, GenerationRequest,
    GenerationStream, Generator, ModelInfo, PositionLogprobs, Replay, ScoreFuture, ScoreRequest,
    ScoredPosition, Scorer, TokenLogprob, Usage, draw_candidates, greedy_replay, sampling_uniform,
};

/// The fake's vocabulary: token `i` is `WORDS[i]` (the last one ends the answer).
const WORDS: [&str; 16] = [
    " the", " network", " answers", " every", " request", " with", " proof", " of", " compute", " and",
    " pays", " per", " token", ",", ".", "<end>",
];
/// The end-of-answer token.
pub const END_TOKEN: u32 = WORDS.len() as u32 - 1;
/// Candidates at each position (the fake's "top-k"); the rest of the vocabulary has no mass.
const CANDIDATES: usize = 5;
/// Longest answer the fake gives before its end token.
const ANSWER_TOKENS_MAX: u64 = 48;

/// The fake engine.
#[derive(Debug)]
pub struct FakeEngine {
    info: ModelInfo,
    active: AtomicUsize,
}

impl Default for FakeEngine {
    fn default() -> Self {
        FakeEngine::new("fake-model")
    }
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

fn tokens_bytes(tokens: &[u32]) -> Vec<u8> {
    tokens.iter().flat_map(|t| t.to_be_bytes()).collect()
}

/// Which fake "model" produces a distribution: the real one every honest host serves, or a cheaper
/// stand-in a cheating executor might substitute (a different hash, so its distributions are unrelated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeModel {
    /// The model the network names.
    Real,
    /// Another model of the same vocabulary: what `substitute-model` and `prefill` cheats run.
    Cheap,
}

impl FakeModel {
    fn salt(self) -> &'static [u8] {
        match self {
            FakeModel::Real => b"fake-position",
            FakeModel::Cheap => b"fake-cheap-position",
        }
    }
}

/// The fake's distribution after `prompt` and `completion`: `CANDIDATES` distinct tokens, best first,
/// with logprobs `ln(weight / Σ weights)` of weights 8, 4, 2, 1, 1 — or only the end token once the
/// answer reached its length (a function of the prompt).
pub fn distribution(prompt: &[u32], completion: &[u32]) -> Vec<(u32, f32)> {
    distribution_of(FakeModel::Real, prompt, completion)
}

/// [`distribution`] under `model`.
pub fn distribution_of(model: FakeModel, prompt: &[u32], completion: &[u32]) -> Vec<(u32, f32)> {
    let prompt_digest = digest(&[b"fake-length", &tokens_bytes(prompt)]);
    let length = 1 + u64::from_be_bytes(prompt_digest[..8].try_into().expect("8 bytes")) % ANSWER_TOKENS_MAX;
    if completion.len() as u64 >= length {
        return vec![(END_TOKEN, 0.0)];
    }
    let position = digest(&[model.salt(), &tokens_bytes(prompt), &tokens_bytes(completion)]);
    let mut candidates: Vec<u32> = Vec::with_capacity(CANDIDATES);
    for byte in position {
        let token = u32::from(byte) % END_TOKEN;
        if !candidates.contains(&token) {
            candidates.push(token);
        }
        if candidates.len() == CANDIDATES {
            break;
        }
    }
    let weights = [8.0f32, 4.0, 2.0, 1.0, 1.0];
    let total: f32 = weights[..candidates.len()].iter().sum();
    candidates.into_iter().zip(weights).map(|(token, w)| (token, (w / total).ln())).collect()
}

/// The seeded draw at one position over `candidates` (best first): greedy at temperature 0, else the
/// protocol's draw ([`crate::draw_candidates`] with [`crate::sampling_uniform`]) over the candidates
/// weighted `exp(logprob / temperature)`. With `given`, how far that token is from being drawn.
pub fn replay(
    candidates: &[(u32, f32)],
    temperature: f32,
    seed: u64,
    position: usize,
    given: Option<u32>,
) -> Replay {
    let given_logprob =
        |token: u32| candidates.iter().find(|(t, _)| *t == token).map_or(f32::NEG_INFINITY, |(_, l)| *l);
    if temperature <= 0.0 || candidates.len() == 1 {
        let best = candidates[0];
        return match given {
            None => Replay { drawn: best.0, margin: 0.0 },
            Some(token) => greedy_replay(best, token, given_logprob(token)),
        };
    }
    let weights: Vec<(u32, f64)> = candidates
        .iter()
        .map(|&(token, logprob)| (token, (f64::from(logprob) / f64::from(temperature)).exp()))
        .collect();
    let total: f64 = weights.iter().map(|(_, w)| w).sum();
    draw_candidates(weights, total, sampling_uniform(seed, position as u64), given)
}

/// One generated position of the fake.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeToken {
    /// The token drawn.
    pub id: u32,
    /// Its logprob.
    pub logprob: f32,
    /// The position's candidates, best first.
    pub candidates: Vec<(u32, f32)>,
}

/// The whole answer the fake gives to `prompt`, ending with the end token unless `max_tokens` cut it.
/// Generation and the simulator both use it.
pub fn answer(prompt: &[u32], max_tokens: usize, temperature: f32, seed: u64) -> Vec<FakeToken> {
    answer_of(FakeModel::Real, prompt, max_tokens, temperature, seed)
}

/// [`answer`] under `model`.
pub fn answer_of(
    model: FakeModel,
    prompt: &[u32],
    max_tokens: usize,
    temperature: f32,
    seed: u64,
) -> Vec<FakeToken> {
    let mut completion = Vec::new();
    let mut out = Vec::new();
    while completion.len() < max_tokens {
        let candidates = distribution_of(model, prompt, &completion);
        let token = replay(&candidates, temperature, seed, completion.len(), None).drawn;
        let logprob = candidates.iter().find(|(t, _)| *t == token).map_or(f32::NEG_INFINITY, |(_, l)| *l);
        completion.push(token);
        out.push(FakeToken { id: token, logprob, candidates });
        if token == END_TOKEN {
            break;
        }
    }
    out
}

/// Scores `completion` after `prompt` under the real fake model, as [`FakeEngine`]'s scorer does.
pub fn score(
    prompt: &[u32],
    completion: &[u32],
    top_k: usize,
    sampling: Option<&crate::SamplingParams>,
) -> Vec<ScoredPosition> {
    (0..completion.len())
        .map(|i| {
            let candidates = distribution(prompt, &completion[..i]);
            let token = completion[i];
            let logprob = candidates.iter().find(|(t, _)| *t == token).map_or(f32::NEG_INFINITY, |(_, l)| *l);
            let above = candidates.iter().filter(|(_, l)| *l > logprob).count();
            let rank = u32::try_from(above + 1).unwrap_or(u32::MAX);
            let replay = sampling.map(|s| replay(&candidates, s.temperature, s.seed, i, Some(token)));
            ScoredPosition { token, logprob, top: candidates.into_iter().take(top_k).collect(), rank, replay }
        })
        .collect()
}

/// The fake's text for `completion`: its words, up to and without the end token; `max_tokens` or the end
/// token ends it (the fake has no stop sequences).
pub fn completion_text(completion: &[u32], max_tokens: usize) -> CompletionText {
    let mut text = String::new();
    for (i, &token) in completion.iter().enumerate() {
        if token == END_TOKEN {
            return CompletionText { text, ended_at: Some(i) };
        }
        text.push_str(WORDS.get(token as usize).copied().unwrap_or("?"));
        if i + 1 >= max_tokens {
            return CompletionText { text, ended_at: Some(i) };
        }
    }
    CompletionText { text, ended_at: None }
}

fn token_logprob(id: u32, logprob: f32) -> TokenLogprob {
    let text = WORDS.get(id as usize).copied().unwrap_or("?");
    TokenLogprob { id, text: text.to_string(), bytes: text.as_bytes().to_vec(), logprob }
}

impl FakeEngine {
    /// A fake serving `name`.
    pub fn new(name: &str) -> FakeEngine {
        let content_hash =
            digest(&[b"fake-model", name.as_bytes()]).iter().map(|b| format!("{b:02x}")).collect();
        FakeEngine {
            info: ModelInfo {
                name: name.to_string(),
                content_hash,
                context_length: 4096,
                defaults: crate::GenerationDefaults::OPENAI,
            },
            active: AtomicUsize::new(0),
        }
    }
}

impl Generator for FakeEngine {
    fn model_info(&self) -> &ModelInfo {
        &self.info
    }

    /// One token per byte of `role: content\n`, so prompt counts are exact and cheap.
    fn render_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, EngineError> {
        let text: String = messages.iter().map(|m| format!("{}: {}\n", m.role, m.content)).collect();
        Ok(text.bytes().map(u32::from).collect())
    }

    fn submit(&self, request: GenerationRequest) -> Result<GenerationStream, EngineError> {
        let needed = request.prompt_tokens.len() + request.max_tokens;
        if needed > self.info.context_length {
            return Err(EngineError::ContextLengthExceeded {
                prompt_tokens: request.prompt_tokens.len(),
                max_tokens: request.max_tokens,
                context_length: self.info.context_length,
            });
        }
        let tokens = answer(
            &request.prompt_tokens,
            request.max_tokens,
            request.sampling.temperature,
            request.sampling.seed,
        );
        let (events, stream) = mpsc::channel(tokens.len() + 2);
        let mut completion_tokens = 0;
        let mut reason = FinishReason::Length;
        for FakeToken { id, logprob, candidates } in tokens {
            completion_tokens += 1;
            let logprobs = request.top_logprobs.map(|n| PositionLogprobs {
                chosen: token_logprob(id, logprob),
                top: candidates.iter().take(n).map(|&(t, l)| token_logprob(t, l)).collect(),
            });
            if id == END_TOKEN && !request.ignore_eos {
                reason = FinishReason::Stop;
                let _ = events.try_send(GenerationEvent::Token { id, text: String::new(), logprobs });
                break;
            }
            let text = WORDS[id as usize].to_string();
            let _ = events.try_send(GenerationEvent::Token { id, text, logprobs });
        }
        let usage = Usage { prompt_tokens: request.prompt_tokens.len(), completion_tokens, cached_tokens: 0 };
        let _ = events.try_send(GenerationEvent::Finished { reason, usage });
        Ok(stream)
    }

    fn queue_depth(&self) -> usize {
        0
    }

    fn active_sequences(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

impl Scorer for FakeEngine {
    fn score(&self, request: ScoreRequest) -> ScoreFuture {
        let context_length = self.info.context_length;
        Box::pin(async move {
            let ScoreRequest { prompt_tokens, completion_tokens, top_k, sampling } = request;
            if prompt_tokens.len() + completion_tokens.len() > context_length {
                return Err(EngineError::ContextLengthExceeded {
                    prompt_tokens: prompt_tokens.len(),
                    max_tokens: completion_tokens.len(),
                    context_length,
                });
            }
            Ok(score(&prompt_tokens, &completion_tokens, top_k, sampling.as_ref()))
        })
    }

    fn completion_text(
        &self,
        _prompt_len: usize,
        completion: &[u32],
        _stop: &[String],
        max_tokens: usize,
    ) -> CompletionText {
        completion_text(completion, max_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SamplingParams;

    fn request(prompt: Vec<u32>, temperature: f32, seed: u64) -> GenerationRequest {
        GenerationRequest {
            prompt_tokens: prompt,
            sampling: SamplingParams { temperature, seed, ..SamplingParams::default() },
            max_tokens: 64,
            stop: Vec::new(),
            top_logprobs: Some(3),
            ignore_eos: false,
        }
    }

    async fn generate(engine: &FakeEngine, request: GenerationRequest) -> (Vec<u32>, Vec<f32>) {
        let mut stream = engine.submit(request).expect("accepted");
        let (mut ids, mut logprobs) = (Vec::new(), Vec::new());
        while let Some(event) = stream.recv().await {
            if let GenerationEvent::Token { id, logprobs: Some(l), .. } = event {
                ids.push(id);
                logprobs.push(l.chosen.logprob);
            }
        }
        (ids, logprobs)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn scoring_reports_the_logprobs_generation_reported() {
        let engine = FakeEngine::default();
        let prompt = engine
            .render_chat(&[ChatMessage { role: "user".into(), content: "hi".into() }])
            .expect("renders");
        let (ids, logprobs) = generate(&engine, request(prompt.clone(), 0.8, 7)).await;
        assert!(!ids.is_empty());
        let scored = engine
            .score(ScoreRequest {
                prompt_tokens: prompt,
                completion_tokens: ids.clone(),
                top_k: 3,
                sampling: Some(SamplingParams { temperature: 0.8, seed: 7, ..SamplingParams::default() }),
            })
            .await
            .expect("scores");
        assert_eq!(scored.iter().map(|s| s.token).collect::<Vec<_>>(), ids);
        assert_eq!(scored.iter().map(|s| s.logprob).collect::<Vec<_>>(), logprobs);
        assert!(scored.iter().all(|s| s.replay == Some(Replay { drawn: s.token, margin: 0.0 })));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_same_seed_gives_the_same_answer() {
        let engine = FakeEngine::default();
        let prompt: Vec<u32> = b"a prompt".iter().map(|b| u32::from(*b)).collect();
        let first = generate(&engine, request(prompt.clone(), 1.0, 42)).await;
        assert_eq!(generate(&engine, request(prompt.clone(), 1.0, 42)).await, first);
        let greedy = generate(&engine, request(prompt, 0.0, 1)).await;
        assert!(greedy.1.iter().all(|l| (*l - (8.0f32 / 16.0).ln()).abs() < 1e-6 || *l == 0.0));
    }
}

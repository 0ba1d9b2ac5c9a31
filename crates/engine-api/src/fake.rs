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
    ChatMessage, EngineError, FinishReason, GenerationEvent, GenerationRequest, GenerationStream, Generator,
    ModelInfo, PositionLogprobs, ScoreFuture, ScoreRequest, ScoredPosition, Scorer, TokenLogprob, Usage,
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

/// The fake's distribution after `prompt` and `completion`: `CANDIDATES` distinct tokens, best first,
/// with logprobs `ln(weight / Σ weights)` of weights 8, 4, 2, 1, 1 — or only the end token once the
/// answer reached its length (a function of the prompt).
pub fn distribution(prompt: &[u32], completion: &[u32]) -> Vec<(u32, f32)> {
    let prompt_digest = digest(&[b"fake-length", &tokens_bytes(prompt)]);
    let length = 1 + u64::from_be_bytes(prompt_digest[..8].try_into().expect("8 bytes")) % ANSWER_TOKENS_MAX;
    if completion.len() as u64 >= length {
        return vec![(END_TOKEN, 0.0)];
    }
    let position = digest(&[b"fake-position", &tokens_bytes(prompt), &tokens_bytes(completion)]);
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

/// The token a request draws at one position: greedy at temperature 0, else a seeded draw among the
/// candidates by their weights.
fn choose(candidates: &[(u32, f32)], temperature: f32, seed: u64, position: usize) -> (u32, f32) {
    if temperature <= 0.0 || candidates.len() == 1 {
        return candidates[0];
    }
    let draw = digest(&[b"fake-sample", &seed.to_be_bytes(), &(position as u64).to_be_bytes()]);
    let mut point = f32::from(u16::from_be_bytes([draw[0], draw[1]])) / 65_536.0;
    for &(token, logprob) in candidates {
        let p = logprob.exp();
        if point < p {
            return (token, logprob);
        }
        point -= p;
    }
    candidates[candidates.len() - 1]
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
    let mut completion = Vec::new();
    let mut out = Vec::new();
    while completion.len() < max_tokens {
        let candidates = distribution(prompt, &completion);
        let (token, logprob) = choose(&candidates, temperature, seed, completion.len());
        completion.push(token);
        out.push(FakeToken { id: token, logprob, candidates });
        if token == END_TOKEN {
            break;
        }
    }
    out
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
            info: ModelInfo { name: name.to_string(), content_hash, context_length: 4096 },
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
        let usage = Usage { prompt_tokens: request.prompt_tokens.len(), completion_tokens };
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
            let ScoreRequest { prompt_tokens, completion_tokens, top_k } = request;
            if prompt_tokens.len() + completion_tokens.len() > context_length {
                return Err(EngineError::ContextLengthExceeded {
                    prompt_tokens: prompt_tokens.len(),
                    max_tokens: completion_tokens.len(),
                    context_length,
                });
            }
            Ok((0..completion_tokens.len())
                .map(|i| {
                    let candidates = distribution(&prompt_tokens, &completion_tokens[..i]);
                    let token = completion_tokens[i];
                    let logprob =
                        candidates.iter().find(|(t, _)| *t == token).map_or(f32::NEG_INFINITY, |(_, l)| *l);
                    ScoredPosition { token, logprob, top: candidates.into_iter().take(top_k).collect() }
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SamplingParams;

    fn request(prompt: Vec<u32>, temperature: f32, seed: u64) -> GenerationRequest {
        GenerationRequest {
            prompt_tokens: prompt,
            sampling: SamplingParams { temperature, top_p: 1.0, top_k: 0, seed },
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
            .score(ScoreRequest { prompt_tokens: prompt, completion_tokens: ids.clone(), top_k: 3 })
            .await
            .expect("scores");
        assert_eq!(scored.iter().map(|s| s.token).collect::<Vec<_>>(), ids);
        assert_eq!(scored.iter().map(|s| s.logprob).collect::<Vec<_>>(), logprobs);
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

//! Executors that cheat on the answer itself (`docs/spec/validation.md` §8), each run through the same
//! validation as honest hosts:
//! - `substitute-model`: serves another model (the fake's `Cheap` one) and claims the real one;
//! - `prefill`: generates with the cheap model, then reports the logprobs the real model gives those
//!   tokens (the original network's known "pre-fill attack", reference §5.7);
//! - `edit-answer`: generates honestly, then changes a token in the middle of the answer;
//! - `wrong-seed`: samples with another seed than the request's;
//! - `refuse-payload`: answers honestly but never hands its payloads to validators.

use gonka_engine_api::fake::{END_TOKEN, FakeModel};

use super::Byzantine;
use crate::answers::{Generated, edited, generate, scored_by_the_real_model};
use crate::config::ByzantineKind;

/// An executor cheating on its answers as its kind says.
#[derive(Debug)]
pub struct AnswerCheat {
    kind: ByzantineKind,
}

impl AnswerCheat {
    /// A cheat of `kind` (one of [`ByzantineKind::cheats_answers`]).
    pub fn new(kind: ByzantineKind) -> AnswerCheat {
        AnswerCheat { kind }
    }
}

impl Byzantine for AnswerCheat {
    fn kind(&self) -> ByzantineKind {
        self.kind
    }

    fn answer(
        &mut self,
        prompt: &[u32],
        max_tokens: usize,
        seed: u64,
        honest: &Generated,
    ) -> Option<Generated> {
        match self.kind {
            ByzantineKind::SubstituteModel => Some(generate(FakeModel::Cheap, prompt, max_tokens, seed)),
            ByzantineKind::Prefill => {
                let cheap = generate(FakeModel::Cheap, prompt, max_tokens, seed);
                Some(Generated {
                    recorded: scored_by_the_real_model(prompt, &cheap.tokens),
                    tokens: cheap.tokens,
                })
            }
            ByzantineKind::EditAnswer => {
                let at = honest.tokens.len() / 2;
                let token = match honest.tokens.get(at) {
                    Some(&END_TOKEN) | None => 0,
                    Some(&old) => (old + 1) % END_TOKEN,
                };
                Some(edited(prompt, honest.clone(), at, token))
            }
            ByzantineKind::WrongSeed => Some(generate(FakeModel::Real, prompt, max_tokens, seed ^ 0x5eed)),
            _ => None,
        }
    }

    fn serves_payloads(&self) -> bool {
        self.kind != ByzantineKind::RefusePayload
    }
}

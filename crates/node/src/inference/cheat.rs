//! Cheating executors, for the devnet only (`gonka devnet --byzantine host-N:KIND`,
//! `docs/spec/validation.md` §8): a host told to cheat serves answers the way a dishonest operator
//! would, so a person can watch validation catch it. The kinds are the simulator's answer cheats,
//! done for real:
//! - `substitute-model`: serves a cheaper model — the named model cut to its first [`CHEAP_LAYERS`]
//!   layers — and claims the real one;
//! - `prefill`: generates with that cheaper model, then records the logprobs the real model gives the
//!   tokens (the pre-fill attack of reference §5.7);
//! - `edit-answer`: changes one token of the answer (to the next most likely one) after generating it;
//! - `wrong-seed`: samples with another seed than the request's, and claims the right one;
//! - `ignore-constraints`: generates as if the request named no `response_format`, penalties or
//!   logit bias (cheaper: no grammar to follow), and claims it honoured them;
//! - `refuse-payload`: answers honestly, never hands its payloads to validators.
//!
//! Only the devnet writes this setting into a host's config; a node with it set warns at start.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Layers the cheaper model keeps (SmolLM2-135M-Instruct has 30).
pub const CHEAP_LAYERS: usize = 8;
/// The position of the token an `edit-answer` host changes.
pub const EDIT_POSITION: usize = 3;
/// What a `wrong-seed` host mixes into the seed.
pub const WRONG_SEED: u64 = 0x5eed;

/// How a devnet host cheats as an executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cheat {
    /// Serves a cheaper model, claims the real one.
    SubstituteModel,
    /// Generates with the cheaper model, records the real model's logprobs.
    Prefill,
    /// Changes a token after generating.
    EditAnswer,
    /// Samples with another seed.
    WrongSeed,
    /// Ignores the request's grammar, penalties and logit bias.
    IgnoreConstraints,
    /// Keeps its payloads from validators.
    RefusePayload,
}

impl Cheat {
    /// Every kind.
    pub const ALL: [Cheat; 6] = [
        Cheat::SubstituteModel,
        Cheat::Prefill,
        Cheat::EditAnswer,
        Cheat::WrongSeed,
        Cheat::IgnoreConstraints,
        Cheat::RefusePayload,
    ];

    /// Its `--byzantine` name.
    pub fn name(self) -> &'static str {
        match self {
            Cheat::SubstituteModel => "substitute-model",
            Cheat::Prefill => "prefill",
            Cheat::EditAnswer => "edit-answer",
            Cheat::WrongSeed => "wrong-seed",
            Cheat::IgnoreConstraints => "ignore-constraints",
            Cheat::RefusePayload => "refuse-payload",
        }
    }

    /// Whether it generates with the cheaper model.
    pub fn uses_cheap_model(self) -> bool {
        matches!(self, Cheat::SubstituteModel | Cheat::Prefill)
    }
}

impl fmt::Display for Cheat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Cheat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Cheat::ALL.into_iter().find(|c| c.name() == text).ok_or_else(|| {
            let names: Vec<&str> = Cheat::ALL.iter().map(|c| c.name()).collect();
            format!("unknown cheat {text:?}; one of {}", names.join(", "))
        })
    }
}

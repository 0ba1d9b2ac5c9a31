//! Validation messages, the verdict they carry, and their errors.

use gonka_primitives::{Address, Hash, VrfProof, codec_struct};
use serde::{Deserialize, Serialize};

use crate::inference::InferenceStatus;

messages! {
    /// Messages of inference validation (`docs/spec/validation.md` §4–§5).
    pub enum ValidationMsg {
        /// A selected host's verdict on another host's answer: it re-scored the payload on its own
        /// engine. The proof shows the host was selected for this inference (its epoch key's VRF
        /// output is below its selection threshold); accepted once per (inference, host), until the
        /// inference's validation window closes. A failure opens a vote.
        0 => Validate("submit_validation", routine) {
            /// The inference.
            inference: Hash,
            /// The host's VRF proof for the inference under its epoch key.
            proof: VrfProof,
            /// What the re-scoring found.
            verdict: Verdict,
        },
        /// A host's vote on a failed inference: it re-scored the answer too. Weighted by the host's
        /// power in the inference's epoch; once per (inference, host), until the vote closes.
        1 => Vote("submit_validation_vote", routine) {
            /// The inference under vote.
            inference: Hash,
            /// Whether the answer is valid.
            valid: bool,
        },
    }
}

/// Why a re-scoring failed an answer (`docs/spec/validation.md` §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// It passed.
    None,
    /// The reported top-k logprobs are farther from the validator's than the model allows.
    Distance,
    /// At some position the seeded sampler, replayed over the validator's distribution, does not draw
    /// the executor's token.
    Replay,
    /// The receipt's prompt or completion token count is not what the validator counts.
    Billing,
    /// The answer's text is not what its tokens stream as, or tokens go on past the end.
    Text,
    /// The payload does not match what the Finish committed to (answer, seed or logprobs hash).
    Mismatch,
    /// The executor did not hand over the payload to a selected host.
    PayloadRefused,
    /// The answer cannot be compared (an unknown model, a body the API refuses, a length the engine
    /// cannot score): a failure, never "assume valid" (reference §12.11).
    Uncomparable,
}

impl Failure {
    /// Stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Failure::None => "none",
            Failure::Distance => "distance",
            Failure::Replay => "replay",
            Failure::Billing => "billing",
            Failure::Text => "text",
            Failure::Mismatch => "mismatch",
            Failure::PayloadRefused => "payload_refused",
            Failure::Uncomparable => "uncomparable",
        }
    }
}

impl gonka_primitives::codec::Encode for Failure {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
}

impl gonka_primitives::codec::Decode for Failure {
    fn decode(
        reader: &mut gonka_primitives::codec::Reader<'_>,
    ) -> Result<Self, gonka_primitives::codec::DecodeError> {
        Ok(match <u8 as gonka_primitives::codec::Decode>::decode(reader)? {
            0 => Failure::None,
            1 => Failure::Distance,
            2 => Failure::Replay,
            3 => Failure::Billing,
            4 => Failure::Text,
            5 => Failure::Mismatch,
            6 => Failure::PayloadRefused,
            7 => Failure::Uncomparable,
            tag => return Err(gonka_primitives::codec::DecodeError::InvalidTag { what: "failure", tag }),
        })
    }
}

/// What a validator found when it re-scored an answer: its verdict and the figures behind it, kept on
/// chain so anyone can see why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Why it failed, or [`Failure::None`].
    pub failure: Failure,
    /// Distance between the executor's and the validator's top-k logprobs, in ppm.
    pub distance_ppm: u32,
    /// Positions at which the replayed sampler did not draw the executor's token.
    pub replay_mismatches: u32,
    /// Prompt tokens the validator counted.
    pub prompt_tokens: u32,
    /// Completion tokens the validator counted.
    pub completion_tokens: u32,
}
codec_struct!(Verdict { failure, distance_ppm, replay_mismatches, prompt_tokens, completion_tokens });

impl Verdict {
    /// Whether the answer passed.
    pub fn passed(&self) -> bool {
        self.failure == Failure::None
    }

    /// A failure with no figures (the payload was refused or could not be compared).
    pub fn failed(failure: Failure) -> Verdict {
        Verdict { failure, distance_ppm: 0, replay_mismatches: 0, prompt_tokens: 0, completion_tokens: 0 }
    }
}

/// Why a validation message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// Validation messages come from registered hosts only.
    #[error("{0} is not a registered host")]
    NotAHost(Address),
    /// No record of this inference is kept.
    #[error("no inference {0} is kept")]
    UnknownInference(Hash),
    /// The inference is not in a state this message applies to.
    #[error("inference {id} is {status:?}")]
    WrongStatus {
        /// The inference.
        id: Hash,
        /// Its status.
        status: InferenceStatus,
    },
    /// An executor does not judge its own answer.
    #[error("{0} executed this inference")]
    OwnInference(Address),
    /// The host committed no validation key for the inference's epoch, or held no power in it.
    #[error("{0} holds no power or no validation key in epoch {1}")]
    NotAMember(Address, u64),
    /// The host is INVALID: out of the validator set.
    #[error("{0} is INVALID")]
    Invalid(Address),
    /// The VRF proof does not verify against the host's epoch key.
    #[error("the selection proof does not verify against the host's epoch key")]
    BadProof,
    /// The proof verifies, but its output is above the host's selection threshold.
    #[error("{0} is not selected to validate this inference")]
    NotSelected(Address),
    /// The message came after its window.
    #[error("{what} accepted until height {last}, not at {height}")]
    OutsideWindow {
        /// The message kind.
        what: &'static str,
        /// Last accepted height.
        last: u64,
        /// The block height.
        height: u64,
    },
    /// This host already submitted this message for this inference.
    #[error("{0} already judged this inference")]
    Duplicate(Address),
    /// A verdict's figures contradict it (a pass with a failure count).
    #[error("the verdict's figures contradict it")]
    Inconsistent,
    /// A bank operation failed (an invariant, never a user error).
    #[error(transparent)]
    Bank(#[from] crate::bank::BankError),
}

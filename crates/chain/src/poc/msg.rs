//! PoC messages and errors.

use gonka_poc::Distance;
use gonka_primitives::{AccountSignature, Address, VrfPublicKey, codec_struct};
use serde::{Deserialize, Serialize};

messages! {
    /// Messages of Proof of Compute.
    pub enum PocMsg {
        /// Commit to the host's secret seed for the epoch whose PoC is running (reference §2.4, §5.2):
        /// the public validation (VRF) key derived from a seed revealed when the epoch's rewards are
        /// claimed (`docs/spec/validation.md` §2). The key proves the host's validation selections
        /// during the epoch; the revealed seed lets anyone recompute them. A participant without a
        /// commitment is not given weight.
        0 => SeedCommit("submit_seed_commit", routine) {
            /// The epoch whose PoC is running.
            epoch: u64,
            /// The validation key of the secret seed ([`gonka_primitives::VrfKey::from_seed`]).
            commitment: VrfPublicKey,
        },
        /// Valid nonces the host found in the PoC that started at `poc_start` (reference §3.7).
        /// Accepted in `[S+1, exchange deadline]`; every distance must be below `r_target`; nonces the
        /// host already claimed count once.
        1 => Batch("submit_poc_batch", routine) {
            /// The PoC start height `S`.
            poc_start: u64,
            /// The nonces and their claimed distances.
            nonces: Vec<PocNonce>,
        },
        /// A validator's verdict on one participant's claims (reference §3.8): how many of its sampled
        /// nonces mismatched. The sample is seeded by `sample_seed`, the validator's signature over
        /// [`gonka_poc::sample_seed_message`], which the chain verifies, so anyone can recompute the
        /// sample afterwards and nobody could predict it before. The chain applies the binomial test.
        /// Accepted in the validation window, once per (validator, participant).
        2 => Validation("submit_poc_validation", routine) {
            /// The PoC start height `S`.
            poc_start: u64,
            /// The participant whose claims were checked.
            participant: Address,
            /// Nonces recomputed: `min(validation_sample_size, distinct nonces claimed)`.
            sampled: u32,
            /// Sampled nonces that mismatched.
            mismatches: u32,
            /// The signer's signature over the sample-seed message.
            sample_seed: AccountSignature,
        },
    }
}

/// One claimed nonce of a PoC batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PocNonce {
    /// The nonce.
    pub nonce: u64,
    /// Its claimed distance.
    pub distance: Distance,
}
codec_struct!(PocNonce { nonce, distance });

/// Why a PoC message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PocError {
    /// PoC messages come from registered hosts only.
    #[error("{0} is not a registered host")]
    NotAHost(Address),
    /// No PoC stage has started yet, or the message names another one.
    #[error("no PoC stage started at height {0}")]
    WrongStage(u64),
    /// The message names another epoch than the running stage's.
    #[error("seed commitments are for epoch {expected}, not {got}")]
    WrongEpoch {
        /// The running stage's epoch.
        expected: u64,
        /// The message's.
        got: u64,
    },
    /// The height is outside the window that accepts this message.
    #[error("{what} is accepted at heights {first}..={last}, not at {height}")]
    OutsideWindow {
        /// The message kind.
        what: &'static str,
        /// First accepted height.
        first: u64,
        /// Last accepted height.
        last: u64,
        /// The block height.
        height: u64,
    },
    /// A batch holds no nonces, or more than the limit.
    #[error("a batch must hold 1 to {limit} nonces, found {found}")]
    BatchSize {
        /// Nonces found.
        found: usize,
        /// The limit.
        limit: u32,
    },
    /// A claimed distance is not below `r_target`.
    #[error("nonce {nonce} claims distance {distance}, not below r_target {r_target}")]
    DistanceNotBelowTarget {
        /// The nonce.
        nonce: u64,
        /// Its claimed distance.
        distance: Distance,
        /// The target.
        r_target: Distance,
    },
    /// The participant would exceed its nonce limit for the stage.
    #[error("participant would hold {count} nonces this stage, limit {limit}")]
    TooManyNonces {
        /// Count after this batch.
        count: u64,
        /// The limit.
        limit: u64,
    },
    /// The commitment is not a validation key (a Ristretto point).
    #[error("the seed commitment is not a valid validation key")]
    BadCommitment,
    /// The participant already committed to a seed this stage.
    #[error("a seed commitment for this epoch already exists")]
    SeedAlreadyCommitted,
    /// The checked participant claimed nothing this stage.
    #[error("{0} claimed no nonces in this stage")]
    NoClaims(Address),
    /// The validator already voted on this participant this stage.
    #[error("a validation of {0} by this validator already exists")]
    AlreadyValidated(Address),
    /// The sample size is not `min(validation_sample_size, claimed)`, or mismatches exceed it.
    #[error("sample of {sampled} with {mismatches} mismatches; expected a sample of {expected}")]
    BadSample {
        /// Claimed sample size.
        sampled: u32,
        /// Claimed mismatches.
        mismatches: u32,
        /// The size the rules require.
        expected: u32,
    },
    /// The sample seed is not the signer's signature over the sample-seed message.
    #[error("sample seed does not verify against the signer's key")]
    BadSampleSeed,
    /// The binomial test could not be computed (bad parameters).
    #[error("binomial test: {0}")]
    Binomial(String),
    /// The host's collateral is below what entering PoC requires (`docs/spec/poc.md` §7).
    #[error("entering PoC needs {needed} of collateral; the host holds {held}")]
    EntryCollateral {
        /// Collateral held.
        held: gonka_primitives::Amount,
        /// Required.
        needed: gonka_primitives::Amount,
    },
    /// Nonces before the seed commitment of this stage.
    #[error("commit the epoch seed before submitting nonces")]
    NoSeedCommitment,
    /// The claim is below the smallest size the binomial test can reject when it is fabricated, or
    /// its host did not commit a seed: no one validates it and it earns no weight.
    #[error(
        "{participant} claims {claimed} nonces; claims below {minimum} or without a seed commitment earn nothing and are not validated"
    )]
    NotValidated {
        /// The claimant.
        participant: Address,
        /// Its distinct nonces.
        claimed: u64,
        /// The minimum claim.
        minimum: u64,
    },
}

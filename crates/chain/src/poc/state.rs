//! What Proof of Compute keeps on chain: the running stage, each participant's claim, its claimed
//! nonces and the validators' verdicts, for the running stage and the one before (for audits).

use gonka_poc::{Distance, MismatchRule};
use gonka_primitives::{AccountPublicKey, AccountSignature, Address, Hash, codec_struct};
use serde::{Deserialize, Serialize};

use crate::params::Params;
use crate::table::{Item, Table};

/// The PoC stage in progress or last run: what hosts race and validators check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PocStage {
    /// The epoch whose weights this stage decides.
    pub epoch: u64,
    /// `S`: the stage's start height.
    pub start_height: u64,
    /// Hash of block `S`: the seed of the model, the inputs and the target.
    pub block_hash: Hash,
}
codec_struct!(PocStage { epoch, start_height, block_hash });

/// Key of a participant's claim record: (stage start, participant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClaimKey {
    /// Stage start height.
    pub stage: u64,
    /// The participant.
    pub participant: Address,
}
codec_struct!(ClaimKey { stage, participant });

/// What a participant submitted in one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PocClaim {
    /// The validation key of the participant's secret seed for the epoch.
    pub seed_commitment: Option<gonka_primitives::VrfPublicKey>,
    /// Distinct nonces claimed.
    pub nonce_count: u64,
}
codec_struct!(PocClaim { seed_commitment, nonce_count });

/// Key of one claimed nonce: (stage start, participant, nonce).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NonceKey {
    /// Stage start height.
    pub stage: u64,
    /// The participant.
    pub participant: Address,
    /// The nonce.
    pub nonce: u64,
}
codec_struct!(NonceKey { stage, participant, nonce });

/// Key of one verdict: (stage start, participant checked, validator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VoteKey {
    /// Stage start height.
    pub stage: u64,
    /// The participant whose claims were checked.
    pub participant: Address,
    /// The validator.
    pub validator: Address,
}
codec_struct!(VoteKey { stage, participant, validator });

/// A validator's verdict on one participant, kept so anyone can audit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PocVote {
    /// Nonces recomputed.
    pub sampled: u32,
    /// Of which mismatched.
    pub mismatches: u32,
    /// The binomial test's verdict, computed by the chain.
    pub fraud: bool,
    /// The key that signed the sample seed (the validator's account or operational key).
    pub signer: AccountPublicKey,
    /// The sample seed: recompute the sample with [`gonka_poc::validation_sample`].
    pub sample_seed: AccountSignature,
}
codec_struct!(PocVote { sampled, mismatches, fraud, signer, sample_seed });

tables! {
    /// Proof of Compute's state.
    pub struct Poc {
        /// The running (or last) stage.
        pub(super) stage: Item<PocStage> = 1,
        /// Claims per (stage, participant): seed commitment and distinct nonce count.
        pub(super) claims: Table<ClaimKey, PocClaim> = 2,
        /// Claimed nonces per (stage, participant, nonce) with their claimed distance.
        pub(super) nonces: Table<NonceKey, Distance> = 3,
        /// Verdicts per (stage, participant, validator).
        pub(super) votes: Table<VoteKey, PocVote> = 4,
    }
}

impl Poc {
    /// The running (or last) stage, if one ever started.
    pub fn stage(&self) -> Option<PocStage> {
        self.stage.get().copied()
    }

    /// Every claim of the stages kept.
    pub fn claims(&self) -> &Table<ClaimKey, PocClaim> {
        &self.claims
    }

    /// Every verdict of the stages kept.
    pub fn votes(&self) -> &Table<VoteKey, PocVote> {
        &self.votes
    }

    /// The claims of the stage starting at `stage`, in participant order.
    pub fn stage_claims(&self, stage: u64) -> impl Iterator<Item = (&ClaimKey, &PocClaim)> + '_ {
        self.claims
            .range(ClaimKey { stage, participant: Address([0; 20]) }..)
            .take_while(move |(k, _)| k.stage == stage)
    }

    /// The claim of `participant` in the stage starting at `stage`.
    pub fn claim(&self, stage: u64, participant: Address) -> Option<&PocClaim> {
        self.claims.get(&ClaimKey { stage, participant })
    }

    /// The verdicts on `participant` in the stage starting at `stage`, in validator order.
    pub fn votes_on(
        &self,
        stage: u64,
        participant: Address,
    ) -> impl Iterator<Item = (&VoteKey, &PocVote)> + '_ {
        self.votes
            .range(VoteKey { stage, participant, validator: Address([0; 20]) }..)
            .take_while(move |(k, _)| k.stage == stage && k.participant == participant)
    }

    /// The verdict of `validator` on `participant` in the stage starting at `stage`.
    pub fn vote(&self, stage: u64, participant: Address, validator: Address) -> Option<&PocVote> {
        self.votes.get(&VoteKey { stage, participant, validator })
    }

    /// Whether `participant` claimed `nonce` in the stage starting at `stage`.
    pub fn has_nonce(&self, stage: u64, participant: Address, nonce: u64) -> bool {
        self.nonces.contains_key(&NonceKey { stage, participant, nonce })
    }

    /// How many nonces `participant` has stored for the stage starting at `stage`.
    pub fn nonce_count(&self, stage: u64, participant: Address) -> u64 {
        self.nonces
            .range(NonceKey { stage, participant, nonce: 0 }..)
            .take_while(|(key, _)| key.stage == stage && key.participant == participant)
            .count() as u64
    }

    /// The claimed nonces of `participant` in the stage starting at `stage`, in nonce order.
    /// At most `limit` of `participant`'s nonces in `stage` above `after` (all from the start when
    /// `None`), in nonce order: a page, so a reader of a million-nonce claim never builds it whole.
    pub fn nonces_page(
        &self,
        stage: u64,
        participant: Address,
        after: Option<u64>,
        limit: usize,
    ) -> Vec<(u64, Distance)> {
        let from = match after {
            None => 0,
            Some(u64::MAX) => return Vec::new(),
            Some(n) => n + 1,
        };
        self.nonces
            .range(NonceKey { stage, participant, nonce: from }..)
            .take_while(|(key, _)| key.stage == stage && key.participant == participant)
            .take(limit)
            .map(|(key, distance)| (key.nonce, *distance))
            .collect()
    }

    /// Every nonce `participant` claimed in `stage`, in nonce order.
    pub fn claimed_nonces(&self, stage: u64, participant: Address) -> Vec<(u64, Distance)> {
        self.nonces
            .range(NonceKey { stage, participant, nonce: 0 }..)
            .take_while(|(key, _)| key.stage == stage && key.participant == participant)
            .map(|(key, distance)| (key.nonce, *distance))
            .collect()
    }
}

/// The rule validators apply to sampled nonces under `params`.
pub fn mismatch_rule(params: &Params) -> MismatchRule {
    MismatchRule {
        r_target: Distance::from_decimal(params.poc.r_target),
        tolerance: Distance::from_decimal(params.poc.distance_tolerance),
    }
}

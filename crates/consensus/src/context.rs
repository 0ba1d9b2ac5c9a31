//! gonka's Malachite [`Context`]: heights, addresses, values, proposals, proposal parts, votes
//! and the weighted validator set.
//!
//! The value consensus agrees on is a [`BlockHash`] — the sha256 of the encoded block bytes.
//! The block bytes themselves travel as proposal parts (see `streaming`) and are kept by the
//! host until decided; votes and proposals only carry the 32-byte hash.

use std::fmt;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use malachitebft_app_channel::app::types::core::{
    self as core, Context, LinearTimeouts, NilOrVal, Round, SignedExtension, VoteType, VotingPower,
};
use malachitebft_signing_ed25519::{Ed25519, PublicKey, Signature};

/// A block height. Height 0 is genesis (nothing committed); consensus starts at 1.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height(pub u64);

impl Height {
    /// The height as a plain integer.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl core::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// Length of a validator address in bytes.
pub const ADDRESS_LEN: usize = 20;

/// A validator address: the first 20 bytes of sha256(ed25519 public key).
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; ADDRESS_LEN]);

impl Address {
    /// Derive the address of an ed25519 public key.
    pub fn from_public_key(public_key: &[u8; 32]) -> Self {
        Address(gonka_primitives::consensus::validator_address(&gonka_primitives::ValidatorPublicKey(
            *public_key,
        )))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl core::Address for Address {}

/// The value consensus decides on: sha256 of the block bytes. It is also its own id.
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockHash(pub [u8; 32]);

impl BlockHash {
    /// Hash of a block.
    pub fn of(block: &[u8]) -> Self {
        BlockHash(Sha256::digest(block).into())
    }
}

impl fmt::Display for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockHash({self})")
    }
}

impl core::Value for BlockHash {
    type Id = BlockHash;

    fn id(&self) -> BlockHash {
        *self
    }
}

/// A validator: address, ed25519 public key and voting power.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    /// Address derived from the public key.
    pub address: Address,
    /// ed25519 public key.
    pub public_key: PublicKey,
    /// Voting power (never 0 inside a [`ValidatorSet`]).
    pub voting_power: VotingPower,
}

impl Validator {
    /// Build a validator from its public key and power.
    pub fn new(public_key: PublicKey, voting_power: VotingPower) -> Self {
        Self { address: Address::from_public_key(public_key.as_bytes()), public_key, voting_power }
    }
}

impl core::Validator<GonkaContext> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }

    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    fn voting_power(&self) -> VotingPower {
        self.voting_power
    }
}

/// A non-empty validator set, sorted by voting power (descending) then address (ascending),
/// with unique addresses and no zero-power entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    total_power: VotingPower,
}

impl ValidatorSet {
    /// Build a set. Zero-power validators are dropped, duplicates (same address) keep the first
    /// occurrence. Returns `None` if nothing remains or the total power overflows `u64`.
    pub fn new(validators: impl IntoIterator<Item = Validator>) -> Option<Self> {
        let mut seen = std::collections::BTreeSet::new();
        let mut list: Vec<Validator> = Vec::new();
        for v in validators {
            if v.voting_power == 0 || !seen.insert(v.address) {
                continue;
            }
            list.push(v);
        }
        if list.is_empty() {
            return None;
        }
        let mut total: VotingPower = 0;
        for v in &list {
            total = total.checked_add(v.voting_power)?;
        }
        list.sort_by(|a, b| b.voting_power.cmp(&a.voting_power).then(a.address.cmp(&b.address)));
        Some(Self { validators: list, total_power: total })
    }

    /// The validators in canonical order.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// The validator with this address.
    pub fn get(&self, address: &Address) -> Option<&Validator> {
        self.validators.iter().find(|v| &v.address == address)
    }

    /// Deterministic proposer for (height, round). Round 0 picks the validator whose share of the
    /// canonical order holds the height's point of a golden-ratio (Weyl) sequence: `frac(h / φ)` of
    /// the total power. Every validator proposes its share of heights, as with a weighted draw, but
    /// the points of consecutive heights are `1/φ ≈ 0.618` of the circle apart, so a validator with
    /// less than `1 − 1/φ ≈ 38.2 %` of the power never proposes two heights in a row, and any run of
    /// heights spreads over the set (three-distance theorem). A hash draw let a 20 % validator propose
    /// three heights in a row about once in 125 runs — enough, in the simulator, for a censor to
    /// keep honest PoC batches out of the last blocks of their window (issue 12, item 7;
    /// `docs/spec/chain.md` §5). Each later round moves to the next validator in that order, so a
    /// crashed proposer costs one round, not a height. Every node computes the same answer from the
    /// height and the set alone.
    pub fn proposer(&self, height: Height, round: Round) -> &Validator {
        let n = self.validators.len();
        let round = round.as_u32().unwrap_or(0) as usize;
        let index = (self.weighted_index(height) + round % n) % n;
        // `n > 0` is a constructor invariant, and `index < n`.
        &self.validators[index]
    }

    /// Index of the validator whose cumulative power range holds this height's point.
    fn weighted_index(&self, height: Height) -> usize {
        /// `2^64 / φ`, rounded to odd: `h × GOLDEN mod 2^64` is `frac(h / φ) × 2^64`.
        const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
        let unit = height.0.wrapping_mul(GOLDEN);
        // `unit / 2^64 < 1`, so the point is below the total power.
        let mut point = ((u128::from(unit) * u128::from(self.total_power)) >> 64) as u64;
        for (index, validator) in self.validators.iter().enumerate() {
            if point < validator.voting_power {
                return index;
            }
            point -= validator.voting_power;
        }
        // The powers sum to `total_power > point`, so the loop always returns.
        self.validators.len() - 1
    }
}

impl core::ValidatorSet<GonkaContext> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }

    fn total_voting_power(&self) -> VotingPower {
        self.total_power
    }

    fn get_by_address(&self, address: &Address) -> Option<&Validator> {
        self.get(address)
    }

    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

/// A proposal for a block hash at (height, round).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// Proposed block hash.
    pub value: BlockHash,
    /// Proof-of-lock round (Nil for a fresh block).
    pub pol_round: Round,
    /// Proposer.
    pub proposer: Address,
}

impl core::Proposal<GonkaContext> for Proposal {
    fn height(&self) -> Height {
        self.height
    }

    fn round(&self) -> Round {
        self.round
    }

    fn value(&self) -> &BlockHash {
        &self.value
    }

    fn take_value(self) -> BlockHash {
        self.value
    }

    fn pol_round(&self) -> Round {
        self.pol_round
    }

    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

/// First part of a proposal stream: who proposes what, where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalInit {
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// Proof-of-lock round (Nil unless re-proposing a locked block).
    pub pol_round: Round,
    /// Proposer address.
    pub proposer: Address,
    /// Total block length in bytes (sum of the data parts).
    pub block_len: u64,
}

/// One piece of a streamed proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposalPart {
    /// Metadata, always first (sequence 0).
    Init(ProposalInit),
    /// A chunk of the block bytes.
    Data(Bytes),
    /// The proposer's signature over (init, block hash), always last before the stream end.
    Fin(Signature),
}

impl core::ProposalPart<GonkaContext> for ProposalPart {
    fn is_first(&self) -> bool {
        matches!(self, ProposalPart::Init(_))
    }

    fn is_last(&self) -> bool {
        matches!(self, ProposalPart::Fin(_))
    }
}

/// A prevote or precommit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    /// Prevote or precommit.
    pub vote_type: VoteType,
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// Block hash voted for, or nil.
    pub value: NilOrVal<BlockHash>,
    /// Voter.
    pub validator: Address,
    /// Vote extension (unused by gonka; extensions are disabled at every height).
    pub extension: Option<SignedExtension<GonkaContext>>,
}

impl core::Vote<GonkaContext> for Vote {
    fn height(&self) -> Height {
        self.height
    }

    fn round(&self) -> Round {
        self.round
    }

    fn value(&self) -> &NilOrVal<BlockHash> {
        &self.value
    }

    fn take_value(self) -> NilOrVal<BlockHash> {
        self.value
    }

    fn vote_type(&self) -> VoteType {
        self.vote_type
    }

    fn validator_address(&self) -> &Address {
        &self.validator
    }

    fn extension(&self) -> Option<&SignedExtension<GonkaContext>> {
        self.extension.as_ref()
    }

    fn take_extension(&mut self) -> Option<SignedExtension<GonkaContext>> {
        self.extension.take()
    }

    fn extend(self, extension: SignedExtension<GonkaContext>) -> Self {
        Self { extension: Some(extension), ..self }
    }
}

/// The gonka consensus context.
#[derive(Copy, Clone, Debug, Default)]
pub struct GonkaContext;

impl Context for GonkaContext {
    type Address = Address;
    type Height = Height;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = LinearTimeouts;
    type Value = BlockHash;
    type Vote = Vote;
    type Extension = Bytes;
    type SigningScheme = Ed25519;

    fn select_proposer<'a>(
        &self,
        validator_set: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        validator_set.proposer(height, round)
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: BlockHash,
        pol_round: Round,
        address: Address,
    ) -> Proposal {
        Proposal { height, round, value, pol_round, proposer: address }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<BlockHash>,
        address: Address,
    ) -> Vote {
        Vote {
            vote_type: VoteType::Prevote,
            height,
            round,
            value: value_id,
            validator: address,
            extension: None,
        }
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<BlockHash>,
        address: Address,
    ) -> Vote {
        Vote {
            vote_type: VoteType::Precommit,
            height,
            round,
            value: value_id,
            validator: address,
            extension: None,
        }
    }
}

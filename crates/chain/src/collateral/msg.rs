//! The collateral module's messages and errors.

use gonka_primitives::{Amount, Hash, ValidatorPublicKey, ValidatorSignature, codec_struct};
use serde::{Deserialize, Serialize};

use crate::bank::BankError;

messages! {
    /// Messages of host collateral.
    pub enum CollateralMsg {
        /// Lock `amount` of the host's spendable balance as collateral.
        0 => Deposit("deposit_collateral", account) {
            /// Amount in ngonka, positive.
            amount: Amount,
        },
        /// Start unbonding `amount` of the host's collateral: it stops vouching for new requests at
        /// once and returns to the balance `unbonding_ms` of block time later, answerable until then for
        /// what it vouched for.
        1 => Withdraw("withdraw_collateral", account) {
            /// Amount in ngonka, positive.
            amount: Amount,
        },
        /// Two conflicting votes one validator signed for the same height, round and kind, as the
        /// consensus engine reported them (`docs/spec/economy.md` §5): its host's collateral is slashed
        /// by `slash_double_sign_ppm`, once per (validator, height, round, kind).
        2 => ReportDoubleVote("report_double_vote", routine) {
            /// The evidence (boxed: the message enum stays small).
            evidence: Box<DoubleVote>,
        },
    }
}

/// A validator's two signed votes for different values at one (height, round, kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoubleVote {
    /// The validator's consensus key.
    pub validator: ValidatorPublicKey,
    /// [`gonka_primitives::consensus::PREVOTE`] or [`gonka_primitives::consensus::PRECOMMIT`].
    pub kind: u8,
    /// The height voted at.
    pub height: u64,
    /// The round.
    pub round: u32,
    /// The first vote's block hash (None: nil).
    pub first: Option<Hash>,
    /// Its signature.
    pub first_signature: ValidatorSignature,
    /// The second vote's block hash, different from the first.
    pub second: Option<Hash>,
    /// Its signature.
    pub second_signature: ValidatorSignature,
}
codec_struct!(DoubleVote {
    validator,
    kind,
    height,
    round,
    first,
    first_signature,
    second,
    second_signature
});

impl DoubleVote {
    /// The bytes the validator signed for `value`.
    pub fn sign_bytes(&self, value: Option<&Hash>) -> Vec<u8> {
        let address = gonka_primitives::consensus::validator_address(&self.validator);
        gonka_primitives::consensus::vote_sign_bytes(
            self.kind,
            self.height,
            Some(self.round),
            value.map(|h| &h.0),
            &address,
        )
    }
}

/// Why a collateral message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CollateralError {
    /// Only hosts hold collateral.
    #[error("{0} is not a registered host")]
    NotAHost(gonka_primitives::Address),
    /// A deposit or withdrawal of nothing.
    #[error("amount must be positive")]
    ZeroAmount,
    /// More than the collateral held.
    #[error("collateral {held} ngonka cannot cover a withdrawal of {needed} ngonka")]
    NotEnoughCollateral {
        /// Collateral held.
        held: Amount,
        /// Asked for.
        needed: Amount,
    },
    /// Too many withdrawals waiting for this host.
    #[error("{0} withdrawals are already unbonding; wait for one to be released")]
    TooManyUnbonding(usize),
    /// Evidence that does not prove a double vote.
    #[error("not double-vote evidence: {0}")]
    BadEvidence(&'static str),
    /// This double vote was already slashed.
    #[error("this double vote was already reported")]
    EvidenceSeen,
    /// The bank refused the move.
    #[error(transparent)]
    Bank(#[from] BankError),
}

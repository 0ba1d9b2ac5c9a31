//! The collateral module's messages and errors.

use gonka_primitives::Amount;

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
    /// The bank refused the move.
    #[error(transparent)]
    Bank(#[from] BankError),
}

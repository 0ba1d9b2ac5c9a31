//! The bank's messages and errors.

use gonka_primitives::{Address, Amount};

use crate::module::InvariantViolation;

messages! {
    /// Messages of the bank.
    pub enum BankMsg {
        /// Move `amount` from the transaction's account to `to` (creating it).
        0 => Send("bank_send", account) {
            /// Recipient.
            to: Address,
            /// Amount in ngonka, positive.
            amount: Amount,
        },
    }
}

/// Why a bank operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    /// A transfer of nothing.
    #[error("amount must be positive")]
    ZeroAmount,
    /// The spendable balance is short.
    #[error("insufficient funds: balance {balance}, needed {needed}")]
    InsufficientFunds {
        /// Available.
        balance: Amount,
        /// Needed.
        needed: Amount,
    },
    /// The state is wrong (a hold short of what it must cover, a total overflowing): stops the node.
    #[error(transparent)]
    Invariant(#[from] InvariantViolation),
}

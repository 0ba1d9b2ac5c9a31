//! The rewards module's messages and errors.

use gonka_primitives::{AccountSignature, Address};

use crate::bank::BankError;

messages! {
    /// Messages of the economy (`docs/spec/economy.md` §4).
    pub enum RewardsMsg {
        /// Claim the host's settled work and reward coins of `epoch`, revealing the epoch's secret seed
        /// (its validation key is the PoC seed commitment). The chain recomputes from the seed every
        /// answer the host was selected to validate in the epoch; with every one validated (or voted on,
        /// or invalidated by others first) the coins start vesting, otherwise the claim is refused: the
        /// settlement is forfeited and burned at the next settlement (reference §5.2, §6.4).
        0 => Claim("claim_rewards", routine) {
            /// The settled epoch.
            epoch: u64,
            /// The host's secret seed of that epoch (`gonka_host::protocol::epoch_seed`).
            seed: AccountSignature,
        },
    }
}

/// Why a rewards message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewardsError {
    /// Nothing settled for this host is waiting.
    #[error("{0} has no settled rewards waiting to be claimed")]
    NothingToClaim(Address),
    /// What waits is of another epoch.
    #[error("the rewards waiting are of epoch {waiting}, not {asked}")]
    WrongEpoch {
        /// The settled epoch waiting.
        waiting: u64,
        /// The claimed one.
        asked: u64,
    },
    /// The claim already failed: the settlement is forfeited.
    #[error("the rewards of epoch {0} are forfeited: {1} selected validations were missed")]
    Forfeited(u64, u64),
    /// The claim window closed: the epoch's records are gone, and its coins burn at the next settlement.
    #[error("the claim window of epoch {epoch} closed at height {closed}")]
    WindowClosed {
        /// The settled epoch.
        epoch: u64,
        /// Its last claimable height + 1.
        closed: u64,
    },
    /// The seed's validation key is not the epoch's commitment.
    #[error("the seed does not match the validation key committed for epoch {0}")]
    WrongSeed(u64),
    /// The bank refused the move.
    #[error(transparent)]
    Bank(#[from] BankError),
}

//! Genesis: the chain id, parameters, funded accounts and the initial hosts with their voting power.

use gonka_primitives::{AccountPublicKey, Address, Amount, ValidatorPublicKey, VrfPublicKey};
use serde::{Deserialize, Serialize};

use crate::params::Params;
use crate::rewards::Tokenomics;

/// A funded account at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisAccount {
    /// Address.
    pub address: Address,
    /// Balance in ngonka.
    pub balance: Amount,
}

/// A host that is a validator from the first block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisParticipant {
    /// The host's account.
    pub address: Address,
    /// The account's public key (its address must derive from it): PoC nonces are bound to it.
    pub account_key: AccountPublicKey,
    /// Public API base URL.
    pub api_url: String,
    /// Ed25519 consensus key.
    pub validator_key: ValidatorPublicKey,
    /// Operational key.
    pub operational_key: AccountPublicKey,
    /// Voting power until the first PoC sets weights.
    pub weight: u64,
    /// Collateral locked from the host's genesis balance (`docs/spec/inference.md` §4.1).
    #[serde(default)]
    pub collateral: Amount,
    /// The host's validation (VRF) key for epoch 0, derived from its epoch-0 seed; later epochs'
    /// keys come with each PoC seed commitment (`docs/spec/validation.md` §2). Without one, the host
    /// validates nothing before the first PoC.
    #[serde(default)]
    pub validation_key: Option<VrfPublicKey>,
}

/// The genesis document every node starts from (`genesis.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// Chain id, signed into every transaction.
    pub chain_id: String,
    /// Block time of genesis, in milliseconds since the Unix epoch; block 1 may not be earlier.
    pub genesis_time_ms: u64,
    /// Parameters.
    pub params: Params,
    /// Funded accounts.
    pub accounts: Vec<GenesisAccount>,
    /// Initial hosts (validators).
    pub participants: Vec<GenesisParticipant>,
    /// Accounts registered as developers from the start.
    #[serde(default)]
    pub developers: Vec<Address>,
    /// The subsidy cap and the total supply (genesis-only, reference §6.1).
    #[serde(default)]
    pub tokenomics: Tokenomics,
}

impl Genesis {
    /// The genesis hash: the app hash of the state this document makes at height 0, which commits to
    /// the chain id, the genesis time and every row. Two nodes with the same hash start from the same
    /// state; a joining operator compares it with the one the network announces
    /// (`docs/operators.md`).
    pub fn hash(&self) -> Result<gonka_primitives::Hash, crate::state::GenesisError> {
        crate::state::State::from_genesis(self).map(|state| state.meta.app_hash)
    }
}

//! The hosts' messages and errors.

use gonka_primitives::{AccountPublicKey, Address, ValidatorPublicKey};

messages! {
    /// Messages of the host registry.
    pub enum HostsMsg {
        /// Make the account a host: its public API URL, its consensus key, and the operational key that
        /// may sign routine transactions for it. Registering again updates all three.
        0 => Register("register_host", account) {
            /// Public API base URL (`http://` or `https://`).
            api_url: String,
            /// Ed25519 consensus key.
            validator_key: ValidatorPublicKey,
            /// Key allowed to sign routine messages on the account's behalf.
            operational_key: AccountPublicKey,
        },
        /// Change a registered host's public API URL.
        1 => UpdateUrl("update_host_url", routine) {
            /// New public API base URL.
            api_url: String,
        },
    }
}

/// Why a host message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostsError {
    /// The message needs a registered host.
    #[error("{0} is not a registered host")]
    NotAHost(Address),
    /// Another host already uses this validator key.
    #[error("validator key {0} is already registered by another host")]
    DuplicateValidatorKey(ValidatorPublicKey),
    /// The URL is not an http(s) URL within the limit.
    #[error("{0}")]
    InvalidUrl(String),
    /// A key is not a valid point.
    #[error("invalid key: {0}")]
    InvalidKey(String),
}

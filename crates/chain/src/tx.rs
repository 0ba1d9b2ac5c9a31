//! Transactions: a list of messages signed by an account's key (or its host's operational key), bound
//! to one chain id and one per-account sequence number so it can be included at most once. The
//! messages themselves belong to the modules ([`crate::state::Msg`] routes them).

use gonka_primitives::codec::{DecodeError, Encode};
use gonka_primitives::{AccountKey, AccountPublicKey, AccountSignature, Address, Amount, Hash, codec_struct};
use serde::{Deserialize, Serialize};

use crate::authority::AuthorityError;
use crate::bank::BankError;
use crate::hosts::HostsError;
use crate::inference::InferenceError;
use crate::module::InvariantViolation;
use crate::poc::PocError;
use crate::state::Msg;

/// Domain separator prefixed to the body before signing, so a tx signature can never be replayed as
/// a signature over anything else.
pub const TX_SIGN_DOMAIN: &[u8] = b"gonka/tx/v1\0";

/// What the signer signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxBody {
    /// The chain this transaction is for; any other chain refuses it.
    pub chain_id: String,
    /// The account the transaction acts for (whose sequence and funds it uses).
    pub account: Address,
    /// The key that signed: the account's own key, or the host's operational key for routine messages.
    pub signer: AccountPublicKey,
    /// Must equal the account's sequence; it increases by one with every included transaction.
    pub sequence: u64,
    /// What to do, applied in order and atomically.
    pub messages: Vec<Msg>,
}
codec_struct!(TxBody { chain_id, account, signer, sequence, messages });

/// A signed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tx {
    /// The signed content.
    pub body: TxBody,
    /// ECDSA signature over `TX_SIGN_DOMAIN ‖ encode(body)`.
    pub signature: AccountSignature,
}
codec_struct!(Tx { body, signature });

/// Why a transaction is refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Bytes are not a transaction, or exceed the size limit.
    #[error("malformed transaction: {0}")]
    Malformed(#[from] DecodeError),
    /// For another chain.
    #[error("wrong chain id: expected {expected}, got {got}")]
    WrongChainId {
        /// This chain's id.
        expected: String,
        /// The transaction's.
        got: String,
    },
    /// No messages, or more than the limit.
    #[error("a transaction must hold between 1 and {limit} messages, found {found}")]
    MessageCount {
        /// Messages found.
        found: usize,
        /// The limit.
        limit: u32,
    },
    /// A rewards claim shares its transaction with other messages.
    #[error("a rewards claim must be the only message of its transaction")]
    ClaimNotAlone,
    /// The account cannot pay an ordinary transaction's fee.
    #[error("{account} cannot pay the fee of {fee} (balance {balance})")]
    CannotPayFee {
        /// The paying account.
        account: Address,
        /// The fee.
        fee: Amount,
        /// Its spendable balance.
        balance: Amount,
    },
    /// The signature does not verify against the signer key.
    #[error("invalid signature")]
    InvalidSignature,
    /// The signer key may not act for the account (or not for these messages).
    #[error("signer {signer} may not sign for {account}{detail}")]
    Unauthorized {
        /// The signer's address.
        signer: Address,
        /// The account.
        account: Address,
        /// Extra context.
        detail: &'static str,
    },
    /// The account has never received funds.
    #[error("unknown account {0}")]
    UnknownAccount(Address),
    /// Sequence is not the account's next one (replay, or a gap).
    #[error("wrong sequence for {account}: expected {expected}, got {got}")]
    WrongSequence {
        /// The account.
        account: Address,
        /// Its next sequence.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// A bank message or operation was refused.
    #[error(transparent)]
    Bank(#[from] BankError),
    /// A host message was refused.
    #[error(transparent)]
    Hosts(#[from] HostsError),
    /// A parameter update was refused.
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    /// A Proof-of-Compute message was refused.
    #[error(transparent)]
    Poc(#[from] PocError),
    /// An inference receipt was refused.
    #[error(transparent)]
    Inference(#[from] InferenceError),
    /// A collateral message was refused.
    #[error(transparent)]
    Collateral(#[from] crate::collateral::CollateralError),
    /// A validation verdict or vote was refused.
    #[error(transparent)]
    Validation(#[from] crate::validation::ValidationError),
    /// A rewards claim was refused.
    #[error(transparent)]
    Rewards(#[from] crate::rewards::RewardsError),
}

impl TxError {
    /// The broken invariant behind this error, if it is one: such a transaction cannot simply fail,
    /// the node must stop.
    pub fn invariant(&self) -> Option<&InvariantViolation> {
        match self {
            TxError::Bank(BankError::Invariant(v))
            | TxError::Inference(InferenceError::Bank(BankError::Invariant(v)))
            | TxError::Validation(crate::validation::ValidationError::Bank(BankError::Invariant(v)))
            | TxError::Collateral(crate::collateral::CollateralError::Bank(BankError::Invariant(v)))
            | TxError::Rewards(crate::rewards::RewardsError::Bank(BankError::Invariant(v))) => Some(v),
            _ => None,
        }
    }
}

impl TxBody {
    /// The bytes the signer signs.
    pub fn sign_bytes(&self) -> Vec<u8> {
        let mut out = TX_SIGN_DOMAIN.to_vec();
        self.encode(&mut out);
        out
    }

    /// Signs the body with `key` (which must be `self.signer`).
    pub fn sign(self, key: &AccountKey) -> Tx {
        let signature = key.sign(&self.sign_bytes());
        Tx { body: self, signature }
    }
}

impl Tx {
    /// Hash identifying the transaction: SHA-256 of its encoding.
    pub fn hash(&self) -> Hash {
        Hash::digest(&self.to_bytes())
    }

    /// Builds and signs a transaction for `key`'s own account.
    pub fn new(chain_id: &str, key: &AccountKey, sequence: u64, messages: Vec<Msg>) -> Tx {
        TxBody {
            chain_id: chain_id.to_string(),
            account: key.address(),
            signer: key.public_key(),
            sequence,
            messages,
        }
        .sign(key)
    }
}

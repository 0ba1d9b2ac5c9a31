//! Inference messages, the developer's signed request they carry, and their errors.

use gonka_primitives::{Address, Amount, Hash, RecoverableSignature, codec_struct};
use serde::{Deserialize, Serialize};

use crate::bank::BankError;

/// Domain of the message a developer signs for a request.
pub const REQUEST_DOMAIN: &[u8] = b"gonka/inference-request/v1\0";

messages! {
    /// Messages of paid inference.
    pub enum InferenceMsg {
        /// Mark the account as a developer (a consumer of inference).
        0 => RegisterDeveloper("register_developer", account),
        /// The transfer agent's receipt: the developer's signed request, the executor the chain draws
        /// for it, and the prompt's token count. Escrows `(prompt + max_tokens) × price` unless the
        /// Finish came first.
        1 => Start("start_inference", routine) {
            /// The signed request.
            request: SignedRequest,
            /// The assigned executor.
            executor: Address,
            /// Prompt tokens (chat template applied).
            prompt_tokens: u32,
        },
        /// The executor's receipt: token counts and the SHA-256 of the completion text.
        2 => Finish("finish_inference", routine) {
            /// The signed request.
            request: SignedRequest,
            /// Prompt tokens.
            prompt_tokens: u32,
            /// Completion tokens.
            completion_tokens: u32,
            /// SHA-256 of the completion text.
            response_hash: Hash,
        },
    }
}

/// What the developer signed, and the context both receipts carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRequest {
    /// The paying account.
    pub requester: Address,
    /// The host whose API received the request (signed into it).
    pub transfer_agent: Address,
    /// SHA-256 of the request body as sent.
    pub body_hash: Hash,
    /// Request time, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// The developer's recoverable signature over [`request_message`].
    pub signature: RecoverableSignature,
    /// Content hash of the requested model.
    pub model: Hash,
    /// Completion tokens reserved.
    pub max_tokens: u32,
}
codec_struct!(SignedRequest {
    requester,
    transfer_agent,
    body_hash,
    timestamp_ns,
    signature,
    model,
    max_tokens
});

impl SignedRequest {
    /// The inference id: SHA-256 of the developer's signature.
    pub fn id(&self) -> Hash {
        inference_id(&self.signature)
    }
}

/// The bytes a developer signs: domain ‖ SHA-256(body) ‖ timestamp (ns, big-endian) ‖ TA address.
pub fn request_message(body_hash: &Hash, timestamp_ns: u64, transfer_agent: &Address) -> Vec<u8> {
    let mut message = REQUEST_DOMAIN.to_vec();
    message.extend_from_slice(&body_hash.0);
    message.extend_from_slice(&timestamp_ns.to_be_bytes());
    message.extend_from_slice(&transfer_agent.0);
    message
}

/// The inference id: SHA-256 of the developer's signature.
pub fn inference_id(signature: &RecoverableSignature) -> Hash {
    Hash::digest(&signature.0)
}

/// Why an inference receipt is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InferenceError {
    /// Receipts come from registered hosts only.
    #[error("{0} is not a registered host")]
    NotAHost(Address),
    /// The developer's signature does not recover to the requester.
    #[error("the developer signature does not match the requester")]
    BadRequestSignature,
    /// The receipt's sender is not the role it claims (TA for Start, executor for Finish).
    #[error("{0}")]
    WrongRole(&'static str),
    /// The request is too old or too far in the future for the block time.
    #[error("request time {timestamp_ms} ms is outside [{earliest}, {latest}] of block time")]
    StaleTimestamp {
        /// The request's time.
        timestamp_ms: u64,
        /// Earliest accepted.
        earliest: u64,
        /// Latest accepted.
        latest: u64,
    },
    /// The model is not served on this chain.
    #[error("unknown model {0}")]
    UnknownModel(Hash),
    /// The named executor is not the one the chain draws for this id.
    #[error("executor {named} is not the assigned executor {assigned:?}")]
    WrongExecutor {
        /// Named in the receipt.
        named: Address,
        /// Drawn by the chain.
        assigned: Option<Address>,
    },
    /// Token counts are out of bounds.
    #[error("token counts out of bounds: {0}")]
    Tokens(String),
    /// A receipt of this kind already exists for this id (replay).
    #[error("inference {0} already has this receipt")]
    Duplicate(Hash),
    /// The Finish came after the deadline.
    #[error("inference {0} expired")]
    Expired(Hash),
    /// Start and Finish disagree about the request.
    #[error("receipts of inference {0} disagree")]
    Mismatch(Hash),
    /// The requester cannot pay the escrow.
    #[error("requester balance {balance} cannot cover escrow {needed}")]
    CannotPay {
        /// Balance.
        balance: Amount,
        /// Escrow.
        needed: Amount,
    },
    /// Arithmetic overflow in a cost.
    #[error("amount overflow")]
    Overflow,
    /// A bank operation failed (an invariant, never a user error).
    #[error(transparent)]
    Bank(#[from] BankError),
}

//! Inference messages, the developer's signed request they carry, and their errors.

use gonka_primitives::{Address, Amount, Hash, RecoverableSignature, codec_struct};
use serde::{Deserialize, Serialize};

use crate::bank::BankError;

/// Domain of the message a developer signs for a request.
pub const REQUEST_DOMAIN: &[u8] = b"gonka/inference-request/v3\0";

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
        /// The executor's receipt: token counts, the SHA-256 of the completion text, and the TA's
        /// forward signature, by which the TA vouches for the request: if the developer cannot pay,
        /// the TA's collateral does (`docs/spec/inference.md` §4.1).
        2 => Finish("finish_inference", routine) {
            /// The signed request.
            request: SignedRequest,
            /// The TA's recoverable signature over [`forward_message`] for this executor.
            ta_signature: RecoverableSignature,
            /// Prompt tokens.
            prompt_tokens: u32,
            /// Of the prompt tokens, those the executor served from its prefix cache: billed at the
            /// model's `cached_price_ppm` (`docs/spec/inference.md` §4.2). At most `prompt_tokens`.
            cached_tokens: u32,
            /// Completion tokens.
            completion_tokens: u32,
            /// SHA-256 of the completion text.
            response_hash: Hash,
            /// The sampling seed the answer was generated with (the request's `seed`, else derived
            /// from the inference id; `docs/spec/validation.md` §1).
            seed: u64,
            /// SHA-256 of the recorded tokens and top-k logprobs validators re-score.
            logprobs_hash: Hash,
        },
    }
}

/// What a developer signs for one request (`docs/spec/inference.md` §2): everything that bounds what
/// it can be charged, so the chain can check every receipt against it without seeing the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestTerms {
    /// The host whose API receives the request.
    pub transfer_agent: Address,
    /// SHA-256 of the request body as sent.
    pub body_hash: Hash,
    /// Length of the body in bytes: with the chat template's overhead, it bounds the prompt's tokens.
    pub body_len: u32,
    /// Request time, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Content hash of the model asked for (its price is the chain's for that model).
    pub model: Hash,
    /// Completion tokens reserved: the most the executor may generate and charge for.
    pub max_tokens: u32,
    /// The most the developer pays per token: an inference locks the model's price at its first
    /// receipt, but never above this (`docs/spec/economy.md` §7).
    pub max_price_per_token: Amount,
}

/// The bytes a developer signs: domain ‖ chain id (length-prefixed) ‖ SHA-256(body) ‖ body length ‖
/// timestamp (ns) ‖ TA address ‖ model content hash ‖ max_tokens ‖ max price per token (u128),
/// integers big-endian. The chain id makes a request signed for one network useless on another.
pub fn request_message(chain_id: &str, terms: &RequestTerms) -> Vec<u8> {
    let mut message = REQUEST_DOMAIN.to_vec();
    push_chain_id(&mut message, chain_id);
    message.extend_from_slice(&terms.body_hash.0);
    message.extend_from_slice(&terms.body_len.to_be_bytes());
    message.extend_from_slice(&terms.timestamp_ns.to_be_bytes());
    message.extend_from_slice(&terms.transfer_agent.0);
    message.extend_from_slice(&terms.model.0);
    message.extend_from_slice(&terms.max_tokens.to_be_bytes());
    message.extend_from_slice(&terms.max_price_per_token.0.to_be_bytes());
    message
}

/// Domain of the transfer agent's forward signature.
pub const FORWARD_DOMAIN: &[u8] = b"gonka/ta-forward/v2\0";

/// What the TA signs when it forwards a request, vouching for its payment: domain ‖ chain id ‖
/// inference id ‖ executor ‖ max_tokens. The executor's Finish carries it to the chain.
pub fn forward_message(chain_id: &str, id: &Hash, executor: &Address, max_tokens: u32) -> Vec<u8> {
    let mut message = FORWARD_DOMAIN.to_vec();
    push_chain_id(&mut message, chain_id);
    message.extend_from_slice(&id.0);
    message.extend_from_slice(&executor.0);
    message.extend_from_slice(&max_tokens.to_be_bytes());
    message
}

/// Appends a chain id to a signed message as one length byte then its bytes (genesis accepts ids of 1
/// to 64 bytes; anything past 255 would be cut).
pub fn push_chain_id(message: &mut Vec<u8>, chain_id: &str) {
    let bytes = &chain_id.as_bytes()[..chain_id.len().min(255)];
    message.push(bytes.len() as u8);
    message.extend_from_slice(bytes);
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
    /// Length of the body in bytes.
    pub body_len: u32,
    /// Request time, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// The developer's recoverable signature over [`request_message`] of [`SignedRequest::terms`].
    pub signature: RecoverableSignature,
    /// Content hash of the requested model.
    pub model: Hash,
    /// Completion tokens reserved.
    pub max_tokens: u32,
    /// The most the developer pays per token.
    pub max_price_per_token: Amount,
}
codec_struct!(SignedRequest {
    requester,
    transfer_agent,
    body_hash,
    body_len,
    timestamp_ns,
    signature,
    model,
    max_tokens,
    max_price_per_token
});

impl SignedRequest {
    /// `key`'s request on `chain_id` under `terms`.
    pub fn sign(key: &gonka_primitives::AccountKey, chain_id: &str, terms: RequestTerms) -> SignedRequest {
        let signature = key.sign_recoverable(&request_message(chain_id, &terms));
        SignedRequest::new(key.address(), terms, signature)
    }

    /// The request of `requester` with `terms` and its `signature` (not checked here).
    pub fn new(requester: Address, terms: RequestTerms, signature: RecoverableSignature) -> SignedRequest {
        SignedRequest {
            requester,
            transfer_agent: terms.transfer_agent,
            body_hash: terms.body_hash,
            body_len: terms.body_len,
            timestamp_ns: terms.timestamp_ns,
            signature,
            model: terms.model,
            max_tokens: terms.max_tokens,
            max_price_per_token: terms.max_price_per_token,
        }
    }

    /// What the developer signed.
    pub fn terms(&self) -> RequestTerms {
        RequestTerms {
            transfer_agent: self.transfer_agent,
            body_hash: self.body_hash,
            body_len: self.body_len,
            timestamp_ns: self.timestamp_ns,
            model: self.model,
            max_tokens: self.max_tokens,
            max_price_per_token: self.max_price_per_token,
        }
    }

    /// Whether the signature recovers to the requester for these terms on `chain_id`.
    pub fn verify(&self, chain_id: &str) -> bool {
        self.signature
            .recover(&request_message(chain_id, &self.terms()))
            .is_ok_and(|signer| signer.address() == self.requester)
    }

    /// The inference id: SHA-256 of the developer's signature.
    pub fn id(&self) -> Hash {
        inference_id(&self.signature)
    }
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
    /// The Finish's forward signature is not the request's TA's (account or operational key) for
    /// this executor: no TA vouched for it.
    #[error("the transfer agent's forward signature does not match the request's transfer agent")]
    BadTaSignature,
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

//! Whether a host takes a signed inference request (`docs/spec/inference.md` §2, reference §4.3, §4.5):
//! one pure function, [`admit`], for both roles a host plays — the transfer agent (TA) that received
//! the request and the executor it forwards it to — and the [`ReplayGuard`] both keep.
//!
//! Checks, cheapest-to-refuse first: the model, the developer's signature (over the request's terms on
//! this chain, [`gonka_chain::RequestTerms`]), the TA's forward signature (executor), the requester's
//! account, the request time (the chain's own window,
//! [`gonka_chain::InferenceParams::check_request_time`]), `max_tokens`, the prompt against the signed
//! body length, the balance against the escrow (TA), and the executor draw. What passes is exactly what the chain will accept in the
//! Start or Finish receipt, judged on the same committed state.

use std::collections::{BTreeMap, BTreeSet};

use gonka_chain::{InferenceError, RequestTerms, SignedRequest, State, inference, inference_id};
use gonka_primitives::{AccountPublicKey, Address, Amount, Hash, RecoverableSignature};

use crate::protocol::forward_message;

/// What a request's headers and body say, before anything is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestClaim {
    /// The account `X-Requester-Address` names.
    pub requester: Address,
    /// The developer's signature (`Authorization`).
    pub signature: RecoverableSignature,
    /// `X-Timestamp`, Unix nanoseconds.
    pub timestamp_ns: u64,
    /// SHA-256 of the body bytes.
    pub body_hash: Hash,
    /// Length of the body in bytes.
    pub body_len: u32,
    /// The TA the developer signed for.
    pub transfer_agent: Address,
    /// The body's `model`.
    pub model: String,
    /// The prompt's token count (chat template applied).
    pub prompt_tokens: u32,
    /// Completion tokens reserved, as the developer signed them (`X-Max-Tokens`, or the body's).
    pub max_tokens: u32,
    /// The most the developer pays per token (`X-Max-Price`, signed).
    pub max_price_per_token: Amount,
}

/// The role the host plays for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It received the request from the developer (or its gateway).
    TransferAgent,
    /// A TA forwarded the request with its signature over (id, this executor, max_tokens).
    Executor {
        /// The TA's recoverable signature (`X-TA-Signature`).
        ta_signature: RecoverableSignature,
    },
}

/// A request the host takes, with everything the shell needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The inference id.
    pub id: Hash,
    /// The signed request the receipts carry.
    pub request: SignedRequest,
    /// The executor the chain draws.
    pub executor: Address,
    /// Its API base URL.
    pub executor_url: String,
    /// What the Start escrows: `(prompt + max_tokens) × price`.
    pub escrow: Amount,
    /// Replay entries older than this (ms) can be forgotten: the time check refuses them anyway.
    pub replay_forget_before_ms: u64,
}

/// Why a request is refused; the node maps each to its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// The developer's signature is malformed or not the requester's (401).
    #[error("{0}")]
    BadSignature(&'static str),
    /// The request was signed for another TA (400).
    #[error("this host is {me}; send the request to {named} or sign it for {me}")]
    WrongTransferAgent {
        /// This host.
        me: Address,
        /// The TA the request names.
        named: Address,
    },
    /// The forwarding TA is not a host (401).
    #[error("{0} is not a host")]
    UnknownTransferAgent(Address),
    /// The forward signature is missing or not the TA's (401).
    #[error("X-TA-Signature is not the transfer agent's")]
    ForeignTaSignature,
    /// The requester has no account (404).
    #[error("account {0} does not exist on chain")]
    AccountNotFound(Address),
    /// The request time is outside the chain's window (400).
    #[error("{}", stale_message(*timestamp_ms, *now_ms, *expiration_ms, *advance_ms))]
    StaleTimestamp {
        /// The request's time.
        timestamp_ms: u64,
        /// The last block's time.
        now_ms: u64,
        /// How far back a request may be dated.
        expiration_ms: u64,
        /// How far ahead.
        advance_ms: u64,
    },
    /// The model is not served on this chain (404).
    #[error("model `{0}` is not served on this network")]
    ModelNotFound(String),
    /// `max_tokens` zero or above the chain's cap (400).
    #[error("max_tokens must be between 1 and {cap} on this network")]
    MaxTokens {
        /// The cap.
        cap: u32,
    },
    /// The prompt is longer than the chain accepts in a receipt (400).
    #[error("the prompt is {tokens} tokens; this network accepts at most {max}")]
    PromptTooLong {
        /// The prompt's tokens.
        tokens: u32,
        /// The chain's limit.
        max: u32,
    },
    /// The body is larger than its paid tokens may store (413): an executor keeps every body for
    /// validators, so a body may carry at most [`BODY_BYTES_PER_TOKEN_MAX`] bytes per reserved token.
    #[error(
        "a {body_len}-byte body reserves {tokens} tokens; at most {BODY_BYTES_PER_TOKEN_MAX} bytes per token are stored"
    )]
    BodyTooLarge {
        /// The body's length.
        body_len: u32,
        /// Prompt plus max_tokens.
        tokens: u64,
    },
    /// The developer's price bound is below the model's current price (400): the chain would lock
    /// the bound, below what this host serves for (`docs/spec/economy.md` §7).
    #[error(
        "the price of this model is {price} ngonka per token, above the {bound} you signed (X-Max-Price)"
    )]
    PriceAboveBound {
        /// The current price.
        price: u128,
        /// The signed bound.
        bound: u128,
    },
    /// The balance does not cover the escrow (402).
    #[error("balance {balance} ngonka cannot cover escrow {needed} ngonka")]
    InsufficientBalance {
        /// Balance.
        balance: u128,
        /// Escrow.
        needed: u128,
    },
    /// No host holds power (503).
    #[error("no host holds voting power")]
    NoExecutor,
    /// The chain does not draw this host for the request (400).
    #[error("the chain does not draw this host as the executor of this request")]
    NotDrawn,
}

fn stale_message(timestamp_ms: u64, now_ms: u64, expiration_ms: u64, advance_ms: u64) -> String {
    if timestamp_ms < now_ms {
        format!(
            "the request is {} ms older than the chain time; at most {expiration_ms} ms is accepted",
            now_ms - timestamp_ms
        )
    } else {
        format!(
            "the request is {} ms ahead of the chain time; at most {advance_ms} ms is accepted",
            timestamp_ms - now_ms
        )
    }
}

/// Most body bytes stored per reserved (prompt + max_tokens) token: a chat body spends a few bytes per
/// token of text plus its JSON, so honest requests sit far below; padding beyond it would make the
/// executor keep for two epochs bytes nobody paid for (issue 12, item 2).
pub const BODY_BYTES_PER_TOKEN_MAX: u64 = 64;

/// The developer's signed request, when `claim`'s signature is the requester's over its terms on this
/// chain. Cheap (a hash and a key recovery): the TA runs it before it tokenizes anything (issue 12,
/// item 12), and [`admit`] runs it again with the counted prompt.
pub fn verify_developer(chain: &State, claim: &RequestClaim) -> Result<SignedRequest, AdmissionError> {
    let params = &chain.params().inference;
    let model =
        params.model_named(&claim.model).ok_or_else(|| AdmissionError::ModelNotFound(claim.model.clone()))?;
    let terms = RequestTerms {
        transfer_agent: claim.transfer_agent,
        body_hash: claim.body_hash,
        body_len: claim.body_len,
        timestamp_ns: claim.timestamp_ns,
        model: model.content_hash,
        max_tokens: claim.max_tokens,
        max_price_per_token: claim.max_price_per_token,
    };
    let request = SignedRequest::new(claim.requester, terms, claim.signature);
    if !request.verify(&chain.meta.chain_id) {
        return Err(AdmissionError::BadSignature(
            "The signature does not match X-Requester-Address for this body, timestamp, transfer agent, model, max_tokens and chain.",
        ));
    }
    Ok(request)
}

/// Whether the host `me`, acting as `role`, takes `claim` on the committed `chain` state.
pub fn admit(
    chain: &State,
    me: Address,
    role: &Role,
    claim: &RequestClaim,
) -> Result<Admission, AdmissionError> {
    let params = &chain.params().inference;
    let request = verify_developer(chain, claim)?;
    let model =
        params.model_named(&claim.model).ok_or_else(|| AdmissionError::ModelNotFound(claim.model.clone()))?;
    let id = inference_id(&claim.signature);
    match role {
        Role::TransferAgent if claim.transfer_agent != me => {
            return Err(AdmissionError::WrongTransferAgent { me, named: claim.transfer_agent });
        }
        Role::TransferAgent => {}
        Role::Executor { ta_signature } => check_forward(chain, me, claim, &id, ta_signature)?,
    }
    // The executor does not need the requester's balance: the TA's collateral vouches for the request
    // (`crate::exposure`, `docs/spec/inference.md` §4.1).
    let balance = match role {
        Role::TransferAgent => Some(
            chain
                .bank
                .accounts()
                .get(&claim.requester)
                .ok_or(AdmissionError::AccountNotFound(claim.requester))?
                .balance,
        ),
        Role::Executor { .. } => None,
    };
    params.check_request_time(chain.meta.time_ms, claim.timestamp_ns).map_err(|e| match e {
        InferenceError::StaleTimestamp { timestamp_ms, .. } => AdmissionError::StaleTimestamp {
            timestamp_ms,
            now_ms: chain.meta.time_ms,
            expiration_ms: params.timestamp_expiration_ms,
            advance_ms: params.timestamp_advance_ms,
        },
        _ => AdmissionError::NotDrawn,
    })?;
    if claim.max_tokens == 0 || claim.max_tokens > params.max_tokens_cap {
        return Err(AdmissionError::MaxTokens { cap: params.max_tokens_cap });
    }
    let prompt_max = params.prompt_tokens_max(claim.body_len);
    if claim.prompt_tokens > prompt_max {
        return Err(AdmissionError::PromptTooLong { tokens: claim.prompt_tokens, max: prompt_max });
    }
    let tokens = u128::from(claim.prompt_tokens) + u128::from(claim.max_tokens);
    if matches!(role, Role::TransferAgent) {
        // The executor counts the prompt only after the signatures (it checks this then).
        check_body_size(claim.body_len, claim.prompt_tokens, claim.max_tokens)?;
    }
    // The price the next block would lock must be within the bound; the escrow is reserved at the
    // bound, the most any receipt can lock (prices move between admission and the receipt).
    let price = gonka_chain::pricing::price(chain, &model.content_hash).unwrap_or(model.price_per_token);
    if claim.max_price_per_token < price {
        return Err(AdmissionError::PriceAboveBound { price: price.0, bound: claim.max_price_per_token.0 });
    }
    let escrow = claim.max_price_per_token.0.saturating_mul(tokens);
    if let Some(balance) = balance.filter(|b| b.0 < escrow) {
        return Err(AdmissionError::InsufficientBalance { balance: balance.0, needed: escrow });
    }
    let executor = inference::executor_for(chain, &id).ok_or(AdmissionError::NoExecutor)?;
    // The executor judges the draw as the chain will in the next block: the current draw, or the
    // previous one during the grace period after a change of power (a TA may have drawn on a state
    // one block older).
    if matches!(role, Role::Executor { .. }) && !inference::is_assigned(chain, &id, me, chain.height() + 1) {
        return Err(AdmissionError::NotDrawn);
    }
    let executor_url = chain.hosts.participant(&executor).map(|p| p.api_url.clone()).unwrap_or_default();
    let replay_forget_before_ms = chain.meta.time_ms.saturating_sub(params.timestamp_expiration_ms);
    Ok(Admission { id, request, executor, executor_url, escrow: Amount(escrow), replay_forget_before_ms })
}

/// Whether a body of `body_len` bytes may be stored for a request reserving `prompt_tokens +
/// max_tokens` tokens ([`BODY_BYTES_PER_TOKEN_MAX`]).
pub fn check_body_size(body_len: u32, prompt_tokens: u32, max_tokens: u32) -> Result<(), AdmissionError> {
    let reserved = u64::from(prompt_tokens) + u64::from(max_tokens);
    if u64::from(body_len) > reserved.saturating_mul(BODY_BYTES_PER_TOKEN_MAX) {
        return Err(AdmissionError::BodyTooLarge { body_len, tokens: reserved });
    }
    Ok(())
}

/// The executor's check of the TA: a host, whose account or operational key signed the forward.
fn check_forward(
    chain: &State,
    me: Address,
    claim: &RequestClaim,
    id: &Hash,
    ta_signature: &RecoverableSignature,
) -> Result<(), AdmissionError> {
    let ta_key: AccountPublicKey = ta_signature
        .recover(&forward_message(&chain.meta.chain_id, id, &me, claim.max_tokens))
        .map_err(|_| AdmissionError::ForeignTaSignature)?;
    let ta = chain
        .hosts
        .participant(&claim.transfer_agent)
        .ok_or(AdmissionError::UnknownTransferAgent(claim.transfer_agent))?;
    if ta_key != ta.account_key && ta_key != ta.operational_key {
        return Err(AdmissionError::ForeignTaSignature);
    }
    Ok(())
}

/// Why the replay guard refuses a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// This signed request was seen before (409).
    #[error("this signed request was already submitted")]
    Replay,
    /// The table is full (429).
    #[error("the replay table is full")]
    Full,
}

/// Signed requests already seen, by id, kept until their time leaves the accepted window (after which
/// the time check refuses them anyway), with a bound on entries. The shell keeps one per role behind
/// a lock.
#[derive(Debug, Clone, Default)]
pub struct ReplayGuard {
    by_id: BTreeMap<Hash, u64>,
    by_time: BTreeSet<(u64, Hash)>,
    capacity: usize,
}

impl ReplayGuard {
    /// A guard remembering at most `capacity` requests.
    pub fn new(capacity: usize) -> ReplayGuard {
        ReplayGuard { capacity: capacity.max(1), ..ReplayGuard::default() }
    }

    /// Records `id` (request time `timestamp_ms`), after dropping entries older than
    /// `forget_before_ms`.
    pub fn admit(&mut self, id: Hash, timestamp_ms: u64, forget_before_ms: u64) -> Result<(), ReplayError> {
        while let Some(&(time, old)) = self.by_time.first() {
            if time >= forget_before_ms {
                break;
            }
            self.by_time.pop_first();
            self.by_id.remove(&old);
        }
        if self.by_id.contains_key(&id) {
            return Err(ReplayError::Replay);
        }
        if self.by_id.len() >= self.capacity {
            return Err(ReplayError::Full);
        }
        self.by_id.insert(id, timestamp_ms);
        self.by_time.insert((timestamp_ms, id));
        Ok(())
    }

    /// Forgets `id`, admitted but then not acted on (its Start was refused), so the developer may send
    /// the same signed request again.
    pub fn forget(&mut self, id: &Hash) {
        if let Some(time) = self.by_id.remove(id) {
            self.by_time.remove(&(time, *id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_refused_and_old_entries_forgotten() {
        let mut guard = ReplayGuard::new(2);
        let (a, b, c) = (Hash::digest(b"a"), Hash::digest(b"b"), Hash::digest(b"c"));
        assert!(guard.admit(a, 100, 0).is_ok());
        assert_eq!(guard.admit(a, 100, 0), Err(ReplayError::Replay));
        assert!(guard.admit(b, 200, 0).is_ok());
        assert_eq!(guard.admit(c, 300, 0), Err(ReplayError::Full));
        assert!(guard.admit(c, 300, 150).is_ok(), "a's slot is free once it is too old to replay");
        guard.forget(&c);
        assert!(guard.admit(c, 300, 150).is_ok(), "a forgotten request may come again");
    }
}

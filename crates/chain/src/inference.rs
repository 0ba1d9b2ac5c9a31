//! Paid inference on chain (reference §4.6–§4.8, DESIGN.md §4.1–§4.2; `docs/spec/inference.md`).
//!
//! A developer signs `(SHA-256 of the request body, timestamp, transfer agent)`; the inference id is the
//! SHA-256 of that signature. The transfer agent (TA) records a `StartInference`, the executor a
//! `FinishInference`; either may come first, and both carry the signed request so each verifies on its
//! own. Payloads stay off chain: only hashes and token counts are recorded.
//!
//! Money (all integer ngonka; `supply = Σ balances + Σ escrows + Σ owed` holds after every block):
//! - Start first: escrow `(prompt + max_tokens) × price` moves from the requester into the record.
//! - Finish after Start: cost `(prompt + completion) × price`; the executor's owed balance gets
//!   `min(cost, escrow)`, the requester the rest back.
//! - Finish first: the requester pays `min(cost, balance)` straight into the executor's owed balance;
//!   a later Start only records the TA.
//! - A Start not finished by its deadline (`start + expiry_base_blocks + ⌈max_tokens /
//!   expiry_tokens_per_block⌉`) expires: full refund, the executor's missed count +1; a later Finish
//!   is refused.
//!
//! The executor is a deterministic, weight-proportional function of the inference id and the current
//! voting power ([`State::executor_for`]); a Start or Finish naming anyone else is refused.

use gonka_primitives::{Address, Amount, Hash, RecoverableSignature, codec_struct};
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::state::State;

/// Domain of the message a developer signs for a request.
pub const REQUEST_DOMAIN: &[u8] = b"gonka/inference-request/v1\0";
/// Domain of the executor draw.
const EXECUTOR_DOMAIN: &[u8] = b"gonka/executor/v1\0";

/// A served model and its price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPrice {
    /// The name clients use in `model`.
    pub name: String,
    /// SHA-256 of the model file every host serves: the model's identity.
    pub content_hash: Hash,
    /// Price of one prompt or completion token, in ngonka.
    pub price_per_token: Amount,
}
codec_struct!(ModelPrice { name, content_hash, price_per_token });

/// Inference parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InferenceParams {
    /// Models hosts serve, with their price.
    pub models: Vec<ModelPrice>,
    /// Blocks every inference gets before it expires…
    pub expiry_base_blocks: u64,
    /// …plus one block per this many `max_tokens` (long answers are not punished, §12.17).
    pub expiry_tokens_per_block: u64,
    /// Requests dated earlier than block time minus this are refused.
    pub timestamp_expiration_ms: u64,
    /// Requests dated later than block time plus this are refused.
    pub timestamp_advance_ms: u64,
    /// Largest `max_tokens` a request may reserve.
    pub max_tokens_cap: u32,
    /// Largest prompt a request may claim, in tokens.
    pub max_prompt_tokens: u32,
    /// Blocks after a voting-power change in which the previous set's executor is still accepted.
    pub executor_grace_blocks: u64,
}
codec_struct!(InferenceParams {
    models,
    expiry_base_blocks,
    expiry_tokens_per_block,
    timestamp_expiration_ms,
    timestamp_advance_ms,
    max_tokens_cap,
    max_prompt_tokens,
    executor_grace_blocks,
});

impl Default for InferenceParams {
    fn default() -> Self {
        InferenceParams {
            models: Vec::new(),
            expiry_base_blocks: 20,
            expiry_tokens_per_block: 16,
            timestamp_expiration_ms: 60_000,
            timestamp_advance_ms: 30_000,
            max_tokens_cap: 8192,
            max_prompt_tokens: 32_768,
            executor_grace_blocks: 20,
        }
    }
}

impl InferenceParams {
    /// The model with this content hash.
    pub fn model(&self, content_hash: &Hash) -> Option<&ModelPrice> {
        self.models.iter().find(|m| m.content_hash == *content_hash)
    }

    /// The model clients call `name`.
    pub fn model_named(&self, name: &str) -> Option<&ModelPrice> {
        self.models.iter().find(|m| m.name == name)
    }

    /// The deadline of an inference started at `height` reserving `max_tokens`.
    pub fn deadline(&self, height: u64, max_tokens: u32) -> u64 {
        height + self.expiry_base_blocks + u64::from(max_tokens).div_ceil(self.expiry_tokens_per_block.max(1))
    }
}

/// What the developer signed, and the context both receipts carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// Where an inference stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InferenceStatus {
    /// Started, escrow held, waiting for the executor's receipt.
    Started,
    /// Finished and paid.
    Finished,
    /// Not finished by its deadline; refunded in full.
    Expired,
}

impl gonka_primitives::codec::Encode for InferenceStatus {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
}

impl gonka_primitives::codec::Decode for InferenceStatus {
    fn decode(
        reader: &mut gonka_primitives::codec::Reader<'_>,
    ) -> Result<Self, gonka_primitives::codec::DecodeError> {
        match <u8 as gonka_primitives::codec::Decode>::decode(reader)? {
            0 => Ok(InferenceStatus::Started),
            1 => Ok(InferenceStatus::Finished),
            2 => Ok(InferenceStatus::Expired),
            tag => Err(gonka_primitives::codec::DecodeError::InvalidTag { what: "inference status", tag }),
        }
    }
}

/// One inference's receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inference {
    /// The paying account.
    pub requester: Address,
    /// The TA, once its Start is recorded.
    pub transfer_agent: Option<Address>,
    /// The executor.
    pub executor: Address,
    /// Model content hash.
    pub model: Hash,
    /// SHA-256 of the request body.
    pub prompt_hash: Hash,
    /// SHA-256 of the completion text, once finished.
    pub response_hash: Option<Hash>,
    /// Prompt tokens (the executor's count once finished).
    pub prompt_tokens: u32,
    /// Completion tokens, once finished.
    pub completion_tokens: u32,
    /// Completion tokens reserved.
    pub max_tokens: u32,
    /// Price per token, locked at first sight.
    pub price_per_token: Amount,
    /// Held while started.
    pub escrow: Amount,
    /// What the requester paid in the end.
    pub cost: Amount,
    /// Status.
    pub status: InferenceStatus,
    /// Height of the first receipt.
    pub first_seen_height: u64,
    /// Height at which a started inference expires.
    pub deadline: u64,
    /// The signed request time.
    pub timestamp_ns: u64,
}
codec_struct!(Inference {
    requester,
    transfer_agent,
    executor,
    model,
    prompt_hash,
    response_hash,
    prompt_tokens,
    completion_tokens,
    max_tokens,
    price_per_token,
    escrow,
    cost,
    status,
    first_seen_height,
    deadline,
    timestamp_ns,
});

/// Why an inference receipt is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InferenceError {
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
    /// Arithmetic overflow.
    #[error("amount overflow")]
    Overflow,
}

/// A Start or a Finish, as [`State::check_receipt`] sees them.
pub(crate) enum Receipt<'a> {
    Start { request: &'a SignedRequest, executor: Address, prompt_tokens: u32 },
    Finish { request: &'a SignedRequest, prompt_tokens: u32, completion_tokens: u32, response_hash: Hash },
}

impl State {
    /// The executor drawn for `inference_id` among `hosts` (address, power), in address order:
    /// a point `SHA-256(domain ‖ id) mod total power` on the cumulative power line.
    fn draw_executor(
        inference_id: &Hash,
        hosts: impl Iterator<Item = (Address, u64)> + Clone,
    ) -> Option<Address> {
        let total: u128 = hosts.clone().map(|(_, w)| u128::from(w)).sum();
        if total == 0 {
            return None;
        }
        let digest = Hash::digest_parts(&[EXECUTOR_DOMAIN, &inference_id.0]);
        let mut point = u128::from_be_bytes(digest.0[..16].try_into().expect("16 bytes")) % total;
        for (address, weight) in hosts {
            if point < u128::from(weight) {
                return Some(address);
            }
            point -= u128::from(weight);
        }
        None
    }

    /// The executor of `inference_id` under the current voting power (see `docs/spec/inference.md`
    /// for why neither the developer nor the TA can steer it cheaply).
    pub fn executor_for(&self, inference_id: &Hash) -> Option<Address> {
        Self::draw_executor(
            inference_id,
            self.participants.iter().filter(|(_, p)| p.weight > 0).map(|(a, p)| (*a, p.weight)),
        )
    }

    /// The executor under the previous voting power, while it is within the grace period.
    fn previous_executor_for(&self, inference_id: &Hash, height: u64) -> Option<Address> {
        let grace = self.meta.params.inference.executor_grace_blocks;
        if height > self.meta.power_changed_height.saturating_add(grace) {
            return None;
        }
        Self::draw_executor(
            inference_id,
            self.participants
                .iter()
                .filter(|(_, p)| p.previous_weight > 0)
                .map(|(a, p)| (*a, p.previous_weight)),
        )
    }

    /// Checks a request's signature, time, model and executor; returns its id.
    fn check_request(
        &self,
        request: &SignedRequest,
        executor: Address,
        height: u64,
    ) -> Result<Hash, InferenceError> {
        let message = request_message(&request.body_hash, request.timestamp_ns, &request.transfer_agent);
        let signer = request.signature.recover(&message).map_err(|_| InferenceError::BadRequestSignature)?;
        if signer.address() != request.requester {
            return Err(InferenceError::BadRequestSignature);
        }
        let params = &self.meta.params.inference;
        let timestamp_ms = request.timestamp_ns / 1_000_000;
        let now = self.meta.time_ms;
        let (earliest, latest) = (
            now.saturating_sub(params.timestamp_expiration_ms),
            now.saturating_add(params.timestamp_advance_ms),
        );
        if timestamp_ms < earliest || timestamp_ms > latest {
            return Err(InferenceError::StaleTimestamp { timestamp_ms, earliest, latest });
        }
        if params.model(&request.model).is_none() {
            return Err(InferenceError::UnknownModel(request.model));
        }
        if request.max_tokens == 0 || request.max_tokens > params.max_tokens_cap {
            return Err(InferenceError::Tokens(format!(
                "max_tokens {} outside 1..={}",
                request.max_tokens, params.max_tokens_cap
            )));
        }
        let id = inference_id(&request.signature);
        let assigned = self.executor_for(&id);
        if assigned != Some(executor) && self.previous_executor_for(&id, height) != Some(executor) {
            return Err(InferenceError::WrongExecutor { named: executor, assigned });
        }
        Ok(id)
    }

    /// Read-only checks of a receipt from `sender` in the block at `height`.
    pub(crate) fn check_receipt(
        &self,
        sender: Address,
        receipt: &Receipt<'_>,
        height: u64,
    ) -> Result<Hash, InferenceError> {
        let max_prompt = self.meta.params.inference.max_prompt_tokens;
        match receipt {
            Receipt::Start { request, executor, prompt_tokens } => {
                if request.transfer_agent != sender {
                    return Err(InferenceError::WrongRole(
                        "only the transfer agent named in the request may start it",
                    ));
                }
                if *prompt_tokens > max_prompt {
                    return Err(InferenceError::Tokens(format!(
                        "prompt_tokens {prompt_tokens} above {max_prompt}"
                    )));
                }
                let id = self.check_request(request, *executor, height)?;
                match self.inferences.get(&id) {
                    Some(existing) if existing.transfer_agent.is_some() => Err(InferenceError::Duplicate(id)),
                    Some(existing) if !same_request(existing, request, *executor) => {
                        Err(InferenceError::Mismatch(id))
                    }
                    _ => Ok(id),
                }
            }
            Receipt::Finish { request, prompt_tokens, completion_tokens, .. } => {
                if !self.participants.contains_key(&request.transfer_agent) {
                    return Err(InferenceError::WrongRole("the request's transfer agent is not a host"));
                }
                if *completion_tokens > request.max_tokens || *prompt_tokens > max_prompt {
                    return Err(InferenceError::Tokens(format!(
                        "completion_tokens {completion_tokens} (max {}), prompt_tokens {prompt_tokens} (max {max_prompt})",
                        request.max_tokens
                    )));
                }
                let id = self.check_request(request, sender, height)?;
                match self.inferences.get(&id) {
                    Some(existing) if existing.status == InferenceStatus::Expired => {
                        Err(InferenceError::Expired(id))
                    }
                    Some(existing) if existing.response_hash.is_some() => Err(InferenceError::Duplicate(id)),
                    Some(existing) if !same_request(existing, request, sender) => {
                        Err(InferenceError::Mismatch(id))
                    }
                    _ => Ok(id),
                }
            }
        }
    }

    /// Applies a checked receipt; returns its event.
    pub(crate) fn execute_receipt(
        &mut self,
        sender: Address,
        receipt: &Receipt<'_>,
        id: Hash,
        height: u64,
    ) -> Result<Event, InferenceError> {
        match receipt {
            Receipt::Start { request, executor, prompt_tokens } => {
                if let Some(existing) = self.inferences.get(&id) {
                    // The Finish came first and already settled the payment: record the TA.
                    let status = existing.status;
                    self.inferences.update(&id, |i| i.transfer_agent = Some(sender));
                    return Ok(Event::new("inference_started")
                        .with("id", id)
                        .with("status", status_name(status)));
                }
                let price = self.price(&request.model)?;
                let escrow = tokens_cost(u64::from(*prompt_tokens) + u64::from(request.max_tokens), price)?;
                let balance = self.account(&request.requester).balance;
                let remaining = balance
                    .checked_sub(escrow)
                    .ok_or(InferenceError::CannotPay { balance, needed: escrow })?;
                self.accounts.upsert(request.requester, |a| a.balance = remaining);
                let deadline = self.meta.params.inference.deadline(height, request.max_tokens);
                self.inferences.insert(
                    id,
                    Inference {
                        requester: request.requester,
                        transfer_agent: Some(sender),
                        executor: *executor,
                        model: request.model,
                        prompt_hash: request.body_hash,
                        response_hash: None,
                        prompt_tokens: *prompt_tokens,
                        completion_tokens: 0,
                        max_tokens: request.max_tokens,
                        price_per_token: price,
                        escrow,
                        cost: Amount::ZERO,
                        status: InferenceStatus::Started,
                        first_seen_height: height,
                        deadline,
                        timestamp_ns: request.timestamp_ns,
                    },
                );
                self.inference_deadlines.insert((deadline, id), 0);
                self.schedule_prune(id, request.timestamp_ns);
                Ok(Event::new("inference_started")
                    .with("id", id)
                    .with("requester", request.requester)
                    .with("executor", executor)
                    .with("escrow", escrow.0)
                    .with("deadline", deadline))
            }
            Receipt::Finish { request, prompt_tokens, completion_tokens, response_hash } => {
                let tokens = u64::from(*prompt_tokens) + u64::from(*completion_tokens);
                let event = match self.inferences.get(&id).cloned() {
                    Some(started) => {
                        let cost = tokens_cost(tokens, started.price_per_token)?.min(started.escrow);
                        let refund = started.escrow.checked_sub(cost).ok_or(InferenceError::Overflow)?;
                        self.credit(request.requester, refund)?;
                        self.pay_executor(sender, cost)?;
                        self.inference_deadlines.remove(&(started.deadline, id));
                        self.inferences.update(&id, |i| {
                            i.prompt_tokens = *prompt_tokens;
                            i.completion_tokens = *completion_tokens;
                            i.response_hash = Some(*response_hash);
                            i.escrow = Amount::ZERO;
                            i.cost = cost;
                            i.status = InferenceStatus::Finished;
                        });
                        Event::new("inference_finished").with("refund", refund.0).with("cost", cost.0)
                    }
                    None => {
                        let price = self.price(&request.model)?;
                        let balance = self.account(&request.requester).balance;
                        let cost = tokens_cost(tokens, price)?.min(balance);
                        let remaining = balance.checked_sub(cost).ok_or(InferenceError::Overflow)?;
                        self.accounts.upsert(request.requester, |a| a.balance = remaining);
                        self.pay_executor(sender, cost)?;
                        self.inferences.insert(
                            id,
                            Inference {
                                requester: request.requester,
                                transfer_agent: None,
                                executor: sender,
                                model: request.model,
                                prompt_hash: request.body_hash,
                                response_hash: Some(*response_hash),
                                prompt_tokens: *prompt_tokens,
                                completion_tokens: *completion_tokens,
                                max_tokens: request.max_tokens,
                                price_per_token: price,
                                escrow: Amount::ZERO,
                                cost,
                                status: InferenceStatus::Finished,
                                first_seen_height: height,
                                deadline: height,
                                timestamp_ns: request.timestamp_ns,
                            },
                        );
                        self.schedule_prune(id, request.timestamp_ns);
                        Event::new("inference_finished").with("refund", 0).with("cost", cost.0)
                    }
                };
                Ok(event
                    .with("id", id)
                    .with("executor", sender)
                    .with("prompt_tokens", prompt_tokens)
                    .with("completion_tokens", completion_tokens))
            }
        }
    }

    fn price(&self, model: &Hash) -> Result<Amount, InferenceError> {
        self.meta
            .params
            .inference
            .model(model)
            .map(|m| m.price_per_token)
            .ok_or(InferenceError::UnknownModel(*model))
    }

    fn credit(&mut self, account: Address, amount: Amount) -> Result<(), InferenceError> {
        if amount.0 == 0 {
            return Ok(());
        }
        let balance = self.account(&account).balance.checked_add(amount).ok_or(InferenceError::Overflow)?;
        self.accounts.upsert(account, |a| a.balance = balance);
        Ok(())
    }

    fn pay_executor(&mut self, executor: Address, amount: Amount) -> Result<(), InferenceError> {
        let owed = self
            .participants
            .get(&executor)
            .map(|p| p.owed)
            .ok_or(InferenceError::WrongRole("the executor is not a host"))?
            .checked_add(amount)
            .ok_or(InferenceError::Overflow)?;
        self.participants.update(&executor, |p| {
            p.owed = owed;
            p.inferences += 1;
        });
        Ok(())
    }

    /// Records are kept until their request time is well outside the accepted window, so a replay of
    /// the same signed request always meets its record or a stale-timestamp refusal.
    fn schedule_prune(&mut self, id: Hash, timestamp_ns: u64) {
        let params = &self.meta.params.inference;
        let keep_ms = 2 * (params.timestamp_expiration_ms + params.timestamp_advance_ms);
        self.inference_prunes.insert((timestamp_ns / 1_000_000 + keep_ms, id), 0);
    }

    /// Block-level inference work at `height` (after its transactions): expiries and pruning.
    pub(crate) fn inference_end_block(&mut self, height: u64) -> Vec<Event> {
        let mut events = Vec::new();
        let due: Vec<(u64, Hash)> =
            self.inference_deadlines.range(..=(height, Hash([0xff; 32]))).map(|(k, _)| *k).collect();
        for key in due {
            self.inference_deadlines.remove(&key);
            let id = key.1;
            let Some(inference) = self.inferences.get(&id).cloned() else { continue };
            if inference.status != InferenceStatus::Started {
                continue;
            }
            // The escrow left the requester's balance, which held it: adding it back cannot overflow
            // unless the supply itself exceeds u128.
            if self.credit(inference.requester, inference.escrow).is_err() {
                continue;
            }
            self.participants.update(&inference.executor, |p| p.missed += 1);
            self.inferences.update(&id, |i| {
                i.status = InferenceStatus::Expired;
                i.escrow = Amount::ZERO;
            });
            events.push(
                Event::new("inference_expired")
                    .with("id", id)
                    .with("executor", inference.executor)
                    .with("refund", inference.escrow.0),
            );
        }
        let now = self.meta.time_ms;
        let old: Vec<(u64, Hash)> =
            self.inference_prunes.range(..(now, Hash([0; 32]))).map(|(k, _)| *k).collect();
        for key in old {
            self.inference_prunes.remove(&key);
            match self.inferences.get(&key.1).map(|i| i.status) {
                // A started inference still holds escrow: it leaves only after its deadline.
                Some(InferenceStatus::Started) => self.schedule_prune(key.1, now.saturating_mul(1_000_000)),
                Some(_) => self.inferences.remove(&key.1),
                None => {}
            }
        }
        events
    }

    /// Σ escrows held by started inferences (for supply accounting).
    pub fn total_escrow(&self) -> u128 {
        self.inferences.values().map(|i| i.escrow.0).sum()
    }
}

fn tokens_cost(tokens: u64, price: Amount) -> Result<Amount, InferenceError> {
    price.0.checked_mul(u128::from(tokens)).map(Amount).ok_or(InferenceError::Overflow)
}

fn same_request(existing: &Inference, request: &SignedRequest, executor: Address) -> bool {
    existing.requester == request.requester
        && existing.executor == executor
        && existing.model == request.model
        && existing.prompt_hash == request.body_hash
        && existing.max_tokens == request.max_tokens
        && existing.timestamp_ns == request.timestamp_ns
}

fn status_name(status: InferenceStatus) -> &'static str {
    match status {
        InferenceStatus::Started => "started",
        InferenceStatus::Finished => "finished",
        InferenceStatus::Expired => "expired",
    }
}

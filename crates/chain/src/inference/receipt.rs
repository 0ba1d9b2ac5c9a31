//! Checking and applying the two receipts of an inference (`docs/spec/inference.md` §4): the
//! transfer agent's Start and the executor's Finish, in either order.

use gonka_primitives::{Address, Amount, Hash, RecoverableSignature};

use super::draw::{executor_for, is_assigned};
use super::msg::{InferenceError, SignedRequest, forward_message, inference_id};
use super::state::{Inference, InferenceStatus};
use crate::bank::{BankError, Hold};
use crate::event::Event;
use crate::state::State;

/// A Start or a Finish, as the checks see them.
pub(super) enum Receipt<'a> {
    Start {
        request: &'a SignedRequest,
        executor: Address,
        prompt_tokens: u32,
    },
    Finish {
        request: &'a SignedRequest,
        ta_signature: &'a RecoverableSignature,
        counts: Counts,
        answer: Answer,
    },
}

/// The token counts a Finish charges for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Counts {
    pub(super) prompt_tokens: u32,
    /// Of `prompt_tokens`, those served from the executor's prefix cache.
    pub(super) cached_tokens: u32,
    pub(super) completion_tokens: u32,
}

impl Counts {
    /// Every token the answer took: what the model's load counts (`docs/spec/economy.md` §7).
    fn tokens(&self) -> u64 {
        u64::from(self.prompt_tokens) + u64::from(self.completion_tokens)
    }

    /// What these counts cost at `price` a token with cached prompt tokens at `cached_ppm` of it
    /// (`docs/spec/inference.md` §4.2): `(prompt − cached + completion) × price + ⌊cached × price ×
    /// cached_ppm / 10⁶⌋`. Exact integers, rounded down once, in the developer's favour.
    fn cost(&self, price: Amount, cached_ppm: u32) -> Result<Amount, InferenceError> {
        let cached = u128::from(self.cached_tokens.min(self.prompt_tokens));
        let full = u128::from(self.tokens()) - cached;
        let full_cost = price.0.checked_mul(full).ok_or(InferenceError::Overflow)?;
        let cached_cost = price
            .0
            .checked_mul(cached)
            .and_then(|c| c.checked_mul(u128::from(cached_ppm.min(super::params::FULL_PRICE_PPM))))
            .ok_or(InferenceError::Overflow)?
            / u128::from(super::params::FULL_PRICE_PPM);
        full_cost.checked_add(cached_cost).map(Amount).ok_or(InferenceError::Overflow)
    }
}

/// What a Finish commits the answer to, for validators (`docs/spec/validation.md` §1).
#[derive(Debug, Clone, Copy)]
pub(super) struct Answer {
    pub(super) response_hash: Hash,
    pub(super) seed: u64,
    pub(super) logprobs_hash: Hash,
}

/// Checks a request's signature (over its terms and this chain's id), time, model, size, the receipt's
/// prompt count against what the signed body length allows, and the executor; returns its id.
fn check_request(
    state: &State,
    request: &SignedRequest,
    executor: Address,
    prompt_tokens: u32,
    height: u64,
) -> Result<Hash, InferenceError> {
    if !request.verify(&state.meta.chain_id) {
        return Err(InferenceError::BadRequestSignature);
    }
    let params = &state.params().inference;
    let prompt_max = params.prompt_tokens_max(request.body_len);
    if prompt_tokens > prompt_max {
        return Err(InferenceError::Tokens(format!(
            "prompt_tokens {prompt_tokens} above {prompt_max} for a {}-byte body",
            request.body_len
        )));
    }
    params.check_request_time(state.meta.time_ms, request.timestamp_ns)?;
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
    // The request's first receipt proved the draw in its own block; the second only names the same
    // executor (`same_request`): power that changed in between — an epoch's new weights, a host made
    // INVALID — must not leave a delivered answer unpaid (docs/spec/inference.md §3).
    let proven = state.inference.record(&id).is_some_and(|r| r.executor == executor);
    if !proven && !is_assigned(state, &id, executor, height) {
        return Err(InferenceError::WrongExecutor { named: executor, assigned: executor_for(state, &id) });
    }
    Ok(id)
}

/// Read-only checks of a receipt from `sender` in the block at `height`; returns the inference id.
pub(super) fn check(
    state: &State,
    sender: Address,
    receipt: &Receipt<'_>,
    height: u64,
) -> Result<Hash, InferenceError> {
    let max_prompt = state.params().inference.max_prompt_tokens;
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
            let id = check_request(state, request, *executor, *prompt_tokens, height)?;
            match state.inference.record(&id) {
                Some(existing) if existing.transfer_agent.is_some() => Err(InferenceError::Duplicate(id)),
                Some(existing) if !same_request(existing, request, *executor) => {
                    Err(InferenceError::Mismatch(id))
                }
                Some(_) => Ok(id),
                None => {
                    // Start first escrows the worst case: a requester who cannot cover it is refused
                    // here, before the receipt takes block space.
                    let escrow = start_escrow(state, request, *prompt_tokens)?;
                    let balance = state.bank.balance(&request.requester);
                    if balance < escrow {
                        return Err(InferenceError::CannotPay { balance, needed: escrow });
                    }
                    Ok(id)
                }
            }
        }
        Receipt::Finish { request, ta_signature, counts, .. } => {
            let Counts { prompt_tokens, cached_tokens, completion_tokens } = counts;
            let Some(ta) = state.hosts.participant(&request.transfer_agent) else {
                return Err(InferenceError::WrongRole("the request's transfer agent is not a host"));
            };
            let message = forward_message(
                &state.meta.chain_id,
                &inference_id(&request.signature),
                &sender,
                request.max_tokens,
            );
            let vouched = ta_signature
                .recover(&message)
                .is_ok_and(|key| key == ta.account_key || key == ta.operational_key);
            if !vouched {
                return Err(InferenceError::BadTaSignature);
            }
            if *completion_tokens > request.max_tokens || *prompt_tokens > max_prompt {
                return Err(InferenceError::Tokens(format!(
                    "completion_tokens {completion_tokens} (max {}), prompt_tokens {prompt_tokens} (max {max_prompt})",
                    request.max_tokens
                )));
            }
            if cached_tokens > prompt_tokens {
                return Err(InferenceError::Tokens(format!(
                    "cached_tokens {cached_tokens} above prompt_tokens {prompt_tokens}"
                )));
            }
            let id = check_request(state, request, sender, *prompt_tokens, height)?;
            match state.inference.record(&id) {
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
pub(super) fn apply(
    state: &mut State,
    sender: Address,
    receipt: &Receipt<'_>,
    id: Hash,
    height: u64,
) -> Result<Event, InferenceError> {
    match receipt {
        Receipt::Start { request, executor, prompt_tokens } => {
            start(state, sender, request, *executor, *prompt_tokens, id, height)
        }
        Receipt::Finish { request, counts, answer, .. } => {
            let event = match state.inference.record(&id).cloned() {
                Some(started) => finish_started(state, request, &started, *counts, id)?,
                None => finish_first(state, sender, request, *counts, id, height)?,
            };
            record_answer(state, id, sender, *answer, height);
            Ok(event
                .with("id", id)
                .with("executor", sender)
                .with("prompt_tokens", counts.prompt_tokens)
                .with("cached_tokens", counts.cached_tokens)
                .with("completion_tokens", counts.completion_tokens))
        }
    }
}

/// After either Finish: the answer's commitments, its epoch, and the indexes that keep it for
/// validation (`docs/spec/validation.md` §5.4) and settle its fee once validation is over.
fn record_answer(state: &mut State, id: Hash, executor: Address, answer: Answer, height: u64) {
    let params = state.params();
    let epoch = params.epoch.effective_epoch_at(height);
    let settle_at = params.validation.settle_height(&params.epoch, height);
    let prune_at_ms = state.inference.record(&id).map_or(0, |r| r.prune_at_ms);
    state.inference.records.update(&id, |i| {
        i.response_hash = Some(answer.response_hash);
        i.seed = answer.seed;
        i.logprobs_hash = Some(answer.logprobs_hash);
        i.finished_height = height;
        i.epoch = epoch;
        i.settles_at = settle_at;
    });
    // Finished records are kept for their epoch's validations and claims, not by request time (a
    // Finish-first record was never in the time index).
    state.inference.prunes.remove(&(prune_at_ms, id));
    state.inference.finished.insert((height, id), 0);
    state.inference.settlements.insert((settle_at, id), 0);
    state.inference.host_stats.upsert(executor, |s| s.finished += 1);
    state.inference.count(epoch, executor, |s| s.finished += 1);
}

fn start(
    state: &mut State,
    sender: Address,
    request: &SignedRequest,
    executor: Address,
    prompt_tokens: u32,
    id: Hash,
    height: u64,
) -> Result<Event, InferenceError> {
    if let Some(existing) = state.inference.record(&id) {
        // The Finish came first and already settled the payment: record the TA.
        let status = existing.status;
        state.inference.records.update(&id, |i| i.transfer_agent = Some(sender));
        return Ok(Event::new("inference_started").with("id", id).with("status", status.name()));
    }
    let price = price(state, request)?;
    let escrow = tokens_cost(u64::from(prompt_tokens) + u64::from(request.max_tokens), price)?;
    state.bank.escrow(request.requester, Hold::Escrow(id), escrow).map_err(|e| match e {
        BankError::InsufficientFunds { balance, needed } => InferenceError::CannotPay { balance, needed },
        other => InferenceError::Bank(other),
    })?;
    let deadline = state.params().inference.deadline(height, request.max_tokens);
    state.inference.records.insert(
        id,
        Inference {
            requester: request.requester,
            transfer_agent: Some(sender),
            vouched_by: request.transfer_agent,
            executor,
            model: request.model,
            prompt_hash: request.body_hash,
            response_hash: None,
            prompt_tokens,
            cached_tokens: 0,
            completion_tokens: 0,
            max_tokens: request.max_tokens,
            price_per_token: price,
            cached_price_ppm: cached_price_ppm(state, request),
            cost: Amount::ZERO,
            status: InferenceStatus::Started,
            first_seen_height: height,
            deadline,
            timestamp_ns: request.timestamp_ns,
            seed: 0,
            logprobs_hash: None,
            finished_height: 0,
            epoch: 0,
            requester_paid: Amount::ZERO,
            fee_settled: false,
            settles_at: 0,
            prune_at_ms: 0,
        },
    );
    state.inference.deadlines.insert((deadline, id), 0);
    schedule_prune(state, id, request.timestamp_ns / 1_000_000);
    Ok(Event::new("inference_started")
        .with("id", id)
        .with("requester", request.requester)
        .with("executor", executor)
        .with("escrow", escrow.0)
        .with("deadline", deadline))
}

/// Finish after Start: `min(cost, escrow)` moves to the inference's fee hold until validation is over
/// (`docs/spec/validation.md` §5.3), the requester gets the rest back.
fn finish_started(
    state: &mut State,
    request: &SignedRequest,
    started: &Inference,
    counts: Counts,
    id: Hash,
) -> Result<Event, InferenceError> {
    let escrow = state.bank.held(&Hold::Escrow(id));
    let cost = counts.cost(started.price_per_token, started.cached_price_ppm)?.min(escrow);
    crate::pricing::record_usage(state, &request.model, counts.tokens());
    let refund = escrow.checked_sub(cost).ok_or(InferenceError::Overflow)?;
    state.bank.transfer_held(Hold::Escrow(id), Hold::Fee(id), cost)?;
    state.bank.release(Hold::Escrow(id), request.requester, refund)?;
    state.inference.deadlines.remove(&(started.deadline, id));
    state.inference.records.update(&id, |i| {
        i.prompt_tokens = counts.prompt_tokens;
        i.cached_tokens = counts.cached_tokens;
        i.completion_tokens = counts.completion_tokens;
        i.cost = cost;
        i.requester_paid = cost;
        i.status = InferenceStatus::Finished;
    });
    Ok(Event::new("inference_finished")
        .with("refund", refund.0)
        .with("cost", cost.0)
        .with("price", started.price_per_token.0))
}

/// What a Start of `request` would escrow now: `(prompt + max_tokens) × price`, or nothing when a
/// receipt of it is already recorded (a Start after the Finish moves no money).
pub(super) fn start_escrow(
    state: &State,
    request: &SignedRequest,
    prompt_tokens: u32,
) -> Result<Amount, InferenceError> {
    if state.inference.record(&inference_id(&request.signature)).is_some() {
        return Ok(Amount::ZERO);
    }
    tokens_cost(u64::from(prompt_tokens) + u64::from(request.max_tokens), price(state, request)?)
}

/// Finish first: the requester pays `min(cost, balance)` into the inference's fee hold and the TA that
/// vouched for the request (its forward signature was checked) pays the rest from its collateral, then
/// its unbonding collateral (`docs/spec/inference.md` §4.1). Executors keep what they serve for a TA
/// within their share of its collateral, so the rest is always there.
fn finish_first(
    state: &mut State,
    sender: Address,
    request: &SignedRequest,
    counts: Counts,
    id: Hash,
    height: u64,
) -> Result<Event, InferenceError> {
    let price = price(state, request)?;
    let cached_ppm = cached_price_ppm(state, request);
    let full = counts.cost(price, cached_ppm)?;
    crate::pricing::record_usage(state, &request.model, counts.tokens());
    let from_requester = full.min(state.bank.balance(&request.requester));
    state.bank.escrow(request.requester, Hold::Fee(id), from_requester)?;
    let shortfall = Amount(full.0 - from_requester.0);
    let from_ta = crate::collateral::charge_vouched(state, request.transfer_agent, Hold::Fee(id), shortfall)?;
    let cost = Amount(from_requester.0 + from_ta.0);
    state.inference.records.insert(
        id,
        Inference {
            requester: request.requester,
            transfer_agent: None,
            vouched_by: request.transfer_agent,
            executor: sender,
            model: request.model,
            prompt_hash: request.body_hash,
            response_hash: None,
            prompt_tokens: counts.prompt_tokens,
            cached_tokens: counts.cached_tokens,
            completion_tokens: counts.completion_tokens,
            max_tokens: request.max_tokens,
            price_per_token: price,
            cached_price_ppm: cached_ppm,
            cost,
            status: InferenceStatus::Finished,
            first_seen_height: height,
            deadline: height,
            timestamp_ns: request.timestamp_ns,
            seed: 0,
            logprobs_hash: None,
            finished_height: height,
            epoch: 0,
            requester_paid: from_requester,
            fee_settled: false,
            settles_at: 0,
            prune_at_ms: 0,
        },
    );
    Ok(Event::new("inference_finished")
        .with("refund", 0)
        .with("cost", cost.0)
        .with("price", price.0)
        .with("requester_paid", from_requester.0)
        .with("transfer_agent_paid", from_ta.0))
}

/// The price `request` locks now: the model's current price, never above what its developer signed
/// (`docs/spec/economy.md` §7).
fn price(state: &State, request: &SignedRequest) -> Result<Amount, InferenceError> {
    crate::pricing::locked_price(state, &request.model, request.max_price_per_token)
        .ok_or(InferenceError::UnknownModel(request.model))
}

/// The share of the price a cached prompt token of `request`'s model costs now, in ppm.
fn cached_price_ppm(state: &State, request: &SignedRequest) -> u32 {
    state
        .params()
        .inference
        .model(&request.model)
        .map_or(super::params::FULL_PRICE_PPM, |m| m.cached_price_ppm)
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

/// Records are kept until their request time is well outside the accepted window, so a replay of
/// the same signed request always meets its record or a stale-timestamp refusal.
pub(super) fn schedule_prune(state: &mut State, id: Hash, from_ms: u64) {
    let at = from_ms.saturating_add(state.params().inference.record_retention_ms());
    state.inference.prunes.insert((at, id), 0);
    state.inference.records.update(&id, |r| r.prune_at_ms = at);
}

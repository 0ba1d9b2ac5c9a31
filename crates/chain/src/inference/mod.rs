//! Paid inference on chain (reference §4.6–§4.8, DESIGN.md §4.1–§4.2; `docs/spec/inference.md`).
//!
//! A developer signs the request's terms — chain id, SHA-256 and length of the body, timestamp, transfer
//! agent, model and `max_tokens` ([`RequestTerms`]) — so every receipt's cost is bounded by what it
//! signed; the inference id is the SHA-256 of that signature. The transfer agent (TA) records a `StartInference`, the executor a
//! `FinishInference`; either may come first, and both carry the signed request so each verifies on its
//! own. Payloads stay off chain: only hashes and token counts are recorded.
//!
//! Money moves only through `bank` (all integer ngonka):
//! - Start first: escrow `(prompt + max_tokens) × price` moves from the requester into the hold
//!   `Escrow(id)`.
//! - Finish after Start: cost `(prompt + completion) × price`; `min(cost, escrow)` moves to the
//!   inference's hold `Fee(id)` until its validation is over (`docs/spec/validation.md` §5.3), the rest
//!   back to the requester.
//! - Finish first: the requester pays `min(cost, balance)` straight into `Fee(id)` and the TA that
//!   vouched for the request (its forward signature, carried by the Finish) pays the rest from its
//!   collateral ([`crate::collateral::charge_vouched`]); a later Start only records the TA.
//! - A Start not finished by its deadline (`start + expiry_base_blocks + ⌈max_tokens /
//!   expiry_tokens_per_block⌉`) expires: full refund, the executor's missed count +1; a later Finish
//!   is refused.
//!
//! The executor is a deterministic, weight-proportional function of the inference id and the current
//! voting power ([`executor_for`]); a Start or Finish naming anyone else is refused.

mod draw;
mod expiry;
mod msg;
mod params;
mod receipt;
mod state;

pub use draw::{draw_executor, executor_for, is_assigned, previous_executor_for};
pub use msg::{
    FORWARD_DOMAIN, InferenceError, InferenceMsg, REQUEST_DOMAIN, RequestTerms, SignedRequest,
    forward_message, inference_id, push_chain_id, request_message,
};
pub use params::{FULL_PRICE_PPM, InferenceParams, ModelPrice};
pub use state::{Developer, EpochStats, HostStats, Inference, InferenceStatus, Inferences};

use receipt::{Answer, Counts, Receipt};

use gonka_primitives::{Address, Amount, Hash};

use crate::bank::Hold;
use crate::event::Event;
use crate::genesis::Genesis;
use crate::module::{BlockContext, InvariantViolation, Module, TxContext};
use crate::state::{GenesisError, State};

fn receipt_of(msg: &InferenceMsg) -> Option<Receipt<'_>> {
    match msg {
        InferenceMsg::RegisterDeveloper => None,
        InferenceMsg::Start { request, executor, prompt_tokens } => {
            Some(Receipt::Start { request, executor: *executor, prompt_tokens: *prompt_tokens })
        }
        InferenceMsg::Finish {
            request,
            ta_signature,
            prompt_tokens,
            cached_tokens,
            completion_tokens,
            response_hash,
            seed,
            logprobs_hash,
        } => Some(Receipt::Finish {
            request,
            ta_signature,
            counts: Counts {
                prompt_tokens: *prompt_tokens,
                cached_tokens: *cached_tokens,
                completion_tokens: *completion_tokens,
            },
            answer: Answer { response_hash: *response_hash, seed: *seed, logprobs_hash: *logprobs_hash },
        }),
    }
}

impl Module for Inferences {
    const ID: u8 = 5;
    const NAME: &'static str = "inference";
    type Msg = InferenceMsg;
    type Error = InferenceError;

    fn init_genesis(state: &mut State, genesis: &Genesis) -> Result<(), GenesisError> {
        for address in &genesis.developers {
            state.inference.developers.insert(*address, Developer { registered_height: 0 });
        }
        Ok(())
    }

    fn check(state: &State, tx: &TxContext, msg: &InferenceMsg) -> Result<(), InferenceError> {
        let Some(receipt) = receipt_of(msg) else { return Ok(()) };
        if !state.hosts.is_host(&tx.sender) {
            return Err(InferenceError::NotAHost(tx.sender));
        }
        receipt::check(state, tx.sender, &receipt, tx.height).map(|_| ())
    }

    fn apply(state: &mut State, tx: &TxContext, msg: &InferenceMsg) -> Result<Vec<Event>, InferenceError> {
        let Some(receipt) = receipt_of(msg) else {
            if state.inference.developers.contains_key(&tx.sender) {
                return Ok(Vec::new());
            }
            state.inference.developers.insert(tx.sender, Developer { registered_height: tx.height });
            return Ok(vec![Event::new("developer_registered").with("address", tx.sender)]);
        };
        // `check` passed on this same state just before (the Module contract).
        let id = match &receipt {
            Receipt::Start { request, .. } | Receipt::Finish { request, .. } => {
                inference_id(&request.signature)
            }
        };
        Ok(vec![receipt::apply(state, tx.sender, &receipt, id, tx.height)?])
    }

    /// A Start that would escrow debits the requester (the mempool reserves it). A Finish-first
    /// charge is not reserved: what the requester cannot pay, the vouching TA's collateral does.
    fn debits(state: &State, _tx: &TxContext, msg: &InferenceMsg) -> Vec<(Address, Amount)> {
        match msg {
            InferenceMsg::Start { request, prompt_tokens, .. } => {
                receipt::start_escrow(state, request, *prompt_tokens).map_or(Vec::new(), |escrow| {
                    if escrow == Amount::ZERO { Vec::new() } else { vec![(request.requester, escrow)] }
                })
            }
            _ => Vec::new(),
        }
    }

    fn end_block(state: &mut State, block: &BlockContext) -> Result<Vec<Event>, InvariantViolation> {
        expiry::end_block(state, block)
    }

    fn check_invariants(state: &State) -> Result<(), InvariantViolation> {
        let broken = |name, detail: String| Err(InvariantViolation::new(name, detail));
        let inference = &state.inference;
        let settling: std::collections::BTreeSet<Hash> =
            inference.settlements.keys().map(|(_, id)| *id).collect();
        if settling.len() != inference.settlements.len() {
            return broken("fees_settle_once", "an inference is scheduled to settle twice".into());
        }
        for (id, record) in inference.records.iter() {
            let indexed = inference.deadlines.contains_key(&(record.deadline, *id));
            if (record.status == InferenceStatus::Started) != indexed {
                return broken("started_inferences_have_deadlines", format!("{id} is {:?}", record.status));
            }
            if record.status != InferenceStatus::Started && state.bank.held(&Hold::Escrow(*id)).0 > 0 {
                return broken(
                    "escrow_matches_record",
                    format!("{id} is {:?} but holds escrow", record.status),
                );
            }
            let pending = record.status.is_finished() && !record.fee_settled;
            let fee = state.bank.held(&Hold::Fee(*id));
            let scheduled = inference.settlements.contains_key(&(record.settles_at, *id));
            if fee != if pending { record.cost } else { Amount::ZERO }
                || pending != scheduled
                || pending != settling.contains(id)
            {
                return broken(
                    "fee_matches_record",
                    format!(
                        "{id} is {:?} (settled {}) with fee hold {fee}",
                        record.status, record.fee_settled
                    ),
                );
            }
            let kept = inference.finished.contains_key(&(record.finished_height, *id));
            let timed = inference.prunes.contains_key(&(record.prune_at_ms, *id));
            if kept == timed {
                return broken(
                    "every_record_is_pruned_once",
                    format!("{id}: in the finished index {kept}, in the prune index at its time {timed}"),
                );
            }
            if record.status.is_finished() && record.requester_paid > record.cost {
                return broken("fee_matches_record", format!("{id} paid more than it cost"));
            }
            if pending && !kept {
                return broken("fee_matches_record", format!("{id} settles but is not kept as finished"));
            }
        }
        for (deadline, id) in inference.deadlines.keys() {
            if inference.records.get(id).is_none_or(|r| r.deadline != *deadline) {
                return broken(
                    "started_inferences_have_deadlines",
                    format!("deadline entry of {id} has no record"),
                );
            }
        }
        // Every record leaves once: through the time-ordered prune index or, while its epoch's
        // validation runs, through the finished index.
        let mut kept: Vec<_> = inference
            .prunes
            .keys()
            .map(|(_, id)| *id)
            .chain(inference.finished.keys().map(|(_, id)| *id))
            .collect();
        kept.sort();
        let before = kept.len();
        kept.dedup();
        if before != kept.len() || kept.len() != inference.records.len() {
            return broken(
                "every_record_is_pruned_once",
                format!(
                    "{} records, {} prune and {} finished entries",
                    inference.records.len(),
                    inference.prunes.len(),
                    inference.finished.len()
                ),
            );
        }
        for (hold, _) in state.bank.holds().iter() {
            match hold {
                Hold::Escrow(id)
                    if inference.records.get(id).is_none_or(|r| r.status != InferenceStatus::Started) =>
                {
                    return broken(
                        "escrow_matches_record",
                        format!("escrow of {id} without a started record"),
                    );
                }
                Hold::Fee(id) if inference.records.get(id).is_none() => {
                    return broken("fee_matches_record", format!("fee of {id} without a record"));
                }
                Hold::Owed(_, host) if !state.hosts.is_host(host) => {
                    return broken("fees_owed_to_hosts", format!("{host} is owed fees but is not a host"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Ends the epoch retention of the finished inference `id` (`docs/spec/validation.md` §5.4): it leaves
/// now if its request time is also past the replay window, else it waits in the time-ordered index.
pub(crate) fn retire(state: &mut State, id: Hash, now_ms: u64) {
    let Some(record) = state.inference.record(&id).cloned() else { return };
    state.inference.finished.remove(&(record.finished_height, id));
    let until_ms =
        (record.timestamp_ns / 1_000_000).saturating_add(state.params().inference.record_retention_ms());
    if until_ms < now_ms {
        state.inference.records.remove(&id);
    } else {
        state.inference.prunes.insert((until_ms, id), 0);
        state.inference.records.update(&id, |r| r.prune_at_ms = until_ms);
    }
}

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
//!   executor's hold `Owed(executor)`, the rest back to the requester.
//! - Finish first: the requester pays `min(cost, balance)` straight into `Owed(executor)` and the TA that
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
pub use params::{InferenceParams, ModelPrice};
pub use state::{Developer, HostStats, Inference, InferenceStatus, Inferences};

use receipt::Receipt;

use gonka_primitives::{Address, Amount};

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
        InferenceMsg::Finish { request, ta_signature, prompt_tokens, completion_tokens, response_hash } => {
            Some(Receipt::Finish {
                request,
                ta_signature,
                prompt_tokens: *prompt_tokens,
                completion_tokens: *completion_tokens,
                response_hash: *response_hash,
            })
        }
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
        }
        for (deadline, id) in inference.deadlines.keys() {
            if inference.records.get(id).is_none_or(|r| r.deadline != *deadline) {
                return broken(
                    "started_inferences_have_deadlines",
                    format!("deadline entry of {id} has no record"),
                );
            }
        }
        let mut pruned: Vec<_> = inference.prunes.keys().map(|(_, id)| *id).collect();
        pruned.sort();
        let before = pruned.len();
        pruned.dedup();
        if before != pruned.len() || pruned.len() != inference.records.len() {
            return broken(
                "every_record_is_pruned_once",
                format!("{} records, {before} prune entries", inference.records.len()),
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
                Hold::Owed(host) if !state.hosts.is_host(host) => {
                    return broken("fees_owed_to_hosts", format!("{host} is owed fees but is not a host"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

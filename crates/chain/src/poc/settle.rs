//! PoC's block-level transitions: opening a stage at `S` and settling weights at the end of
//! validation (reference §3.9–§3.10, `docs/spec/poc.md` §5).

use gonka_primitives::{Address, Hash};

use super::state::{ClaimKey, NonceKey, PocStage, VoteKey};
use crate::event::Event;
use crate::module::BlockContext;
use crate::state::State;

/// A host's claim and verdicts at the end of validation, and what the chain decided.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    participant: Address,
    nonce_count: u64,
    valid_weight: u128,
    accepted: bool,
}

/// Opens a stage at its start height and settles its weights at the end of its validation.
pub(super) fn end_block(state: &mut State, block: &BlockContext) -> Vec<Event> {
    let epoch = state.params().epoch;
    let index = epoch.poc_epoch_at(block.height);
    let Some(stages) = epoch.stages(index) else { return Vec::new() };
    if block.height == stages.poc_start {
        open_stage(state, index, block.height, block.block_hash)
    } else if block.height == stages.end_of_validation {
        settle_weights(state, stages.poc_start)
    } else {
        Vec::new()
    }
}

fn open_stage(state: &mut State, epoch: u64, height: u64, block_hash: Hash) -> Vec<Event> {
    // Keep one stage of history for audits; older claims, nonces and votes go.
    let keep_from = state.poc.stage().map_or(0, |s| s.start_height);
    let zero = Address([0; 20]);
    let poc = &mut state.poc;
    poc.claims.remove_range(..ClaimKey { stage: keep_from, participant: zero });
    poc.nonces.remove_range(..NonceKey { stage: keep_from, participant: zero, nonce: 0 });
    poc.votes.remove_range(..VoteKey { stage: keep_from, participant: zero, validator: zero });
    poc.stage.set(PocStage { epoch, start_height: height, block_hash });
    vec![
        Event::new("poc_stage_started")
            .with("epoch", epoch)
            .with("height", height)
            .with("block_hash", block_hash),
    ]
}

/// Reference §3.9 with de-duplicated nonces; see the module docs.
fn verdicts(state: &State, stage: u64) -> Vec<Verdict> {
    let current: Vec<(Address, u64)> = state.hosts.powers().collect();
    let total: u128 = current.iter().map(|(_, w)| u128::from(*w)).sum();
    state
        .poc
        .stage_claims(stage)
        .filter(|(key, _)| state.hosts.is_host(&key.participant))
        .map(|(key, claim)| {
            let valid_weight: u128 = current
                .iter()
                .filter(|(validator, _)| {
                    state.poc.vote(stage, key.participant, *validator).is_some_and(|v| !v.fraud)
                })
                .map(|(_, w)| u128::from(*w))
                .sum();
            // Bootstrap: with no weight anywhere there is nobody to ask, so claims stand.
            let majority = total == 0 || 2 * valid_weight > total;
            Verdict {
                participant: key.participant,
                // Collateral withdrawn after the batches landed pays for fewer nonces (§11).
                nonce_count: claim.nonce_count.min(super::nonce_allowance(state, &key.participant)),
                valid_weight,
                // Also re-checked here: the entry collateral must still be held at settlement. A host
                // found INVALID by answer validation earns no weight (`docs/spec/validation.md` §6).
                accepted: majority
                    && super::eligible(state, stage, &key.participant).is_ok()
                    && !state.validation.is_invalid(&key.participant),
            }
        })
        .collect()
}

fn settle_weights(state: &mut State, stage: u64) -> Vec<Event> {
    let verdicts = verdicts(state, stage);
    let mut events: Vec<Event> = verdicts
        .iter()
        .map(|v| {
            Event::new("poc_verdict")
                .with("participant", v.participant)
                .with("nonces", v.nonce_count)
                .with("valid_weight", v.valid_weight)
                .with("accepted", v.accepted)
        })
        .collect();
    let accepted: Vec<(Address, u64)> =
        verdicts.iter().filter(|v| v.accepted).map(|v| (v.participant, v.nonce_count)).collect();
    // How much of today's power the accepted hosts hold (`docs/spec/poc.md` §5.1).
    let total = state.hosts.total_power();
    let confirming: u128 = accepted.iter().map(|(a, _)| u128::from(power_of(state, a))).sum();
    if accepted.is_empty() || (total > 0 && 2 * confirming <= total) {
        // Nobody proved compute, or the hosts that did hold no more than half of today's power (the
        // rest were censored, cut off or failed): one window must not hand over the set, and an
        // empty set would halt the chain for good. The current set stays.
        events.push(
            Event::new("poc_weights_kept")
                .with("stage", stage)
                .with("confirming_power", confirming)
                .with("total_power", total),
        );
        return events;
    }
    // The ceiling, then collateral (`docs/spec/economy.md` §5.1, reference §3.10: collateral before
    // capping). The weight counts for the epoch whose PoC this is.
    let epoch = state.poc.stage().map_or(0, |s| s.epoch);
    let bounded: Vec<(Address, u64)> = accepted
        .iter()
        .map(|(address, weight)| {
            let ceiling = (*weight).min(power_ceiling(state, address, total));
            (*address, crate::collateral::backed_weight(state, address, ceiling, epoch))
        })
        .filter(|(_, power)| *power > 0)
        .collect();
    let capped = match gonka_poc::cap_power(&bounded, state.params().poc.max_individual_power) {
        Ok(capped) => capped,
        Err(error) => {
            events.push(Event::new("poc_weights_kept").with("stage", stage).with("error", error));
            return events;
        }
    };
    let addresses: Vec<Address> = state.hosts.participants().keys().copied().collect();
    for address in addresses {
        let poc_weight = accepted.iter().find(|(a, _)| *a == address).map_or(0, |(_, w)| *w);
        let power = capped.iter().find(|(a, _)| *a == address).map_or(0, |(_, w)| *w);
        let ceiling = power_ceiling(state, &address, total);
        state.hosts.settle_poc_weight(&address, poc_weight, power);
        events.push(
            Event::new("poc_weight")
                .with("participant", address)
                .with("weight", poc_weight)
                .with("ceiling", ceiling)
                .with("power", power),
        );
    }
    events
}

fn power_of(state: &State, address: &Address) -> u64 {
    state.hosts.participant(address).map_or(0, |p| p.weight)
}

/// The most power a host may be settled now (`docs/spec/poc.md` §5.1): its weight confirmed by the
/// previous settled stage, or its power today if larger (genesis power counts as confirmed). A host
/// new to the set gets none for its first epoch; a host whose compute jumped gets the jump one epoch
/// later, once a second stage has confirmed it. At bootstrap (no power anywhere) there is no bound.
fn power_ceiling(state: &State, address: &Address, total_power: u128) -> u64 {
    if total_power == 0 {
        return u64::MAX;
    }
    state.hosts.participant(address).map_or(0, |p| p.poc_weight.max(p.weight))
}

//! Inference validation on chain (`docs/spec/validation.md`; reference §5, §7.1–§7.2, DESIGN.md §4.8).
//!
//! Each epoch, when it becomes effective, the module fixes its roster: every host's power, the
//! validation (VRF) key it committed with its PoC seed, and its reputation, plus the traffic of the
//! epoch before. Who may validate which answer is a function of that roster and the host's key alone
//! ([`check_selection`]): selected hosts re-score the answer off chain and submit a verdict with their
//! VRF proof. A pass validates the answer; a failure opens a vote of the hosts with power, weighted by
//! power, with a deadline. An invalidated answer is refunded in full; fees otherwise settle once
//! validation is over and the answer's epoch has ended, shared between the executor and its passing
//! validators. Invalidations and overturned verdicts are evidence against a host; enough of it makes the
//! host INVALID: no power, no draws, no fees for the epoch.
//!
//! Finished inferences are kept until the epoch after next begins, so a host's claim for an epoch can be
//! checked against every selection its revealed seed implies ([`selected_inferences`]).

mod msg;
mod outcome;
mod params;
mod select;
mod state;

pub use msg::{Failure, ValidationError, ValidationMsg, Verdict};
pub use outcome::OPEN_REFUSALS_MAX;
pub use params::{PPM, ValidationParams, epoch_end, epoch_start};
pub use select::{
    SELECTION_CONTEXT, check_selection, selected_inferences, selection_message, selection_ppm, selects,
};
pub use state::{Dispute, EpochRoster, HostStatus, Member, Standing, Validation};

use gonka_primitives::{Address, Hash};

use crate::event::Event;
use crate::genesis::Genesis;
use crate::module::{BlockContext, InvariantViolation, Module, TxContext};
use crate::state::{GenesisError, State};

/// Epochs of per-host counts kept (reputation reads the last one; views and the economy a few more).
const EPOCH_STATS_KEPT: u64 = 64;

impl Module for Validation {
    const ID: u8 = 8;
    const NAME: &'static str = "validation";
    type Msg = ValidationMsg;
    type Error = ValidationError;

    /// Epoch 0's roster: the genesis hosts, their power and the validation keys genesis names.
    fn init_genesis(state: &mut State, genesis: &Genesis) -> Result<(), GenesisError> {
        let mut total = 0u128;
        for p in genesis.participants.iter().filter(|p| p.weight > 0) {
            if let Some(key) = p.validation_key
                && gonka_primitives::VrfPublicKey::from_hex(&key.to_string()).is_err()
            {
                return Err(GenesisError::Invalid(format!(
                    "participant {}: invalid validation key",
                    p.address
                )));
            }
            state
                .validation
                .members
                .insert((0, p.address), Member { power: p.weight, key: p.validation_key, reputation: 0 });
            total += u128::from(p.weight);
        }
        state.validation.rosters.insert(0, EpochRoster { total_power: total, traffic: 0 });
        Ok(())
    }

    fn check(state: &State, tx: &TxContext, msg: &ValidationMsg) -> Result<(), ValidationError> {
        match msg {
            ValidationMsg::Validate { inference, proof, verdict } => {
                outcome::check_verdict(state, tx, inference, proof, verdict)
            }
            ValidationMsg::Vote { inference, .. } => outcome::check_vote(state, tx, inference),
        }
    }

    fn apply(state: &mut State, tx: &TxContext, msg: &ValidationMsg) -> Result<Vec<Event>, ValidationError> {
        match msg {
            ValidationMsg::Validate { inference, verdict, .. } => {
                outcome::apply_verdict(state, tx, *inference, *verdict)
            }
            ValidationMsg::Vote { inference, valid } => {
                outcome::cast(state, *inference, tx.sender, *valid, tx.height)
            }
        }
    }

    /// At an epoch's start: reputations, statuses, the roster and retiring old records; then votes whose
    /// deadline passed; then fees due to settle.
    fn end_block(state: &mut State, block: &BlockContext) -> Result<Vec<Event>, InvariantViolation> {
        let mut events = Vec::new();
        let epoch = state.params().epoch;
        let index = epoch.poc_epoch_at(block.height);
        if epoch.stages(index).is_some_and(|s| s.set_new_validators == block.height) {
            events.extend(begin_epoch(state, index, block));
        }
        let closing: Vec<Hash> = state
            .validation
            .dispute_deadlines
            .range(..=(block.height, Hash([0xff; 32])))
            .map(|((_, id), _)| *id)
            .collect();
        for id in closing {
            events.extend(outcome::close_vote(state, id, block.height).map_err(|e| {
                InvariantViolation::new("fee_matches_record", format!("closing the vote over {id}: {e}"))
            })?);
        }
        let due: Vec<(u64, Hash)> = state
            .inference
            .settlements
            .range(..=(block.height, Hash([0xff; 32])))
            .map(|(key, _)| *key)
            .collect();
        for key in due {
            state.inference.settlements.remove(&key);
            events.extend(outcome::settle(state, key.1, block.height)?);
        }
        Ok(events)
    }

    fn check_invariants(state: &State) -> Result<(), InvariantViolation> {
        let broken = |name, detail: String| Err(InvariantViolation::new(name, detail));
        let v = &state.validation;
        for (id, dispute) in v.disputes.iter() {
            let open = dispute.outcome.is_none();
            let indexed = v.dispute_deadlines.contains_key(&(dispute.deadline, *id));
            let voting =
                state.inference.record(id).is_some_and(|r| r.status == crate::InferenceStatus::Voting);
            if open != indexed || open != voting {
                return broken(
                    "disputes_match_records",
                    format!("dispute over {id}: open {open}, voting {voting}"),
                );
            }
            if dispute.valid_power + dispute.invalid_power > dispute.eligible_power {
                return broken(
                    "votes_within_power",
                    format!("dispute over {id} counts more power than exists"),
                );
            }
        }
        for (deadline, id) in v.dispute_deadlines.keys() {
            if v.disputes.get(id).is_none_or(|d| d.deadline != *deadline) {
                return broken(
                    "disputes_match_records",
                    format!("deadline entry of {id} without its dispute"),
                );
            }
        }
        for (id, _) in v.verdicts.keys() {
            if state.inference.record(id).is_none() {
                return broken("verdicts_have_records", format!("verdict on {id} without a record"));
            }
        }
        for (address, standing) in v.standings.iter() {
            if standing.status == HostStatus::Invalid
                && state.hosts.participant(address).is_some_and(|p| p.weight > 0)
            {
                return broken("invalid_hosts_have_no_power", format!("{address} is INVALID with power"));
            }
        }
        Ok(())
    }
}

/// Whether `host` counts as INVALID for `epoch`'s money: found INVALID in it, since, or in the epoch
/// before it — INVALID lasts through the epoch after the one it was found in, and an answer drawn to it
/// just before it was found can finish in that next epoch (`docs/spec/validation.md` §6).
pub fn invalid_for_epoch(state: &State, host: &Address, epoch: u64) -> bool {
    state.validation.standing(host).invalid_epoch.is_some_and(|found| found.saturating_add(1) >= epoch)
}

/// Epoch `index` becomes effective at this block (after the hosts module applied its weights).
fn begin_epoch(state: &mut State, index: u64, block: &BlockContext) -> Vec<Event> {
    let previous = index.saturating_sub(1);
    update_reputations(state, previous);
    let mut events = Vec::new();
    // INVALID lasts through the epoch after the one it was found in; the host has no power then anyway
    // (its PoC earned none), and comes back through PoC like a new host.
    let reset: Vec<Address> = state
        .validation
        .standings
        .iter()
        .filter(|(_, s)| s.status == HostStatus::Invalid && s.invalid_epoch.is_some_and(|e| e < previous))
        .map(|(a, _)| *a)
        .collect();
    for host in reset {
        state.validation.standings.update(&host, |s| {
            s.status = HostStatus::Active;
            s.evidence_milli = 0;
            s.consecutive_invalidations = 0;
        });
        events.push(Event::new("host_status").with("host", host).with("status", "active"));
    }
    let roster = snapshot_roster(state, index, previous);
    events.push(
        Event::new("validation_roster")
            .with("epoch", index)
            .with("members", state.validation.members_of(index).count())
            .with("total_power", roster.total_power)
            .with("traffic", roster.traffic),
    );
    retire(state, index, block.time_ms);
    events
}

/// Reputation (reference §7.1, with invalidations resetting it): a host in `epoch`'s roster earns one
/// epoch of credit if it was clean — none of its answers invalidated, none of its verdicts overturned,
/// not found INVALID — less a penalty for missing more than the cutoff share of its inferences; an
/// unclean epoch loses all credit.
fn update_reputations(state: &mut State, epoch: u64) {
    let params = state.params().validation;
    let cap = params.epochs_to_max_reputation.saturating_mul(PPM);
    let members: Vec<Address> = state.validation.members_of(epoch).map(|(a, _)| a).collect();
    for host in members {
        let stats = state.inference.epoch_stats(epoch, &host);
        let standing = state.validation.standing(&host);
        let clean = stats.invalidated == 0 && stats.overturned == 0 && standing.invalid_epoch != Some(epoch);
        let assigned = stats.finished + stats.missed;
        let missed_ppm = (stats.missed * PPM).checked_div(assigned).unwrap_or(0);
        let penalty =
            if missed_ppm > params.miss_cutoff_ppm { missed_ppm * params.miss_penalty_ppm / PPM } else { 0 };
        state.validation.standings.upsert(host, |s| {
            s.reputation_credit_ppm =
                if clean { (s.reputation_credit_ppm + PPM.saturating_sub(penalty)).min(cap) } else { 0 };
        });
    }
}

/// A host's reputation (0..=100) from its credit.
pub fn reputation(params: &ValidationParams, standing: &Standing) -> u8 {
    let cap = params.epochs_to_max_reputation.saturating_mul(PPM).max(1);
    u8::try_from(standing.reputation_credit_ppm.min(cap) * 100 / cap).unwrap_or(100)
}

/// Fixes `index`'s roster from the power in effect now, the keys committed in its PoC stage and the
/// reputations just updated; the traffic basis is what `previous` finished.
fn snapshot_roster(state: &mut State, index: u64, previous: u64) -> EpochRoster {
    let params = state.params();
    let stage_start = params.epoch.poc_start(index).unwrap_or(0);
    let members: Vec<(Address, Member)> = state
        .hosts
        .powers()
        .map(|(address, power)| {
            let key = state.poc.claim(stage_start, address).and_then(|c| c.seed_commitment);
            let reputation = reputation(&params.validation, &state.validation.standing(&address));
            (address, Member { power, key, reputation })
        })
        .collect();
    let total_power: u128 = members.iter().map(|(_, m)| u128::from(m.power)).sum();
    let traffic: u64 = state
        .inference
        .epoch_stats
        .range((previous, Address([0; 20]))..=(previous, Address([0xff; 20])))
        .map(|(_, s)| s.finished)
        .sum();
    for (address, member) in members {
        state.validation.members.insert((index, address), member);
    }
    let roster = EpochRoster { total_power, traffic };
    state.validation.rosters.insert(index, roster);
    roster
}

/// Records of epochs before `index − 1` leave, with their verdicts, votes and disputes: their
/// validations, votes and fee settlements are over (the windows fit in an epoch) and their claims were
/// made during epoch `index − 1`. Rosters go with them; per-host counts are kept longer.
fn retire(state: &mut State, index: u64, now_ms: u64) {
    let Some(keep_from) = index.checked_sub(1) else { return };
    let params = state.params();
    let first_kept_height = epoch_start(&params.epoch, keep_from);
    let old: Vec<Hash> = state.inference.finished_between(0..first_kept_height).map(|(_, id)| id).collect();
    let v = &mut state.validation;
    for id in &old {
        v.verdicts.remove_range((*id, Address([0; 20]))..=(*id, Address([0xff; 20])));
        v.votes.remove_range((*id, Address([0; 20]))..=(*id, Address([0xff; 20])));
        v.disputes.remove(id);
    }
    for id in old {
        crate::inference::retire(state, id, now_ms);
    }
    let v = &mut state.validation;
    v.rosters.remove_range(..keep_from);
    v.members.remove_range(..(keep_from, Address([0; 20])));
    if let Some(stats_from) = index.checked_sub(EPOCH_STATS_KEPT) {
        state.inference.epoch_stats.remove_range(..(stats_from, Address([0; 20])));
    }
}

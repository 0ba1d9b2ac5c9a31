//! What verdicts and votes do (`docs/spec/validation.md` §5; reference §5.5, §7.2): a pass validates an
//! answer, a failure opens a vote weighted by power, an invalidated answer is refunded to whoever paid
//! for it, fees settle to the executor and its passing validators once validation is over, and the
//! evidence against a host makes it INVALID.

use gonka_primitives::{Address, Amount, Hash};

use super::msg::{Failure, ValidationError, Verdict};
use super::select::check_selection;
use super::state::{Dispute, HostStatus};
use crate::bank::{BankError, Hold};
use crate::event::Event;
use crate::inference::{Inference, InferenceStatus};
use crate::module::{InvariantViolation, TxContext};
use crate::state::State;

/// Read-only checks of a verdict from `tx.sender` on inference `id`.
pub(super) fn check_verdict(
    state: &State,
    tx: &TxContext,
    id: &Hash,
    proof: &gonka_primitives::VrfProof,
    verdict: &Verdict,
) -> Result<(), ValidationError> {
    let sender = tx.sender;
    if !state.hosts.is_host(&sender) {
        return Err(ValidationError::NotAHost(sender));
    }
    if verdict.passed() && verdict.replay_mismatches > 0 {
        return Err(ValidationError::Inconsistent);
    }
    if state.validation.is_invalid(&sender) {
        return Err(ValidationError::Invalid(sender));
    }
    let record = state.inference.record(id).ok_or(ValidationError::UnknownInference(*id))?;
    if !matches!(
        record.status,
        InferenceStatus::Finished | InferenceStatus::Validated | InferenceStatus::Voting
    ) {
        return Err(ValidationError::WrongStatus { id: *id, status: record.status });
    }
    let last = record.finished_height.saturating_add(state.params().validation.validation_window_blocks);
    if tx.height > last {
        return Err(ValidationError::OutsideWindow { what: "a validation", last, height: tx.height });
    }
    if state.validation.verdict(id, &sender).is_some() {
        return Err(ValidationError::Duplicate(sender));
    }
    check_selection(state, id, &sender, proof)
}

/// Votes a validator may have open at once over payloads it says one executor refused: a refusal it
/// cannot prove costs it nothing when the vote finds the payload served (§5.2), so this bounds the
/// votes it can force. A refusal past the bound is still recorded — it is the validator's duty done
/// (`docs/spec/economy.md` §4), so an executor cannot make an honest validator forfeit its epoch by
/// withholding more payloads than the bound — but opens no vote.
pub const OPEN_REFUSALS_MAX: usize = 4;

/// Open votes `accuser` opened by reporting `executor`'s payloads refused.
fn open_refusals(state: &State, accuser: &Address, executor: &Address) -> usize {
    state
        .validation
        .disputes
        .iter()
        .filter(|(_, d)| d.outcome.is_none() && d.accuser == *accuser)
        .filter(|(id, _)| state.inference.record(id).is_some_and(|r| r.executor == *executor))
        .filter(|(id, _)| {
            state.validation.verdict(id, accuser).is_some_and(|v| v.failure == Failure::PayloadRefused)
        })
        .count()
}

/// Applies a checked verdict.
pub(super) fn apply_verdict(
    state: &mut State,
    tx: &TxContext,
    id: Hash,
    verdict: Verdict,
) -> Result<Vec<Event>, ValidationError> {
    let sender = tx.sender;
    let record = state.inference.record(&id).cloned().ok_or(ValidationError::UnknownInference(id))?;
    let capped = verdict.failure == Failure::PayloadRefused
        && open_refusals(state, &sender, &record.executor) >= OPEN_REFUSALS_MAX;
    state.validation.verdicts.insert((id, sender), verdict);
    state.inference.count(record.epoch, sender, |s| s.validations += 1);
    let mut events = vec![
        Event::new("inference_validation")
            .with("id", id)
            .with("validator", sender)
            .with("executor", record.executor)
            .with("passed", verdict.passed())
            .with("failure", verdict.failure.name()),
    ];
    let open = state.validation.dispute(&id).is_some_and(|d| d.outcome.is_none());
    if capped && !open {
        events.push(Event::new("refusal_recorded").with("id", id).with("validator", sender));
    } else if open {
        events.extend(cast(state, id, sender, verdict.passed(), tx.height)?);
    } else if verdict.passed() {
        if record.status == InferenceStatus::Finished {
            state.inference.update_record(&id, |r| r.status = InferenceStatus::Validated);
        }
    } else if state.validation.dispute(&id).is_none() {
        events.extend(open_dispute(state, &record, id, sender, tx.height)?);
    }
    Ok(events)
}

/// A failure opens the vote: every verdict so far counts as a vote, the accuser's as "invalid".
fn open_dispute(
    state: &mut State,
    record: &Inference,
    id: Hash,
    accuser: Address,
    height: u64,
) -> Result<Vec<Event>, ValidationError> {
    let epoch = record.epoch;
    let total = state.validation.roster(epoch).map_or(0, |r| r.total_power);
    let executor_power = state.validation.member(epoch, &record.executor).map_or(0, |m| m.power);
    let deadline = height.saturating_add(state.params().validation.vote_window_blocks);
    state.validation.disputes.insert(
        id,
        Dispute {
            accuser,
            deadline,
            eligible_power: total.saturating_sub(u128::from(executor_power)),
            valid_power: 0,
            invalid_power: 0,
            outcome: None,
        },
    );
    state.validation.dispute_deadlines.insert((deadline, id), 0);
    state.inference.update_record(&id, |r| r.status = InferenceStatus::Voting);
    // The fee cannot settle while the vote runs.
    if record.settles_at <= deadline {
        state.inference.reschedule_settlement(&id, deadline + 1);
    }
    let mut events = vec![
        Event::new("validation_vote_opened")
            .with("id", id)
            .with("executor", record.executor)
            .with("accuser", accuser)
            .with("deadline", deadline),
    ];
    let ballots: Vec<(Address, bool)> =
        state.validation.verdicts_on(&id).map(|(validator, v)| (validator, v.passed())).collect();
    for (validator, valid) in ballots {
        events.extend(cast(state, id, validator, valid, height)?);
    }
    Ok(events)
}

/// Read-only checks of a vote from `tx.sender`.
pub(super) fn check_vote(state: &State, tx: &TxContext, id: &Hash) -> Result<(), ValidationError> {
    let sender = tx.sender;
    if !state.hosts.is_host(&sender) {
        return Err(ValidationError::NotAHost(sender));
    }
    if state.validation.is_invalid(&sender) {
        return Err(ValidationError::Invalid(sender));
    }
    let record = state.inference.record(id).ok_or(ValidationError::UnknownInference(*id))?;
    let dispute = match state.validation.dispute(id) {
        Some(d) if d.outcome.is_none() && record.status == InferenceStatus::Voting => d,
        _ => return Err(ValidationError::WrongStatus { id: *id, status: record.status }),
    };
    if tx.height > dispute.deadline {
        return Err(ValidationError::OutsideWindow {
            what: "a vote",
            last: dispute.deadline,
            height: tx.height,
        });
    }
    if record.executor == sender {
        return Err(ValidationError::OwnInference(sender));
    }
    if state.validation.member(record.epoch, &sender).is_none_or(|m| m.power == 0) {
        return Err(ValidationError::NotAMember(sender, record.epoch));
    }
    if state.validation.votes.contains_key(&(*id, sender)) {
        return Err(ValidationError::Duplicate(sender));
    }
    Ok(())
}

/// Counts `voter`'s ballot on the open dispute over `id` (once per host) and decides the vote as soon
/// as either side holds more than half the eligible power.
pub(super) fn cast(
    state: &mut State,
    id: Hash,
    voter: Address,
    valid: bool,
    height: u64,
) -> Result<Vec<Event>, ValidationError> {
    if state.validation.votes.contains_key(&(id, voter)) {
        return Ok(Vec::new());
    }
    let Some(record) = state.inference.record(&id).cloned() else { return Ok(Vec::new()) };
    let power = state.validation.member(record.epoch, &voter).map_or(0, |m| u128::from(m.power));
    state.validation.votes.insert((id, voter), valid);
    let mut decided = None;
    state.validation.disputes.update(&id, |d| {
        if d.outcome.is_some() {
            // Decided already: a later ballot (a verdict cast when the vote opened) only counts.
            return;
        }
        if valid {
            d.valid_power += power;
        } else {
            d.invalid_power += power;
        }
        if 2 * d.invalid_power > d.eligible_power {
            decided = Some(false);
        } else if 2 * d.valid_power > d.eligible_power {
            decided = Some(true);
        }
    });
    let mut events =
        vec![Event::new("validation_vote").with("id", id).with("voter", voter).with("valid", valid)];
    if let Some(valid) = decided {
        events.extend(conclude(state, id, valid, height)?);
    }
    Ok(events)
}

/// A vote whose deadline passed: invalidated when more power said invalid than valid and that power
/// is over a third of the eligible power (more than any coalition the BFT assumption allows), else
/// revalidated (`docs/spec/validation.md` §5.2).
pub(super) fn close_vote(state: &mut State, id: Hash, height: u64) -> Result<Vec<Event>, ValidationError> {
    let Some(d) = state.validation.dispute(&id).copied() else { return Ok(Vec::new()) };
    if d.outcome.is_some() {
        return Ok(Vec::new());
    }
    let invalid = d.invalid_power > d.valid_power && 3 * d.invalid_power > d.eligible_power;
    conclude(state, id, !invalid, height)
}

/// Decides the vote over `id`: revalidated (`valid`) or invalidated; verdicts on the losing side count
/// against the validators that gave them.
fn conclude(state: &mut State, id: Hash, valid: bool, height: u64) -> Result<Vec<Event>, ValidationError> {
    let Some(dispute) = state.validation.dispute(&id).copied().filter(|d| d.outcome.is_none()) else {
        return Ok(Vec::new());
    };
    let Some(record) = state.inference.record(&id).cloned() else { return Ok(Vec::new()) };
    state.validation.disputes.update(&id, |d| d.outcome = Some(valid));
    state.validation.dispute_deadlines.remove(&(dispute.deadline, id));
    let mut events = Vec::new();
    // A refused payload the vote then found served is not held against the validator that reported it:
    // an executor could refuse one validator and serve the voters, to get honest validators made
    // INVALID (`docs/spec/validation.md` §5.2).
    let wrong: Vec<Address> = state
        .validation
        .verdicts_on(&id)
        .filter(|(_, verdict)| verdict.passed() != valid && verdict.failure != Failure::PayloadRefused)
        .map(|(validator, _)| validator)
        .collect();
    for validator in wrong {
        state.inference.count(record.epoch, validator, |s| s.overturned += 1);
        events.extend(evidence(state, validator, true, height)?);
    }
    if valid {
        state.inference.update_record(&id, |r| r.status = InferenceStatus::Validated);
        events.push(Event::new("inference_revalidated").with("id", id).with("executor", record.executor));
        return Ok(events);
    }
    state.inference.update_record(&id, |r| r.status = InferenceStatus::Invalidated);
    let refund = refund(state, &record, id)?;
    state.inference.count(record.epoch, record.executor, |s| s.invalidated += 1);
    state.validation.standings.upsert(record.executor, |s| s.invalidated += 1);
    events.push(
        Event::new("inference_invalidated")
            .with("id", id)
            .with("executor", record.executor)
            .with("requester", record.requester)
            .with("refund", refund.0),
    );
    events.extend(evidence(state, record.executor, true, height)?);
    Ok(events)
}

/// Returns an unsettled fee to whoever paid it: the requester, and the vouching TA's collateral for its
/// part (`docs/spec/inference.md` §4.1).
fn refund(state: &mut State, record: &Inference, id: Hash) -> Result<Amount, BankError> {
    if record.fee_settled {
        return Ok(Amount::ZERO);
    }
    let ta_part = record.transfer_agent_paid();
    state.bank.release(Hold::Fee(id), record.requester, record.requester_paid)?;
    state.bank.transfer_held(Hold::Fee(id), Hold::Collateral(record.vouched_by), ta_part)?;
    state.inference.unschedule_settlement(&id);
    state.inference.update_record(&id, |r| r.fee_settled = true);
    Ok(record.cost)
}

/// Settles the fee of `id` once its validation is over: an executor found INVALID in the answer's
/// epoch earns nothing (the payers get it back); otherwise the fee is shared equally among the executor
/// and the validators whose passing verdict stands, the remainder to the executor (reference §5.5
/// ShareWork). A validated answer counts for its executor's standing here, once.
pub(super) fn settle(state: &mut State, id: Hash, height: u64) -> Result<Vec<Event>, InvariantViolation> {
    let broken = |e: BankError| InvariantViolation::new("fee_matches_record", format!("settling {id}: {e}"));
    let Some(record) = state.inference.record(&id).cloned() else { return Ok(Vec::new()) };
    if record.status == InferenceStatus::Voting {
        // A vote still open (it always closes first): settle right after it.
        state.inference.settlements.insert((height + 1, id), 0);
        state.inference.update_record(&id, |r| r.settles_at = height + 1);
        return Ok(Vec::new());
    }
    // Found INVALID in the answer's epoch, the one before or since: the answer is not paid
    // (`docs/spec/validation.md` §5.3).
    if super::invalid_for_epoch(state, &record.executor, record.epoch) {
        let refunded = refund(state, &record, id).map_err(broken)?;
        return Ok(vec![
            Event::new("inference_refunded")
                .with("id", id)
                .with("executor", record.executor)
                .with("refund", refunded.0)
                .with("reason", "executor_invalid"),
        ]);
    }
    let validators: Vec<Address> = state
        .validation
        .verdicts_on(&id)
        .filter(|(_, v)| v.passed())
        .map(|(validator, _)| validator)
        .filter(|validator| !super::invalid_for_epoch(state, validator, record.epoch))
        .collect();
    let fee = state.bank.held(&Hold::Fee(id));
    let share = fee.0 / (validators.len() as u128 + 1);
    for validator in &validators {
        state
            .bank
            .transfer_held(Hold::Fee(id), Hold::Owed(record.epoch, *validator), Amount(share))
            .map_err(broken)?;
    }
    let executor_share = state.bank.held(&Hold::Fee(id));
    state
        .bank
        .transfer_held(Hold::Fee(id), Hold::Owed(record.epoch, record.executor), executor_share)
        .map_err(broken)?;
    state.inference.update_record(&id, |r| r.fee_settled = true);
    let mut events = vec![
        Event::new("fee_settled")
            .with("id", id)
            .with("executor", record.executor)
            .with("executor_share", executor_share.0)
            .with("validators", validators.len())
            .with("validator_share", share),
    ];
    if record.status == InferenceStatus::Validated {
        state.inference.count(record.epoch, record.executor, |s| s.validated += 1);
        state.validation.standings.upsert(record.executor, |s| s.validated += 1);
        events.extend(evidence(state, record.executor, false, height).map_err(broken)?);
    }
    Ok(events)
}

/// Adds a failure's evidence to `host`'s standing (or takes a success's away), and makes it INVALID
/// when the evidence reaches the threshold (reference Appendix A's sequential test, one-sided: never
/// below 0, so an honest past buys no licence to cheat later).
fn evidence(state: &mut State, host: Address, failure: bool, height: u64) -> Result<Vec<Event>, BankError> {
    let params = state.params().validation;
    let mut became_invalid = false;
    state.validation.standings.upsert(host, |s| {
        if failure {
            s.evidence_milli = s.evidence_milli.saturating_add(params.failure_evidence_milli);
            s.consecutive_invalidations += 1;
        } else {
            s.evidence_milli = s.evidence_milli.saturating_sub(params.success_evidence_milli);
            s.consecutive_invalidations = 0;
        }
        if s.status == HostStatus::Active && s.evidence_milli >= params.invalid_evidence_milli {
            s.status = HostStatus::Invalid;
            became_invalid = true;
        }
    });
    if !became_invalid {
        return Ok(Vec::new());
    }
    let epoch = state.params().epoch.effective_epoch_at(height);
    state.validation.standings.update(&host, |s| s.invalid_epoch = Some(epoch));
    state.hosts.revoke_power(&host, height);
    let mut events =
        vec![Event::new("host_invalid").with("host", host).with("epoch", epoch).with("height", height)];
    // Reference §6.7: becoming INVALID costs a share of the collateral, unbonding included.
    let fraction = state.params().collateral.slash_invalid_ppm;
    events.extend(crate::collateral::slash(state, host, fraction, "invalid")?);
    Ok(events)
}

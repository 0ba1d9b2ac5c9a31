//! Proof of Compute on chain (reference §3.7–§3.10, DESIGN.md §4.3; `docs/spec/poc.md`).
//!
//! - At `S(n)` the stage opens: the block hash of `S` seeds the model every host races, and the
//!   previous stage's claims, nonces and votes are pruned.
//! - In `[S+1, exchange deadline]` hosts commit to their epoch seed and submit batches of nonces. Every
//!   claimed distance must be below `r_target`; each nonce counts once per participant per stage.
//! - In the validation window each host submits one verdict per participant: the chain verifies the
//!   signature that seeded its sample, checks the sample size and applies the binomial test itself.
//! - At the end of validation the weights are computed: a participant is accepted when validators
//!   holding more than half of the current weight found no fraud (silence counts as no); its weight is
//!   its distinct nonce count, then capped. `hosts` makes them voting power at SetNewValidators.

mod msg;
mod params;
mod settle;
mod state;

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use gonka_poc::Distance;
use gonka_primitives::Address;

pub use msg::{PocError, PocMsg, PocNonce};
pub use params::{DEVNET_R_TARGET, PocParams};
pub use state::{ClaimKey, NonceKey, Poc, PocClaim, PocStage, PocVote, VoteKey, mismatch_rule};

use crate::epoch::EpochStages;
use crate::event::Event;
use crate::module::{BlockContext, InvariantViolation, Module, TxContext};
use crate::state::State;

/// The running stage and its heights, when `poc_start` names it.
fn stage_named(state: &State, poc_start: u64) -> Result<(PocStage, EpochStages), PocError> {
    let stage = state.poc.stage().filter(|s| s.start_height == poc_start);
    let stages = stage.and_then(|s| state.params().epoch.stages(s.epoch));
    match (stage, stages) {
        (Some(stage), Some(stages)) if stages.poc_start == poc_start => Ok((stage, stages)),
        _ => Err(PocError::WrongStage(poc_start)),
    }
}

fn in_window(what: &'static str, window: RangeInclusive<u64>, height: u64) -> Result<(), PocError> {
    if window.contains(&height) {
        Ok(())
    } else {
        Err(PocError::OutsideWindow { what, first: *window.start(), last: *window.end(), height })
    }
}

/// Whether `participant`'s claim in the stage at `poc_start` is one validators check and the chain may
/// accept: a seed commitment, at least [`PocParams::min_claim`] distinct nonces, and the entry
/// collateral still held (`docs/spec/poc.md` §7). Anything else earns nothing, so no one spends
/// validation work on it. The one rule the chain, its settlement and the host planner share.
pub fn eligible(state: &State, poc_start: u64, participant: &Address) -> Result<(), PocError> {
    let params = &state.params().poc;
    let claim = state.poc.claim(poc_start, *participant);
    let claimed = claim.map_or(0, |c| c.nonce_count);
    if claimed == 0 {
        return Err(PocError::NoClaims(*participant));
    }
    let minimum = params.min_claim().unwrap_or(u64::MAX);
    if claimed < minimum || claim.is_none_or(|c| c.seed_commitment.is_none()) {
        return Err(PocError::NotValidated { participant: *participant, claimed, minimum });
    }
    check_entry_collateral(state, participant)
}

/// How many nonces `host` may store in a stage: `max_nonces_per_stage` for each `entry_collateral`
/// it holds locked (`docs/spec/poc.md` §11, issue 12 item 6). State is paid for with capital at
/// stake: a Sybil at the entry price stores at most one allowance, a host whose compute finds more
/// locks more. With no entry price, the per-stage limit alone.
pub fn nonce_allowance(state: &State, host: &Address) -> u64 {
    let params = &state.params().poc;
    if params.entry_collateral.0 == 0 {
        return params.max_nonces_per_stage;
    }
    let units = crate::collateral::collateral_of(state, host).0 / params.entry_collateral.0;
    params.max_nonces_per_stage.saturating_mul(u64::try_from(units).unwrap_or(u64::MAX))
}

fn check_entry_collateral(state: &State, host: &Address) -> Result<(), PocError> {
    let needed = state.params().poc.entry_collateral;
    let held = crate::collateral::collateral_of(state, host);
    if held < needed {
        return Err(PocError::EntryCollateral { held, needed });
    }
    Ok(())
}

fn check_seed_commit(
    state: &State,
    tx: &TxContext,
    epoch: u64,
    commitment: &gonka_primitives::VrfPublicKey,
) -> Result<(), PocError> {
    if gonka_primitives::VrfPublicKey::from_hex(&commitment.to_string()).is_err() {
        return Err(PocError::BadCommitment);
    }
    let stage = state.poc.stage().ok_or(PocError::WrongStage(0))?;
    if stage.epoch != epoch {
        return Err(PocError::WrongEpoch { expected: stage.epoch, got: epoch });
    }
    let (_, stages) = stage_named(state, stage.start_height)?;
    in_window("a seed commitment", stages.batch_window(), tx.height)?;
    if state.poc.claim(stage.start_height, tx.sender).is_some_and(|c| c.seed_commitment.is_some()) {
        return Err(PocError::SeedAlreadyCommitted);
    }
    check_entry_collateral(state, &tx.sender)
}

fn check_batch(state: &State, tx: &TxContext, poc_start: u64, nonces: &[PocNonce]) -> Result<(), PocError> {
    let (_, stages) = stage_named(state, poc_start)?;
    in_window("a PoC batch", stages.batch_window(), tx.height)?;
    // Nonces are stored only for a host that committed its seed, which needed the entry collateral:
    // state per participant is bounded by what it locked.
    if state.poc.claim(poc_start, tx.sender).is_none_or(|c| c.seed_commitment.is_none()) {
        return Err(PocError::NoSeedCommitment);
    }
    let poc = &state.params().poc;
    if nonces.is_empty() || nonces.len() > poc.max_nonces_per_batch as usize {
        return Err(PocError::BatchSize { found: nonces.len(), limit: poc.max_nonces_per_batch });
    }
    let r_target = Distance::from_decimal(poc.r_target);
    if let Some(n) = nonces.iter().find(|n| n.distance >= r_target) {
        return Err(PocError::DistanceNotBelowTarget { nonce: n.nonce, distance: n.distance, r_target });
    }
    // The same count `add_batch` makes, so a batch over the stage's limit never takes block space.
    let before = state.poc.claim(poc_start, tx.sender).map_or(0, |c| c.nonce_count);
    let fresh: BTreeSet<u64> = nonces
        .iter()
        .map(|n| n.nonce)
        .filter(|&nonce| !state.poc.has_nonce(poc_start, tx.sender, nonce))
        .collect();
    let (count, limit) = (before + fresh.len() as u64, nonce_allowance(state, &tx.sender));
    if count > limit {
        return Err(PocError::TooManyNonces { count, limit });
    }
    Ok(())
}

fn check_validation(
    state: &State,
    tx: &TxContext,
    poc_start: u64,
    participant: Address,
    sampled: u32,
    mismatches: u32,
    sample_seed: &gonka_primitives::AccountSignature,
) -> Result<(), PocError> {
    let (stage, stages) = stage_named(state, poc_start)?;
    in_window("a PoC validation", stages.validation_window(), tx.height)?;
    eligible(state, poc_start, &participant)?;
    let claim = state.poc.claim(poc_start, participant).ok_or(PocError::NoClaims(participant))?;
    if state.poc.vote(poc_start, participant, tx.sender).is_some() {
        return Err(PocError::AlreadyValidated(participant));
    }
    let sample_size = state.params().poc.validation_sample_size;
    let expected = claim.nonce_count.min(u64::from(sample_size)) as u32;
    if sampled != expected || mismatches > sampled {
        return Err(PocError::BadSample { sampled, mismatches, expected });
    }
    let participant_key = state
        .hosts
        .participant(&participant)
        .map(|p| p.account_key)
        .ok_or(PocError::NoClaims(participant))?;
    let message = gonka_poc::sample_seed_message(&stage.block_hash, poc_start, &participant_key.0);
    tx.signer.verify(&message, sample_seed).map_err(|_| PocError::BadSampleSeed)
}

/// Adds the batch's new nonces (duplicates, within the batch or with earlier ones, count once).
fn add_batch(state: &mut State, sender: Address, stage: u64, nonces: &[PocNonce]) -> Result<Event, PocError> {
    let before = state.poc.claim(stage, sender).map_or(0, |c| c.nonce_count);
    let mut added = 0u64;
    for n in nonces {
        let key = NonceKey { stage, participant: sender, nonce: n.nonce };
        if !state.poc.nonces.contains_key(&key) {
            state.poc.nonces.insert(key, n.distance);
            added += 1;
        }
    }
    let count = before + added;
    let limit = nonce_allowance(state, &sender);
    if count > limit {
        return Err(PocError::TooManyNonces { count, limit });
    }
    state.poc.claims.upsert(ClaimKey { stage, participant: sender }, |claim| claim.nonce_count = count);
    Ok(Event::new("poc_batch")
        .with("participant", sender)
        .with("nonces", nonces.len())
        .with("new", added)
        .with("total", count))
}

impl Module for Poc {
    const ID: u8 = 4;
    const NAME: &'static str = "poc";
    type Msg = PocMsg;
    type Error = PocError;

    fn check(state: &State, tx: &TxContext, msg: &PocMsg) -> Result<(), PocError> {
        if !state.hosts.is_host(&tx.sender) {
            return Err(PocError::NotAHost(tx.sender));
        }
        match msg {
            PocMsg::SeedCommit { epoch, commitment } => check_seed_commit(state, tx, *epoch, commitment),
            PocMsg::Batch { poc_start, nonces } => check_batch(state, tx, *poc_start, nonces),
            PocMsg::Validation { poc_start, participant, sampled, mismatches, sample_seed } => {
                check_validation(state, tx, *poc_start, *participant, *sampled, *mismatches, sample_seed)
            }
        }
    }

    fn apply(state: &mut State, tx: &TxContext, msg: &PocMsg) -> Result<Vec<Event>, PocError> {
        let sender = tx.sender;
        match msg {
            PocMsg::SeedCommit { epoch, commitment } => {
                let stage = state.poc.stage().ok_or(PocError::WrongStage(0))?;
                let key = ClaimKey { stage: stage.start_height, participant: sender };
                state.poc.claims.upsert(key, |claim| claim.seed_commitment = Some(*commitment));
                Ok(vec![Event::new("poc_seed_committed").with("participant", sender).with("epoch", epoch)])
            }
            PocMsg::Batch { poc_start, nonces } => Ok(vec![add_batch(state, sender, *poc_start, nonces)?]),
            PocMsg::Validation { poc_start, participant, sampled, mismatches, sample_seed } => {
                let fraud = state
                    .params()
                    .poc
                    .is_fraud(*sampled, *mismatches)
                    .map_err(|e| PocError::Binomial(e.to_string()))?;
                let key = VoteKey { stage: *poc_start, participant: *participant, validator: sender };
                let vote = PocVote {
                    sampled: *sampled,
                    mismatches: *mismatches,
                    fraud,
                    signer: tx.signer,
                    sample_seed: *sample_seed,
                };
                state.poc.votes.insert(key, vote);
                Ok(vec![
                    Event::new("poc_validation")
                        .with("validator", sender)
                        .with("participant", participant)
                        .with("sampled", sampled)
                        .with("mismatches", mismatches)
                        .with("fraud", fraud),
                ])
            }
        }
    }

    fn end_block(state: &mut State, block: &BlockContext) -> Result<Vec<Event>, InvariantViolation> {
        Ok(settle::end_block(state, block))
    }

    fn check_invariants(state: &State) -> Result<(), InvariantViolation> {
        for (key, claim) in state.poc.claims.iter() {
            let stored = state.poc.nonce_count(key.stage, key.participant);
            if stored != claim.nonce_count {
                return Err(InvariantViolation::new(
                    "poc_claims_count_their_nonces",
                    format!(
                        "{} claims {} nonces in stage {}, {stored} stored",
                        key.participant, claim.nonce_count, key.stage
                    ),
                ));
            }
        }
        Ok(())
    }
}

//! Who validates which inference (`docs/spec/validation.md` §2; reference §5.1): each host with power
//! evaluates its epoch key's VRF on the inference and validates when the output falls below its
//! threshold, `min(1, expected × power_v / (total − power_executor))`. The executor checks the proof
//! before it hands over a payload, the chain checks it before it takes a verdict, and once the epoch
//! seed is revealed anyone recomputes every selection without proofs ([`selected_inferences`]).

use gonka_primitives::{Address, Hash, VrfKey, VrfProof};

use super::msg::ValidationError;
use super::params::{PPM, epoch_end, epoch_start};
use crate::inference::push_chain_id;
use crate::state::State;

/// The VRF context of validation selection.
pub const SELECTION_CONTEXT: &[u8] = b"gonka/validation-selection/v1";

/// The VRF input for inference `id` finished in `epoch` on `chain_id`: length-prefixed chain id ‖
/// epoch (big-endian) ‖ id. The chain id and epoch keep one key's outputs apart across networks and
/// epochs.
pub fn selection_message(chain_id: &str, epoch: u64, id: &Hash) -> Vec<u8> {
    let mut message = Vec::with_capacity(73);
    push_chain_id(&mut message, chain_id);
    message.extend_from_slice(&epoch.to_be_bytes());
    message.extend_from_slice(&id.0);
    message
}

/// The probability (ppm, capped at 1) that `validator` is selected for an answer of `executor` in
/// `epoch`: 0 for a validator without power in the epoch, or when the executor held all of it.
pub fn selection_ppm(state: &State, epoch: u64, executor: &Address, validator: &Address) -> u64 {
    let Some((numerator, denominator)) = threshold(state, epoch, executor, validator) else { return 0 };
    let ppm = (numerator / denominator.max(1)).min(u128::from(PPM));
    u64::try_from(ppm).unwrap_or(PPM)
}

/// `(expected ppm × power_v, ppm × (total − power_e))`: the selection probability as a fraction.
fn threshold(state: &State, epoch: u64, executor: &Address, validator: &Address) -> Option<(u128, u128)> {
    if validator == executor {
        return None;
    }
    let roster = state.validation.roster(epoch)?;
    let power_v = state.validation.member(epoch, validator)?.power;
    let (power_e, reputation) =
        state.validation.member(epoch, executor).map_or((0, 0), |m| (m.power, m.reputation));
    let others = roster.total_power.checked_sub(u128::from(power_e)).filter(|o| *o > 0)?;
    let expected = state.params().validation.expected_validations_ppm(roster.traffic, reputation);
    Some((u128::from(expected) * u128::from(power_v), u128::from(PPM).saturating_mul(others)))
}

/// Whether the VRF `output` selects `validator` for an answer of `executor` in `epoch`:
/// `output / 2^64 < probability`, compared in integers on the output's top 32 bits.
pub fn selects(state: &State, epoch: u64, executor: &Address, validator: &Address, output: u64) -> bool {
    let Some((numerator, denominator)) = threshold(state, epoch, executor, validator) else { return false };
    let draw = u128::from(output >> 32);
    draw.saturating_mul(denominator) < numerator.saturating_mul(1 << 32)
}

/// Checks that `proof` selects `validator` for the finished inference `id`: the executor runs this
/// before it hands over a payload, the chain before it takes a verdict.
pub fn check_selection(
    state: &State,
    id: &Hash,
    validator: &Address,
    proof: &VrfProof,
) -> Result<(), ValidationError> {
    let record = state.inference.record(id).ok_or(ValidationError::UnknownInference(*id))?;
    if !record.status.is_finished() {
        return Err(ValidationError::WrongStatus { id: *id, status: record.status });
    }
    if record.executor == *validator {
        return Err(ValidationError::OwnInference(*validator));
    }
    let epoch = record.epoch;
    let key = state
        .validation
        .member(epoch, validator)
        .and_then(|m| m.key.filter(|_| m.power > 0))
        .ok_or(ValidationError::NotAMember(*validator, epoch))?;
    let message = selection_message(&state.meta.chain_id, epoch, id);
    let output = key.verify(SELECTION_CONTEXT, &message, proof).map_err(|_| ValidationError::BadProof)?;
    if !selects(state, epoch, &record.executor, validator, output) {
        return Err(ValidationError::NotSelected(*validator));
    }
    Ok(())
}

/// Every inference of `epoch` that `host` was selected to validate, recomputed from its revealed
/// epoch seed (reference §5.2 (b)): finished inferences of others, up to the epoch's validation cutoff
/// (those finished in the last `inference_validation_cutoff` blocks before the next PoC, and during it,
/// are exempt).
/// Refused when the seed's key is not the one the host committed.
pub fn selected_inferences(
    state: &State,
    epoch: u64,
    host: &Address,
    seed: &[u8],
) -> Result<Vec<Hash>, ValidationError> {
    let key = VrfKey::from_seed(seed);
    let committed = state.validation.member(epoch, host).and_then(|m| m.key);
    if committed != Some(key.public_key()) {
        return Err(ValidationError::BadProof);
    }
    let params = state.params();
    // The epoch ends when the next one becomes effective, after the next PoC; answers finished from
    // `inference_validation_cutoff` blocks before that PoC on are exempt (reference §5.2).
    let cutoff = epoch
        .checked_add(1)
        .and_then(|next| params.epoch.poc_start(next))
        .map_or(u64::MAX, |start| start.saturating_sub(params.epoch.inference_validation_cutoff));
    let heights = epoch_start(&params.epoch, epoch)..epoch_end(&params.epoch, epoch).min(cutoff);
    let mut selected = Vec::new();
    for (_, id) in state.inference.finished_between(heights) {
        let Some(record) = state.inference.record(&id) else { continue };
        if record.epoch != epoch || record.executor == *host {
            continue;
        }
        let output = key.output(SELECTION_CONTEXT, &selection_message(&state.meta.chain_id, epoch, &id));
        if selects(state, epoch, &record.executor, host, output) {
            selected.push(id);
        }
    }
    Ok(selected)
}

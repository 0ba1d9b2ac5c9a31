//! The executor draw (DESIGN.md §4.2, `docs/spec/inference.md` §3): a deterministic,
//! weight-proportional function of the inference id and the voting power, recomputed on chain, so
//! neither the transfer agent nor a colluding executor can choose who serves a request.

use gonka_primitives::{Address, Hash};

use crate::state::State;

/// Domain of the executor draw.
const EXECUTOR_DOMAIN: &[u8] = b"gonka/executor/v1\0";

/// The executor drawn for `inference_id` among `hosts` (address, power), in address order:
/// a point `SHA-256(domain ‖ id) mod total power` on the cumulative power line.
pub fn draw_executor(
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

/// The executor of `inference_id` under the current voting power.
pub fn executor_for(state: &State, inference_id: &Hash) -> Option<Address> {
    draw_executor(inference_id, state.hosts.powers())
}

/// The executor under the previous voting power, while `height` is within the grace period after the
/// last change of power.
pub fn previous_executor_for(state: &State, inference_id: &Hash, height: u64) -> Option<Address> {
    let grace = state.params().inference.executor_grace_blocks;
    if height > state.hosts.power_changed_height().saturating_add(grace) {
        return None;
    }
    draw_executor(inference_id, state.hosts.previous_powers())
}

/// Whether `executor` may serve `inference_id` in the block at `height`: the current draw, or the
/// draw under the power before any change made in the last `executor_grace_blocks` — several changes
/// can fall within one grace period (an epoch's new weights and a host made INVALID).
pub fn is_assigned(state: &State, inference_id: &Hash, executor: Address, height: u64) -> bool {
    let grace = state.params().inference.executor_grace_blocks;
    executor_for(state, inference_id) == Some(executor)
        || state
            .hosts
            .powers_before_changes_since(height.saturating_sub(grace))
            .any(|powers| draw_executor(inference_id, powers.iter().copied()) == Some(executor))
}

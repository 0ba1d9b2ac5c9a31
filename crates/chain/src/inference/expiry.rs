//! Inference's block-level work: expiring unfinished Starts (full refund, a missed count for the
//! executor) and pruning old receipts.

use gonka_primitives::Hash;

use super::receipt::schedule_prune;
use super::state::InferenceStatus;
use crate::bank::Hold;
use crate::event::Event;
use crate::module::{BlockContext, InvariantViolation};
use crate::state::State;

/// Expiries due at this height, then records whose retention ended.
pub(super) fn end_block(state: &mut State, block: &BlockContext) -> Result<Vec<Event>, InvariantViolation> {
    let events = expire(state, block.height)?;
    prune(state, block.time_ms)?;
    Ok(events)
}

fn expire(state: &mut State, height: u64) -> Result<Vec<Event>, InvariantViolation> {
    let mut events = Vec::new();
    let due: Vec<(u64, Hash)> =
        state.inference.deadlines.range(..=(height, Hash([0xff; 32]))).map(|(k, _)| *k).collect();
    for key in due {
        state.inference.deadlines.remove(&key);
        let id = key.1;
        let record = match state.inference.records.get(&id) {
            Some(record) if record.status == InferenceStatus::Started => record.clone(),
            _ => {
                return Err(InvariantViolation::new(
                    "started_inferences_have_deadlines",
                    format!("deadline entry of {id} at {} without a started record", key.0),
                ));
            }
        };
        let escrow = state.bank.held(&Hold::Escrow(id));
        state.bank.release(Hold::Escrow(id), record.requester, escrow).map_err(|e| {
            InvariantViolation::new("holds_cover_their_releases", format!("refund of {id}: {e}"))
        })?;
        state.inference.host_stats.upsert(record.executor, |s| s.missed += 1);
        let epoch = state.params().epoch.effective_epoch_at(height);
        state.inference.count(epoch, record.executor, |s| s.missed += 1);
        state.inference.records.update(&id, |i| i.status = InferenceStatus::Expired);
        events.push(
            Event::new("inference_expired")
                .with("id", id)
                .with("executor", record.executor)
                .with("refund", escrow.0),
        );
    }
    Ok(events)
}

fn prune(state: &mut State, now_ms: u64) -> Result<(), InvariantViolation> {
    let old: Vec<(u64, Hash)> =
        state.inference.prunes.range(..(now_ms, Hash([0; 32]))).map(|(k, _)| *k).collect();
    for key in old {
        state.inference.prunes.remove(&key);
        match state.inference.records.get(&key.1).map(|i| i.status) {
            // A started inference still holds escrow: it leaves only after its deadline.
            Some(InferenceStatus::Started) => schedule_prune(state, key.1, now_ms),
            Some(_) => state.inference.records.remove(&key.1),
            None => {
                return Err(InvariantViolation::new(
                    "every_record_is_pruned_once",
                    format!("prune entry of {} without a record", key.1),
                ));
            }
        }
    }
    Ok(())
}

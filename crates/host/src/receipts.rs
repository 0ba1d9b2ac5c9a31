//! The receipts a host owes the chain (`docs/spec/inference.md` §4): its Starts as transfer agent
//! and its Finishes as executor. A receipt that does not reach a block (lost gossip, a mempool that
//! was full, a crash before the host proposed) would leave a delivered answer unpaid, so the host
//! keeps each one in an outbox — durably, beside the payload — and submits it again until the chain
//! holds it or can no longer take it.
//!
//! [`Outbox::plan`] is the planner: on each committed block it returns the receipts to (re)submit and
//! forgets those that are done.

use std::collections::BTreeMap;

use gonka_chain::{InferenceMsg, InferenceStatus, Msg, SignedRequest, State};
use gonka_primitives::Hash;
use gonka_primitives::codec_struct;

use crate::poc::RESUBMIT_AFTER_BLOCKS;

/// One receipt waiting for a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The receipt (an `InferenceMsg::Start` or `Finish`).
    pub receipt: InferenceMsg,
    /// The height at which it was last submitted (0: never).
    pub submitted_at: u64,
}
codec_struct!(Pending { receipt, submitted_at });

/// The receipts a host still has to get on chain, by inference id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outbox {
    pending: BTreeMap<(Hash, bool), Pending>,
}

fn request_of(receipt: &InferenceMsg) -> Option<&SignedRequest> {
    match receipt {
        InferenceMsg::Start { request, .. } | InferenceMsg::Finish { request, .. } => Some(request),
        InferenceMsg::RegisterDeveloper => None,
    }
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// Keeps `receipt` (a Start or a Finish) until it is on chain; returns its key, or None for any
    /// other message.
    pub fn add(&mut self, receipt: InferenceMsg) -> Option<(Hash, bool)> {
        let request = request_of(&receipt)?;
        let key = (request.id(), matches!(receipt, InferenceMsg::Finish { .. }));
        self.pending.entry(key).or_insert(Pending { receipt, submitted_at: 0 });
        Some(key)
    }

    /// Records that the receipt under `key` was just submitted at `height`.
    pub fn submitted(&mut self, key: (Hash, bool), height: u64) {
        if let Some(pending) = self.pending.get_mut(&key) {
            pending.submitted_at = height.max(1);
        }
    }

    /// Restores an entry read back from the host's store.
    pub fn restore(&mut self, pending: Pending) {
        if let Some(request) = request_of(&pending.receipt) {
            let key = (request.id(), matches!(pending.receipt, InferenceMsg::Finish { .. }));
            self.pending.insert(key, pending);
        }
    }

    /// Number of receipts waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Every waiting receipt with its key `(inference id, is a Finish)`.
    pub fn entries(&self) -> impl Iterator<Item = (&(Hash, bool), &Pending)> {
        self.pending.iter()
    }

    /// On the committed `chain`: the receipts to submit now (first submissions, and those that did not
    /// land within [`RESUBMIT_AFTER_BLOCKS`] and no longer wait in the host's mempool — `waiting` — since
    /// a second copy would fail once the first lands), and the keys of those done — on chain, or refused
    /// for good (the inference expired, or the request left the accepted time window unrecorded).
    pub fn plan(&mut self, chain: &State, waiting: &dyn Fn(&Msg) -> bool) -> (Vec<Msg>, Vec<(Hash, bool)>) {
        let height = chain.height();
        let params = &chain.params().inference;
        let mut due = Vec::new();
        let mut done = Vec::new();
        for (key, pending) in &mut self.pending {
            let (id, finish) = *key;
            let Some(request) = request_of(&pending.receipt) else { continue };
            let record = chain.inference.record(&id);
            let landed = match record {
                Some(r) if finish => r.response_hash.is_some() || r.status == InferenceStatus::Expired,
                Some(r) => r.transfer_agent.is_some() || r.status == InferenceStatus::Expired,
                None => false,
            };
            let stale = record.is_none()
                && params.check_request_time(chain.meta.time_ms, request.timestamp_ns).is_err();
            if landed || stale {
                done.push(*key);
                continue;
            }
            let msg = Msg::Inference(pending.receipt.clone());
            let due_again =
                pending.submitted_at == 0 || height >= pending.submitted_at + RESUBMIT_AFTER_BLOCKS;
            if due_again && !waiting(&msg) {
                pending.submitted_at = height.max(1);
                due.push(msg);
            }
        }
        for key in &done {
            self.pending.remove(key);
        }
        (due, done)
    }
}

//! What paid inference keeps on chain: receipts by inference id, the deadline, prune, finished and
//! settlement indexes, registered developers and each host's counts.

use gonka_primitives::{Address, Amount, Hash, codec_struct};
use serde::{Deserialize, Serialize};

use crate::table::Table;

/// Where an inference stands (`docs/spec/validation.md` §5; reference §4.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InferenceStatus {
    /// Started, escrow held, waiting for the executor's receipt.
    Started,
    /// Finished and charged; no validator has passed or failed it yet.
    Finished,
    /// Not finished by its deadline; refunded in full.
    Expired,
    /// A validator's re-scoring passed it, or a vote revalidated it.
    Validated,
    /// A validator failed it: hosts with power re-validate and vote until the vote's deadline.
    Voting,
    /// A vote found it invalid: the developer (and the vouching TA) got the whole cost back.
    Invalidated,
}

impl InferenceStatus {
    /// Stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            InferenceStatus::Started => "started",
            InferenceStatus::Finished => "finished",
            InferenceStatus::Expired => "expired",
            InferenceStatus::Validated => "validated",
            InferenceStatus::Voting => "voting",
            InferenceStatus::Invalidated => "invalidated",
        }
    }

    /// Whether the executor's receipt is in: the answer exists and is validated, voted on or settled.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            InferenceStatus::Finished
                | InferenceStatus::Validated
                | InferenceStatus::Voting
                | InferenceStatus::Invalidated
        )
    }
}

impl gonka_primitives::codec::Encode for InferenceStatus {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
}

impl gonka_primitives::codec::Decode for InferenceStatus {
    fn decode(
        reader: &mut gonka_primitives::codec::Reader<'_>,
    ) -> Result<Self, gonka_primitives::codec::DecodeError> {
        match <u8 as gonka_primitives::codec::Decode>::decode(reader)? {
            0 => Ok(InferenceStatus::Started),
            1 => Ok(InferenceStatus::Finished),
            2 => Ok(InferenceStatus::Expired),
            3 => Ok(InferenceStatus::Validated),
            4 => Ok(InferenceStatus::Voting),
            5 => Ok(InferenceStatus::Invalidated),
            tag => Err(gonka_primitives::codec::DecodeError::InvalidTag { what: "inference status", tag }),
        }
    }
}

/// One inference's receipt. Its escrow, while started, is the bank's hold `Escrow(id)`; its fee, from
/// the Finish until it settles, the hold `Fee(id)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inference {
    /// The paying account.
    pub requester: Address,
    /// The TA, once its Start is recorded.
    pub transfer_agent: Option<Address>,
    /// The TA the developer signed the request for: it vouched for the payment with its forward
    /// signature, and its collateral covered what the requester could not pay.
    pub vouched_by: Address,
    /// The executor.
    pub executor: Address,
    /// Model content hash.
    pub model: Hash,
    /// SHA-256 of the request body.
    pub prompt_hash: Hash,
    /// SHA-256 of the completion text, once finished.
    pub response_hash: Option<Hash>,
    /// Prompt tokens (the executor's count once finished).
    pub prompt_tokens: u32,
    /// Of the prompt tokens, those served from the executor's prefix cache (0 until finished).
    pub cached_tokens: u32,
    /// Completion tokens, once finished.
    pub completion_tokens: u32,
    /// Completion tokens reserved.
    pub max_tokens: u32,
    /// Price per token, locked at first sight.
    pub price_per_token: Amount,
    /// The share of that price a cached prompt token costs, ppm, locked with it
    /// (`docs/spec/inference.md` §4.2).
    pub cached_price_ppm: u32,
    /// What the requester paid in the end.
    pub cost: Amount,
    /// Status.
    pub status: InferenceStatus,
    /// Height of the first receipt.
    pub first_seen_height: u64,
    /// Height at which a started inference expires.
    pub deadline: u64,
    /// The signed request time.
    pub timestamp_ns: u64,
    /// The sampling seed the answer was generated with (the Finish commits to it).
    pub seed: u64,
    /// SHA-256 of the answer's recorded tokens and top-k logprobs (`docs/spec/validation.md` §1), once
    /// finished.
    pub logprobs_hash: Option<Hash>,
    /// Height of the Finish (0 until finished).
    pub finished_height: u64,
    /// The effective epoch at the Finish: whose validators and keys judge it.
    pub epoch: u64,
    /// Of `cost`, what the requester paid (the rest came from the vouching TA's collateral).
    pub requester_paid: Amount,
    /// Whether its fee left the `Fee(id)` hold (to the executor and validators, or back to the payers).
    pub fee_settled: bool,
    /// The height at which its fee is scheduled to settle, while it is held (its key in the
    /// settlement index).
    pub settles_at: u64,
    /// The time (ms) at which it is pruned, while it waits in the time-ordered prune index (its key
    /// there).
    pub prune_at_ms: u64,
}
codec_struct!(Inference {
    requester,
    transfer_agent,
    vouched_by,
    executor,
    model,
    prompt_hash,
    response_hash,
    prompt_tokens,
    cached_tokens,
    completion_tokens,
    max_tokens,
    price_per_token,
    cached_price_ppm,
    cost,
    status,
    first_seen_height,
    deadline,
    timestamp_ns,
    seed,
    logprobs_hash,
    finished_height,
    epoch,
    requester_paid,
    fee_settled,
    settles_at,
    prune_at_ms,
});

impl Inference {
    /// Of `cost`, what the vouching TA's collateral paid (`docs/spec/inference.md` §4.1).
    pub fn transfer_agent_paid(&self) -> Amount {
        Amount(self.cost.0.saturating_sub(self.requester_paid.0))
    }
}

/// A registered developer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Developer {
    /// Height of registration (0 for genesis developers).
    pub registered_height: u64,
}
codec_struct!(Developer { registered_height });

/// A host's record as an executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostStats {
    /// Inferences finished as executor.
    pub finished: u64,
    /// Inferences assigned to this host that expired unfinished.
    pub missed: u64,
}
codec_struct!(HostStats { finished, missed });

/// What a host did in one epoch (reference §6.4 `EpochPerformanceSummary`): reputation and the economy
/// read it. Inferences count in the epoch of their Finish, missed ones in the epoch of their expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EpochStats {
    /// Inferences finished as executor.
    pub finished: u64,
    /// Inferences drawn to it that expired unfinished.
    pub missed: u64,
    /// Of its inferences, those a validator passed or a vote revalidated.
    pub validated: u64,
    /// Of its inferences, those a vote invalidated.
    pub invalidated: u64,
    /// Validations it submitted of others' inferences.
    pub validations: u64,
    /// Of its validations and votes, those the vote's outcome went against.
    pub overturned: u64,
}
codec_struct!(EpochStats { finished, missed, validated, invalidated, validations, overturned });

tables! {
    /// Paid inference's state.
    pub struct Inferences {
        /// Receipts by inference id.
        pub(super) records: Table<Hash, Inference> = 1,
        /// Started inferences by (deadline height, id).
        pub(super) deadlines: Table<(u64, Hash), u8> = 2,
        /// Records by (time after which they are pruned, id): started and expired ones, and finished
        /// ones whose epoch retention ended before their time retention.
        pub(super) prunes: Table<(u64, Hash), u8> = 3,
        /// Registered developers.
        pub(super) developers: Table<Address, Developer> = 4,
        /// Each host's finished and missed counts as executor.
        pub(super) host_stats: Table<Address, HostStats> = 5,
        /// Finished inferences by (Finish height, id), kept until their epoch's validations and claims
        /// are over (`docs/spec/validation.md` §5.4): what validators scan and claims recompute.
        pub(crate) finished: Table<(u64, Hash), u8> = 6,
        /// Fees waiting in `Fee(id)` by (height at which they settle, id).
        pub(crate) settlements: Table<(u64, Hash), u8> = 7,
        /// Each host's counts per (epoch, host).
        pub(crate) epoch_stats: Table<(u64, Address), EpochStats> = 8,
    }
}

impl Inferences {
    /// The receipt of inference `id`, while kept.
    pub fn record(&self, id: &Hash) -> Option<&Inference> {
        self.records.get(id)
    }

    /// Every receipt kept, by id.
    pub fn records(&self) -> &Table<Hash, Inference> {
        &self.records
    }

    /// Whether `address` registered as a developer.
    pub fn is_developer(&self, address: &Address) -> bool {
        self.developers.contains_key(address)
    }

    /// Registered developers.
    pub fn developers(&self) -> &Table<Address, Developer> {
        &self.developers
    }

    /// `host`'s finished and missed counts.
    pub fn host_stats(&self, host: &Address) -> HostStats {
        self.host_stats.get(host).copied().unwrap_or_default()
    }

    /// What `host` did in `epoch`.
    pub fn epoch_stats(&self, epoch: u64, host: &Address) -> EpochStats {
        self.epoch_stats.get(&(epoch, *host)).copied().unwrap_or_default()
    }

    /// The inferences finished at heights in `heights` and still kept, in (height, id) order.
    pub fn finished_between(&self, heights: std::ops::Range<u64>) -> impl Iterator<Item = (u64, Hash)> + '_ {
        self.finished.range((heights.start, Hash::ZERO)..(heights.end, Hash::ZERO)).map(|(key, _)| *key)
    }

    /// Adds to `host`'s counts of `epoch`.
    pub(crate) fn count(&mut self, epoch: u64, host: Address, bump: impl FnOnce(&mut EpochStats)) {
        self.epoch_stats.upsert((epoch, host), bump);
    }

    /// Changes the record of `id` (the validation module's outcomes).
    pub(crate) fn update_record(&mut self, id: &Hash, change: impl FnOnce(&mut Inference)) {
        self.records.update(id, change);
    }

    /// Moves the settlement of `id`'s held fee to `height` (a vote postpones it).
    pub(crate) fn reschedule_settlement(&mut self, id: &Hash, height: u64) {
        let Some(at) = self.records.get(id).map(|r| r.settles_at) else { return };
        if self.settlements.contains_key(&(at, *id)) {
            self.settlements.remove(&(at, *id));
            self.settlements.insert((height, *id), 0);
            self.records.update(id, |r| r.settles_at = height);
        }
    }

    /// Takes `id`'s fee out of the settlement schedule (it was refunded).
    pub(crate) fn unschedule_settlement(&mut self, id: &Hash) {
        if let Some(at) = self.records.get(id).map(|r| r.settles_at) {
            self.settlements.remove(&(at, *id));
        }
    }
}

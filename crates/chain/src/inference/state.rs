//! What paid inference keeps on chain: receipts by inference id, the deadline and prune indexes,
//! registered developers and each host's served and missed counts.

use gonka_primitives::{Address, Amount, Hash, codec_struct};
use serde::{Deserialize, Serialize};

use crate::table::Table;

/// Where an inference stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InferenceStatus {
    /// Started, escrow held, waiting for the executor's receipt.
    Started,
    /// Finished and paid.
    Finished,
    /// Not finished by its deadline; refunded in full.
    Expired,
}

impl InferenceStatus {
    /// Stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            InferenceStatus::Started => "started",
            InferenceStatus::Finished => "finished",
            InferenceStatus::Expired => "expired",
        }
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
            tag => Err(gonka_primitives::codec::DecodeError::InvalidTag { what: "inference status", tag }),
        }
    }
}

/// One inference's receipt. Its escrow, while started, is the bank's hold `Escrow(id)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inference {
    /// The paying account.
    pub requester: Address,
    /// The TA, once its Start is recorded.
    pub transfer_agent: Option<Address>,
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
    /// Completion tokens, once finished.
    pub completion_tokens: u32,
    /// Completion tokens reserved.
    pub max_tokens: u32,
    /// Price per token, locked at first sight.
    pub price_per_token: Amount,
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
}
codec_struct!(Inference {
    requester,
    transfer_agent,
    executor,
    model,
    prompt_hash,
    response_hash,
    prompt_tokens,
    completion_tokens,
    max_tokens,
    price_per_token,
    cost,
    status,
    first_seen_height,
    deadline,
    timestamp_ns,
});

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

tables! {
    /// Paid inference's state.
    pub struct Inferences {
        /// Receipts by inference id.
        pub(super) records: Table<Hash, Inference> = 1,
        /// Started inferences by (deadline height, id).
        pub(super) deadlines: Table<(u64, Hash), u8> = 2,
        /// Records by (time after which they are pruned, id).
        pub(super) prunes: Table<(u64, Hash), u8> = 3,
        /// Registered developers.
        pub(super) developers: Table<Address, Developer> = 4,
        /// Each host's finished and missed counts as executor.
        pub(super) host_stats: Table<Address, HostStats> = 5,
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
}

//! What validation keeps on chain: each epoch's roster (power, validation keys, reputations, traffic),
//! every verdict and vote on an inference, open disputes, and each host's standing.

use gonka_primitives::{Address, Hash, VrfPublicKey, codec_struct};
use serde::{Deserialize, Serialize};

use super::msg::Verdict;
use crate::table::Table;

/// An epoch's validation facts, fixed when it becomes effective (`docs/spec/validation.md` §2): who
/// may validate and be selected is a function of these and nothing that changes during the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EpochRoster {
    /// Σ members' power.
    pub total_power: u128,
    /// Inferences finished in the epoch before (the traffic basis of reference §5.1).
    pub traffic: u64,
}
codec_struct!(EpochRoster { total_power, traffic });

/// One host in an epoch's roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its voting power when the epoch began.
    pub power: u64,
    /// The validation (VRF) key it committed with its PoC seed; none, and it can vote but not be
    /// selected.
    pub key: Option<VrfPublicKey>,
    /// Its reputation (0..=100) when the epoch began: it lowers how often its answers are validated.
    pub reputation: u8,
}
codec_struct!(Member { power, key, reputation });

/// A vote on a failed inference (`docs/spec/validation.md` §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispute {
    /// The validator whose failure opened it.
    pub accuser: Address,
    /// Last height a vote is accepted.
    pub deadline: u64,
    /// Power of the members other than the executor: the base of every majority.
    pub eligible_power: u128,
    /// Power that said valid (passing verdicts count as votes).
    pub valid_power: u128,
    /// Power that said invalid (failing verdicts count as votes).
    pub invalid_power: u128,
    /// `Some(true)` revalidated, `Some(false)` invalidated, `None` still open.
    pub outcome: Option<bool>,
}
codec_struct!(Dispute { accuser, deadline, eligible_power, valid_power, invalid_power, outcome });

/// A host's status (reference §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    /// In good standing.
    #[default]
    Active,
    /// Found cheating: out of executor draws and the validator set, no fees for the epoch.
    Invalid,
}

impl HostStatus {
    /// Stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            HostStatus::Active => "active",
            HostStatus::Invalid => "invalid",
        }
    }
}

impl gonka_primitives::codec::Encode for HostStatus {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
}

impl gonka_primitives::codec::Decode for HostStatus {
    fn decode(
        reader: &mut gonka_primitives::codec::Reader<'_>,
    ) -> Result<Self, gonka_primitives::codec::DecodeError> {
        match <u8 as gonka_primitives::codec::Decode>::decode(reader)? {
            0 => Ok(HostStatus::Active),
            1 => Ok(HostStatus::Invalid),
            tag => Err(gonka_primitives::codec::DecodeError::InvalidTag { what: "host status", tag }),
        }
    }
}

/// A host's standing: status, the evidence against it, and the credit its reputation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Standing {
    /// Its status.
    pub status: HostStatus,
    /// The epoch in which it was last found INVALID: its fees of that epoch go back to the payers.
    pub invalid_epoch: Option<u64>,
    /// Accumulated evidence of cheating (a one-sided sequential test, never below 0), in thousandths.
    pub evidence_milli: u64,
    /// Invalidations since its last validated answer.
    pub consecutive_invalidations: u32,
    /// Clean epochs, less missed-request penalties, in ppm of an epoch: its reputation's source.
    pub reputation_credit_ppm: u64,
    /// Answers of its that were validated, over its life.
    pub validated: u64,
    /// Answers of its that were invalidated, over its life.
    pub invalidated: u64,
}
codec_struct!(Standing {
    status,
    invalid_epoch,
    evidence_milli,
    consecutive_invalidations,
    reputation_credit_ppm,
    validated,
    invalidated,
});

tables! {
    /// Validation's state.
    pub struct Validation {
        /// Each kept epoch's roster facts.
        pub(super) rosters: Table<u64, EpochRoster> = 1,
        /// Each kept epoch's members, by (epoch, host).
        pub(super) members: Table<(u64, Address), Member> = 2,
        /// Verdicts by (inference, validator).
        pub(super) verdicts: Table<(Hash, Address), Verdict> = 3,
        /// Votes on disputed inferences by (inference, host): `true` valid. Verdicts count as votes.
        pub(super) votes: Table<(Hash, Address), bool> = 4,
        /// Disputes by inference.
        pub(super) disputes: Table<Hash, Dispute> = 5,
        /// Open disputes by (deadline, inference).
        pub(super) dispute_deadlines: Table<(u64, Hash), u8> = 6,
        /// Each host's standing.
        pub(super) standings: Table<Address, Standing> = 7,
    }
}

impl Validation {
    /// The roster facts of `epoch`, while kept.
    pub fn roster(&self, epoch: u64) -> Option<&EpochRoster> {
        self.rosters.get(&epoch)
    }

    /// `host`'s entry in the roster of `epoch`.
    pub fn member(&self, epoch: u64, host: &Address) -> Option<&Member> {
        self.members.get(&(epoch, *host))
    }

    /// The members of `epoch`, in address order.
    pub fn members_of(&self, epoch: u64) -> impl Iterator<Item = (Address, &Member)> + '_ {
        self.members
            .range((epoch, Address([0; 20]))..=(epoch, Address([0xff; 20])))
            .map(|((_, address), member)| (*address, member))
    }

    /// The verdicts on `inference`, in validator order.
    pub fn verdicts_on(&self, inference: &Hash) -> impl Iterator<Item = (Address, &Verdict)> + '_ {
        self.verdicts
            .range((*inference, Address([0; 20]))..=(*inference, Address([0xff; 20])))
            .map(|((_, validator), verdict)| (*validator, verdict))
    }

    /// `validator`'s verdict on `inference`.
    pub fn verdict(&self, inference: &Hash, validator: &Address) -> Option<&Verdict> {
        self.verdicts.get(&(*inference, *validator))
    }

    /// The votes on `inference`, in host order.
    pub fn votes_on(&self, inference: &Hash) -> impl Iterator<Item = (Address, bool)> + '_ {
        self.votes
            .range((*inference, Address([0; 20]))..=(*inference, Address([0xff; 20])))
            .map(|((_, host), valid)| (*host, *valid))
    }

    /// The dispute over `inference`, open or decided.
    pub fn dispute(&self, inference: &Hash) -> Option<&Dispute> {
        self.disputes.get(inference)
    }

    /// Every dispute kept, by inference.
    pub fn disputes(&self) -> &Table<Hash, Dispute> {
        &self.disputes
    }

    /// `host`'s standing.
    pub fn standing(&self, host: &Address) -> Standing {
        self.standings.get(host).copied().unwrap_or_default()
    }

    /// Whether `host` is INVALID now.
    pub fn is_invalid(&self, host: &Address) -> bool {
        self.standing(host).status == HostStatus::Invalid
    }
}

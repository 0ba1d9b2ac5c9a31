//! The economy's settlement, subsidy, claims and vesting (`docs/spec/economy.md`; reference §6.2–§6.5).
//!
//! Each epoch `N` is settled once, at the first height where every fee of its answers is final —
//! `settlement_height(N)`, the validation and vote windows after the epoch ends (§3). For each member of
//! the epoch's roster:
//! - **work coins**: its fees of the epoch's answers, after validation fee-sharing (the holds
//!   `Owed(N, host)`);
//! - **reward coins**: its pro-rata share, by the epoch's weight, of the subsidy `R(N)` minted now
//!   (decaying per epoch, capped for good at genesis' `subsidy_cap`);
//! - a host found INVALID in the epoch, the one before or since gets neither: its work coins burn (the reference leaves
//!   them in the module account, out of circulation) and its weight counts for nothing.
//!
//! Both go into the hold `Settled(host)` and an [`EpochSummary`] is kept. The host then claims them with
//! [`RewardsMsg::Claim`], revealing its epoch seed; the chain recomputes every selection the seed made and
//! the claim pays only if the host did all of them. A paid claim vests over the next settlements; an
//! unclaimed or forfeited settlement burns at the next one. Mints happen only here and burns only for
//! unclaimed, forfeited or INVALID coins (slashes come with collateral), so
//!
//! ```text
//! supply = genesis supply + minted − burned,   minted ≤ subsidy_cap
//! ```
//!
//! holds after every block ([`Module::check_invariants`]), next to the bank's
//! `supply = Σ balances + Σ holds`.

mod msg;
mod params;

use gonka_primitives::{AccountSignature, Address, Amount, VrfKey, codec_struct};
use serde::{Deserialize, Serialize};

pub use msg::{RewardsError, RewardsMsg};
pub use params::{
    GNK, MAX_VESTING_EPOCHS, RewardParams, Tokenomics, capped, epoch_reward, epochs_since, split_pro_rata,
    vesting_slots,
};

use crate::bank::Hold;
use crate::event::Event;
use crate::genesis::Genesis;
use crate::inference::InferenceStatus;
use crate::module::{BlockContext, InvariantViolation, Module, TxContext};
use crate::state::{GenesisError, State};
use crate::table::{Item, Table};
use crate::validation::{epoch_start, selected_inferences};

/// The first epoch of the subsidy schedule: the genesis epoch.
pub const GENESIS_EPOCH: u64 = 0;

/// Epochs of performance summaries kept (the explorer's history; reputation keeps its own credit).
pub const SUMMARY_EPOCHS_KEPT: u64 = 90;

/// The economy's running totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RewardTotals {
    /// The supply genesis created.
    pub genesis_supply: Amount,
    /// Most the subsidy may ever mint (genesis-only).
    pub subsidy_cap: Amount,
    /// Subsidy minted so far.
    pub minted: Amount,
    /// Burned: settlements not claimed in their window.
    pub burned_unclaimed: Amount,
    /// Burned: settlements whose claim showed missed validations.
    pub burned_forfeited: Amount,
    /// Burned: work coins of hosts found INVALID.
    pub burned_invalid: Amount,
    /// Burned: collateral slashed (INVALID, downtime).
    pub burned_slashed: Amount,
    /// Burned: transaction fees (`docs/spec/economy.md` §8).
    pub burned_fees: Amount,
    /// Work coins claimed so far.
    pub work_claimed: Amount,
    /// Reward coins claimed so far.
    pub rewards_claimed: Amount,
    /// The last epoch settled, if any.
    pub last_settled: Option<u64>,
}
codec_struct!(RewardTotals {
    genesis_supply,
    subsidy_cap,
    minted,
    burned_unclaimed,
    burned_forfeited,
    burned_invalid,
    burned_slashed,
    burned_fees,
    work_claimed,
    rewards_claimed,
    last_settled,
});

impl RewardTotals {
    /// Everything burned.
    pub fn burned(&self) -> Amount {
        Amount(
            self.burned_unclaimed.0
                + self.burned_forfeited.0
                + self.burned_invalid.0
                + self.burned_slashed.0
                + self.burned_fees.0,
        )
    }
}

/// Where a host's settlement of an epoch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    /// Nothing was settled to it (no work, no reward, or INVALID).
    Nothing,
    /// Waiting for its claim.
    Pending,
    /// Claimed: vesting.
    Claimed,
    /// The claim showed `missed` of `selected` validations not done: burned at the next settlement.
    Forfeited {
        /// Selected validations not done.
        missed: u64,
        /// Validations the seed selected.
        selected: u64,
    },
    /// Not claimed in its window: burned.
    Unclaimed,
}

impl gonka_primitives::codec::Encode for ClaimStatus {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ClaimStatus::Nothing => out.push(0),
            ClaimStatus::Pending => out.push(1),
            ClaimStatus::Claimed => out.push(2),
            ClaimStatus::Forfeited { missed, selected } => {
                out.push(3);
                missed.encode(out);
                selected.encode(out);
            }
            ClaimStatus::Unclaimed => out.push(4),
        }
    }
}

impl gonka_primitives::codec::Decode for ClaimStatus {
    fn decode(
        reader: &mut gonka_primitives::codec::Reader<'_>,
    ) -> Result<Self, gonka_primitives::codec::DecodeError> {
        match u8::decode(reader)? {
            0 => Ok(ClaimStatus::Nothing),
            1 => Ok(ClaimStatus::Pending),
            2 => Ok(ClaimStatus::Claimed),
            3 => Ok(ClaimStatus::Forfeited { missed: u64::decode(reader)?, selected: u64::decode(reader)? }),
            4 => Ok(ClaimStatus::Unclaimed),
            tag => Err(gonka_primitives::codec::DecodeError::InvalidTag { what: "claim status", tag }),
        }
    }
}

/// A host's epoch, as settled (reference `EpochPerformanceSummary`): what reputation and the explorer
/// read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochSummary {
    /// Its power in the epoch's roster.
    pub weight: u64,
    /// Inferences it finished as executor.
    pub inferences: u64,
    /// Inferences drawn to it that expired.
    pub missed: u64,
    /// Of its answers, those validated.
    pub validated: u64,
    /// Of its answers, those invalidated.
    pub invalidated: u64,
    /// Validations it submitted.
    pub validations: u64,
    /// Work coins settled (its fees after sharing).
    pub work: Amount,
    /// Reward coins settled (its subsidy share).
    pub reward: Amount,
    /// Found INVALID in the epoch or before its settlement: paid nothing.
    pub invalid: bool,
    /// Its claim.
    pub claim: ClaimStatus,
}
codec_struct!(EpochSummary {
    weight,
    inferences,
    missed,
    validated,
    invalidated,
    validations,
    work,
    reward,
    invalid,
    claim,
});

/// A settlement waiting for its claim: the coins are in `Settled(host)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    /// The settled epoch.
    pub epoch: u64,
    /// Work coins.
    pub work: Amount,
    /// Reward coins.
    pub reward: Amount,
    /// [`ClaimStatus::Pending`] or [`ClaimStatus::Forfeited`].
    pub status: ClaimStatus,
}
codec_struct!(Settlement { epoch, work, reward, status });

tables! {
    /// The economy's state (the coins themselves are bank holds).
    pub struct Rewards {
        /// Running totals.
        totals: Item<RewardTotals> = 1,
        /// The settlement waiting per host (at most one: older ones burn at each settlement).
        settlements: Table<Address, Settlement> = 2,
        /// Vesting: (epoch whose settlement releases it, host) → amount.
        vesting: Table<(u64, Address), Amount> = 3,
        /// Per-epoch summaries: (epoch, host) → summary.
        summaries: Table<(u64, Address), EpochSummary> = 4,
    }
}

impl Rewards {
    /// The running totals.
    pub fn totals(&self) -> RewardTotals {
        self.totals.get().copied().unwrap_or_default()
    }

    /// `host`'s settlement waiting for a claim.
    pub fn settlement(&self, host: &Address) -> Option<&Settlement> {
        self.settlements.get(host)
    }

    /// `host`'s vesting schedule: (releasing settlement's epoch, amount), in order.
    pub fn vesting_of(&self, host: &Address) -> Vec<(u64, Amount)> {
        self.vesting.iter().filter(|((_, h), _)| h == host).map(|((e, _), a)| (*e, *a)).collect()
    }

    /// `host`'s summary of `epoch`.
    pub fn summary(&self, epoch: u64, host: &Address) -> Option<&EpochSummary> {
        self.summaries.get(&(epoch, *host))
    }

    /// Every summary, by (epoch, host).
    pub fn summaries(&self) -> &Table<(u64, Address), EpochSummary> {
        &self.summaries
    }

    /// `host`'s summaries, oldest first.
    pub fn summaries_of(&self, host: &Address) -> Vec<(u64, EpochSummary)> {
        self.summaries.iter().filter(|((_, h), _)| h == host).map(|((e, _), s)| (*e, *s)).collect()
    }

    /// Every summary of `epoch`, in address order.
    pub fn summaries_in(&self, epoch: u64) -> impl Iterator<Item = (Address, &EpochSummary)> + '_ {
        self.summaries
            .range((epoch, Address([0; 20]))..=(epoch, Address([0xff; 20])))
            .map(|((_, a), s)| (*a, s))
    }
}

/// Counts a collateral slash the collateral module burned (`docs/spec/economy.md` §5).
pub(crate) fn record_slash(state: &mut State, amount: Amount) {
    bump(state, |t| t.burned_slashed = Amount(t.burned_slashed.0 + amount.0));
}

/// Counts a transaction fee the chain core burned (`docs/spec/economy.md` §8).
pub(crate) fn record_fee(state: &mut State, amount: Amount) {
    bump(state, |t| t.burned_fees = Amount(t.burned_fees.0 + amount.0));
}

/// Changes the running totals in place.
fn bump(state: &mut State, change: impl FnOnce(&mut RewardTotals)) {
    let mut totals = state.rewards.totals();
    change(&mut totals);
    state.rewards.totals.set(totals);
}

/// The height at which epoch `index` is settled: the first where every fee of its answers is final — an
/// answer finished at the epoch's last height settles after its validation window and any vote
/// (`docs/spec/validation.md` §5.3). None when that height does not fit a `u64`.
pub fn settlement_height(state: &State, index: u64) -> Option<u64> {
    let params = state.params();
    let next = epoch_start(&params.epoch, index.checked_add(1)?);
    let windows =
        params.validation.validation_window_blocks.checked_add(params.validation.vote_window_blocks)?;
    next.checked_add(windows)?.checked_add(1)
}

/// The first height at which a claim of epoch `index` is refused: when the epoch after next begins and
/// the epoch's records leave (`docs/spec/validation.md` §5.4).
pub fn claim_deadline(state: &State, index: u64) -> u64 {
    index.checked_add(2).map_or(u64::MAX, |after| epoch_start(&state.params().epoch, after))
}

impl Module for Rewards {
    const ID: u8 = 9;
    const NAME: &'static str = "rewards";
    type Msg = RewardsMsg;
    type Error = RewardsError;

    fn init_genesis(state: &mut State, genesis: &Genesis) -> Result<(), GenesisError> {
        let genesis_supply = state.bank.supply().total;
        let cap = genesis.tokenomics.subsidy_cap;
        let total = genesis_supply
            .0
            .checked_add(cap.0)
            .ok_or_else(|| GenesisError::Invalid("genesis supply and subsidy cap overflow".into()))?;
        if let Some(expected) = genesis.tokenomics.total_supply
            && expected.0 != total
        {
            return Err(GenesisError::Invalid(format!(
                "genesis allocates {genesis_supply} ngonka and the subsidy cap is {cap}: {total} in all, not the \
                 total supply {expected}"
            )));
        }
        state.rewards.totals.set(RewardTotals {
            genesis_supply,
            subsidy_cap: cap,
            ..RewardTotals::default()
        });
        Ok(())
    }

    fn check(state: &State, tx: &TxContext, msg: &RewardsMsg) -> Result<(), RewardsError> {
        match msg {
            RewardsMsg::Claim { epoch, seed } => check_claim(state, tx, *epoch, seed),
        }
    }

    fn apply(state: &mut State, tx: &TxContext, msg: &RewardsMsg) -> Result<Vec<Event>, RewardsError> {
        match msg {
            // `check` passed on this very state (the `Module` contract).
            RewardsMsg::Claim { epoch, seed } => claim(state, tx.sender, *epoch, seed),
        }
    }

    /// Settles the next epoch once its settlement height is reached.
    fn end_block(state: &mut State, block: &BlockContext) -> Result<Vec<Event>, InvariantViolation> {
        let next = state.rewards.totals().last_settled.map_or(GENESIS_EPOCH, |e| e.saturating_add(1));
        match settlement_height(state, next) {
            Some(height) if block.height >= height => settle(state, next),
            _ => Ok(Vec::new()),
        }
    }

    fn check_invariants(state: &State) -> Result<(), InvariantViolation> {
        let broken = |detail: String| Err(InvariantViolation::new("supply_accounted", detail));
        check_supply(state)?;
        for (host, settlement) in state.rewards.settlements.iter() {
            let held = state.bank.held(&Hold::Settled(*host));
            if held.0 != settlement.work.0 + settlement.reward.0 {
                return broken(format!("{host} has {held} settled, its settlement says {settlement:?}"));
            }
        }
        let mut vesting = std::collections::BTreeMap::<Address, u128>::new();
        for ((_, host), amount) in state.rewards.vesting.iter() {
            *vesting.entry(*host).or_default() += amount.0;
        }
        for (hold, amount) in state.bank.holds().iter() {
            match hold {
                Hold::Settled(host) if state.rewards.settlements.get(host).is_none() => {
                    return broken(format!("{host} holds {amount} settled without a settlement"));
                }
                Hold::Vesting(host) if vesting.get(host) != Some(&amount.0) => {
                    return broken(format!(
                        "{host} holds {amount} vesting, its schedule says {:?}",
                        vesting.get(host)
                    ));
                }
                _ => {}
            }
        }
        for (host, amount) in vesting {
            if state.bank.held(&Hold::Vesting(host)).0 != amount {
                return broken(format!("{host}'s schedule holds {amount} without the coins"));
            }
        }
        Ok(())
    }
}

/// `supply = genesis supply + minted − burned` and `minted ≤ subsidy_cap`, from the running totals: O(1).
pub fn check_supply(state: &State) -> Result<(), InvariantViolation> {
    let broken = |detail: String| Err(InvariantViolation::new("supply_accounted", detail));
    let totals = state.rewards.totals();
    if totals.minted > totals.subsidy_cap {
        return broken(format!("minted {} above the cap {}", totals.minted, totals.subsidy_cap));
    }
    let supply = state.bank.supply().total.0;
    if (totals.genesis_supply.0 + totals.minted.0).checked_sub(totals.burned().0) != Some(supply) {
        return broken(format!(
            "supply {supply} ≠ genesis {} + minted {} − burned {}",
            totals.genesis_supply,
            totals.minted,
            totals.burned()
        ));
    }
    Ok(())
}

/// The cheap checks of a claim: a pending settlement of that epoch, in its window, with the seed of the
/// committed key. The selections are recomputed only when it applies.
fn check_claim(
    state: &State,
    tx: &TxContext,
    epoch: u64,
    seed: &AccountSignature,
) -> Result<(), RewardsError> {
    let settlement = state.rewards.settlement(&tx.sender).ok_or(RewardsError::NothingToClaim(tx.sender))?;
    if settlement.epoch != epoch {
        return Err(RewardsError::WrongEpoch { waiting: settlement.epoch, asked: epoch });
    }
    if let ClaimStatus::Forfeited { missed, .. } = settlement.status {
        return Err(RewardsError::Forfeited(epoch, missed));
    }
    let closed = claim_deadline(state, epoch);
    if tx.height >= closed {
        return Err(RewardsError::WindowClosed { epoch, closed });
    }
    // A host without a key in the epoch's roster (work drawn to it in the epoch before, finished in
    // this one; a genesis host without a key) was never selected: nothing to reveal or check.
    let committed = state.validation.member(epoch, &tx.sender).and_then(|m| m.key);
    if committed.is_some_and(|key| key != VrfKey::from_seed(&seed.0).public_key()) {
        return Err(RewardsError::WrongSeed(epoch));
    }
    Ok(())
}

/// Whether `host` did its duty on the selected inference `id`: its verdict or vote is on chain, or others
/// invalidated the answer before it could (verdicts are refused after that).
fn duty_done(state: &State, id: &gonka_primitives::Hash, host: &Address) -> bool {
    state.validation.verdict(id, host).is_some()
        || state.validation.votes_on(id).any(|(voter, _)| voter == *host)
        || state.inference.record(id).is_some_and(|r| r.status == InferenceStatus::Invalidated)
}

/// Applies a claim that passed [`check_claim`] (reference §5.2, §6.4).
fn claim(
    state: &mut State,
    host: Address,
    epoch: u64,
    seed: &AccountSignature,
) -> Result<Vec<Event>, RewardsError> {
    let keyed = state.validation.member(epoch, &host).and_then(|m| m.key).is_some();
    let selected = if keyed {
        selected_inferences(state, epoch, &host, &seed.0).map_err(|_| RewardsError::WrongSeed(epoch))?
    } else {
        Vec::new()
    };
    let missed = selected.iter().filter(|id| !duty_done(state, id, &host)).count() as u64;
    let selected = selected.len() as u64;
    let Some(settlement) = state.rewards.settlement(&host).copied() else {
        return Err(RewardsError::NothingToClaim(host));
    };
    if missed > 0 {
        let status = ClaimStatus::Forfeited { missed, selected };
        state.rewards.settlements.update(&host, |s| s.status = status);
        state.rewards.summaries.update(&(epoch, host), |s| s.claim = status);
        return Ok(vec![
            Event::new("rewards_forfeited")
                .with("host", host)
                .with("epoch", epoch)
                .with("selected", selected)
                .with("missed", missed)
                .with("amount", settlement.work.0 + settlement.reward.0),
        ]);
    }
    let params = state.params().rewards;
    let first_release = epoch.saturating_add(1);
    let mut paid_now = Amount::ZERO;
    for (amount, slots) in
        [(settlement.work, params.work_vesting_epochs), (settlement.reward, params.reward_vesting_epochs)]
    {
        if slots == 0 {
            state.bank.release(Hold::Settled(host), host, amount)?;
            paid_now = Amount(paid_now.0 + amount.0);
            continue;
        }
        for (i, slot) in vesting_slots(amount, slots).into_iter().enumerate() {
            if slot == Amount::ZERO {
                continue;
            }
            state.bank.transfer_held(Hold::Settled(host), Hold::Vesting(host), slot)?;
            let release = first_release.saturating_add(i as u64);
            state.rewards.vesting.upsert((release, host), |a| *a = Amount(a.0 + slot.0));
        }
    }
    state.rewards.settlements.remove(&host);
    state.rewards.summaries.update(&(epoch, host), |s| s.claim = ClaimStatus::Claimed);
    bump(state, |t| {
        t.work_claimed = Amount(t.work_claimed.0 + settlement.work.0);
        t.rewards_claimed = Amount(t.rewards_claimed.0 + settlement.reward.0);
    });
    Ok(vec![
        Event::new("rewards_claimed")
            .with("host", host)
            .with("epoch", epoch)
            .with("selected", selected)
            .with("work", settlement.work.0)
            .with("reward", settlement.reward.0)
            .with("paid_now", paid_now.0),
    ])
}

/// Settles epoch `index` (reference §6.4, `docs/spec/economy.md` §3): burns what the previous settlement
/// left unclaimed, releases the vesting due, then pays the epoch's work and mints its subsidy into each
/// host's `Settled` hold.
fn settle(state: &mut State, index: u64) -> Result<Vec<Event>, InvariantViolation> {
    let broken = |e: crate::bank::BankError| {
        InvariantViolation::new("supply_accounted", format!("settling epoch {index}: {e}"))
    };
    let mut events = Vec::new();

    // 1. Settlements nobody claimed (or whose claim failed) burn.
    let left: Vec<(Address, Settlement)> = state.rewards.settlements.iter().map(|(a, s)| (*a, *s)).collect();
    for (host, settlement) in left {
        let amount = state.bank.held(&Hold::Settled(host));
        state.bank.burn_held(Hold::Settled(host), amount).map_err(broken)?;
        state.rewards.settlements.remove(&host);
        let forfeited = matches!(settlement.status, ClaimStatus::Forfeited { .. });
        if forfeited {
            bump(state, |t| t.burned_forfeited = Amount(t.burned_forfeited.0 + amount.0));
        } else {
            bump(state, |t| t.burned_unclaimed = Amount(t.burned_unclaimed.0 + amount.0));
            state.rewards.summaries.update(&(settlement.epoch, host), |s| s.claim = ClaimStatus::Unclaimed);
        }
        events.push(
            Event::new("rewards_burned")
                .with("host", host)
                .with("epoch", settlement.epoch)
                .with("amount", amount.0)
                .with("reason", if forfeited { "forfeited" } else { "unclaimed" }),
        );
    }

    // 2. Vesting due at this settlement.
    let due: Vec<((u64, Address), Amount)> =
        state.rewards.vesting.range(..=(index, Address([0xff; 20]))).map(|(k, a)| (*k, *a)).collect();
    for ((release, host), amount) in due {
        state.bank.release(Hold::Vesting(host), host, amount).map_err(broken)?;
        state.rewards.vesting.remove(&(release, host));
        events.push(Event::new("vesting_released").with("host", host).with("amount", amount.0));
    }

    // 3. The epoch's work and subsidy.
    let members: Vec<(Address, u64)> =
        state.validation.members_of(index).map(|(a, m)| (a, m.power)).collect();
    let invalid = |state: &State, host: &Address| crate::validation::invalid_for_epoch(state, host, index);
    let weights: Vec<(Address, u64)> =
        members.iter().map(|(a, w)| (*a, if invalid(state, a) { 0 } else { *w })).collect();
    let reward = epochs_since(GENESIS_EPOCH, index)
        .map(|e| epoch_reward(&state.params().rewards, e))
        .unwrap_or(Amount::ZERO);
    let weighted = weights.iter().any(|(_, w)| *w > 0);
    let totals = state.rewards.totals();
    let minted = if weighted { capped(reward, totals.minted, totals.subsidy_cap) } else { Amount::ZERO };
    let shares = split_pro_rata(minted, &weights).ok_or_else(|| {
        InvariantViolation::new(
            "supply_accounted",
            format!("the weights of epoch {index} overflow the split"),
        )
    })?;
    let mut hosts: std::collections::BTreeMap<Address, (u64, Amount, Amount)> =
        members.iter().map(|(a, w)| (*a, (*w, Amount::ZERO, Amount::ZERO))).collect();
    for (host, share) in shares {
        hosts.entry(host).or_default().2 = share;
    }
    // Every fee owed for this epoch or, after a change of windows made an earlier epoch settle before
    // its last fee, for one before it (`docs/spec/economy.md` §3): nothing stays owed for good.
    let owed: Vec<(u64, Address, Amount)> = state
        .bank
        .holds()
        .range(Hold::Owed(0, Address([0; 20]))..=Hold::Owed(index, Address([0xff; 20])))
        .filter_map(|(hold, amount)| match hold {
            Hold::Owed(epoch, host) => Some((*epoch, *host, *amount)),
            _ => None,
        })
        .collect();
    for (epoch, host, amount) in owed {
        if epoch != index {
            state
                .bank
                .transfer_held(Hold::Owed(epoch, host), Hold::Owed(index, host), amount)
                .map_err(broken)?;
        }
        let entry = hosts.entry(host).or_default();
        entry.1 = Amount(entry.1.0 + amount.0);
    }
    let downtime_ppm = state.params().collateral.downtime_missed_ppm;
    for (host, (weight, work, share)) in hosts {
        let stats = state.inference.epoch_stats(index, &host);
        let is_invalid = invalid(state, &host);
        // Downtime (reference §6.7): more than the threshold of the answers drawn to it missed.
        let drawn = u128::from(stats.finished) + u128::from(stats.missed);
        if drawn > 0 && u128::from(stats.missed) * 1_000_000 > u128::from(downtime_ppm) * drawn {
            let fraction = state.params().collateral.slash_downtime_ppm;
            events.extend(crate::collateral::slash(state, host, fraction, "downtime").map_err(broken)?);
        }
        if is_invalid {
            state.bank.burn_held(Hold::Owed(index, host), work).map_err(broken)?;
            bump(state, |t| t.burned_invalid = Amount(t.burned_invalid.0 + work.0));
        } else {
            state.bank.transfer_held(Hold::Owed(index, host), Hold::Settled(host), work).map_err(broken)?;
            state.bank.mint_held(Hold::Settled(host), share).map_err(broken)?;
        }
        let (work, share) = if is_invalid { (Amount::ZERO, Amount::ZERO) } else { (work, share) };
        let status = if work.0 + share.0 > 0 { ClaimStatus::Pending } else { ClaimStatus::Nothing };
        if status == ClaimStatus::Pending {
            state.rewards.settlements.insert(host, Settlement { epoch: index, work, reward: share, status });
        }
        state.rewards.summaries.insert(
            (index, host),
            EpochSummary {
                weight,
                inferences: stats.finished,
                missed: stats.missed,
                validated: stats.validated,
                invalidated: stats.invalidated,
                validations: stats.validations,
                work,
                reward: share,
                invalid: is_invalid,
                claim: status,
            },
        );
        events.push(
            Event::new("epoch_settled_host")
                .with("host", host)
                .with("epoch", index)
                .with("work", work.0)
                .with("reward", share.0)
                .with("invalid", is_invalid),
        );
    }
    bump(state, |t| {
        t.minted = Amount(t.minted.0 + minted.0);
        t.last_settled = Some(index);
    });
    let totals = state.rewards.totals();
    if let Some(old) = index.checked_sub(SUMMARY_EPOCHS_KEPT) {
        state.rewards.summaries.remove_range(..=(old, Address([0xff; 20])));
    }
    events.push(
        Event::new("epoch_settled")
            .with("epoch", index)
            .with("subsidy", reward.0)
            .with("minted", minted.0)
            .with("total_minted", totals.minted.0),
    );
    Ok(events)
}

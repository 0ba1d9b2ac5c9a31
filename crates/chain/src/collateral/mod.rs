//! Host collateral (`docs/spec/inference.md` §4.1): money a host locks so that what it vouches for
//! is paid. A transfer agent's forward signature vouches for the request it forwards: when the
//! developer cannot pay a delivered answer (its escrow never landed and its balance is short), the
//! shortfall is taken from the TA's collateral, then from its unbonding collateral
//! ([`charge_vouched`]). Executors serve a TA's requests only within their share of its collateral
//! (`gonka_host::exposure`), so every delivered answer is paid.
//!
//! Withdrawing is not instant: withdrawn collateral sits in `Unbonding(host)` for `unbonding_ms` of
//! block time, longer than any vouched request can still be settled (the request window), so a TA cannot
//! vouch, withdraw and leave executors unpaid. The tokenomics issue will slash it too.

mod msg;

use gonka_primitives::{Address, Amount, codec_struct};
use serde::{Deserialize, Serialize};

pub use msg::{CollateralError, CollateralMsg, DoubleVote};

use crate::bank::{BankError, Hold};
use crate::event::Event;
use crate::genesis::Genesis;
use crate::module::{BlockContext, InvariantViolation, Module, TxContext};
use crate::state::{GenesisError, State};
use crate::table::Table;

/// Most withdrawals one host may have unbonding at once (each is a row until released).
pub const MAX_UNBONDING_PER_HOST: usize = 16;

/// Collateral parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollateralParams {
    /// Block time a withdrawal waits before it returns to the balance.
    pub unbonding_ms: u64,
    /// Share of its collateral (and unbonding collateral) a host loses on becoming INVALID, ppm
    /// (reference §6.7 `slash_fraction_invalid`).
    #[serde(default = "default_slash_invalid")]
    pub slash_invalid_ppm: u64,
    /// Share it loses for downtime, ppm (reference `slash_fraction_downtime`).
    #[serde(default = "default_slash_downtime")]
    pub slash_downtime_ppm: u64,
    /// Downtime: missed / (finished + missed) of an epoch above this, ppm, at its settlement (reference
    /// `downtime_missed_percentage_threshold`).
    #[serde(default = "default_downtime_missed")]
    pub downtime_missed_ppm: u64,
    /// Epochs before collateral weighs on PoC weight (reference `grace_period_end_epoch`, 180).
    #[serde(default)]
    pub weight_grace_epochs: u64,
    /// Share of its PoC weight a host gets without collateral once the grace period is over, ppm
    /// (reference `base_weight_ratio` 0.2).
    #[serde(default = "default_base_weight")]
    pub base_weight_ppm: u64,
    /// Collateral that backs one unit of PoC weight above the base share (reference
    /// `collateral_per_weight_unit`).
    #[serde(default = "default_per_weight_unit")]
    pub collateral_per_weight_unit: Amount,
    /// Share of its collateral a host loses for a double vote, ppm (the reference slashes collateral
    /// by the staking module's double-sign fraction, 5 %).
    #[serde(default = "default_slash_double_sign")]
    pub slash_double_sign_ppm: u64,
    /// Blocks after its height a double vote may still be reported.
    #[serde(default = "default_evidence_max_age")]
    pub evidence_max_age_blocks: u64,
}

fn default_slash_double_sign() -> u64 {
    50_000
}

fn default_evidence_max_age() -> u64 {
    10_000
}
codec_struct!(CollateralParams {
    unbonding_ms,
    slash_invalid_ppm,
    slash_downtime_ppm,
    downtime_missed_ppm,
    weight_grace_epochs,
    base_weight_ppm,
    collateral_per_weight_unit,
    slash_double_sign_ppm,
    evidence_max_age_blocks
});

fn default_base_weight() -> u64 {
    200_000
}

/// One GNK per unit of weight: a devnet host's 1,000 GNK backs 1,000 nonces a stage.
fn default_per_weight_unit() -> Amount {
    Amount(gonka_primitives::amount::NGONKA_PER_GNK)
}

fn default_slash_invalid() -> u64 {
    200_000
}

fn default_slash_downtime() -> u64 {
    100_000
}

fn default_downtime_missed() -> u64 {
    50_000
}

impl Default for CollateralParams {
    fn default() -> CollateralParams {
        // Five minutes: past the 90 s request window and the 180 s record retention with room for
        // slow blocks.
        CollateralParams {
            unbonding_ms: 300_000,
            slash_invalid_ppm: default_slash_invalid(),
            slash_downtime_ppm: default_slash_downtime(),
            downtime_missed_ppm: default_downtime_missed(),
            weight_grace_epochs: 0,
            base_weight_ppm: default_base_weight(),
            collateral_per_weight_unit: default_per_weight_unit(),
            slash_double_sign_ppm: default_slash_double_sign(),
            evidence_max_age_blocks: default_evidence_max_age(),
        }
    }
}

impl CollateralParams {
    /// Mainnet: the reference's 180-epoch grace period, and 0.01 GNK per unit of weight (a host of a
    /// million nonces a stage backs them with 10,000 GNK, the PoC entry collateral; the reference's
    /// 4.2 ngonka per unit makes the requirement negligible, §12 item 26).
    pub fn mainnet() -> CollateralParams {
        CollateralParams {
            weight_grace_epochs: 180,
            collateral_per_weight_unit: Amount(gonka_primitives::amount::NGONKA_PER_GNK / 100),
            ..CollateralParams::default()
        }
    }
}

/// The PoC weight `weight` of `host` counts for once collateral weighs (reference §3.10, §6.7): during
/// the grace period all of it; then the base share unconditionally and the rest only as far as its
/// collateral backs it, `base + min(weight − base, collateral / collateral_per_weight_unit)`.
pub fn backed_weight(state: &State, host: &Address, weight: u64, epoch: u64) -> u64 {
    let params = &state.params().collateral;
    if epoch < params.weight_grace_epochs {
        return weight;
    }
    let base = u128::from(weight) * u128::from(params.base_weight_ppm.min(1_000_000)) / PPM;
    let rest = u128::from(weight) - base;
    let backed = collateral_of(state, host).0 / params.collateral_per_weight_unit.0.max(1);
    u64::try_from(base + rest.min(backed)).unwrap_or(weight)
}

/// Parts per million.
const PPM: u128 = 1_000_000;

/// Burns `fraction_ppm` of `host`'s collateral and of its unbonding collateral (reference §6.7: a
/// withdrawal is slashable until released) for `reason`; returns the event, with the amount burned.
pub fn slash(
    state: &mut State,
    host: Address,
    fraction_ppm: u64,
    reason: &'static str,
) -> Result<Vec<Event>, BankError> {
    let fraction = u128::from(fraction_ppm.min(1_000_000));
    let share = |amount: u128| amount / PPM * fraction + amount % PPM * fraction / PPM;
    let mut burned = 0u128;
    for hold in [Hold::Collateral(host), Hold::Unbonding(host)] {
        let part = share(state.bank.held(&hold).0);
        state.bank.burn_held(hold, Amount(part))?;
        burned += part;
    }
    // Each waiting withdrawal shrinks by the same share, so none is paid what was slashed.
    let rows: Vec<((u64, Address), Amount)> =
        state.collateral.unbonding.iter().filter(|((_, h), _)| *h == host).map(|(k, a)| (*k, *a)).collect();
    for (key, amount) in rows {
        state.collateral.unbonding.insert(key, Amount(amount.0 - share(amount.0)));
    }
    if burned == 0 {
        return Ok(Vec::new());
    }
    crate::rewards::record_slash(state, Amount(burned));
    Ok(vec![
        Event::new("collateral_slashed").with("host", host).with("amount", burned).with("reason", reason),
    ])
}

tables! {
    /// The collateral module's state (the amounts themselves are bank holds).
    pub struct Collateral {
        /// Withdrawals waiting: (release time ms, host) → amount.
        unbonding: Table<(u64, Address), Amount> = 1,
        /// Double votes slashed: (height, host, round × 2 + kind), kept for the evidence's age.
        double_votes: Table<(u64, (Address, u64)), ()> = 2,
    }
}

impl Collateral {
    /// Withdrawals waiting, by release time.
    pub fn unbonding(&self) -> &Table<(u64, Address), Amount> {
        &self.unbonding
    }
}

/// The host whose validator signed both votes of `evidence`, if it proves a double vote at most
/// `evidence_max_age_blocks` old that was not slashed yet (`docs/spec/economy.md` §5).
fn check_double_vote(state: &State, height: u64, evidence: &DoubleVote) -> Result<Address, CollateralError> {
    let bad = |why| Err(CollateralError::BadEvidence(why));
    let consensus = gonka_primitives::consensus::PREVOTE..=gonka_primitives::consensus::PRECOMMIT;
    if !consensus.contains(&evidence.kind) {
        return bad("unknown vote kind");
    }
    if evidence.first == evidence.second {
        return bad("the two votes are for the same value");
    }
    let max_age = state.params().collateral.evidence_max_age_blocks;
    if evidence.height >= height || evidence.height.saturating_add(max_age) < height {
        return bad("the height is not a past height within the evidence age");
    }
    let Some(host) = state
        .hosts
        .participants()
        .iter()
        .find(|(_, p)| p.validator_key == evidence.validator)
        .map(|(a, _)| *a)
    else {
        return bad("the key is no host's validator key");
    };
    if state.collateral.double_votes.get(&double_vote_key(host, evidence)).is_some() {
        return Err(CollateralError::EvidenceSeen);
    }
    for (value, signature) in
        [(&evidence.first, &evidence.first_signature), (&evidence.second, &evidence.second_signature)]
    {
        if evidence.validator.verify(&evidence.sign_bytes(value.as_ref()), signature).is_err() {
            return bad("a vote's signature does not verify");
        }
    }
    Ok(host)
}

/// The row of `host`'s double vote: one per (height, round, kind).
fn double_vote_key(host: Address, evidence: &DoubleVote) -> (u64, (Address, u64)) {
    (evidence.height, (host, u64::from(evidence.round) * 2 + u64::from(evidence.kind)))
}

/// `host`'s collateral that vouches for new requests.
pub fn collateral_of(state: &State, host: &Address) -> Amount {
    state.bank.held(&Hold::Collateral(*host))
}

/// Takes up to `amount` for a vouched request from `ta`'s collateral, then from its unbonding
/// collateral, into `to`; returns what it took.
pub fn charge_vouched(state: &mut State, ta: Address, to: Hold, amount: Amount) -> Result<Amount, BankError> {
    let mut taken = Amount::ZERO;
    for from in [Hold::Collateral(ta), Hold::Unbonding(ta)] {
        let left = Amount(amount.0 - taken.0);
        let part = left.min(state.bank.held(&from));
        state.bank.transfer_held(from, to, part)?;
        taken = Amount(taken.0 + part.0);
    }
    Ok(taken)
}

impl Module for Collateral {
    const ID: u8 = 7;
    const NAME: &'static str = "collateral";
    type Msg = CollateralMsg;
    type Error = CollateralError;

    fn init_genesis(state: &mut State, genesis: &Genesis) -> Result<(), GenesisError> {
        for host in &genesis.participants {
            if host.collateral == Amount::ZERO {
                continue;
            }
            state.bank.escrow(host.address, Hold::Collateral(host.address), host.collateral).map_err(
                |_| {
                    GenesisError::Invalid(format!(
                        "host {} locks collateral {} above its genesis balance",
                        host.address, host.collateral
                    ))
                },
            )?;
        }
        Ok(())
    }

    fn check(state: &State, tx: &TxContext, msg: &CollateralMsg) -> Result<(), CollateralError> {
        if !state.hosts.is_host(&tx.sender) {
            return Err(CollateralError::NotAHost(tx.sender));
        }
        match msg {
            CollateralMsg::ReportDoubleVote { evidence } => {
                check_double_vote(state, tx.height, evidence).map(|_| ())
            }
            CollateralMsg::Deposit { amount } | CollateralMsg::Withdraw { amount }
                if *amount == Amount::ZERO =>
            {
                Err(CollateralError::ZeroAmount)
            }
            CollateralMsg::Deposit { amount } => {
                let balance = state.bank.balance(&tx.sender);
                if balance < *amount {
                    return Err(BankError::InsufficientFunds { balance, needed: *amount }.into());
                }
                Ok(())
            }
            CollateralMsg::Withdraw { amount } => {
                let held = collateral_of(state, &tx.sender);
                if held < *amount {
                    return Err(CollateralError::NotEnoughCollateral { held, needed: *amount });
                }
                let waiting =
                    state.collateral.unbonding.keys().filter(|(_, host)| *host == tx.sender).count();
                if waiting >= MAX_UNBONDING_PER_HOST {
                    return Err(CollateralError::TooManyUnbonding(waiting));
                }
                Ok(())
            }
        }
    }

    fn apply(state: &mut State, tx: &TxContext, msg: &CollateralMsg) -> Result<Vec<Event>, CollateralError> {
        match msg {
            CollateralMsg::ReportDoubleVote { evidence } => {
                let host = check_double_vote(state, tx.height, evidence)?;
                state.collateral.double_votes.insert(double_vote_key(host, evidence), ());
                let fraction = state.params().collateral.slash_double_sign_ppm;
                let mut events = slash(state, host, fraction, "double_vote")?;
                events.push(
                    Event::new("double_vote")
                        .with("host", host)
                        .with("height", evidence.height)
                        .with("round", evidence.round)
                        .with("reporter", tx.sender),
                );
                Ok(events)
            }
            CollateralMsg::Deposit { amount } => {
                state.bank.escrow(tx.sender, Hold::Collateral(tx.sender), *amount)?;
                Ok(vec![Event::new("collateral_deposited").with("host", tx.sender).with("amount", amount.0)])
            }
            CollateralMsg::Withdraw { amount } => {
                state.bank.transfer_held(Hold::Collateral(tx.sender), Hold::Unbonding(tx.sender), *amount)?;
                let release_ms = state.meta.time_ms.saturating_add(state.params().collateral.unbonding_ms);
                let key = (release_ms, tx.sender);
                let total = state.collateral.unbonding.get(&key).copied().unwrap_or(Amount::ZERO);
                state.collateral.unbonding.insert(key, Amount(total.0.saturating_add(amount.0)));
                Ok(vec![
                    Event::new("collateral_unbonding")
                        .with("host", tx.sender)
                        .with("amount", amount.0)
                        .with("release_ms", release_ms),
                ])
            }
        }
    }

    fn debits(_state: &State, tx: &TxContext, msg: &CollateralMsg) -> Vec<(Address, Amount)> {
        match msg {
            CollateralMsg::Deposit { amount } => vec![(tx.sender, *amount)],
            CollateralMsg::Withdraw { .. } | CollateralMsg::ReportDoubleVote { .. } => Vec::new(),
        }
    }

    /// Releases every withdrawal whose time has come, in (time, host) order. What vouched requests
    /// took from the unbonding hold meanwhile is gone; the release pays out what is left, up to the
    /// entry's amount.
    fn end_block(state: &mut State, block: &BlockContext) -> Result<Vec<Event>, InvariantViolation> {
        let due: Vec<((u64, Address), Amount)> = state
            .collateral
            .unbonding
            .iter()
            .take_while(|((release_ms, _), _)| *release_ms <= block.time_ms)
            .map(|(key, amount)| (*key, *amount))
            .collect();
        let mut events = Vec::new();
        for ((release_ms, host), amount) in due {
            state.collateral.unbonding.remove(&(release_ms, host));
            let paid = amount.min(state.bank.held(&Hold::Unbonding(host)));
            state.bank.release(Hold::Unbonding(host), host, paid).map_err(|e| match e {
                BankError::Invariant(v) => v,
                other => InvariantViolation::new("holds_cover_their_releases", other.to_string()),
            })?;
            events.push(Event::new("collateral_released").with("host", host).with("amount", paid.0));
        }
        // Double votes older than the evidence age can no longer be reported: their records go.
        let max_age = state.params().collateral.evidence_max_age_blocks;
        if let Some(before) = block.height.checked_sub(max_age) {
            state.collateral.double_votes.remove_range(..(before, (Address([0; 20]), 0)));
        }
        Ok(events)
    }
}

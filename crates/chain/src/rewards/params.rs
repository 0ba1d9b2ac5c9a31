//! The economy's parameters and its pure rules (`docs/spec/economy.md` §2–§5; reference §6.1–§6.5):
//! the epoch subsidy `R(e)`, its pro-rata split with the remainder rule and the cap, and vesting slots.
//! Integers and 18-place fixed point only: the reference computes `exp` in floating point (§12), we do
//! not.

use gonka_primitives::{Address, Amount, Decimal, codec_struct};
use serde::{Deserialize, Serialize};

use crate::params::ParamsError;

/// One GNK in ngonka.
pub const GNK: u128 = 1_000_000_000;

/// What genesis fixes once (reference §6.1 GenesisOnlyParams): the subsidy cap and, optionally, the total
/// supply the genesis allocations and the cap must add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokenomics {
    /// Most the subsidy step will ever mint (reference `standard_reward_amount`).
    pub subsidy_cap: Amount,
    /// When given, `Σ genesis balances and collateral + subsidy_cap` must equal it exactly.
    #[serde(default)]
    pub total_supply: Option<Amount>,
}

impl Tokenomics {
    /// Devnet: a subsidy cap of 1,000,000 GNK; the total is whatever the genesis allocates plus the cap.
    pub fn devnet() -> Tokenomics {
        Tokenomics { subsidy_cap: Amount(1_000_000 * GNK), total_supply: None }
    }

    /// Mainnet (reference §6.1, mainnet genesis): 1,000,000,000 GNK in all, 680,000,000 of them the
    /// subsidy; the other 320,000,000 are the genesis allocations (originator 200 M, sale 120 M).
    pub fn mainnet() -> Tokenomics {
        Tokenomics { subsidy_cap: Amount(680_000_000 * GNK), total_supply: Some(Amount(1_000_000_000 * GNK)) }
    }
}

impl Default for Tokenomics {
    fn default() -> Tokenomics {
        Tokenomics::devnet()
    }
}

/// Reward parameters (changeable later by governance; the cap is genesis-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardParams {
    /// `R(0)`: the subsidy of the genesis epoch, in ngonka.
    pub initial_epoch_reward: Amount,
    /// Per-epoch exponent: `R(e) = ⌊R(0) · exp(decay_rate · e)⌋`; in `[−1, 0]`.
    pub decay_rate: Decimal,
    /// Settlements over which claimed work coins vest (0: paid at once).
    pub work_vesting_epochs: u64,
    /// Settlements over which claimed reward coins vest (0: paid at once).
    pub reward_vesting_epochs: u64,
}
codec_struct!(RewardParams { initial_epoch_reward, decay_rate, work_vesting_epochs, reward_vesting_epochs });

/// Most vesting slots: a schedule is at most this many rows per host.
pub const MAX_VESTING_EPOCHS: u64 = 365;

impl RewardParams {
    /// Devnet: 1,000 GNK in the genesis epoch, decaying 5 % per epoch; vesting over 2 settlements.
    pub fn devnet() -> RewardParams {
        RewardParams {
            initial_epoch_reward: Amount(1_000 * GNK),
            decay_rate: Decimal::from_raw(-50_000_000_000_000_000),
            work_vesting_epochs: 2,
            reward_vesting_epochs: 2,
        }
    }

    /// Mainnet (reference §6.3, §6.5): 323,000 GNK, `−0.000475` per epoch (half-life ≈ 1459 epochs),
    /// vesting over 180 settlements.
    pub fn mainnet() -> RewardParams {
        RewardParams {
            initial_epoch_reward: Amount(323_000 * GNK),
            decay_rate: Decimal::from_raw(-475_000_000_000_000),
            work_vesting_epochs: 180,
            reward_vesting_epochs: 180,
        }
    }

    /// Checks the ranges: a decay in `[−1, 0]` (a positive one would grow the subsidy) and vesting of at
    /// most [`MAX_VESTING_EPOCHS`].
    pub fn validate(&self) -> Result<(), ParamsError> {
        if self.decay_rate > Decimal::ZERO || self.decay_rate < Decimal::from_raw(-Decimal::ONE.raw()) {
            return Err(ParamsError::Limit("rewards.decay_rate (between −1 and 0)"));
        }
        if self.work_vesting_epochs > MAX_VESTING_EPOCHS || self.reward_vesting_epochs > MAX_VESTING_EPOCHS {
            return Err(ParamsError::Limit("rewards vesting epochs (at most 365)"));
        }
        Ok(())
    }
}

impl Default for RewardParams {
    fn default() -> RewardParams {
        RewardParams::devnet()
    }
}

/// `exp(x)` for `x ∈ [−1, 0]`, by its Taylor series in 18-place fixed point (every term truncated toward
/// zero; the series stops when a term is zero): deterministic on every machine.
fn exp_small(x: Decimal) -> Decimal {
    let mut sum = Decimal::ONE;
    let mut term = Decimal::ONE;
    for k in 1..64i128 {
        term = match term
            .checked_mul(x)
            .and_then(|t| t.checked_div(Decimal::from_raw(k * Decimal::ONE.raw())))
        {
            Some(t) if t != Decimal::ZERO => t,
            _ => break,
        };
        sum = sum.checked_add(term).unwrap_or(sum);
    }
    sum
}

/// `base^n` by squaring, each product truncated; `base ∈ [0, 1]` so nothing overflows.
fn pow(base: Decimal, mut n: u64) -> Decimal {
    let (mut result, mut square) = (Decimal::ONE, base);
    while n > 0 {
        if n & 1 == 1 {
            result = result.checked_mul(square).unwrap_or(Decimal::ZERO);
        }
        square = square.checked_mul(square).unwrap_or(Decimal::ZERO);
        n >>= 1;
    }
    result
}

/// Epochs since the genesis epoch; None for an epoch before it (refused rather than turned into a growing
/// subsidy, as the reference's signed arithmetic would: §12).
pub fn epochs_since(genesis_epoch: u64, epoch: u64) -> Option<u64> {
    epoch.checked_sub(genesis_epoch)
}

/// `R(e) = ⌊R(0) · exp(decay_rate)^e⌋` (reference §6.3), `e` epochs after genesis.
pub fn epoch_reward(params: &RewardParams, epochs_since_genesis: u64) -> Amount {
    let factor = pow(exp_small(params.decay_rate), epochs_since_genesis);
    Amount(factor.mul_int(params.initial_epoch_reward.0).unwrap_or(0))
}

/// `⌊a · b / c⌋` without overflow for `a < c`-sized remainders: `q·b + ⌊r·b / c⌋` with `a = q·c + r`.
fn mul_div(a: u128, b: u128, c: u128) -> Option<u128> {
    let (q, r) = (a / c, a % c);
    q.checked_mul(b)?.checked_add(r.checked_mul(b)? / c)
}

/// Splits `reward` among `weights` (address order) pro rata (reference §6.3): each gets
/// `⌊reward · w / Σw⌋`, and the remainder goes to the first participant with a positive share — or,
/// when every share rounded to zero, to the first with positive weight. Nothing is paid when the total
/// weight is zero. Returns the shares (zero shares left out); they add up to `reward` exactly unless
/// nobody has weight (then to nothing). None only for weights so large the arithmetic overflows.
pub fn split_pro_rata(reward: Amount, weights: &[(Address, u64)]) -> Option<Vec<(Address, Amount)>> {
    let total: u128 = weights.iter().map(|(_, w)| u128::from(*w)).sum();
    if total == 0 || reward == Amount::ZERO {
        return Some(Vec::new());
    }
    let mut shares = Vec::with_capacity(weights.len());
    let mut paid = 0u128;
    for (address, weight) in weights {
        let share = mul_div(reward.0, u128::from(*weight), total)?;
        paid += share;
        shares.push((*address, share));
    }
    let remainder = reward.0.checked_sub(paid)?;
    let first =
        shares.iter().position(|(_, s)| *s > 0).or_else(|| weights.iter().position(|(_, w)| *w > 0))?;
    shares[first].1 += remainder;
    Some(shares.into_iter().filter(|(_, s)| *s > 0).map(|(a, s)| (a, Amount(s))).collect())
}

/// The subsidy to mint for an epoch whose formula gives `reward`, with `minted` already minted under
/// `cap`: all of it, or what is left under the cap (reference §6.3: the shares are then scaled pro
/// rata, which splitting the smaller amount does).
pub fn capped(reward: Amount, minted: Amount, cap: Amount) -> Amount {
    reward.min(Amount(cap.0.saturating_sub(minted.0)))
}

/// `amount` over `slots` settlements (reference §6.5): `⌊amount / slots⌋` each, the remainder in the
/// first; one slot when `slots` is 0 (paid at once).
pub fn vesting_slots(amount: Amount, slots: u64) -> Vec<Amount> {
    let slots = u128::from(slots.max(1));
    let each = amount.0 / slots;
    let mut out = vec![Amount(each); slots as usize];
    out[0] = Amount(each + amount.0 % slots);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(byte: u8) -> Address {
        Address([byte; 20])
    }

    #[test]
    fn the_subsidy_decays_as_the_reference_formula() {
        let mainnet = RewardParams::mainnet();
        // (epochs since genesis, R(e) = 323,000 GNK × exp(−0.000475 e) in double precision, rounded)
        let table: &[(u64, u128)] = &[
            (0, 323_000 * GNK),
            (1, 322_846_611_432_669),
            (1459, 161_519_733_365_923),
            (14_590, 315_815_316_792),
        ];
        for (e, expected) in table {
            let got = epoch_reward(&mainnet, *e).0;
            // Within a millionth of the floating-point value: the fixed point truncates each of ~2·log2(e)
            // products, a bias of a few ulps of 10⁻¹⁸ each.
            assert!(got.abs_diff(*expected) <= expected / 1_000_000, "R({e}) = {got}, expected ≈ {expected}");
        }
        // Monotone, and never above R(0).
        let mut last = u128::MAX;
        for e in (0..20_000).step_by(97) {
            let r = epoch_reward(&mainnet, e).0;
            assert!(r <= last && r <= 323_000 * GNK, "R({e}) = {r} after {last}");
            last = r;
        }
        let flat = RewardParams { decay_rate: Decimal::ZERO, ..mainnet };
        assert_eq!(epoch_reward(&flat, 10_000), Amount(323_000 * GNK), "no decay, no change");
    }

    #[test]
    fn the_sum_of_the_mainnet_subsidy_approaches_its_cap() {
        // Σ R(e) ≈ R(0) / (1 − e^−0.000475) ≈ 680 M GNK: the cap is what the schedule mints in the limit.
        let mainnet = RewardParams::mainnet();
        let factor = exp_small(mainnet.decay_rate);
        let limit = Decimal::ONE.checked_div(Decimal::ONE.checked_sub(factor).expect("sub")).expect("div");
        let total = limit.mul_int(mainnet.initial_epoch_reward.0).expect("fits");
        let cap = Tokenomics::mainnet().subsidy_cap.0;
        assert!(total.abs_diff(cap) < cap / 1000, "Σ R = {total}, cap {cap}");
    }

    #[test]
    fn epochs_before_genesis_are_refused_not_wrapped() {
        assert_eq!(epochs_since(1, 0), None);
        assert_eq!(epochs_since(0, 0), Some(0));
        assert_eq!(epochs_since(1, 5), Some(4));
    }

    #[test]
    fn shares_are_pro_rata_with_the_remainder_to_the_first_paid() {
        // (reward, weights, expected shares)
        type Case = (u128, Vec<(Address, u64)>, Vec<(Address, u128)>);
        let cases: Vec<Case> = vec![
            (100, vec![(a(1), 1), (a(2), 1), (a(3), 1)], vec![(a(1), 34), (a(2), 33), (a(3), 33)]),
            (100, vec![(a(1), 0), (a(2), 1), (a(3), 2)], vec![(a(2), 34), (a(3), 66)]),
            // Every share rounds to zero: the first with weight takes it all.
            (1, vec![(a(1), 0), (a(2), 1), (a(3), 1)], vec![(a(2), 1)]),
            // Zero total weight: nothing is paid (nor minted).
            (100, vec![(a(1), 0), (a(2), 0)], vec![]),
            (100, vec![], vec![]),
            (0, vec![(a(1), 5)], vec![]),
            // Large weights and a large reward do not overflow.
            (
                680_000_000 * GNK,
                vec![(a(1), u64::MAX), (a(2), u64::MAX / 3)],
                vec![(a(1), 510_000_000 * GNK), (a(2), 170_000_000 * GNK)],
            ),
        ];
        for (reward, weights, expected) in cases {
            let shares = split_pro_rata(Amount(reward), &weights).expect("no overflow");
            let shares: Vec<(Address, u128)> = shares.into_iter().map(|(a, s)| (a, s.0)).collect();
            assert_eq!(shares, expected, "reward {reward} over {weights:?}");
            let paid: u128 = shares.iter().map(|(_, s)| s).sum();
            let weighted = weights.iter().any(|(_, w)| *w > 0);
            assert_eq!(paid, if weighted { reward } else { 0 }, "the shares add up to the reward");
        }
    }

    #[test]
    fn the_cap_limits_the_last_mint() {
        assert_eq!(capped(Amount(100), Amount(0), Amount(1_000)), Amount(100));
        assert_eq!(capped(Amount(100), Amount(950), Amount(1_000)), Amount(50), "reached mid-epoch");
        assert_eq!(capped(Amount(100), Amount(1_000), Amount(1_000)), Amount(0), "reached");
        assert_eq!(capped(Amount(100), Amount(2_000), Amount(1_000)), Amount(0), "never negative");
    }

    #[test]
    fn vesting_slots_put_the_remainder_first() {
        assert_eq!(vesting_slots(Amount(10), 3), vec![Amount(4), Amount(3), Amount(3)]);
        assert_eq!(vesting_slots(Amount(10), 0), vec![Amount(10)]);
        assert_eq!(vesting_slots(Amount(2), 5), vec![Amount(2), Amount(0), Amount(0), Amount(0), Amount(0)]);
    }

    #[test]
    fn params_refuse_a_growing_subsidy() {
        let growing = RewardParams { decay_rate: Decimal::from_raw(1), ..RewardParams::devnet() };
        assert!(growing.validate().is_err());
        let steep =
            RewardParams { decay_rate: Decimal::from_raw(-2 * Decimal::ONE.raw()), ..RewardParams::devnet() };
        assert!(steep.validate().is_err());
        assert!(RewardParams::devnet().validate().is_ok());
        assert!(RewardParams::mainnet().validate().is_ok());
    }
}

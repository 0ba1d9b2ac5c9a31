//! Power capping (reference §3.10.2): no participant may hold more than a fixed share of the total weight.
//!
//! Sort weights ascending `p_0 ≤ … ≤ p_{N−1}`; walk `k = 0..N` with `sum_prev = Σ_{i<k} p_i`; at the
//! first `k` where `p_k > c·(sum_prev + p_k·(N−k))` — giving `p_k` and everyone above it `p_k` would
//! still exceed the share `c` — the cap is `⌊c·sum_prev / (1 − c·(N−k))⌋` (the weight `x` at which
//! `x / (sum_prev + x·(N−k)) = c`), or `p_k` when that denominator is not positive. Every weight above
//! the cap is lowered to it; the total shrinks accordingly. Integers and [`Decimal`] only: it feeds
//! consensus.

use gonka_primitives::Decimal;

use crate::fixed::{SCALE, mul_div};

/// Why weights could not be capped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapError {
    /// The share is not in `(0, 1]`.
    #[error("maximum share {0} is outside (0, 1]")]
    MaxShareOutOfRange(Decimal),
    /// An intermediate value left `u128` (more than 2^32 participants).
    #[error("arithmetic overflow while capping")]
    Overflow,
}

/// The share actually enforced among `participants`: no cap for one participant, at least 0.50 for two
/// and 0.40 for three (a smaller share would be unreachable or would flatten everyone), else `configured`.
pub fn effective_max_share(participants: usize, configured: Decimal) -> Decimal {
    let floor = match participants {
        0 | 1 => Decimal::ONE,
        2 => Decimal::from_raw(500_000_000_000_000_000),
        3 => Decimal::from_raw(400_000_000_000_000_000),
        _ => Decimal::ZERO,
    };
    configured.max(floor)
}

/// `weights` with every weight above the cap lowered to it, in the input order. `max_share` is the
/// configured share (`max_individual_power_percentage`, 0.25 on mainnet); [`effective_max_share`] raises
/// it for networks of one to three participants.
pub fn cap_power<K: Clone>(weights: &[(K, u64)], max_share: Decimal) -> Result<Vec<(K, u64)>, CapError> {
    if max_share <= Decimal::ZERO || max_share > Decimal::ONE {
        return Err(CapError::MaxShareOutOfRange(max_share));
    }
    let share = effective_max_share(weights.len(), max_share).raw().unsigned_abs();
    let cap = match find_cap(weights, share)? {
        Some(cap) => cap,
        None => return Ok(weights.to_vec()),
    };
    Ok(weights.iter().map(|(key, weight)| (key.clone(), (*weight).min(cap))).collect())
}

/// The cap for raw share `share` (× 10^18, in `(0, 10^18]`), or None when nobody exceeds it.
fn find_cap<K>(weights: &[(K, u64)], share: u128) -> Result<Option<u64>, CapError> {
    let mut sorted: Vec<u128> = weights.iter().map(|(_, w)| u128::from(*w)).collect();
    sorted.sort_unstable();
    let n = sorted.len() as u128;
    let mut sum_prev: u128 = 0;
    for (k, &p_k) in sorted.iter().enumerate() {
        let rest = n - k as u128;
        let spread = p_k.checked_mul(rest).and_then(|v| v.checked_add(sum_prev)).ok_or(CapError::Overflow)?;
        // p_k > c·spread  ⇔  p_k·10^18 > share·spread  ⇔  spread < ⌈p_k·10^18 / share⌉ (exact, no overflow:
        // p_k·10^18 < 2^124).
        if spread < (p_k * SCALE).div_ceil(share) {
            let cap = match share.checked_mul(rest).map(|c| SCALE.checked_sub(c)) {
                Some(Some(denominator)) if denominator > 0 => {
                    mul_div(sum_prev, share, denominator).ok_or(CapError::Overflow)?
                }
                _ => p_k,
            };
            // The cap is below p_k, itself a u64.
            return Ok(Some(u64::try_from(cap).map_err(|_| CapError::Overflow)?));
        }
        sum_prev = sum_prev.checked_add(p_k).ok_or(CapError::Overflow)?;
    }
    Ok(None)
}

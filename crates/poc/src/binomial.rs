//! The one-sided binomial test that turns a validator's mismatch count into a fraud verdict
//! (reference §3.8 step 5), in fixed-point [`Decimal`] arithmetic only: it feeds consensus.
//!
//! `probability_honest = P[X ≥ mismatches]` for `X ~ Binomial(n, p_mismatch)`: the chance that an honest
//! participant, whose nonces mismatch only through hardware nondeterminism at rate `p_mismatch`, shows
//! at least that many mismatches. Fraud is declared when it falls below `fraud_threshold`.
//!
//! The probabilities are computed relative to the most likely count `m = ⌊(n+1)·p⌋`: with `t(m) = 1`,
//! `t(i+1) = t(i)·(n−i)·p / ((i+1)·(1−p))` upward and `t(i−1) = t(i)·i·(1−p) / ((n−i+1)·p)` downward,
//! so every `t(i) ≤ 1` and nothing underflows for large `n` the way `(1−p)^n` would. The answer is
//! `Σ_{i ≥ mismatches} t(i) / Σ_i t(i)`. Each step is one exact integer `⌊a·b/c⌋` on the raw 10^-18
//! units, so the result is within about `n·10^-18` of the exact value — far below any useful threshold
//! (the original uses 10^-7).

use gonka_primitives::Decimal;

use crate::fixed::{SCALE, mul_div};

/// Largest `n` accepted: bounds the loop (one step per possible count) and keeps every intermediate
/// product inside `u128`.
pub const MAX_TRIALS: u64 = 1_000_000;

/// Why the test could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinomialError {
    /// `p_mismatch` is outside `[0, 1]`.
    #[error("mismatch probability {0} is outside [0, 1]")]
    ProbabilityOutOfRange(Decimal),
    /// `n` is above [`MAX_TRIALS`].
    #[error("{0} trials, limit {MAX_TRIALS}")]
    TooManyTrials(u64),
    /// An intermediate value left `u128`; the bounds above rule this out.
    #[error("arithmetic overflow in the binomial tail")]
    Overflow,
}

/// `P[X ≥ mismatches]` for `X ~ Binomial(n, p_mismatch)`.
pub fn probability_honest(n: u64, mismatches: u64, p_mismatch: Decimal) -> Result<Decimal, BinomialError> {
    if p_mismatch.is_negative() || p_mismatch > Decimal::ONE {
        return Err(BinomialError::ProbabilityOutOfRange(p_mismatch));
    }
    if n > MAX_TRIALS {
        return Err(BinomialError::TooManyTrials(n));
    }
    if mismatches == 0 {
        return Ok(Decimal::ONE);
    }
    if mismatches > n || p_mismatch == Decimal::ZERO {
        return Ok(Decimal::ZERO);
    }
    if p_mismatch == Decimal::ONE {
        return Ok(Decimal::ONE);
    }
    // Raw fixed-point values (× 10^18); 0 < p < 10^18 here.
    let p = p_mismatch.raw().unsigned_abs();
    let q = SCALE - p;
    let (n, k) = (u128::from(n), u128::from(mismatches));
    // (n+1)·p < (n+1)·10^18, so the mode is at most n.
    let mode = ((n + 1) * p / SCALE).min(n);
    let (mut total, mut tail) = (SCALE, if mode >= k { SCALE } else { 0 });
    let mut add = |i: u128, t: u128| -> Result<(), BinomialError> {
        total = total.checked_add(t).ok_or(BinomialError::Overflow)?;
        if i >= k {
            tail = tail.checked_add(t).ok_or(BinomialError::Overflow)?;
        }
        Ok(())
    };
    let mut t = SCALE;
    for i in mode..n {
        t = mul_div(t, (n - i) * p, (i + 1) * q).ok_or(BinomialError::Overflow)?;
        if t == 0 {
            break;
        }
        add(i + 1, t)?;
    }
    let mut t = SCALE;
    for i in (1..=mode).rev() {
        t = mul_div(t, i * q, (n - i + 1) * p).ok_or(BinomialError::Overflow)?;
        if t == 0 {
            break;
        }
        add(i - 1, t)?;
    }
    let probability = mul_div(tail, SCALE, total).ok_or(BinomialError::Overflow)?;
    Ok(Decimal::from_raw(i128::try_from(probability).map_err(|_| BinomialError::Overflow)?))
}

/// Whether `mismatches` out of `n` is too many for an honest participant:
/// `probability_honest(n, mismatches, p_mismatch) < fraud_threshold`.
pub fn fraud_detected(
    n: u64,
    mismatches: u64,
    p_mismatch: Decimal,
    fraud_threshold: Decimal,
) -> Result<bool, BinomialError> {
    Ok(probability_honest(n, mismatches, p_mismatch)? < fraud_threshold)
}

//! Claimed distances in consensus form and the validator's mismatch count (reference §3.8 step 4).
//!
//! Distances are computed in floating point off chain, but what a participant claims and what the
//! chain compares must be integers: a [`Distance`] is a distance in billionths, so `r_target` (a
//! [`Decimal`] parameter) and every claim compare exactly on every node.

use gonka_primitives::Decimal;
use gonka_primitives::codec::{Decode, DecodeError, Encode, Reader};
use serde::{Deserialize, Serialize};

/// Billionths per unit distance.
const NANOS_PER_UNIT: f64 = 1e9;
/// Raw `Decimal` units (10^-18) per billionth.
const DECIMAL_RAW_PER_NANO: i128 = 1_000_000_000;

/// A distance in `[0, 2]`, in billionths (`2·10^9` fits a `u32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Distance(pub u32);

impl Encode for Distance {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
    }
}

impl Decode for Distance {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Distance(u32::decode(reader)?))
    }
}

impl Distance {
    /// The largest distance two unit vectors can have.
    pub const MAX: Distance = Distance(2_000_000_000);

    /// `d` rounded to the nearest billionth and clamped to `[0, 2]`; NaN maps to [`Distance::MAX`]
    /// (a NaN output never counts as close to anything).
    pub fn from_f32(d: f32) -> Distance {
        if d.is_nan() {
            return Distance::MAX;
        }
        let nanos = (f64::from(d) * NANOS_PER_UNIT).round().clamp(0.0, f64::from(Distance::MAX.0));
        Distance(nanos as u32)
    }

    /// The distance as a float (for display and tolerances off chain).
    pub fn to_f64(self) -> f64 {
        f64::from(self.0) / NANOS_PER_UNIT
    }

    /// A decimal parameter (`r_target`, a tolerance) in billionths, truncated, clamped to `[0, 2]`.
    pub fn from_decimal(value: Decimal) -> Distance {
        let nanos = (value.raw() / DECIMAL_RAW_PER_NANO).clamp(0, i128::from(Distance::MAX.0));
        Distance(nanos as u32)
    }

    /// The distance as a decimal.
    pub fn to_decimal(self) -> Decimal {
        Decimal::from_raw(i128::from(self.0) * DECIMAL_RAW_PER_NANO)
    }

    /// `|self − other|`.
    pub fn abs_diff(self, other: Distance) -> Distance {
        Distance(self.0.abs_diff(other.0))
    }
}

impl std::fmt::Display for Distance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:09}", self.0 / 1_000_000_000, self.0 % 1_000_000_000)
    }
}

/// The rule a validator applies to one sampled nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MismatchRule {
    /// Recomputed distances at or above this are not valid nonces.
    pub r_target: Distance,
    /// Largest accepted `|recomputed − claimed|`: absorbs kernels that sum in different orders.
    pub tolerance: Distance,
}

impl MismatchRule {
    /// Whether a nonce claimed at `claimed` and recomputed at `recomputed` (None: the recomputation
    /// failed, e.g. degenerate output) is a mismatch: not recomputable, at or above `r_target`, or
    /// further from the claim than the tolerance. "Could not compare" is never "valid".
    pub fn is_mismatch(&self, claimed: Distance, recomputed: Option<Distance>) -> bool {
        match recomputed {
            None => true,
            Some(d) => d >= self.r_target || d.abs_diff(claimed) > self.tolerance,
        }
    }

    /// Number of mismatches among `(claimed, recomputed)` pairs.
    pub fn count(&self, pairs: impl IntoIterator<Item = (Distance, Option<Distance>)>) -> u32 {
        pairs.into_iter().filter(|(claimed, recomputed)| self.is_mismatch(*claimed, *recomputed)).count()
            as u32
    }
}

/// What a validator found on one participant's claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleCheck {
    /// Nonces recomputed.
    pub sampled: u32,
    /// Of which mismatched.
    pub mismatches: u32,
}

/// A validator's check of one participant (reference §3.8): sample up to `sample_size` distinct
/// nonces of `claimed` with `seed` ([`crate::validation_sample`]), recompute their distances with
/// `recompute` (the same kernel that finds nonces, so checking costs what finding cost), and count
/// mismatches under `rule`. `claimed` is `(nonce, claimed distance)`; a nonce claimed twice keeps
/// its first distance.
pub fn check_claims<E>(
    seed: &[u8],
    claimed: &[(u64, Distance)],
    sample_size: usize,
    rule: &MismatchRule,
    recompute: impl FnOnce(&[u64]) -> Result<Vec<Option<Distance>>, E>,
) -> Result<SampleCheck, E> {
    let mut claims: Vec<(u64, Distance)> = claimed.to_vec();
    claims.sort_by_key(|(nonce, _)| *nonce);
    claims.dedup_by_key(|(nonce, _)| *nonce);
    let nonces: Vec<u64> = claims.iter().map(|(nonce, _)| *nonce).collect();
    let sample = crate::validation_sample(seed, &nonces, sample_size);
    let recomputed = recompute(&sample)?;
    let claimed_at =
        |nonce: &u64| claims.binary_search_by_key(nonce, |(n, _)| *n).map_or(Distance::MAX, |i| claims[i].1);
    // A recomputation that returns fewer values than asked leaves the rest unrecomputed: mismatches.
    let pairs =
        sample.iter().enumerate().map(|(i, nonce)| (claimed_at(nonce), recomputed.get(i).copied().flatten()));
    Ok(SampleCheck { sampled: sample.len() as u32, mismatches: rule.count(pairs) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_and_clamp() {
        assert_eq!(Distance::from_f32(1.25), Distance(1_250_000_000));
        assert_eq!(Distance::from_f32(-0.5), Distance(0));
        assert_eq!(Distance::from_f32(7.0), Distance::MAX);
        assert_eq!(Distance::from_f32(f32::NAN), Distance::MAX);
        let r = Decimal::parse("1.4013564660458173").unwrap();
        assert_eq!(Distance::from_decimal(r), Distance(1_401_356_466));
        assert_eq!(Distance(1_401_356_466).to_string(), "1.401356466");
        assert_eq!(Distance(5).to_decimal(), Decimal::parse("0.000000005").unwrap());
    }

    #[test]
    fn mismatches_cover_far_claims_invalid_nonces_and_failures() {
        let rule = MismatchRule { r_target: Distance(1_300_000_000), tolerance: Distance(1_000) };
        let claim = Distance(1_200_000_000);
        assert!(!rule.is_mismatch(claim, Some(Distance(1_200_000_500))));
        assert!(rule.is_mismatch(claim, Some(Distance(1_200_002_000))), "beyond tolerance");
        assert!(rule.is_mismatch(Distance(1_299_999_999), Some(Distance(1_300_000_000))), "at r_target");
        assert!(rule.is_mismatch(claim, None), "could not recompute");
        assert_eq!(rule.count([(claim, Some(claim)), (claim, None)]), 1);
    }
}

//! Exact integer helpers for fixed-point arithmetic on raw [`gonka_primitives::Decimal`] values.

/// 10^18: the raw value of `Decimal::ONE`.
pub(crate) const SCALE: u128 = 1_000_000_000_000_000_000;

/// `⌊t·n / d⌋` exactly, or None when a partial product leaves `u128` or `d` is zero. `t` is split at
/// 10^9 so that, for `t·n < 2^127·10^9` and `d·10^9 < 2^127`, no partial product exceeds `u128`.
pub(crate) fn mul_div(t: u128, n: u128, d: u128) -> Option<u128> {
    const HALF: u128 = 1_000_000_000;
    let (t_hi, t_lo) = (t / HALF, t % HALF);
    // t·n/d = (t_hi·n·10^9 + t_lo·n)/d = ⌊t_hi·n/d⌋·10^9 + ⌊((t_hi·n mod d)·10^9 + t_lo·n)/d⌋.
    let high = t_hi.checked_mul(n)?;
    let (quotient, remainder) = (high.checked_div(d)?, high % d);
    let low = remainder.checked_mul(HALF)?.checked_add(t_lo.checked_mul(n)?)?;
    quotient.checked_mul(HALF)?.checked_add(low / d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_div_is_exact_beyond_u128_products() {
        assert_eq!(mul_div(7, 3, 2), Some(10));
        assert_eq!(mul_div(0, 5, 3), Some(0));
        assert_eq!(mul_div(1, 1, 0), None);
        // (10^27 · 10^20) / 10^20 = 10^27, with a 10^47 product that does not fit in u128.
        let big = 10u128.pow(27);
        assert_eq!(mul_div(big, 10u128.pow(20), 10u128.pow(20)), Some(big));
        assert_eq!(mul_div(big + 1, 3 * 10u128.pow(20), 7 * 10u128.pow(20)), Some((big + 1) * 3 / 7));
    }
}

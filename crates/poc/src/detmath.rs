//! `exp`, `ln`, `sin` and `cos` in `f64` that give the same bits on every IEEE-754 platform.
//!
//! IEEE-754 requires `+ − × ÷ √` to be correctly rounded, but not the transcendental functions: Rust's
//! `f64::exp`, `ln`, `sin`, `cos` call the platform's libm (glibc, musl, the MSVC CRT, a GPU's
//! intrinsics), whose last bits differ between implementations and versions. These versions use only the
//! basic operations in a fixed order, never fused (Rust does not contract `a * b + c`), so they are
//! bit-exact everywhere. They are accurate to a few ulps, far beyond what the PoC needs: the point is
//! that every host computing the reference gets the same bits.

/// High part of ln 2 with its low 21 bits zero, so `k × LN2_HI` is exact for `|k| < 2^21` (fdlibm).
const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
/// `ln 2 − LN2_HI`.
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
/// π/2 in three pieces (fdlibm `pio2_1`, `pio2_2`, `pio2_2t`); the first two have their low 20 bits
/// zero, so `k × piece` is exact for `|k| < 2^20`.
const PIO2_1: f64 = f64::from_bits(0x3FF9_21FB_5440_0000);
const PIO2_2: f64 = f64::from_bits(0x3DD0_B461_1A60_0000);
const PIO2_2T: f64 = 2.022_266_248_795_950_6e-21;

/// 2^e for `e` in the normal exponent range `[-1022, 1023]`.
fn pow2(e: i32) -> f64 {
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// `e^x`.
pub fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.782_712_893_384 {
        return f64::INFINITY;
    }
    if x < -745.133_219_101_941_2 {
        return 0.0;
    }
    // x = k·ln2 + r with |r| ≤ ln2/2 (Cody–Waite reduction), then e^x = 2^k · e^r.
    let k = (x * std::f64::consts::LOG2_E + 0.5).floor();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // Taylor series of e^r to r^13 in Horner form: the next term is below 1e-17 for |r| ≤ 0.35.
    let mut p = 1.0;
    for n in (1..=13).rev() {
        p = 1.0 + r * p / f64::from(n);
    }
    let k = k as i32;
    if k > 1023 {
        p * pow2(1023) * pow2(k - 1023)
    } else if k < -1022 {
        p * pow2(-1022) * pow2(k + 1022)
    } else {
        p * pow2(k)
    }
}

/// Natural logarithm; NaN below zero, −∞ at zero.
pub fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    let (mut x, mut e) = (x, 0i32);
    if x < f64::MIN_POSITIVE {
        x *= pow2(54);
        e -= 54;
    }
    let bits = x.to_bits();
    e += ((bits >> 52) & 0x7ff) as i32 - 1023;
    // Mantissa in [1, 2), then folded into [√½, √2] so the series below converges fast.
    let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln m = 2·atanh(s) = 2·(s + s³/3 + s⁵/5 + …) with |s| ≤ 0.172; terms past s^29 are below 1e-23.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut p = 0.0;
    for k in (0..=14).rev() {
        p = p * s2 + 1.0 / f64::from(2 * k + 1);
    }
    let e = f64::from(e);
    e * LN2_HI + (e * LN2_LO + 2.0 * s * p)
}

/// `(sin x, cos x)`. Accurate for `|x| < 2^19`; beyond, still deterministic but less accurate.
pub fn sin_cos(x: f64) -> (f64, f64) {
    if !x.is_finite() {
        return (f64::NAN, f64::NAN);
    }
    // x = k·π/2 + r with |r| ≤ π/4.
    let k = (x * std::f64::consts::FRAC_2_PI + 0.5).floor();
    let r = ((x - k * PIO2_1) - k * PIO2_2) - k * PIO2_2T;
    let r2 = r * r;
    // Taylor series to r^23 and r^22: the next terms are below 1e-24 for |r| ≤ π/4.
    let (mut sin_p, mut cos_p) = (1.0, 1.0);
    for n in (1..=11).rev() {
        let n = f64::from(n);
        sin_p = 1.0 - r2 * sin_p / ((2.0 * n) * (2.0 * n + 1.0));
        cos_p = 1.0 - r2 * cos_p / ((2.0 * n - 1.0) * (2.0 * n));
    }
    let (sin_r, cos_r) = (r * sin_p, cos_p);
    match (k as i64).rem_euclid(4) {
        0 => (sin_r, cos_r),
        1 => (cos_r, -sin_r),
        2 => (-sin_r, -cos_r),
        _ => (-cos_r, sin_r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b.abs().max(1.0)
    }

    #[test]
    fn exp_matches_libm_to_a_few_ulps() {
        for i in -7000..7000 {
            let x = f64::from(i) * 0.101;
            assert!(close(exp(x), x.exp(), 1e-14), "exp({x}) = {} vs {}", exp(x), x.exp());
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(1000.0), f64::INFINITY);
        assert_eq!(exp(-1000.0), 0.0);
        assert!(exp(f64::NAN).is_nan());
        assert!(exp(-740.0) > 0.0, "subnormal results are kept");
    }

    #[test]
    fn ln_matches_libm_to_a_few_ulps() {
        for x in [
            1e-310,
            1e-300,
            0.001,
            0.5,
            1.0,
            2.0,
            std::f64::consts::E,
            10.0,
            10_000.0,
            500_000.0,
            1e12,
            1e300,
        ] {
            assert!(close(ln(x), x.ln(), 1e-15), "ln({x}) = {} vs {}", ln(x), x.ln());
        }
        assert_eq!(ln(1.0), 0.0);
        assert!(ln(-1.0).is_nan());
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
    }

    #[test]
    fn sin_cos_match_libm_over_rope_angles() {
        for i in 0..200_000 {
            let x = f64::from(i) * 0.3711 - 100.0;
            let (s, c) = sin_cos(x);
            assert!((s - x.sin()).abs() < 1e-12, "sin({x})");
            assert!((c - x.cos()).abs() < 1e-12, "cos({x})");
        }
        assert_eq!(sin_cos(0.0), (0.0, 1.0));
    }
}

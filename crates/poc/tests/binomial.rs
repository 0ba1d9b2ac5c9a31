//! The fraud test's binomial tail, in fixed point, against exact values.
#![allow(clippy::unwrap_used)]

use gonka_poc::binomial::{BinomialError, MAX_TRIALS};
use gonka_poc::{fraud_detected, probability_honest};
use gonka_primitives::Decimal;
use proptest::prelude::*;

fn d(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn as_f64(value: Decimal) -> f64 {
    value.raw() as f64 / 1e18
}

/// `P[X ≥ k]` in f64 through log-space terms, as an independent check.
fn tail_f64(n: u64, k: u64, p: f64) -> f64 {
    let (ln_p, ln_q) = (p.ln(), (1.0 - p).ln());
    let mut ln_choose = 0.0;
    let mut tail = 0.0;
    for i in 0..=n {
        if i >= k {
            tail += (ln_choose + i as f64 * ln_p + (n - i) as f64 * ln_q).exp();
        }
        ln_choose += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
    }
    tail
}

#[test]
fn known_tails_match() {
    // Exact values (rational arithmetic) for the original's parameters (reference §3.8) and others.
    let cases: &[(u64, u64, &str, f64)] = &[
        (200, 1, "0.0005", 0.095_185_210_159_683_95),
        (200, 2, "0.0005", 0.004_658_467_804_474_737),
        (200, 3, "0.0005", 1.525_093_930_973_900_6e-4),
        (200, 4, "0.0005", 3.738_380_015_396_608_5e-6),
        (200, 5, "0.0005", 7.306_115_882_423_377e-8),
        (200, 6, "0.0005", 1.184_971_141_573_895_8e-9),
        (10, 3, "0.5", 0.945_312_5),
        (100, 60, "0.5", 0.028_443_966_820_490_395),
        (200, 5, "0.01", 0.051_746_263_630_785_89),
    ];
    for &(n, k, p, exact) in cases {
        let got = as_f64(probability_honest(n, k, d(p)).unwrap());
        assert!((got - exact).abs() < 1e-15, "P[Bin({n}, {p}) ≥ {k}] = {got}, exact {exact}");
    }
}

#[test]
fn five_bad_nonces_of_two_hundred_is_fraud() {
    let (p, threshold) = (d("0.0005"), d("0.0000001"));
    assert!(!fraud_detected(200, 4, p, threshold).unwrap());
    assert!(fraud_detected(200, 5, p, threshold).unwrap());
    assert!(!fraud_detected(200, 0, p, threshold).unwrap());
}

#[test]
fn edge_cases() {
    let one = Decimal::ONE;
    let zero = Decimal::ZERO;
    assert_eq!(probability_honest(200, 0, d("0.0005")), Ok(one));
    assert_eq!(probability_honest(0, 0, zero), Ok(one));
    assert_eq!(probability_honest(200, 0, zero), Ok(one));
    assert_eq!(probability_honest(200, 1, zero), Ok(zero));
    assert_eq!(probability_honest(200, 200, one), Ok(one));
    assert_eq!(probability_honest(200, 201, one), Ok(zero));
    assert_eq!(probability_honest(200, 201, d("0.5")), Ok(zero));
    assert_eq!(probability_honest(0, 1, d("0.5")), Ok(zero));
    assert_eq!(probability_honest(10, 1, d("1.5")), Err(BinomialError::ProbabilityOutOfRange(d("1.5"))));
    assert_eq!(probability_honest(10, 1, d("-0.1")), Err(BinomialError::ProbabilityOutOfRange(d("-0.1"))));
    assert_eq!(
        probability_honest(MAX_TRIALS + 1, 1, d("0.5")),
        Err(BinomialError::TooManyTrials(MAX_TRIALS + 1))
    );
    // Large n with a mode far from zero, where (1 − p)^n would underflow to zero.
    let half = as_f64(probability_honest(MAX_TRIALS, MAX_TRIALS / 2 + 1, d("0.5")).unwrap());
    assert!((half - 0.5).abs() < 1e-3, "{half}");
    // Smallest positive p.
    let tiny = probability_honest(1000, 1, Decimal::from_raw(1)).unwrap();
    assert!(tiny.raw() >= 999 && tiny.raw() <= 1000, "{tiny}");
}

proptest! {
    #[test]
    fn tails_match_an_independent_computation(n in 1u64..2000, k_frac in 0.0f64..1.0, p_raw in 1i128..1_000_000_000_000_000_000) {
        let k = (k_frac * (n + 1) as f64) as u64;
        let p = Decimal::from_raw(p_raw);
        let got = as_f64(probability_honest(n, k, p).unwrap());
        let expected = tail_f64(n, k, p_raw as f64 / 1e18);
        prop_assert!((got - expected).abs() < 1e-9, "n {} k {} p {}: {} vs {}", n, k, p, got, expected);
    }

    #[test]
    fn more_mismatches_are_never_more_likely(n in 1u64..300, p_raw in 0i128..=1_000_000_000_000_000_000) {
        let p = Decimal::from_raw(p_raw);
        let mut previous = Decimal::ONE;
        for k in 0..=n + 1 {
            let probability = probability_honest(n, k, p).unwrap();
            prop_assert!(probability <= previous && probability >= Decimal::ZERO && probability <= Decimal::ONE);
            previous = probability;
        }
    }
}

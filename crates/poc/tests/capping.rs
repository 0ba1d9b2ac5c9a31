//! Power capping (reference §3.10.2) as a table, and its invariants as properties.
#![allow(clippy::unwrap_used)]

use gonka_poc::{CapError, cap_power};
use gonka_primitives::Decimal;
use proptest::prelude::*;

fn d(text: &str) -> Decimal {
    text.parse().unwrap()
}

#[test]
fn capping_table() {
    let cases: &[(&str, &[u64], &[u64])] = &[
        // One participant: no cap.
        ("0.25", &[1000], &[1000]),
        // Two participants: the share is raised to 0.50.
        ("0.25", &[100, 300], &[100, 100]),
        ("0.60", &[100, 300], &[100, 150]),
        // Three participants: the share is raised to 0.40; ⌊0.4·200/0.6⌋ = 133.
        ("0.25", &[100, 800, 100], &[100, 133, 100]),
        // Four or more: the configured share.
        ("0.25", &[10, 10, 1000, 10], &[10, 10, 10, 10]),
        ("0.25", &[400, 10, 20, 30, 40], &[30, 10, 20, 30, 30]),
        // Capping changes nobody.
        ("0.25", &[100, 100, 90, 100, 100], &[100, 100, 90, 100, 100]),
        ("0.25", &[0, 0, 0, 0], &[0, 0, 0, 0]),
        ("0.25", &[], &[]),
        ("1", &[1, 2, 3, 1000], &[1, 2, 3, 1000]),
    ];
    for &(share, input, expected) in cases {
        let weights: Vec<(usize, u64)> = input.iter().copied().enumerate().collect();
        let capped = cap_power(&weights, d(share)).unwrap();
        let keys: Vec<usize> = capped.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, (0..input.len()).collect::<Vec<_>>(), "order kept");
        let values: Vec<u64> = capped.iter().map(|(_, w)| *w).collect();
        assert_eq!(values, expected, "share {share}, input {input:?}");
    }
}

#[test]
fn the_share_must_be_a_fraction() {
    let weights = [("a", 1u64), ("b", 2)];
    assert_eq!(cap_power(&weights, Decimal::ZERO), Err(CapError::MaxShareOutOfRange(Decimal::ZERO)));
    assert_eq!(cap_power(&weights, d("1.01")), Err(CapError::MaxShareOutOfRange(d("1.01"))));
}

proptest! {
    #[test]
    fn nobody_exceeds_the_share_and_nobody_gains(weights in proptest::collection::vec(0u64..1_000_000_000_000, 4..40)) {
        let share = d("0.25");
        let input: Vec<(usize, u64)> = weights.iter().copied().enumerate().collect();
        let capped = cap_power(&input, share).unwrap();
        let total: u128 = capped.iter().map(|(_, w)| u128::from(*w)).sum();
        let max = capped.iter().map(|(_, w)| *w).max().unwrap_or(0);
        prop_assert!(u128::from(max) * 4 <= total, "max {} of total {}", max, total);
        for ((key, before), (same_key, after)) in input.iter().zip(&capped) {
            prop_assert_eq!(key, same_key);
            prop_assert!(after <= before);
            prop_assert!(after == before || *after == max, "only the capped change, all to the cap");
        }
        prop_assert_eq!(cap_power(&capped, share).unwrap(), capped.clone(), "capping is idempotent");
    }
}

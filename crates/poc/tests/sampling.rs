//! Validators' samples: distinct claimed nonces, all of them when few, and a new sample for a new seed.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use gonka_poc::{sample_seed_message, validation_sample};
use gonka_primitives::Hash;
use proptest::prelude::*;

proptest! {
    #[test]
    fn a_sample_is_n_distinct_claimed_nonces(
        seed in proptest::collection::vec(any::<u8>(), 0..80),
        claimed in proptest::collection::vec(0u64..500, 0..300),
        n in 0usize..250,
    ) {
        let sample = validation_sample(&seed, &claimed, n);
        let distinct: BTreeSet<u64> = claimed.iter().copied().collect();
        prop_assert_eq!(sample.len(), n.min(distinct.len()));
        prop_assert!(sample.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
        prop_assert!(sample.iter().all(|s| distinct.contains(s)));
        if distinct.len() <= n {
            prop_assert_eq!(sample, distinct.into_iter().collect::<Vec<_>>());
        }
    }
}

#[test]
fn the_sample_depends_on_the_seed_not_on_claim_order() {
    let claimed: Vec<u64> = (0..10_000).map(|i| i * 7).collect();
    let a = validation_sample(b"signature one", &claimed, 200);
    assert_eq!(a, validation_sample(b"signature one", &claimed, 200));
    assert_ne!(a, validation_sample(b"signature two", &claimed, 200));
    let mut reversed = claimed.clone();
    reversed.reverse();
    assert_eq!(a, validation_sample(b"signature one", &reversed, 200));
}

#[test]
fn every_claimed_nonce_can_be_picked() {
    let claimed: Vec<u64> = (0..20).collect();
    let mut picked = BTreeSet::new();
    for seed in 0u32..200 {
        picked.extend(validation_sample(&seed.to_be_bytes(), &claimed, 3));
    }
    assert_eq!(picked.len(), 20);
}

#[test]
fn the_seed_message_binds_block_height_and_participant() {
    let message = sample_seed_message(&Hash::ZERO, 42, &[2; 33]);
    assert!(message.starts_with(b"gonka/poc/validation-sample/v1\0"));
    assert_eq!(message.len(), 31 + 32 + 8 + 33);
    assert_ne!(message, sample_seed_message(&Hash::ZERO, 43, &[2; 33]));
    assert_ne!(message, sample_seed_message(&Hash([1; 32]), 42, &[2; 33]));
    assert_ne!(message, sample_seed_message(&Hash::ZERO, 42, &[3; 33]));
}

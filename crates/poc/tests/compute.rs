//! Permutations, partitions, distances and hit rates behave as the protocol needs.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use gonka_poc::{ModelSpec, hit_rate, nonce_distance, nonce_permutation, target, weights, worker_nonces};
use gonka_primitives::Hash;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn permutations_are_permutations(seed in any::<[u8; 32]>(), key in any::<[u8; 32]>(), nonce in any::<u64>(), vocab in 1u32..2048) {
        let spec = ModelSpec { vocab_size: vocab, ..ModelSpec::devnet() };
        let mut public_key = [2u8; 33];
        public_key[1..].copy_from_slice(&key);
        let mut permutation = nonce_permutation(&spec, &Hash(seed), &public_key, nonce);
        permutation.sort_unstable();
        prop_assert_eq!(permutation, (0..vocab).collect::<Vec<_>>());
    }

    #[test]
    fn worker_shares_are_disjoint_and_cover_everything(workers in 1u32..17, total in 0u64..2000) {
        let mut seen = BTreeSet::new();
        for worker in 0..workers {
            for nonce in worker_nonces(worker, workers).unwrap().take_while(|&n| n < total) {
                prop_assert_eq!(nonce % u64::from(workers), u64::from(worker));
                prop_assert!(seen.insert(nonce), "nonce {} given twice", nonce);
            }
        }
        prop_assert_eq!(seen.len() as u64, total);
    }
}

#[test]
fn permutations_are_not_the_identity_and_differ_per_nonce() {
    let spec = ModelSpec::devnet();
    let a = nonce_permutation(&spec, &Hash::ZERO, &[3; 33], 0);
    let b = nonce_permutation(&spec, &Hash::ZERO, &[3; 33], 1);
    assert_ne!(a, (0..spec.vocab_size).collect::<Vec<_>>());
    assert_ne!(a, b);
}

#[test]
fn target_is_a_unit_vector() {
    for spec in [ModelSpec::devnet(), ModelSpec { vocab_size: 8196, ..ModelSpec::devnet() }] {
        let t = target(&spec, &Hash::digest(b"target"));
        assert_eq!(t.len(), spec.vocab_size as usize);
        let norm = t.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-6, "norm {norm}");
    }
}

#[test]
fn distances_lie_in_zero_to_two_and_vary_per_nonce() {
    let spec = ModelSpec::devnet();
    let hash = Hash::digest(b"distances");
    let model = weights(&spec, &hash).unwrap();
    let goal = target(&spec, &hash);
    let distances: Vec<f32> =
        (0..16).map(|nonce| nonce_distance(&model, &goal, &hash, &[2; 33], nonce).unwrap()).collect();
    assert!(distances.iter().all(|d| (0.0..=2.0).contains(d)), "{distances:?}");
    let distinct: BTreeSet<u32> = distances.iter().map(|d| d.to_bits()).collect();
    assert_eq!(distinct.len(), distances.len());
}

#[test]
fn hit_rate_is_all_at_radius_two_and_none_at_zero() {
    let spec = ModelSpec::devnet();
    let hash = Hash::digest(b"calibrate");
    assert_eq!(hit_rate(&spec, &hash, &[2; 33], 2.0, 8).unwrap(), 1.0);
    assert_eq!(hit_rate(&spec, &hash, &[2; 33], 0.0, 8).unwrap(), 0.0);
    assert_eq!(hit_rate(&spec, &hash, &[2; 33], 1.0, 0).unwrap(), 0.0);
}

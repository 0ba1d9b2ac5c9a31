//! Per-nonce inputs and permutations, the common target, and the partition of the nonce space.
//!
//! Inputs and permutations are keyed by the miner's public key as well as the block hash, so a nonce
//! found by one host is worthless to another (reference §3.3, §3.11).

use gonka_primitives::Hash;

use crate::rng::{bounded_u64, nonce_rng, normal_f32, tensor_rng};
use crate::spec::ModelSpec;

/// Stream name of the per-nonce input embeddings.
const INPUT_STREAM: &str = "poc.input";
/// Stream name of the per-nonce output permutation.
const PERMUTATION_STREAM: &str = "poc.permutation";
/// Stream name of the target vector.
const TARGET_STREAM: &str = "poc.target";

/// The input embeddings of `nonce` for the miner `public_key` (its compressed secp256k1 account key):
/// `seq_len × dim` standard normal values, row-major by position. They replace the token embeddings.
pub fn nonce_input(spec: &ModelSpec, block_hash: &Hash, public_key: &[u8; 33], nonce: u64) -> Vec<f32> {
    let mut rng = nonce_rng(block_hash, INPUT_STREAM, public_key, nonce);
    normal_f32(&mut rng, spec.seq_len as usize * spec.dim as usize, 1.0)
}

/// The permutation applied to the output of `nonce` before it is compared with the target: a uniform
/// permutation of `0..vocab_size` by Fisher–Yates (`i` from the top down, swap with a uniform
/// `j ∈ [0, i]`) with unbiased bounded integers.
pub fn nonce_permutation(spec: &ModelSpec, block_hash: &Hash, public_key: &[u8; 33], nonce: u64) -> Vec<u32> {
    let mut rng = nonce_rng(block_hash, PERMUTATION_STREAM, public_key, nonce);
    let mut permutation: Vec<u32> = (0..spec.vocab_size).collect();
    for i in (1..permutation.len()).rev() {
        let j = bounded_u64(&mut rng, i as u64 + 1) as usize;
        permutation.swap(i, j);
    }
    permutation
}

/// The common target: `vocab_size` standard normal values scaled to unit Euclidean norm (a uniform point
/// on the sphere). The norm is summed in `f64` in index order.
pub fn target(spec: &ModelSpec, block_hash: &Hash) -> Vec<f32> {
    let mut rng = tensor_rng(block_hash, TARGET_STREAM);
    let draws = normal_f32(&mut rng, spec.vocab_size as usize, 1.0);
    let norm = draws.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    // Twelve uniforms all equal to 2^15 − ½ would be needed for a zero draw; a zero vector is impossible
    // in practice, and dividing by a zero norm would only make the target NaN, never panic.
    draws.into_iter().map(|x| (f64::from(x) / norm) as f32).collect()
}

/// Why a worker has no share of the nonce space.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    /// `worker` is not below `workers`, or `workers` is zero.
    #[error("worker {worker} is not one of {workers} workers")]
    WorkerOutOfRange {
        /// The worker index.
        worker: u32,
        /// The number of workers.
        workers: u32,
    },
}

/// The nonces of `worker` among `workers`: `worker, worker + workers, worker + 2·workers, …` up to
/// `u64::MAX`. The shares of `0..workers` are disjoint and together cover every `u64`. Nested splits
/// (host → ML node → GPU group, reference §3.4) are one flat split: node `n` of `N`, group `g` of `G` is
/// worker `n + g·N` of `N·G`.
pub fn worker_nonces(worker: u32, workers: u32) -> Result<impl Iterator<Item = u64>, PartitionError> {
    if worker >= workers {
        return Err(PartitionError::WorkerOutOfRange { worker, workers });
    }
    Ok((u64::from(worker)..=u64::MAX).step_by(workers as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_outside_the_split_is_refused() {
        assert_eq!(
            worker_nonces(3, 3).err(),
            Some(PartitionError::WorkerOutOfRange { worker: 3, workers: 3 })
        );
        assert!(worker_nonces(0, 0).is_err());
    }
}

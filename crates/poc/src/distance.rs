//! The distance of a nonce's output to the target (reference §3.5 step 3) and the hit rate behind
//! difficulty calibration.

use gonka_primitives::Hash;

use crate::forward::forward_last;
use crate::nonce::{nonce_input, nonce_permutation, target};
use crate::spec::ModelSpec;
use crate::weights::{ModelWeights, weights};

pub use crate::forward::ComputeError;

/// `‖u − target‖₂` where `u = y / ‖y‖₂` and `y[i] = logits[permutation[i]]` (NumPy's `logits[perm]`).
/// Norms and the distance are summed in `f64` in index order; the result is clamped to `[0, 2]`, the
/// range for two unit vectors, so rounding can never push it outside.
pub fn distance(logits: &[f32], permutation: &[u32], target: &[f32]) -> Result<f32, ComputeError> {
    if logits.len() != permutation.len() || logits.len() != target.len() {
        return Err(ComputeError::LengthMismatch {
            logits: logits.len(),
            permutation: permutation.len(),
            target: target.len(),
        });
    }
    let permuted = permutation
        .iter()
        .map(|&i| logits.get(i as usize).map(|&y| f64::from(y)).ok_or(ComputeError::PermutationIndex(i)))
        .collect::<Result<Vec<f64>, _>>()?;
    let norm = permuted.iter().map(|y| y * y).sum::<f64>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return Err(ComputeError::DegenerateLogits);
    }
    let squared: f64 = permuted.iter().zip(target).map(|(y, &t)| (y / norm - f64::from(t)).powi(2)).sum();
    Ok((squared.sqrt() as f32).clamp(0.0, 2.0))
}

/// The distance of `nonce` for the miner `public_key`: its input through the model, permuted, compared
/// with `target` (from [`target`] for the same block hash).
pub fn nonce_distance(
    weights: &ModelWeights,
    target: &[f32],
    block_hash: &Hash,
    public_key: &[u8; 33],
    nonce: u64,
) -> Result<f32, ComputeError> {
    let spec = &weights.spec;
    let logits = forward_last(weights, &nonce_input(spec, block_hash, public_key, nonce))?;
    distance(&logits, &nonce_permutation(spec, block_hash, public_key, nonce), target)
}

/// The fraction of nonces `0..nonce_count` whose distance is below `r_target`: what a difficulty
/// calibration measures. Generates the model once; `0.0` for no nonces.
pub fn hit_rate(
    spec: &ModelSpec,
    block_hash: &Hash,
    public_key: &[u8; 33],
    r_target: f32,
    nonce_count: u64,
) -> Result<f64, ComputeError> {
    if nonce_count == 0 {
        return Ok(0.0);
    }
    let model = weights(spec, block_hash)?;
    let target = target(spec, block_hash);
    let mut hits = 0u64;
    for nonce in 0..nonce_count {
        if nonce_distance(&model, &target, block_hash, public_key, nonce)? < r_target {
            hits += 1;
        }
    }
    Ok(hits as f64 / nonce_count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_permutes_then_normalises() {
        // y = logits[perm] = [0, 3, 4] → u = [0, 0.6, 0.8]; equal to the target.
        let d = distance(&[3.0, 4.0, 0.0], &[2, 0, 1], &[0.0, 0.6, 0.8]).unwrap();
        assert!(d < 1e-7);
        // Opposite direction: distance 2.
        assert_eq!(distance(&[-3.0, -4.0, 0.0], &[2, 0, 1], &[0.0, 0.6, 0.8]).unwrap(), 2.0);
        // Orthogonal: √2.
        let d = distance(&[1.0, 0.0], &[0, 1], &[0.0, 1.0]).unwrap();
        assert!((d - std::f32::consts::SQRT_2).abs() < 1e-7);
    }

    #[test]
    fn malformed_inputs_are_errors() {
        assert!(matches!(distance(&[1.0], &[0, 1], &[1.0]), Err(ComputeError::LengthMismatch { .. })));
        assert_eq!(distance(&[1.0, 2.0], &[0, 2], &[1.0, 0.0]), Err(ComputeError::PermutationIndex(2)));
        assert_eq!(distance(&[0.0, 0.0], &[0, 1], &[1.0, 0.0]), Err(ComputeError::DegenerateLogits));
        assert_eq!(distance(&[f32::NAN, 0.0], &[0, 1], &[1.0, 0.0]), Err(ComputeError::DegenerateLogits));
    }
}

//! The reference forward pass in plain `f32`: slow, obvious, and bit-exact.
//!
//! Per layer (reference §3.2): RMSNorm → multi-head causal attention with RoPE (no GQA) → residual →
//! RMSNorm → SwiGLU feed-forward `w2(silu(w1·x) ⊙ w3·x)` → residual; then the final RMSNorm and the
//! output head on the last position. Input embeddings replace the token-embedding lookup.
//!
//! Every reduction has one fixed order, independent of threads and instruction sets:
//! - dot products (matrix rows, attention scores, RMS) keep eight running sums, lane `j` adding the
//!   products at indices `≡ j (mod 8)` in increasing order, then combine them as
//!   `((s0+s1)+(s2+s3)) + ((s4+s5)+(s6+s7))` and add the remaining `len mod 8` products in order;
//! - softmax sums and the attention-weighted sum of values run over positions in increasing order;
//! - `exp`, `sin`, `cos` and `ln` come from [`crate::detmath`] in `f64`, rounded once to `f32`.
//!
//! Rust never fuses `a * b + c` into an FMA on its own, so the same bits come out on every IEEE-754
//! machine. Faster kernels (candle, CUDA) sum in other orders and must be compared with a tolerance.

use crate::detmath;
use crate::weights::{LayerWeights, ModelWeights, Tensor};

/// Why a forward pass or a distance could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComputeError {
    /// The input does not have `seq_len × dim` values.
    #[error("input has {found} values, expected {expected}")]
    InputLength {
        /// `seq_len × dim`.
        expected: usize,
        /// The input's length.
        found: usize,
    },
    /// Logits, permutation and target do not have the same length.
    #[error("logits {logits}, permutation {permutation} and target {target} lengths differ")]
    LengthMismatch {
        /// Logits length.
        logits: usize,
        /// Permutation length.
        permutation: usize,
        /// Target length.
        target: usize,
    },
    /// A permutation entry points outside the logits.
    #[error("permutation entry {0} is out of range")]
    PermutationIndex(u32),
    /// The logits have zero or non-finite norm, so they have no direction.
    #[error("logits have zero or non-finite norm")]
    DegenerateLogits,
    /// The model spec is invalid.
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
}

/// Logits of the last position for the input embeddings `input` (`seq_len × dim`, row-major).
pub fn forward_last(weights: &ModelWeights, input: &[f32]) -> Result<Vec<f32>, ComputeError> {
    let spec = &weights.spec;
    let dim = spec.dim as usize;
    let hidden = hidden_states(weights, input)?;
    let last = &hidden[hidden.len() - dim..];
    let normed = rms_norm(last, &weights.norm.data, spec.norm_eps_f32());
    let mut logits = vec![0.0; spec.vocab_size as usize];
    matvec(&weights.output, &normed, &mut logits);
    Ok(logits)
}

/// The residual stream after the last layer, every position (`seq_len × dim`), before the final norm.
pub(crate) fn hidden_states(weights: &ModelWeights, input: &[f32]) -> Result<Vec<f32>, ComputeError> {
    let spec = &weights.spec;
    spec.validate()?;
    let expected = spec.seq_len as usize * spec.dim as usize;
    if input.len() != expected {
        return Err(ComputeError::InputLength { expected, found: input.len() });
    }
    let rope = RopeTable::new(spec.seq_len as usize, spec.head_dim(), spec.rope_theta);
    let mut hidden = input.to_vec();
    for layer in &weights.layers {
        attention_block(layer, &rope, weights, &mut hidden);
        feed_forward_block(layer, weights, &mut hidden);
    }
    Ok(hidden)
}

/// `hidden += wo · attention(rope(wq·x), rope(wk·x), wv·x)` with `x = rms_norm(hidden)`, causal.
fn attention_block(layer: &LayerWeights, rope: &RopeTable, weights: &ModelWeights, hidden: &mut [f32]) {
    let spec = &weights.spec;
    let (dim, head_dim, seq_len) = (spec.dim as usize, spec.head_dim(), spec.seq_len as usize);
    let eps = spec.norm_eps_f32();
    let (mut q, mut k, mut v) =
        (vec![0.0; seq_len * dim], vec![0.0; seq_len * dim], vec![0.0; seq_len * dim]);
    for pos in 0..seq_len {
        let x = rms_norm(&hidden[pos * dim..(pos + 1) * dim], &layer.attention_norm.data, eps);
        let row = pos * dim..(pos + 1) * dim;
        matvec(&layer.wq, &x, &mut q[row.clone()]);
        matvec(&layer.wk, &x, &mut k[row.clone()]);
        matvec(&layer.wv, &x, &mut v[row.clone()]);
        rope.rotate(pos, &mut q[row.clone()]);
        rope.rotate(pos, &mut k[row]);
    }
    let scale = (head_dim as f32).sqrt();
    let mut heads = vec![0.0f32; dim];
    let mut projected = vec![0.0f32; dim];
    let mut scores = Vec::with_capacity(seq_len);
    for pos in 0..seq_len {
        for head in 0..spec.n_heads as usize {
            let cols = head * head_dim..(head + 1) * head_dim;
            let query = &q[pos * dim..][cols.clone()];
            scores.clear();
            scores.extend((0..=pos).map(|key_pos| dot(query, &k[key_pos * dim..][cols.clone()]) / scale));
            softmax(&mut scores);
            let out = &mut heads[cols.clone()];
            out.fill(0.0);
            for (key_pos, &p) in scores.iter().enumerate() {
                for (o, &value) in out.iter_mut().zip(&v[key_pos * dim..][cols.clone()]) {
                    *o += p * value;
                }
            }
        }
        matvec(&layer.wo, &heads, &mut projected);
        for (h, a) in hidden[pos * dim..(pos + 1) * dim].iter_mut().zip(&projected) {
            *h += a;
        }
    }
}

/// `hidden += w2 · (silu(w1·x) ⊙ w3·x)` with `x = rms_norm(hidden)`, per position.
fn feed_forward_block(layer: &LayerWeights, weights: &ModelWeights, hidden: &mut [f32]) {
    let spec = &weights.spec;
    let (dim, ffn) = (spec.dim as usize, spec.ffn_hidden as usize);
    let (mut gate, mut up, mut down) = (vec![0.0f32; ffn], vec![0.0f32; ffn], vec![0.0f32; dim]);
    for row in hidden.chunks_exact_mut(dim) {
        let x = rms_norm(row, &layer.ffn_norm.data, spec.norm_eps_f32());
        matvec(&layer.w1, &x, &mut gate);
        matvec(&layer.w3, &x, &mut up);
        for (g, u) in gate.iter_mut().zip(&up) {
            *g = silu(*g) * u;
        }
        matvec(&layer.w2, &gate, &mut down);
        for (h, d) in row.iter_mut().zip(&down) {
            *h += d;
        }
    }
}

/// The RoPE rotations `(cos, sin)` of `pos · θ^(−2j/head_dim)`, position-major (`seq_len × head_dim/2`
/// pairs), as the reference pass uses them: faster kernels take the same values.
pub fn rope_table(seq_len: usize, head_dim: usize, theta: u64) -> Vec<(f32, f32)> {
    RopeTable::new(seq_len, head_dim, theta).cos_sin
}

/// RoPE rotations `(cos, sin)` of `pos · θ^(−2j/head_dim)` for every position and pair `j`.
struct RopeTable {
    half: usize,
    cos_sin: Vec<(f32, f32)>,
}

impl RopeTable {
    fn new(seq_len: usize, head_dim: usize, theta: u64) -> RopeTable {
        let half = head_dim / 2;
        let ln_theta = detmath::ln(theta as f64);
        let freqs: Vec<f64> =
            (0..half).map(|j| detmath::exp(-((2 * j) as f64 / head_dim as f64) * ln_theta)).collect();
        let cos_sin = (0..seq_len)
            .flat_map(|pos| {
                freqs.iter().map(move |freq| {
                    let (sin, cos) = detmath::sin_cos(pos as f64 * freq);
                    (cos as f32, sin as f32)
                })
            })
            .collect();
        RopeTable { half, cos_sin }
    }

    /// Rotates each head's consecutive pairs `(x[2j], x[2j+1])` in place (Meta's complex-pair layout).
    fn rotate(&self, pos: usize, row: &mut [f32]) {
        let table = &self.cos_sin[pos * self.half..(pos + 1) * self.half];
        for head in row.chunks_exact_mut(2 * self.half) {
            for (pair, &(cos, sin)) in head.chunks_exact_mut(2).zip(table) {
                let (a, b) = (pair[0], pair[1]);
                pair[0] = a * cos - b * sin;
                pair[1] = a * sin + b * cos;
            }
        }
    }
}

/// The dot product in the fixed eight-lane order described in the module docs.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let (a_rest, b_rest) = (a_chunks.remainder(), b_chunks.remainder());
    for (x, y) in a_chunks.zip(b_chunks) {
        for j in 0..8 {
            lanes[j] += x[j] * y[j];
        }
    }
    let mut sum =
        ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (x, y) in a_rest.iter().zip(b_rest) {
        sum += x * y;
    }
    sum
}

/// `out[o] = W[o, :] · x` for a row-major `[out.len(), x.len()]` matrix.
fn matvec(matrix: &Tensor, x: &[f32], out: &mut [f32]) {
    for (o, row) in out.iter_mut().zip(matrix.data.chunks_exact(x.len())) {
        *o = dot(row, x);
    }
}

/// `x / sqrt(mean(x²) + eps) ⊙ weight`.
fn rms_norm(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let inverse_rms = 1.0 / (dot(x, x) / x.len() as f32 + eps).sqrt();
    x.iter().zip(weight).map(|(v, w)| (v * inverse_rms) * w).collect()
}

/// In-place softmax, max-subtracted, summed in index order.
fn softmax(values: &mut [f32]) {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in values.iter_mut() {
        *v = detmath::exp(f64::from(*v - max)) as f32;
        sum += *v;
    }
    for v in values.iter_mut() {
        *v /= sum;
    }
}

/// `x · sigmoid(x)`, in `f64`, rounded once.
fn silu(x: f32) -> f32 {
    let x = f64::from(x);
    (x / (1.0 + detmath::exp(-x))) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nonce::nonce_input;
    use crate::spec::ModelSpec;
    use crate::weights::weights;
    use gonka_primitives::Hash;

    #[test]
    fn later_positions_never_change_earlier_ones() {
        let spec = ModelSpec::devnet();
        let model = weights(&spec, &Hash::ZERO).unwrap();
        let input = nonce_input(&spec, &Hash::ZERO, &[2; 33], 0);
        let mut changed = input.clone();
        let dim = spec.dim as usize;
        let last = changed.len() - dim;
        for x in &mut changed[last..] {
            *x = -*x;
        }
        let (a, b) = (hidden_states(&model, &input).unwrap(), hidden_states(&model, &changed).unwrap());
        assert_eq!(a[..last], b[..last], "causal mask");
        assert_ne!(a[last..], b[last..]);
        assert_ne!(forward_last(&model, &input).unwrap(), forward_last(&model, &changed).unwrap());
    }

    #[test]
    fn rope_scores_depend_only_on_relative_position() {
        let rope = RopeTable::new(16, 8, 10_000);
        let (q0, k0): (Vec<f32>, Vec<f32>) = (
            (0..8).map(|i| i as f32 * 0.25 - 1.0).collect(),
            (0..8).map(|i| 1.0 - i as f32 * 0.125).collect(),
        );
        let score = |qp: usize, kp: usize| {
            let (mut q, mut k) = (q0.clone(), k0.clone());
            rope.rotate(qp, &mut q);
            rope.rotate(kp, &mut k);
            dot(&q, &k)
        };
        assert!((score(5, 2) - score(13, 10)).abs() < 1e-5);
        assert!((score(0, 0) - dot(&q0, &k0)).abs() < 1e-6);
        assert!((score(7, 0) - score(0, 0)).abs() > 1e-3);
    }

    #[test]
    fn dot_uses_the_documented_order() {
        let a: Vec<f32> = (0..19).map(|i| 1.0 + i as f32 * 1e-3).collect();
        let b: Vec<f32> = (0..19).map(|i| 3.0 - i as f32 * 1e-2).collect();
        let mut lanes = [0.0f32; 8];
        for i in 0..16 {
            lanes[i % 8] += a[i] * b[i];
        }
        let mut expected =
            ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
        for i in 16..19 {
            expected += a[i] * b[i];
        }
        assert_eq!(dot(&a, &b).to_bits(), expected.to_bits());
    }

    #[test]
    fn softmax_and_silu_behave() {
        let mut v = vec![1.0, 2.0, 3.0];
        softmax(&mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(v[0] < v[1] && v[1] < v[2]);
        assert_eq!(silu(0.0), 0.0);
        assert!((silu(10.0) - 10.0).abs() < 1e-3);
        assert!(silu(-200.0).abs() < 1e-30);
    }

    #[test]
    fn a_wrong_input_length_is_an_error() {
        let model = weights(&ModelSpec { n_layers: 1, ..ModelSpec::devnet() }, &Hash::ZERO).unwrap();
        assert_eq!(
            forward_last(&model, &[0.0; 3]),
            Err(ComputeError::InputLength { expected: 2048, found: 3 })
        );
    }
}

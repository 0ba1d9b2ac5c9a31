//! The PoC model's shape (reference §3.2): a Llama-style decoder without GQA, fed input embeddings directly.

use gonka_primitives::{Decimal, codec_struct};
use serde::{Deserialize, Serialize};

/// Largest accepted model width.
pub const MAX_DIM: u32 = 1 << 16;
/// Largest accepted number of layers.
pub const MAX_LAYERS: u32 = 1024;
/// Largest accepted number of attention heads.
pub const MAX_HEADS: u32 = 1 << 12;
/// Largest accepted FFN hidden size.
pub const MAX_FFN_HIDDEN: u32 = 1 << 20;
/// Largest accepted output size.
pub const MAX_VOCAB_SIZE: u32 = 1 << 20;
/// Largest accepted sequence length; it also bounds RoPE angles, which keeps their range reduction exact.
pub const MAX_SEQ_LEN: u32 = 1 << 16;
/// Largest accepted RoPE base.
pub const MAX_ROPE_THETA: u64 = 1_000_000_000_000;

/// The shape of the PoC model. Every host derives the same weights from it and the block hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Model width (embedding size).
    pub dim: u32,
    /// Decoder layers.
    pub n_layers: u32,
    /// Attention heads; keys and values have as many (no grouped-query attention).
    pub n_heads: u32,
    /// Hidden size of the SwiGLU feed-forward block.
    pub ffn_hidden: u32,
    /// Size of the output vector (the original's vocabulary size).
    pub vocab_size: u32,
    /// Input positions per nonce.
    pub seq_len: u32,
    /// RoPE base θ.
    pub rope_theta: u64,
    /// RMSNorm epsilon, in `(0, 1)`.
    pub norm_eps: Decimal,
}
codec_struct!(ModelSpec { dim, n_layers, n_heads, ffn_hidden, vocab_size, seq_len, rope_theta, norm_eps });

/// Why a [`ModelSpec`] is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A size is zero.
    #[error("{0} must be positive")]
    Zero(&'static str),
    /// A size is above its limit.
    #[error("{field} is {value}, limit {limit}")]
    TooLarge {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The limit.
        limit: u64,
    },
    /// The heads do not split the width evenly into even-sized halves for RoPE.
    #[error("dim {dim} is not n_heads {n_heads} × an even head size")]
    HeadSplit {
        /// Model width.
        dim: u32,
        /// Heads.
        n_heads: u32,
    },
    /// RoPE needs θ ≥ 2.
    #[error("rope_theta {0} is below 2")]
    RopeTheta(u64),
    /// The norm epsilon is outside `(0, 1)`.
    #[error("norm_eps {0} is outside (0, 1)")]
    NormEps(Decimal),
}

impl ModelSpec {
    /// The devnet model (DESIGN.md §6): ~56 MFLOP per nonce, about 1,200 nonces/s per CPU core, and
    /// large enough that matrix products, not per-nonce input generation, dominate its cost. The FFN
    /// is the original's `2·4·dim/3` rounded up to a multiple of 512.
    pub fn devnet() -> ModelSpec {
        ModelSpec {
            dim: 512,
            n_layers: 2,
            n_heads: 8,
            ffn_hidden: 1536,
            vocab_size: 1024,
            seq_len: 4,
            rope_theta: 10_000,
            norm_eps: Decimal::from_raw(10_000_000_000_000), // 1e-5
        }
    }

    /// The original network's `MainNetParams` (reference §3.2).
    pub fn mainnet() -> ModelSpec {
        ModelSpec {
            dim: 1792,
            n_layers: 64,
            n_heads: 64,
            ffn_hidden: 49152,
            vocab_size: 8196,
            seq_len: 256,
            rope_theta: 10_000,
            norm_eps: Decimal::from_raw(10_000_000_000_000), // 1e-5
        }
    }

    /// Checks every field against its limit and the shape rules.
    pub fn validate(&self) -> Result<(), SpecError> {
        let sizes = [
            ("dim", self.dim, MAX_DIM),
            ("n_layers", self.n_layers, MAX_LAYERS),
            ("n_heads", self.n_heads, MAX_HEADS),
            ("ffn_hidden", self.ffn_hidden, MAX_FFN_HIDDEN),
            ("vocab_size", self.vocab_size, MAX_VOCAB_SIZE),
            ("seq_len", self.seq_len, MAX_SEQ_LEN),
        ];
        for (field, value, limit) in sizes {
            if value == 0 {
                return Err(SpecError::Zero(field));
            }
            if value > limit {
                return Err(SpecError::TooLarge { field, value: value.into(), limit: limit.into() });
            }
        }
        if !self.dim.is_multiple_of(self.n_heads) || !(self.dim / self.n_heads).is_multiple_of(2) {
            return Err(SpecError::HeadSplit { dim: self.dim, n_heads: self.n_heads });
        }
        if self.rope_theta < 2 {
            return Err(SpecError::RopeTheta(self.rope_theta));
        }
        if self.rope_theta > MAX_ROPE_THETA {
            return Err(SpecError::TooLarge {
                field: "rope_theta",
                value: self.rope_theta,
                limit: MAX_ROPE_THETA,
            });
        }
        if self.norm_eps <= Decimal::ZERO || self.norm_eps >= Decimal::ONE {
            return Err(SpecError::NormEps(self.norm_eps));
        }
        Ok(())
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        (self.dim / self.n_heads.max(1)) as usize
    }

    /// `norm_eps` as an `f32` (the Decimal's raw value over 10^18, each step correctly rounded).
    pub fn norm_eps_f32(&self) -> f32 {
        (self.norm_eps.raw() as f64 / 1e18) as f32
    }

    /// Number of generated parameters: every tensor of [`crate::ModelWeights`]. The original's unused
    /// token-embedding table is not generated and not counted. Saturates at `u64::MAX`.
    pub fn parameter_count(&self) -> u64 {
        let dim = u128::from(self.dim);
        let ffn = u128::from(self.ffn_hidden);
        let per_layer = 4 * dim * dim + 3 * dim * ffn + 2 * dim;
        let total = u128::from(self.n_layers) * per_layer + dim + u128::from(self.vocab_size) * dim;
        u64::try_from(total).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gonka_primitives::codec::{Decode, Encode, decode_exact};

    #[test]
    fn profiles_are_valid_and_sized_as_documented() {
        ModelSpec::devnet().validate().unwrap();
        ModelSpec::mainnet().validate().unwrap();
        assert_eq!(
            ModelSpec::devnet().parameter_count(),
            2 * (4 * 262_144 + 3 * 786_432 + 1024) + 512 + 524_288
        );
        // Reference §3.2 gives ≈17.76 B including the unused 14.7 M token-embedding table.
        assert_eq!(ModelSpec::mainnet().parameter_count(), 17_748_435_712);
        assert_eq!(ModelSpec::mainnet().parameter_count() + 8196 * 1792, 17_763_122_944);
        assert_eq!(ModelSpec::devnet().norm_eps.to_string(), "0.00001");
    }

    #[test]
    fn invalid_specs_are_refused() {
        type Case = (fn(&mut ModelSpec), SpecError);
        let cases: Vec<Case> = vec![
            (|s| s.dim = 0, SpecError::Zero("dim")),
            (|s| s.n_heads = 3, SpecError::HeadSplit { dim: 512, n_heads: 3 }),
            (|s| s.n_heads = 512, SpecError::HeadSplit { dim: 512, n_heads: 512 }),
            (
                |s| s.seq_len = MAX_SEQ_LEN + 1,
                SpecError::TooLarge {
                    field: "seq_len",
                    value: u64::from(MAX_SEQ_LEN) + 1,
                    limit: MAX_SEQ_LEN.into(),
                },
            ),
            (|s| s.rope_theta = 1, SpecError::RopeTheta(1)),
            (|s| s.norm_eps = Decimal::ZERO, SpecError::NormEps(Decimal::ZERO)),
            (|s| s.norm_eps = Decimal::ONE, SpecError::NormEps(Decimal::ONE)),
        ];
        for (mutate, expected) in cases {
            let mut spec = ModelSpec::devnet();
            mutate(&mut spec);
            assert_eq!(spec.validate(), Err(expected));
        }
    }

    #[test]
    fn codec_and_serde_round_trip() {
        for spec in [ModelSpec::devnet(), ModelSpec::mainnet()] {
            let bytes = spec.to_bytes();
            assert_eq!(bytes.len(), 6 * 4 + 8 + 16);
            assert_eq!(decode_exact::<ModelSpec>(&bytes, 1024).unwrap(), spec);
            let mut reader = gonka_primitives::Reader::new(&bytes);
            assert_eq!(ModelSpec::decode(&mut reader).unwrap(), spec);
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(serde_json::from_str::<ModelSpec>(&json).unwrap(), spec);
        }
        let json = serde_json::to_value(ModelSpec::devnet()).unwrap();
        assert_eq!(json["norm_eps"], "0.00001");
    }
}

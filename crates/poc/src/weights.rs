//! The PoC model's weights, generated from the block hash: one ChaCha20 stream per named tensor.

use gonka_primitives::Hash;
use sha2::{Digest, Sha256};

use crate::rng::{normal_f32, tensor_rng};
use crate::spec::{ModelSpec, SpecError};

/// Standard deviation of every weight matrix, as in a usual transformer initialisation.
pub const MATRIX_STD: f64 = 0.02;

/// A named tensor: row-major `f32` data of the given shape. Matrices are `[out, in]`, as PyTorch's
/// `nn.Linear.weight`, so `y = W·x` reads one contiguous row per output.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The parameter name, e.g. `layers.0.attention.wq`.
    pub name: String,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A matrix or vector of normal draws with standard deviation `std` from the stream of `name`.
    fn normal(block_hash: &Hash, name: String, shape: Vec<usize>, std: f64) -> Tensor {
        let mut rng = tensor_rng(block_hash, &name);
        let data = normal_f32(&mut rng, shape.iter().product(), std);
        Tensor { name, shape, data }
    }

    /// An RMSNorm weight: ones, as RMSNorm is initialised. It needs no stream.
    fn ones(name: String, len: usize) -> Tensor {
        Tensor { name, shape: vec![len], data: vec![1.0; len] }
    }
}

/// The tensors of one decoder layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWeights {
    /// `layers.{i}.attention.wq`, `[dim, dim]`.
    pub wq: Tensor,
    /// `layers.{i}.attention.wk`, `[dim, dim]`.
    pub wk: Tensor,
    /// `layers.{i}.attention.wv`, `[dim, dim]`.
    pub wv: Tensor,
    /// `layers.{i}.attention.wo`, `[dim, dim]`.
    pub wo: Tensor,
    /// `layers.{i}.feed_forward.w1` (gate), `[ffn_hidden, dim]`.
    pub w1: Tensor,
    /// `layers.{i}.feed_forward.w2` (down), `[dim, ffn_hidden]`.
    pub w2: Tensor,
    /// `layers.{i}.feed_forward.w3` (up), `[ffn_hidden, dim]`.
    pub w3: Tensor,
    /// `layers.{i}.attention_norm`, `[dim]`.
    pub attention_norm: Tensor,
    /// `layers.{i}.ffn_norm`, `[dim]`.
    pub ffn_norm: Tensor,
}

impl LayerWeights {
    /// The layer's tensors in the canonical order.
    pub fn tensors(&self) -> [&Tensor; 9] {
        [
            &self.wq,
            &self.wk,
            &self.wv,
            &self.wo,
            &self.w1,
            &self.w2,
            &self.w3,
            &self.attention_norm,
            &self.ffn_norm,
        ]
    }
}

/// Every weight of the PoC model for one block hash.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelWeights {
    /// The shape these weights were generated for.
    pub spec: ModelSpec,
    /// Decoder layers, in order.
    pub layers: Vec<LayerWeights>,
    /// Final RMSNorm, `norm`, `[dim]`.
    pub norm: Tensor,
    /// Output head, `output`, `[vocab_size, dim]`.
    pub output: Tensor,
}

impl ModelWeights {
    /// All tensors in the canonical order: per layer `attention.wq, wk, wv, wo`, `feed_forward.w1, w2, w3`,
    /// `attention_norm`, `ffn_norm`; then `norm`, `output` (PyTorch's `named_parameters()` order, without the
    /// unused token embeddings).
    pub fn tensors(&self) -> Vec<&Tensor> {
        let mut all: Vec<&Tensor> = self.layers.iter().flat_map(LayerWeights::tensors).collect();
        all.push(&self.norm);
        all.push(&self.output);
        all
    }

    /// SHA-256 over every tensor in order (name, `u32` big-endian length-prefixed; each dimension as
    /// `u64` big-endian; values as little-endian `f32` bits). Two hosts with the same digest hold the
    /// same model.
    pub fn digest(&self) -> Hash {
        let mut hasher = Sha256::new();
        for tensor in self.tensors() {
            hasher.update((tensor.name.len() as u32).to_be_bytes());
            hasher.update(tensor.name.as_bytes());
            hasher.update((tensor.shape.len() as u32).to_be_bytes());
            for &d in &tensor.shape {
                hasher.update((d as u64).to_be_bytes());
            }
            for value in &tensor.data {
                hasher.update(value.to_le_bytes());
            }
        }
        Hash(hasher.finalize().into())
    }
}

/// Generates the model for `spec` and `block_hash`. Matrices are normal with standard deviation
/// [`MATRIX_STD`], each from its own stream ([`tensor_rng`] of its name), so tensors can be generated in
/// any order or in parallel with the same result; RMSNorm weights are ones.
pub fn weights(spec: &ModelSpec, block_hash: &Hash) -> Result<ModelWeights, SpecError> {
    spec.validate()?;
    let dim = spec.dim as usize;
    let ffn = spec.ffn_hidden as usize;
    let matrix = |name: String, rows: usize, cols: usize| {
        Tensor::normal(block_hash, name, vec![rows, cols], MATRIX_STD)
    };
    let layers = (0..spec.n_layers)
        .map(|i| LayerWeights {
            wq: matrix(format!("layers.{i}.attention.wq"), dim, dim),
            wk: matrix(format!("layers.{i}.attention.wk"), dim, dim),
            wv: matrix(format!("layers.{i}.attention.wv"), dim, dim),
            wo: matrix(format!("layers.{i}.attention.wo"), dim, dim),
            w1: matrix(format!("layers.{i}.feed_forward.w1"), ffn, dim),
            w2: matrix(format!("layers.{i}.feed_forward.w2"), dim, ffn),
            w3: matrix(format!("layers.{i}.feed_forward.w3"), ffn, dim),
            attention_norm: Tensor::ones(format!("layers.{i}.attention_norm"), dim),
            ffn_norm: Tensor::ones(format!("layers.{i}.ffn_norm"), dim),
        })
        .collect();
    Ok(ModelWeights {
        spec: spec.clone(),
        layers,
        norm: Tensor::ones("norm".to_string(), dim),
        output: matrix("output".to_string(), spec.vocab_size as usize, dim),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_come_in_the_canonical_order_with_their_shapes() {
        let spec = ModelSpec { n_layers: 1, ..ModelSpec::devnet() };
        let model = weights(&spec, &Hash::ZERO).unwrap();
        let names: Vec<(&str, &[usize])> =
            model.tensors().iter().map(|t| (t.name.as_str(), t.shape.as_slice())).collect();
        assert_eq!(
            names,
            vec![
                ("layers.0.attention.wq", &[512, 512][..]),
                ("layers.0.attention.wk", &[512, 512][..]),
                ("layers.0.attention.wv", &[512, 512][..]),
                ("layers.0.attention.wo", &[512, 512][..]),
                ("layers.0.feed_forward.w1", &[1536, 512][..]),
                ("layers.0.feed_forward.w2", &[512, 1536][..]),
                ("layers.0.feed_forward.w3", &[1536, 512][..]),
                ("layers.0.attention_norm", &[512][..]),
                ("layers.0.ffn_norm", &[512][..]),
                ("norm", &[512][..]),
                ("output", &[1024, 512][..]),
            ]
        );
        let count: usize = model.tensors().iter().map(|t| t.data.len()).sum();
        assert_eq!(count as u64, spec.parameter_count());
        for tensor in model.tensors() {
            assert_eq!(tensor.data.len(), tensor.shape.iter().product::<usize>());
        }
    }

    #[test]
    fn matrices_are_scaled_like_an_initialisation_and_differ_per_block() {
        let spec = ModelSpec { n_layers: 1, ..ModelSpec::devnet() };
        let a = weights(&spec, &Hash::digest(b"a")).unwrap();
        let wq = &a.layers[0].wq.data;
        let rms = (wq.iter().map(|w| f64::from(*w).powi(2)).sum::<f64>() / wq.len() as f64).sqrt();
        assert!((rms - MATRIX_STD).abs() < 0.001, "rms {rms}");
        assert!(a.norm.data.iter().all(|&w| w == 1.0));
        assert_ne!(a.layers[0].wq.data, a.layers[0].wk.data);
        let b = weights(&spec, &Hash::digest(b"b")).unwrap();
        assert_ne!(a.digest(), b.digest());
        assert_eq!(a.digest(), weights(&spec, &Hash::digest(b"a")).unwrap().digest());
    }

    #[test]
    fn an_invalid_spec_generates_nothing() {
        let spec = ModelSpec { n_heads: 3, ..ModelSpec::devnet() };
        assert!(weights(&spec, &Hash::ZERO).is_err());
    }
}

//! A plain full-precision forward pass over the same GGUF: the yardstick the served engine is measured
//! against (`gonka bench fidelity`, `docs/engine.md` "Fidelity").
//!
//! It shares nothing with the fast path but the file's metadata: every weight is dequantized to f32 by
//! candle's GGML dequantizers (not our kernels), activations stay in f32 between operations, and every
//! sum (dot products, RMSNorm, softmax, RoPE angles) is accumulated in f64. One token at a time, no
//! batching, no quantized activations, no own `exp`: slow (tens of milliseconds a token) and obviously
//! correct.

use std::fs::File;
use std::path::Path;

use candle_core::Device;
use candle_core::quantized::gguf_file::Content;

use crate::model::{LlamaConfig, ModelError};

/// One dense weight matrix, `[n][k]` row-major.
struct Dense {
    n: usize,
    k: usize,
    w: Vec<f32>,
}

impl Dense {
    /// `W · x` (length `n`), rows split over `threads` scoped threads.
    fn apply(&self, x: &[f32], threads: usize) -> Vec<f32> {
        assert_eq!(x.len(), self.k, "input length");
        let mut out = vec![0.0f32; self.n];
        let rows_per_thread = self.n.div_ceil(threads.max(1)).max(1);
        std::thread::scope(|scope| {
            for (chunk, out) in out.chunks_mut(rows_per_thread).enumerate() {
                scope.spawn(move || {
                    for (i, o) in out.iter_mut().enumerate() {
                        let row = &self.w[(chunk * rows_per_thread + i) * self.k..][..self.k];
                        #[allow(clippy::cast_possible_truncation)]
                        {
                            *o = dot(row, x) as f32;
                        }
                    }
                });
            }
        });
        out
    }
}

/// `Σ a·b` in f64, four independent partial sums (so the compiler may use vector registers) added at
/// the end.
fn dot(a: &[f32], b: &[f32]) -> f64 {
    let mut partial = [0.0f64; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let (a_rest, b_rest) = (a4.remainder(), b4.remainder());
    for (a, b) in a4.zip(b4) {
        for i in 0..4 {
            partial[i] += f64::from(a[i]) * f64::from(b[i]);
        }
    }
    let rest: f64 = a_rest.iter().zip(b_rest).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
    partial.iter().sum::<f64>() + rest
}

/// One tensor of the file, dequantized.
struct Loaded {
    name: String,
    dims: Vec<usize>,
    w: Vec<f32>,
}

impl Loaded {
    fn matrix(self) -> Result<Dense, ModelError> {
        match self.dims.as_slice() {
            [n, k] => Ok(Dense { n: *n, k: *k, w: self.w }),
            dims => {
                Err(ModelError::Unsupported(format!("{} has shape {dims:?}, expected a matrix", self.name)))
            }
        }
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: Dense,
    wk: Dense,
    wv: Dense,
    wo: Dense,
    ffn_norm: Vec<f32>,
    w_gate: Dense,
    w_up: Dense,
    w_down: Dense,
}

/// The reference model: every weight in f32.
pub struct ReferenceModel {
    config: LlamaConfig,
    embedding: Dense,
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    output: Option<Dense>,
    threads: usize,
}

impl std::fmt::Debug for ReferenceModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReferenceModel").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Keys and values of one sequence, per layer, `[position][kv_dim]`.
#[derive(Debug, Clone, Default)]
pub struct ReferenceCache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    len: usize,
}

impl ReferenceModel {
    /// Dequantize every tensor of the GGUF at `path` to f32; matrix-vector products run on `threads`.
    pub fn load(path: &Path, threads: usize) -> Result<Self, ModelError> {
        let io = |source| ModelError::Io { path: path.display().to_string(), source };
        let mut file = File::open(path).map_err(io)?;
        let content = Content::read(&mut file)?;
        let config = LlamaConfig::from_gguf(&content)?;
        let mut tensor = |name: &str| -> Result<Loaded, ModelError> {
            let t = content.tensor(&mut file, name, &Device::Cpu)?.dequantize(&Device::Cpu)?;
            Ok(Loaded {
                name: name.to_string(),
                dims: t.dims().to_vec(),
                w: t.flatten_all()?.to_vec1::<f32>()?,
            })
        };
        let embedding = tensor("token_embd.weight")?.matrix()?;
        let mut layers = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let name = |suffix: &str| format!("blk.{i}.{suffix}.weight");
            layers.push(Layer {
                attn_norm: tensor(&name("attn_norm"))?.w,
                wq: tensor(&name("attn_q"))?.matrix()?,
                wk: tensor(&name("attn_k"))?.matrix()?,
                wv: tensor(&name("attn_v"))?.matrix()?,
                wo: tensor(&name("attn_output"))?.matrix()?,
                ffn_norm: tensor(&name("ffn_norm"))?.w,
                w_gate: tensor(&name("ffn_gate"))?.matrix()?,
                w_up: tensor(&name("ffn_up"))?.matrix()?,
                w_down: tensor(&name("ffn_down"))?.matrix()?,
            });
        }
        let output = match content.tensor_infos.contains_key("output.weight") {
            true => Some(tensor("output.weight")?.matrix()?),
            false => None,
        };
        let output_norm = tensor("output_norm.weight")?.w;
        if embedding.n != config.vocab_size || embedding.k != config.dim {
            return Err(ModelError::Unsupported("token_embd does not match the config".into()));
        }
        Ok(Self { config, embedding, layers, output_norm, output, threads: threads.max(1) })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// An empty cache.
    pub fn cache(&self) -> ReferenceCache {
        ReferenceCache {
            keys: vec![Vec::new(); self.config.n_layer],
            values: vec![Vec::new(); self.config.n_layer],
            len: 0,
        }
    }

    /// Feed one token at the end of `cache` and return the logits of the next token.
    pub fn forward(&self, cache: &mut ReferenceCache, token: u32) -> Result<Vec<f32>, ModelError> {
        let c = &self.config;
        let id = token as usize;
        if id >= c.vocab_size {
            return Err(ModelError::Unsupported(format!("token id {id} outside the vocabulary")));
        }
        let position = cache.len;
        if position >= c.context_length {
            return Err(ModelError::ContextOverflow {
                needed: position + 1,
                context_length: c.context_length,
            });
        }
        let (head_dim, kv_dim) = (c.head_dim(), c.kv_dim());
        let group = c.n_head / c.n_kv_head;
        let mut x = self.embedding.w[id * c.dim..][..c.dim].to_vec();
        for (l, layer) in self.layers.iter().enumerate() {
            let h = rms_norm(&x, &layer.attn_norm, c.rms_eps);
            let mut q = layer.wq.apply(&h, self.threads);
            let mut k = layer.wk.apply(&h, self.threads);
            let v = layer.wv.apply(&h, self.threads);
            rope(&mut q, head_dim, position, c.rope_theta);
            rope(&mut k, head_dim, position, c.rope_theta);
            cache.keys[l].extend_from_slice(&k);
            cache.values[l].extend_from_slice(&v);
            let mut attn = vec![0.0f32; c.dim];
            let scale = 1.0 / (head_dim as f64).sqrt();
            for head in 0..c.n_head {
                let q = &q[head * head_dim..][..head_dim];
                let kv = (head / group) * head_dim;
                let scores: Vec<f64> = (0..=position)
                    .map(|p| dot(q, &cache.keys[l][p * kv_dim + kv..][..head_dim]) * scale)
                    .collect();
                let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
                let total: f64 = weights.iter().sum();
                for (d, out) in attn[head * head_dim..][..head_dim].iter_mut().enumerate() {
                    let sum: f64 = weights
                        .iter()
                        .enumerate()
                        .map(|(p, w)| w * f64::from(cache.values[l][p * kv_dim + kv + d]))
                        .sum();
                    #[allow(clippy::cast_possible_truncation)]
                    {
                        *out = (sum / total) as f32;
                    }
                }
            }
            add(&mut x, &layer.wo.apply(&attn, self.threads));
            let h = rms_norm(&x, &layer.ffn_norm, c.rms_eps);
            let gate = layer.w_gate.apply(&h, self.threads);
            let up = layer.w_up.apply(&h, self.threads);
            let act: Vec<f32> = gate
                .iter()
                .zip(&up)
                .map(|(&g, &u)| {
                    let g = f64::from(g);
                    #[allow(clippy::cast_possible_truncation)]
                    let value = (g / (1.0 + (-g).exp()) * f64::from(u)) as f32;
                    value
                })
                .collect();
            add(&mut x, &layer.w_down.apply(&act, self.threads));
        }
        cache.len += 1;
        let h = rms_norm(&x, &self.output_norm, c.rms_eps);
        Ok(self.output.as_ref().unwrap_or(&self.embedding).apply(&h, self.threads))
    }

    /// Greedy decoding of up to `max_tokens` after `prompt`, stopping after any of `stop_ids`: each
    /// chosen token with its logprob.
    pub fn greedy(
        &self,
        prompt: &[u32],
        max_tokens: usize,
        stop_ids: &[u32],
    ) -> Result<Vec<(u32, f64)>, ModelError> {
        let mut cache = self.cache();
        let mut logits = Vec::new();
        for &token in prompt {
            logits = self.forward(&mut cache, token)?;
        }
        let mut chosen = Vec::with_capacity(max_tokens);
        while chosen.len() < max_tokens && !logits.is_empty() {
            let logprobs = log_softmax(&logits);
            let best = argmax(&logprobs);
            chosen.push((best, logprobs[best as usize]));
            if stop_ids.contains(&best) || chosen.len() == max_tokens {
                break;
            }
            logits = self.forward(&mut cache, best)?;
        }
        Ok(chosen)
    }
}

/// `log softmax(logits)` in f64.
pub fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let top = logits.iter().map(|&l| f64::from(l)).fold(f64::NEG_INFINITY, f64::max);
    let lse = top + logits.iter().map(|&l| (f64::from(l) - top).exp()).sum::<f64>().ln();
    logits.iter().map(|&l| f64::from(l) - lse).collect()
}

/// The index of the largest value (the lowest index among equals).
pub fn argmax(values: &[f64]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    #[allow(clippy::cast_possible_truncation)]
    let best = best as u32;
    best
}

fn rms_norm(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let mean_square = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64;
    let inv = 1.0 / (mean_square + f64::from(eps)).sqrt();
    #[allow(clippy::cast_possible_truncation)]
    x.iter().zip(weight).map(|(&v, &w)| (f64::from(v) * inv * f64::from(w)) as f32).collect()
}

/// Rotate consecutive pairs of every head by `position · theta^(-2i / head_dim)` (GGUF llama layout).
fn rope(x: &mut [f32], head_dim: usize, position: usize, theta: f32) {
    for head in x.chunks_exact_mut(head_dim) {
        for (i, pair) in head.chunks_exact_mut(2).enumerate() {
            let angle = position as f64 * f64::from(theta).powf(-2.0 * i as f64 / head_dim as f64);
            let (sin, cos) = angle.sin_cos();
            let (a, b) = (f64::from(pair[0]), f64::from(pair[1]));
            #[allow(clippy::cast_possible_truncation)]
            {
                pair[0] = (a * cos - b * sin) as f32;
                pair[1] = (a * sin + b * cos) as f32;
            }
        }
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

//! A Llama-architecture transformer over GGUF weights: config read from the checkpoint, pure forward pass.
//!
//! Matrix products use candle's quantized CPU kernels, which compute every output row with the same
//! per-row dot products whatever the number of rows; every other operation here (RMSNorm, RoPE,
//! attention, SwiGLU) is written per row in plain Rust. So a token's numbers do not depend on whether it
//! was computed in a prefill, in a batched decode step next to other sequences, or alone: the logprobs a
//! validator's teacher-forced pass computes equal those seen during generation on the same binary and
//! CPU (measured in `docs/engine.md`).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{QMatMul, QStorage, QTensor};
use candle_core::{Device, Module, Tensor};
use rayon::prelude::*;

use crate::gguf::{self, MetadataError};

/// Loading or running the model failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Reading the file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Metadata is missing or malformed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The checkpoint is not a shape this engine runs.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// A candle operation failed.
    #[error("tensor operation: {0}")]
    Tensor(#[from] candle_core::Error),
    /// A sequence would grow past the context length.
    #[error("sequence of {needed} tokens exceeds the context length {context_length}")]
    ContextOverflow {
        /// Tokens the sequence would hold.
        needed: usize,
        /// The model's limit.
        context_length: usize,
    },
}

/// Hyper-parameters read from GGUF metadata (`llama.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Residual width.
    pub dim: usize,
    /// SwiGLU inner width.
    pub hidden_dim: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention).
    pub n_kv_head: usize,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Maximum sequence length.
    pub context_length: usize,
}

impl LlamaConfig {
    fn from_gguf(content: &Content) -> Result<Self, ModelError> {
        let arch = gguf::read_string(content, "general.architecture")?;
        if arch != "llama" {
            return Err(ModelError::Unsupported(format!("architecture `{arch}` (only llama)")));
        }
        let n_head = gguf::read_usize(content, "llama.attention.head_count")?;
        let config = Self {
            vocab_size: match gguf::read_usize_opt(content, "llama.vocab_size")? {
                Some(n) => n,
                None => gguf::read_strings(content, "tokenizer.ggml.tokens")?.len(),
            },
            dim: gguf::read_usize(content, "llama.embedding_length")?,
            hidden_dim: gguf::read_usize(content, "llama.feed_forward_length")?,
            n_layer: gguf::read_usize(content, "llama.block_count")?,
            n_head,
            n_kv_head: gguf::read_usize_opt(content, "llama.attention.head_count_kv")?.unwrap_or(n_head),
            rope_theta: gguf::read_f32(content, "llama.rope.freq_base").unwrap_or(10_000.0),
            rms_eps: gguf::read_f32(content, "llama.attention.layer_norm_rms_epsilon")?,
            context_length: gguf::read_usize(content, "llama.context_length")?,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ModelError> {
        let ok = self.n_head > 0
            && self.n_kv_head > 0
            && self.n_head % self.n_kv_head == 0
            && self.dim % self.n_head == 0
            && self.head_dim() % 2 == 0
            && self.context_length > 0;
        if ok { Ok(()) } else { Err(ModelError::Unsupported(format!("inconsistent shape {self:?}"))) }
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.dim / self.n_head
    }

    /// Width of the key (and value) projection.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_head * self.head_dim()
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    /// Query, key and value projections stacked into one matrix (one kernel launch instead of three).
    wqkv: QMatMul,
    wo: QMatMul,
    ffn_norm: Vec<f32>,
    /// Gate and up projections stacked.
    w_gate_up: QMatMul,
    w_down: QMatMul,
}

/// The model: weights plus RoPE tables. Immutable once loaded; share it behind an `Arc`.
pub struct Llama {
    config: LlamaConfig,
    embedding: Arc<QTensor>,
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    output: QMatMul,
    /// `cos`/`sin` of `position * theta_i`, `[context_length][head_dim / 2]`.
    rope_cos: Vec<f32>,
    rope_sin: Vec<f32>,
}

impl std::fmt::Debug for Llama {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llama").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Keys and values of one sequence, per layer, `[position][kv_dim]`.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    len: usize,
}

impl KvCache {
    /// An empty cache for `model`.
    pub fn new(model: &Llama) -> Self {
        Self {
            keys: vec![Vec::new(); model.config.n_layer],
            values: vec![Vec::new(); model.config.n_layer],
            len: 0,
        }
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of key/value storage currently reserved.
    pub fn bytes(&self) -> usize {
        self.keys.iter().chain(&self.values).map(|v| v.capacity() * 4).sum()
    }
}

/// Which rows of a segment need their final hidden state (and so logits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outputs {
    /// Only the last token (generation).
    Last,
    /// Every token (teacher-forced scoring).
    All,
    /// None (a prompt chunk that is not the prompt's end).
    None,
}

/// Part of one forward pass: new tokens of one sequence, appended to its cache.
pub struct Segment<'a> {
    /// The sequence's cache; the tokens are appended at its end.
    pub cache: &'a mut KvCache,
    /// New tokens.
    pub tokens: &'a [u32],
    /// Rows whose hidden state is returned.
    pub outputs: Outputs,
}

impl Llama {
    /// Load a GGUF checkpoint.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let io = |source| ModelError::Io { path: path.display().to_string(), source };
        let mut file = File::open(path).map_err(io)?;
        let content = Content::read(&mut file)?;
        Self::from_content(&content, &mut file)
    }

    /// Build from an already parsed GGUF header and its file.
    pub fn from_content(content: &Content, file: &mut File) -> Result<Self, ModelError> {
        let config = LlamaConfig::from_gguf(content)?;
        let device = Device::Cpu;
        let mut tensor =
            |name: &str| -> Result<QTensor, ModelError> { Ok(content.tensor(file, name, &device)?) };
        let embedding = Arc::new(tensor("token_embd.weight")?);
        let mut layers = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let p = format!("blk.{i}");
            layers.push(Layer {
                attn_norm: vector(&tensor(&format!("{p}.attn_norm.weight"))?)?,
                wqkv: stack(&[
                    tensor(&format!("{p}.attn_q.weight"))?,
                    tensor(&format!("{p}.attn_k.weight"))?,
                    tensor(&format!("{p}.attn_v.weight"))?,
                ])?,
                wo: QMatMul::from_qtensor(tensor(&format!("{p}.attn_output.weight"))?)?,
                ffn_norm: vector(&tensor(&format!("{p}.ffn_norm.weight"))?)?,
                w_gate_up: stack(&[
                    tensor(&format!("{p}.ffn_gate.weight"))?,
                    tensor(&format!("{p}.ffn_up.weight"))?,
                ])?,
                w_down: QMatMul::from_qtensor(tensor(&format!("{p}.ffn_down.weight"))?)?,
            });
        }
        let output_norm = vector(&tensor("output_norm.weight")?)?;
        let output = if content.tensor_infos.contains_key("output.weight") {
            QMatMul::from_qtensor(tensor("output.weight")?)?
        } else {
            QMatMul::from_arc(embedding.clone())?
        };
        let (rope_cos, rope_sin) = rope_tables(&config);
        Ok(Self { config, embedding, layers, output_norm, output, rope_cos, rope_sin })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// Run new tokens of several sequences through the model in one pass and return, per segment, the
    /// final (normalized) hidden states of the rows it asked for, `[rows][dim]` flattened. Turn them into
    /// logits with [`Llama::logits`].
    pub fn forward(&self, segments: &mut [Segment<'_>]) -> Result<Vec<Vec<f32>>, ModelError> {
        let c = &self.config;
        let mut rows = Vec::new();
        for (index, segment) in segments.iter().enumerate() {
            let start = segment.cache.len;
            let needed = start + segment.tokens.len();
            if needed > c.context_length {
                return Err(ModelError::ContextOverflow { needed, context_length: c.context_length });
            }
            rows.extend((0..segment.tokens.len()).map(|i| Row { segment: index, position: start + i }));
        }
        let m = rows.len();
        if m == 0 {
            return Ok(vec![Vec::new(); segments.len()]);
        }
        let ids: Vec<u32> = segments.iter().flat_map(|s| s.tokens.iter().copied()).collect();
        let ids = Tensor::from_vec(ids, m, &Device::Cpu)?;
        let mut x = self.embedding.embedding(&ids)?.flatten_all()?.to_vec1::<f32>()?;

        for (layer_index, layer) in self.layers.iter().enumerate() {
            let h = rms_norm_rows(&x, &layer.attn_norm, c.rms_eps);
            let mut qkv = matmul(&layer.wqkv, &h, m, c.dim)?;
            let attn = self.attention(layer_index, &mut qkv, &rows, segments);
            let o = matmul(&layer.wo, &attn, m, c.dim)?;
            add_assign(&mut x, &o);
            let h = rms_norm_rows(&x, &layer.ffn_norm, c.rms_eps);
            let gate_up = matmul(&layer.w_gate_up, &h, m, c.dim)?;
            let act = swiglu_rows(&gate_up, c.hidden_dim);
            let d = matmul(&layer.w_down, &act, m, c.hidden_dim)?;
            add_assign(&mut x, &d);
        }
        for segment in segments.iter_mut() {
            segment.cache.len += segment.tokens.len();
        }

        let mut outputs = vec![Vec::new(); segments.len()];
        for (row_index, row) in rows.iter().enumerate() {
            let segment = &segments[row.segment];
            let last = row.position + 1 == segment.cache.len;
            let wanted = match segment.outputs {
                Outputs::All => true,
                Outputs::Last => last,
                Outputs::None => false,
            };
            if wanted {
                outputs[row.segment].extend_from_slice(&x[row_index * c.dim..(row_index + 1) * c.dim]);
            }
        }
        for out in &mut outputs {
            *out = rms_norm_rows(out, &self.output_norm, c.rms_eps);
        }
        Ok(outputs)
    }

    /// Logits of final hidden states `[rows][dim]`, as `[rows][vocab_size]`.
    pub fn logits(&self, hidden: &[f32]) -> Result<Vec<f32>, ModelError> {
        let rows = hidden.len() / self.config.dim;
        matmul(&self.output, hidden, rows, self.config.dim)
    }

    /// Rotate q and k in place, append k and v to the caches, and attend. Returns `[m][dim]`.
    fn attention(
        &self,
        layer: usize,
        qkv: &mut [f32],
        rows: &[Row],
        segments: &mut [Segment<'_>],
    ) -> Vec<f32> {
        let c = &self.config;
        let (dim, kv_dim, head_dim) = (c.dim, c.kv_dim(), c.head_dim());
        let width = dim + 2 * kv_dim;
        for (row, chunk) in rows.iter().zip(qkv.chunks_exact_mut(width)) {
            let (q, kv) = chunk.split_at_mut(dim);
            self.rope(q, row.position);
            self.rope(&mut kv[..kv_dim], row.position);
            let cache = &mut *segments[row.segment].cache;
            cache.keys[layer].extend_from_slice(&kv[..kv_dim]);
            cache.values[layer].extend_from_slice(&kv[kv_dim..]);
        }
        let group = c.n_head / c.n_kv_head;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let mut out = vec![0.0f32; rows.len() * dim];
        let caches: Vec<(&[f32], &[f32])> = segments
            .iter()
            .map(|s| (s.cache.keys[layer].as_slice(), s.cache.values[layer].as_slice()))
            .collect();
        let qkv: &[f32] = qkv;
        let task = |(index, head_out): (usize, &mut [f32])| {
            let (row_index, head) = (index / c.n_head, index % c.n_head);
            let row = rows[row_index];
            let q = &qkv[row_index * width + head * head_dim..][..head_dim];
            let (keys, values) = caches[row.segment];
            let kv_offset = (head / group) * head_dim;
            attend_one_head(q, keys, values, row.position + 1, kv_dim, kv_offset, scale, head_out);
        };
        let work: usize = rows.iter().map(|r| r.position + 1).sum::<usize>() * c.n_head;
        if work >= PARALLEL_ATTENTION_WORK_MIN {
            out.par_chunks_mut(head_dim).enumerate().for_each(task);
        } else {
            out.chunks_mut(head_dim).enumerate().for_each(task);
        }
        out
    }

    /// Rotate consecutive pairs of every head of `x` (GGUF llama layout) by `position`.
    fn rope(&self, x: &mut [f32], position: usize) {
        let half = self.config.head_dim() / 2;
        let cos = &self.rope_cos[position * half..][..half];
        let sin = &self.rope_sin[position * half..][..half];
        for head in x.chunks_exact_mut(2 * half) {
            for (i, pair) in head.chunks_exact_mut(2).enumerate() {
                let (a, b) = (pair[0], pair[1]);
                pair[0] = a * cos[i] - b * sin[i];
                pair[1] = a * sin[i] + b * cos[i];
            }
        }
    }
}

/// Below this many (query, key) head pairs per layer, attention runs on the calling thread: spreading a
/// few microseconds of work over the pool costs more than it saves.
const PARALLEL_ATTENTION_WORK_MIN: usize = 16 * 1024;

#[derive(Debug, Clone, Copy)]
struct Row {
    segment: usize,
    position: usize,
}

/// One head's attention for one query over `len` cached positions. Fixed summation order, so the result
/// does not depend on batching or threads.
#[allow(clippy::too_many_arguments)]
fn attend_one_head(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    len: usize,
    kv_dim: usize,
    kv_offset: usize,
    scale: f32,
    out: &mut [f32],
) {
    let head_dim = q.len();
    let mut scores: Vec<f32> =
        (0..len).map(|t| dot(q, &keys[t * kv_dim + kv_offset..][..head_dim]) * scale).collect();
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for s in &mut scores {
        *s = (*s - max).exp();
        sum += *s;
    }
    let inv = 1.0 / sum;
    out.fill(0.0);
    for (t, w) in scores.iter().enumerate() {
        let v = &values[t * kv_dim + kv_offset..][..head_dim];
        let w = w * inv;
        for (o, v) in out.iter_mut().zip(v) {
            *o += w * v;
        }
    }
}

/// Dot product with eight independent accumulators (lets the compiler vectorize), summed in a fixed order.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8;
    for i in 0..chunks {
        for j in 0..8 {
            acc[j] += a[i * 8 + j] * b[i * 8 + j];
        }
    }
    let mut sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for i in chunks * 8..a.len() {
        sum += a[i] * b[i];
    }
    sum
}

fn rms_norm_rows(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let dim = weight.len();
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(dim) {
        let mean_square = dot(row, row) / dim as f32;
        let inv = 1.0 / (mean_square + eps).sqrt();
        out.extend(row.iter().zip(weight).map(|(v, w)| v * inv * w));
    }
    out
}

/// `silu(gate) * up` per row of `[gate | up]`.
fn swiglu_rows(gate_up: &[f32], hidden_dim: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(gate_up.len() / 2);
    for row in gate_up.chunks_exact(2 * hidden_dim) {
        let (gate, up) = row.split_at(hidden_dim);
        out.extend(gate.iter().zip(up).map(|(g, u)| g / (1.0 + (-g).exp()) * u));
    }
    out
}

fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

fn matmul(w: &QMatMul, x: &[f32], m: usize, k: usize) -> Result<Vec<f32>, ModelError> {
    let input = Tensor::from_slice(x, (m, k), &Device::Cpu)?;
    Ok(w.forward(&input)?.flatten_all()?.to_vec1::<f32>()?)
}

fn vector(t: &QTensor) -> Result<Vec<f32>, ModelError> {
    Ok(t.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?)
}

/// Stack weight matrices `[n_i, k]` into one `[sum n_i, k]`. Quantized rows are independent blocks, so
/// stacking is concatenating their bytes; every output column is computed exactly as before.
fn stack(parts: &[QTensor]) -> Result<QMatMul, ModelError> {
    let dtype = parts[0].dtype();
    let (_, k) = parts[0].shape().dims2()?;
    let mut bytes = Vec::new();
    let mut n = 0;
    for part in parts {
        let (rows, cols) = part.shape().dims2()?;
        if part.dtype() != dtype || cols != k {
            return Err(ModelError::Unsupported(format!(
                "cannot stack {:?} {:?} onto {dtype:?} [_, {k}]",
                part.dtype(),
                part.shape()
            )));
        }
        bytes.extend_from_slice(&part.data()?);
        n += rows;
    }
    let storage = QStorage::from_data(std::borrow::Cow::Owned(bytes), &Device::Cpu, dtype)?;
    Ok(QMatMul::from_qtensor(QTensor::new(storage, (n, k))?)?)
}

fn rope_tables(c: &LlamaConfig) -> (Vec<f32>, Vec<f32>) {
    let half = c.head_dim() / 2;
    let inv_freq: Vec<f64> =
        (0..half).map(|i| 1.0 / f64::from(c.rope_theta).powf(2.0 * i as f64 / c.head_dim() as f64)).collect();
    let mut cos = Vec::with_capacity(c.context_length * half);
    let mut sin = Vec::with_capacity(c.context_length * half);
    for position in 0..c.context_length {
        for f in &inv_freq {
            let angle = position as f64 * f;
            #[allow(clippy::cast_possible_truncation)]
            {
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
    }
    (cos, sin)
}

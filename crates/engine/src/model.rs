//! A Llama-architecture transformer over GGUF weights: config read from the checkpoint, pure forward pass.
//!
//! Weights are the file's own Q8_0 and Q4_1 matrices, multiplied by our own kernels (`crate::kernels`) with
//! 16-bit activations, which compute every output element with one fixed sequence of float operations
//! whatever the number of rows, threads or CPU features; every other operation here (RMSNorm, RoPE, attention, SwiGLU) is written per row in plain
//! Rust with a fixed summation order. So a token's numbers do not depend on whether it
//! was computed in a prefill, in a batched decode step next to other sequences, or alone: the logprobs a
//! validator's teacher-forced pass computes equal those seen during generation on the same binary and
//! CPU (measured in `docs/engine.md`).

use std::fs::File;
use std::path::Path;
use std::sync::Mutex;

use candle_core::Device;
use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{GgmlDType, QTensor};

use crate::gguf::{self, MetadataError};
use crate::kernels::{
    KernelError, Pool, QMatrix, attention_scores, dot, exp_shifted_sum, max, silu_mul, weighted_sum,
};

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
    /// A weight matrix has a shape the kernels cannot take.
    #[error("weight layout: {0}")]
    Kernel(#[from] KernelError),
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
    pub(crate) fn from_gguf(content: &Content) -> Result<Self, ModelError> {
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
            && self.n_head.is_multiple_of(self.n_kv_head)
            && self.dim.is_multiple_of(self.n_head)
            && self.head_dim().is_multiple_of(2)
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
    wqkv: QMatrix,
    wo: QMatrix,
    ffn_norm: Vec<f32>,
    /// Gate and up projections stacked.
    w_gate_up: QMatrix,
    w_down: QMatrix,
}

/// The model: weights plus RoPE tables. Immutable once loaded; share it behind an `Arc`.
pub struct Llama {
    config: LlamaConfig,
    /// Token embeddings; also the output projection when the checkpoint ties them.
    embedding: QMatrix,
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    /// Separate output projection, when the checkpoint has one.
    output: Option<QMatrix>,
    /// Threads every matrix product and attention pass is split over.
    pool: Pool,
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

    /// Copies of the key and value rows of positions `start..end`, per layer.
    pub fn rows(&self, start: usize, end: usize) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let width = |layer: &Vec<f32>| layer.len().checked_div(self.len).unwrap_or(0);
        let slice = |layers: &[Vec<f32>]| {
            layers.iter().map(|layer| layer[start * width(layer)..end * width(layer)].to_vec()).collect()
        };
        (slice(&self.keys), slice(&self.values))
    }

    /// Appends `rows` positions of key and value rows, per layer (as [`KvCache::rows`] returns them).
    pub fn extend_rows(&mut self, keys: &[Vec<f32>], values: &[Vec<f32>], rows: usize) {
        for (layer, rows) in self.keys.iter_mut().zip(keys) {
            layer.extend_from_slice(rows);
        }
        for (layer, rows) in self.values.iter_mut().zip(values) {
            layer.extend_from_slice(rows);
        }
        self.len += rows;
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
    /// Drops every transformer layer after the first `layers` (at least one stays): a cheaper model
    /// of the same shape and vocabulary, for the devnet's cheating executors.
    pub fn keep_layers(&mut self, layers: usize) {
        self.layers.truncate(layers.max(1));
        self.config.n_layer = self.layers.len();
    }

    /// Load a GGUF checkpoint, computing on `threads` threads.
    pub fn load(path: &Path, threads: usize) -> Result<Self, ModelError> {
        let io = |source| ModelError::Io { path: path.display().to_string(), source };
        let mut file = File::open(path).map_err(io)?;
        let content = Content::read(&mut file)?;
        Self::from_content(&content, &mut file, threads)
    }

    /// Build from an already parsed GGUF header and its file, computing on `threads` threads.
    pub fn from_content(content: &Content, file: &mut File, threads: usize) -> Result<Self, ModelError> {
        let config = LlamaConfig::from_gguf(content)?;
        let mut tensor =
            |name: &str| -> Result<QTensor, ModelError> { Ok(content.tensor(file, name, &Device::Cpu)?) };
        let embedding = matrix(&tensor("token_embd.weight")?)?;
        let mut layers = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let mut weight = |suffix: &str| tensor(&format!("blk.{i}.{suffix}.weight"));
            layers.push(Layer {
                attn_norm: vector(&weight("attn_norm")?)?,
                wqkv: QMatrix::stack(&[
                    matrix(&weight("attn_q")?)?,
                    matrix(&weight("attn_k")?)?,
                    matrix(&weight("attn_v")?)?,
                ])?,
                wo: matrix(&weight("attn_output")?)?,
                ffn_norm: vector(&weight("ffn_norm")?)?,
                w_gate_up: QMatrix::stack(&[matrix(&weight("ffn_gate")?)?, matrix(&weight("ffn_up")?)?])?,
                w_down: matrix(&weight("ffn_down")?)?,
            });
        }
        let output_norm = vector(&tensor("output_norm.weight")?)?;
        let output = match content.tensor_infos.contains_key("output.weight") {
            true => Some(matrix(&tensor("output.weight")?)?),
            false => None,
        };
        check_shapes(&config, &embedding, &layers, output.as_ref())?;
        let (rope_cos, rope_sin) = rope_tables(&config);
        Ok(Self {
            config,
            embedding,
            layers,
            output_norm,
            output,
            pool: Pool::new(threads),
            rope_cos,
            rope_sin,
        })
    }

    /// The thread pool the model computes on (idle between forward passes; callers may borrow it).
    pub fn pool(&self) -> &Pool {
        &self.pool
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
        let vocab = self.embedding.n();
        let mut x = vec![0.0f32; m * c.dim];
        let ids = segments.iter().flat_map(|s| s.tokens.iter().copied());
        for (id, row) in ids.zip(x.chunks_exact_mut(c.dim)) {
            let id = id as usize;
            if id >= vocab {
                return Err(ModelError::Unsupported(format!(
                    "token id {id} outside the vocabulary of {vocab}"
                )));
            }
            self.embedding.dequantize_row(id, row);
        }

        for (layer_index, layer) in self.layers.iter().enumerate() {
            let h = self.rms_norm_rows(&x, &layer.attn_norm);
            let mut qkv = self.matmul(&layer.wqkv, &h, m);
            let attn = self.attention(layer_index, &mut qkv, &rows, segments);
            let o = self.matmul(&layer.wo, &attn, m);
            add_assign(&mut x, &o);
            let h = self.rms_norm_rows(&x, &layer.ffn_norm);
            let gate_up = self.matmul(&layer.w_gate_up, &h, m);
            let act = self.swiglu_rows(&gate_up, m);
            let d = self.matmul(&layer.w_down, &act, m);
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
            *out = self.rms_norm_rows(out, &self.output_norm);
        }
        Ok(outputs)
    }

    /// Logits of final hidden states `[rows][dim]`, as `[rows][vocab_size]`.
    pub fn logits(&self, hidden: &[f32]) -> Result<Vec<f32>, ModelError> {
        let rows = hidden.len() / self.config.dim;
        Ok(self.matmul(self.output.as_ref().unwrap_or(&self.embedding), hidden, rows))
    }

    fn matmul(&self, w: &QMatrix, x: &[f32], m: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; m * w.n()];
        w.matmul(x, m, &mut out, &self.pool);
        out
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
        self.for_each_row(qkv, width, |r, chunk| {
            let (q, kv) = chunk.split_at_mut(dim);
            self.rope(q, rows[r].position);
            self.rope(&mut kv[..kv_dim], rows[r].position);
        });
        for (row, chunk) in rows.iter().zip(qkv.chunks_exact(width)) {
            let cache = &mut *segments[row.segment].cache;
            cache.keys[layer].extend_from_slice(&chunk[dim..dim + kv_dim]);
            cache.values[layer].extend_from_slice(&chunk[dim + kv_dim..]);
        }
        let group = c.n_head / c.n_kv_head;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let caches: Vec<(&[f32], &[f32])> = segments
            .iter()
            .map(|s| (s.cache.keys[layer].as_slice(), s.cache.values[layer].as_slice()))
            .collect();
        let qkv: &[f32] = qkv;
        let head_task = |index: usize, head_out: &mut [f32]| {
            let (row_index, head) = (index / c.n_head, index % c.n_head);
            let row = rows[row_index];
            let q = &qkv[row_index * width + head * head_dim..][..head_dim];
            let (keys, values) = caches[row.segment];
            let kv_offset = (head / group) * head_dim;
            attend_one_head(q, keys, values, row.position + 1, kv_dim, kv_offset, scale, head_out);
        };
        let heads = rows.len() * c.n_head;
        let mut out = vec![0.0f32; rows.len() * dim];
        let work: usize = rows.iter().map(|r| r.position + 1).sum::<usize>() * c.n_head;
        if work < PARALLEL_ATTENTION_WORK_MIN || self.pool.threads() == 1 {
            for (index, head_out) in out.chunks_mut(head_dim).enumerate() {
                head_task(index, head_out);
            }
            return out;
        }
        // Contiguous runs of heads per task, each written into its own buffer: tasks never share memory,
        // and every head's numbers are the same as on the sequential path.
        let per_task = heads.div_ceil((self.pool.threads() * 4).min(heads));
        let tasks = heads.div_ceil(per_task);
        let parts: Vec<Mutex<Vec<f32>>> = (0..tasks).map(|_| Mutex::new(Vec::new())).collect();
        self.pool.run(tasks, |task| {
            let first = task * per_task;
            let last = heads.min(first + per_task);
            let mut buffer = vec![0.0f32; last.saturating_sub(first) * head_dim];
            for (offset, head_out) in buffer.chunks_mut(head_dim).enumerate() {
                head_task(first + offset, head_out);
            }
            if let Ok(mut part) = parts[task].lock() {
                *part = buffer;
            }
        });
        for (task, part) in parts.into_iter().enumerate() {
            let part = part.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
            let start = task * per_task * head_dim;
            out[start..start + part.len()].copy_from_slice(&part);
        }
        out
    }

    /// `f(row, out)` for each of the `m` rows of `out` (`[m][width]`), spread over the pool when there are
    /// enough rows to pay for it. Each row's numbers are the same either way.
    fn for_each_row(&self, out: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
        let m = out.len() / width.max(1);
        let rows_per_task = if m >= PARALLEL_ROWS_MIN { m.div_ceil(2 * self.pool.threads()) } else { m };
        self.pool.for_each_chunk(out, rows_per_task * width, |task, chunk| {
            for (i, row) in chunk.chunks_exact_mut(width).enumerate() {
                f(task * rows_per_task + i, row);
            }
        });
    }

    /// RMSNorm of every row of `x` (`[m][dim]`), scaled by `weight`.
    fn rms_norm_rows(&self, x: &[f32], weight: &[f32]) -> Vec<f32> {
        let dim = weight.len();
        let mut out = vec![0.0; x.len()];
        self.for_each_row(&mut out, dim, |r, out| {
            rms_norm_row(&x[r * dim..][..dim], weight, self.config.rms_eps, out);
        });
        out
    }

    /// `silu(gate) * up` per row of `[m][gate | up]`.
    fn swiglu_rows(&self, gate_up: &[f32], m: usize) -> Vec<f32> {
        let hidden = self.config.hidden_dim;
        let mut out = vec![0.0; m * hidden];
        self.for_each_row(&mut out, hidden, |r, out| {
            let (gate, up) = gate_up[r * 2 * hidden..][..2 * hidden].split_at(hidden);
            silu_mul(gate, up, out);
        });
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

/// Below this many rows, element-wise steps (norms, SwiGLU) run on the calling thread.
const PARALLEL_ROWS_MIN: usize = 16;

/// Below this many (query, key) head pairs per layer, attention runs on the calling thread: spreading a
/// few microseconds of work over the pool costs more than it saves.
const PARALLEL_ATTENTION_WORK_MIN: usize = 1024;

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
    let mut scores = vec![0.0f32; len];
    attention_scores(q, keys, kv_dim, kv_offset, scale, &mut scores);
    let top = max(&scores);
    let sum = exp_shifted_sum(&mut scores, top);
    let inv = 1.0 / sum;
    for s in &mut scores {
        *s *= inv;
    }
    weighted_sum(&scores, values, kv_dim, kv_offset, out);
}

fn rms_norm_row(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let mean_square = dot(x, x) / weight.len() as f32;
    let inv = 1.0 / (mean_square + eps).sqrt();
    for ((o, v), w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * inv * w;
    }
}

fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

fn vector(t: &QTensor) -> Result<Vec<f32>, ModelError> {
    Ok(t.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?)
}

/// A weight matrix for the kernels, exactly as the file stores it when it is Q8_0 or Q4_1 (the
/// default model ships Q4_1 layers and a Q8_0 embedding). Any other quantization is converted to Q8_0
/// at load, which changes the weights: such a file is served, but not as exactly as the two the
/// kernels take.
fn matrix(t: &QTensor) -> Result<QMatrix, ModelError> {
    let (n, k) = t.shape().dims2()?;
    match t.dtype() {
        GgmlDType::Q8_0 => Ok(QMatrix::from_ggml_q8_0(&t.data()?, n, k)?),
        GgmlDType::Q4_1 => Ok(QMatrix::from_ggml_q4_1(&t.data()?, n, k)?),
        other => {
            tracing::warn!(dtype = ?other, "converting a weight matrix to Q8_0: its values change");
            let converted = QTensor::quantize(&t.dequantize(&Device::Cpu)?, GgmlDType::Q8_0)?;
            Ok(QMatrix::from_ggml_q8_0(&converted.data()?, n, k)?)
        }
    }
}

/// Every weight matrix has the shape the config implies; a corrupt or foreign file stops here instead of
/// panicking inside a kernel.
fn check_shapes(
    c: &LlamaConfig,
    embedding: &QMatrix,
    layers: &[Layer],
    output: Option<&QMatrix>,
) -> Result<(), ModelError> {
    let expect = |what: &str, m: &QMatrix, n: usize, k: usize| {
        if m.n() == n && m.k() == k {
            Ok(())
        } else {
            Err(ModelError::Unsupported(format!("{what} is [{}, {}], expected [{n}, {k}]", m.n(), m.k())))
        }
    };
    expect("token_embd", embedding, c.vocab_size, c.dim)?;
    if let Some(output) = output {
        expect("output", output, c.vocab_size, c.dim)?;
    }
    for (i, l) in layers.iter().enumerate() {
        expect(&format!("blk.{i} qkv"), &l.wqkv, c.dim + 2 * c.kv_dim(), c.dim)?;
        expect(&format!("blk.{i} attn_output"), &l.wo, c.dim, c.dim)?;
        expect(&format!("blk.{i} gate_up"), &l.w_gate_up, 2 * c.hidden_dim, c.dim)?;
        expect(&format!("blk.{i} ffn_down"), &l.w_down, c.dim, c.hidden_dim)?;
        if l.attn_norm.len() != c.dim || l.ffn_norm.len() != c.dim {
            return Err(ModelError::Unsupported(format!("blk.{i} norm width differs from {}", c.dim)));
        }
    }
    Ok(())
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

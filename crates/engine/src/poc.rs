//! The Proof-of-Compute kernel: the PoC transformer of `gonka-poc` in dense f32 on candle.
//!
//! [`PocModel`] is built once per sprint from the model spec and the block hash of `S`; it turns a
//! batch of nonces of one miner into their distances (inputs, forward pass, last position, permute,
//! normalise, compare). [`Sprint`] runs it on worker threads over disjoint shares of the nonce space
//! until stopped, sending every valid nonce out; validators call [`PocModel::distances`] on their
//! sample, so checking a nonce costs exactly what finding it cost.
//!
//! Numerics: candle's f32 matmul (the `gemm` crate) gives bit-identical results for a row whatever
//! the batch it sits in, the thread count, or the x86 ISA it dispatches to (measured, and pinned by
//! tests against a fixture, natively and under `qemu-x86_64 -cpu Haswell`). Its summation order is
//! not the reference pass's ([`gonka_poc::forward_last`]), so the two agree to ~10^-6, well inside
//! the chain's distance tolerance.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use candle_core::{D, DType, Device, Tensor};
use gonka_poc::{Distance, ModelSpec, nonce_input, nonce_permutation, target, worker_nonces};
use gonka_primitives::Hash;

/// Why the PoC kernel failed.
#[derive(Debug, thiserror::Error)]
pub enum PocComputeError {
    /// The spec is unusable.
    #[error(transparent)]
    Spec(#[from] gonka_poc::SpecError),
    /// A candle operation failed (device, shapes, memory).
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    /// The worker partition is invalid.
    #[error(transparent)]
    Partition(#[from] gonka_poc::nonce::PartitionError),
    /// The thread pool could not start.
    #[error("thread pool: {0}")]
    Pool(String),
}

/// The weights of one decoder layer, matrices stored transposed (`[in, out]`) for `x · W`.
struct Layer {
    attention_norm: Tensor,
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    wo: Tensor,
    ffn_norm: Tensor,
    w1: Tensor,
    w2: Tensor,
    w3: Tensor,
}

/// The PoC model of one stage, on one device.
pub struct PocModel {
    spec: ModelSpec,
    block_hash: Hash,
    device: Device,
    layers: Vec<Layer>,
    norm: Tensor,
    output: Tensor,
    /// RoPE `cos` and `sin`, `[1, seq_len, 1, head_dim/2, 1]`.
    rope: (Tensor, Tensor),
    /// `0` on and below the diagonal, `−∞` above: `[seq_len, seq_len]`.
    causal_mask: Tensor,
    target: Vec<f32>,
}

impl PocModel {
    /// Generates the weights of `spec` from `block_hash` and loads them on `device`.
    pub fn new(spec: &ModelSpec, block_hash: &Hash, device: &Device) -> Result<PocModel, PocComputeError> {
        let weights = gonka_poc::weights(spec, block_hash)?;
        let matrix = |t: &gonka_poc::Tensor| -> Result<Tensor, PocComputeError> {
            let (rows, cols) = (t.shape[0], t.shape[1]);
            Ok(Tensor::from_slice(&t.data, (rows, cols), device)?.t()?.contiguous()?)
        };
        let vector = |t: &gonka_poc::Tensor| Tensor::from_slice(&t.data, t.data.len(), device);
        let layers = weights
            .layers
            .iter()
            .map(|l| {
                Ok(Layer {
                    attention_norm: vector(&l.attention_norm)?,
                    wq: matrix(&l.wq)?,
                    wk: matrix(&l.wk)?,
                    wv: matrix(&l.wv)?,
                    wo: matrix(&l.wo)?,
                    ffn_norm: vector(&l.ffn_norm)?,
                    w1: matrix(&l.w1)?,
                    w2: matrix(&l.w2)?,
                    w3: matrix(&l.w3)?,
                })
            })
            .collect::<Result<Vec<_>, PocComputeError>>()?;
        let (seq_len, half) = (spec.seq_len as usize, spec.head_dim() / 2);
        let table = gonka_poc::forward::rope_table(seq_len, spec.head_dim(), spec.rope_theta);
        let shape = (1, seq_len, 1, half, 1);
        let cos: Vec<f32> = table.iter().map(|(c, _)| *c).collect();
        let sin: Vec<f32> = table.iter().map(|(_, s)| *s).collect();
        let mask: Vec<f32> = (0..seq_len * seq_len)
            .map(|i| if i % seq_len > i / seq_len { f32::NEG_INFINITY } else { 0.0 })
            .collect();
        Ok(PocModel {
            spec: spec.clone(),
            block_hash: *block_hash,
            device: device.clone(),
            layers,
            norm: vector(&weights.norm)?,
            output: matrix(&weights.output)?,
            rope: (Tensor::from_vec(cos, shape, device)?, Tensor::from_vec(sin, shape, device)?),
            causal_mask: Tensor::from_vec(mask, (seq_len, seq_len), device)?,
            target: target(spec, block_hash),
        })
    }

    /// The model spec.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The block hash the model was generated from.
    pub fn block_hash(&self) -> &Hash {
        &self.block_hash
    }

    /// Multiply–accumulates of one nonce's forward pass in the matrix products (what a FLOP count of
    /// `2 ×` this measures): projections and FFN at every position, attention scores and values, and
    /// the output head at the last position.
    pub fn macs_per_nonce(&self) -> u64 {
        let (d, f, t, v) = (
            u64::from(self.spec.dim),
            u64::from(self.spec.ffn_hidden),
            u64::from(self.spec.seq_len),
            u64::from(self.spec.vocab_size),
        );
        let per_layer = t * (4 * d * d + 3 * d * f) + 2 * t * t * d;
        u64::from(self.spec.n_layers) * per_layer + d * v
    }

    /// Distances of `nonces` for the miner `public_key`, in order; None where the output has no
    /// direction (zero or non-finite norm).
    pub fn distances(
        &self,
        public_key: &[u8; 33],
        nonces: &[u64],
    ) -> Result<Vec<Option<f32>>, PocComputeError> {
        if nonces.is_empty() {
            return Ok(Vec::new());
        }
        let spec = &self.spec;
        let (t, d) = (spec.seq_len as usize, spec.dim as usize);
        let mut inputs = Vec::with_capacity(nonces.len() * t * d);
        for &nonce in nonces {
            inputs.extend(nonce_input(spec, &self.block_hash, public_key, nonce));
        }
        let input = Tensor::from_vec(inputs, (nonces.len(), t, d), &self.device)?;
        let logits = self.forward_last(&input)?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        Ok(nonces
            .iter()
            .zip(&logits)
            .map(|(&nonce, row)| {
                let permutation = nonce_permutation(spec, &self.block_hash, public_key, nonce);
                gonka_poc::distance(row, &permutation, &self.target).ok()
            })
            .collect())
    }

    /// Last-position logits `[batch, vocab]` for input embeddings `[batch, seq_len, dim]`.
    pub fn forward_last(&self, input: &Tensor) -> Result<Tensor, PocComputeError> {
        let (b, t, d) = input.dims3()?;
        let heads = self.spec.n_heads as usize;
        let head_dim = d / heads;
        let eps = f64::from(self.spec.norm_eps_f32());
        let mut x = input.clone();
        for layer in &self.layers {
            let h = rms_norm(&x, &layer.attention_norm, eps)?.reshape((b * t, d))?;
            let project = |w: &Tensor| h.matmul(w)?.reshape((b, t, heads, head_dim));
            let q = self.rotate(&project(&layer.wq)?)?.transpose(1, 2)?.contiguous()?;
            let k = self.rotate(&project(&layer.wk)?)?.transpose(1, 2)?.contiguous()?;
            let v = project(&layer.wv)?.transpose(1, 2)?.contiguous()?;
            let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?.broadcast_add(&self.causal_mask)?;
            let attention = softmax_last(&scores)?.matmul(&v)?.transpose(1, 2)?.reshape((b * t, d))?;
            x = (x + attention.matmul(&layer.wo)?.reshape((b, t, d))?)?;
            let h = rms_norm(&x, &layer.ffn_norm, eps)?.reshape((b * t, d))?;
            let gated = (h.matmul(&layer.w1)?.silu()? * h.matmul(&layer.w3)?)?;
            x = (x + gated.matmul(&layer.w2)?.reshape((b, t, d))?)?;
        }
        let last = x.narrow(1, t - 1, 1)?.reshape((b, d))?;
        Ok(rms_norm(&last, &self.norm, eps)?.matmul(&self.output)?)
    }

    /// RoPE on `[b, t, heads, head_dim]`, rotating each head's consecutive pairs (Meta's layout).
    fn rotate(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, h, hd) = x.dims4()?;
        let pairs = x.reshape((b, t, h, hd / 2, 2))?;
        let (even, odd) = (pairs.narrow(4, 0, 1)?, pairs.narrow(4, 1, 1)?);
        let (cos, sin) = (&self.rope.0, &self.rope.1);
        let first = (even.broadcast_mul(cos)? - odd.broadcast_mul(sin)?)?;
        let second = (even.broadcast_mul(sin)? + odd.broadcast_mul(cos)?)?;
        Tensor::cat(&[first, second], 4)?.reshape((b, t, h, hd))
    }
}

/// `x / sqrt(mean(x²) + eps) ⊙ weight` over the last dimension.
fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let inverse_rms = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
    x.broadcast_mul(&inverse_rms)?.broadcast_mul(weight)
}

/// Softmax over the last dimension, max-subtracted.
fn softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let exp = x.broadcast_sub(&x.max_keepdim(D::Minus1)?)?.exp()?;
    exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)
}

/// How a sprint uses the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SprintConfig {
    /// Worker threads; worker `i` of `n` takes nonces `i, i+n, i+2n, …`.
    pub workers: u32,
    /// Nonces per forward pass.
    pub batch_size: usize,
    /// Nice value of the worker threads (Linux; 0 leaves them as they are). Consensus and the API
    /// run at normal priority, so a sprint never starves them.
    pub nice: i32,
}

impl Default for SprintConfig {
    fn default() -> Self {
        SprintConfig { workers: 1, batch_size: 32, nice: 10 }
    }
}

/// Counters of a running sprint.
#[derive(Debug, Default)]
pub struct SprintStats {
    /// Nonces computed.
    pub nonces: AtomicU64,
    /// Nonces below `r_target`.
    pub valid: AtomicU64,
}

/// A running sprint: worker threads racing nonces until [`Sprint::stop`].
pub struct Sprint {
    stop: Arc<AtomicBool>,
    stats: Arc<SprintStats>,
    workers: Vec<std::thread::JoinHandle<Result<(), PocComputeError>>>,
}

/// A batch of valid nonces with their distances, as a worker sends them.
pub type ValidNonces = Vec<(u64, Distance)>;

impl Sprint {
    /// Starts `config.workers` threads computing nonces of `public_key` with `model`, sending each
    /// batch's valid nonces (distance below `r_target`) to `sink`. A worker stops at [`Sprint::stop`],
    /// when `sink` is dropped, or on a compute error.
    pub fn start(
        model: &Arc<PocModel>,
        public_key: [u8; 33],
        r_target: Distance,
        config: SprintConfig,
        sink: &std::sync::mpsc::Sender<ValidNonces>,
    ) -> Result<Sprint, PocComputeError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(SprintStats::default());
        let mut workers = Vec::new();
        for worker in 0..config.workers.max(1) {
            let nonces = worker_nonces(worker, config.workers.max(1))?;
            let (model, stop, stats, sink) = (model.clone(), stop.clone(), stats.clone(), sink.clone());
            let handle = std::thread::Builder::new()
                .name(format!("poc-worker-{worker}"))
                .spawn(move || {
                    lower_priority(config.nice);
                    // A one-thread pool: candle's matmul splits across the pool it runs in, and each
                    // worker should own one core.
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .build()
                        .map_err(|e| PocComputeError::Pool(e.to_string()))?;
                    pool.install(|| {
                        let mut nonces = nonces;
                        let batch_size = config.batch_size.max(1);
                        while !stop.load(Ordering::Relaxed) {
                            let batch: Vec<u64> = nonces.by_ref().take(batch_size).collect();
                            if batch.is_empty() {
                                break;
                            }
                            let found = valid_nonces(&model, &public_key, &batch, r_target)?;
                            stats.nonces.fetch_add(batch.len() as u64, Ordering::Relaxed);
                            stats.valid.fetch_add(found.len() as u64, Ordering::Relaxed);
                            if !found.is_empty() && sink.send(found).is_err() {
                                break;
                            }
                        }
                        Ok(())
                    })
                })
                .map_err(|e| PocComputeError::Pool(e.to_string()))?;
            workers.push(handle);
        }
        Ok(Sprint { stop, stats, workers })
    }

    /// The sprint's counters.
    pub fn stats(&self) -> Arc<SprintStats> {
        self.stats.clone()
    }

    /// Stops the workers and waits for them; returns the first compute error, if any.
    pub fn stop(self) -> Result<(), PocComputeError> {
        self.stop.store(true, Ordering::Relaxed);
        let mut result = Ok(());
        for worker in self.workers {
            match worker.join() {
                Ok(Err(error)) if result.is_ok() => result = Err(error),
                Err(_) if result.is_ok() => result = Err(PocComputeError::Pool("a worker panicked".into())),
                _ => {}
            }
        }
        result
    }

    /// Waits up to `timeout` for every worker to finish on its own (used when the nonce space of a
    /// test sprint is exhausted); true when they all did.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.workers.iter().any(|w| !w.is_finished()) {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

/// The nonces of `batch` whose distance is below `r_target`, with their distances.
pub fn valid_nonces(
    model: &PocModel,
    public_key: &[u8; 33],
    batch: &[u64],
    r_target: Distance,
) -> Result<ValidNonces, PocComputeError> {
    let distances = model.distances(public_key, batch)?;
    Ok(batch
        .iter()
        .zip(distances)
        .filter_map(|(&nonce, d)| d.map(|d| (nonce, Distance::from_f32(d))))
        .filter(|(_, d)| *d < r_target)
        .collect())
}

/// Lowers the calling thread's scheduling priority to `nice` (Linux only; best effort).
#[allow(unsafe_code)]
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice > 0 {
        // SAFETY: `setpriority` with PRIO_PROCESS and a thread id only changes that thread's nice
        // value; `gettid` has no preconditions. Failure (e.g. a sandbox forbidding it) is harmless.
        unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice);
        }
    }
}

/// Distances of `nonces` for `public_key`, computed by `workers` threads (each a one-thread pool) in
/// batches of `batch_size`, in the order given. Calibration and benchmarks use it.
pub fn distances_parallel(
    model: &PocModel,
    public_key: &[u8; 33],
    nonces: &[u64],
    workers: usize,
    batch_size: usize,
) -> Result<Vec<Option<f32>>, PocComputeError> {
    let workers = workers.max(1);
    let chunk = nonces.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = nonces
            .chunks(chunk)
            .map(|share| {
                scope.spawn(move || {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .build()
                        .map_err(|e| PocComputeError::Pool(e.to_string()))?;
                    pool.install(|| {
                        let mut out = Vec::with_capacity(share.len());
                        for batch in share.chunks(batch_size.max(1)) {
                            out.extend(model.distances(public_key, batch)?);
                        }
                        Ok(out)
                    })
                })
            })
            .collect();
        let mut out = Vec::with_capacity(nonces.len());
        for handle in handles {
            let part: Result<Vec<Option<f32>>, PocComputeError> =
                handle.join().map_err(|_| PocComputeError::Pool("a worker panicked".into()))?;
            out.extend(part?);
        }
        Ok(out)
    })
}

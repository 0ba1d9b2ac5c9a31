//! Matrix products of quantized weights and 16-bit activations on the CPU, whose every output element
//! is a fixed sequence of float operations.
//!
//! Validation compares the logits of a replayed batch with those a node produced, so an output must
//! not depend on the batch it was computed in, on the thread count, or on how work was split:
//! element `(r, j)` of [`QMatrix::matmul`] is a function of row `r` of the input, weight row `j` and
//! `k` alone, and the portable scalar kernel performs exactly the same integer and float operations as
//! the AVX2 one and its AVX-512 VNNI twin (`vpdpwssd` fusing each multiply-add with its accumulation),
//! so machines with and without them agree bit for bit (`docs/engine.md`, ADR 009).
//!
//! Weights are kept exactly as the GGUF ships them: per block of 32 values an integer quant `q_w` per
//! value, a scale `d_w` and, for Q4_1, a minimum `m_w` (`w = d_w · q_w + m_w`; Q8_0 has no minimum).
//! Each input row is quantized per 32 values to 16 bits (`d_x = amax / 32767`, `q_x = round(x / d_x)`),
//! which keeps this model's massive activations from crushing their block's other values (8-bit input
//! blocks did; `docs/engine.md` "Fidelity"). An output element is, block by block in order,
//! `acc = fma(f32(Σ q_w · q_x), d_w · d_x, acc)`, then for matrices with minimums
//! `acc = fma(m_w, s_x, acc)` with `s_x = d_x · f32(Σ q_x)`, starting from 0. The integer block sums are
//! exact; their conversions to f32 round to nearest on every instruction set.
//!
//! Layout and speed: weights are stored in groups of [`GROUP`] output features whose quants are
//! interleaved so that every 32-bit lane of the kernel's multiply-add accumulates one output: 16 bytes
//! extended to i16 hold one quant pair of each of the 8 features, for `vpmaddwd` against a broadcast
//! pair of 16-bit input quants. Q4_1's 4-bit quants are packed two to a byte (the 8 blocks of a group's
//! block in 4, low nibbles then high nibbles), so single-stream decode, which is bound by reading the
//! weights, reads half the bytes. A tile of up to [`ROW_TILE`] input rows shares each weight
//! register (decode batches of up to 8 streams read the weights once), and panels of groups sized for L2
//! are swept by every row tile (prefill).
//!
//! Work is split by [`Pool`] into contiguous ranges of feature groups; which thread computes a
//! group, and next to which rows, changes nothing in its results.
// SIMD intrinsics, output writes from pool tasks to disjoint parts of one slice, and the pool's
// lifetime-erased job pointer need `unsafe`; it is confined to this module, and each block says why
// it is sound.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
mod avx2;
mod exp;
mod pool;
mod scalar;
mod vector;

pub use exp::{exp, exp_shifted_sum, silu_mul, sum_exp_shifted};
pub use pool::{Pool, SPIN_BEFORE_PARK, THREADS_MAX};
pub use vector::{attention_scores, dot, max, weighted_sum};

use std::marker::PhantomData;
use std::ops::Range;

/// Values per quantization block (weights and inputs).
pub const BLOCK: usize = 32;
/// Bytes of one GGML Q8_0 block: an f16 scale and 32 quants.
pub const GGML_BLOCK_BYTES: usize = 34;
/// Bytes of one GGML Q4_1 block: an f16 scale, an f16 minimum and 32 quants of 4 bits.
pub const GGML_Q4_1_BLOCK_BYTES: usize = 20;
/// Output features interleaved together: one AVX2 register of f32 holds one per lane.
pub const GROUP: usize = 8;
/// Input rows multiplied against each weight register while it is loaded.
pub const ROW_TILE: usize = 8;
/// The largest 16-bit input quant (the quantization is symmetric, so -32768 is never used).
const X_QUANT_MAX: f32 = 32767.0;
/// Group chunks per pool thread: more than one lets fast threads take over from slow ones.
const CHUNKS_PER_THREAD: usize = 4;
/// Weight bytes in one panel, the set of groups every row tile sweeps while it stays in L2.
const PANEL_BYTES: usize = 64 * 1024;
/// The most groups in one panel (bounds the per-task result buffer).
const PANEL_GROUPS_MAX: usize = 32;
/// Batches of at least this many rows quantize their row tiles in parallel (below it, handing the
/// tiles to the pool costs more than it saves).
const PARALLEL_QUANTIZE_ROWS_MIN: usize = 4 * ROW_TILE;

/// 32 weight quants, aligned so that one aligned 256-bit load reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(32))]
struct Block([i8; BLOCK]);

impl Block {
    const ZERO: Block = Block([0; BLOCK]);
}

/// 32 input quants of 16 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
struct XBlock([i16; BLOCK]);

impl XBlock {
    const ZERO: XBlock = XBlock([0; BLOCK]);
}

/// Where quant `e` of feature `c` of a group lives among the group's 8 [`Block`]s: `(block, byte)`.
/// Quant pairs `(2h, 2h+1)` of the 8 features fill 16 consecutive bytes, feature by feature, so that
/// sign-extending 16 bytes to i16 lines each feature's pair up with one 32-bit lane (`vpmaddwd`).
fn slot(c: usize, e: usize) -> (usize, usize) {
    let pair = e / 2;
    (pair / 2, (pair % 2) * 16 + c * 2 + e % 2)
}

/// Quant pair `p` of one block of each of the [`ROW_TILE`] rows of a row tile, for the AVX2 kernel:
/// lane `r` holds quants `2p` and `2p+1` of row `r` as two little-endian i16, ready to broadcast
/// against a register of weight pairs. Rows of a tile sit side by side so that a kernel reaches all
/// of them from one pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(32))]
struct PairRows([i32; ROW_TILE]);

impl PairRows {
    const ZERO: PairRows = PairRows([0; ROW_TILE]);
}

/// Why a weight matrix could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KernelError {
    /// Weights are quantized in blocks of 32 values.
    #[error("row length {k} is not a multiple of the block size {BLOCK}")]
    RowLengthNotBlockMultiple {
        /// The offending row length.
        k: usize,
    },
    /// The byte buffer does not hold `n × k / 32` GGML blocks.
    #[error("{format} matrix [{n}, {k}] needs {expected} bytes, got {actual}")]
    ByteLengthMismatch {
        /// The GGML format.
        format: &'static str,
        /// Output features.
        n: usize,
        /// Row length.
        k: usize,
        /// `n × k / 32 × block bytes`.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The matrix would not fit in memory.
    #[error("matrix [{n}, {k}] is too large")]
    TooLarge {
        /// Output features.
        n: usize,
        /// Row length.
        k: usize,
    },
    /// Matrices stacked along `n` must share `k` and the kind of quantization.
    #[error("cannot stack a matrix with rows of {found} onto rows of {expected}")]
    StackRowLengthMismatch {
        /// Row length of the first part.
        expected: usize,
        /// Row length of the mismatching part.
        found: usize,
    },
    /// Matrices with and without minimums compute differently and cannot be stacked.
    #[error("cannot stack matrices with and without per-block minimums")]
    StackMixedMinimums,
    /// Stacking needs at least one part.
    #[error("cannot stack zero matrices")]
    EmptyStack,
}

/// A weight matrix of `n` output features by `k` inputs, exactly as a GGUF stores it (Q8_0 or Q4_1),
/// repacked for [`QMatrix::matmul`].
///
/// Features are stored in groups of [`GROUP`] (the last one padded with zero features). Group `g`,
/// block `b` occupies `qs[(g·nb + b)·B..][..B]` with `B` = 8 [`Block`]s, quant `e` of feature `c` at
/// `slot(c, e)`; for 4-bit quants `B` = 4 and slot block `i` is the low nibbles of stored block `i % 4`
/// when `i < 4`, its high nibbles otherwise. `d[(g·nb + b)·8 + c]` is the f32 scale of feature `c` and
/// `m[…]` its minimum (empty for Q8_0).
#[derive(Clone, Debug, PartialEq)]
pub struct QMatrix {
    n: usize,
    k: usize,
    /// Blocks per row, `k / 32`.
    nb: usize,
    qs: Vec<Block>,
    d: Vec<f32>,
    /// Per-block minimums (Q4_1), or empty.
    m: Vec<f32>,
    /// Quants are 4-bit (`0..=15`), two per byte.
    nibbles: bool,
}

impl QMatrix {
    /// Repack a GGML Q8_0 tensor of `n` rows by `k` values: row-major, `k / 32` blocks per row, each a
    /// little-endian f16 scale followed by 32 `i8` quants.
    pub fn from_ggml_q8_0(bytes: &[u8], n: usize, k: usize) -> Result<Self, KernelError> {
        let nb = Self::check("Q8_0", bytes, n, k, GGML_BLOCK_BYTES)?;
        let mut matrix = Self::zeros(n, k, false, false);
        for (i, block) in bytes.chunks_exact(GGML_BLOCK_BYTES).enumerate() {
            let d = f16_bits_to_f32(u16::from_le_bytes([block[0], block[1]]));
            let q = Block(std::array::from_fn(|e| i8::from_le_bytes([block[2 + e]])));
            matrix.set_block(i / nb.max(1), i % nb.max(1), d, 0.0, &q);
        }
        Ok(matrix)
    }

    /// Repack a GGML Q4_1 tensor of `n` rows by `k` values: row-major, `k / 32` blocks per row, each a
    /// little-endian f16 scale, an f16 minimum and 16 bytes whose low nibbles are quants 0..16 and high
    /// nibbles quants 16..32 (value = scale · quant + minimum). Lossless: quants are kept as bytes.
    pub fn from_ggml_q4_1(bytes: &[u8], n: usize, k: usize) -> Result<Self, KernelError> {
        let nb = Self::check("Q4_1", bytes, n, k, GGML_Q4_1_BLOCK_BYTES)?;
        let mut matrix = Self::zeros(n, k, true, true);
        for (i, block) in bytes.chunks_exact(GGML_Q4_1_BLOCK_BYTES).enumerate() {
            let d = f16_bits_to_f32(u16::from_le_bytes([block[0], block[1]]));
            let m = f16_bits_to_f32(u16::from_le_bytes([block[2], block[3]]));
            let nibbles = &block[4..];
            #[allow(clippy::cast_possible_wrap)]
            let q = Block(std::array::from_fn(|e| match e < 16 {
                true => (nibbles[e] & 0x0F) as i8,
                false => (nibbles[e - 16] >> 4) as i8,
            }));
            matrix.set_block(i / nb.max(1), i % nb.max(1), d, m, &q);
        }
        Ok(matrix)
    }

    /// Blocks per row, after checking `k` and the byte length.
    fn check(
        format: &'static str,
        bytes: &[u8],
        n: usize,
        k: usize,
        block_bytes: usize,
    ) -> Result<usize, KernelError> {
        if !k.is_multiple_of(BLOCK) {
            return Err(KernelError::RowLengthNotBlockMultiple { k });
        }
        let nb = k / BLOCK;
        let expected = n
            .checked_mul(nb)
            .and_then(|blocks| blocks.checked_mul(block_bytes))
            .ok_or(KernelError::TooLarge { n, k })?;
        if bytes.len() != expected {
            return Err(KernelError::ByteLengthMismatch { format, n, k, expected, actual: bytes.len() });
        }
        Ok(nb)
    }

    fn zeros(n: usize, k: usize, minimums: bool, nibbles: bool) -> Self {
        let nb = k / BLOCK;
        let slots = n.div_ceil(GROUP) * nb * GROUP;
        let m = if minimums { vec![0.0; slots] } else { Vec::new() };
        let blocks = n.div_ceil(GROUP) * nb * stored_blocks(nibbles);
        Self { n, k, nb, qs: vec![Block::ZERO; blocks], d: vec![0.0; slots], m, nibbles }
    }

    /// Whether blocks carry minimums (Q4_1).
    fn has_minimums(&self) -> bool {
        !self.m.is_empty()
    }

    /// Store every feature of this matrix into `dest` (same `k`) from feature `first` on.
    fn copy_into(&self, dest: &mut QMatrix, first: usize) {
        for j in 0..self.n {
            for b in 0..self.nb {
                let (d, m, q) = self.block(j, b);
                dest.set_block(first + j, b, d, m, &q);
            }
        }
    }

    /// Store block `b` of feature `j` (`m` is dropped by a matrix without minimums).
    ///
    /// # Panics
    /// If the matrix packs 4-bit quants and one of `q` is outside `0..=15`.
    fn set_block(&mut self, j: usize, b: usize, d: f32, m: f32, q: &Block) {
        let (g, c) = (j / GROUP, j % GROUP);
        let base = (g * self.nb + b) * GROUP;
        self.d[base + c] = d;
        if let Some(slot) = self.m.get_mut(base + c) {
            *slot = m;
        }
        let stored = (g * self.nb + b) * stored_blocks(self.nibbles);
        for (e, &q) in q.0.iter().enumerate() {
            let (block, byte) = slot(c, e);
            if self.nibbles {
                assert!((0..16).contains(&q), "a 4-bit quant is 0..=15, got {q}");
                let target = &mut self.qs[stored + block % 4].0[byte];
                let bits = target.cast_unsigned();
                let bits = if block < 4 {
                    (bits & 0xF0) | q.cast_unsigned()
                } else {
                    (bits & 0x0F) | (q.cast_unsigned() << 4)
                };
                *target = bits.cast_signed();
            } else {
                self.qs[stored + block].0[byte] = q;
            }
        }
    }

    /// Block `b` of feature `j`: its scale, minimum (0 without) and quants.
    fn block(&self, j: usize, b: usize) -> (f32, f32, Block) {
        let (g, c) = (j / GROUP, j % GROUP);
        let base = (g * self.nb + b) * GROUP;
        let stored = (g * self.nb + b) * stored_blocks(self.nibbles);
        let blocks = &self.qs[stored..stored + stored_blocks(self.nibbles)];
        let quant = |e| {
            let (block, byte) = slot(c, e);
            weight_quant(blocks, self.nibbles, block, byte)
        };
        (self.d[base + c], self.m.get(base + c).copied().unwrap_or(0.0), Block(std::array::from_fn(quant)))
    }

    /// Concatenate matrices sharing `k` (and all with, or all without, minimums) along `n`: the rows of
    /// `parts[0]`, then `parts[1]`, … Every output column is computed exactly as it would be by its own
    /// part.
    pub fn stack(parts: &[QMatrix]) -> Result<Self, KernelError> {
        let first = parts.first().ok_or(KernelError::EmptyStack)?;
        if let Some(part) = parts.iter().find(|p| p.k != first.k) {
            return Err(KernelError::StackRowLengthMismatch { expected: first.k, found: part.k });
        }
        let kind = |p: &QMatrix| (p.has_minimums(), p.nibbles);
        if parts.iter().any(|p| kind(p) != kind(first)) {
            return Err(KernelError::StackMixedMinimums);
        }
        let n = parts.iter().map(|p| p.n).sum();
        let mut stacked = Self::zeros(n, first.k, first.has_minimums(), first.nibbles);
        let mut first_feature = 0;
        for part in parts {
            part.copy_into(&mut stacked, first_feature);
            first_feature += part.n;
        }
        Ok(stacked)
    }

    /// Output features (rows of the weight matrix).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Inputs per output feature (the row length).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Bytes of weight storage held (the last group's padding included).
    pub fn bytes(&self) -> usize {
        self.qs.len() * size_of::<Block>() + (self.d.len() + self.m.len()) * size_of::<f32>()
    }

    /// Dequantize weight row `j` (`q · d`, plus `m` for Q4_1) into `out` (`k` values), as GGML does.
    ///
    /// # Panics
    /// If `j >= n` or `out.len() != k`.
    pub fn dequantize_row(&self, j: usize, out: &mut [f32]) {
        assert!(j < self.n, "row {j} of a matrix with {} rows", self.n);
        assert_eq!(out.len(), self.k, "output row length");
        for (b, out) in out.chunks_exact_mut(BLOCK).enumerate() {
            let (d, m, q) = self.block(j, b);
            for (o, &q) in out.iter_mut().zip(&q.0) {
                *o = match self.has_minimums() {
                    true => f32::from(q) * d + m,
                    false => f32::from(q) * d,
                };
            }
        }
    }

    /// `out[r][j] = Σ_blocks (dw · dx) · (Σ q_w · q_x) [+ m_w · s_x]` for the `m` rows of `x` (`[m][k]`,
    /// row-major) and every weight row `j`; `out` is `[m][n]`, row-major. Each element is computed by one
    /// fixed sequence of float operations (see the module documentation), whatever `m`, the other rows,
    /// the pool's thread count or the instruction set.
    ///
    /// # Panics
    /// If `x.len() != m * k` or `out.len() != m * n`.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32], pool: &Pool) {
        self.matmul_with(Isa::detect(), x, m, out, pool);
    }

    fn matmul_with(&self, isa: Isa, x: &[f32], m: usize, out: &mut [f32], pool: &Pool) {
        assert_eq!(x.len(), m * self.k, "input is [m][k]");
        assert_eq!(out.len(), m * self.n, "output is [m][n]");
        if m == 0 || self.n == 0 {
            return;
        }
        if self.k == 0 {
            out.fill(0.0);
            return;
        }
        let rows = QuantRows::quantize(isa, x, m, self.k, pool);
        let chunks = GroupChunks::new(self.n.div_ceil(GROUP), pool.threads());
        let out = DisjointOut::new(out);
        pool.run(chunks.count, |c| self.columns(isa, &rows, chunks.get(c), &out));
        rows.recycle();
    }

    /// Compute the features of groups `groups` for every row into `out`: panel by panel, every row
    /// tile per panel.
    fn columns(&self, isa: Isa, rows: &QuantRows, groups: Range<usize>, out: &DisjointOut<'_>) {
        let per_block = if self.has_minimums() { 2 } else { 1 } * size_of::<f32>();
        let quant_bytes = if self.nibbles { self.k / 2 } else { self.k };
        let group_bytes = GROUP * (quant_bytes + per_block * self.nb);
        let panel_groups = (PANEL_BYTES / group_bytes).clamp(1, PANEL_GROUPS_MAX);
        let mut results = [0.0f32; PANEL_GROUPS_MAX * ROW_TILE * GROUP];
        let mut first = groups.start;
        while first < groups.end {
            let panel = first..(first + panel_groups).min(groups.end);
            let mut row = 0;
            while row < rows.m {
                let tile = row..(row + ROW_TILE).min(rows.m);
                let results = &mut results[..panel.len() * tile.len() * GROUP];
                self.tile(isa, rows, tile.clone(), panel.clone(), results);
                for (g, values) in panel.clone().zip(results.chunks_exact(tile.len() * GROUP)) {
                    let features = GROUP.min(self.n - g * GROUP);
                    for (r, values) in tile.clone().zip(values.chunks_exact(GROUP)) {
                        let index = r * self.n + g * GROUP;
                        // SAFETY: this task is the only writer of the features of groups `groups`.
                        match <&[f32; GROUP]>::try_from(values) {
                            // A whole group: one fixed-size copy instead of a call to `memcpy`.
                            Ok(group) if features == GROUP => unsafe { out.write_group(index, group) },
                            _ => unsafe { out.write(index, &values[..features]) },
                        }
                    }
                }
                row = tile.end;
            }
            first = panel.end;
        }
    }

    /// `results[(g * R + r) * GROUP + c]` = the dot of input row `rows.start + r` with feature `c` of
    /// group `panel.start + g`.
    fn tile(&self, isa: Isa, x: &QuantRows, rows: Range<usize>, panel: Range<usize>, results: &mut [f32]) {
        let nb = self.nb;
        let span = panel.start * nb * GROUP..panel.end * nb * GROUP;
        let stored = stored_blocks(self.nibbles);
        let w = Weights {
            qs: &self.qs[panel.start * nb * stored..panel.end * nb * stored],
            d: &self.d[span.clone()],
            m: if self.has_minimums() { &self.m[span] } else { &[] },
            nibbles: self.nibbles,
        };
        let xd = &x.d[rows.start * nb..rows.end * nb];
        let xs = &x.s[rows.start * nb..rows.end * nb];
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::Avx512Vnni => {
                debug_assert!(
                    rows.start.is_multiple_of(ROW_TILE),
                    "row tiles start at multiples of ROW_TILE"
                );
                let pairs = BLOCK / 2 * nb;
                let xp = &x.pairs[rows.start / ROW_TILE * pairs..][..pairs];
                macro_rules! dispatch {
                    ($kernel:ident) => {
                        match rows.len() {
                            1 => avx2::$kernel::<1>(&w, xp, xd, xs, nb, results),
                            2 => avx2::$kernel::<2>(&w, xp, xd, xs, nb, results),
                            3 => avx2::$kernel::<3>(&w, xp, xd, xs, nb, results),
                            4 => avx2::$kernel::<4>(&w, xp, xd, xs, nb, results),
                            5 => avx2::$kernel::<5>(&w, xp, xd, xs, nb, results),
                            6 => avx2::$kernel::<6>(&w, xp, xd, xs, nb, results),
                            7 => avx2::$kernel::<7>(&w, xp, xd, xs, nb, results),
                            _ => avx2::$kernel::<8>(&w, xp, xd, xs, nb, results),
                        }
                    };
                }
                // SAFETY: `Isa::Avx2` is only constructed after detecting AVX2 and FMA at run time, and
                // `Isa::Avx512Vnni` after detecting those and AVX-512 F, VL and VNNI.
                unsafe {
                    match isa {
                        Isa::Avx512Vnni => dispatch!(dot_groups_vnni),
                        _ => dispatch!(dot_groups),
                    }
                }
            }
            Isa::Scalar => {
                let xq = &x.qs[rows.start * nb..rows.end * nb];
                scalar::dot_groups(&w, xq, xd, xs, nb, results);
            }
        }
    }
}

/// Whole groups of a [`QMatrix`] as a kernel reads them: quants, scales and minimums (empty without).
struct Weights<'a> {
    qs: &'a [Block],
    d: &'a [f32],
    m: &'a [f32],
    /// 4-bit quants, two per byte.
    nibbles: bool,
}

/// Stored [`Block`]s per block of a group: 8, or 4 when two 4-bit quants share a byte.
const fn stored_blocks(nibbles: bool) -> usize {
    if nibbles { GROUP / 2 } else { GROUP }
}

/// Byte `byte` of slot block `block` among a group block's stored blocks.
fn weight_quant(stored: &[Block], nibbles: bool, block: usize, byte: usize) -> i8 {
    if !nibbles {
        return stored[block].0[byte];
    }
    let bits = stored[block % 4].0[byte].cast_unsigned();
    let quant = if block < 4 { bits & 0x0F } else { bits >> 4 };
    quant.cast_signed()
}

/// The instruction set the kernels run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    /// AVX2 + FMA: `vpmaddwd` on sign-extended weight pairs and 16-bit input pairs.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// The AVX2 kernel with `vpdpwssd` (AVX-512 VNNI on 256-bit registers) fusing each multiply-add
    /// with its accumulation.
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
    Scalar,
}

impl Isa {
    /// The fastest instruction set this CPU has, unless `GONKA_KERNEL_ISA` (`scalar`, `avx2`) asks
    /// for a slower one — for benchmarks and bit-identity checks on one machine.
    fn detect() -> Self {
        static DETECTED: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| {
            let best = Isa::best();
            match std::env::var("GONKA_KERNEL_ISA").as_deref() {
                Ok("scalar") => Isa::Scalar,
                #[cfg(target_arch = "x86_64")]
                Ok("avx2") if best != Isa::Scalar => Isa::Avx2,
                _ => best,
            }
        })
    }

    /// The fastest instruction set this CPU has.
    fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            let vnni = is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512vnni");
            return if vnni { Isa::Avx512Vnni } else { Isa::Avx2 };
        }
        Isa::Scalar
    }

    /// Every instruction set this CPU can run, the scalar reference first.
    #[cfg(test)]
    fn available() -> Vec<Self> {
        let mut isas = vec![Isa::Scalar];
        #[cfg(target_arch = "x86_64")]
        match Isa::best() {
            Isa::Avx512Vnni => isas.extend([Isa::Avx2, Isa::Avx512Vnni]),
            Isa::Avx2 => isas.push(Isa::Avx2),
            Isa::Scalar => {}
        }
        isas
    }
}

/// Input rows quantized to 16 bits per 32 values: `m` rows of `nb` blocks.
#[derive(Default)]
struct QuantRows {
    m: usize,
    qs: Vec<XBlock>,
    /// The quants as the AVX2 kernel reads them (empty for the scalar one): for row tile `t`, block
    /// `b` and pair `p`, `pairs[(t·nb + b)·16 + p]`; rows past `m` in the last tile are zero.
    pairs: Vec<PairRows>,
    /// Scales `d_x`.
    d: Vec<f32>,
    /// `d_x · f32(Σ q_x)` of each block: what a weight block's minimum multiplies.
    s: Vec<f32>,
}

thread_local! {
    /// The caller's quantized input, kept between calls so that a forward pass does not allocate.
    static INPUT_SCRATCH: std::cell::Cell<Option<QuantRows>> = const { std::cell::Cell::new(None) };
}

/// Set `v` to `len` elements without caring what they hold (every one is overwritten next).
fn set_len_reusing<T: Clone>(v: &mut Vec<T>, len: usize, fill: T) {
    v.truncate(len);
    v.resize(len, fill);
}

/// `v` in pieces of `per_tile`, then empty pieces for ever (for the parts an instruction set leaves empty).
fn tile_parts<T>(v: &mut [T], per_tile: usize) -> impl Iterator<Item = &mut [T]> {
    v.chunks_mut(per_tile.max(1)).chain(std::iter::repeat_with(<&mut [T]>::default))
}

impl QuantRows {
    /// Quantize `x` (`m` rows of `k` values), reusing this thread's buffers; row tiles are spread
    /// over `pool` when there are enough of them.
    fn quantize(isa: Isa, x: &[f32], m: usize, k: usize, pool: &Pool) -> Self {
        let mut rows = INPUT_SCRATCH.take().unwrap_or_default();
        let nb = k / BLOCK;
        rows.m = m;
        set_len_reusing(&mut rows.qs, m * nb, XBlock::ZERO);
        set_len_reusing(&mut rows.d, m * nb, 0.0);
        set_len_reusing(&mut rows.s, m * nb, 0.0);
        let pairs = match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::Avx512Vnni => m.div_ceil(ROW_TILE) * nb * BLOCK / 2,
            Isa::Scalar => 0,
        };
        set_len_reusing(&mut rows.pairs, pairs, PairRows::ZERO);
        let tiles = rows
            .qs
            .chunks_mut(ROW_TILE * nb)
            .zip(rows.d.chunks_mut(ROW_TILE * nb))
            .zip(rows.s.chunks_mut(ROW_TILE * nb))
            .zip(tile_parts(&mut rows.pairs, nb * BLOCK / 2))
            .zip(x.chunks(ROW_TILE * k))
            .map(|((((qs, d), s), pairs), x)| InputTile { x, qs, d, s, pairs });
        if m >= PARALLEL_QUANTIZE_ROWS_MIN && pool.threads() > 1 {
            // Each tile is taken by exactly one task, so its lock is never contended.
            let tiles: Vec<_> = tiles.map(|tile| std::sync::Mutex::new(Some(tile))).collect();
            pool.run(tiles.len(), |t| {
                let tile = tiles[t].lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
                if let Some(tile) = tile {
                    tile.quantize(isa, nb);
                }
            });
        } else {
            for tile in tiles {
                tile.quantize(isa, nb);
            }
        }
        rows
    }

    /// Give the buffers back to this thread for the next call.
    fn recycle(self) {
        INPUT_SCRATCH.set(Some(self));
    }
}

/// One row tile of an input being quantized: its values and the parts of [`QuantRows`] it fills.
struct InputTile<'a> {
    x: &'a [f32],
    qs: &'a mut [XBlock],
    d: &'a mut [f32],
    s: &'a mut [f32],
    pairs: &'a mut [PairRows],
}

impl InputTile<'_> {
    fn quantize(self, isa: Isa, nb: usize) {
        match isa {
            // SAFETY: both are only constructed after detecting AVX2 and FMA at run time.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::Avx512Vnni => unsafe { avx2::quantize_tile(self, nb) },
            Isa::Scalar => scalar::quantize_tile(self),
        }
    }
}

/// Contiguous ranges of feature groups, a few per thread.
#[derive(Clone, Copy, Debug)]
struct GroupChunks {
    groups: usize,
    width: usize,
    count: usize,
}

impl GroupChunks {
    fn new(groups: usize, threads: usize) -> Self {
        let wanted = if threads <= 1 { 1 } else { threads * CHUNKS_PER_THREAD };
        let width = groups.div_ceil(wanted).max(1);
        Self { groups, width, count: groups.div_ceil(width) }
    }

    fn get(&self, chunk: usize) -> Range<usize> {
        chunk * self.width..((chunk + 1) * self.width).min(self.groups)
    }
}

/// The output matrix, shared by pool tasks that each write a disjoint set of its elements.
struct DisjointOut<'a> {
    ptr: *mut f32,
    len: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: `DisjointOut` is a `&mut [f32]` whose writers promise (see `write`) to touch disjoint
// elements, so sharing it between threads creates no data race.
unsafe impl Sync for DisjointOut<'_> {}

impl<'a> DisjointOut<'a> {
    fn new(out: &'a mut [f32]) -> Self {
        Self { ptr: out.as_mut_ptr(), len: out.len(), _borrow: PhantomData }
    }

    /// Copy `values` to `index..index + values.len()`.
    ///
    /// # Safety
    /// No other thread may read or write those elements while this `DisjointOut` exists.
    unsafe fn write(&self, index: usize, values: &[f32]) {
        assert!(index + values.len() <= self.len, "output {index}+{} within {}", values.len(), self.len);
        // SAFETY: in bounds by the assert; exclusive by the caller's promise; the borrow is alive and
        // `values` (a task-local buffer) cannot overlap the output.
        unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), self.ptr.add(index), values.len()) };
    }
}

impl DisjointOut<'_> {
    /// Copy one group's `values` to `index..index + GROUP`.
    ///
    /// # Safety
    /// As for [`DisjointOut::write`].
    unsafe fn write_group(&self, index: usize, values: &[f32; GROUP]) {
        assert!(index + GROUP <= self.len, "output {index}+{GROUP} within {}", self.len);
        // SAFETY: in bounds by the assert; exclusive by the caller's promise; `[f32; GROUP]` has the
        // alignment of `f32`, which every element of the output has.
        unsafe { self.ptr.add(index).cast::<[f32; GROUP]>().write(*values) };
    }
}

/// IEEE binary16 bits to f32 (exact).
pub fn f16_bits_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exponent = u32::from((h >> 10) & 0x1F);
    let mantissa = u32::from(h & 0x3FF);
    let bits = match (exponent, mantissa) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: mantissa · 2^-24, exact in f32.
            #[allow(clippy::cast_precision_loss)]
            let magnitude = mantissa as f32 * f32::from_bits(0x3380_0000);
            sign | magnitude.to_bits()
        }
        (0x1F, 0) => sign | 0x7F80_0000,
        (0x1F, _) => sign | 0x7FC0_0000 | (mantissa << 13),
        _ => sign | ((exponent + 112) << 23) | (mantissa << 13),
    };
    f32::from_bits(bits)
}

/// f32 to IEEE binary16 bits, rounding to nearest with ties to even (what F16C and `half` do).
pub fn f32_to_f16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exponent = ((bits >> 23) & 0xFF) as i32;
    let mantissa = bits & 0x7F_FFFF;
    if exponent == 0xFF {
        let nan = if mantissa == 0 { 0 } else { 0x200 | (mantissa >> 13) as u16 };
        return sign | 0x7C00 | nan;
    }
    let half_exponent = exponent - 127 + 15;
    if half_exponent >= 0x1F {
        return sign | 0x7C00;
    }
    let (kept, shift) = if half_exponent <= 0 {
        if half_exponent < -10 {
            return sign;
        }
        // Subnormal result: the implicit bit joins the mantissa, shifted by the exponent deficit.
        (mantissa | 0x80_0000, (14 - half_exponent) as u32)
    } else {
        ((half_exponent as u32) << 23 | mantissa, 13)
    };
    let truncated = kept >> shift;
    let rest = kept & ((1 << shift) - 1);
    let halfway = 1 << (shift - 1);
    let rounded = truncated + u32::from(rest > halfway || (rest == halfway && truncated & 1 == 1));
    // A carry out of the mantissa lands in the exponent, which is the correct rounding.
    #[allow(clippy::cast_possible_truncation)]
    let rounded = rounded as u16;
    sign | rounded
}

#[cfg(test)]
mod tests;

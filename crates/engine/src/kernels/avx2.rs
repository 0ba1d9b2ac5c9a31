//! AVX2 + FMA kernels, and the matrix kernel's AVX-512 VNNI twin (`dot_groups_vnni`, on 256-bit
//! registers). Every function here performs exactly the float operations of its counterpart in
//! `scalar.rs`, in the same order, so results are bit-identical to the reference.
//!
//! Callers must have checked `is_x86_feature_detected!("avx2")` and `("fma")`, and for the VNNI
//! kernel also `avx512f`, `avx512vl` and `avx512vnni`: that is the safety contract of calling any
//! `#[target_feature]` function below.

// The intrinsics are the vocabulary of this module.
use std::arch::x86_64::*;

use super::{
    BLOCK, Block, GROUP, InputTile, PairRows, ROW_TILE, Weights, X_QUANT_MAX, XBlock, scalar, stored_blocks,
};

#[target_feature(enable = "avx2,fma")]
fn load_half(block: &Block, half: usize) -> __m128i {
    assert!(half < 2, "a block has two 16-byte halves");
    // SAFETY: `Block` is 32 bytes aligned to 32, so either half is 16 readable bytes aligned to 16.
    unsafe { _mm_load_si128(block.0.as_ptr().add(16 * half).cast()) }
}

#[target_feature(enable = "avx2,fma")]
fn load_f32x8(values: &[f32]) -> __m256 {
    assert!(values.len() >= 8, "a vector load reads 8 floats");
    // SAFETY: the assert above keeps the unaligned 8-float load inside `values`.
    unsafe { _mm256_loadu_ps(values.as_ptr()) }
}

/// Quantize the rows of one row tile (up to [`ROW_TILE`] rows of `nb` blocks) into its `qs`/`d`/`s`,
/// bit-identical to `scalar::quantize_tile`, and lay its quants out in its `pairs` for `dot_groups`.
#[target_feature(enable = "avx2,fma")]
pub(super) fn quantize_tile(tile: InputTile<'_>, nb: usize) {
    let InputTile { x, qs, d, s, pairs } = tile;
    let rows = qs.len() / nb;
    assert!(rows <= ROW_TILE && x.len() == rows * nb * BLOCK && d.len() == rows * nb, "one row tile");
    assert!(s.len() == d.len() && pairs.len() == nb * BLOCK / 2, "sums and pairs of one tile");
    for (b, block_pairs) in pairs.chunks_exact_mut(BLOCK / 2).enumerate() {
        // Pairs 0..8 and 8..16 of each row of the tile, then transposed to rows within a pair.
        let mut halves = [[_mm256_setzero_si256(); ROW_TILE]; 2];
        let [low, high] = &mut halves;
        for (r, (low, high)) in low.iter_mut().zip(high.iter_mut()).enumerate().take(rows) {
            let block = r * nb + b;
            let (scale, [row_low, row_high]) = quantize_block(&x[block * BLOCK..][..BLOCK], &mut qs[block]);
            d[block] = scale;
            s[block] = scalar::block_sum(scale, &qs[block]);
            (*low, *high) = (row_low, row_high);
        }
        for (half, out) in halves.iter().zip(block_pairs.chunks_exact_mut(8)) {
            for (pair, out) in transpose8(half).iter().zip(out) {
                // SAFETY: `PairRows` is 32 bytes aligned to 32, exactly what an aligned store writes.
                unsafe { _mm256_store_si256(out.0.as_mut_ptr().cast(), *pair) };
            }
        }
    }
}

/// Transpose an 8×8 matrix of 32-bit lanes: lane `r` of output `c` is lane `c` of input `r`.
#[target_feature(enable = "avx2,fma")]
fn transpose8(rows: &[__m256i; 8]) -> [__m256i; 8] {
    let t: [__m256i; 8] = std::array::from_fn(|i| {
        let (a, b) = (rows[i / 2 * 2], rows[i / 2 * 2 + 1]);
        if i % 2 == 0 { _mm256_unpacklo_epi32(a, b) } else { _mm256_unpackhi_epi32(a, b) }
    });
    // u[4h + j]: rows 4h..4h+4 of columns j and j+4 (j in 0..4).
    let u: [__m256i; 8] = std::array::from_fn(|i| {
        let (h, j) = (i / 4, i % 4);
        let (a, b) = (t[4 * h + j / 2], t[4 * h + j / 2 + 2]);
        if j % 2 == 0 { _mm256_unpacklo_epi64(a, b) } else { _mm256_unpackhi_epi64(a, b) }
    });
    std::array::from_fn(|c| {
        if c < 4 {
            _mm256_permute2x128_si256::<0x20>(u[c], u[4 + c])
        } else {
            _mm256_permute2x128_si256::<0x31>(u[c - 4], u[c])
        }
    })
}

/// Quantize one block into `q`; returns its scale and its quant pairs 0..8 and 8..16 as 32-bit lanes
/// of two i16 each.
#[target_feature(enable = "avx2,fma")]
pub(super) fn quantize_block(x: &[f32], q: &mut XBlock) -> (f32, [__m256i; 2]) {
    let sign = _mm256_set1_ps(-0.0);
    let v = [load_f32x8(&x[0..]), load_f32x8(&x[8..]), load_f32x8(&x[16..]), load_f32x8(&x[24..])];
    // NaN lanes become 0 before the max, matching `f32::max`, which ignores NaN.
    let abs = v.map(|v| {
        let a = _mm256_andnot_ps(sign, v);
        _mm256_and_ps(a, _mm256_cmp_ps::<_CMP_ORD_Q>(a, a))
    });
    let m = _mm256_max_ps(_mm256_max_ps(abs[0], abs[1]), _mm256_max_ps(abs[2], abs[3]));
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let amax = _mm_cvtss_f32(_mm_max_ps(m, _mm_shuffle_ps::<1>(m, m)));
    let (d, id) = scalar::block_scale(amax);
    let id = _mm256_set1_ps(id);
    let i = v.map(|v| _mm256_cvtps_epi32(round_half_away(clamp_quant(_mm256_mul_ps(v, id)))));
    // packs interleave 128-bit halves; the permutations restore element order.
    let low = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(i[0], i[1]));
    let high = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(i[2], i[3]));
    // SAFETY: `XBlock` is 64 bytes aligned to 64: two aligned 256-bit stores fill it.
    unsafe {
        _mm256_store_si256(q.0.as_mut_ptr().cast(), low);
        _mm256_store_si256(q.0.as_mut_ptr().add(16).cast(), high);
    }
    (d, [low, high])
}

/// NaN to 0 and clamp to `±32767`: what `(v.round() as i16).max(-32767)` does to out-of-range input.
#[target_feature(enable = "avx2,fma")]
fn clamp_quant(v: __m256) -> __m256 {
    let v = _mm256_and_ps(v, _mm256_cmp_ps::<_CMP_ORD_Q>(v, v));
    _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-X_QUANT_MAX)), _mm256_set1_ps(X_QUANT_MAX))
}

/// `f32::round` (half away from zero) for |v| < 2^23: truncate, then step away from zero when the
/// dropped fraction (exact in f32) is at least one half.
#[target_feature(enable = "avx2,fma")]
fn round_half_away(v: __m256) -> __m256 {
    let sign = _mm256_set1_ps(-0.0);
    let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
    let frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    let away = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0));
    let step = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(frac, _mm256_set1_ps(0.5)), away);
    _mm256_add_ps(t, step)
}

/// Add one quant pair's products to each row's block sums: `w` holds the pair of each of the 8 features
/// as i16, lane `c` for feature `c`; `xp` the pair of each row.
#[target_feature(enable = "avx2,fma")]
fn accumulate<const R: usize>(sums: &mut [__m256i; R], w: __m256i, xp: &PairRows) {
    for (sum, &x) in sums.iter_mut().zip(&xp.0) {
        // |w| <= 128 and |x| <= 32767: a pair sums to < 2^24 and a block to < 2^31.
        *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(w, _mm256_set1_epi32(x)));
    }
}

/// [`accumulate`] in one instruction per row: `vpdpwssd` multiplies the i16 pairs and adds both
/// products to the lane, the same exact integer sum without the separate `vpaddd` (AVX-512 VNNI on
/// 256-bit registers).
#[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
fn accumulate_vnni<const R: usize>(sums: &mut [__m256i; R], w: __m256i, xp: &PairRows) {
    for (sum, &x) in sums.iter_mut().zip(&xp.0) {
        // Exact for the same bounds as `accumulate`: no sum comes near the i32 range.
        *sum = _mm256_dpwssd_epi32(*sum, w, _mm256_set1_epi32(x));
    }
}

/// Generates a `dot_groups` kernel for one instruction set: the body is shared so that both kernels
/// perform the same integer and float operations in the same order, and `$accumulate` (inlined under
/// `$features`) is the only difference.
macro_rules! dot_groups_kernel {
    ($name:ident, $features:literal, $accumulate:ident) => {
        /// Dot products of `R` quantized rows against consecutive feature groups.
        ///
        /// `w` holds whole groups in the interleaved layout of `QMatrix`; `xp` is one row tile of
        /// `QuantRows::pairs` (rows `R..` unused), `xd` and `xs` the scales and scaled sums of its `R` rows;
        /// `results[(g * R + r) * GROUP + c]` receives the dot of row `r` with feature `c` of group `g`.
        ///
        /// Per quant pair, the pairs of the group's 8 features are extended to i16 once and used by
        /// all `R` rows: each row broadcasts its own pair and one `vpmaddwd` (`vpdpwssd`, which also
        /// adds) forms the exact products, lane `c` for feature `c`. Every (row, group) pair has its
        /// own integer block sum and f32 accumulator, so a result
        /// depends neither on `R` nor on the other rows.
        #[target_feature(enable = $features)]
        pub(super) fn $name<const R: usize>(
            w: &Weights<'_>,
            xp: &[PairRows],
            xd: &[f32],
            xs: &[f32],
            nb: usize,
            results: &mut [f32],
        ) {
            let groups = results.len() / (R * GROUP);
            let minimums = !w.m.is_empty();
            let stored_len = groups * nb * stored_blocks(w.nibbles);
            assert!(w.qs.len() == stored_len && w.d.len() == groups * nb * GROUP, "whole groups");
            assert!(!minimums || w.m.len() == w.d.len(), "one minimum per scale");
            assert!(xp.len() == nb * BLOCK / 2 && xd.len() == R * nb && xs.len() == R * nb, "one row tile");
            let x_scales: [&[f32]; R] = std::array::from_fn(|r| &xd[r * nb..][..nb]);
            let x_sums: [&[f32]; R] = std::array::from_fn(|r| &xs[r * nb..][..nb]);
            let group_len = nb * GROUP;
            let stored = stored_blocks(w.nibbles);
            for (g, results) in results.chunks_exact_mut(R * GROUP).enumerate() {
                let wq = &w.qs[g * nb * stored..][..nb * stored];
                let wd = &w.d[g * group_len..][..group_len];
                let mut acc = [_mm256_setzero_ps(); R];
                let blocks =
                    wq.chunks_exact(stored).zip(wd.chunks_exact(GROUP)).zip(xp.chunks_exact(BLOCK / 2));
                for (b, ((blocks, dw), xp)) in blocks.enumerate() {
                    let mut sums = [_mm256_setzero_si256(); R];
                    if w.nibbles {
                        // Stored block `i` holds slot blocks `i` (low nibbles) and `i + 4` (high nibbles); slot
                        // block `s` holds pairs `2s` and `2s + 1`. Integer sums do not depend on the order.
                        let low_nibbles = _mm256_set1_epi8(0x0F);
                        for (i, block) in blocks.iter().enumerate() {
                            // SAFETY: `Block` is 32 bytes aligned to 32, exactly what an aligned 256-bit load reads.
                            let packed = unsafe { _mm256_load_si256(block.0.as_ptr().cast()) };
                            let low = _mm256_and_si256(packed, low_nibbles);
                            let high = _mm256_and_si256(_mm256_srli_epi16::<4>(packed), low_nibbles);
                            for (slot, bytes) in [(i, low), (i + 4, high)] {
                                let halves =
                                    [_mm256_castsi256_si128(bytes), _mm256_extracti128_si256::<1>(bytes)];
                                for (half, bytes) in halves.into_iter().enumerate() {
                                    $accumulate(&mut sums, _mm256_cvtepu8_epi16(bytes), &xp[2 * slot + half]);
                                }
                            }
                        }
                    } else {
                        for (block, xp) in blocks.iter().zip(xp.chunks_exact(2)) {
                            for (half, xp) in xp.iter().enumerate() {
                                $accumulate(&mut sums, _mm256_cvtepi8_epi16(load_half(block, half)), xp);
                            }
                        }
                    }
                    let dw = load_f32x8(dw);
                    for ((acc, sum), xd) in acc.iter_mut().zip(sums).zip(&x_scales) {
                        // Rounds to nearest like the scalar `as f32`.
                        let scale = _mm256_mul_ps(dw, _mm256_set1_ps(xd[b]));
                        *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, *acc);
                    }
                    if minimums {
                        let wm = load_f32x8(&w.m[g * group_len + b * GROUP..][..GROUP]);
                        for (acc, xs) in acc.iter_mut().zip(&x_sums) {
                            *acc = _mm256_fmadd_ps(wm, _mm256_set1_ps(xs[b]), *acc);
                        }
                    }
                }
                for (acc, out) in acc.iter().zip(results.chunks_exact_mut(GROUP)) {
                    assert!(out.len() == GROUP, "a group result holds 8 floats");
                    // SAFETY: the assert above keeps the unaligned 8-float store inside `out`.
                    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), *acc) };
                }
            }
        }
    };
}

dot_groups_kernel!(dot_groups, "avx2,fma", accumulate);
dot_groups_kernel!(dot_groups_vnni, "avx2,fma,avx512f,avx512vl,avx512vnni", accumulate_vnni);

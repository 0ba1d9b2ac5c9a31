//! AVX-512 VNNI kernels on 256-bit registers. `vpdpbusd` multiplies four unsigned bytes by four signed
//! bytes and adds the four products to a 32-bit lane, exactly: one instruction does the work of the
//! AVX2 kernel's sign extension, `vpmaddwd` and add for four quants of 8 features.
//!
//! The weights are stored as `q + 128` ([`Layout::Quads`](super::Layout)) so that they are the
//! unsigned operand and the activations, broadcast one quad at a time, the signed one. Each block's
//! integer sum starts from `-128 · Σ x` (computed once per input block), so it ends at exactly
//! `Σ q_w · q_x`, the integer the other kernels compute; the float operations that follow are theirs,
//! in their order, so results are bit-identical to `scalar.rs`.
//!
//! Callers must have checked `is_x86_feature_detected!` for `avx2`, `fma`, `avx512f`, `avx512vl` and
//! `avx512vnni`: that is the safety contract of calling any `#[target_feature]` function below.

// The intrinsics are the vocabulary of this module.
use std::arch::x86_64::*;

use super::{BLOCK, Block, GROUP, InputTile, avx2};

/// Quantize the rows of one row tile into its `qs`/`d`, bit-identical to `scalar::quantize_rows`, and
/// record each block's offset `-128 · Σ q`.
#[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
pub(super) fn quantize_tile(tile: InputTile<'_>) {
    let InputTile { x, qs, d, offsets, .. } = tile;
    assert!(x.len() == qs.len() * BLOCK && d.len() == qs.len() && offsets.len() == qs.len(), "one row tile");
    for (((x, q), d), offset) in x.chunks_exact(BLOCK).zip(qs.iter_mut()).zip(d.iter_mut()).zip(offsets) {
        let (scale, _pairs) = avx2::quantize_block(x, q);
        *d = scale;
        *offset = -128 * q.0.iter().map(|&v| i32::from(v)).sum::<i32>();
    }
}

/// Quants `4h..4h+4` of `block` as one little-endian 32-bit lane.
fn quad(block: &Block, h: usize) -> i32 {
    let q = &block.0[4 * h..4 * h + 4];
    i32::from_le_bytes([
        q[0].cast_unsigned(),
        q[1].cast_unsigned(),
        q[2].cast_unsigned(),
        q[3].cast_unsigned(),
    ])
}

/// Dot products of `R` quantized rows against consecutive feature groups in [`Layout::Quads`]
/// (super::Layout): `xq`/`xd`/`xs` hold the `R` rows' quants, scales and offsets (`nb` blocks each);
/// `results[(g * R + r) * GROUP + c]` receives the dot of row `r` with feature `c` of group `g`.
///
/// Per block, each weight register (one quad of the 8 features) is loaded once and used by all `R`
/// rows, each broadcasting its own quad. Every (row, group) pair has its own integer block sum and f32
/// accumulator, so a result depends neither on `R` nor on the other rows.
#[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
pub(super) fn dot_groups<const R: usize>(
    wq: &[Block],
    wd: &[f32],
    xq: &[Block],
    xd: &[f32],
    xs: &[i32],
    nb: usize,
    results: &mut [f32],
) {
    let groups = results.len() / (R * GROUP);
    assert!(wq.len() == groups * nb * GROUP && wd.len() == groups * nb * GROUP, "whole groups");
    assert!(xq.len() == R * nb && xd.len() == R * nb && xs.len() == R * nb, "`R` rows");
    let group_len = nb * GROUP;
    let pairs = groups / 2;
    let (pair_q, single_q) = wq.split_at(pairs * 2 * group_len);
    let (pair_d, single_d) = wd.split_at(pairs * 2 * group_len);
    let (pair_out, single_out) = results.split_at_mut(pairs * 2 * R * GROUP);
    for ((wq, wd), results) in pair_q
        .chunks_exact(2 * group_len)
        .zip(pair_d.chunks_exact(2 * group_len))
        .zip(pair_out.chunks_exact_mut(2 * R * GROUP))
    {
        let (first, second) = wq.split_at(group_len);
        let (first_d, second_d) = wd.split_at(group_len);
        let (first_out, second_out) = results.split_at_mut(R * GROUP);
        two_groups::<R>([first, second], [first_d, second_d], xq, xd, xs, nb, [first_out, second_out]);
    }
    for ((wq, wd), results) in single_q
        .chunks_exact(group_len)
        .zip(single_d.chunks_exact(group_len))
        .zip(single_out.chunks_exact_mut(R * GROUP))
    {
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, (blocks, dw)) in wq.chunks_exact(GROUP).zip(wd.chunks_exact(GROUP)).enumerate() {
            let mut sums: [__m256i; R] = std::array::from_fn(|r| _mm256_set1_epi32(xs[r * nb + b]));
            for (h, block) in blocks.iter().enumerate() {
                // SAFETY: `Block` is 32 bytes aligned to 32, exactly what an aligned 256-bit load reads.
                let w = unsafe { _mm256_load_si256(block.0.as_ptr().cast()) };
                for (r, sum) in sums.iter_mut().enumerate() {
                    // |Σ| stays below 2^21 at every step: no lane can overflow.
                    *sum = _mm256_dpbusd_epi32(*sum, w, _mm256_set1_epi32(quad(&xq[r * nb + b], h)));
                }
            }
            assert!(dw.len() == GROUP, "a group block holds 8 scales");
            // SAFETY: the assert above keeps the unaligned 8-float load inside `dw`.
            let dw = unsafe { _mm256_loadu_ps(dw.as_ptr()) };
            for (r, (acc, sum)) in acc.iter_mut().zip(sums).enumerate() {
                // The block sum is below 2^24 in magnitude, so the conversion is exact.
                let scale = _mm256_mul_ps(dw, _mm256_set1_ps(xd[r * nb + b]));
                *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, *acc);
            }
        }
        for (acc, out) in acc.iter().zip(results.chunks_exact_mut(GROUP)) {
            assert!(out.len() == GROUP, "a group result holds 8 floats");
            // SAFETY: the assert above keeps the unaligned 8-float store inside `out`.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), *acc) };
        }
    }
}

/// [`dot_groups`] for two groups at once: lanes 0–7 of each 512-bit register work for the first group
/// and lanes 8–15 for the second, so each broadcast input quad serves both. Lane for lane, the
/// operations are those of the 256-bit loop, so the results are the same bits.
#[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
fn two_groups<const R: usize>(
    wq: [&[Block]; 2],
    wd: [&[f32]; 2],
    xq: &[Block],
    xd: &[f32],
    xs: &[i32],
    nb: usize,
    results: [&mut [f32]; 2],
) {
    assert!(wq.iter().all(|w| w.len() == nb * GROUP) && wd.iter().all(|d| d.len() == nb * GROUP), "groups");
    assert!(results.iter().all(|r| r.len() == R * GROUP), "one result per row and feature");
    let mut acc = [_mm512_setzero_ps(); R];
    let blocks = wq[0].chunks_exact(GROUP).zip(wq[1].chunks_exact(GROUP));
    let scales = wd[0].chunks_exact(GROUP).zip(wd[1].chunks_exact(GROUP));
    for (b, ((low, high), (low_d, high_d))) in blocks.zip(scales).enumerate() {
        let mut sums: [__m512i; R] = std::array::from_fn(|r| _mm512_set1_epi32(xs[r * nb + b]));
        for (h, (low, high)) in low.iter().zip(high).enumerate() {
            // SAFETY: `Block` is 32 bytes aligned to 32, exactly what an aligned 256-bit load reads.
            let w = unsafe {
                let low = _mm256_load_si256(low.0.as_ptr().cast());
                let high = _mm256_load_si256(high.0.as_ptr().cast());
                _mm512_inserti64x4::<1>(_mm512_castsi256_si512(low), high)
            };
            for (r, sum) in sums.iter_mut().enumerate() {
                *sum = _mm512_dpbusd_epi32(*sum, w, _mm512_set1_epi32(quad(&xq[r * nb + b], h)));
            }
        }
        assert!(low_d.len() == GROUP && high_d.len() == GROUP, "a group block holds 8 scales");
        // SAFETY: the assert above keeps both unaligned 8-float loads inside their slices.
        let dw = unsafe {
            let low = _mm256_loadu_ps(low_d.as_ptr());
            let high = _mm256_loadu_ps(high_d.as_ptr());
            let wide = _mm512_insertf64x4::<1>(
                _mm512_castpd256_pd512(_mm256_castps_pd(low)),
                _mm256_castps_pd(high),
            );
            _mm512_castpd_ps(wide)
        };
        for (r, (acc, sum)) in acc.iter_mut().zip(sums).enumerate() {
            let scale = _mm512_mul_ps(dw, _mm512_set1_ps(xd[r * nb + b]));
            *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scale, *acc);
        }
    }
    let [first, second] = results;
    for ((acc, first), second) in
        acc.iter().zip(first.chunks_exact_mut(GROUP)).zip(second.chunks_exact_mut(GROUP))
    {
        // SAFETY: both chunks hold exactly 8 floats, what each unaligned 256-bit store writes.
        unsafe {
            _mm256_storeu_ps(first.as_mut_ptr(), _mm512_castps512_ps256(*acc));
            let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(*acc)));
            _mm256_storeu_ps(second.as_mut_ptr(), high);
        }
    }
}

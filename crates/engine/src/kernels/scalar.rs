//! Portable reference kernels. They perform exactly the integer and float operations of the AVX2
//! kernels, in the same order, so both produce bit-identical results; they run where AVX2 is absent
//! and in tests.

use super::{BLOCK, GROUP, InputTile, Weights, X_QUANT_MAX, XBlock, slot, stored_blocks, weight_quant};

/// Quantize one 32-value block to 16 bits: `d = amax / 32767`, `q = round(x / d)` (half away from
/// zero, NaN to 0, clamped to `±32767`). Returns the scale and `d · f32(Σ q)`.
pub(super) fn quantize_block(x: &[f32], q: &mut XBlock) -> (f32, f32) {
    debug_assert_eq!(x.len(), BLOCK);
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let (d, id) = block_scale(amax);
    for (q, &v) in q.0.iter_mut().zip(x) {
        // `as` saturates and maps NaN to 0; the max keeps -32768 out, so the quantization is symmetric.
        #[allow(clippy::cast_possible_truncation)]
        let r = (v * id).round() as i16;
        *q = r.max(-32767);
    }
    (d, block_sum(d, q))
}

/// The scale `d = amax / 32767` of a block and the reciprocal used to quantize it.
pub(super) fn block_scale(amax: f32) -> (f32, f32) {
    let d = amax / X_QUANT_MAX;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    (d, id)
}

/// `d · f32(Σ q)`: the block's sum as a weight block's minimum multiplies it. `|Σ q| <= 32 · 32767 <
/// 2^24`, so the conversion is exact.
pub(super) fn block_sum(d: f32, q: &XBlock) -> f32 {
    let sum: i32 = q.0.iter().map(|&q| i32::from(q)).sum();
    #[allow(clippy::cast_precision_loss)]
    let sum = sum as f32;
    d * sum
}

/// Quantize every row of one row tile into its `qs`, `d` and `s`.
pub(super) fn quantize_tile(tile: InputTile<'_>) {
    let InputTile { x, qs, d, s, .. } = tile;
    for (((x, q), d), s) in x.chunks_exact(BLOCK).zip(qs.iter_mut()).zip(d.iter_mut()).zip(s.iter_mut()) {
        (*d, *s) = quantize_block(x, q);
    }
}

/// Dot products of quantized rows (`xq`/`xd`/`xs`, rows of `nb` blocks) against consecutive feature
/// groups, with the result order of `avx2::dot_groups`. Per output element and block in order: the
/// exact integer dot of the 32 quant products, converted to f32 and accumulated as
/// `sum · (dw · dx) + acc` with one rounding, then, with minimums, `m_w · s_x + acc` with one rounding.
pub(super) fn dot_groups(
    w: &Weights<'_>,
    xq: &[XBlock],
    xd: &[f32],
    xs: &[f32],
    nb: usize,
    results: &mut [f32],
) {
    let rows = xd.len() / nb.max(1);
    let group_len = nb * GROUP;
    let stored_len = nb * stored_blocks(w.nibbles);
    for (g, results) in results.chunks_exact_mut(rows * GROUP).enumerate() {
        let span = g * group_len..(g + 1) * group_len;
        let group = Weights {
            qs: &w.qs[g * stored_len..(g + 1) * stored_len],
            d: &w.d[span.clone()],
            m: if w.m.is_empty() { &[] } else { &w.m[span] },
            nibbles: w.nibbles,
        };
        for (r, out) in results.chunks_exact_mut(GROUP).enumerate() {
            let x = (&xq[r * nb..][..nb], &xd[r * nb..][..nb], &xs[r * nb..][..nb]);
            out.copy_from_slice(&dot_group(&group, x));
        }
    }
}

fn dot_group(w: &Weights<'_>, (xq, xd, xs): (&[XBlock], &[f32], &[f32])) -> [f32; GROUP] {
    let mut acc = [0.0f32; GROUP];
    for (b, ((x, &dx), &sx)) in xq.iter().zip(xd).zip(xs).enumerate() {
        let stored = stored_blocks(w.nibbles);
        let blocks = &w.qs[b * stored..][..stored];
        for (c, acc) in acc.iter_mut().enumerate() {
            let mut sum = 0i32;
            for (e, &x) in x.0.iter().enumerate() {
                let (block, byte) = slot(c, e);
                sum += i32::from(weight_quant(blocks, w.nibbles, block, byte)) * i32::from(x);
            }
            // |sum| <= 32 · 128 · 32767 < 2^31; the conversion rounds to nearest, as `vcvtdq2ps` does.
            #[allow(clippy::cast_precision_loss)]
            let sum = sum as f32;
            *acc = sum.mul_add(w.d[b * GROUP + c] * dx, *acc);
            if let Some(&m) = w.m.get(b * GROUP + c) {
                *acc = m.mul_add(sx, *acc);
            }
        }
    }
    acc
}

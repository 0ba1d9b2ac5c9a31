//! Portable reference kernels. They perform exactly the float operations of the AVX2 kernels, in the
//! same order, so both produce bit-identical results; they run where AVX2 is absent and in tests.

use super::{BLOCK, Block, GROUP, Layout, QuantRows};

/// Quantize one 32-value block the way GGML's `quantize_row_q8_0_ref` does, except that quants are
/// clamped to `-127..=127` (GGML can only reach -128 when `1/d` overflows, i.e. for subnormal inputs).
/// Returns the block's scale, already rounded through f16 as GGML stores it.
pub(super) fn quantize_block(x: &[f32], q: &mut Block) -> f32 {
    debug_assert_eq!(x.len(), BLOCK);
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let (d, id) = block_scale(amax);
    for (q, &v) in q.0.iter_mut().zip(x) {
        // `as` saturates and maps NaN to 0; the clamp keeps -128 out, so `|x| <= 127` in the kernels.
        #[allow(clippy::cast_possible_truncation)]
        let r = (v * id).round() as i8;
        *q = r.max(-127);
    }
    d
}

/// The f16-rounded scale `d = amax / 127` of a block and the reciprocal used to quantize it (GGML
/// computes the reciprocal from the unrounded scale).
pub(super) fn block_scale(amax: f32) -> (f32, f32) {
    let d = amax / 127.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    (super::f16_bits_to_f32(super::f32_to_f16_bits(d)), id)
}

/// Quantize every row of `x` into `rows.qs` and `rows.d` (one block per 32 values).
pub(super) fn quantize_rows(x: &[f32], rows: &mut QuantRows) {
    for ((x, q), d) in x.chunks_exact(BLOCK).zip(rows.qs.iter_mut()).zip(rows.d.iter_mut()) {
        *d = quantize_block(x, q);
    }
}

/// Dot products of quantized rows (`xq`/`xd`, rows of `nb` blocks) against consecutive feature
/// groups stored in `layout`, with the result order of `avx2::dot_groups`. Per output element and
/// block in order: the exact integer dot of the 32 quant products, converted to f32 and accumulated
/// as `sum * (dw * dx) + acc` with one rounding.
pub(super) fn dot_groups(
    layout: Layout,
    wq: &[Block],
    wd: &[f32],
    xq: &[Block],
    xd: &[f32],
    nb: usize,
    results: &mut [f32],
) {
    let rows = xd.len() / nb.max(1);
    let group_len = nb * GROUP;
    for ((wq, wd), results) in
        wq.chunks_exact(group_len).zip(wd.chunks_exact(group_len)).zip(results.chunks_exact_mut(rows * GROUP))
    {
        for (r, out) in results.chunks_exact_mut(GROUP).enumerate() {
            out.copy_from_slice(&dot_group(layout, wq, wd, &xq[r * nb..][..nb], &xd[r * nb..][..nb]));
        }
    }
}

fn dot_group(layout: Layout, wq: &[Block], wd: &[f32], xq: &[Block], xd: &[f32]) -> [f32; GROUP] {
    let mut acc = [0.0f32; GROUP];
    for (((blocks, scales), x), &dx) in wq.chunks_exact(GROUP).zip(wd.chunks_exact(GROUP)).zip(xq).zip(xd) {
        for (c, (acc, &dw)) in acc.iter_mut().zip(scales).enumerate() {
            let mut sum = 0i32;
            for (e, &x) in x.0.iter().enumerate() {
                let (block, byte) = layout.slot(c, e);
                sum += i32::from(layout.decode(blocks[block].0[byte])) * i32::from(x);
            }
            // |sum| <= 32 * 128 * 127 < 2^24, so the conversion is exact.
            #[allow(clippy::cast_precision_loss)]
            let sum = sum as f32;
            *acc = sum.mul_add(dw * dx, *acc);
        }
    }
    acc
}

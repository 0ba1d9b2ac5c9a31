//! f32 vector kernels for attention and normalization: dot products and weighted sums of cache rows.
//!
//! Both have one fixed sequence of float operations (eight fused multiply-add lanes, a fixed reduction
//! tree, a sequential tail), and the scalar path performs the same operations with `f32::mul_add`, so
//! results are bit-identical with and without AVX2.

/// Lanes of the fixed-order accumulation.
const LANES: usize = 8;

/// `sum(a[i] * b[i])` in the fixed order described in the module docs.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot of unequal lengths");
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above); lengths are equal (asserted).
            return unsafe { x86::dot(a, b) };
        }
    }
    dot_scalar(a, b)
}

/// `scores[t] = dot(q, keys[t * stride + offset ..][..q.len()]) * scale` for `t < scores.len()`: one head's
/// attention logits over a cache laid out `[position][stride]`.
pub fn attention_scores(
    q: &[f32],
    keys: &[f32],
    stride: usize,
    offset: usize,
    scale: f32,
    scores: &mut [f32],
) {
    let needed = scores.len().saturating_sub(1) * stride + offset + q.len();
    assert!(scores.is_empty() || keys.len() >= needed, "key cache shorter than the scored positions");
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: AVX2 and FMA are present (checked above); bounds asserted above.
            unsafe { x86::attention_scores(q, keys, stride, offset, scale, scores) };
            return;
        }
    }
    for (t, score) in scores.iter_mut().enumerate() {
        *score = dot_scalar(q, &keys[t * stride + offset..][..q.len()]) * scale;
    }
}

/// `out = sum_t weights[t] * values[t * stride + offset ..][..out.len()]`, accumulated in position order
/// with one FMA per element.
pub fn weighted_sum(weights: &[f32], values: &[f32], stride: usize, offset: usize, out: &mut [f32]) {
    let needed = weights.len().saturating_sub(1) * stride + offset + out.len();
    assert!(weights.is_empty() || values.len() >= needed, "value cache shorter than the weighted positions");
    out.fill(0.0);
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && out.len().is_multiple_of(LANES)
        {
            // SAFETY: AVX2 and FMA are present (checked above); bounds asserted above; out.len() is a
            // multiple of 8 (checked above).
            unsafe { x86::weighted_sum(weights, values, stride, offset, out) };
            return;
        }
    }
    for (t, w) in weights.iter().enumerate() {
        axpy_scalar(out, *w, &values[t * stride + offset..][..out.len()]);
    }
}

/// The largest non-NaN value; −∞ when there is none. (Between `-0.0` and `0.0` either may be returned.)
pub fn max(values: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { x86::max(values) };
        }
    }
    values.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

pub(super) fn reduce(acc: [f32; LANES]) -> f32 {
    let s = [acc[0] + acc[4], acc[1] + acc[5], acc[2] + acc[6], acc[3] + acc[7]];
    (s[0] + s[2]) + (s[1] + s[3])
}

pub(crate) fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    let chunks = a.len() / LANES;
    let mut acc = [0.0f32; LANES];
    for c in 0..chunks {
        for (l, slot) in acc.iter_mut().enumerate() {
            *slot = a[c * LANES + l].mul_add(b[c * LANES + l], *slot);
        }
    }
    let mut sum = reduce(acc);
    for i in chunks * LANES..a.len() {
        sum = a[i].mul_add(b[i], sum);
    }
    sum
}

pub(crate) fn axpy_scalar(y: &mut [f32], w: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y = w.mul_add(*x, *y);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m256, _mm_add_ps, _mm_add_ss, _mm_cvtss_f32, _mm_movehl_ps, _mm_shuffle_ps, _mm256_castps256_ps128,
        _mm256_extractf128_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_set1_ps,
        _mm256_setzero_ps, _mm256_storeu_ps,
    };

    use super::LANES;

    /// The same tree as `super::reduce`, in registers.
    #[target_feature(enable = "avx2,fma")]
    fn reduce_register(acc: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
        let t = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps::<0b01>(t, t)))
    }

    /// Keys scored together: their accumulation chains are independent, so they overlap in the
    /// pipeline. Each key's operations are still exactly those of `dot`.
    const KEYS_AT_ONCE: usize = 8;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn attention_scores(
        q: &[f32],
        keys: &[f32],
        stride: usize,
        offset: usize,
        scale: f32,
        scores: &mut [f32],
    ) {
        let chunks = q.len() / LANES;
        let whole = scores.len() / KEYS_AT_ONCE * KEYS_AT_ONCE;
        let (batched, rest) = scores.split_at_mut(whole);
        for (b, scores) in batched.chunks_exact_mut(KEYS_AT_ONCE).enumerate() {
            let key = |k: usize| &keys[(b * KEYS_AT_ONCE + k) * stride + offset..][..q.len()];
            let mut acc = [_mm256_setzero_ps(); KEYS_AT_ONCE];
            for c in 0..chunks {
                // SAFETY: c * LANES + LANES <= q.len(), and every key slice has q.len() floats.
                let x = unsafe { _mm256_loadu_ps(q.as_ptr().add(c * LANES)) };
                for (k, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: as above.
                    let y = unsafe { _mm256_loadu_ps(key(k).as_ptr().add(c * LANES)) };
                    *acc = _mm256_fmadd_ps(x, y, *acc);
                }
            }
            for (k, (acc, score)) in acc.iter().zip(scores.iter_mut()).enumerate() {
                let tail = q[chunks * LANES..].iter().zip(&key(k)[chunks * LANES..]);
                let sum = tail.fold(reduce_register(*acc), |sum, (a, b)| a.mul_add(*b, sum));
                *score = sum * scale;
            }
        }
        for (t, score) in rest.iter_mut().enumerate() {
            let key = &keys[(whole + t) * stride + offset..][..q.len()];
            // SAFETY: same features as this function; both slices have q.len() floats.
            *score = unsafe { dot(q, key) } * scale;
        }
    }

    /// Output chunks accumulated together, position by position: independent chains that overlap in
    /// the pipeline. Each element still gets one FMA per position, in position order.
    const CHUNKS_AT_ONCE: usize = 8;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn weighted_sum(
        weights: &[f32],
        values: &[f32],
        stride: usize,
        offset: usize,
        out: &mut [f32],
    ) {
        for (g, out) in out.chunks_mut(CHUNKS_AT_ONCE * LANES).enumerate() {
            let first = offset + g * CHUNKS_AT_ONCE * LANES;
            let mut acc = [_mm256_setzero_ps(); CHUNKS_AT_ONCE];
            let acc = &mut acc[..out.len() / LANES];
            for (t, w) in weights.iter().enumerate() {
                let w = _mm256_set1_ps(*w);
                for (c, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: the caller asserted values covers (len-1)*stride + offset + out.len().
                    let v = unsafe { _mm256_loadu_ps(values.as_ptr().add(t * stride + first + c * LANES)) };
                    *acc = _mm256_fmadd_ps(w, v, *acc);
                }
            }
            for (c, acc) in acc.iter().enumerate() {
                // SAFETY: out.len() is a multiple of LANES (the caller checked), so chunk c is in bounds.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(c * LANES), *acc) };
            }
        }
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn max(values: &[f32]) -> f32 {
        let chunks = values.chunks_exact(LANES);
        let tail = chunks.remainder();
        let mut acc = _mm256_set1_ps(f32::NEG_INFINITY);
        for chunk in chunks {
            // SAFETY: `chunk` holds exactly 8 floats.
            let v = unsafe { _mm256_loadu_ps(chunk.as_ptr()) };
            // `maxps` returns its second operand when the first is NaN: NaN values are skipped.
            acc = _mm256_max_ps(v, acc);
        }
        let mut lanes = [0.0f32; LANES];
        // SAFETY: `lanes` holds 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
        lanes.iter().chain(tail).copied().fold(f32::NEG_INFINITY, f32::max)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let chunks = a.len() / LANES;
        let mut acc = _mm256_setzero_ps();
        for c in 0..chunks {
            // SAFETY: c * LANES + LANES <= a.len() == b.len(), so both 8-float loads are in bounds.
            let (x, y) = unsafe {
                (_mm256_loadu_ps(a.as_ptr().add(c * LANES)), _mm256_loadu_ps(b.as_ptr().add(c * LANES)))
            };
            acc = _mm256_fmadd_ps(x, y, acc);
        }
        let mut sum = reduce_register(acc);
        for i in chunks * LANES..a.len() {
            sum = a[i].mul_add(b[i], sum);
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 10_007) as f32 / 977.0 - 5.0
            })
            .collect()
    }

    #[test]
    fn simd_dot_equals_scalar_bit_for_bit() {
        for n in [0, 1, 7, 8, 9, 64, 100, 576] {
            let (a, b) = (data(n, 1), data(n, 2));
            assert_eq!(dot(&a, &b).to_bits(), dot_scalar(&a, &b).to_bits(), "n = {n}");
        }
    }

    #[test]
    fn weighted_sum_with_odd_width_uses_the_scalar_definition() {
        let (stride, width, len) = (13, 5, 9);
        let values = data(len * stride, 3);
        let weights = data(len, 4);
        let mut out = vec![1.0; width];
        weighted_sum(&weights, &values, stride, 2, &mut out);
        let mut expected = vec![0.0; width];
        for (t, w) in weights.iter().enumerate() {
            axpy_scalar(&mut expected, *w, &values[t * stride + 2..][..width]);
        }
        assert_eq!(out, expected);
    }

    #[test]
    fn attention_kernels_equal_their_scalar_definitions() {
        let (stride, offset) = (192, 64);
        for (dim, len) in [(64, 37), (64, 8), (72, 19), (12, 9), (128, 3)] {
            let keys = data(len * stride, 7);
            let values = data(len * stride, 8);
            let q = data(dim, 9);
            let mut scores = vec![0.0; len];
            attention_scores(&q, &keys, stride, offset, 0.125, &mut scores);
            for (t, s) in scores.iter().enumerate() {
                let expected = dot_scalar(&q, &keys[t * stride + offset..][..dim]) * 0.125;
                assert_eq!(s.to_bits(), expected.to_bits(), "dim {dim}, key {t} of {len}");
            }
            let mut out = vec![0.0; dim];
            weighted_sum(&scores, &values, stride, offset, &mut out);
            let mut expected = vec![0.0; dim];
            for (t, w) in scores.iter().enumerate() {
                axpy_scalar(&mut expected, *w, &values[t * stride + offset..][..dim]);
            }
            assert_eq!(
                out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                expected.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "dim {dim}, {len} positions"
            );
        }
    }

    #[test]
    fn max_skips_nan_and_equals_the_scalar_fold() {
        for n in [0, 1, 7, 8, 9, 100, 49_152] {
            let mut v = data(n, 11);
            for (i, x) in v.iter_mut().enumerate() {
                if i % 5 == 0 {
                    *x = f32::NAN;
                }
            }
            let expected = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max(&v).to_bits(), expected.to_bits(), "n = {n}");
        }
        assert_eq!(max(&[f32::NAN; 9]), f32::NEG_INFINITY);
    }

    #[test]
    fn dot_is_close_to_the_exact_sum() {
        let (a, b) = (data(576, 5), data(576, 6));
        let exact: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
        assert!((f64::from(dot(&a, &b)) - exact).abs() < 1e-3 * exact.abs().max(1.0));
    }
}

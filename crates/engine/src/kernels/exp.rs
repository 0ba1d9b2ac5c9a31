//! Our own `exp` and the softmax-shaped loops built on it, bit-identical with and without AVX2 and on
//! every machine.
//!
//! The platform's `expf` is neither vectorized nor the same function everywhere (libm versions differ
//! in the last bit), yet a validator must recompute an executor's logprobs exactly. So `exp` is one
//! fixed sequence of IEEE operations: clamp to `[-87, 88]`, `n = round(x · log2 e)` (by adding and
//! subtracting 1.5 · 2²³), `r = x − n · ln 2` in two fused steps (Cody–Waite), the degree-6 Taylor
//! polynomial of `e^r` by Horner with fused multiply-adds, times `2^n` built from its bits. Relative
//! error is below 3·10⁻⁷ over the whole range; results below `e^-87` come out as `e^-87`, which no sum
//! here can notice. The AVX2 path performs exactly these operations on 8 lanes.
//!
//! Sums run in [`LANES`] lanes (element `i` into lane `i % 8`), reduced by a fixed tree, then the tail
//! in order, like `vector::dot`.

/// Lanes of the fixed-order accumulation.
const LANES: usize = 8;
const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// 1.5 · 2²³: adding it rounds to an integer, which then sits in the low mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;
/// ln 2 split so that `n · LN2_HI` is exact for |n| < 2⁸.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const EXP_ARG_MIN: f32 = -87.0;
const EXP_ARG_MAX: f32 = 88.0;
/// `1/k!` for k = 6 down to 2: Horner's order.
const TAYLOR: [f32; 5] = [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5];

/// `e^x` as described in the module docs. NaN gives `e^-87`.
pub fn exp(x: f32) -> f32 {
    // `max`/`min` written as the SIMD instructions behave: the second operand unless the comparison
    // holds, so NaN becomes the bound.
    let x = if x > EXP_ARG_MIN { x } else { EXP_ARG_MIN };
    let x = if x < EXP_ARG_MAX { x } else { EXP_ARG_MAX };
    let t = x.mul_add(LOG2_E, ROUND_MAGIC);
    let n = t - ROUND_MAGIC;
    let r = n.mul_add(-LN2_HI, x);
    let r = n.mul_add(-LN2_LO, r);
    let mut p = TAYLOR[0];
    for c in &TAYLOR[1..] {
        p = p.mul_add(r, *c);
    }
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    p * pow2(t)
}

/// `2^n` for the `n` that `t = n + 1.5 · 2²³` holds exactly (-126 ≤ n ≤ 127).
fn pow2(t: f32) -> f32 {
    let n = t.to_bits().wrapping_sub(ROUND_MAGIC.to_bits());
    f32::from_bits(n.wrapping_add(127) << 23)
}

/// `values[i] = exp(values[i] - shift)` for every `i`; returns the sum of the new values (lanes, tree,
/// tail). One softmax row: `shift` is its maximum.
pub fn exp_shifted_sum(values: &mut [f32], shift: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { x86::exp_shifted_sum(values, shift) };
    }
    exp_shifted_sum_scalar(values, shift)
}

fn exp_shifted_sum_scalar(values: &mut [f32], shift: f32) -> f32 {
    let chunks = values.len() / LANES;
    let mut acc = [0.0f32; LANES];
    for chunk in values[..chunks * LANES].chunks_exact_mut(LANES) {
        for (slot, v) in acc.iter_mut().zip(chunk) {
            *v = exp(*v - shift);
            *slot += *v;
        }
    }
    let mut sum = super::vector::reduce(acc);
    for v in &mut values[chunks * LANES..] {
        *v = exp(*v - shift);
        sum += *v;
    }
    sum
}

/// `Σ exp(values[i] - shift)`, each term widened to f64 and summed in lanes (a fixed tree, then the
/// tail): the normalizer of a vocabulary-wide softmax, where 49,152 f32 additions would lose digits.
pub fn sum_exp_shifted(values: &[f32], shift: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { x86::sum_exp_shifted(values, shift) };
    }
    sum_exp_shifted_scalar(values, shift)
}

fn sum_exp_shifted_scalar(values: &[f32], shift: f32) -> f64 {
    let chunks = values.len() / LANES;
    let mut acc = [0.0f64; LANES];
    for chunk in values[..chunks * LANES].chunks_exact(LANES) {
        for (slot, v) in acc.iter_mut().zip(chunk) {
            *slot += f64::from(exp(*v - shift));
        }
    }
    let mut sum = reduce_f64(acc);
    for v in &values[chunks * LANES..] {
        sum += f64::from(exp(*v - shift));
    }
    sum
}

/// Lanes 0–3 and 4–7 added pairwise, then the same tree as `vector::reduce`.
fn reduce_f64(acc: [f64; LANES]) -> f64 {
    let s = [acc[0] + acc[4], acc[1] + acc[5], acc[2] + acc[6], acc[3] + acc[7]];
    (s[0] + s[2]) + (s[1] + s[3])
}

/// `out[i] = gate[i] / (1 + exp(-gate[i])) * up[i]`: SwiGLU's `silu(gate) · up`.
///
/// # Panics
/// If the three slices differ in length.
pub fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
    assert!(gate.len() == up.len() && up.len() == out.len(), "silu_mul of unequal lengths");
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above); lengths are equal (asserted).
        unsafe { x86::silu_mul(gate, up, out) };
        return;
    }
    for ((o, g), u) in out.iter_mut().zip(gate).zip(up) {
        *o = silu_mul_one(*g, *u);
    }
}

fn silu_mul_one(g: f32, u: f32) -> f32 {
    g / (1.0 + exp(-g)) * u
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    // The intrinsics are the vocabulary of this module.
    use std::arch::x86_64::*;

    use super::{EXP_ARG_MAX, EXP_ARG_MIN, LANES, LN2_HI, LN2_LO, LOG2_E, ROUND_MAGIC, TAYLOR};

    /// `super::exp` on 8 lanes: the same operations in the same order.
    #[target_feature(enable = "avx2,fma")]
    fn exp8(x: __m256) -> __m256 {
        // `maxps`/`minps` return the second operand when the comparison fails (NaN included).
        let x = _mm256_max_ps(x, _mm256_set1_ps(EXP_ARG_MIN));
        let x = _mm256_min_ps(x, _mm256_set1_ps(EXP_ARG_MAX));
        let t = _mm256_fmadd_ps(x, _mm256_set1_ps(LOG2_E), _mm256_set1_ps(ROUND_MAGIC));
        let n = _mm256_sub_ps(t, _mm256_set1_ps(ROUND_MAGIC));
        let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_HI), x);
        let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_LO), r);
        let mut p = _mm256_set1_ps(TAYLOR[0]);
        for c in &TAYLOR[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(*c));
        }
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0));
        #[allow(clippy::cast_possible_wrap)]
        let magic = _mm256_set1_epi32(ROUND_MAGIC.to_bits() as i32);
        let n = _mm256_sub_epi32(_mm256_castps_si256(t), magic);
        let scale = _mm256_slli_epi32::<23>(_mm256_add_epi32(n, _mm256_set1_epi32(127)));
        _mm256_mul_ps(p, _mm256_castsi256_ps(scale))
    }

    #[target_feature(enable = "avx2,fma")]
    fn load(values: &[f32]) -> __m256 {
        assert!(values.len() >= LANES, "a vector load reads 8 floats");
        // SAFETY: the assert above keeps the unaligned 8-float load inside `values`.
        unsafe { _mm256_loadu_ps(values.as_ptr()) }
    }

    #[target_feature(enable = "avx2,fma")]
    fn store(values: &mut [f32], v: __m256) {
        assert!(values.len() >= LANES, "a vector store writes 8 floats");
        // SAFETY: the assert above keeps the unaligned 8-float store inside `values`.
        unsafe { _mm256_storeu_ps(values.as_mut_ptr(), v) };
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn exp_shifted_sum(values: &mut [f32], shift: f32) -> f32 {
        let chunks = values.len() / LANES;
        let shift8 = _mm256_set1_ps(shift);
        let mut acc = _mm256_setzero_ps();
        for chunk in values[..chunks * LANES].chunks_exact_mut(LANES) {
            let e = exp8(_mm256_sub_ps(load(chunk), shift8));
            store(chunk, e);
            acc = _mm256_add_ps(acc, e);
        }
        let mut lanes = [0.0f32; LANES];
        store(&mut lanes, acc);
        let mut sum = super::super::vector::reduce(lanes);
        for v in &mut values[chunks * LANES..] {
            *v = super::exp(*v - shift);
            sum += *v;
        }
        sum
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn sum_exp_shifted(values: &[f32], shift: f32) -> f64 {
        let chunks = values.len() / LANES;
        let shift8 = _mm256_set1_ps(shift);
        let (mut low, mut high) = (_mm256_setzero_pd(), _mm256_setzero_pd());
        for chunk in values[..chunks * LANES].chunks_exact(LANES) {
            let e = exp8(_mm256_sub_ps(load(chunk), shift8));
            low = _mm256_add_pd(low, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
            high = _mm256_add_pd(high, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(e)));
        }
        let mut lanes = [0.0f64; LANES];
        // SAFETY: `lanes` holds 8 f64; each unaligned store writes 4 of them.
        unsafe {
            _mm256_storeu_pd(lanes.as_mut_ptr(), low);
            _mm256_storeu_pd(lanes.as_mut_ptr().add(4), high);
        }
        let mut sum = super::reduce_f64(lanes);
        for v in &values[chunks * LANES..] {
            sum += f64::from(super::exp(*v - shift));
        }
        sum
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
        let chunks = gate.len() / LANES;
        let one = _mm256_set1_ps(1.0);
        let sign = _mm256_set1_ps(-0.0);
        let lanes = out[..chunks * LANES]
            .chunks_exact_mut(LANES)
            .zip(gate.chunks_exact(LANES))
            .zip(up.chunks_exact(LANES));
        for ((o, g), u) in lanes {
            let g = load(g);
            let e = exp8(_mm256_xor_ps(g, sign));
            store(o, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), load(u)));
        }
        for ((o, g), u) in out.iter_mut().zip(gate).zip(up).skip(chunks * LANES) {
            *o = super::silu_mul_one(*g, *u);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arguments across the whole range, the clamps, both sides of every rounding boundary of `n`, and
    /// special values.
    fn arguments() -> Vec<f32> {
        let mut xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.0471).collect();
        xs.extend((0..400).map(|i| (i as f32 - 200.0) * std::f32::consts::LN_2 / 2.0));
        xs.extend([
            0.0,
            -0.0,
            1e-30,
            -1e-30,
            -87.0,
            -87.5,
            -1e30,
            88.0,
            88.7,
            1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
        ]);
        xs
    }

    #[test]
    fn exp_is_within_three_tenths_of_a_millionth_of_the_true_value() {
        for x in arguments().into_iter().filter(|x| (-87.0..=88.0).contains(x)) {
            let exact = f64::from(x).exp();
            let relative = (f64::from(exp(x)) - exact).abs() / exact;
            assert!(relative < 3e-7, "exp({x}) = {} vs {exact}: relative error {relative:e}", exp(x));
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert_eq!(exp(f32::NAN), exp(-87.0));
        assert_eq!(exp(f32::INFINITY), exp(88.0));
        assert!(exp(88.0).is_finite());
    }

    #[test]
    fn simd_loops_equal_their_scalar_definitions_bit_for_bit() {
        let xs = arguments();
        let (gate, up) = xs.split_at(xs.len() / 2);
        let up = &up[..gate.len()];
        for len in [0, 1, 7, 8, 9, 100, gate.len()] {
            let mut simd = gate[..len].to_vec();
            let mut scalar = gate[..len].to_vec();
            let (a, b) = (exp_shifted_sum(&mut simd, 1.5), exp_shifted_sum_scalar(&mut scalar, 1.5));
            assert_eq!(a.to_bits(), b.to_bits(), "exp_shifted_sum sum, len {len}");
            assert!(simd.iter().zip(&scalar).all(|(a, b)| a.to_bits() == b.to_bits()), "values, len {len}");
            let (a, b) = (sum_exp_shifted(&gate[..len], 2.0), sum_exp_shifted_scalar(&gate[..len], 2.0));
            assert_eq!(a.to_bits(), b.to_bits(), "sum_exp_shifted, len {len}");
            let mut out = vec![0.0; len];
            silu_mul(&gate[..len], &up[..len], &mut out);
            for ((o, g), u) in out.iter().zip(gate).zip(up) {
                assert_eq!(o.to_bits(), silu_mul_one(*g, *u).to_bits(), "silu_mul({g}, {u})");
            }
        }
    }

    #[test]
    fn sum_exp_shifted_matches_the_exact_sum() {
        let values: Vec<f32> = (0..49_152).map(|i| ((i * 7919) % 1000) as f32 / 50.0 - 10.0).collect();
        let exact: f64 = values.iter().map(|v| (f64::from(*v) - 10.0).exp()).sum();
        let ours = sum_exp_shifted(&values, 10.0);
        assert!((ours - exact).abs() / exact < 1e-6, "{ours} vs {exact}");
    }
}

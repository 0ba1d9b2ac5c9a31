use super::*;
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::borrow::Cow;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// GGML Q8_0 bytes with realistic scales and quants over the whole i8 range (-128 included).
fn ggml_bytes(rng: &mut ChaCha8Rng, n: usize, k: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(n * k / BLOCK * GGML_BLOCK_BYTES);
    for _ in 0..n * k / BLOCK {
        let d = rng.random_range(0.0005f32..0.02);
        bytes.extend_from_slice(&f32_to_f16_bits(d).to_le_bytes());
        bytes.extend((0..BLOCK).map(|_| rng.random::<u8>()));
    }
    bytes
}

fn activations(rng: &mut ChaCha8Rng, m: usize, k: usize) -> Vec<f32> {
    (0..m * k)
        .map(|i| {
            let v = rng.random_range(-2.0f32..2.0);
            // Occasional outliers, as in real hidden states.
            if i % 97 == 0 { v * 40.0 } else { v }
        })
        .collect()
}

/// GGML Q4_1 bytes with realistic scales and minimums and every 4-bit quant.
fn ggml_q4_1_bytes(rng: &mut ChaCha8Rng, n: usize, k: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(n * k / BLOCK * GGML_Q4_1_BLOCK_BYTES);
    for _ in 0..n * k / BLOCK {
        let d = rng.random_range(0.001f32..0.02);
        let m = -8.0 * d + rng.random_range(-0.01f32..0.01);
        bytes.extend_from_slice(&f32_to_f16_bits(d).to_le_bytes());
        bytes.extend_from_slice(&f32_to_f16_bits(m).to_le_bytes());
        bytes.extend((0..BLOCK / 2).map(|_| rng.random::<u8>()));
    }
    bytes
}

fn matrix(seed: u64, n: usize, k: usize) -> QMatrix {
    QMatrix::from_ggml_q8_0(&ggml_bytes(&mut rng(seed), n, k), n, k).expect("valid Q8_0 bytes")
}

fn q4_1_matrix(seed: u64, n: usize, k: usize) -> QMatrix {
    QMatrix::from_ggml_q4_1(&ggml_q4_1_bytes(&mut rng(seed), n, k), n, k).expect("valid Q4_1 bytes")
}

/// The same shape in both formats the kernels take.
fn matrices(seed: u64, n: usize, k: usize) -> [QMatrix; 2] {
    [matrix(seed, n, k), q4_1_matrix(seed, n, k)]
}

/// `w · x` on `isa`.
fn product(w: &QMatrix, isa: Isa, x: &[f32], m: usize, pool: &Pool) -> Vec<f32> {
    let mut out = vec![f32::NAN; m * w.n()];
    w.matmul_with(isa, x, m, &mut out, pool);
    out
}

/// The kernels' arithmetic spelled out without any of their code: each input block quantized to 16
/// bits, then per output element and block in order the exact integer dot product, one FMA with the
/// scale product and, for Q4_1, one FMA of the minimum with the block's scaled quant sum.
fn explicit_product(w: &QMatrix, x: &[f32], m: usize) -> Vec<f32> {
    let k = w.k();
    let mut weight_rows: Vec<Vec<(f32, f32, [i32; BLOCK])>> = Vec::new();
    for j in 0..w.n() {
        weight_rows.push(
            (0..k / BLOCK)
                .map(|b| {
                    let (d, min, q) = w.block(j, b);
                    (d, min, std::array::from_fn(|e| i32::from(q.0[e])))
                })
                .collect(),
        );
    }
    let mut out = Vec::with_capacity(m * w.n());
    for row in x.chunks_exact(k) {
        let blocks: Vec<(f32, [i32; BLOCK])> = row
            .chunks_exact(BLOCK)
            .map(|values| {
                let amax = values.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                let d = amax / 32767.0;
                let id = if d == 0.0 { 0.0 } else { 1.0 / d };
                (d, std::array::from_fn(|e| ((values[e] * id).round() as i32).clamp(-32767, 32767)))
            })
            .collect();
        for weights in &weight_rows {
            let mut acc = 0.0f32;
            for ((dw, min, qw), (dx, qx)) in weights.iter().zip(&blocks) {
                let dot: i32 = qw.iter().zip(qx).map(|(a, b)| a * b).sum();
                acc = (dot as f32).mul_add(dw * dx, acc);
                if w.has_minimums() {
                    let sum: i32 = qx.iter().sum();
                    acc = min.mul_add(dx * sum as f32, acc);
                }
            }
            out.push(acc);
        }
    }
    out
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn isas() -> Vec<Isa> {
    Isa::available()
}

#[test]
fn rejects_row_length_that_is_not_a_block_multiple() {
    assert_eq!(
        QMatrix::from_ggml_q8_0(&[0; 34], 1, 48),
        Err(KernelError::RowLengthNotBlockMultiple { k: 48 })
    );
}

#[test]
fn rejects_byte_buffer_of_the_wrong_length() {
    assert_eq!(
        QMatrix::from_ggml_q8_0(&[0; 67], 2, 32),
        Err(KernelError::ByteLengthMismatch { format: "Q8_0", n: 2, k: 32, expected: 68, actual: 67 })
    );
    assert_eq!(
        QMatrix::from_ggml_q4_1(&[0; 41], 2, 32),
        Err(KernelError::ByteLengthMismatch { format: "Q4_1", n: 2, k: 32, expected: 40, actual: 41 })
    );
}

#[test]
fn stack_rejects_mismatched_row_lengths_and_nothing() {
    assert_eq!(
        QMatrix::stack(&[matrix(1, 2, 32), matrix(2, 2, 64)]),
        Err(KernelError::StackRowLengthMismatch { expected: 32, found: 64 })
    );
    assert_eq!(QMatrix::stack(&[]), Err(KernelError::EmptyStack));
    assert_eq!(
        QMatrix::stack(&[matrix(1, 2, 32), q4_1_matrix(2, 2, 32)]),
        Err(KernelError::StackMixedMinimums)
    );
}

#[test]
fn f16_conversion_matches_known_values() {
    let exact: [(f32, u16); 7] = [
        (0.0, 0x0000),
        (-0.0, 0x8000),
        (1.0, 0x3C00),
        (-2.5, 0xC100),
        (65504.0, 0x7BFF),
        (2.0f32.powi(-24), 0x0001), // smallest subnormal
        (f32::INFINITY, 0x7C00),
    ];
    for (value, half) in exact {
        assert_eq!(f32_to_f16_bits(value), half, "{value}");
        assert_eq!(f16_bits_to_f32(half), value, "{half:#06x}");
    }
    let rounded: [(f32, u16); 4] = [
        (65520.0, 0x7C00),                // halfway to the next binade rounds to even: infinity
        (2.0f32.powi(-25), 0x0000),       // halfway to zero rounds to even: zero
        (1.5 * 2.0f32.powi(-25), 0x0001), // above halfway rounds up
        (1.0 + 2.0f32.powi(-11), 0x3C00), // halfway between 1 and the next f16 rounds to even
    ];
    for (value, half) in rounded {
        assert_eq!(f32_to_f16_bits(value), half, "{value}");
    }
    assert!(f16_bits_to_f32(f32_to_f16_bits(f32::NAN)).is_nan());
}

#[cfg(target_arch = "x86_64")]
#[test]
fn f16_conversion_matches_f16c_hardware() {
    use std::arch::x86_64::{
        __m128i, _mm_cvtph_ps, _mm_cvtps_ph, _mm_cvtsi32_si128, _mm_cvtss_f32, _mm_set_ss,
    };
    if !is_x86_feature_detected!("f16c") {
        return;
    }
    #[target_feature(enable = "f16c")]
    fn to_f32(h: u16) -> f32 {
        let v: __m128i = _mm_cvtsi32_si128(i32::from(h));
        _mm_cvtss_f32(_mm_cvtph_ps(v))
    }
    #[target_feature(enable = "f16c")]
    fn to_f16(x: f32) -> u16 {
        let v = _mm_cvtps_ph::<0>(_mm_set_ss(x));
        (std::arch::x86_64::_mm_cvtsi128_si32(v) & 0xFFFF) as u16
    }
    for h in 0..=u16::MAX {
        // SAFETY: F16C was detected above.
        let hardware = unsafe { to_f32(h) };
        let ours = f16_bits_to_f32(h);
        assert!(hardware.to_bits() == ours.to_bits() || (hardware.is_nan() && ours.is_nan()), "{h:#06x}");
    }
    let mut rng = rng(7);
    // Every f32 around each f16 rounding boundary, and random bit patterns.
    let near_boundaries = (0..=u16::MAX).flat_map(|h| {
        let mid = (f16_bits_to_f32(h).to_bits() & !0x1FFF) | 0x1000;
        [mid.wrapping_sub(1), mid, mid.wrapping_add(1), mid | 0x8000_0000]
    });
    let random = (0..2_000_000).map(|_| rng.random::<u32>());
    for x in near_boundaries.chain(random).map(f32::from_bits).filter(|x| !x.is_nan()) {
        // SAFETY: F16C was detected above.
        let hardware = unsafe { to_f16(x) };
        assert_eq!(f32_to_f16_bits(x), hardware, "{x:e} ({:#010x})", x.to_bits());
    }
    for h in (0..=u16::MAX).map(f16_bits_to_f32).filter(|x| x.is_finite()) {
        // Subnormal boundaries of f16 map onto normal f32, covered by the halfway sweep above; this
        // also checks that every f16 value converts back to itself.
        // SAFETY: F16C was detected above.
        assert_eq!(f32_to_f16_bits(h), unsafe { to_f16(h) });
    }
}

/// Every row of `ours` dequantizes to exactly what candle makes of `bytes` in `dtype`.
fn assert_rows_dequantize_as_candle_does(ours: &QMatrix, bytes: &[u8], dtype: GgmlDType) {
    let (n, k) = (ours.n(), ours.k());
    let storage = QStorage::from_data(Cow::Borrowed(bytes), &Device::Cpu, dtype).expect("storage");
    let theirs = QTensor::new(storage, (n, k)).expect("tensor").dequantize(&Device::Cpu).expect("dequantize");
    let theirs = theirs.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("values");
    let mut row = vec![0.0; k];
    for j in 0..n {
        ours.dequantize_row(j, &mut row);
        assert_eq!(bits(&row), bits(&theirs[j * k..][..k]), "{dtype:?} row {j}");
    }
}

#[test]
fn dequantized_rows_match_candle() {
    let (n, k) = (5, 96);
    let bytes = ggml_bytes(&mut rng(3), n, k);
    let ours = QMatrix::from_ggml_q8_0(&bytes, n, k).expect("valid");
    assert_rows_dequantize_as_candle_does(&ours, &bytes, GgmlDType::Q8_0);
}

#[test]
fn q4_1_rows_dequantize_exactly_as_candle_does() {
    let (n, k) = (5, 96);
    let bytes = ggml_q4_1_bytes(&mut rng(3), n, k);
    let ours = QMatrix::from_ggml_q4_1(&bytes, n, k).expect("valid");
    assert_rows_dequantize_as_candle_does(&ours, &bytes, GgmlDType::Q4_1);
    // Stored losslessly: every quant of the file comes back, and the format's range is 0..=15.
    let (_, _, q) = ours.block(0, 0);
    assert_eq!(q.0[0], (bytes[4] & 0x0F) as i8);
    assert_eq!(q.0[16], (bytes[4] >> 4) as i8);
    assert!((0..n).all(|j| (0..k / BLOCK).all(|b| ours.block(j, b).2.0.iter().all(|q| (0..16).contains(q)))));
}

#[test]
fn activations_are_quantized_to_16_bits_per_block() {
    let (m, k) = (6, 256);
    let mut x = activations(&mut rng(4), m, k);
    x[40..72].fill(0.0); // an all-zero block has d = 0
    x[100] = 1e-3;
    x[130] = 25_000.0; // a massive activation beside ordinary values
    for isa in isas() {
        let rows = QuantRows::quantize(isa, &x, m, k, &Pool::new(1));
        for (i, values) in x.chunks_exact(BLOCK).enumerate() {
            let amax = values.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            assert_eq!(rows.d[i], amax / 32767.0, "{isa:?} d of {i}");
            let sum: i32 = rows.qs[i].0.iter().map(|&q| i32::from(q)).sum();
            assert_eq!(rows.s[i], rows.d[i] * sum as f32, "{isa:?} s of {i}");
            for (v, q) in values.iter().zip(rows.qs[i].0) {
                // Within half a step (plus the rounding of the reciprocal).
                assert!((f32::from(q) * rows.d[i] - v).abs() <= rows.d[i] * 0.51, "{isa:?} {v} -> {q}");
            }
        }
        // Beside 25,000, values of ~2 keep ~3.5 significant digits instead of vanishing (8-bit blocks
        // had a step of ~197).
        assert!(rows.d[4] < 0.77, "{isa:?}");
    }
}

#[test]
fn simd_quantization_matches_scalar_bit_for_bit_including_special_values() {
    let mut rng = rng(5);
    let k = BLOCK * 64;
    let mut x = activations(&mut rng, 1, k);
    // Exact halves after scaling (amax 32767 gives id = 1), infinities, NaN, subnormals, huge values.
    x[..BLOCK].copy_from_slice(&std::array::from_fn::<f32, BLOCK, _>(|i| {
        i as f32 - 15.5 + f32::from(i == 0) * 32782.5
    }));
    x[BLOCK] = f32::INFINITY;
    x[2 * BLOCK + 3] = f32::NAN;
    x[3 * BLOCK..4 * BLOCK].fill(1e-40);
    x[3 * BLOCK + 1] = -3e-39;
    x[4 * BLOCK + 2] = f32::NEG_INFINITY;
    x[5 * BLOCK..6 * BLOCK].fill(-f32::MAX);
    x[6 * BLOCK] = 1e9;
    x[7 * BLOCK..8 * BLOCK].fill(-0.0);
    for (i, v) in x[8 * BLOCK..].iter_mut().enumerate() {
        if i % 7 == 0 {
            *v = f32::from_bits(rng.random::<u32>());
        }
    }
    let scalar = QuantRows::quantize(Isa::Scalar, &x, 1, k, &Pool::new(1));
    for isa in isas() {
        let other = QuantRows::quantize(isa, &x, 1, k, &Pool::new(1));
        assert_eq!(other.qs, scalar.qs, "{isa:?}");
        assert_eq!(bits(&other.d), bits(&scalar.d), "{isa:?}");
        assert_eq!(bits(&other.s), bits(&scalar.s), "{isa:?}");
    }
    assert!(scalar.qs.iter().flat_map(|b| b.0).all(|q| q >= -32767), "quants stay in ±32767");
}

#[test]
fn simd_matmul_matches_scalar_bit_for_bit() {
    let pool = Pool::new(2);
    for (n, k, m) in [(1, 32, 1), (13, 64, 3), (40, 576, 9), (257, 1536, 17), (96, 64 * 70, 2)] {
        let x = activations(&mut rng(k as u64), m, k);
        for w in matrices(n as u64, n, k) {
            let explicit = explicit_product(&w, &x, m);
            for isa in isas() {
                let ours = product(&w, isa, &x, m, &pool);
                assert_eq!(
                    bits(&ours),
                    bits(&explicit),
                    "{isa:?} n {n} k {k} m {m} q4_1 {}",
                    w.has_minimums()
                );
            }
        }
    }
}

#[test]
fn output_row_does_not_depend_on_batch_or_threads() {
    let (n, k) = (203, 576);
    let pools = [Pool::new(1), Pool::new(2), Pool::new(3)];
    let batch = activations(&mut rng(12), 64, k);
    for (w, isa) in matrices(11, n, k).iter().flat_map(|w| isas().into_iter().map(move |isa| (w, isa))) {
        for r in [0, 5, 6, 63] {
            let alone = product(w, isa, &batch[r * k..][..k], 1, &pools[0]);
            for pool in &pools {
                assert_eq!(bits(&product(w, isa, &batch[r * k..][..k], 1, pool)), bits(&alone));
                let all = product(w, isa, &batch, 64, pool);
                assert_eq!(bits(&all[r * n..][..n]), bits(&alone), "{isa:?} row {r} of 64");
                if r < 7 {
                    let seven = product(w, isa, &batch[..7 * k], 7, pool);
                    assert_eq!(bits(&seven[r * n..][..n]), bits(&alone), "{isa:?} row {r} of 7");
                }
            }
            // The same row among different neighbours, at a different position.
            let mut shuffled = activations(&mut rng(13 + r as u64), 9, k);
            shuffled[4 * k..5 * k].copy_from_slice(&batch[r * k..][..k]);
            let among = product(w, isa, &shuffled, 9, &pools[1]);
            assert_eq!(bits(&among[4 * n..][..n]), bits(&alone), "{isa:?} row {r} among others");
        }
    }
}

#[test]
fn matches_the_f64_product_of_candle_dequantized_weights_and_the_exact_input() {
    let pool = Pool::new(2);
    for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_1] {
        for (n, k, m) in [(64, 576, 1), (96, 1536, 8), (130, 576, 33)] {
            let mut rng = rng(21 + n as u64);
            let dense: Vec<f32> = (0..n * k).map(|_| rng.random_range(-0.1f32..0.1)).collect();
            let dense = Tensor::from_slice(&dense, (n, k), &Device::Cpu).expect("tensor");
            let qtensor = QTensor::quantize(&dense, dtype).expect("quantize");
            let bytes = qtensor.data().expect("bytes").into_owned();
            let ours = match dtype {
                GgmlDType::Q8_0 => QMatrix::from_ggml_q8_0(&bytes, n, k),
                _ => QMatrix::from_ggml_q4_1(&bytes, n, k),
            };
            let ours = ours.expect("valid");
            let x = activations(&mut rng, m, k);
            // The weights as candle dequantizes them; the input as it is (16-bit input blocks are
            // accurate to ~1e-5 of their largest value).
            let weights = qtensor.dequantize(&Device::Cpu).expect("dequantize");
            let weights = weights.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("values");
            let theirs: Vec<f32> = x
                .chunks_exact(k)
                .flat_map(|row| {
                    weights.chunks_exact(k).map(move |w| {
                        row.iter().zip(w).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>() as f32
                    })
                })
                .collect();
            // Quantizing an input block moves each value by at most half its step `amax / 32767`, so an
            // output may differ by at most Σ |w| · step / 2 over the blocks (plus float rounding).
            let bounds: Vec<f64> = x
                .chunks_exact(k)
                .flat_map(|row| {
                    weights.chunks_exact(k).map(move |w| {
                        let quantization: f64 = row
                            .chunks_exact(BLOCK)
                            .zip(w.chunks_exact(BLOCK))
                            .map(|(x, w)| {
                                let step = f64::from(x.iter().fold(0.0f32, |a, v| a.max(v.abs()))) / 32767.0;
                                w.iter().map(|w| f64::from(w.abs())).sum::<f64>() * step / 2.0
                            })
                            .sum();
                        let magnitude: f64 = row.iter().zip(w).map(|(a, b)| f64::from((a * b).abs())).sum();
                        quantization * 1.01 + magnitude * 1e-6
                    })
                })
                .collect();
            for isa in isas() {
                let ours = product(&ours, isa, &x, m, &pool);
                let worst = ours
                    .iter()
                    .zip(&theirs)
                    .zip(&bounds)
                    .map(|((a, b), bound)| f64::from((a - b).abs()) / bound)
                    .fold(0.0, f64::max);
                println!("{dtype:?} {isa:?} n {n} k {k} m {m}: worst difference {worst:.3} of its bound");
                assert!(worst <= 1.0, "{dtype:?} {isa:?} n {n} k {k} m {m}: {worst} of the bound");
            }
        }
    }
}

#[test]
fn stacked_matrix_computes_each_part_unchanged() {
    let k = 128;
    let parts = [matrix(31, 24, k), matrix(32, 5, k), matrix(33, 40, k)];
    let stacked = QMatrix::stack(&parts).expect("same k");
    assert_eq!((stacked.n(), stacked.k()), (69, k));
    let m = 3;
    let x = activations(&mut rng(34), m, k);
    let pool = Pool::new(2);
    let whole = product(&stacked, Isa::detect(), &x, m, &pool);
    let mut offset = 0;
    for part in &parts {
        let alone = product(part, Isa::detect(), &x, m, &pool);
        for r in 0..m {
            assert_eq!(bits(&whole[r * 69 + offset..][..part.n()]), bits(&alone[r * part.n()..][..part.n()]));
        }
        offset += part.n();
    }
}

#[test]
fn empty_batches_and_single_columns_work() {
    let pool = Pool::new(2);
    let w = matrix(41, 1, 32);
    let mut out: Vec<f32> = Vec::new();
    w.matmul(&[], 0, &mut out, &pool);
    let x = activations(&mut rng(42), 2, 32);
    let mut out = vec![0.0; 2];
    w.matmul(&x, 2, &mut out, &pool);
    let mut row = vec![0.0; 32];
    w.dequantize_row(0, &mut row);
    for r in 0..2 {
        let x = &x[r * 32..][..32];
        let dense: f32 = row.iter().zip(x).map(|(a, b)| a * b).sum();
        // Quantizing x moves each value by at most half a step of amax / 32767.
        let step = x.iter().fold(0.0f32, |a, v| a.max(v.abs())) / 32767.0;
        let bound = row.iter().map(|w| w.abs()).sum::<f32>() * step * 0.51 + 1e-5;
        assert!((out[r] - dense).abs() <= bound, "{} vs {dense} (bound {bound})", out[r]);
    }
}

#[test]
fn group_chunks_cover_every_group_once_in_order() {
    for groups in [1, 2, 7, 72, 120, 6144] {
        for threads in [1, 2, 3, 16] {
            let chunks = GroupChunks::new(groups, threads);
            let covered: Vec<usize> = (0..chunks.count).flat_map(|c| chunks.get(c)).collect();
            assert_eq!(covered, (0..groups).collect::<Vec<_>>(), "groups {groups} threads {threads}");
            assert!(chunks.count <= threads.max(1) * CHUNKS_PER_THREAD);
        }
    }
}

#[test]
fn repeated_calls_with_shrinking_and_growing_batches_reuse_scratch_correctly() {
    let (n, k) = (48, 96);
    let w = matrix(51, n, k);
    let pool = Pool::new(2);
    let batch = activations(&mut rng(52), 20, k);
    let alone: Vec<Vec<f32>> =
        (0..20).map(|r| product(&w, Isa::detect(), &batch[r * k..][..k], 1, &pool)).collect();
    for m in [20, 3, 17, 1, 9, 20] {
        let all = product(&w, Isa::detect(), &batch[..m * k], m, &pool);
        for (r, alone) in alone.iter().enumerate().take(m) {
            assert_eq!(bits(&all[r * n..][..n]), bits(alone), "row {r} of {m}");
        }
    }
}

#[test]
fn pool_and_matrix_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Pool>();
    shared::<QMatrix>();
}

#[test]
fn quantizing_row_tiles_in_parallel_gives_the_same_rows() {
    let (m, k) = (PARALLEL_QUANTIZE_ROWS_MIN + 9, 160);
    let x = activations(&mut rng(61), m, k);
    for isa in isas() {
        let serial = QuantRows::quantize(isa, &x, m, k, &Pool::new(1));
        let parallel = QuantRows::quantize(isa, &x, m, k, &Pool::new(2));
        assert_eq!(serial.qs, parallel.qs);
        assert_eq!(bits(&serial.d), bits(&parallel.d));
        assert_eq!(serial.pairs, parallel.pairs);
        assert_eq!(bits(&serial.s), bits(&parallel.s));
    }
}

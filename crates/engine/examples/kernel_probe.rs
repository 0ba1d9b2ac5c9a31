//! Scratch timing probe (not a benchmark): GMAC/s of `kernels::QMatrix::matmul` next to candle's
//! `QMatMul` on the same Q8_0 bytes, for the SmolLM2-135M shapes.
//!
//! Weights rotate through enough copies to exceed the L3 cache, as in a real forward pass (the model
//! is ~140 MB). Candle reads `CANDLE_NUM_THREADS` once, so each candle thread count runs in a child
//! process (`kernel_probe candle T`), which prints `n k m threads seconds` lines for the parent.
//!
//! Modes: no argument (table, ours next to candle), `ours` (table without candle), `hot` (weights
//! in L2), `one N K M`, `pool` (cost of `Pool::run`), `peak` (the CPU's own int8 ceiling).
//! `PROBE_MIN=1` reports minima instead of medians.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::cast_precision_loss)]

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{Device, Module, Tensor};
use gonka_engine::kernels::{GGML_BLOCK_BYTES, Pool, QMatrix};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const SHAPES: [(usize, usize); 5] = [(960, 576), (576, 576), (3072, 576), (576, 1536), (49152, 576)];
const BATCHES: [usize; 3] = [1, 8, 64];
const THREADS: [usize; 2] = [1, 2];
/// Bytes of weight copies cycled through, well above the 32 MB L3.
const ROTATION_BYTES: usize = 96 << 20;
const TIME_BUDGET: Duration = Duration::from_millis(400);

/// xorshift64*: deterministic bytes without a dependency.
struct Bytes(u64);
impl Bytes {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn ggml_bytes(n: usize, k: usize, seed: u64) -> Vec<u8> {
    let mut rng = Bytes(seed | 1);
    let mut out = Vec::with_capacity(n * k / 32 * GGML_BLOCK_BYTES);
    for _ in 0..n * k / 32 {
        // f16 scales between ~0.001 and ~0.016.
        let d: u16 = 0x1400 + (rng.next() % 0x0C00) as u16;
        out.extend_from_slice(&d.to_le_bytes());
        out.extend((0..32).map(|_| (rng.next() >> 32) as u8));
    }
    out
}

fn activations(m: usize, k: usize) -> Vec<f32> {
    let mut rng = Bytes(99);
    (0..m * k).map(|_| (rng.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0).collect()
}

fn copies(n: usize, k: usize) -> usize {
    (ROTATION_BYTES / (n * k / 32 * GGML_BLOCK_BYTES)).clamp(2, 1024)
}

/// Seconds per call of `f(copy)`, cycling copies: the median, or with `PROBE_MIN=1` the minimum (a
/// better estimate of uncontended speed when other processes share the cores).
fn time(copies: usize, mut f: impl FnMut(usize)) -> f64 {
    for c in 0..copies {
        f(c);
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    let mut c = 0;
    while samples.len() < 5 || (start.elapsed() < TIME_BUDGET && samples.len() < 2000) {
        let t = Instant::now();
        f(c % copies);
        samples.push(t.elapsed().as_secs_f64());
        c += 1;
    }
    samples.sort_by(f64::total_cmp);
    if std::env::var_os("PROBE_MIN").is_some() { samples[0] } else { samples[samples.len() / 2] }
}

fn ours() -> BTreeMap<(usize, usize, usize, usize), f64> {
    let mut results = BTreeMap::new();
    for threads in THREADS {
        let pool = Pool::new(threads);
        for (n, k) in SHAPES {
            let mats: Vec<QMatrix> = (0..copies(n, k))
                .map(|c| QMatrix::from_ggml_q8_0(&ggml_bytes(n, k, c as u64 + 1), n, k).unwrap())
                .collect();
            for m in BATCHES {
                let x = activations(m, k);
                let mut out = vec![0.0; m * n];
                let t = time(mats.len(), |c| mats[c].matmul(&x, m, &mut out, &pool));
                results.insert((n, k, m, threads), t);
            }
        }
    }
    results
}

fn candle(threads: usize) {
    for (n, k) in SHAPES {
        let mats: Vec<QMatMul> = (0..copies(n, k))
            .map(|c| {
                let bytes = ggml_bytes(n, k, c as u64 + 1);
                let storage = QStorage::from_data(Cow::Owned(bytes), &Device::Cpu, GgmlDType::Q8_0).unwrap();
                QMatMul::from_qtensor(QTensor::new(storage, (n, k)).unwrap()).unwrap()
            })
            .collect();
        for m in BATCHES {
            let x = Tensor::from_slice(&activations(m, k), (m, k), &Device::Cpu).unwrap();
            let t = time(mats.len(), |c| {
                let y = mats[c].forward(&x).unwrap();
                std::hint::black_box(y);
            });
            println!("{n} {k} {m} {threads} {t}");
        }
    }
}

fn candle_children() -> BTreeMap<(usize, usize, usize, usize), f64> {
    let exe = std::env::current_exe().unwrap();
    let mut results = BTreeMap::new();
    for threads in THREADS {
        let output = std::process::Command::new(&exe)
            .arg("candle")
            .arg(threads.to_string())
            .env("CANDLE_NUM_THREADS", threads.to_string())
            .env("RAYON_NUM_THREADS", threads.to_string())
            .output()
            .unwrap();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let [n, k, m, t, s] = f[..] {
                results.insert(
                    (n.parse().unwrap(), k.parse().unwrap(), m.parse().unwrap(), t.parse().unwrap()),
                    s.parse().unwrap(),
                );
            }
        }
    }
    results
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    let number = |i: usize| arg(i).and_then(|a| a.parse().ok()).expect("a number argument");
    match arg(1) {
        Some("candle") => return candle(number(2)),
        Some("hot") => return hot(),
        Some("pool") => return pool(),
        Some("one") => return one(number(2), number(3), number(4)),
        Some("peak") => return peak(),
        _ => {}
    }
    let skip_candle = arg(1) == Some("ours");
    let ours = ours();
    let theirs = if skip_candle { BTreeMap::new() } else { candle_children() };
    println!("| n x k | m | thr | ours ms | ours GMAC/s | candle ms | candle GMAC/s | speedup |");
    println!("|---|---|---|---|---|---|---|---|");
    for (n, k) in SHAPES {
        for m in BATCHES {
            for threads in THREADS {
                let key = (n, k, m, threads);
                let macs = (n * k * m) as f64;
                let t = ours[&key];
                let (ct, cg, speedup) = match theirs.get(&key) {
                    Some(&c) => (
                        format!("{:.3}", c * 1e3),
                        format!("{:.1}", macs / c / 1e9),
                        format!("{:.1}x", c / t),
                    ),
                    None => ("-".into(), "-".into(), "-".into()),
                };
                println!(
                    "| {n}x{k} | {m} | {threads} | {:.3} | {:.1} | {ct} | {cg} | {speedup} |",
                    t * 1e3,
                    macs / t / 1e9
                );
            }
        }
    }
}

/// Peak kernel speed with the weights in L2: `kernel_probe hot`.
fn hot() {
    let pool = Pool::new(1);
    for (n, k) in [(64, 576), (256, 576), (128, 1536)] {
        let w = QMatrix::from_ggml_q8_0(&ggml_bytes(n, k, 5), n, k).unwrap();
        for m in [1, 4, 8, 16, 64] {
            let x = activations(m, k);
            let mut out = vec![0.0; m * n];
            let t = time(1, |_| w.matmul(&x, m, &mut out, &pool));
            println!("hot {n}x{k} m {m}: {:.1} GMAC/s", (n * k * m) as f64 / t / 1e9);
        }
    }
}

/// One shape, both thread counts: `kernel_probe one N K M`.
fn one(n: usize, k: usize, m: usize) {
    let mats: Vec<QMatrix> = (0..copies(n, k))
        .map(|c| QMatrix::from_ggml_q8_0(&ggml_bytes(n, k, c as u64 + 1), n, k).unwrap())
        .collect();
    let x = activations(m, k);
    let mut out = vec![0.0; m * n];
    for threads in [1, 2, 1, 2] {
        let pool = Pool::new(threads);
        let t = time(mats.len(), |c| mats[c].matmul(&x, m, &mut out, &pool));
        println!(
            "{n}x{k} m {m} threads {threads}: {:.3} ms {:.1} GMAC/s",
            t * 1e3,
            (n * k * m) as f64 / t / 1e9
        );
    }
}

/// Cost of one `Pool::run` of 8 empty tasks, back to back and after the workers parked:
/// `kernel_probe pool`.
fn pool() {
    for threads in [1, 2] {
        let pool = Pool::new(threads);
        let t = time(1, |_| {
            for _ in 0..1000 {
                pool.run(8, |i| {
                    std::hint::black_box(i);
                });
            }
        });
        println!("threads {threads}: back-to-back run {:.2} us", t * 1e3);
        let mut worst = 0.0f64;
        let mut total = 0.0;
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(2));
            let start = Instant::now();
            pool.run(8, |i| {
                std::hint::black_box(i);
            });
            let e = start.elapsed().as_secs_f64();
            worst = worst.max(e);
            total += e;
        }
        println!(
            "threads {threads}: run after parking {:.2} us mean, {:.2} us worst",
            total / 50.0 * 1e6,
            worst * 1e6
        );
    }
}

/// The CPU's int8 ceiling, with no memory traffic at all: `kernel_probe peak`. Twelve independent
/// `vpdpbusd` chains on 512-bit registers (64 multiply-adds each), alone ("raw") and with the float
/// steps every Q8_0 block adds per 8 of them (convert, scale product, FMA: "q8_0"), on 1 and 2 threads.
fn peak() {
    if !(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni")) {
        println!("peak: this CPU has no AVX-512 VNNI");
        return;
    }
    for (name, blocks) in [("raw", false), ("q8_0", true)] {
        for threads in [1usize, 2] {
            const ROUNDS: u64 = 20_000_000;
            let start = Instant::now();
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    std::thread::spawn(move || {
                        // SAFETY: the features were checked above.
                        #[allow(unsafe_code)]
                        unsafe {
                            peak_chains(ROUNDS, blocks)
                        }
                    })
                })
                .collect();
            let sink: f32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            let seconds = start.elapsed().as_secs_f64();
            std::hint::black_box(sink);
            let macs = (ROUNDS * 12 * 8 * 64 * threads as u64) as f64;
            println!("peak {name} threads {threads}: {:.1} GMAC/s", macs / seconds / 1e9);
        }
    }
}

/// `rounds` times: 8 `vpdpbusd` on each of 12 chains; with `blocks`, then each chain's convert,
/// scale product and FMA into a float accumulator, as a Q8_0 block ends, and the next block's sum
/// starts from its offset.
#[target_feature(enable = "avx512f,avx512vnni")]
fn peak_chains(rounds: u64, blocks: bool) -> f32 {
    use std::arch::x86_64::*;
    let w = _mm512_set1_epi32(0x0102_0304);
    let x = _mm512_set1_epi32(std::hint::black_box(0x0001_0001));
    // Sixteen different weight scales, as a real block has, so the scale product stays a vector one.
    let dw = _mm512_setr_ps(
        1e-9, 2e-9, 3e-9, 4e-9, 5e-9, 6e-9, 7e-9, 8e-9, 9e-9, 1e-8, 2e-8, 3e-8, 4e-8, 5e-8, 6e-8, 7e-8,
    );
    let scales = [1.0f32; 12];
    let offsets = [-128i32; 12];
    let mut sums = [_mm512_setzero_si512(); 12];
    let mut acc = [_mm512_setzero_ps(); 12];
    for _ in 0..rounds {
        for _ in 0..8 {
            for s in &mut sums {
                *s = _mm512_dpbusd_epi32(*s, w, x);
            }
        }
        if blocks {
            // Opaque each round, so the input scales are read from memory as the kernel reads them.
            let (scales, offsets) = std::hint::black_box((&scales, &offsets));
            for (((a, s), &dx), &offset) in acc.iter_mut().zip(&mut sums).zip(scales).zip(offsets) {
                let scale = _mm512_mul_ps(dw, _mm512_set1_ps(dx));
                *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(*s), scale, *a);
                *s = _mm512_set1_epi32(offset);
            }
        }
    }
    let total = acc.iter().fold(_mm512_setzero_ps(), |t, a| _mm512_add_ps(t, *a));
    let total = sums.iter().fold(total, |t, s| _mm512_add_ps(t, _mm512_cvtepi32_ps(*s)));
    _mm512_reduce_add_ps(total)
}

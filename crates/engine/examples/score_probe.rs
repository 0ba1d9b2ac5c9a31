//! Scratch timing probe (not a benchmark): time of `score::score` per completion token on the installed
//! model, for perf. Usage: `score_probe MODEL.gguf [ROUNDS]`.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::cast_precision_loss)]

use gonka_engine::model::Llama;
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("model path");
    let rounds: usize = std::env::args().nth(2).map_or(10, |r| r.parse().unwrap());
    let model = Llama::load(std::path::Path::new(&path), 2).unwrap();
    let mut seed = 0x9e37_79b9_u64;
    let mut token = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 49_000) as u32
    };
    let prompt: Vec<u32> = (0..37).map(|_| token()).collect();
    let completion: Vec<u32> = (0..64).map(|_| token()).collect();
    gonka_engine::score::score(&model, &prompt, &completion, 5, None, None).unwrap();
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            gonka_engine::score::score(&model, &prompt, &completion, 5, None, None).unwrap();
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let (min, median) = (times[0], times[rounds / 2]);
    println!(
        "completion tok/s: best {:.1}, median {:.1} ({:.1} / {:.1} ms per answer)",
        64.0 / min,
        64.0 / median,
        min * 1e3,
        median * 1e3
    );
}

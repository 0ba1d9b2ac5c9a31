//! `gonka bench poc`: nonces per second of the PoC kernel for the devnet model and a scaled-down
//! mainnet-shaped model, against the machine's dense f32 matmul rate for the same shapes measured in
//! the same run; 1 → 2 worker scaling; and the cost of validating a sampled nonce.

use std::time::Instant;

use candle_core::{Device, Tensor};
use gonka_engine::poc::{PocModel, distances_parallel};
use gonka_poc::ModelSpec;
use gonka_primitives::{AccountKey, Hash};
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct PocArgs {
    /// Seconds each sprint measurement runs.
    #[arg(long, default_value_t = 6.0)]
    seconds: f64,
    /// Nonces per forward pass for the devnet model (a quarter of it for the mainnet-shaped one).
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The mainnet model's shape scaled down to run on a CPU: width, FFN, sequence and heads divided by
/// 4 (head size 28, FFN/width 27.4 and the 8196 outputs kept), 2 layers instead of 64.
pub fn mainnet_shaped() -> ModelSpec {
    let mainnet = ModelSpec::mainnet();
    ModelSpec {
        dim: mainnet.dim / 4,
        n_layers: 2,
        n_heads: mainnet.n_heads / 4,
        ffn_hidden: mainnet.ffn_hidden / 4,
        seq_len: mainnet.seq_len / 4,
        ..mainnet
    }
}

/// Nonces per second of `workers` sprint workers (each a one-thread pool over its own share, as in
/// [`gonka_engine::poc::Sprint`]) over about `seconds`, timed over whole batches after a warm-up.
fn sprint_rate(model: &PocModel, workers: usize, batch_size: usize, seconds: f64) -> anyhow::Result<f64> {
    let miner = AccountKey::from_seed(b"bench-poc").public_key();
    let warmup: Vec<u64> = (0..(workers * batch_size) as u64).collect();
    let started = Instant::now();
    distances_parallel(model, &miner.0, &warmup, workers, batch_size)?;
    let per_round = started.elapsed().as_secs_f64().max(1e-6);
    let rounds = ((seconds / per_round).ceil() as usize).max(2);
    let nonces: Vec<u64> = (0..(rounds * workers * batch_size) as u64).map(|n| n + 1_000_000).collect();
    let started = Instant::now();
    distances_parallel(model, &miner.0, &nonces, workers, batch_size)?;
    Ok(nonces.len() as f64 / started.elapsed().as_secs_f64())
}

/// FLOP/s of `[rows, k] × [k, n]` products run side by side on `threads` threads, each in a
/// one-thread pool — the way sprint workers use the cores — best of three timings.
fn matmul_rate(rows: usize, k: usize, n: usize, threads: usize) -> anyhow::Result<f64> {
    let a = Tensor::from_vec(
        (0..rows * k).map(|i| (i % 7) as f32 * 0.1).collect::<Vec<f32>>(),
        (rows, k),
        &Device::Cpu,
    )?;
    let b = Tensor::from_vec(
        (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect::<Vec<f32>>(),
        (k, n),
        &Device::Cpu,
    )?;
    let flops = 2.0 * (rows * k * n) as f64;
    let reps = ((1e9 / flops) as usize).clamp(3, 200);
    let mut best = 0.0f64;
    for _ in 0..3 {
        let started = Instant::now();
        std::thread::scope(|scope| -> anyhow::Result<()> {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| -> anyhow::Result<()> {
                        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
                        pool.install(|| -> anyhow::Result<()> {
                            for _ in 0..reps {
                                std::hint::black_box(a.matmul(&b)?);
                            }
                            Ok(())
                        })
                    })
                })
                .collect();
            for handle in handles {
                handle.join().map_err(|_| anyhow::anyhow!("matmul thread panicked"))??;
            }
            Ok(())
        })?;
        best = best.max(flops * (reps * threads) as f64 / started.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// The machine's dense f32 rate for the forward pass's matrix shapes at `batch` nonces: the
/// FLOP-weighted (time-additive) rate over projections, FFN and output head.
fn model_matmul_rate(spec: &ModelSpec, batch: usize, threads: usize) -> anyhow::Result<f64> {
    let (d, f, t, v) =
        (spec.dim as usize, spec.ffn_hidden as usize, spec.seq_len as usize, spec.vocab_size as usize);
    let rows = batch * t;
    // (rows, k, n, how many per layer); the head runs once, on the last position.
    let per_layer = [(rows, d, d, 4.0), (rows, d, f, 2.0), (rows, f, d, 1.0)];
    let (mut flops, mut seconds) = (0.0, 0.0);
    for (r, k, n, count) in per_layer {
        let f = 2.0 * (r * k * n) as f64 * count * f64::from(spec.n_layers);
        flops += f;
        seconds += f / matmul_rate(r, k, n, threads)?;
    }
    let head = 2.0 * (batch * d * v) as f64;
    flops += head;
    seconds += head / matmul_rate(batch, d, v, threads)?;
    Ok(flops / seconds)
}

struct ModelFigures {
    name: &'static str,
    spec: ModelSpec,
    batch_size: usize,
    flops_per_nonce: f64,
    one: f64,
    two: f64,
    rate_one: f64,
    rate_two: f64,
    validate_per_nonce_s: f64,
}

fn measure(
    name: &'static str,
    spec: ModelSpec,
    batch_size: usize,
    seconds: f64,
) -> anyhow::Result<ModelFigures> {
    let model = PocModel::new(&spec, &Hash::digest(b"bench-poc"), &Device::Cpu)?;
    let flops_per_nonce = 2.0 * model.macs_per_nonce() as f64;
    let one = sprint_rate(&model, 1, batch_size, seconds)?;
    let two = sprint_rate(&model, 2, batch_size, seconds)?;
    let rate_one = model_matmul_rate(&spec, batch_size, 1)?;
    let rate_two = model_matmul_rate(&spec, batch_size, 2)?;
    // A validator recomputes a sample of another miner's claimed nonces on the same kernel.
    let miner = AccountKey::from_seed(b"bench-poc-claimant").public_key();
    let sample: Vec<u64> = (0..((one * seconds / 4.0) as u64).clamp(8, 200)).map(|i| i * 7919).collect();
    let started = Instant::now();
    distances_parallel(&model, &miner.0, &sample, 1, batch_size)?;
    let validate_per_nonce_s = started.elapsed().as_secs_f64() / sample.len() as f64;
    Ok(ModelFigures {
        name,
        spec,
        batch_size,
        flops_per_nonce,
        one,
        two,
        rate_one,
        rate_two,
        validate_per_nonce_s,
    })
}

#[allow(clippy::print_stdout)]
pub(crate) fn poc_bench(args: &PocArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.seconds > 0.0 && args.seconds <= 600.0, "--seconds must be in (0, 600]");
    let figures = [
        measure("devnet", ModelSpec::devnet(), args.batch_size, args.seconds)?,
        // 64 positions per nonce: a quarter of the batch gives the matmuls as many rows.
        measure("mainnet-shaped", mainnet_shaped(), (args.batch_size / 4).max(1), args.seconds)?,
    ];
    if args.json {
        let rows: Vec<_> = figures
            .iter()
            .map(|f| {
                json!({
                    "model": f.name, "spec": f.spec, "batch_size": f.batch_size, "flops_per_nonce": f.flops_per_nonce,
                    "nonces_per_second_1": f.one, "nonces_per_second_2": f.two,
                    "matmul_flops_1": f.rate_one, "matmul_flops_2": f.rate_two,
                    "efficiency_1": f.flops_per_nonce * f.one / f.rate_one,
                    "efficiency_2": f.flops_per_nonce * f.two / f.rate_two,
                    "scaling_1_to_2": f.two / f.one,
                    "validate_cost_ratio": f.validate_per_nonce_s * f.one,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"batch_size": args.batch_size, "models": rows}))?
        );
        return Ok(());
    }
    println!("PoC kernel benchmark (candle dense f32; same-shape matmul baseline measured in this run)");
    for f in &figures {
        let s = &f.spec;
        println!(
            "{} (dim {} layers {} heads {} ffn {} out {} seq {}): {:.1} MFLOP per nonce",
            f.name,
            s.dim,
            s.n_layers,
            s.n_heads,
            s.ffn_hidden,
            s.vocab_size,
            s.seq_len,
            f.flops_per_nonce / 1e6
        );
        let pass = |ok: bool| if ok { "PASS" } else { "FAIL" };
        for (workers, rate, matmul) in [(1, f.one, f.rate_one), (2, f.two, f.rate_two)] {
            let efficiency = f.flops_per_nonce * rate / matmul;
            println!(
                "  {workers} worker(s): {rate:>9.1} nonces/s = {:>6.1} GFLOP/s; dense matmul same shapes {:>6.1} GFLOP/s; ratio {efficiency:.2} (target >= 0.70) {}",
                f.flops_per_nonce * rate / 1e9,
                matmul / 1e9,
                pass(efficiency >= 0.70)
            );
        }
        println!("  1 -> 2 workers: {:.2}x (target >= 1.80) {}", f.two / f.one, pass(f.two / f.one >= 1.8));
        println!(
            "  validating a sampled nonce: {:.3} ms = {:.2}x the cost of generating one (no shortcut: ~1)",
            f.validate_per_nonce_s * 1e3,
            f.validate_per_nonce_s * f.one
        );
    }
    Ok(())
}

//! `gonka poc …`: Proof-of-Compute tools for operators — difficulty calibration.

use std::time::Instant;

use anyhow::Context;
use candle_core::Device;
use clap::{Args, Subcommand};
use gonka_chain::PocParams;
use gonka_engine::poc::{PocModel, distances_parallel};
use gonka_poc::Distance;
use gonka_primitives::{AccountKey, Decimal, Hash};

#[derive(Subcommand, Debug)]
pub(crate) enum PocCommand {
    /// Measure the share of nonces below an `r_target` for a profile's model, and the `r_target`
    /// that gives common hit rates.
    Calibrate(CalibrateArgs),
}

#[derive(Args, Debug)]
pub(crate) struct CalibrateArgs {
    /// `devnet` or `mainnet` model and difficulty.
    #[arg(long, default_value = "devnet")]
    profile: String,
    /// The `r_target` to report the hit rate of (default: the profile's).
    #[arg(long)]
    r_target: Option<String>,
    /// Nonces to compute.
    #[arg(long, default_value_t = 20_000)]
    nonces: u64,
    /// Worker threads (default: every core).
    #[arg(long)]
    workers: Option<usize>,
    /// Block hash seed text: the model and target come from SHA-256 of it.
    #[arg(long, default_value = "calibrate")]
    seed: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: PocCommand) -> anyhow::Result<()> {
    match command {
        PocCommand::Calibrate(args) => calibrate(&args),
    }
}

pub(crate) fn profile_params(profile: &str) -> anyhow::Result<PocParams> {
    match profile {
        "devnet" => Ok(PocParams::devnet()),
        "mainnet" => Ok(PocParams::mainnet()),
        other => anyhow::bail!("unknown profile {other:?}: use devnet or mainnet"),
    }
}

#[allow(clippy::print_stdout, clippy::cast_precision_loss)]
fn calibrate(args: &CalibrateArgs) -> anyhow::Result<()> {
    let params = profile_params(&args.profile)?;
    anyhow::ensure!((1..=100_000_000).contains(&args.nonces), "--nonces must be between 1 and 100000000");
    let r_target = match &args.r_target {
        Some(text) => Decimal::parse(text).context("--r-target")?,
        None => params.r_target,
    };
    let workers = args.workers.unwrap_or_else(crate::compute_threads);
    let block_hash = Hash::digest(args.seed.as_bytes());
    let miner = AccountKey::from_seed(b"calibrate").public_key();
    let started = Instant::now();
    let model = PocModel::new(&params.model, &block_hash, &Device::Cpu)?;
    let nonces: Vec<u64> = (0..args.nonces).collect();
    let mut distances: Vec<Distance> = distances_parallel(&model, &miner.0, &nonces, workers, 32)?
        .into_iter()
        .map(|d| d.map_or(Distance::MAX, Distance::from_f32))
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    distances.sort_unstable();
    let target = Distance::from_decimal(r_target);
    let hits = distances.partition_point(|d| *d < target);
    let hit_rate = hits as f64 / distances.len() as f64;
    let quantiles: Vec<(f64, Distance)> = [1e-1, 1e-2, 1e-3, 1e-4]
        .into_iter()
        .filter(|q| q * distances.len() as f64 >= 10.0)
        .map(|q| (q, distances[(q * distances.len() as f64) as usize]))
        .collect();
    if args.json {
        let rows: Vec<_> = quantiles
            .iter()
            .map(|(q, d)| serde_json::json!({"hit_rate": q, "r_target": d.to_string()}))
            .collect();
        let body = serde_json::json!({
            "profile": args.profile, "nonces": args.nonces, "r_target": r_target.to_string(),
            "hits": hits, "hit_rate": hit_rate, "min": distances[0].to_string(),
            "median": distances[distances.len() / 2].to_string(), "r_target_for": rows,
            "nonces_per_second": args.nonces as f64 / elapsed,
        });
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    println!(
        "{} model, {} nonces in {elapsed:.1} s ({:.0}/s): distances min {} median {}",
        args.profile,
        args.nonces,
        args.nonces as f64 / elapsed,
        distances[0],
        distances[distances.len() / 2]
    );
    println!("r_target {r_target}: {hits} hits, hit rate {hit_rate:.3e}");
    for (q, d) in quantiles {
        println!("  hit rate {q:.0e} at r_target ≈ {d}");
    }
    Ok(())
}

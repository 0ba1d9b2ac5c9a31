//! `gonka bench sim`: simulated blocks per second of a 16-host network with 3 Byzantine hosts, against
//! the same network all honest in the same run, and the seeds per second of the short runs the test
//! suite uses (from which the 1,000-seed suite and a 10,000-seed soak are extrapolated).

use std::time::Instant;

use gonka_sim::{ByzantineKind, Faults, SimConfig};
use serde_json::json;

use crate::stats::{percentile, sorted};

/// `gonka bench sim` options.
#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// Hosts of the big network.
    #[arg(long, default_value_t = 16)]
    hosts: usize,
    /// Heights it decides.
    #[arg(long, default_value_t = 100)]
    blocks: u64,
    /// Short runs timed for the seed rate.
    #[arg(long, default_value_t = 40)]
    seeds: u64,
    /// Runs of each network, alternating honest and Byzantine; the median rate is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn blocks_per_second(config: SimConfig) -> anyhow::Result<(f64, gonka_sim::Report)> {
    let started = Instant::now();
    let report = gonka_sim::run(config).map_err(anyhow::Error::msg)?;
    #[allow(clippy::cast_precision_loss)]
    let rate = report.blocks as f64 / started.elapsed().as_secs_f64();
    Ok((rate, report))
}

#[allow(clippy::print_stdout, clippy::cast_precision_loss)]
pub(crate) fn sim_bench(args: &SimArgs) -> anyhow::Result<()> {
    let byzantine = || {
        SimConfig::new(1, args.hosts, args.blocks)
            .with_byzantine(ByzantineKind::FabricatePoc, 1)
            .with_byzantine(ByzantineKind::CopyPoc, 1)
            .with_byzantine(ByzantineKind::WithholdVotes, 1)
    };
    // Alternate the two networks so that a noisy neighbour slows both alike; report the medians.
    let repeats = args.repeats.max(1);
    let (mut honest, mut cheating) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        honest.push(blocks_per_second(SimConfig::new(1, args.hosts, args.blocks))?.0);
        let (rate, report) = blocks_per_second(byzantine())?;
        anyhow::ensure!(
            report.broken().is_empty(),
            "the benchmark network broke an invariant:\n{}",
            report.text()
        );
        cheating.push(rate);
    }
    let honest_rate = percentile(&sorted(honest), 0.5);
    let byzantine_rate = percentile(&sorted(cheating), 0.5);
    let faults = Faults { crash: true, partition: true, delay: true, drop: true };
    let started = Instant::now();
    for seed in 1..=args.seeds {
        gonka_sim::run(SimConfig::new(seed, 4 + (seed % 4) as usize, 50).with_faults(faults))
            .map_err(anyhow::Error::msg)?;
    }
    let per_seed_s = started.elapsed().as_secs_f64() / args.seeds.max(1) as f64;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let soak_min = per_seed_s * 10_000.0 / threads / 60.0;
    let figures = json!({
        "hosts": args.hosts,
        "blocks": args.blocks,
        "repeats": repeats,
        "byzantine_blocks_per_s": byzantine_rate,
        "honest_blocks_per_s": honest_rate,
        "byzantine_over_honest": byzantine_rate / honest_rate,
        "short_run_s_per_seed": per_seed_s,
        "soak_10000_seeds_min_on_all_cores": soak_min,
    });
    if args.json {
        println!("{figures}");
        return Ok(());
    }
    println!(
        "{} hosts, 3 Byzantine (fabricate-poc, copy-poc, withhold-votes), {} blocks: {byzantine_rate:.1} simulated blocks/s (median of {})",
        args.hosts, args.blocks, repeats
    );
    println!(
        "  baseline, the same network all honest, same run: {honest_rate:.1} blocks/s (ratio {:.2})",
        byzantine_rate / honest_rate
    );
    println!(
        "short runs (4–7 hosts, 50 blocks, every fault): {:.0} ms per seed on one thread; a 10,000-seed soak ≈ {soak_min:.0} min on {threads} threads",
        per_seed_s * 1000.0
    );
    Ok(())
}

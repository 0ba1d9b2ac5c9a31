//! `gonka sim`: deterministic simulated networks, honest and Byzantine (crate `gonka-sim`).

use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use gonka_sim::{ByzantineKind, Faults, SimConfig};

use crate::OutputFormat;

#[derive(Args, Debug)]
pub(crate) struct SimArgs {
    /// The seed (the same seed gives the same run and digest).
    #[arg(long, default_value_t = 1, conflicts_with = "seeds")]
    seed: u64,
    /// A range of seeds to run one after the other, `FIRST..LAST` (inclusive), e.g. `1..10000`.
    #[arg(long)]
    seeds: Option<String>,
    /// Hosts (genesis validators), Byzantine ones included.
    #[arg(long, default_value_t = 4)]
    hosts: usize,
    /// Heights to decide.
    #[arg(long, default_value_t = 60)]
    blocks: u64,
    /// Misbehaving hosts (or developers): `KIND:COUNT`, repeatable. Kinds: fabricate-poc, copy-poc,
    /// tiny-claims, withhold-votes, drain-balance, forge-ta, overcharge, censor, surge,
    /// substitute-model, prefill, edit-answer, wrong-seed, refuse-payload.
    #[arg(long = "byzantine", value_name = "KIND:COUNT")]
    byzantine: Vec<String>,
    /// Faults, comma-separated: crash, partition, delay, drop.
    #[arg(long, default_value = "none")]
    faults: String,
    /// Honest developers sending paid requests.
    #[arg(long, default_value_t = 3)]
    developers: usize,
    /// Seeds run at once with `--seeds` (default: every core); each run stays single-threaded and
    /// deterministic.
    #[arg(long)]
    jobs: Option<usize>,
    /// `text` or `json`.
    #[arg(long, default_value = "text")]
    output: OutputFormat,
}

fn parse_byzantine(specs: &[String]) -> anyhow::Result<Vec<(ByzantineKind, usize)>> {
    specs
        .iter()
        .map(|spec| {
            let (kind, count) = spec.split_once(':').unwrap_or((spec.as_str(), "1"));
            let kind: ByzantineKind = kind.parse().map_err(anyhow::Error::msg)?;
            let count: usize = count.parse().with_context(|| format!("count of {spec:?} is not a number"))?;
            Ok((kind, count))
        })
        .collect()
}

fn parse_seeds(range: &str) -> anyhow::Result<(u64, u64)> {
    let (first, last) = range.split_once("..").context("--seeds takes FIRST..LAST, e.g. 1..10000")?;
    let (first, last): (u64, u64) = (first.trim().parse()?, last.trim().parse()?);
    if first > last {
        bail!("--seeds {range}: the first seed is after the last");
    }
    Ok((first, last))
}

/// Failing seeds listed per invariant after a `--seeds` run.
const SEEDS_SHOWN: usize = 20;

#[allow(clippy::print_stdout)]
pub(crate) fn run(args: &SimArgs) -> anyhow::Result<()> {
    let config = SimConfig {
        seed: args.seed,
        hosts: args.hosts,
        blocks: args.blocks,
        byzantine: parse_byzantine(&args.byzantine)?,
        faults: args.faults.parse::<Faults>().map_err(anyhow::Error::msg)?,
        developers: args.developers,
    };
    config.validate().map_err(anyhow::Error::msg)?;
    let Some(range) = &args.seeds else {
        let started = Instant::now();
        let report = gonka_sim::run(config).map_err(anyhow::Error::msg)?;
        let seconds = started.elapsed().as_secs_f64();
        match args.output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            OutputFormat::Text => {
                print!("{}", report.text());
                #[allow(clippy::cast_precision_loss)]
                let rate = report.blocks as f64 / seconds.max(1e-9);
                println!("{:.2} s wall, {rate:.1} simulated blocks/s", seconds);
            }
        }
        return Ok(());
    };
    let (first, last) = parse_seeds(range)?;
    let jobs =
        args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let started = Instant::now();
    let reports = run_seeds(&config, first, last, jobs)?;
    let seconds = started.elapsed().as_secs_f64();
    let mut broken: std::collections::BTreeMap<&'static str, Vec<u64>> = Default::default();
    let mut blocks = 0u64;
    for report in &reports {
        blocks += report.blocks;
        for name in report.broken() {
            broken.entry(name).or_default().push(report.seed);
        }
        if args.output == OutputFormat::Json {
            println!(
                "{}",
                serde_json::json!({"seed": report.seed, "digest": report.digest, "broken": report.broken()})
            );
        }
    }
    let runs = reports.len() as f64;
    println!(
        "{} seeds in {seconds:.1} s on {jobs} threads ({:.1} ms per seed per thread, {:.0} simulated blocks/s)",
        reports.len(),
        seconds * 1000.0 * jobs as f64 / runs,
        blocks as f64 / seconds.max(1e-9)
    );
    let sum = |f: fn(&gonka_sim::report::ValidationTotals) -> u64| {
        reports.iter().map(|r| f(&r.traffic.validation)).sum::<u64>()
    };
    println!(
        "validation: {} answers served, {} judged, {} invalidated; {} cheated ({} judged, {} refunded, {} paid unjudged); {} hosts found INVALID",
        reports.iter().map(|r| r.traffic.served).sum::<u64>(),
        sum(|t| t.judged),
        sum(|t| t.invalidated),
        sum(|t| t.cheated),
        sum(|t| t.cheated_judged),
        sum(|t| t.cheated_refunded),
        sum(|t| t.cheated_paid_unjudged),
        sum(|t| t.invalid_hosts),
    );
    let economy = |f: fn(&gonka_sim::report::EconomyTotals) -> u128| {
        reports.iter().map(|r| f(&r.economy)).sum::<u128>()
    };
    println!(
        "economy: {} epochs settled, {} ngonka minted, {} claimed, {} burned; {} claims, {} forfeited, {} unclaimed",
        economy(|e| u128::from(e.epochs_settled)),
        economy(|e| e.minted),
        economy(|e| e.claimed),
        economy(|e| e.burned),
        economy(|e| u128::from(e.claims)),
        economy(|e| u128::from(e.forfeited)),
        economy(|e| u128::from(e.unclaimed)),
    );
    if broken.is_empty() {
        println!("invariants: all held in every seed");
    }
    for (name, seeds) in &broken {
        let shown: Vec<String> = seeds.iter().take(SEEDS_SHOWN).map(u64::to_string).collect();
        let more = if seeds.len() > SEEDS_SHOWN { ", …" } else { "" };
        println!(
            "VIOLATED {name} in {} of {} seeds: {}{more} (replay one with --seed)",
            seeds.len(),
            reports.len(),
            shown.join(", ")
        );
    }
    Ok(())
}

/// Runs seeds `first..=last` on `jobs` threads; the reports come back in seed order.
fn run_seeds(
    config: &SimConfig,
    first: u64,
    last: u64,
    jobs: usize,
) -> anyhow::Result<Vec<gonka_sim::Report>> {
    let next = std::sync::atomic::AtomicU64::new(first);
    let reports = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if seed > last {
                        break;
                    }
                    let report = gonka_sim::run(SimConfig { seed, ..config.clone() });
                    reports.lock().unwrap_or_else(|p| p.into_inner()).push((seed, report));
                }
            });
        }
    });
    let mut reports = reports.into_inner().unwrap_or_else(|p| p.into_inner());
    reports.sort_by_key(|(seed, _)| *seed);
    reports.into_iter().map(|(_, r)| r.map_err(anyhow::Error::msg)).collect()
}

//! Measure gonka-rs: every benchmark prints its figure and its ratio against a baseline measured in the
//! same run, so a figure never depends on another day's machine. `gonka bench …` is a thin front over
//! [`run`].
//!
//! - `engine`: prefill, single-stream and batched decode, TTFT, scoring throughput and peak RSS.
//! - `scoring-gap`: teacher-forced scoring logprobs against those reported during generation.
//! - `fidelity`: the served engine against our plain f32 forward pass of the same GGUF.
//! - `chain`: 4 validators on loopback — finalized transfers/s, block interval, commit latency.
//! - `poc`: nonces/s against the dense f32 matmul rate of the same shapes; scaling over workers.
//! - `inference`: the paid path (gateway → TA → executor) against the engine direct.
//! - `serving-during-poc`: the paid path's tokens/s and TTFT while every host races a PoC sprint,
//!   against the same outside the sprint.
//! - `sim`: simulated blocks per second of a 16-host network with 3 Byzantine hosts against the same
//!   network honest; seconds per seed of the test suite's short runs.
//! - `prefix-cache`: TTFT after a 2,000-token shared system prompt with the prefix cache against
//!   without it.
//! - `structured`: decode under a JSON Schema against free decode of as many tokens; mask and compile
//!   costs of the grammar engine.
//! - `validation`: answer validation on the embedded engine — false positives, detection per cheat,
//!   cost against serving, throughput while validating.
#![deny(missing_docs)]

mod chain;
mod economy;
mod engine;
pub mod fidelity;
mod inference;
mod poc;
mod prefix;
mod serving_poc;
mod sim;
pub mod stats;
mod structured;
pub mod validation;

use std::path::PathBuf;

pub use poc::mainnet_shaped;

/// `gonka bench …`.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Prefill, single-stream and batched decode, TTFT, scoring throughput and peak RSS.
    Engine(engine::EngineArgs),
    /// How far teacher-forced scoring logprobs are from the logprobs reported during generation.
    ScoringGap(engine::GapArgs),
    /// The served engine against our plain f32 forward pass of the same GGUF: identical greedy answers,
    /// top-1 agreement, |Δlogprob|.
    Fidelity(fidelity::FidelityArgs),
    /// 4 validators on loopback: finalized transfers/s, block interval, commit latency, state size.
    Chain(chain::ChainArgs),
    /// PoC nonces/s (devnet and mainnet-shaped models) against the dense f32 matmul rate; scaling.
    Poc(poc::PocArgs),
    /// The paid path (gateway → TA → executor) against the engine direct: added TTFT, throughput, receipts.
    Inference(inference::InferenceArgs),
    /// The paid path while every host races a PoC sprint against the same outside it: tokens/s, TTFT.
    ServingDuringPoc(serving_poc::ServingPocArgs),
    /// The simulator: blocks/s of 16 hosts with 3 Byzantine against the same network honest; s per seed.
    Sim(sim::SimArgs),
    /// An epoch's settlement with 100 and 1,000 hosts: its block time against an ordinary block's.
    Economy(economy::EconomyArgs),
    /// TTFT after a 2,000-token shared system prompt with the prefix cache against without it.
    PrefixCache(prefix::PrefixArgs),
    /// Decode under a JSON Schema against free decode of as many tokens; the grammar engine's mask and
    /// compile costs.
    Structured(structured::StructuredArgs),
    /// Answer validation on the embedded engine: false positives, detection per cheat kind, cost against
    /// serving, throughput while validating against not validating.
    Validation(validation::ValidationArgs),
}

/// Where the benchmarks find what they start.
#[derive(Debug, Clone)]
pub struct BenchContext {
    /// The `gonka` binary, for benchmarks that run node processes.
    pub exe: PathBuf,
}

/// Runs one benchmark.
pub fn run(command: BenchCommand, context: &BenchContext) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    match command {
        BenchCommand::Engine(args) => runtime.block_on(engine::engine_bench(args)),
        BenchCommand::ScoringGap(args) => runtime.block_on(engine::scoring_gap(args)),
        BenchCommand::Fidelity(args) => runtime.block_on(fidelity::fidelity_bench(args)),
        BenchCommand::Chain(args) => runtime.block_on(chain::chain_bench(args, &context.exe)),
        BenchCommand::Poc(args) => poc::poc_bench(&args),
        BenchCommand::Sim(args) => sim::sim_bench(&args),
        BenchCommand::Economy(args) => economy::economy_bench(&args),
        BenchCommand::PrefixCache(args) => runtime.block_on(prefix::prefix_bench(args)),
        BenchCommand::Structured(args) => runtime.block_on(structured::structured_bench(args)),
        BenchCommand::Validation(args) => runtime.block_on(validation::validation_bench(args)),
        BenchCommand::ServingDuringPoc(args) => {
            tokio::runtime::Runtime::new()?.block_on(serving_poc::serving_poc_bench(args, &context.exe))
        }
        BenchCommand::Inference(args) => {
            tokio::runtime::Runtime::new()?.block_on(inference::inference_bench(args, &context.exe))
        }
    }
}

/// The default model, pulled on first use.
fn default_model() -> anyhow::Result<gonka_engine::store::InstalledModel> {
    use anyhow::Context;
    let home = gonka_engine::store::gonka_home();
    gonka_engine::store::ModelStore::new(&home)
        .ensure(&gonka_engine::store::DEFAULT_MODEL)
        .with_context(|| format!("installing the default model into {}", home.display()))
}

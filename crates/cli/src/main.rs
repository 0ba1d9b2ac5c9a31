//! The `gonka` binary: chain node and local networks, keys, transactions and queries, model store,
//! single-host server, benchmarks.

mod chain;
mod devnet;
mod gateway;
mod keys;
mod poc;
mod serve;
mod sim;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gonka_engine::store::{DEFAULT_MODEL, InstalledModel, ModelStore, gonka_home};

#[derive(Parser, Debug)]
#[command(name = "gonka", version, about = "gonka-rs: a decentralized AI inference network")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the embedded model through the OpenAI-compatible API on one host.
    Serve(serve::ServeArgs),
    /// Manage installed models.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Measure performance.
    #[command(subcommand)]
    Bench(gonka_bench::BenchCommand),
    /// Run a local network of N validator hosts on loopback (Ctrl-C stops it).
    Devnet(devnet::DevnetArgs),
    /// Create a host home: keys, config and a single-validator genesis.
    Init(chain::InitArgs),
    /// Run a node.
    #[command(subcommand)]
    Node(chain::NodeCommand),
    /// Manage account keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Sign and submit transactions.
    #[command(subcommand)]
    Tx(chain::TxCommand),
    /// Query a node.
    #[command(subcommand)]
    Query(chain::QueryCommand),
    /// Proof-of-Compute tools.
    #[command(subcommand)]
    Poc(poc::PocCommand),
    /// Serve a local OpenAI-compatible endpoint that signs every request with a developer key.
    Gateway(gateway::GatewayArgs),
    /// Send one signed chat request to the network and print the answer.
    Chat(gateway::ChatArgs),
    /// Run a deterministic simulated network (honest and Byzantine hosts, faults) and check its
    /// invariants after every block.
    Sim(sim::SimArgs),
}

#[derive(Subcommand, Debug)]
enum ModelCommand {
    /// Download, verify and convert the default model (SmolLM2-135M-Instruct).
    Pull {
        /// Replace an installed copy.
        #[arg(long)]
        force: bool,
    },
    /// Show installed models with size and content hash.
    List {
        /// `text` or `json`.
        #[arg(long, default_value = "text")]
        output: OutputFormat,
    },
    /// Print the path of the default model's GGUF (pulling it first if needed).
    Path,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum OutputFormat {
    Text,
    Json,
}

/// The default model, pulled on first use.
pub(crate) fn default_model() -> anyhow::Result<InstalledModel> {
    let home = gonka_home();
    ModelStore::new(&home)
        .ensure(&DEFAULT_MODEL)
        .with_context(|| format!("installing {} into {}", DEFAULT_MODEL.name, home.display()))
}

/// Thread count for the numeric kernels: `GONKA_THREADS`, else every available core.
pub(crate) fn compute_threads() -> usize {
    gonka_engine::compute_threads()
}

#[allow(clippy::print_stdout)]
fn run_model(command: &ModelCommand) -> anyhow::Result<()> {
    let store = ModelStore::new(&gonka_home());
    match command {
        ModelCommand::Pull { force } => {
            let model = store.pull(&DEFAULT_MODEL, *force)?;
            println!(
                "{} installed: {} ({} bytes, sha256 {})",
                model.name,
                model.path.display(),
                model.size_bytes,
                model.content_hash
            );
        }
        ModelCommand::List { output } => {
            let models = store.list()?;
            if *output == OutputFormat::Json {
                let rows: Vec<_> = models
                    .iter()
                    .map(|m| serde_json::json!({"name": m.name, "size_bytes": m.size_bytes, "content_hash": m.content_hash, "quantization": m.quantization, "defaults": m.defaults, "path": m.path}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if models.is_empty() {
                println!("no models installed; run `gonka model pull`");
            } else {
                println!("{:<24} {:>10} {:<6} {:<26} CONTENT HASH", "NAME", "SIZE", "QUANT", "DEFAULTS");
                for m in models {
                    #[allow(clippy::cast_precision_loss)]
                    let mib = m.size_bytes as f64 / (1024.0 * 1024.0);
                    let defaults =
                        format!("temperature {} top_p {}", m.defaults.temperature, m.defaults.top_p);
                    println!(
                        "{:<24} {:>7.1} MiB {:<6} {:<26} {}",
                        m.name, mib, m.quantization, defaults, m.content_hash
                    );
                }
            }
        }
        ModelCommand::Path => println!("{}", default_model()?.path.display()),
    }
    Ok(())
}

fn main() -> ExitCode {
    configure_candle_threads();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if matches!(
        cli.command,
        Command::Keys(_) | Command::Query(_) | Command::Sim(_) | Command::Chat(_) | Command::Model(_)
    ) {
        stop_quietly_on_closed_pipe();
    }
    let result = match cli.command {
        Command::Model(command) => run_model(&command),
        Command::Serve(args) => serve::run(&args),
        Command::Bench(command) => std::env::current_exe()
            .map_err(anyhow::Error::from)
            .and_then(|exe| gonka_bench::run(command, &gonka_bench::BenchContext { exe })),
        Command::Devnet(args) => devnet::run(&args),
        Command::Init(args) => chain::init(&args),
        Command::Node(command) => chain::node(command),
        Command::Keys(command) => keys::run(command),
        Command::Tx(command) => chain::tx(command),
        Command::Query(command) => chain::query(command),
        Command::Poc(command) => poc::run(command),
        Command::Gateway(args) => gateway::gateway(&args),
        Command::Chat(args) => gateway::chat(&args),
        Command::Sim(args) => sim::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn wait_for_termination() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// For the commands that print their answer and exit: `gonka sim … | head` ends quietly when the
/// reader goes away, as a Unix filter does, instead of panicking in `println!`. Servers keep Rust's
/// ignored SIGPIPE, so a closed socket or pipe is an error they handle.
#[allow(unsafe_code)]
fn stop_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restores the default disposition before any thread exists; no handler runs Rust code.
    unsafe {
        let _ =
            nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl);
    }
}

/// Names candle's thread counts before any thread exists.
///
/// - `RAYON_NUM_THREADS` (candle's matmul split): candle sizes it from a physical-core count that
///   comes out wrong on some VMs (one core here: a 10× slowdown), so it is set to the compute threads.
/// - `CANDLE_NUM_THREADS` (candle's global "barrier pool" for large element-wise ops) is 1: that pool
///   serves one caller at a time behind a lock, so PoC workers running side by side would queue on it
///   (measured: 2 workers no faster than 1). gonka parallelises above candle instead — one PoC worker
///   per core, its own kernels and pool for inference.
#[allow(unsafe_code)]
fn configure_candle_threads() {
    let threads = compute_threads().to_string();
    for (var, value) in [("RAYON_NUM_THREADS", threads.as_str()), ("CANDLE_NUM_THREADS", "1")] {
        if std::env::var_os(var).is_none() {
            // SAFETY: called first thing in `main`, before any other thread is started, so nothing can
            // read the environment concurrently.
            unsafe { std::env::set_var(var, value) };
        }
    }
}

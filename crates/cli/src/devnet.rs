//! `gonka devnet`: N validator hosts as processes on loopback, sharing one genesis, until Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use gonka_client::devnet::{
    DevnetOptions, DevnetPlan, MAX_QUICK_RESTARTS, Supervisor, SupervisorEvent, setup,
};
use gonka_client::rest::NodeClient;
use gonka_node::host::PocProgress;

#[derive(Args, Debug)]
pub(crate) struct DevnetArgs {
    /// Number of validator hosts.
    #[arg(long, default_value_t = 4)]
    hosts: usize,
    /// Directory for the homes and `devnet.json` (an existing devnet there is restarted, not re-made).
    #[arg(long, default_value_os_t = gonka_engine::store::gonka_home().join("devnet"))]
    home: PathBuf,
    /// First port; host i listens on base+2i (REST) and base+2i+1 (p2p).
    #[arg(long, default_value_t = 26600)]
    base_port: u16,
    /// The address every host (and the gateway) listens on: loopback by default; a private address
    /// puts the devnet on a LAN, or in a network namespace, where other machines can join it.
    #[arg(long, default_value = "127.0.0.1")]
    host_ip: std::net::IpAddr,
    /// Target interval between block starts in milliseconds (the devnet profile's "~1 s blocks", set
    /// below 1 s so that jitter under load keeps the interval within 1 s).
    #[arg(long, default_value_t = gonka_client::devnet::DEVNET_BLOCK_INTERVAL_MS)]
    block_interval_ms: u64,
    /// Chain id.
    #[arg(long, default_value = "gonka-devnet")]
    chain_id: String,
    /// Delete an existing devnet in `--home` and make a new one.
    #[arg(long)]
    reset: bool,
    /// Make the homes and `devnet.json`, then exit without starting nodes.
    #[arg(long)]
    setup_only: bool,
    /// PoC sprint workers per host, comma-separated, host i taking entry i mod len (e.g. `1,1,2,2`
    /// for unequal compute). Default: one each, so N hosts share this machine's cores evenly.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    poc_workers: Vec<u32>,
    /// Do not run PoC sprints or validations (the genesis weights stay).
    #[arg(long)]
    no_poc: bool,
    /// Do not serve inference (no model is loaded, no gateway runs).
    #[arg(long)]
    no_inference: bool,
    /// Price of one token of the embedded model, in ngonka.
    #[arg(long, default_value_t = 1000)]
    price_per_token: u128,
    /// Genesis voting power per host, comma-separated (host i takes entry i mod len); default 100 each.
    #[arg(long, value_delimiter = ',')]
    weights: Vec<u64>,
    /// Requests each host forwards at once as transfer agent before answering 429.
    #[arg(long, default_value_t = gonka_node::inference::InferenceConfig::default().ta_concurrent_max)]
    ta_concurrent_max: usize,
    /// JSON merged over the devnet params in genesis, e.g. '{"epoch":{"epoch_length":60}}'.
    #[arg(long)]
    params: Option<String>,
    /// Make a host cheat as an executor, to watch validation catch it: `host-N:KIND`, KIND one of
    /// substitute-model, prefill, edit-answer, wrong-seed, refuse-payload (repeatable).
    #[arg(long = "byzantine", value_name = "host-N:KIND")]
    byzantine: Vec<String>,
}

/// `host-N:KIND` pairs.
fn parse_byzantine(specs: &[String]) -> anyhow::Result<Vec<(usize, gonka_node::inference::cheat::Cheat)>> {
    specs
        .iter()
        .map(|spec| {
            let (host, kind) = spec
                .split_once(':')
                .with_context(|| format!("--byzantine {spec:?}: expected host-N:KIND"))?;
            let index: usize = host
                .strip_prefix("host-")
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("--byzantine {spec:?}: the host is host-N"))?;
            Ok((index, kind.parse().map_err(anyhow::Error::msg)?))
        })
        .collect()
}

fn prepare(args: &DevnetArgs) -> anyhow::Result<DevnetPlan> {
    if args.reset && args.home.exists() {
        std::fs::remove_dir_all(&args.home).with_context(|| format!("removing {}", args.home.display()))?;
    }
    if args.home.join("devnet.json").exists() {
        let plan = DevnetPlan::load(&args.home)?;
        anyhow::ensure!(
            plan.nodes.len() == args.hosts,
            "{} holds a devnet of {} hosts; pass --hosts {} or --reset",
            args.home.display(),
            plan.nodes.len(),
            plan.nodes.len()
        );
        return Ok(plan);
    }
    let models = if args.no_inference {
        Vec::new()
    } else {
        let price = gonka_primitives::Amount(args.price_per_token);
        vec![crate::chain::model_price(crate::default_model()?, price)?]
    };
    setup(&DevnetOptions {
        hosts: args.hosts,
        dir: args.home.clone(),
        base_port: args.base_port,
        host_ip: args.host_ip,
        chain_id: args.chain_id.clone(),
        block_interval_ms: args.block_interval_ms,
        mainnet_profile: false,
        extra_accounts: Vec::new(),
        params_override: args
            .params
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .context("--params is not valid JSON")?,
        poc: gonka_node::host::PocConfig { enabled: !args.no_poc, ..Default::default() },
        poc_workers: args.poc_workers.clone(),
        inference: gonka_node::inference::InferenceConfig {
            enabled: !args.no_inference,
            ta_concurrent_max: args.ta_concurrent_max,
            // Devnet hosts listen on loopback.
            allow_private_executors: true,
            ..Default::default()
        },
        models,
        weights: args.weights.clone(),
        byzantine: parse_byzantine(&args.byzantine)?,
    })
}

#[allow(clippy::print_stdout)]
fn print_plan(plan: &DevnetPlan, dir: &std::path::Path) {
    println!("devnet {} with {} hosts in {}", plan.chain_id, plan.nodes.len(), dir.display());
    for node in &plan.nodes {
        println!(
            "  {:<8} api {}  p2p {}  log {}",
            node.name,
            node.api_url,
            node.p2p,
            node.home.join("node.log").display()
        );
    }
    println!(
        "  developer key `{}` ({}) in keyring {}",
        plan.developer.name,
        plan.developer.address,
        plan.keyring.display()
    );
    let first = plan.nodes.first().map_or("", |n| n.api_url.as_str());
    if let Some(gateway) = &plan.gateway_url {
        let model = gonka_engine::store::DEFAULT_MODEL.name;
        println!("  gateway  {gateway}/v1 (OpenAI-compatible, signs with `{}`)", plan.developer.name);
        println!("chat with the network:");
        println!(
            "  curl {gateway}/v1/chat/completions -H 'Content-Type: application/json' \\\n    -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"What is the capital of France? Answer in one sentence.\"}}]}}'"
        );
        println!(
            "  python3 -c 'from openai import OpenAI; c = OpenAI(base_url=\"{gateway}/v1\", api_key=\"unused\"); print(c.chat.completions.create(model=\"{model}\", messages=[{{\"role\": \"user\", \"content\": \"Hi!\"}}]).choices[0].message.content)'"
        );
    }
    println!("try:");
    println!("  gonka query status --node {first}");
    println!(
        "  gonka tx bank send {} <ADDRESS> 1gnk --keyring-dir {} --node {first} --wait",
        plan.developer.name,
        plan.keyring.display()
    );
}

async fn status_line(plan: &DevnetPlan) -> String {
    // Every node at once: a node that does not answer costs the line one timeout, not one each.
    let parts = plan.nodes.iter().map(|node| async move {
        let client = NodeClient::new(&node.api_url);
        match tokio::time::timeout(Duration::from_secs(1), client.status()).await {
            Ok(Ok(s)) => {
                let mut part =
                    format!("{} h={} peers={} {}", node.name, s.chain.height, s.peers, s.chain.phase);
                if let Ok(Ok(p)) = tokio::time::timeout(Duration::from_secs(1), client.poc_progress()).await {
                    part.push_str(&poc_progress(&p));
                }
                if let Ok(Ok(v)) =
                    tokio::time::timeout(Duration::from_secs(1), client.validation_progress()).await
                {
                    part.push_str(&validation_progress(&v));
                }
                part
            }
            _ => format!("{} down", node.name),
        }
    });
    futures::future::join_all(parts).await.join(" | ")
}

/// ` poc: sprinting 1234 nonces (2100/s) 5 valid` for a host with PoC work in this stage.
fn poc_progress(p: &PocProgress) -> String {
    if p.activity.is_empty() || p.activity == "idle" {
        return String::new();
    }
    format!(
        " poc {} e{} {} nonces ({:.0}/s) {} valid {} validated",
        p.activity, p.epoch, p.nonces, p.nonces_per_second, p.valid, p.validated
    )
}

/// ` val 12 (1 failed) inv 0` — validations this host made (failures found), answers of its that
/// were invalidated — and ` INVALID` when the chain found it cheating.
fn validation_progress(v: &gonka_node::rest::ValidationProgressView) -> String {
    let (invalidated, status) =
        v.standing.as_ref().map_or((0, "active"), |s| (s.invalidated, s.status.as_str()));
    let mut line = format!(" val {} ({} failed) inv {invalidated}", v.progress.validated, v.progress.failed);
    if status == "invalid" {
        line.push_str(" INVALID");
    }
    line
}

#[allow(clippy::print_stdout, clippy::print_stderr)]
pub(crate) fn run(args: &DevnetArgs) -> anyhow::Result<()> {
    let plan = prepare(args)?;
    print_plan(&plan, &args.home);
    if args.setup_only {
        return Ok(());
    }
    let exe = std::env::current_exe().context("locating the gonka binary")?;
    let mut supervisor = Supervisor::start(&exe, &plan, &args.home)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async {
        let terminate = crate::wait_for_termination();
        tokio::pin!(terminate);
        let mut ticker = tokio::time::interval(Duration::from_secs(3));
        let mut reaper = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                biased;
                () = &mut terminate => break Ok(()),
                _ = reaper.tick() => {
                    // A dead process is said at once and restarted with back-off; the others run on.
                    for event in supervisor.poll(std::time::Instant::now()) {
                        match event {
                            SupervisorEvent::Exited { name, status, delay, restart } => println!(
                                "{name} exited ({status}); restarting it in {} s (restart {restart} of {MAX_QUICK_RESTARTS} in a row)",
                                delay.as_secs()
                            ),
                            SupervisorEvent::Restarted { name } => println!("{name} restarted"),
                            SupervisorEvent::StartFailed { name, error } => {
                                eprintln!("{name} could not be restarted: {error}");
                            }
                            SupervisorEvent::GaveUp { name, status, log } => eprintln!(
                                "GIVING UP ON {name}: it died again after {MAX_QUICK_RESTARTS} restarts in a row, each within a minute of starting (last: {status}); the others keep running. See {}",
                                log.display()
                            ),
                        }
                    }
                    if supervisor.all_given_up() {
                        break Err(anyhow::anyhow!("every process of the devnet keeps dying; see the logs in {}", args.home.display()));
                    }
                }
                _ = ticker.tick() => println!("{}", status_line(&plan).await),
            }
        }
    });
    println!("stopping the devnet");
    supervisor.stop();
    result
}

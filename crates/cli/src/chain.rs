//! `gonka init`, `gonka node start`, `gonka tx …` and `gonka query …`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use gonka_chain::{BankMsg, CollateralMsg, GenesisAccount, InferenceMsg, Msg, Params};
use gonka_client::devnet::{HOST_BALANCE, genesis_for, init_home};
use gonka_client::rest::NodeClient;
use gonka_node::home::{HOST_KEY, Home, NodeConfig, OPERATIONAL_KEY};
use gonka_node::mempool::MempoolLimits;

/// A cached prompt token's share of the token price on chains `gonka` makes (`gonka init`, the
/// devnet): 10 %, as the prefix cache spares the executor the token's prefill
/// (`docs/spec/inference.md` §4.2).
pub(crate) const CACHED_PRICE_PPM: u32 = 100_000;

/// The genesis price entry of an installed `model` at `price` per token, cached tokens at
/// [`CACHED_PRICE_PPM`] of it.
pub(crate) fn model_price(
    model: gonka_engine::store::InstalledModel,
    price: Amount,
) -> anyhow::Result<gonka_chain::ModelPrice> {
    let content_hash = gonka_primitives::Hash::from_hex(&model.content_hash)
        .with_context(|| format!("model hash {} is not 64 hex digits", model.content_hash))?;
    Ok(gonka_chain::ModelPrice {
        name: model.name,
        content_hash,
        price_per_token: price,
        cached_price_ppm: CACHED_PRICE_PPM,
        validation: Default::default(),
    })
}
use gonka_primitives::{Address, Amount};
use serde::Serialize;

use crate::OutputFormat;
use crate::keys::{KeyringArgs, default_node_home};

#[derive(Args, Debug)]
pub(crate) struct InitArgs {
    /// Home directory to create.
    #[arg(long, env = "GONKA_NODE_HOME", default_value_os_t = default_node_home())]
    home: PathBuf,
    /// Node name.
    #[arg(long, default_value = "host")]
    moniker: String,
    /// Chain id: of the new single-validator chain (default `gonka-local`), or, with `--join` or
    /// `--genesis`, the one the network's genesis must name.
    #[arg(long)]
    chain_id: Option<String>,
    /// Join the running network of this node (its REST URL): fetch its genesis (`GET /genesis`), and
    /// take it as the first consensus and gossip peer.
    #[arg(long, value_name = "NODE_URL", conflicts_with = "genesis")]
    join: Option<String>,
    /// Join the network of this genesis file (give its peers with `--peer`).
    #[arg(long, value_name = "FILE")]
    genesis: Option<PathBuf>,
    /// The genesis hash the network announces; the fetched genesis must have it. Without it, `init`
    /// shows the hash and asks (on a terminal) or refuses.
    #[arg(long, value_name = "HEX")]
    genesis_hash: Option<String>,
    /// A consensus peer, `HOST:PORT` (DNS names allowed; repeatable). With `--join`, default: the
    /// joined node's p2p address. Peer discovery finds the others.
    #[arg(long = "peer", value_name = "HOST:PORT")]
    peers: Vec<String>,
    /// REST API listen address.
    #[arg(long, default_value = "127.0.0.1:26657")]
    api_listen: SocketAddr,
    /// Consensus p2p listen address.
    #[arg(long, default_value = "127.0.0.1:26656")]
    p2p_listen: SocketAddr,
    /// Target interval between block starts in milliseconds.
    #[arg(long, default_value_t = gonka_client::devnet::DEVNET_BLOCK_INTERVAL_MS)]
    block_interval_ms: u64,
    /// Serve inference with the embedded model (pulled now) as transfer agent and executor.
    #[arg(long)]
    serve: bool,
    /// The network's hosts are on private addresses (a LAN, a test's namespaces): as transfer agent,
    /// forward to executors there. Off by default, as anyone can register any URL.
    #[arg(long)]
    private_network: bool,
    /// Serve the embedded model and price it in the new chain's genesis (ngonka per token).
    #[arg(long, conflicts_with_all = ["join", "genesis"])]
    serve_price_per_token: Option<u128>,
    /// `text` or `json`.
    #[arg(long, default_value = "text")]
    output: OutputFormat,
}

/// Chain id of a chain `gonka init` makes when none is named.
const LOCAL_CHAIN_ID: &str = "gonka-local";

#[allow(clippy::print_stdout)]
pub(crate) fn init(args: &InitArgs) -> anyhow::Result<()> {
    let home = Home::new(&args.home);
    anyhow::ensure!(!home.is_initialized(), "{} is already initialized", args.home.display());
    for peer in &args.peers {
        gonka_consensus::peer_multiaddr(peer)?;
    }
    let serve = args.serve || args.serve_price_per_token.is_some();
    let model = if serve { Some(crate::default_model()?) } else { None };
    let joined = match (&args.join, &args.genesis) {
        (Some(url), _) => Some(fetch_genesis(url)?),
        (None, Some(path)) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let genesis: gonka_chain::Genesis =
                serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            Some(Joined { genesis, p2p_peer: None, gossip_peer: None })
        }
        (None, None) => None,
    };
    let mut config = NodeConfig {
        moniker: args.moniker.clone(),
        api_listen: args.api_listen,
        p2p_listen: args.p2p_listen,
        p2p_peers: args.peers.clone(),
        p2p_discovery: true,
        gossip_peers: Vec::new(),
        block_interval_ms: args.block_interval_ms,
        mempool: MempoolLimits::default(),
        poc: Default::default(),
        inference: gonka_node::inference::InferenceConfig {
            enabled: serve,
            allow_private_executors: args.private_network,
            ..Default::default()
        },
    };
    let Some(joined) = joined else {
        return init_new_chain(args, &home, &config, model);
    };
    let genesis = joined.genesis;
    if let Some(chain_id) = &args.chain_id {
        anyhow::ensure!(
            *chain_id == genesis.chain_id,
            "the genesis is for chain {:?}, not {chain_id:?}",
            genesis.chain_id
        );
    }
    let hash = genesis.hash().context("the network's genesis is invalid")?;
    confirm_genesis_hash(&genesis.chain_id, hash, args.genesis_hash.as_deref())?;
    if config.p2p_peers.is_empty() {
        config.p2p_peers.extend(joined.p2p_peer);
    }
    anyhow::ensure!(
        !config.p2p_peers.is_empty(),
        "name at least one consensus peer with --peer HOST:PORT (or use --join NODE_URL)"
    );
    config.gossip_peers.extend(joined.gossip_peer);
    let identity = init_home(&home, &config, &genesis.chain_id)?;
    home.write_genesis(&genesis)?;
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::json!({"home": args.home, "address": identity.address, "validator_key": identity.validator_key, "chain_id": genesis.chain_id, "genesis_hash": hash, "p2p_peers": config.p2p_peers})
        ),
        OutputFormat::Text => {
            println!(
                "initialized {} to join chain {} (genesis {hash})",
                args.home.display(),
                genesis.chain_id
            );
            println!("  host account   {}", identity.address);
            println!("  validator key  {}", identity.validator_key);
            println!("  peers          {}", config.p2p_peers.join(", "));
            println!("next:");
            println!("  1. fund {} (its registration pays a fee)", identity.address);
            println!("  2. gonka node start --home {}    (syncs from height 1)", args.home.display());
            println!(
                "  3. gonka tx host register --home {} --api-url http://PUBLIC-ADDRESS:{} --node http://{}",
                args.home.display(),
                args.api_listen.port(),
                args.api_listen
            );
        }
    }
    Ok(())
}

/// A network's genesis and the peers `--join` learnt with it.
struct Joined {
    genesis: gonka_chain::Genesis,
    p2p_peer: Option<String>,
    gossip_peer: Option<String>,
}

/// Fetches the genesis and the p2p address of the node at `url`.
fn fetch_genesis(url: &str) -> anyhow::Result<Joined> {
    let (base, host) = http_url("--join", url)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let (view, status) = runtime.block_on(async {
        let client = NodeClient::new(&base);
        let view = client.genesis().await.with_context(|| format!("fetching the genesis from {base}"))?;
        let status = client.status().await.with_context(|| format!("reading {base}/status"))?;
        anyhow::Ok((view, status))
    })?;
    anyhow::ensure!(
        view.genesis.chain_id == view.chain_id,
        "{base} serves a genesis of chain {:?} under chain id {:?}",
        view.genesis.chain_id,
        view.chain_id
    );
    // The node listens on an address of its own; from outside it is reached at the URL's host.
    let Some(p2p) = status.p2p_listen else {
        return Ok(Joined { genesis: view.genesis, p2p_peer: None, gossip_peer: Some(base) });
    };
    let p2p_peer = if p2p.ip().is_unspecified() || p2p.ip().is_loopback() {
        format!("{host}:{}", p2p.port())
    } else {
        p2p.to_string()
    };
    Ok(Joined { genesis: view.genesis, p2p_peer: Some(p2p_peer), gossip_peer: Some(base) })
}

/// Checks the genesis hash against the one the operator passed, or shows it and asks on a terminal.
#[allow(clippy::print_stdout)]
fn confirm_genesis_hash(
    chain_id: &str,
    hash: gonka_primitives::Hash,
    expected: Option<&str>,
) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if let Some(expected) = expected {
        let expected = gonka_primitives::Hash::from_hex(expected.trim())
            .with_context(|| format!("--genesis-hash {expected:?} is not 64 hex digits"))?;
        anyhow::ensure!(
            expected == hash,
            "the genesis of chain {chain_id} has hash {hash}, not {expected}: refusing to join (wrong node, or a forged genesis)"
        );
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "chain {chain_id} has genesis hash {hash}; check it against the network's announcement and pass \
             --genesis-hash {hash}"
        );
    }
    print!("chain {chain_id}, genesis hash {hash}\nis this the hash the network announces? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    anyhow::ensure!(matches!(answer.trim(), "y" | "Y" | "yes"), "not confirmed; nothing written");
    Ok(())
}

/// `gonka init` without `--join`: a new single-validator chain.
#[allow(clippy::print_stdout)]
fn init_new_chain(
    args: &InitArgs,
    home: &Home,
    config: &NodeConfig,
    model: Option<gonka_engine::store::InstalledModel>,
) -> anyhow::Result<()> {
    let chain_id = args.chain_id.clone().unwrap_or_else(|| LOCAL_CHAIN_ID.to_string());
    let mut params = Params::devnet(Address([0; 20]));
    if let (Some(price), Some(model)) = (args.serve_price_per_token, model) {
        params.inference.models.push(model_price(model, Amount(price))?);
    }
    let identity = init_home(home, config, &chain_id)?;
    params.authority = identity.address;
    // An unspecified listen address is where the node listens, not where it is reached: the genesis
    // names loopback then (`gonka tx host update --api-url` sets the public one).
    let mut public = args.api_listen;
    if public.ip().is_unspecified() {
        public.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let api_url = format!("http://{public}");
    let accounts = vec![GenesisAccount { address: identity.address, balance: HOST_BALANCE }];
    let genesis = genesis_for(&chain_id, params, &[(identity.clone(), api_url)], accounts, Vec::new());
    home.write_genesis(&genesis)?;
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::json!({"home": args.home, "address": identity.address, "validator_key": identity.validator_key, "chain_id": chain_id, "genesis_hash": genesis.hash()?})
        ),
        OutputFormat::Text => {
            println!("initialized {}", args.home.display());
            println!("  host account   {}", identity.address);
            println!("  validator key  {}", identity.validator_key);
            println!(
                "  chain id       {} (single-validator genesis; start with `gonka node start --home {}`)",
                chain_id,
                args.home.display()
            );
            println!("  genesis hash   {}", genesis.hash()?);
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub(crate) enum NodeCommand {
    /// Run the node in the foreground until Ctrl-C or SIGTERM.
    Start {
        /// Node home.
        #[arg(long, env = "GONKA_NODE_HOME", default_value_os_t = default_node_home())]
        home: PathBuf,
    },
}

pub(crate) fn node(command: NodeCommand) -> anyhow::Result<()> {
    let NodeCommand::Start { home } = command;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            tokio::select! {
                () = crate::wait_for_termination() => tracing::info!("shutting down"),
                () = parent_gone() => tracing::warn!("the devnet that started this node is gone; shutting down"),
            }
            let _ = stop.send(true);
        });
        gonka_node::run(&Home::new(home), stopped).await
    })
}

/// Resolves when this node was started by `gonka devnet` (`GONKA_EXIT_WITH_PARENT=1`) and that process
/// died without stopping it (killed with SIGKILL, say): the orphan then re-parents and stops itself.
pub(crate) async fn parent_gone() {
    if std::env::var_os("GONKA_EXIT_WITH_PARENT").is_none() {
        return std::future::pending().await;
    }
    let parent = nix::unistd::getppid();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if nix::unistd::getppid() != parent {
            return;
        }
    }
}

/// Where the node's REST API is.
#[derive(Args, Debug, Clone)]
pub(crate) struct NodeArgs {
    /// REST base URL of a node.
    #[arg(long, env = "GONKA_NODE", default_value = "http://127.0.0.1:26657")]
    node: String,
    /// `text` or `json`.
    #[arg(long, default_value = "text")]
    output: OutputFormat,
}

#[derive(Subcommand, Debug)]
pub(crate) enum TxCommand {
    /// Bank transactions.
    #[command(subcommand)]
    Bank(BankCommand),
    /// Host collateral: what vouches for the requests a host forwards as a transfer agent.
    #[command(subcommand)]
    Collateral(CollateralCommand),
    /// Rewards: claim a settled epoch by hand (the host claims by itself in the claim window).
    #[command(subcommand)]
    Rewards(RewardsCommand),
    /// Hosts: register this home's account as a host, or change its public API URL.
    #[command(subcommand)]
    Host(HostCommand),
    /// Register the key's account as a developer.
    RegisterDeveloper {
        /// Key name.
        from: String,
        #[command(flatten)]
        submit: SubmitArgs,
    },
}

/// How a transaction is signed and submitted.
#[derive(Args, Debug)]
pub(crate) struct SubmitArgs {
    #[command(flatten)]
    keyring: KeyringArgs,
    #[command(flatten)]
    node: NodeArgs,
    /// Wait until the transaction is in a block.
    #[arg(long)]
    wait: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum HostCommand {
    /// Register the home's account (key `host`) as a host, with the home's consensus key and its
    /// operational key (`host-ops`): the host takes part in the next PoC, and its weight makes it a
    /// validator. Registering again replaces the URL and keys.
    Register {
        /// The public base URL of this node's API, where developers' transfer agents and other hosts
        /// reach it (`http://` or `https://`).
        #[arg(long)]
        api_url: String,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Change the registered host's public API URL (signed with the operational key `host-ops`).
    Update {
        /// The new public base URL.
        #[arg(long)]
        api_url: String,
        #[command(flatten)]
        submit: SubmitArgs,
    },
}

/// `url`, given as `flag`, as an http(s) URL with a host and no trailing slash, and that host.
fn http_url(flag: &str, url: &str) -> anyhow::Result<(String, String)> {
    let trimmed = url.trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed).with_context(|| format!("{flag} {url:?} is not a URL"))?;
    let host = parsed.host_str().filter(|_| matches!(parsed.scheme(), "http" | "https"));
    let host =
        host.with_context(|| format!("{flag} {url:?} must be an http:// or https:// URL with a host"))?;
    Ok((trimmed.to_string(), host.to_string()))
}

/// `url` as a host's public API URL: http(s), with a host, no trailing slash.
fn public_api_url(url: &str) -> anyhow::Result<String> {
    let (trimmed, host) = http_url("--api-url", url)?;
    let ip = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok();
    anyhow::ensure!(
        !ip.is_some_and(|ip| ip.is_unspecified()),
        "--api-url {url:?}: an unspecified address (0.0.0.0) is where a node listens, not where others reach it"
    );
    Ok(trimmed)
}

#[derive(Subcommand, Debug)]
pub(crate) enum BankCommand {
    /// Send coins: `gonka tx bank send FROM_KEY TO_ADDRESS AMOUNT` (AMOUNT in ngonka, or e.g. `1.5gnk`).
    Send {
        /// Key name of the sender.
        from: String,
        /// Recipient address.
        to: String,
        /// Amount: `1000` (ngonka), `1000ngonka` or `2.5gnk`.
        amount: String,
        #[command(flatten)]
        submit: SubmitArgs,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum CollateralCommand {
    /// Lock part of a host's balance as collateral: `gonka tx collateral deposit HOST_KEY AMOUNT`.
    Deposit {
        /// Key name of the host account.
        from: String,
        /// Amount: `1000` (ngonka), `1000ngonka` or `2.5gnk`.
        amount: String,
        #[command(flatten)]
        submit: SubmitArgs,
    },
    /// Start unbonding collateral; it returns to the balance after the chain's unbonding time.
    Withdraw {
        /// Key name of the host account.
        from: String,
        /// Amount: `1000` (ngonka), `1000ngonka` or `2.5gnk`.
        amount: String,
        #[command(flatten)]
        submit: SubmitArgs,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum RewardsCommand {
    /// Claim the host's settled epoch: `gonka tx rewards claim OPERATIONAL_KEY --host ADDRESS`. The key
    /// is the host's operational key (its epoch seed is what the host committed); it signs for the host.
    Claim {
        /// Key name of the host's operational key.
        from: String,
        /// The host's account address.
        #[arg(long)]
        host: String,
        /// The settled epoch (default: the one waiting).
        #[arg(long)]
        epoch: Option<u64>,
        #[command(flatten)]
        submit: SubmitArgs,
    },
}

fn positive_amount(amount: &str) -> anyhow::Result<Amount> {
    let parsed = Amount::parse(amount)
        .with_context(|| format!("amount {amount:?}: use ngonka (e.g. 1000) or GNK (e.g. 1.5gnk)"))?;
    anyhow::ensure!(parsed.0 > 0, "amount must be positive");
    Ok(parsed)
}

#[allow(clippy::print_stdout)]
fn print(value: &impl Serialize, output: OutputFormat) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string(value)?),
        OutputFormat::Text => println!("{}", serde_json::to_string_pretty(value)?),
    }
    Ok(())
}

async fn sign_and_send(submit: &SubmitArgs, from: &str, messages: Vec<Msg>) -> anyhow::Result<()> {
    let key = submit.keyring.load(from)?;
    sign_and_send_for(submit, &key, key.address(), messages).await
}

/// Signs `messages` with `key` for `account` (its own, or a host's when `key` is its operational key).
async fn sign_and_send_for(
    submit: &SubmitArgs,
    key: &gonka_primitives::AccountKey,
    account: Address,
    messages: Vec<Msg>,
) -> anyhow::Result<()> {
    let SubmitArgs { node, wait, .. } = submit;
    let client = NodeClient::new(&node.node);
    let chain_id = client.status().await?.chain.chain_id;
    let sequence = client.account(&account).await?.sequence;
    let tx =
        gonka_chain::TxBody { chain_id, account, signer: key.public_key(), sequence, messages }.sign(key);
    let submitted = client.submit(&tx).await?;
    if !submitted.accepted {
        bail!("transaction {} rejected: {}", tx.hash(), submitted.error.as_deref().unwrap_or("rejected"));
    }
    if !*wait {
        return print(&submitted, node.output);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let included = loop {
        if let Ok(Some(included)) = client.tx(&tx.hash()).await {
            break included;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("transaction {} was accepted but not included within 60 s", tx.hash());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    print(&included, node.output)?;
    if let Some(result) = included.result.as_ref().filter(|r| !r.ok) {
        bail!(
            "transaction {} failed in block {}: {}",
            tx.hash(),
            included.height,
            result.error.as_deref().unwrap_or("unknown error")
        );
    }
    Ok(())
}

pub(crate) fn tx(command: TxCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        match command {
            TxCommand::Bank(BankCommand::Send { from, to, amount, submit }) => {
                let to: Address = to.parse().with_context(|| format!("recipient {to:?}"))?;
                let amount = positive_amount(&amount)?;
                sign_and_send(&submit, &from, vec![Msg::Bank(BankMsg::Send { to, amount })]).await
            }
            TxCommand::Collateral(CollateralCommand::Deposit { from, amount, submit }) => {
                let amount = positive_amount(&amount)?;
                let msg = Msg::Collateral(CollateralMsg::Deposit { amount });
                sign_and_send(&submit, &from, vec![msg]).await
            }
            TxCommand::Collateral(CollateralCommand::Withdraw { from, amount, submit }) => {
                let amount = positive_amount(&amount)?;
                let msg = Msg::Collateral(CollateralMsg::Withdraw { amount });
                sign_and_send(&submit, &from, vec![msg]).await
            }
            TxCommand::Rewards(RewardsCommand::Claim { from, host, epoch, submit }) => {
                let host: Address = host.parse().with_context(|| format!("host {host:?}"))?;
                let key = submit.keyring.load(&from)?;
                let client = NodeClient::new(&submit.node.node);
                let epoch = match epoch {
                    Some(epoch) => epoch,
                    None => client
                        .rewards(&host)
                        .await?
                        .claimable
                        .map(|c| c.epoch)
                        .with_context(|| format!("{host} has no settled epoch waiting to be claimed"))?,
                };
                let chain_id = client.status().await?.chain.chain_id;
                let seed = gonka_host::protocol::epoch_seed(&key, &chain_id, epoch);
                let msg = Msg::Rewards(gonka_chain::RewardsMsg::Claim { epoch, seed });
                sign_and_send_for(&submit, &key, host, vec![msg]).await
            }
            TxCommand::Host(HostCommand::Register { api_url, submit }) => {
                let api_url = public_api_url(&api_url)?;
                let home = Home::new(&submit.keyring.home);
                let validator_key = home.validator_key()?.public_key();
                let operational_key = submit.keyring.keyring().show(OPERATIONAL_KEY)?.public_key;
                let msg =
                    Msg::Hosts(gonka_chain::HostsMsg::Register { api_url, validator_key, operational_key });
                sign_and_send(&submit, HOST_KEY, vec![msg]).await
            }
            TxCommand::Host(HostCommand::Update { api_url, submit }) => {
                let api_url = public_api_url(&api_url)?;
                let account = submit.keyring.keyring().show(HOST_KEY)?.address;
                let key = submit.keyring.load(OPERATIONAL_KEY)?;
                let msg = Msg::Hosts(gonka_chain::HostsMsg::UpdateUrl { api_url });
                sign_and_send_for(&submit, &key, account, vec![msg]).await
            }
            TxCommand::RegisterDeveloper { from, submit } => {
                sign_and_send(&submit, &from, vec![Msg::Inference(InferenceMsg::RegisterDeveloper)]).await
            }
        }
    })
}

#[derive(Subcommand, Debug)]
pub(crate) enum QueryCommand {
    /// Height, app hash, epoch, phase, peers.
    Status(NodeArgs),
    /// A block by height (latest when omitted).
    Block {
        /// Height.
        height: Option<u64>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// A committed transaction with its result.
    Tx {
        /// Hash (hex).
        hash: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Balance and sequence of an address, or of a key with `--key`.
    Account {
        /// Address (or key name with --key).
        address: String,
        /// Treat the argument as a key name in the keyring.
        #[arg(long)]
        key: bool,
        #[command(flatten)]
        keyring: KeyringArgs,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Registered hosts.
    Participants(NodeArgs),
    /// The validator set of the next height.
    Validators(NodeArgs),
    /// Chain parameters.
    Params(NodeArgs),
    /// The current epoch, phase and stage heights.
    Epoch(NodeArgs),
    /// One inference: receipts, cost, executor, status, validations and the vote over it.
    Inference {
        /// The inference id (the `X-Inference-Id` of the answer).
        id: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// An address's rewards: fees owed by epoch, the settlement waiting for its claim (and until when),
    /// the vesting schedule and its settled epochs.
    Rewards {
        /// The address.
        address: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// A host's collateral, unbonding collateral and waiting withdrawals.
    Collateral {
        /// The address.
        address: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// A model's current price per token and the load behind it (name or content hash).
    Price {
        /// The model's name (as in `/v1/models`) or content hash.
        model: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// The supply: every pool (balances, escrows, fees, owed, settled, vesting, collateral, unbonding),
    /// genesis supply, minted, burned, the cap, and whether it all balances.
    Supply(NodeArgs),
    /// One host: power, collateral, and its standing (status, reputation, validated and invalidated
    /// answers).
    Participant {
        /// The host's address.
        address: String,
        #[command(flatten)]
        node: NodeArgs,
    },
}

pub(crate) fn query(command: QueryCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        match command {
            QueryCommand::Status(node) => print(&NodeClient::new(&node.node).status().await?, node.output),
            QueryCommand::Block { height, node } => {
                print(&NodeClient::new(&node.node).block(height).await?, node.output)
            }
            QueryCommand::Tx { hash, node } => {
                let hash = gonka_primitives::Hash::from_hex(&hash).context("a tx hash is 64 hex digits")?;
                let found = NodeClient::new(&node.node).tx(&hash).await?;
                print(&found.with_context(|| format!("no committed tx {hash}"))?, node.output)
            }
            QueryCommand::Account { address, key, keyring, node } => {
                let address: Address = if key {
                    keyring.keyring().show(&address)?.address
                } else {
                    address.parse().map_err(|e| anyhow::anyhow!("{address:?} is not an address: {e}"))?
                };
                print(&NodeClient::new(&node.node).account(&address).await?, node.output)
            }
            QueryCommand::Participants(node) => {
                print(&NodeClient::new(&node.node).participants().await?, node.output)
            }
            QueryCommand::Validators(node) => {
                print(&NodeClient::new(&node.node).validators().await?, node.output)
            }
            QueryCommand::Params(node) => print(&NodeClient::new(&node.node).params().await?, node.output),
            QueryCommand::Epoch(node) => print(&NodeClient::new(&node.node).epoch().await?, node.output),
            QueryCommand::Inference { id, node } => {
                let id = gonka_primitives::Hash::from_hex(&id).context("an inference id is 64 hex digits")?;
                let found = NodeClient::new(&node.node).inference(&id).await?;
                print(
                    &found.with_context(|| format!("no inference {id} (never seen, or pruned)"))?,
                    node.output,
                )
            }
            QueryCommand::Rewards { address, node } => {
                let address: Address = address.parse().context("not a gonka address")?;
                print(&NodeClient::new(&node.node).rewards(&address).await?, node.output)
            }
            QueryCommand::Collateral { address, node } => {
                let address: Address = address.parse().context("not a gonka address")?;
                print(&NodeClient::new(&node.node).collateral(&address).await?, node.output)
            }
            QueryCommand::Price { model, node } => {
                print(&NodeClient::new(&node.node).price(&model).await?, node.output)
            }
            QueryCommand::Supply(node) => {
                let supply = NodeClient::new(&node.node).supply().await?;
                print(&supply, node.output)?;
                anyhow::ensure!(supply.balanced, "the supply does not balance");
                Ok(())
            }
            QueryCommand::Participant { address, node } => {
                let address: Address = address.parse().context("not a gonka address")?;
                let found = NodeClient::new(&node.node).participant(&address).await?;
                print(&found.with_context(|| format!("{address} is not a registered host"))?, node.output)
            }
        }
    })
}

//! `gonka init`, `gonka node start`, `gonka tx …` and `gonka query …`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use gonka_chain::{GenesisAccount, Msg, Params, Tx};
use gonka_node::devnet::{HOST_BALANCE, genesis_for, init_home};
use gonka_node::home::{Home, NodeConfig};
use gonka_node::mempool::MempoolLimits;
use gonka_primitives::codec::Encode;
use gonka_primitives::{Address, Amount};
use serde_json::Value;

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
    /// Chain id of the single-validator genesis written here (replace `genesis.json` to join another chain).
    #[arg(long, default_value = "gonka-local")]
    chain_id: String,
    /// REST API listen address.
    #[arg(long, default_value = "127.0.0.1:26657")]
    api_listen: SocketAddr,
    /// Consensus p2p listen address.
    #[arg(long, default_value = "127.0.0.1:26656")]
    p2p_listen: SocketAddr,
    /// Target interval between block starts in milliseconds.
    #[arg(long, default_value_t = gonka_node::devnet::DEVNET_BLOCK_INTERVAL_MS)]
    block_interval_ms: u64,
    /// Serve the embedded model: pull it, price it in genesis (ngonka per token) and enable the
    /// OpenAI-compatible endpoint of this host.
    #[arg(long)]
    serve_price_per_token: Option<u128>,
    /// `text` or `json`.
    #[arg(long, default_value = "text")]
    output: OutputFormat,
}

#[allow(clippy::print_stdout)]
pub(crate) fn init(args: &InitArgs) -> anyhow::Result<()> {
    let home = Home::new(&args.home);
    let config = NodeConfig {
        moniker: args.moniker.clone(),
        api_listen: args.api_listen,
        p2p_listen: args.p2p_listen,
        p2p_peers: Vec::new(),
        gossip_peers: Vec::new(),
        block_interval_ms: args.block_interval_ms,
        mempool: MempoolLimits::default(),
        poc: Default::default(),
        inference: gonka_node::inference::InferenceConfig {
            enabled: args.serve_price_per_token.is_some(),
            ..Default::default()
        },
    };
    let mut params = Params::devnet(Address([0; 20]));
    if let Some(price) = args.serve_price_per_token {
        let model = crate::default_model()?;
        let content_hash = gonka_primitives::Hash::from_hex(&model.content_hash)
            .with_context(|| format!("model hash {} is not 64 hex digits", model.content_hash))?;
        params.inference.models.push(gonka_chain::ModelPrice {
            name: model.name,
            content_hash,
            price_per_token: Amount(price),
        });
    }
    let identity = init_home(&home, &config)?;
    params.authority = identity.address;
    let api_url = format!("http://{}", args.api_listen);
    let accounts = vec![GenesisAccount { address: identity.address, balance: HOST_BALANCE }];
    let genesis = genesis_for(&args.chain_id, params, &[(identity.clone(), api_url)], accounts, Vec::new());
    home.write_genesis(&genesis)?;
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::json!({"home": args.home, "address": identity.address, "validator_key": identity.validator_key, "chain_id": args.chain_id})
        ),
        OutputFormat::Text => {
            println!("initialized {}", args.home.display());
            println!("  host account   {}", identity.address);
            println!("  validator key  {}", identity.validator_key);
            println!(
                "  chain id       {} (single-validator genesis; start with `gonka node start --home {}`)",
                args.chain_id,
                args.home.display()
            );
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

pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    pub(crate) fn new(base: &str) -> Client {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
        Client { http, base: base.trim_end_matches('/').to_string() }
    }

    /// GET a JSON path; a JSON error body becomes an error with its message.
    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let response = self.http.get(&url).send().await.with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let body: Value = response.json().await.with_context(|| format!("{url} did not return JSON"))?;
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("request failed");
            bail!("{url}: {status}: {message}");
        }
        Ok(body)
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<(reqwest::StatusCode, Value)> {
        let url = format!("{}{path}", self.base);
        let response =
            self.http.post(&url).json(body).send().await.with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let body: Value = response.json().await.with_context(|| format!("{url} did not return JSON"))?;
        Ok((status, body))
    }
}

#[allow(clippy::print_stdout)]
fn print(value: &Value, output: OutputFormat) {
    match output {
        OutputFormat::Json => println!("{value}"),
        OutputFormat::Text => println!("{}", serde_json::to_string_pretty(value).unwrap_or_default()),
    }
}

async fn sign_and_send(submit: &SubmitArgs, from: &str, messages: Vec<Msg>) -> anyhow::Result<()> {
    let SubmitArgs { keyring, node, wait } = submit;
    let key = keyring.load(from)?;
    let client = Client::new(&node.node);
    let status = client.get("/status").await?;
    let chain_id = status["chain_id"].as_str().context("node status has no chain_id")?;
    let account = client.get(&format!("/accounts/{}", key.address())).await?;
    let sequence = account["sequence"].as_u64().context("account has no sequence")?;
    let tx = Tx::new(chain_id, &key, sequence, messages);
    let (code, mut body) =
        client.post("/txs", &serde_json::json!({"tx": hex::encode(tx.to_bytes())})).await?;
    if !code.is_success() {
        let error =
            body["error"].as_str().or(body["error"]["message"].as_str()).unwrap_or("rejected").to_string();
        bail!("transaction {} rejected: {error}", tx.hash());
    }
    if *wait {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(included) = client.get(&format!("/txs/{}", tx.hash())).await {
                body = included;
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("transaction {} was accepted but not included within 60 s", tx.hash());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if body["result"]["ok"] == Value::Bool(false) {
            print(&body, node.output);
            bail!(
                "transaction {} failed in block {}: {}",
                tx.hash(),
                body["height"],
                body["result"]["error"]
            );
        }
    }
    print(&body, node.output);
    Ok(())
}

pub(crate) fn tx(command: TxCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        match command {
            TxCommand::Bank(BankCommand::Send { from, to, amount, submit }) => {
                let to: Address = to.parse().with_context(|| format!("recipient {to:?}"))?;
                let amount = Amount::parse(&amount).with_context(|| {
                    format!("amount {amount:?}: use ngonka (e.g. 1000) or GNK (e.g. 1.5gnk)")
                })?;
                anyhow::ensure!(amount.0 > 0, "amount must be positive");
                sign_and_send(&submit, &from, vec![Msg::BankSend { to, amount }]).await
            }
            TxCommand::RegisterDeveloper { from, submit } => {
                sign_and_send(&submit, &from, vec![Msg::RegisterDeveloper]).await
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
}

pub(crate) fn query(command: QueryCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let (node, path) = match command {
            QueryCommand::Status(node) => (node, "/status".to_string()),
            QueryCommand::Block { height, node } => {
                (node, height.map_or("/blocks/latest".to_string(), |h| format!("/blocks/{h}")))
            }
            QueryCommand::Tx { hash, node } => (node, format!("/txs/{hash}")),
            QueryCommand::Account { address, key, keyring, node } => {
                let address =
                    if key { keyring.keyring().show(&address)?.address.to_string() } else { address };
                (node, format!("/accounts/{address}"))
            }
            QueryCommand::Participants(node) => (node, "/participants".to_string()),
            QueryCommand::Validators(node) => (node, "/validators".to_string()),
            QueryCommand::Params(node) => (node, "/params".to_string()),
            QueryCommand::Epoch(node) => (node, "/epoch".to_string()),
        };
        let value = Client::new(&node.node).get(&path).await?;
        print(&value, node.output);
        Ok(())
    })
}

//! Run a gonka node: open the chain from its home, serve the REST API, gossip transactions, let
//! Malachite consensus drive block production, and act as a host: race and validate Proof of Compute,
//! serve paid inference as transfer agent and executor.
//!
//! The node is wiring and shells: what a host decides is `gonka-host`'s pure planners; what the chain
//! does is `gonka-chain`'s; this crate performs their actions (engine jobs, signed transactions, HTTP)
//! and keeps the config, keyring, store, consensus, REST API and metrics.
#![deny(missing_docs)]

pub mod chain;
pub mod gossip;
pub mod home;
pub mod host;
pub mod inference;
pub mod keyring;
pub mod mempool;
pub mod metrics;
pub mod rest;
pub mod signer;

use std::sync::Arc;

use anyhow::Context;
use gonka_consensus::{ConsensusConfig, ConsensusHandle};
use gonka_store::Store;
use tokio::sync::{mpsc, watch};

pub use chain::{Chain, ChainApp, ChainOptions, Clock, SystemClock};
pub use home::{Home, NodeConfig};

/// Runs the node in `home` until `shutdown` turns true or a component fails.
pub async fn run(home: &Home, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let config = home.config()?;
    let genesis = home.genesis()?;
    let genesis_hash = genesis.hash().context("the genesis is invalid")?;
    let validator_key = home.validator_key()?;
    std::fs::create_dir_all(home.data_dir())?;
    let store_path = home.data_dir().join("chain.redb");
    let store = Store::open(&store_path).with_context(|| format!("opening {}", store_path.display()))?;
    let options = ChainOptions { mempool: config.mempool, ..ChainOptions::default() };
    let chain = Arc::new(Chain::open(store, &genesis, options)?);
    let (height, app_hash) = chain.with_state(|s| (s.height(), s.meta.app_hash));
    tracing::info!(moniker = %config.moniker, chain_id = %genesis.chain_id, %genesis_hash, height, %app_hash, validator = %validator_key.public_key(), "chain opened");

    let handle = ConsensusHandle::new();
    let (gossip_tx, gossip_rx) = mpsc::channel(gossip::GOSSIP_QUEUE);
    let host_status = Arc::new(host::HostStatus::default());
    let metrics = Arc::new(metrics::NodeMetrics::new());
    let keys = host_keys(home);
    let host_address = keys.as_ref().ok().map(|k| k.account);
    let gossip_for_rest = gossip_tx.clone();
    let gossip_for_rebroadcast = gossip_tx.clone();
    let signer = match keys {
        Ok(keys) => Some(Arc::new(signer::HostSigner::new(chain.clone(), gossip_tx, keys))),
        Err(error) => {
            tracing::warn!(%error, "no usable host keys: this node will not run PoC, validate or serve inference");
            None
        }
    };
    if signer.is_some() && config.poc.enabled {
        let spec = chain.with_state(|s| s.params().poc.model.clone());
        if let Some(memory) = host::machine_memory_bytes() {
            host::check_poc_fits(&spec, memory)?;
        }
    }
    let host_task = signer.clone().map(|signer| {
        tracing::info!(account = %signer.account(), "host logic follows the chain's PoC phases");
        let host = host::Host::new(signer, config.poc, host_status.clone(), metrics.clone());
        tokio::spawn(host.run(shutdown.clone()))
    });
    let inference = match (&signer, config.inference.enabled) {
        (Some(signer), true) => {
            Some(start_inference(home, signer.clone(), config.inference, metrics.clone(), shutdown.clone())?)
        }
        _ => None,
    };
    let validation_status = Arc::new(inference::validator::ValidationStatus::default());
    let validation_task = inference.clone().map(|service| {
        tokio::spawn(inference::validator::run(
            service,
            validation_status.clone(),
            metrics.clone(),
            shutdown.clone(),
        ))
    });
    let context = Arc::new(rest::RestContext {
        chain: chain.clone(),
        batches: Arc::default(),
        consensus: handle.clone(),
        gossip: gossip_for_rest,
        validator_key: validator_key.public_key(),
        moniker: config.moniker.clone(),
        p2p_listen: config.p2p_listen,
        host: host_status,
        validation: validation_status,
        host_address,
        metrics,
        engine: inference.as_ref().map(|service| service.engine_handle()),
        genesis: Arc::new(rest::GenesisView {
            chain_id: genesis.chain_id.clone(),
            genesis_hash,
            genesis: genesis.clone(),
        }),
    });
    let listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .with_context(|| format!("binding the REST API to {}", config.api_listen))?;
    tracing::info!(address = %config.api_listen, "REST API listening");
    let mut api_shutdown = shutdown.clone();
    let mut app = rest::router(context);
    if let Some(service) = &inference {
        app = app.merge(inference::router(service.clone()));
    }
    let api = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = api_shutdown.wait_for(|stop| *stop).await;
            })
            .await
    });
    let gossip_peers = gossip::Peers {
        configured: config.gossip_peers.clone(),
        chain: chain.clone(),
        me: host_address,
        private_network: config.inference.allow_private_executors,
    };
    let gossip = tokio::spawn(gossip::run(gossip_peers, gossip_rx));
    let rebroadcast = tokio::spawn(gossip::rebroadcast(chain.clone(), gossip_for_rebroadcast));

    let consensus_config = ConsensusConfig {
        home: home.data_dir().join("consensus"),
        private_key: validator_key.secret_bytes(),
        listen: config.p2p_listen,
        peers: config.p2p_peers.clone(),
        discovery: config.p2p_discovery,
        block_interval_ms: config.block_interval_ms,
        timeouts: Default::default(),
        max_block_bytes: genesis.params.limits.max_block_bytes as usize + 4096,
    };
    let consensus = gonka_consensus::run(
        consensus_config,
        ChainApp::new(chain.clone(), signer.clone()),
        handle,
        shutdown.clone(),
    );
    let result = tokio::select! {
        result = consensus => result,
        reason = chain.halted() => Err(anyhow::anyhow!("the chain halted: {reason}")),
    };
    // Consensus ended (shutdown or failure): stop the rest too.
    api.abort();
    gossip.abort();
    rebroadcast.abort();
    if let Some(task) = host_task {
        task.abort();
    }
    if let Some(task) = validation_task {
        task.abort();
    }
    result
}

/// Loads the embedded model and starts serving inference as TA and executor; on every committed block
/// receipts that did not land are resubmitted, and payloads are pruned.
fn start_inference(
    home: &Home,
    signer: Arc<signer::HostSigner>,
    config: inference::InferenceConfig,
    metrics: Arc<metrics::NodeMetrics>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Arc<inference::InferenceService>> {
    use gonka_engine::store::{DEFAULT_MODEL, ModelStore, gonka_home};
    let model =
        ModelStore::new(&gonka_home()).ensure(&DEFAULT_MODEL).context("installing the embedded model")?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = |layers| {
        gonka_engine::Engine::load(
            &model.path,
            &model.name,
            &model.content_hash,
            gonka_engine::EngineConfig { threads, layers, defaults: model.defaults, ..Default::default() },
        )
        .with_context(|| format!("loading {}", model.path.display()))
    };
    let engine = load(None)?;
    let cheap: Option<Arc<dyn gonka_engine::Backend>> = match config.cheat {
        Some(cheat) => {
            tracing::warn!(%cheat, "THIS HOST CHEATS AS AN EXECUTOR (devnet demonstration): validators will catch it");
            if cheat.uses_cheap_model() {
                Some(Arc::new(load(Some(inference::cheat::CHEAP_LAYERS))?))
            } else {
                None
            }
        }
        None => None,
    };
    let payloads = inference::PayloadStore::open(&home.data_dir().join("payloads.redb"))?;
    let chain = signer.chain().clone();
    let service = Arc::new(inference::InferenceService::new(
        signer,
        Arc::new(engine),
        cheap,
        gonka_api::ApiLimits::default(),
        config,
        payloads,
        metrics,
    )?);
    tracing::info!(model = %model.name, hash = %model.content_hash, "serving inference");
    let pruning = service.clone();
    let mut blocks = chain.subscribe();
    let mut shutdown = shutdown;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                block = blocks.recv() => match block {
                    Ok(block) => {
                        pruning.resubmit_receipts();
                        if block.height % 32 == 0 {
                            pruning.prune_payloads(block.height);
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                _ = shutdown.changed() => break,
            }
        }
    });
    Ok(service)
}

/// The host account (key `host`) and the operational key (`host-ops`) from the home's keyring. The
/// operational key must be stored without a passphrase: the node signs with it unattended.
fn host_keys(home: &Home) -> anyhow::Result<signer::HostKeys> {
    let keyring = home.keyring();
    let account = keyring.show(home::HOST_KEY)?.address;
    let operational = keyring.load(home::OPERATIONAL_KEY, None)?;
    Ok(signer::HostKeys { account, operational })
}

//! Run a gonka node: open the chain from its home, serve the REST API, gossip transactions and let
//! Malachite consensus drive block production.
#![deny(missing_docs)]

pub mod chain;
pub mod devnet;
pub mod gossip;
pub mod home;
pub mod host;
pub mod keyring;
pub mod mempool;
pub mod rest;

use std::sync::Arc;

use anyhow::Context;
use gonka_consensus::{ConsensusConfig, ConsensusHandle};
use gonka_store::Store;
use tokio::sync::{mpsc, watch};

pub use chain::{Chain, ChainApp};
pub use home::{Home, NodeConfig};

/// Runs the node in `home` until `shutdown` turns true or a component fails.
pub async fn run(home: &Home, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let config = home.config()?;
    let genesis = home.genesis()?;
    let validator_key = home.validator_key()?;
    std::fs::create_dir_all(home.data_dir())?;
    let store_path = home.data_dir().join("chain.redb");
    let store = Store::open(&store_path).with_context(|| format!("opening {}", store_path.display()))?;
    let chain = Arc::new(Chain::open(store, &genesis, config.mempool)?);
    let (height, app_hash) = chain.with_state(|s| (s.height(), s.meta.app_hash));
    tracing::info!(moniker = %config.moniker, height, %app_hash, validator = %validator_key.public_key(), "chain opened");

    let handle = ConsensusHandle::new();
    let (gossip_tx, gossip_rx) = mpsc::channel(gossip::GOSSIP_QUEUE);
    let host_status = Arc::new(host::HostStatus::default());
    let context = Arc::new(rest::RestContext {
        chain: chain.clone(),
        consensus: handle.clone(),
        gossip: gossip_tx.clone(),
        validator_key: validator_key.public_key(),
        moniker: config.moniker.clone(),
        host: host_status.clone(),
    });
    let host_task = match host_keys(home) {
        Ok(keys) => {
            tracing::info!(account = %keys.account, "host logic follows the chain's PoC phases");
            let host = host::Host::new(chain.clone(), gossip_tx, keys, config.poc, host_status);
            Some(tokio::spawn(host.run(shutdown.clone())))
        }
        Err(error) => {
            tracing::warn!(%error, "no usable host keys: this node will not run PoC or validate");
            None
        }
    };
    let listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .with_context(|| format!("binding the REST API to {}", config.api_listen))?;
    tracing::info!(address = %config.api_listen, "REST API listening");
    let mut api_shutdown = shutdown.clone();
    let api = tokio::spawn(async move {
        axum::serve(listener, rest::router(context))
            .with_graceful_shutdown(async move {
                let _ = api_shutdown.wait_for(|stop| *stop).await;
            })
            .await
    });
    let gossip = tokio::spawn(gossip::run(config.gossip_peers.clone(), gossip_rx));

    let consensus_config = ConsensusConfig {
        home: home.data_dir().join("consensus"),
        private_key: validator_key.secret_bytes(),
        listen: config.p2p_listen,
        peers: config.p2p_peers.clone(),
        block_interval_ms: config.block_interval_ms,
        timeouts: Default::default(),
        max_block_bytes: genesis.params.limits.max_block_bytes as usize + 4096,
    };
    let result = gonka_consensus::run(consensus_config, ChainApp::new(chain), handle, shutdown.clone()).await;
    // Consensus ended (shutdown or failure): stop the rest too.
    api.abort();
    gossip.abort();
    if let Some(task) = host_task {
        task.abort();
    }
    result
}

/// The host account (key `host`) and the operational key (`host-ops`) from the home's keyring. The
/// operational key must be stored without a passphrase: the node signs with it unattended.
fn host_keys(home: &Home) -> anyhow::Result<host::HostKeys> {
    let keyring = home.keyring();
    let account = keyring.show(home::HOST_KEY)?.address;
    let operational = keyring.load(home::OPERATIONAL_KEY, None)?;
    Ok(host::HostKeys { account, operational })
}

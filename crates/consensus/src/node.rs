//! Starting, running and stopping the engine.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{Instrument, error, info, warn};

use malachitebft_app_channel::app::config::{
    BootstrapProtocol, ConsensusConfig as EngineConsensusConfig, NodeConfig, Selector, ValuePayload,
    ValueSyncConfig,
};
use malachitebft_app_channel::app::engine::node::NodeRef;
use malachitebft_app_channel::app::net::Multiaddr;
use malachitebft_app_channel::app::types::Keypair;
use malachitebft_app_channel::app::types::codec::Codec;
use malachitebft_app_channel::app::types::core::LinearTimeouts;
use malachitebft_app_channel::{
    Channels, ConsensusContext, EngineBuilder, EngineHandle, NetworkContext, NetworkIdentity, NetworkRequest,
    RequestContext, Signer, SyncContext, WalContext,
};
use malachitebft_signing_ed25519::PrivateKey;

use crate::codec::WireCodec;
use crate::context::{Address, GonkaContext};
use crate::host::{Host, HostParams};
use crate::signing::{Ed25519Provider, Ed25519Verifier};
use crate::store::BlockStore;
use crate::streaming::PART_CHUNK;
use crate::{Application, ConsensusConfig, ConsensusHandle};

/// Connections one address may hold when the node listens on loopback: a devnet's nodes all dial from
/// 127.0.0.1 (Malachite's default of 5 guards a public address against one machine's many peer ids).
const LOOPBACK_CONNECTIONS_PER_IP: usize = 256;

/// How long the engine may take to ask for its start height.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct EngineConfig {
    moniker: String,
    consensus: EngineConsensusConfig,
    value_sync: ValueSyncConfig,
}

impl NodeConfig for EngineConfig {
    fn moniker(&self) -> &str {
        &self.moniker
    }

    fn consensus(&self) -> &EngineConsensusConfig {
        &self.consensus
    }

    fn consensus_mut(&mut self) -> &mut EngineConsensusConfig {
        &mut self.consensus
    }

    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }

    fn value_sync_mut(&mut self) -> &mut ValueSyncConfig {
        &mut self.value_sync
    }
}

fn multiaddr(addr: SocketAddr) -> anyhow::Result<Multiaddr> {
    let s = match addr {
        SocketAddr::V4(a) => format!("/ip4/{}/tcp/{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("/ip6/{}/tcp/{}", a.ip(), a.port()),
    };
    s.parse().with_context(|| format!("invalid p2p address {addr}"))
}

/// A peer's p2p address, `IP:PORT` or `DNS-NAME:PORT` (resolved when dialled), as a multiaddr.
pub fn peer_multiaddr(peer: &str) -> anyhow::Result<Multiaddr> {
    if let Ok(addr) = peer.parse::<SocketAddr>() {
        return multiaddr(addr);
    }
    let (host, port) =
        peer.rsplit_once(':').with_context(|| format!("p2p peer {peer:?} is not HOST:PORT"))?;
    let port: u16 =
        port.parse().with_context(|| format!("p2p peer {peer:?}: port {port:?} is not a number"))?;
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
        });
    anyhow::ensure!(name_ok, "p2p peer {peer:?}: {host:?} is neither an IP address nor a DNS name");
    format!("/dns/{host}/tcp/{port}").parse().with_context(|| format!("invalid p2p peer {peer:?}"))
}

fn engine_config(config: &ConsensusConfig, moniker: String) -> anyhow::Result<EngineConfig> {
    let interval = Duration::from_millis(config.block_interval_ms);
    let max_block = config.max_block_bytes as u64;
    let response = (max_block.saturating_mul(2).saturating_add(1 << 20)).max(10 << 20);
    let value_sync = ValueSyncConfig {
        // Peers learn each other's tip through periodic status messages; keep that close to the
        // block interval so a lagging node notices quickly.
        status_update_interval: interval.clamp(Duration::from_millis(500), Duration::from_secs(5)),
        request_timeout: Duration::from_secs(5),
        max_response_size: bytesize::ByteSize::b(response),
        ..ValueSyncConfig::default()
    };

    let mut consensus = EngineConsensusConfig {
        value_payload: ValuePayload::ProposalAndParts,
        ..EngineConsensusConfig::default()
    };
    consensus.p2p.listen_addr = multiaddr(config.listen)?;
    consensus.p2p.persistent_peers =
        config.peers.iter().map(|p| peer_multiaddr(p)).collect::<anyhow::Result<_>>()?;
    if config.discovery {
        // Peers tell each other whom they know (every one of them, not a Kademlia neighbourhood: a
        // network of hosts is small), so a newcomer that names one peer reaches all of them.
        consensus.p2p.discovery.enabled = true;
        consensus.p2p.discovery.bootstrap_protocol = BootstrapProtocol::Full;
        consensus.p2p.discovery.selector = Selector::Random;
        if config.listen.ip().is_loopback() {
            // Every node of a one-machine network dials from the same address.
            consensus.p2p.discovery.max_connections_per_ip = LOOPBACK_CONNECTIONS_PER_IP;
        }
    }
    consensus.p2p.rpc_max_size = bytesize::ByteSize::b(response.saturating_add(1 << 20));
    consensus.p2p.pubsub_max_size =
        bytesize::ByteSize::b((PART_CHUNK as u64 + (64 << 10)).max(consensus.p2p.pubsub_max_size.as_u64()));
    Ok(EngineConfig { moniker, consensus, value_sync })
}

fn linear_timeouts(t: &crate::Timeouts) -> LinearTimeouts {
    LinearTimeouts {
        propose: t.propose,
        propose_delta: t.delta,
        prevote: t.prevote,
        prevote_delta: t.delta,
        precommit: t.precommit,
        precommit_delta: t.delta,
        rebroadcast: t.rebroadcast,
        max_timeout: t.max.max(t.propose),
    }
}

/// Wait until `addr` can be bound (a previous instance may still be releasing it).
async fn wait_port_free(addr: SocketAddr, shutdown: &watch::Receiver<bool>) -> anyhow::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let mut last = None;
    for _ in 0..100 {
        match TcpListener::bind(addr) {
            Ok(listener) => {
                drop(listener);
                return Ok(());
            }
            Err(e) => last = Some(e),
        }
        if *shutdown.borrow() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(anyhow!("p2p address {addr} is not available: {last:?}"))
}

/// Wait until no other process or thread holds the WAL's exclusive lock (a previous instance's
/// WAL thread releases it shortly after that instance stops).
async fn wait_wal_free(path: &std::path::Path, shutdown: &watch::Receiver<bool>) -> anyhow::Result<()> {
    use advisory_lock::{AdvisoryFileLock, FileLockMode};
    for _ in 0..100 {
        let file = match std::fs::OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(anyhow!("cannot open WAL {}: {e}", path.display())),
        };
        if AdvisoryFileLock::try_lock(&file, FileLockMode::Exclusive).is_ok() {
            drop(file); // closing the descriptor releases the lock
            return Ok(());
        }
        if *shutdown.borrow() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(anyhow!("WAL {} is locked by another instance", path.display()))
}

struct Started {
    channels: Channels<GonkaContext>,
    engine: EngineHandle,
}

async fn start_engine(
    config: &ConsensusConfig,
    wal_path: std::path::PathBuf,
    key: &PrivateKey,
    signer: &Ed25519Provider,
    address: Address,
    engine_config: &EngineConfig,
) -> anyhow::Result<Started> {
    let keypair = Keypair::ed25519_from_bytes(config.private_key)
        .map_err(|e| anyhow!("cannot build the p2p keypair: {e}"))?;
    let peer_id = keypair.public().to_peer_id();
    let proof = signer
        .sign_validator_proof(key.public_key().as_bytes().to_vec(), peer_id.to_bytes())
        .await
        .map_err(|e| anyhow!("cannot sign the validator proof: {e}"))?;
    let proof_bytes =
        WireCodec.encode(&proof).map_err(|e| anyhow!("cannot encode the validator proof: {e}"))?;
    let identity = NetworkIdentity::new_validator(
        engine_config.moniker.clone(),
        keypair,
        address.to_string(),
        proof_bytes,
    );

    let (channels, engine) = EngineBuilder::new(GonkaContext, engine_config.clone())
        .with_default_wal(WalContext::new(wal_path, WireCodec))
        .with_default_network(NetworkContext::new(identity, WireCodec))
        .with_default_sync(SyncContext::new(WireCodec))
        .with_default_consensus(ConsensusContext::new_validator(
            address,
            Box::new(Ed25519Verifier),
            Box::new(signer.clone()),
        ))
        .with_default_request(RequestContext::new(64))
        .build()
        .await
        .map_err(|e| anyhow!("cannot start the consensus engine: {e:#}"))?;
    Ok(Started { channels, engine })
}

async fn stop_engine(actor: NodeRef, task: Option<JoinHandle<()>>) {
    let reason = Some("shutdown".to_string());
    actor.stop_children_and_wait(reason.clone(), Some(Duration::from_secs(10))).await;
    // The node actor usually stops on its own once its children are gone.
    let _ = actor.stop_and_wait(reason, Some(Duration::from_secs(5))).await;
    if let Some(mut task) = task
        && tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err()
    {
        task.abort();
    }
}

/// Start the engine and run the application loop until `shutdown` becomes `true` (or its sender
/// is dropped), or a fatal error occurs. The engine is stopped before this returns, so the same
/// `home` and `listen` address can be reused right away by a new call.
pub async fn run<A: Application>(
    config: ConsensusConfig,
    app: A,
    handle: ConsensusHandle,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let key = PrivateKey::from(config.private_key);
    let public_key = *key.public_key().as_bytes();
    let address = Address::from_public_key(&public_key);
    let moniker = format!("gonka-{}", &address.to_string()[..12]);
    let span = tracing::info_span!("consensus", node = %moniker);
    run_inner(config, app, handle, shutdown, key, address, moniker).instrument(span).await
}

async fn run_inner<A: Application>(
    config: ConsensusConfig,
    app: A,
    handle: ConsensusHandle,
    mut shutdown: watch::Receiver<bool>,
    key: PrivateKey,
    address: Address,
    moniker: String,
) -> anyhow::Result<()> {
    if config.block_interval_ms == 0 {
        return Err(anyhow!("block_interval_ms must be > 0"));
    }
    if config.max_block_bytes == 0 {
        return Err(anyhow!("max_block_bytes must be > 0"));
    }
    if *shutdown.borrow() {
        return Ok(());
    }
    std::fs::create_dir_all(&config.home)
        .with_context(|| format!("cannot create consensus home {}", config.home.display()))?;

    let signer = Ed25519Provider::new(key.clone());
    let engine_config = engine_config(&config, moniker)?;

    // A restarted node may find its port or WAL lock still held for a moment by the previous
    // instance's background tasks: wait for both, and retry a failed start briefly.
    let wal_path = config.home.join("wal").join("consensus.wal");
    let mut attempt = 0;
    let Started { mut channels, engine } = loop {
        attempt += 1;
        wait_port_free(config.listen, &shutdown).await?;
        wait_wal_free(&wal_path, &shutdown).await?;
        match start_engine(&config, wal_path.clone(), &key, &signer, address, &engine_config).await {
            Ok(started) => break started,
            Err(e) if attempt < 20 && !*shutdown.borrow() => {
                warn!(attempt, "{e:#}; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e),
        }
    };
    info!(%address, listen = %config.listen, peers = config.peers.len(), "consensus engine started");
    handle.set_running(true);

    let monitor = tokio::spawn({
        let requests = channels.net_requests.clone();
        let handle = handle.clone();
        async move {
            loop {
                if let Ok(Some(dump)) = NetworkRequest::dump_state(&requests).await {
                    handle.set_peers(dump.peers.len());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });

    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let blocks = BlockStore::open(
        Some(&config.home.join("undecided")),
        app.last_committed_height(),
        config.max_block_bytes,
    );
    let mut host = Host::new(
        app,
        HostParams {
            signer,
            address,
            public_key: *key.public_key().as_bytes(),
            timeouts: linear_timeouts(&config.timeouts),
            target_time: Duration::from_millis(config.block_interval_ms),
            max_block_bytes: config.max_block_bytes,
            handle: handle.clone(),
            blocks,
            nonce,
        },
    );

    let EngineHandle { actor, handle: mut engine_task } = engine;
    let mut engine_done = false;
    // The engine asks for the start height once its p2p listener is up; if that never happens
    // (e.g. the listen address became unusable) fail instead of hanging.
    let ready_deadline = tokio::time::sleep(READY_TIMEOUT);
    tokio::pin!(ready_deadline);
    let result = loop {
        tokio::select! {
            biased;
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    info!("shutdown requested");
                    break Ok(());
                }
            }
            () = &mut ready_deadline, if !host.is_ready() => {
                break Err(anyhow!("consensus engine not ready after {READY_TIMEOUT:?} (p2p listener did not start?)"));
            }
            _ = &mut engine_task => {
                engine_done = true;
                break Err(anyhow!("consensus engine stopped unexpectedly"));
            }
            msg = channels.consensus.recv() => match msg {
                Some(msg) => {
                    if let Err(e) = host.handle(msg, &channels.network).await {
                        error!("fatal consensus error: {e:#}");
                        break Err(e);
                    }
                }
                None => break Err(anyhow!("consensus engine closed its channel")),
            },
        }
    };

    monitor.abort();
    drop(host);
    stop_engine(actor, (!engine_done).then_some(engine_task)).await;
    drop(channels);
    handle.set_running(false);
    handle.set_peers(0);
    info!("consensus stopped");
    result
}

//! One simulated node: the real chain application of a node (`gonka_node::Chain` on an in-memory redb
//! store, with its mempool, driven through the consensus `Application` trait), the real host signer,
//! PoC and validation planners, and a fake engine. A crash drops everything but the store; a restart reopens the chain
//! from it, with an empty mempool and a fresh planner, as a restarted process would.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gonka_chain::{Genesis, State};
use gonka_host::admission::ReplayGuard;
use gonka_host::poc::{HostKey, PocHost};
use gonka_host::receipts::Outbox;
use gonka_host::validation::{ValidationHost, ValidationInput};
use gonka_host::verdict::Payload;
use gonka_node::signer::{HostKeys, HostSigner};
use gonka_node::{Chain, ChainApp, ChainOptions, Clock};
use gonka_primitives::{AccountKey, Address, Hash, ValidatorKey};
use gonka_store::Store;
use tokio::sync::mpsc;

use crate::byzantine::Byzantine;
use crate::config::mempool_limits;
use crate::fake_poc::FakeSprint;
use crate::rng::SimRng;

/// Simulated time, shared by every node's chain.
#[derive(Debug, Default)]
pub struct SimClock(AtomicU64);

impl SimClock {
    /// A clock at `now_ms`.
    pub fn new(now_ms: u64) -> SimClock {
        SimClock(AtomicU64::new(now_ms))
    }

    /// Moves the clock to `now_ms` (never backwards).
    pub fn set(&self, now_ms: u64) {
        self.0.fetch_max(now_ms, Ordering::Relaxed);
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a running node holds in memory (lost on a crash).
pub struct Running {
    /// The chain: state, store, mempool.
    pub chain: Arc<Chain>,
    /// The chain as consensus drives it.
    pub app: ChainApp,
    /// Signs and admits the host's transactions.
    pub signer: HostSigner,
    /// Transactions the signer queued for gossip.
    pub gossip: mpsc::Receiver<gonka_node::gossip::Outgoing>,
    /// The PoC planner.
    pub poc: PocHost,
    /// The fake sprint, while one runs.
    pub sprint: Option<FakeSprint>,
    /// Requests seen as transfer agent.
    pub ta_seen: ReplayGuard,
    /// Requests seen as executor.
    pub executor_seen: ReplayGuard,
    /// What it risks, per TA, on answers whose payment is not on chain yet.
    pub exposure: gonka_host::exposure::ExposureBook,
    /// The validation planner.
    pub validation: ValidationHost,
    /// Results of its checks waiting for its next plan.
    pub validation_inputs: Vec<ValidationInput>,
    /// Payloads it asked executors for and has not had back (nor given up on).
    pub fetching: BTreeSet<Hash>,
    /// Its engine's prefix cache.
    pub prefix: crate::answers::PrefixCache,
}

/// One host of the simulated network.
pub struct SimNode {
    /// Its index (its name in reports).
    pub index: usize,
    /// Its account key.
    pub account: AccountKey,
    /// Its operational key.
    pub operational: AccountKey,
    /// Its consensus key.
    pub validator: ValidatorKey,
    /// Its disk: survives crashes.
    pub store: Store,
    /// What it holds while up.
    pub running: Option<Running>,
    /// Nonces its engine computes per block.
    pub speed: u64,
    /// How it misbehaves, if it does.
    pub byzantine: Option<Box<dyn Byzantine>>,
    /// Its own random stream.
    pub rng: SimRng,
    /// Receipts it still owes the chain; kept on its disk, so they survive a crash.
    pub outbox: Outbox,
    /// The payloads it keeps for validators, by inference id; on its disk, so they survive a crash.
    pub payloads: BTreeMap<Hash, Payload>,
    /// Its chain halted on a broken invariant: like the real node, it stops for good (an operator
    /// must look), so it is never restarted.
    pub halted: bool,
}

/// Why a simulated node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] gonka_store::StoreError),
    /// The chain could not open.
    #[error(transparent)]
    Chain(#[from] gonka_node::chain::ChainError),
}

impl SimNode {
    /// The host's account.
    pub fn address(&self) -> Address {
        self.account.address()
    }

    /// The host key its planners act with.
    pub fn host_key(&self) -> HostKey {
        HostKey { account: self.address(), operational: self.operational.clone() }
    }

    /// Whether it is up.
    pub fn up(&self) -> bool {
        self.running.is_some()
    }

    /// Starts (or restarts) the node from its store.
    pub fn start(&mut self, genesis: &Genesis, clock: Arc<SimClock>) -> Result<(), StartError> {
        let options = ChainOptions { mempool: mempool_limits(), clock };
        let chain = Arc::new(Chain::open(self.store.clone(), genesis, options)?);
        let (gossip_tx, gossip) = mpsc::channel(1 << 16);
        let keys = HostKeys { account: self.address(), operational: self.operational.clone() };
        let signer = HostSigner::new(chain.clone(), gossip_tx, keys);
        let enabled = true;
        self.running = Some(Running {
            app: ChainApp::new(chain.clone(), None),
            chain,
            signer,
            gossip,
            poc: PocHost::new(enabled),
            sprint: None,
            ta_seen: ReplayGuard::new(100_000),
            executor_seen: ReplayGuard::new(100_000),
            exposure: gonka_host::exposure::ExposureBook::new(100_000),
            validation: ValidationHost::new(enabled),
            validation_inputs: Vec::new(),
            fetching: BTreeSet::new(),
            prefix: crate::answers::PrefixCache::default(),
        });
        Ok(())
    }

    /// Crashes the node: memory is gone, the store stays.
    pub fn crash(&mut self) {
        self.running = None;
    }

    /// Its committed height (None while down).
    pub fn height(&self) -> Option<u64> {
        self.running.as_ref().map(|r| r.chain.with_state(State::height))
    }
}

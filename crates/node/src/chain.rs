//! The node's chain: the in-memory state, its redb store, the mempool, and the block events that REST
//! subscribers and host logic follow. [`ChainApp`] is what consensus drives — Malachite in a node, the
//! simulated network in `gonka-sim` — through the same [`Application`] trait.
//!
//! Time enters only through a [`Clock`]: the proposer's block time and the check that a proposed
//! time is not too far ahead. A node reads the system clock; the simulator passes its own.
//!
//! A decided block that breaks a state invariant halts the chain: it refuses every later commit and
//! [`Chain::halted`] resolves with the reason, on which the node stops with an error.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use gonka_chain::{Block, BlockError, Event, Genesis, State, TxResult};
use gonka_consensus::{Application, ValidatorInfo};
use gonka_primitives::codec::{Encode, decode_exact};
use gonka_primitives::{Address, Hash, ValidatorPublicKey};
use gonka_store::Store;
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::mempool::{Mempool, MempoolError, MempoolLimits};

/// How far ahead of this node's clock a proposed block time may be.
const MAX_CLOCK_DRIFT_MS: u64 = 10_000;
/// Block events buffered for slow subscribers before they start missing some.
const EVENT_BUFFER: usize = 1024;
/// Blocks a transaction waits before it is offered to peers again.
pub const REBROADCAST_AFTER_BLOCKS: u64 = 3;
/// Most transactions offered again per block.
const REBROADCAST_MAX: usize = 2_000;
/// Heights behind the next one for which the validator set stays known (consensus asks for the height
/// it decides; sets older than this are dropped so the history stays bounded).
const VALIDATOR_HISTORY_BLOCKS: u64 = 10_000;

/// What a committed block did, as published to subscribers.
#[derive(Debug, Clone, Serialize)]
pub struct BlockEvent {
    /// Height.
    pub height: u64,
    /// Block hash.
    pub hash: Hash,
    /// App hash after the block.
    pub app_hash: Hash,
    /// Proposer's block time.
    pub time_ms: u64,
    /// Proposer.
    pub proposer: ValidatorPublicKey,
    /// Per-transaction results.
    pub txs: Vec<TxResult>,
    /// Block-level events.
    pub events: Vec<Event>,
}

/// Where the chain reads the time (milliseconds since the Unix epoch).
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
}

/// How a chain is opened.
#[derive(Clone)]
pub struct ChainOptions {
    /// Mempool bounds.
    pub mempool: MempoolLimits,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
}

impl Default for ChainOptions {
    fn default() -> Self {
        ChainOptions { mempool: MempoolLimits::default(), clock: Arc::new(SystemClock) }
    }
}

/// A node's chain, shared by consensus, the REST API and gossip.
pub struct Chain {
    state: RwLock<State>,
    store: Store,
    mempool: Mutex<Mempool>,
    events: broadcast::Sender<Arc<BlockEvent>>,
    /// Validator sets by the first height they decide (kept for the heights since this process started).
    validator_history: Mutex<BTreeMap<u64, Vec<ValidatorInfo>>>,
    clock: Arc<dyn Clock>,
    /// Why the chain halted, once it did.
    halted: watch::Sender<Option<String>>,
}

/// Failure to open the chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// Store failure.
    #[error(transparent)]
    Store(#[from] gonka_store::StoreError),
    /// Genesis unusable.
    #[error(transparent)]
    Genesis(#[from] gonka_chain::state::GenesisError),
    /// The store belongs to another chain.
    #[error("store holds chain {stored}, genesis says {genesis}")]
    WrongChain {
        /// In the store.
        stored: String,
        /// In genesis.
        genesis: String,
    },
}

fn to_validator_infos(set: Vec<(ValidatorPublicKey, u64)>) -> Vec<ValidatorInfo> {
    set.into_iter().map(|(key, power)| ValidatorInfo { public_key: key.0, voting_power: power }).collect()
}

impl Chain {
    /// Opens the store, initializing it from `genesis` when empty.
    pub fn open(store: Store, genesis: &Genesis, options: ChainOptions) -> Result<Chain, ChainError> {
        let state = match store.load_state()? {
            Some(state) => state,
            None => {
                let state = State::from_genesis(genesis)?;
                store.init_genesis(&state)?;
                state
            }
        };
        if state.meta.chain_id != genesis.chain_id {
            return Err(ChainError::WrongChain {
                stored: state.meta.chain_id.clone(),
                genesis: genesis.chain_id.clone(),
            });
        }
        let history = BTreeMap::from([(state.height() + 1, to_validator_infos(state.validator_set()))]);
        Ok(Chain {
            state: RwLock::new(state),
            store,
            mempool: Mutex::new(Mempool::new(options.mempool)),
            events: broadcast::channel(EVENT_BUFFER).0,
            validator_history: Mutex::new(history),
            clock: options.clock,
            halted: watch::channel(None).0,
        })
    }

    /// Resolves with the reason once the chain halts (a decided block broke an invariant).
    pub async fn halted(&self) -> String {
        let mut halted = self.halted.subscribe();
        loop {
            if let Some(reason) = halted.borrow_and_update().clone() {
                return reason;
            }
            if halted.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Why the chain halted, if it did.
    pub fn halt_reason(&self) -> Option<String> {
        self.halted.borrow().clone()
    }

    /// Runs `f` with read access to the state.
    pub fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.read_state())
    }

    // A panic while a lock is held is a bug that already stopped that task; the data stays usable
    // (state changes happen before the store commit and a failed commit stops the node), so the
    // locks below ignore poisoning instead of spreading the panic.
    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_history(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Vec<ValidatorInfo>>> {
        self.validator_history.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Number of waiting transactions.
    pub fn mempool_len(&self) -> usize {
        self.lock_mempool().len()
    }

    /// Subscribes to committed blocks.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BlockEvent>> {
        self.events.subscribe()
    }

    fn lock_mempool(&self) -> std::sync::MutexGuard<'_, Mempool> {
        self.mempool.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The sequence `account`'s next transaction must carry, counting those waiting in the mempool.
    pub fn next_sequence(&self, account: &Address) -> u64 {
        let state = self.read_state();
        self.lock_mempool().next_sequence(account).unwrap_or_else(|| state.account(account).sequence)
    }

    /// Waiting transactions to offer to peers again (they have waited [`REBROADCAST_AFTER_BLOCKS`]).
    pub fn rebroadcast(&self) -> Vec<Vec<u8>> {
        let height = self.with_state(State::height);
        self.lock_mempool()
            .due_for_rebroadcast(height, REBROADCAST_AFTER_BLOCKS, REBROADCAST_MAX)
            .into_iter()
            .map(|b| b.0)
            .collect()
    }

    /// Checks a transaction this node originates (its host's, or a client's) against the current state
    /// and admits it to the mempool; it is offered to peers again while it waits.
    pub fn submit(&self, bytes: Vec<u8>) -> Result<Hash, MempoolError> {
        let state = self.read_state();
        self.lock_mempool().insert(&state, bytes, true)
    }

    /// Admits a transaction a peer gossiped; its origin offers it again, not this node.
    pub fn submit_from_peer(&self, bytes: Vec<u8>) -> Result<Hash, MempoolError> {
        let state = self.read_state();
        self.lock_mempool().insert(&state, bytes, false)
    }

    /// The encoded messages of `account`'s transactions waiting in the mempool (a planner resubmits
    /// nothing that still waits).
    pub fn pending_messages(&self, account: &Address) -> std::collections::BTreeSet<Vec<u8>> {
        self.lock_mempool().pending_messages(account)
    }

    /// The validator set that decides `height`, as consensus asks for it.
    pub fn validator_set_at(&self, height: u64) -> Option<Vec<ValidatorInfo>> {
        let current = self.with_state(|s| s.height());
        if height > current + 1 {
            return None;
        }
        let history = self.lock_history();
        history.range(..=height).next_back().map(|(_, set)| set.clone())
    }

    /// The block this node proposes on top of its state: its mempool's oldest transactions within the
    /// block limits, at its clock's time.
    pub fn build_block(&self, proposer: [u8; 32]) -> Vec<u8> {
        let state = self.read_state();
        let limits = state.params().limits;
        // Leave room for the header within the block byte limit.
        let txs =
            self.lock_mempool().reap(limits.max_block_txs as usize, limits.max_block_bytes as usize - 1024);
        let header = state.next_header(ValidatorPublicKey(proposer), self.clock.now_ms(), &txs);
        Block { header, txs }.to_bytes()
    }

    /// Whether a proposed block may be voted for.
    pub fn check_block(&self, height: u64, proposer: [u8; 32], bytes: &[u8]) -> Result<(), String> {
        let state = self.read_state();
        let block: Block =
            decode_exact(bytes, state.params().limits.max_block_bytes as usize).map_err(|e| e.to_string())?;
        if block.header.height != height || block.header.proposer.0 != proposer {
            return Err(format!("height {} / proposer mismatch", block.header.height));
        }
        if block.header.time_ms > self.clock.now_ms() + MAX_CLOCK_DRIFT_MS {
            return Err(format!("block time {} is in the future", block.header.time_ms));
        }
        state.validate_block(&block, bytes.len()).map_err(|e| e.to_string())
    }

    /// Applies and persists a decided block. An error here means this node cannot follow the chain
    /// (store failure or a decided block its state refuses): the caller stops the node.
    pub fn commit_block(&self, height: u64, bytes: &[u8], certificate: &[u8]) -> anyhow::Result<()> {
        if let Some(reason) = self.halt_reason() {
            anyhow::bail!("the chain halted: {reason}");
        }
        let mut state = self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if height <= state.height() {
            // Already committed (replayed after a restart): nothing to do.
            return Ok(());
        }
        let block: Block = decode_exact(bytes, usize::MAX)?;
        // Applied in place: if persisting fails the chain halts (every later commit is refused and the
        // node exits), and a restart reloads the last committed state from the store, so nothing ever
        // runs on a state ahead of the disk.
        let applied = {
            let mempool = self.lock_mempool();
            state.apply_block(&block, &|hash| mempool.contains(hash))
        };
        let outcome = match applied {
            Ok(outcome) => outcome,
            Err(BlockError::Invariant(violation)) => {
                let reason = format!("block {height} broke an invariant: {violation}");
                tracing::error!(%reason, "CHAIN HALTED: this node's state cannot be trusted; stopping");
                self.halted.send_replace(Some(reason.clone()));
                anyhow::bail!(reason);
            }
            Err(error) => return Err(error.into()),
        };
        if let Err(error) = self.store.commit_block(height, bytes, certificate, &outcome) {
            // The state in memory is now a block ahead of the disk. Serving it, or answering "already
            // applied" when consensus decides this height again, would let this node diverge after a
            // restart; so it halts here, loudly, and a restart reloads the last block the store holds
            // (issue 12, item 10).
            let reason = format!("block {height} could not be persisted: {error}");
            tracing::error!(%reason, "CHAIN HALTED: the store refused a decided block; stopping");
            self.halted.send_replace(Some(reason.clone()));
            anyhow::bail!(reason);
        }
        if outcome.validator_set_changed {
            let set = to_validator_infos(state.validator_set());
            let mut history = self.lock_history();
            history.insert(height + 1, set);
            prune_history(&mut history, (height + 1).saturating_sub(VALIDATOR_HISTORY_BLOCKS));
        }
        let app_hash = state.meta.app_hash;
        // Readers may proceed while the mempool is rechecked against the new state.
        drop(state);
        let included: Vec<Hash> = outcome.results.iter().map(|r| r.hash).collect();
        self.lock_mempool().on_block_committed(&self.read_state(), &included);
        let event = BlockEvent {
            height,
            hash: block.hash(),
            app_hash,
            time_ms: block.header.time_ms,
            proposer: block.header.proposer,
            txs: outcome.results,
            events: outcome.events,
        };
        // No subscribers is fine.
        let _ = self.events.send(Arc::new(event));
        Ok(())
    }
}

/// The chain as consensus sees it.
pub struct ChainApp {
    chain: Arc<Chain>,
    /// Reports the double votes consensus sees, when this node is a host.
    reporter: Option<Arc<crate::signer::HostSigner>>,
}

impl ChainApp {
    /// Wraps the chain for consensus; `reporter` submits double-vote evidence for this host.
    pub fn new(chain: Arc<Chain>, reporter: Option<Arc<crate::signer::HostSigner>>) -> ChainApp {
        ChainApp { chain, reporter }
    }
}

/// Double-vote evidence from the engine as the chain's message (`docs/spec/economy.md` §5).
pub fn double_vote_message(evidence: &gonka_consensus::DoubleVoteEvidence) -> gonka_chain::Msg {
    let hash = |value: Option<[u8; 32]>| value.map(gonka_primitives::Hash);
    let evidence = gonka_chain::collateral::DoubleVote {
        validator: gonka_primitives::ValidatorPublicKey(evidence.public_key),
        kind: evidence.kind,
        height: evidence.height,
        round: evidence.round,
        first: hash(evidence.first.0),
        first_signature: gonka_primitives::ValidatorSignature(evidence.first.1),
        second: hash(evidence.second.0),
        second_signature: gonka_primitives::ValidatorSignature(evidence.second.1),
    };
    gonka_chain::Msg::Collateral(gonka_chain::CollateralMsg::ReportDoubleVote {
        evidence: Box::new(evidence),
    })
}

impl Application for ChainApp {
    fn last_committed_height(&self) -> u64 {
        self.chain.with_state(|s| s.height())
    }

    fn validator_set(&self, height: u64) -> Option<Vec<ValidatorInfo>> {
        self.chain.validator_set_at(height)
    }

    fn build_block(&mut self, _height: u64, _round: u32, proposer: [u8; 32]) -> Vec<u8> {
        self.chain.build_block(proposer)
    }

    fn check_block(&mut self, height: u64, proposer: [u8; 32], block: &[u8]) -> bool {
        match self.chain.check_block(height, proposer, block) {
            Ok(()) => true,
            Err(reason) => {
                tracing::warn!(height, %reason, "refusing proposed block");
                false
            }
        }
    }

    fn commit_block(
        &mut self,
        height: u64,
        _round: u32,
        block: &[u8],
        certificate: &[u8],
    ) -> anyhow::Result<()> {
        self.chain.commit_block(height, block, certificate)
    }

    fn committed_block(&self, height: u64) -> Option<(Vec<u8>, Vec<u8>)> {
        match self.chain.store.block(height) {
            Ok(block) => block,
            Err(error) => {
                tracing::error!(height, %error, "cannot read committed block");
                None
            }
        }
    }

    fn history_min_height(&self) -> u64 {
        1
    }

    fn report_double_votes(&mut self, evidence: Vec<gonka_consensus::DoubleVoteEvidence>) {
        for found in &evidence {
            tracing::warn!(
                validator = %hex::encode(found.public_key),
                height = found.height,
                round = found.round,
                "double vote seen"
            );
            let Some(reporter) = &self.reporter else { continue };
            // Another host may have reported it first: the chain then refuses this one.
            if let Err(error) = reporter.submit(vec![double_vote_message(found)]) {
                tracing::info!(%error, "double-vote evidence not submitted");
            }
        }
    }
}

/// Drops the validator sets no height at or after `floor` uses: every set before the one in force at
/// `floor` (issue 12, item 13: the history was never pruned).
fn prune_history<V>(history: &mut BTreeMap<u64, V>, floor: u64) {
    if let Some(&in_force) = history.range(..=floor).next_back().map(|(from, _)| from) {
        *history = history.split_off(&in_force);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::MutexGuard;
    use std::sync::atomic::{AtomicBool, Ordering};

    use gonka_chain::{GenesisAccount, GenesisParticipant, Params};
    use gonka_primitives::{AccountKey, Amount, ValidatorKey};

    use super::*;

    /// A disk in memory that fails every write and sync while `failing` is set, as a full disk does.
    #[derive(Debug, Clone, Default)]
    struct FlakyDisk {
        bytes: Arc<Mutex<Vec<u8>>>,
        failing: Arc<AtomicBool>,
    }

    impl FlakyDisk {
        fn check(&self) -> std::io::Result<()> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("no space left on device"));
            }
            Ok(())
        }

        fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
            self.bytes.lock().unwrap_or_else(|p| p.into_inner())
        }
    }

    impl redb::StorageBackend for FlakyDisk {
        fn len(&self) -> std::io::Result<u64> {
            Ok(self.lock().len() as u64)
        }

        fn read(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
            let bytes = self.lock();
            let start = usize::try_from(offset).map_err(std::io::Error::other)?;
            bytes
                .get(start..start + len)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| std::io::Error::other("short read"))
        }

        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.check()?;
            self.lock().resize(usize::try_from(len).map_err(std::io::Error::other)?, 0);
            Ok(())
        }

        fn sync_data(&self, _eventual: bool) -> std::io::Result<()> {
            self.check()
        }

        fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            self.check()?;
            let start = usize::try_from(offset).map_err(std::io::Error::other)?;
            let mut bytes = self.lock();
            if bytes.len() < start + data.len() {
                bytes.resize(start + data.len(), 0);
            }
            bytes[start..start + data.len()].copy_from_slice(data);
            Ok(())
        }
    }

    fn genesis() -> Genesis {
        let host = AccountKey::from_seed(b"store-host");
        Genesis {
            chain_id: "store-failure".into(),
            genesis_time_ms: 0,
            params: Params::devnet(host.address()),
            accounts: vec![GenesisAccount { address: host.address(), balance: Amount(1_000) }],
            participants: vec![GenesisParticipant {
                address: host.address(),
                account_key: host.public_key(),
                api_url: "http://h".into(),
                validator_key: ValidatorKey::from_secret_bytes([1; 32]).public_key(),
                operational_key: host.public_key(),
                weight: 1,
                collateral: Amount::ZERO,
                validation_key: None,
            }],
            developers: vec![],
            tokenomics: gonka_chain::Tokenomics::default(),
        }
    }

    #[test]
    fn a_block_the_store_cannot_persist_halts_the_chain_and_a_restart_recovers() {
        // Issue 12, item 10: memory must never serve a state the disk does not hold.
        let proposer = ValidatorKey::from_secret_bytes([1; 32]).public_key().0;
        let disk = FlakyDisk::default();
        let open = |disk: &FlakyDisk| {
            Chain::open(
                Store::with_backend(disk.clone()).expect("store"),
                &genesis(),
                ChainOptions::default(),
            )
            .expect("chain")
        };
        let chain = open(&disk);
        let first = chain.build_block(proposer);
        chain.commit_block(1, &first, b"certificate 1").expect("block 1 persists");
        let second = chain.build_block(proposer);
        disk.failing.store(true, Ordering::SeqCst);
        let error = chain.commit_block(2, &second, b"certificate 2").unwrap_err().to_string();
        assert!(error.contains("could not be persisted"), "{error}");
        assert!(chain.halt_reason().is_some_and(|r| r.contains("block 2")));
        // Consensus restarts the height and decides the block again: refused, not "already applied".
        disk.failing.store(false, Ordering::SeqCst);
        assert!(chain.commit_block(2, &second, b"certificate 2").is_err());
        drop(chain);
        // The restarted node reloads block 1 from the disk and applies block 2 as a node that never
        // failed does.
        let restarted = open(&disk);
        assert_eq!(restarted.with_state(State::height), 1);
        restarted.commit_block(2, &second, b"certificate 2").expect("block 2 persists after the restart");
        let reference = Chain::open(Store::in_memory().expect("store"), &genesis(), ChainOptions::default())
            .expect("chain");
        reference.commit_block(1, &first, b"certificate 1").expect("1");
        reference.commit_block(2, &second, b"certificate 2").expect("2");
        assert_eq!(restarted.with_state(|s| s.meta.app_hash), reference.with_state(|s| s.meta.app_hash));
        assert_eq!(restarted.store.block(2).expect("read").map(|b| b.0), Some(second));
    }

    #[test]
    fn validator_history_keeps_only_the_sets_heights_from_the_floor_use() {
        let mut history: BTreeMap<u64, &str> = BTreeMap::from([(1, "a"), (50, "b"), (90, "c"), (200, "d")]);
        prune_history(&mut history, 60);
        assert_eq!(history, BTreeMap::from([(50, "b"), (90, "c"), (200, "d")]), "b is in force at 60");
        prune_history(&mut history, 10);
        assert_eq!(history.len(), 3, "nothing before the floor to drop");
        prune_history(&mut history, 500);
        assert_eq!(history, BTreeMap::from([(200, "d")]));
    }
}

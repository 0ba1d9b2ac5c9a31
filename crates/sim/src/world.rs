//! The simulated network and its main loop (`docs/spec/sim.md` §2).
//!
//! Time moves in block intervals. In each interval: messages due arrive (gossip, forwarded requests,
//! finished generations), developers send requests, the faults of the schedule start or heal, one
//! consensus round runs — the proposer consensus names (by power) builds a block from its mempool; the nodes it can
//! reach check it; with more than 2/3 of the power accepting, they commit it — laggards that can reach
//! an up-to-date node sync, every live host acts on the new block (PoC planner, Byzantine hooks), and
//! every invariant is checked. The proposer and the network are the simulator's; everything a node does
//! with a block is the node's own code.

use std::collections::BTreeMap;
use std::sync::Arc;

use gonka_chain::{
    Genesis, GenesisAccount, GenesisParticipant, InferenceMsg, RequestTerms, SignedRequest, State,
    inference_id,
};
use gonka_consensus::Application;
use gonka_engine_api::fake::{FakeEngine, FakeModel};
use gonka_engine_api::{ChatMessage, Generator};
use gonka_host::admission::{RequestClaim, Role, admit, check_body_size};
use gonka_host::poc::{PocAction, PocInput};
use gonka_host::protocol::{forward_message, validation_key};
use gonka_host::receipts::Outbox;
use gonka_host::validation::{ValidationAction, ValidationInput, may_read_payload};
use gonka_host::verdict::{Payload, Tolerance, verdict};
use gonka_node::Clock;
use gonka_poc::Distance;
use gonka_primitives::{
    AccountKey, AccountPublicKey, Address, Amount, Hash, RecoverableSignature, ValidatorKey, VrfProof,
};
use gonka_store::Store;

use crate::answers;
use crate::byzantine::{Drainer, FinishReport, HostView, host_module};
use crate::config::{
    BLOCK_INTERVAL_MS, ByzantineKind, GENESIS_TIME_MS, MAX_TOKENS, SimConfig, model, params,
};
use crate::fake_poc::{FakeSprint, distance};
use crate::faults::FaultPlan;
use crate::invariants;
use crate::ledger::{Ledger, Served};
use crate::node::{SimClock, SimNode};
use crate::report::{HostSummary, Report, TrafficSummary, Violations};
use crate::rng::SimRng;

/// Most rounds a run may spend per decided height before it gives up (a stalled network).
const ROUNDS_PER_BLOCK_MAX: u64 = 4;
/// Most plan/act passes of one host per block (a planner that keeps asking is a bug).
const PLAN_PASSES_MAX: usize = 64;
/// Simulated milliseconds an executor takes per generated token.
const MS_PER_TOKEN: u64 = 2;
/// Heights after an answer's expiry deadline by which it must be settled.
const SETTLE_MARGIN_BLOCKS: u64 = 3;
/// Simulated milliseconds a validator waits for a payload before it tries again later.
const FETCH_TIMEOUT_MS: u64 = 2 * BLOCK_INTERVAL_MS;
/// Rounds after an answer during which its executor must hand over the payload (its validation window
/// and a vote's, with a margin): an executor down or cut off in them may fail validation for it.
const CUSTODY_ROUNDS: u64 = 40;

/// Collateral each host locks at genesis to vouch for the requests it forwards as a transfer agent
/// (`docs/spec/inference.md` §4.1), out of its genesis balance.
pub const HOST_COLLATERAL: Amount = Amount(100_000_000_000);

/// A forwarded request on its way to the executor.
#[derive(Debug, Clone)]
struct Forward {
    claim: RequestClaim,
    ta_signature: RecoverableSignature,
    content: String,
}

/// A generation in progress at an executor.
#[derive(Debug, Clone)]
struct Generation {
    request: SignedRequest,
    ta_signature: RecoverableSignature,
    /// What it keeps for validators: the answer, its tokens, their recorded logprobs, the seed.
    payload: Payload,
    /// Whether the executor's Byzantine module changed the answer.
    cheated: bool,
}

/// Something that happens at a simulated time.
#[derive(Debug, Clone)]
enum Message {
    /// A transaction reaching a peer's mempool.
    Gossip { to: usize, tx: Vec<u8> },
    /// A TA's forwarded request reaching the executor.
    Forward { from: usize, to: usize, forward: Forward },
    /// An executor finishing a generation (the answer streams back through the TA).
    Generated { executor: usize, ta: usize, generation: Generation },
    /// A validator asking an executor for a payload (with its selection proof, or as a voter).
    Fetch { from: usize, to: usize, id: Hash, proof: Option<VrfProof> },
    /// The executor's answer to a fetch: the payload, or none when it refuses.
    FetchReply { to: usize, id: Hash, payload: Option<Box<Payload>> },
    /// A validator gives up waiting for a payload.
    FetchTimeout { validator: usize, id: Hash },
}

/// A developer.
#[derive(Debug, Clone)]
struct Developer {
    key: AccountKey,
    sent: u64,
}

/// A simulated network.
pub struct Sim {
    config: SimConfig,
    genesis: Genesis,
    genesis_supply: Amount,
    clock: Arc<SimClock>,
    nodes: Vec<SimNode>,
    developers: Vec<Developer>,
    drainers: Vec<Drainer>,
    queue: BTreeMap<(u64, u64), Message>,
    sequence: u64,
    /// The last arrival time on each link (from, to): links deliver in order, as a connection does.
    link_last_ms: BTreeMap<(usize, usize), u64>,
    /// Every decided height's block and the app hash after it (index = height − 1).
    canonical: Vec<(Vec<u8>, Hash)>,
    ledger: Ledger,
    /// Delivered answers not yet settled nor excused: `(executor, transfer agent, round served)`. An
    /// answer is excused once either host is down or cut off between serving it and now — judged at
    /// check time, since heights fall behind rounds when faults stall the chain.
    unsettled: BTreeMap<Hash, (usize, usize, u64)>,
    faults: FaultPlan,
    /// The height consensus last tried to decide and its round there (the proposer rule's inputs).
    attempt: (u64, u32),
    net_rng: SimRng,
    traffic_rng: SimRng,
    violations: Violations,
    traffic: TrafficSummary,
    failed_rounds: u64,
    stages_checked: u64,
    /// Answers still in their executor's custody window: `(executor, round served)`.
    in_custody: BTreeMap<Hash, (usize, u64)>,
    /// Each host's `(power, poc_weight)` at the last checked height (`invariants::power_moves`).
    confirmed: BTreeMap<Address, (u64, u64)>,
    engine: FakeEngine,
    /// The round (block interval) being simulated.
    round: u64,
    /// The round in which each height was decided.
    decided_in: BTreeMap<u64, u64>,
}

fn key(seed: u64, role: &str, index: usize) -> AccountKey {
    AccountKey::from_seed(format!("sim-{seed}-{role}-{index}").as_bytes())
}

impl Sim {
    /// The network of `config` at genesis.
    pub fn new(config: SimConfig) -> Result<Sim, String> {
        config.validate()?;
        let seed = config.seed;
        let mut setup_rng = SimRng::new(seed, "setup");
        let kinds = host_kinds(&config);
        let mut nodes: Vec<SimNode> = (0..config.hosts)
            .map(|i| (i, kinds[i].and_then(|k| host_module(k, seed, i))))
            .map(|(i, byzantine)| SimNode {
                index: i,
                account: key(seed, "host", i),
                operational: key(seed, "ops", i),
                validator: ValidatorKey::from_secret_bytes(
                    Hash::digest_parts(&[b"sim-validator", &seed.to_be_bytes(), &(i as u64).to_be_bytes()]).0,
                ),
                store: Store::in_memory().expect("an in-memory store opens"),
                running: None,
                speed: setup_rng.range(60..161) * byzantine.as_ref().map_or(1, |b| b.compute_factor()),
                byzantine,
                rng: SimRng::new(seed, &format!("host-{i}")),
                outbox: Outbox::new(),
                payloads: BTreeMap::new(),
                halted: false,
            })
            .collect();
        let developers: Vec<Developer> =
            (0..config.developers).map(|i| Developer { key: key(seed, "developer", i), sent: 0 }).collect();
        let drain_count: usize =
            config.byzantine.iter().filter(|(k, _)| k.is_developer()).map(|(_, n)| *n).sum();
        let drainers: Vec<Drainer> = (0..drain_count)
            .map(|i| Drainer { key: key(seed, "drainer", i), fire_at: setup_rng.range(3..8), fired: false })
            .collect();
        let genesis = genesis(&config, &nodes, &developers, &drainers);
        let genesis_supply = Amount(genesis.accounts.iter().map(|a| a.balance.0).sum());
        let clock = Arc::new(SimClock::new(GENESIS_TIME_MS));
        for node in &mut nodes {
            node.store
                .init_genesis(&State::from_genesis(&genesis).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            node.start(&genesis, clock.clone()).map_err(|e| e.to_string())?;
        }
        let faults = FaultPlan::draw(config.faults, config.hosts, config.blocks, &mut setup_rng);
        Ok(Sim {
            genesis,
            genesis_supply,
            clock,
            nodes,
            developers,
            drainers,
            queue: BTreeMap::new(),
            sequence: 0,
            link_last_ms: BTreeMap::new(),
            canonical: Vec::new(),
            ledger: Ledger::default(),
            unsettled: BTreeMap::new(),
            in_custody: BTreeMap::new(),
            faults,
            attempt: (0, 0),
            net_rng: SimRng::new(seed, "network"),
            traffic_rng: SimRng::new(seed, "traffic"),
            violations: Violations::default(),
            traffic: TrafficSummary::default(),
            failed_rounds: 0,
            stages_checked: 0,
            confirmed: BTreeMap::new(),
            engine: FakeEngine::new(&model().name),
            round: 0,
            decided_in: BTreeMap::new(),
            config,
        })
    }

    /// The fault schedule.
    pub fn faults(&self) -> &FaultPlan {
        &self.faults
    }

    /// Replaces the fault schedule (scenario tests).
    pub fn set_faults(&mut self, faults: FaultPlan) {
        self.faults = faults;
    }

    /// The committed state of host `index`, while it is up.
    pub fn state(&self, index: usize) -> Option<State> {
        self.nodes.get(index)?.running.as_ref().map(|r| r.chain.with_state(Clone::clone))
    }

    /// Heights decided so far.
    pub fn height(&self) -> u64 {
        self.canonical.len() as u64
    }

    /// Runs until `config.blocks` heights are decided (or the network stalls), then reports.
    pub fn run(mut self) -> Report {
        let rounds_max = self.config.blocks * ROUNDS_PER_BLOCK_MAX;
        let mut round = 0;
        while self.height() < self.config.blocks && round < rounds_max {
            round += 1;
            self.step(round);
        }
        self.report()
    }

    /// One block interval.
    pub fn step(&mut self, round: u64) {
        self.round = round;
        let now = GENESIS_TIME_MS + round * BLOCK_INTERVAL_MS;
        self.deliver_until(now - BLOCK_INTERVAL_MS / 2);
        self.send_requests(now - BLOCK_INTERVAL_MS / 2);
        self.deliver_until(now);
        self.clock.set(now);
        self.apply_faults();
        if self.decide(round) {
            self.decided_in.insert(self.height(), round);
            self.sync_laggards();
            self.act();
            self.check();
        } else {
            self.failed_rounds += 1;
            self.sync_laggards();
        }
    }

    /// Crashes and restarts hosts as the schedule says for this round.
    fn apply_faults(&mut self) {
        for index in 0..self.nodes.len() {
            let down = self.faults.crashed(index, self.round);
            let node = &mut self.nodes[index];
            if down && node.up() {
                node.crash();
            } else if !down && !node.up() && !node.halted {
                node.start(&self.genesis, self.clock.clone())
                    .expect("a crashed node restarts from its store");
            }
        }
    }

    fn push(&mut self, at_ms: u64, message: Message) {
        self.sequence += 1;
        self.queue.insert((at_ms, self.sequence), message);
    }

    /// A message from `from` to `to` sent now: lost across a partition or to gossip loss, else delayed.
    fn send(&mut self, from: usize, to: usize, message: Message, lossy: bool) {
        if !self.faults.connected(from, to, self.round) {
            return;
        }
        if lossy && self.net_rng.chance(self.faults.drop_per_mille(self.round), 1000) {
            return;
        }
        let delay = 1 + self.net_rng.below(self.faults.delay_max_ms);
        let last = self.link_last_ms.entry((from, to)).or_default();
        let at = (self.clock.now_ms() + delay).max(*last);
        *last = at;
        self.push(at, message);
    }

    fn deliver_until(&mut self, until_ms: u64) {
        while let Some((&(at, seq), _)) = self.queue.first_key_value() {
            if at > until_ms {
                break;
            }
            let message = self.queue.remove(&(at, seq)).expect("the first entry exists");
            self.clock.set(at);
            self.handle(message);
        }
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Gossip { to, tx } => {
                let node = &self.nodes[to];
                if let Some(running) = &node.running {
                    let refuses = node
                        .byzantine
                        .as_ref()
                        .is_some_and(|b| running.chain.with_state(|s| b.refuses_gossip(s)));
                    if !refuses {
                        // Refusals (duplicates, stale sequences, a full pool) are the mempool's business.
                        let _ = running.chain.submit_from_peer(tx);
                    }
                }
            }
            Message::Forward { from, to, forward } => self.execute(from, to, &forward),
            Message::Generated { executor, ta, generation } => self.generated(executor, ta, generation),
            Message::Fetch { from, to, id, proof } => self.serve_payload(from, to, id, proof),
            Message::FetchReply { to, id, payload } => self.payload_arrived(to, id, payload.map(|p| *p)),
            Message::FetchTimeout { validator, id } => {
                let running = self.nodes[validator].running.as_mut();
                if let Some(running) = running.filter(|r| r.fetching.contains(&id)) {
                    running.fetching.remove(&id);
                    let error = "the executor did not answer the payload request".to_string();
                    running.validation_inputs.push(ValidationInput::CheckFailed { id, error, refused: true });
                }
            }
        }
    }

    /// Gossips what host `index`'s signer queued to every peer.
    fn flush_gossip(&mut self, index: usize) {
        let Some(running) = self.nodes[index].running.as_mut() else { return };
        let mut txs = Vec::new();
        while let Ok(tx) = running.gossip.try_recv() {
            txs.push(tx.tx);
        }
        for tx in txs {
            self.gossip(index, &tx);
        }
    }

    fn gossip(&mut self, from: usize, tx: &[u8]) {
        for to in 0..self.nodes.len() {
            if to != from {
                self.send(from, to, Message::Gossip { to, tx: tx.to_vec() }, true);
            }
        }
    }

    // ---------------------------------------------------------------------------------- consensus

    /// One round: the proposer consensus names for the height and round (by power), its block, the
    /// votes of those it reaches.
    fn decide(&mut self, round: u64) -> bool {
        let height = self.height() + 1;
        let current: Vec<usize> =
            (0..self.nodes.len()).filter(|&i| self.nodes[i].height() == Some(height - 1)).collect();
        let Some(&first) = current.first() else { return false };
        let Some(set) = self.nodes[first].running.as_ref().and_then(|r| r.app.validator_set(height)) else {
            return false;
        };
        let total: u128 = set.iter().map(|v| u128::from(v.voting_power)).sum();
        if total == 0 {
            return false;
        }
        let round_here = if self.attempt.0 == height { self.attempt.1 + 1 } else { 0 };
        self.attempt = (height, round_here);
        // The product's rule (`gonka_consensus::proposer_of`): who proposes is no draw of ours.
        let Some(proposer_key) = gonka_consensus::proposer_of(&set, height, round_here) else { return false };
        let Some(proposer) = self.node_with_validator(&proposer_key) else { return false };
        if !current.contains(&proposer) {
            return false;
        }
        let round = u32::try_from(round).unwrap_or(u32::MAX);
        let block = {
            let running = self.nodes[proposer].running.as_mut().expect("the proposer is up");
            running.app.build_block(height, round, proposer_key)
        };
        let mut accepting = Vec::new();
        let mut power = 0u128;
        for &i in &current {
            if !self.faults.connected(proposer, i, self.round) {
                continue;
            }
            let running = self.nodes[i].running.as_mut().expect("current nodes are up");
            if running.app.check_block(height, proposer_key, &block) {
                accepting.push(i);
                let key = self.nodes[i].validator.public_key().0;
                power += set
                    .iter()
                    .filter(|v| v.public_key == key)
                    .map(|v| u128::from(v.voting_power))
                    .sum::<u128>();
            }
        }
        if 3 * power <= 2 * total {
            return false;
        }
        for &i in &accepting {
            self.commit(i, height, round, &block);
        }
        let app_hash = self.nodes[proposer].running.as_ref().map(|r| r.chain.with_state(|s| s.meta.app_hash));
        self.canonical.push((block, app_hash.unwrap_or(Hash::ZERO)));
        self.observe_results(proposer, height);
        true
    }

    fn commit(&mut self, index: usize, height: u64, round: u32, block: &[u8]) {
        let Some(running) = self.nodes[index].running.as_mut() else { return };
        if let Err(error) = running.app.commit_block(height, round, block, b"sim") {
            // A halted chain broke a state invariant; any other refusal means this node's state left
            // the others'.
            let invariant = match running.chain.halt_reason() {
                Some(_) => invariants::SUPPLY_CONSERVED,
                None => invariants::APP_HASH_AGREEMENT,
            };
            if invariant == invariants::SUPPLY_CONSERVED {
                let node = &mut self.nodes[index];
                node.halted = true;
                node.crash();
            }
            self.violations.record(vec![invariants::Violation {
                invariant,
                height,
                detail: format!("host {index} could not commit: {error:#}"),
            }]);
        }
    }

    fn node_with_validator(&self, key: &[u8; 32]) -> Option<usize> {
        self.nodes.iter().position(|n| n.validator.public_key().0 == *key)
    }

    /// Reads what the chain charged in block `height` from `index`'s results.
    fn observe_results(&mut self, index: usize, height: u64) {
        let Some(running) = &self.nodes[index].running else { return };
        if let Ok(Some(results)) = running.chain.store().results(height) {
            let mut events: Vec<gonka_chain::Event> = results.events;
            events.extend(results.txs.into_iter().flat_map(|t| t.events));
            self.ledger.observe(height, &events);
        }
    }

    /// A node behind that can reach an up-to-date node fetches and applies the blocks it missed.
    fn sync_laggards(&mut self) {
        let target = self.height();
        let heights: Vec<Option<u64>> = self.nodes.iter().map(SimNode::height).collect();
        for i in 0..self.nodes.len() {
            let Some(mine) = heights[i] else { continue };
            if mine >= target {
                continue;
            }
            let reachable = (0..self.nodes.len()).any(|j| {
                j != i && heights[j].is_some_and(|h| h > mine) && self.faults.connected(i, j, self.round)
            });
            if !reachable {
                continue;
            }
            for height in mine + 1..=target {
                let (block, _) = self.canonical[(height - 1) as usize].clone();
                let Some(running) = self.nodes[i].running.as_mut() else { break };
                let proposer =
                    match gonka_primitives::codec::decode_exact::<gonka_chain::Block>(&block, usize::MAX) {
                        Ok(b) => b.header.proposer.0,
                        Err(_) => break,
                    };
                if !running.app.check_block(height, proposer, &block) {
                    break;
                }
                self.commit(i, height, 0, &block);
            }
        }
    }

    // ---------------------------------------------------------------------------------- hosts

    /// Every live host acts on the block it just committed; floods stream in first.
    fn act(&mut self) {
        let peers: Vec<(Address, AccountPublicKey)> =
            self.nodes.iter().map(|n| (n.address(), n.account.public_key())).collect();
        for index in 0..self.nodes.len() {
            if self.nodes[index].height() == Some(self.height()) {
                self.flood(index, &peers);
            }
        }
        for index in 0..self.nodes.len() {
            if self.nodes[index].height() != Some(self.height()) {
                continue;
            }
            self.poc(index, &peers);
            self.receipts(index);
            self.validate(index);
            self.forge(index, &peers);
            self.flush_gossip(index);
            let waiting =
                self.nodes[index].running.as_ref().map(|r| r.chain.rebroadcast()).unwrap_or_default();
            for tx in waiting {
                self.gossip(index, &tx);
            }
        }
    }

    /// Runs the PoC planner of host `index` until it has nothing more to do this block.
    fn poc(&mut self, index: usize, peers: &[(Address, AccountPublicKey)]) {
        let host_key = self.nodes[index].host_key();
        let mut inputs = vec![PocInput::Block];
        let found = self.sprint(index, peers);
        if !found.is_empty() {
            inputs.push(PocInput::Found(found));
        }
        let mut passes = 0;
        while let Some(input) = inputs.pop() {
            passes += 1;
            assert!(passes <= PLAN_PASSES_MAX, "host {index}'s planner keeps asking for work");
            let node = &mut self.nodes[index];
            let running = node.running.as_mut().expect("acting hosts are up");
            let pending = running.chain.pending_messages(&host_key.account);
            let waiting =
                |m: &gonka_chain::Msg| pending.contains(&gonka_primitives::codec::Encode::to_bytes(m));
            let mut actions = running.chain.with_state(|s| running.poc.plan(s, &host_key, &waiting, input));
            if let Some(byzantine) = node.byzantine.as_mut() {
                actions = byzantine.poc_actions(actions);
            }
            for action in actions {
                self.perform(index, action, &mut inputs);
            }
        }
    }

    /// Resubmits the receipts host `index` still owes the chain.
    fn receipts(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let Some(running) = node.running.as_ref() else { return };
        let pending = running.chain.pending_messages(&node.account.address());
        let waiting = |m: &gonka_chain::Msg| pending.contains(&gonka_primitives::codec::Encode::to_bytes(m));
        let (due, _) = running.chain.with_state(|s| node.outbox.plan(s, &waiting));
        for receipt in due {
            // A refusal is retried on a later block.
            let _ = running.signer.submit(vec![receipt]);
        }
    }

    /// What host `index`'s sprint finds this block (what a Byzantine host claims instead).
    fn sprint(&mut self, index: usize, peers: &[(Address, AccountPublicKey)]) -> Vec<(u64, Distance)> {
        let node = &mut self.nodes[index];
        let speed = node.speed;
        let me = node.address();
        let running = node.running.as_mut().expect("acting hosts are up");
        let Some(sprint) = running.sprint.as_mut() else { return Vec::new() };
        let computes = node.byzantine.as_ref().is_none_or(|b| b.computes());
        let found = if computes { sprint.compute(speed) } else { Vec::new() };
        let Some(byzantine) = node.byzantine.as_mut() else { return found };
        let others: Vec<(Address, AccountPublicKey)> =
            peers.iter().filter(|(a, _)| *a != me).copied().collect();
        running.chain.with_state(|state| {
            let mut view = HostView {
                state,
                me,
                key: node.account.public_key(),
                peers: &others,
                speed,
                rng: &mut node.rng,
            };
            byzantine.found(&mut view, found)
        })
    }

    fn perform(&mut self, index: usize, action: PocAction, inputs: &mut Vec<PocInput>) {
        let running = self.nodes[index].running.as_mut().expect("acting hosts are up");
        match action {
            PocAction::StartSprint { stage, public_key, r_target } => {
                running.sprint = Some(FakeSprint {
                    block_hash: stage.block_hash,
                    key: public_key,
                    r_target,
                    next_nonce: 0,
                });
            }
            PocAction::StopSprint => running.sprint = None,
            PocAction::Submit(messages) => {
                // A refusal (a full mempool) is retried by the planner after a few blocks.
                let _ = running.signer.submit(messages);
            }
            PocAction::Recompute { stage, participant, public_key, nonces } => {
                let distances =
                    nonces.iter().map(|n| Some(distance(&stage.block_hash, &public_key, *n))).collect();
                inputs.push(PocInput::Recomputed { participant, distances });
            }
            PocAction::ReleaseModel => {}
        }
    }

    fn byzantine_view<R>(
        &mut self,
        index: usize,
        peers: &[(Address, AccountPublicKey)],
        hook: impl FnOnce(&mut dyn crate::byzantine::Byzantine, &mut HostView<'_>) -> R,
    ) -> Option<R> {
        let node = &mut self.nodes[index];
        let me = node.account.address();
        let key = node.account.public_key();
        let byzantine = node.byzantine.as_mut()?;
        let running = node.running.as_ref()?;
        let others: Vec<(Address, AccountPublicKey)> =
            peers.iter().filter(|(a, _)| *a != me).copied().collect();
        Some(running.chain.with_state(|state| {
            let mut view = HostView { state, me, key, peers: &others, speed: node.speed, rng: &mut node.rng };
            hook(byzantine.as_mut(), &mut view)
        }))
    }

    /// A Byzantine host's flood, streamed straight into the mempools of the nodes it reaches.
    fn flood(&mut self, index: usize, peers: &[(Address, AccountPublicKey)]) {
        let Some(flood) = self.byzantine_view(index, peers, |b, view| b.flood(view)) else { return };
        for to in
            (0..self.nodes.len()).filter(|&to| to != index && self.faults.connected(index, to, self.round))
        {
            if let Some(running) = &self.nodes[to].running {
                for tx in &flood {
                    let _ = running.chain.submit_from_peer(tx.clone());
                }
            }
        }
    }

    /// A forging host's requests.
    fn forge(&mut self, index: usize, peers: &[(Address, AccountPublicKey)]) {
        let now_ns = self.clock.now_ms() * 1_000_000;
        let Some(forged) = self.byzantine_view(index, peers, |b, view| b.forge(view, now_ns)) else { return };
        for forged in forged {
            self.forward_forged(index, forged);
        }
    }

    // ---------------------------------------------------------------------------------- inference

    fn prompt_tokens(&self, content: &str) -> u32 {
        let messages = [ChatMessage { role: "user".into(), content: content.into() }];
        self.engine.render_chat(&messages).map_or(0, |t| t.len() as u32)
    }

    /// Honest developers send requests; drainers fire their burst.
    fn send_requests(&mut self, at_ms: u64) {
        self.clock.set(at_ms);
        for d in 0..self.developers.len() {
            if !self.traffic_rng.chance(1, 2) {
                continue;
            }
            let ta = self.traffic_rng.below(self.nodes.len() as u64) as usize;
            self.developers[d].sent += 1;
            let developer = self.developers[d].clone();
            let content = format!("question {} from developer {d}", developer.sent);
            self.request(&developer.key, ta, &content);
        }
        let height = self.height();
        for d in 0..self.drainers.len() {
            if self.drainers[d].fired || height < self.drainers[d].fire_at {
                continue;
            }
            self.drainers[d].fired = true;
            self.drain(d);
        }
    }

    /// `key` asks transfer agent `ta` to answer `content`.
    fn request(&mut self, key: &AccountKey, ta: usize, content: &str) {
        self.traffic.requests += 1;
        let transfer_agent = self.nodes[ta].address();
        let timestamp_ns = self.clock.now_ms() * 1_000_000;
        let request = SignedRequest::sign(
            key,
            &self.genesis.chain_id,
            request_terms(transfer_agent, content, timestamp_ns),
        );
        let claim = RequestClaim {
            requester: key.address(),
            signature: request.signature,
            timestamp_ns,
            body_hash: request.body_hash,
            body_len: request.body_len,
            transfer_agent,
            model: model().name,
            prompt_tokens: self.prompt_tokens(content),
            max_tokens: MAX_TOKENS,
            max_price_per_token: request.max_price_per_token,
        };
        let admission = {
            let Some(running) = self.nodes[ta].running.as_mut() else { return };
            let admitted =
                running.chain.with_state(|s| admit(s, transfer_agent, &Role::TransferAgent, &claim));
            let Ok(admission) = admitted else { return };
            let seen = running.ta_seen.admit(
                admission.id,
                timestamp_ns / 1_000_000,
                admission.replay_forget_before_ms,
            );
            let start = InferenceMsg::Start {
                request: admission.request,
                executor: admission.executor,
                prompt_tokens: claim.prompt_tokens,
            };
            if seen.is_err() {
                return;
            }
            if running.signer.submit(vec![start.clone().into()]).is_err() {
                running.ta_seen.forget(&admission.id);
                return;
            }
            let height = running.chain.with_state(State::height);
            let node = &mut self.nodes[ta];
            if let Some(key) = node.outbox.add(start) {
                node.outbox.submitted(key, height);
            }
            admission
        };
        self.traffic.admitted += 1;
        let ta_signature = self.nodes[ta].operational.sign_recoverable(&forward_message(
            &self.genesis.chain_id,
            &admission.id,
            &admission.executor,
            MAX_TOKENS,
        ));
        self.flush_gossip(ta);
        let Some(executor) = self.nodes.iter().position(|n| n.address() == admission.executor) else {
            return;
        };
        let forward = Forward { claim, ta_signature, content: content.to_string() };
        self.send(ta, executor, Message::Forward { from: ta, to: executor, forward }, false);
    }

    /// A drainer fires its burst at different TAs and, at once, sends its whole balance away.
    fn drain(&mut self, d: usize) {
        let drainer = self.drainers[d].clone();
        let hosts = self.nodes.len();
        for i in 0..crate::byzantine::BURST {
            let ta = (d + i) % hosts;
            self.request(&drainer.key, ta, &format!("drain {i}"));
        }
        let Some(node) = (0..hosts).find(|&i| self.nodes[i].up()) else { return };
        let sink = key(self.config.seed, "sink", d).address();
        let bytes = {
            let running = self.nodes[node].running.as_ref().expect("found up");
            let (chain_id, account) =
                running.chain.with_state(|s| (s.meta.chain_id.clone(), s.account(&drainer.key.address())));
            let send = gonka_chain::BankMsg::Send { to: sink, amount: account.balance };
            let sequence = running.chain.next_sequence(&drainer.key.address());
            let tx = gonka_chain::Tx::new(&chain_id, &drainer.key, sequence, vec![send.into()]);
            let bytes = gonka_primitives::codec::Encode::to_bytes(&tx);
            if running.chain.submit(bytes.clone()).is_err() {
                return;
            }
            bytes
        };
        self.gossip(node, &bytes);
    }

    /// A forging host sends a request signed by an unfunded key straight to its executor.
    fn forward_forged(&mut self, index: usize, forged: crate::byzantine::Forged) {
        let me = self.nodes[index].address();
        let terms = request_terms(me, &forged.content, forged.timestamp_ns);
        let request = SignedRequest::sign(&forged.key, &self.genesis.chain_id, terms);
        let id = request.id();
        let Some(running) = &self.nodes[index].running else { return };
        let Some(executor) = running.chain.with_state(|s| gonka_chain::inference::executor_for(s, &id))
        else {
            return;
        };
        let Some(to) = self.nodes.iter().position(|n| n.address() == executor) else { return };
        let claim = RequestClaim {
            requester: forged.key.address(),
            signature: request.signature,
            timestamp_ns: forged.timestamp_ns,
            body_hash: request.body_hash,
            body_len: request.body_len,
            transfer_agent: me,
            model: model().name,
            prompt_tokens: self.prompt_tokens(&forged.content),
            max_tokens: MAX_TOKENS,
            max_price_per_token: request.max_price_per_token,
        };
        self.traffic.requests += 1;
        let ta_signature = self.nodes[index].operational.sign_recoverable(&forward_message(
            &self.genesis.chain_id,
            &id,
            &executor,
            MAX_TOKENS,
        ));
        let forward = Forward { claim, ta_signature, content: forged.content };
        self.send(index, to, Message::Forward { from: index, to, forward }, false);
    }

    /// The executor's side: admission, then a generation that finishes a few ms later.
    fn execute(&mut self, ta: usize, executor: usize, forward: &Forward) {
        let me = self.nodes[executor].address();
        let Some(running) = self.nodes[executor].running.as_mut() else { return };
        let role = Role::Executor { ta_signature: forward.ta_signature };
        let Ok(admission) = running.chain.with_state(|s| admit(s, me, &role, &forward.claim)) else { return };
        let prompt: Vec<u32> = self
            .engine
            .render_chat(&[ChatMessage { role: "user".into(), content: forward.content.clone() }])
            .unwrap_or_default();
        let claim = &forward.claim;
        if check_body_size(claim.body_len, prompt.len() as u32, claim.max_tokens).is_err() {
            return;
        }
        // Served only within this executor's share of the TA's collateral, as the node does
        // (crates/node/src/inference/executor.rs).
        let timestamp_ms = claim.timestamp_ns / 1_000_000;
        let reserved =
            running.chain.with_state(|s| running.exposure.reserve_request(s, &me, &admission.request));
        if reserved.is_err() {
            return;
        }
        if running.executor_seen.admit(admission.id, timestamp_ms, admission.replay_forget_before_ms).is_err()
        {
            running.exposure.release(&admission.id);
            return;
        }
        let seed = answers::sampling(&admission.id).seed;
        let cached_tokens = running.prefix.serve(&prompt);
        let honest = answers::generate(FakeModel::Real, &prompt, MAX_TOKENS as usize, seed);
        let node = &mut self.nodes[executor];
        let cheat =
            node.byzantine.as_mut().and_then(|b| b.answer(&prompt, MAX_TOKENS as usize, seed, &honest));
        let cheated = cheat.as_ref().is_some_and(|c| *c != honest)
            || node.byzantine.as_ref().is_some_and(|b| !b.serves_payloads());
        let generated = cheat.unwrap_or(honest);
        let height = self.height();
        let mut payload =
            answers::payload(&forward.content, generated, prompt.len() as u32, MAX_TOKENS, seed, height);
        payload.cached_tokens = cached_tokens;
        let at = self.clock.now_ms() + 1 + MS_PER_TOKEN * u64::from(payload.completion_tokens);
        let generation =
            Generation { request: admission.request, ta_signature: forward.ta_signature, payload, cheated };
        self.push(at, Message::Generated { executor, ta, generation });
    }

    /// A generation finished: the executor keeps its payload and records its Finish; the answer reaches
    /// the developer if the TA relays it.
    fn generated(&mut self, executor: usize, ta: usize, generation: Generation) {
        let height = self.height();
        if !self.nodes[executor].up() {
            return;
        }
        let Generation { request, ta_signature, payload, mut cheated } = generation;
        let mut report = FinishReport {
            prompt_tokens: payload.prompt_tokens,
            completion_tokens: payload.completion_tokens,
            max_tokens: request.max_tokens,
        };
        if let Some(byzantine) = self.nodes[executor].byzantine.as_mut() {
            byzantine.finish(&mut report);
        }
        cheated |= report.prompt_tokens != payload.prompt_tokens
            || report.completion_tokens != payload.completion_tokens;
        let finish = InferenceMsg::Finish {
            request,
            ta_signature,
            prompt_tokens: report.prompt_tokens,
            cached_tokens: payload.cached_tokens,
            completion_tokens: report.completion_tokens,
            response_hash: payload.response_hash,
            seed: payload.seed,
            logprobs_hash: payload.logprobs_hash,
        };
        let id = inference_id(&request.signature);
        // The payload and the Finish are kept before the answer goes out: a crash cannot lose what the
        // developer owes, nor what validators must see.
        let tokens = u64::from(payload.prompt_tokens) + u64::from(payload.completion_tokens);
        let cached = u64::from(payload.cached_tokens);
        let node = &mut self.nodes[executor];
        node.payloads.insert(id, payload);
        let key = node.outbox.add(finish.clone());
        let running = node.running.as_ref().expect("checked up");
        if running.signer.submit(vec![finish.into()]).is_ok()
            && let Some(key) = key
        {
            node.outbox.submitted(key, height);
        }
        self.flush_gossip(executor);
        self.traffic.served += 1;
        self.traffic.cached_tokens += cached;
        let delivered = self.nodes[ta].up() && self.faults.connected(executor, ta, self.round);
        self.traffic.delivered += u64::from(delivered);
        let params = &self.genesis.params.inference;
        let settle_by = params.deadline(height + 1, request.max_tokens) + SETTLE_MARGIN_BLOCKS;
        if delivered {
            self.unsettled.insert(id, (executor, ta, self.round));
        }
        self.in_custody.insert(id, (executor, self.round));
        self.ledger.serve(
            id,
            Served {
                developer: request.requester,
                executor: self.nodes[executor].address(),
                tokens,
                cached,
                cached_price_ppm: model().cached_price_ppm,
                price_bound: request.max_price_per_token,
                height,
                settle_by,
                delivered,
                excused: false,
                cheated,
                custody_lapsed: false,
            },
        );
    }

    // ---------------------------------------------------------------------------------- validation

    /// Runs host `index`'s validation planner on the new block and the results of its checks.
    fn validate(&mut self, index: usize) {
        let host_key = self.nodes[index].host_key();
        let Some(running) = self.nodes[index].running.as_mut() else { return };
        let mut inputs = std::mem::take(&mut running.validation_inputs);
        inputs.push(ValidationInput::Block);
        let mut actions = Vec::new();
        for input in inputs {
            let pending = running.chain.pending_messages(&host_key.account);
            let waiting =
                |m: &gonka_chain::Msg| pending.contains(&gonka_primitives::codec::Encode::to_bytes(m));
            actions
                .extend(running.chain.with_state(|s| running.validation.plan(s, &host_key, &waiting, input)));
        }
        for action in actions {
            match action {
                ValidationAction::Submit(msgs) => {
                    let running = self.nodes[index].running.as_ref().expect("acting hosts are up");
                    // A refusal (a full mempool) is retried by the planner.
                    let _ = running.signer.submit(msgs);
                }
                ValidationAction::Check { id, executor, proof } => {
                    let Some(to) = self.nodes.iter().position(|n| n.address() == executor) else { continue };
                    let running = self.nodes[index].running.as_mut().expect("acting hosts are up");
                    running.fetching.insert(id);
                    self.send(index, to, Message::Fetch { from: index, to, id, proof }, false);
                    let timeout = self.clock.now_ms() + FETCH_TIMEOUT_MS;
                    self.push(timeout, Message::FetchTimeout { validator: index, id });
                }
            }
        }
        self.flush_gossip(index);
    }

    /// Executor `to` answers `from`'s payload request: the payload if `from` may read it (its selection
    /// proof, or a vote open on the inference) and the executor hands payloads over at all.
    fn serve_payload(&mut self, from: usize, to: usize, id: Hash, proof: Option<VrfProof>) {
        let validator = self.nodes[from].address();
        let node = &self.nodes[to];
        let Some(running) = node.running.as_ref() else { return };
        let allowed =
            running.chain.with_state(|s| may_read_payload(s, &id, &validator, proof.as_ref())).is_ok();
        let serves = node.byzantine.as_ref().is_none_or(|b| b.serves_payloads());
        let payload = node.payloads.get(&id).filter(|_| allowed && serves).cloned().map(Box::new);
        self.send(to, from, Message::FetchReply { to: from, id, payload }, false);
    }

    /// A payload (or a refusal) reaches validator `to`: it re-scores the answer on its engine and
    /// judges it, as a host's shell does.
    fn payload_arrived(&mut self, to: usize, id: Hash, payload: Option<Payload>) {
        let engine = &self.engine;
        let Some(running) = self.nodes[to].running.as_mut() else { return };
        if !running.fetching.remove(&id) {
            return;
        }
        let input = match payload {
            None => ValidationInput::CheckFailed {
                id,
                error: "the executor refused the payload".into(),
                refused: true,
            },
            Some(payload) => match running.chain.with_state(|s| s.inference.record(&id).cloned()) {
                None => ValidationInput::CheckFailed { id, error: "no record".into(), refused: false },
                Some(record) => {
                    let rescoring = answers::rescore(engine, &payload, &record, &id);
                    let tolerance = Tolerance { distance_max_ppm: 0, replay_ppm: 0 };
                    ValidationInput::Checked {
                        id,
                        verdict: verdict(&record, &payload, &rescoring, tolerance),
                    }
                }
            },
        };
        running.validation_inputs.push(input);
    }

    // ---------------------------------------------------------------------------------- invariants

    /// Marks excused every unsettled delivered answer whose executor or transfer agent has been down or
    /// cut off since it was served, and forgets the ones charged.
    fn excuse_isolated(&mut self) {
        let (faults, round, ledger) = (&self.faults, self.round, &mut self.ledger);
        self.unsettled.retain(|id, (executor, ta, served_in)| {
            if ledger.charges.contains_key(id) {
                return false;
            }
            let isolated =
                faults.isolated(*executor, *served_in, round) || faults.isolated(*ta, *served_in, round);
            if isolated && let Some(served) = ledger.served.get_mut(id) {
                served.excused = true;
            }
            !isolated
        });
    }

    /// Marks every answer whose executor has been down or cut off since it served it, within its custody
    /// window: it may fail validation for a payload it could not hand over.
    fn lapse_custody(&mut self) {
        let (faults, round, ledger) = (&self.faults, self.round, &mut self.ledger);
        self.in_custody.retain(|id, (executor, served_in)| {
            if faults.isolated(*executor, *served_in, round)
                && let Some(served) = ledger.served.get_mut(id)
            {
                served.custody_lapsed = true;
                return false;
            }
            round <= *served_in + CUSTODY_ROUNDS
        });
    }

    /// Every invariant, after the block just decided. The state rules are checked on one up-to-date
    /// node: every other node with the same app hash has the same state, and one without is reported.
    fn check(&mut self) {
        let height = self.height();
        let canonical: Vec<Hash> = self.canonical.iter().map(|(_, h)| *h).collect();
        let nodes: Vec<(usize, u64, Hash)> = self
            .nodes
            .iter()
            .filter_map(|n| {
                n.running.as_ref().map(|r| r.chain.with_state(|s| (n.index, s.height(), s.meta.app_hash)))
            })
            .collect();
        let mut found = invariants::app_hashes(&nodes, &canonical);
        self.excuse_isolated();
        self.lapse_custody();
        found.extend(invariants::charges(&self.ledger, height));
        let cheaters: Vec<Address> = self
            .nodes
            .iter()
            .filter(|n| n.byzantine.as_ref().is_some_and(|b| b.kind().cheats_answers()))
            .map(SimNode::address)
            .collect();
        found.extend(invariants::validation(&self.ledger, &cheaters, height));
        let reference = self.nodes.iter().position(|n| n.height() == Some(height));
        if let Some(chain) = reference.and_then(|i| self.nodes[i].running.as_ref().map(|r| r.chain.clone())) {
            let supply = self.genesis_supply;
            let faults = self.faults();
            let cut_off: Vec<usize> = faults
                .crashes
                .iter()
                .map(|(i, _)| *i)
                .chain(faults.partition.iter().flat_map(|(set, _)| set.iter().copied()))
                .collect();
            let honest: Vec<Address> = self
                .nodes
                .iter()
                .filter(|n| n.byzantine.is_none() && !cut_off.contains(&n.index))
                .map(SimNode::address)
                .collect();
            found.extend(chain.with_state(|state| {
                let mut found = invariants::supply(state, supply);
                found.extend(invariants::economy(state, &honest));
                found.extend(self.check_stage(state));
                self.confirmed = invariants::confirmed(state);
                found
            }));
        }
        self.violations.record(found);
    }

    /// The PoC invariants, right after a stage's weights settle.
    fn check_stage(&mut self, state: &State) -> Vec<invariants::Violation> {
        let Some(stage) = state.poc.stage() else { return Vec::new() };
        let Some(stages) = state.params().epoch.stages(stage.epoch) else { return Vec::new() };
        if state.height() != stages.end_of_validation {
            return Vec::new();
        }
        let mut found = invariants::weights_capped(state);
        found.extend(invariants::power_moves(state, &self.confirmed));
        // When no host was accepted the chain keeps the current set (`poc_weights_kept`): no stage
        // weights apply, so there is nothing a cheater could have gained (docs/spec/sim.md §3).
        let settled = state.hosts.participants().values().any(|p| p.next_weight.is_some());
        if settled {
            let cheaters: Vec<Address> = self
                .nodes
                .iter()
                .filter(|n| n.byzantine.as_ref().is_some_and(|b| b.kind().cheats_poc()))
                .map(SimNode::address)
                .filter(|a| state.poc.claim(stage.start_height, *a).is_some())
                .collect();
            found.extend(invariants::cheaters_settled_no_power(state, &cheaters));
        }
        let rounds = (self.decided_in.get(&stages.poc_start), self.decided_in.get(&stages.end_of_validation));
        let fault_free = match rounds {
            (Some(from), Some(to)) => !self.faults.any_between(*from, *to),
            _ => false,
        };
        if fault_free {
            self.stages_checked += 1;
            let honest: Vec<(Address, u64)> = self
                .nodes
                .iter()
                .filter(|n| {
                    n.byzantine
                        .as_ref()
                        .is_none_or(|b| b.computes() && !b.kind().cheats_poc() && !b.kind().cheats_answers())
                })
                .map(|n| (n.address(), n.speed))
                .collect();
            found.extend(invariants::compute_share(state, &honest));
        }
        found
    }

    // ---------------------------------------------------------------------------------- report

    fn report(self) -> Report {
        let (violation_counts, violations) = self.violations.into_parts();
        let mut digest_parts: Vec<u8> = Vec::new();
        for (_, app_hash) in &self.canonical {
            digest_parts.extend_from_slice(&app_hash.0);
        }
        let mut host_summaries = Vec::new();
        for node in &self.nodes {
            let height = node.height();
            let (app_hash, power, poc_weight) = node.running.as_ref().map_or((Hash::ZERO, 0, 0), |r| {
                r.chain.with_state(|s| {
                    let p = s.hosts.participant(&node.address());
                    (s.meta.app_hash, p.map_or(0, |p| p.weight), p.map_or(0, |p| p.poc_weight))
                })
            });
            digest_parts.extend_from_slice(&height.unwrap_or(u64::MAX).to_be_bytes());
            digest_parts.extend_from_slice(&app_hash.0);
            host_summaries.push(HostSummary {
                host: node.index,
                behaviour: node.byzantine.as_ref().map_or("honest".to_string(), |b| b.kind().to_string()),
                speed: node.speed,
                height,
                power,
                poc_weight,
            });
        }
        for violation in &violations {
            digest_parts.extend_from_slice(violation.invariant.as_bytes());
            digest_parts.extend_from_slice(&violation.height.to_be_bytes());
            digest_parts.extend_from_slice(violation.detail.as_bytes());
        }
        let economy = self
            .nodes
            .iter()
            .filter_map(|n| n.running.as_ref())
            .max_by_key(|r| r.chain.with_state(|s| s.height()))
            .map(|r| r.chain.with_state(economy_totals))
            .unwrap_or_default();
        let end = self.canonical.len() as u64;
        let (worth, charged, in_flight) = self.ledger.delivered_totals(end);
        let traffic = TrafficSummary {
            validation: self.ledger.validation_totals(),
            charged: self.ledger.charges.len() as u64,
            delivered_worth: worth,
            delivered_charged: charged,
            delivered_in_flight: in_flight,
            ..self.traffic
        };
        Report {
            seed: self.config.seed,
            hosts: self.config.hosts,
            blocks: self.canonical.len() as u64,
            failed_rounds: self.failed_rounds,
            digest: Hash::digest_parts(&[b"gonka/sim/digest/v1", &digest_parts]),
            app_hash: self.canonical.last().map_or(Hash::ZERO, |(_, h)| *h),
            violation_counts,
            violations,
            host_summaries,
            traffic,
            stages_checked: self.stages_checked,
            faults: format!("{:?}", self.faults),
            economy,
        }
    }
}

/// The economy's totals in `state`.
fn economy_totals(state: &State) -> crate::report::EconomyTotals {
    let totals = state.rewards.totals();
    let mut economy = crate::report::EconomyTotals {
        epochs_settled: totals.last_settled.map_or(0, |e| e + 1),
        minted: totals.minted.0,
        claimed: totals.work_claimed.0 + totals.rewards_claimed.0,
        burned: totals.burned().0,
        ..Default::default()
    };
    for summary in state.rewards.summaries().values() {
        match summary.claim {
            gonka_chain::ClaimStatus::Claimed => economy.claims += 1,
            gonka_chain::ClaimStatus::Forfeited { .. } => economy.forfeited += 1,
            gonka_chain::ClaimStatus::Unclaimed => economy.unclaimed += 1,
            _ => {}
        }
    }
    economy
}

/// Each host's behaviour: the last hosts take the host behaviours, in the order given.
fn host_kinds(config: &SimConfig) -> Vec<Option<ByzantineKind>> {
    let mut kinds = vec![None; config.hosts];
    let mut next = config.hosts;
    for (kind, count) in config.byzantine.iter().filter(|(k, _)| !k.is_developer()) {
        for _ in 0..*count {
            next -= 1;
            kinds[next] = Some(*kind);
        }
    }
    kinds
}

/// Genesis: every host a validator of power 100 and funded, developers funded, drainers funded for
/// exactly one request's escrow, censors' flood senders funded.
fn genesis(config: &SimConfig, nodes: &[SimNode], developers: &[Developer], drainers: &[Drainer]) -> Genesis {
    let authority = key(config.seed, "authority", 0);
    let mut accounts: Vec<GenesisAccount> = nodes
        .iter()
        .map(|n| GenesisAccount { address: n.address(), balance: Amount(1_000_000_000_000) })
        .collect();
    accounts.extend(
        developers
            .iter()
            .map(|d| GenesisAccount { address: d.key.address(), balance: Amount(10_000_000_000_000) }),
    );
    let engine = FakeEngine::new(&model().name);
    for (i, drainer) in drainers.iter().enumerate() {
        let content = format!("drain {i}");
        let prompt = engine
            .render_chat(&[ChatMessage { role: "user".into(), content }])
            .map_or(0, |t| t.len() as u128);
        let escrow = (prompt + u128::from(MAX_TOKENS)) * price_bound().0;
        accounts.push(GenesisAccount { address: drainer.key.address(), balance: Amount(escrow) });
    }
    for node in nodes {
        if let Some(byzantine) = &node.byzantine {
            accounts.extend(
                byzantine
                    .funded_accounts()
                    .into_iter()
                    .map(|a| GenesisAccount { address: a, balance: Amount(1_000_000_000) }),
            );
        }
    }
    accounts.push(GenesisAccount { address: authority.address(), balance: Amount(1) });
    let chain_id = format!("gonka-sim-{}", config.seed);
    let participants = nodes
        .iter()
        .map(|n| GenesisParticipant {
            address: n.address(),
            account_key: n.account.public_key(),
            api_url: format!("http://sim-host-{}", n.index),
            validator_key: n.validator.public_key(),
            operational_key: n.operational.public_key(),
            weight: 100,
            collateral: HOST_COLLATERAL,
            validation_key: Some(validation_key(&n.operational, &chain_id, 0).public_key()),
        })
        .collect();
    Genesis {
        chain_id,
        genesis_time_ms: GENESIS_TIME_MS,
        params: params(authority.address()),
        accounts,
        participants,
        developers: developers.iter().map(|d| d.key.address()).collect(),
        tokenomics: gonka_chain::Tokenomics::default(),
    }
}

/// The terms a simulated developer signs for `content` sent to `transfer_agent`.
pub(crate) fn request_terms(transfer_agent: Address, content: &str, timestamp_ns: u64) -> RequestTerms {
    RequestTerms {
        transfer_agent,
        body_hash: Hash::digest(content.as_bytes()),
        body_len: content.len() as u32,
        timestamp_ns,
        model: model().content_hash,
        max_tokens: MAX_TOKENS,
        max_price_per_token: price_bound(),
    }
}

/// What a simulated developer signs per token: four times the base price, so prices that rise under
/// load never price it out within a run.
pub(crate) fn price_bound() -> Amount {
    Amount(model().price_per_token.0 * 4)
}

//! The host's reactions to the chain's PoC phases (reference §2.4, §3.5–§3.8): it follows committed
//! blocks and, with no operator action,
//! - at `S` builds the stage's model, commits to its epoch seed and starts a sprint;
//! - while batches are accepted, submits the valid nonces its workers find;
//! - at the end of generation stops the sprint and flushes what is left;
//! - in the validation window samples every participant's claims with a seed only it can make,
//!   recomputes them on the same kernel and submits one verdict per participant.
//!
//! Every decision is derived from the chain state (stage, own commitment, own votes), so a restarted
//! node picks up where the chain says it is. Progress is published for `/poc/progress`, `/metrics`
//! and the logs.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gonka_chain::{Msg, PocNonce, PocStage, State};
use gonka_engine::poc::{PocModel, Sprint, SprintConfig, SprintStats, ValidNonces};
use gonka_poc::{Distance, check_claims, sample_seed_message};
use gonka_primitives::{AccountKey, AccountPublicKey, Address, Hash};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::chain::Chain;
use crate::signer::HostSigner;

/// Domain of the message whose signature is a host's secret seed for an epoch.
const SEED_DOMAIN: &[u8] = b"gonka/epoch-seed/v1\0";
/// How often the host looks at the chain besides reacting to new blocks.
const TICK: Duration = Duration::from_millis(250);

/// `[poc]` in `config.toml`: how this host races.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PocConfig {
    /// Whether the node runs PoC sprints and validations at all.
    pub enabled: bool,
    /// Worker threads of a sprint (0: every core).
    pub workers: u32,
    /// Nonces per forward pass.
    pub batch_size: usize,
    /// Nice value of the worker threads.
    pub nice: i32,
}

impl Default for PocConfig {
    fn default() -> Self {
        let defaults = SprintConfig::default();
        PocConfig { enabled: true, workers: 0, batch_size: defaults.batch_size, nice: defaults.nice }
    }
}

/// What the host is doing, for `/poc/progress` and the devnet's progress line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PocProgress {
    /// Epoch of the current stage.
    pub epoch: u64,
    /// Start height of the current stage.
    pub stage_start: u64,
    /// `idle`, `sprinting`, `submitting`, `validating`, `validated`.
    pub activity: &'static str,
    /// Nonces computed in this stage's sprint.
    pub nonces: u64,
    /// Valid nonces found.
    pub valid: u64,
    /// Valid nonces submitted in batches.
    pub submitted: u64,
    /// Rate of the running (or last) sprint.
    pub nonces_per_second: f64,
    /// Participants this host submitted a verdict on in this stage.
    pub validated: u64,
    /// Verdicts that found fraud.
    pub fraud_found: u64,
    /// Last error, if any.
    pub last_error: Option<String>,
}

/// Cumulative counters for `/metrics`.
#[derive(Debug, Default)]
pub struct PocCounters {
    /// Nonces computed in all sprints.
    pub nonces: std::sync::atomic::AtomicU64,
    /// Valid nonces found.
    pub valid: std::sync::atomic::AtomicU64,
    /// Valid nonces submitted.
    pub submitted: std::sync::atomic::AtomicU64,
    /// Verdicts submitted.
    pub validations: std::sync::atomic::AtomicU64,
}

/// Shared view of the host's PoC work.
#[derive(Debug, Default)]
pub struct HostStatus {
    progress: Mutex<PocProgress>,
    /// Cumulative counters.
    pub counters: PocCounters,
}

impl HostStatus {
    /// A snapshot of the progress.
    pub fn progress(&self) -> PocProgress {
        self.progress.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, change: impl FnOnce(&mut PocProgress)) {
        change(&mut self.progress.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Everything the host loop needs.
pub struct Host {
    chain: Arc<Chain>,
    signer: Arc<HostSigner>,
    account: Address,
    config: PocConfig,
    status: Arc<HostStatus>,
}

/// One participant's claims, as a validator reads them from the chain.
struct ParticipantClaims {
    participant: Address,
    key: AccountPublicKey,
    claimed: Vec<(u64, Distance)>,
}

/// The current stage's work in progress.
struct StageWork {
    stage: PocStage,
    model: Option<Arc<PocModel>>,
    sprint: Option<RunningSprint>,
    pending: Vec<(u64, Distance)>,
    validated: bool,
}

struct RunningSprint {
    sprint: Sprint,
    found: Receiver<ValidNonces>,
    stats: Arc<SprintStats>,
    started: Instant,
    /// (nonces, valid) already added to the cumulative counters.
    counted: (u64, u64),
}

impl Host {
    /// A host acting for the signer's account on its chain.
    pub fn new(signer: Arc<HostSigner>, config: PocConfig, status: Arc<HostStatus>) -> Host {
        Host { chain: signer.chain().clone(), account: signer.account(), signer, config, status }
    }

    /// Follows the chain until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut blocks = self.chain.subscribe();
        let mut ticker = tokio::time::interval(TICK);
        let mut work: Option<StageWork> = None;
        loop {
            tokio::select! {
                _ = blocks.recv() => {}
                _ = ticker.tick() => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
            if let Err(error) = self.step(&mut work).await {
                tracing::warn!(%error, "poc host step failed");
                self.status.update(|p| p.last_error = Some(error.to_string()));
            }
        }
        if let Some(running) = work.and_then(|w| w.sprint) {
            let _ = tokio::task::spawn_blocking(move || running.sprint.stop()).await;
        }
    }

    /// One look at the chain: start, feed, stop or validate as the current height requires.
    async fn step(&self, work: &mut Option<StageWork>) -> anyhow::Result<()> {
        let (height, stage, stages, my_weight) = self.chain.with_state(|s| {
            let stage = s.poc_stage();
            let stages = stage.and_then(|st| s.meta.params.epoch.stages(st.epoch));
            (s.height(), stage, stages, s.participants.get(&self.account).map(|p| p.weight))
        });
        let (Some(stage), Some(stages), Some(my_weight)) = (stage, stages, my_weight) else { return Ok(()) };
        if work.as_ref().is_none_or(|w| w.stage != stage) {
            if let Some(old) = work.take().and_then(|w| w.sprint) {
                tokio::task::spawn_blocking(move || old.sprint.stop()).await??;
            }
            *work =
                Some(StageWork { stage, model: None, sprint: None, pending: Vec::new(), validated: false });
            self.status.update(|p| {
                *p = PocProgress {
                    epoch: stage.epoch,
                    stage_start: stage.start_height,
                    activity: "idle",
                    ..Default::default()
                };
            });
        }
        let Some(work) = work.as_mut() else { return Ok(()) };
        // A transaction submitted now lands in the next block at the earliest.
        let next = height + 1;
        if height < stages.end_of_generation && work.sprint.is_none() && next <= stages.exchange_deadline {
            self.start_sprint(work).await?;
        }
        self.collect(work);
        if height >= stages.end_of_generation
            && let Some(running) = work.sprint.take()
        {
            tokio::task::spawn_blocking(move || running.sprint.stop()).await??;
            self.collect(work);
            self.status.update(|p| p.activity = "submitting");
        }
        if stages.batch_window().contains(&next) && !work.pending.is_empty() {
            self.submit_batches(work)?;
        }
        if my_weight > 0 && !work.validated && stages.validation_window().contains(&next) {
            self.validate(work).await?;
        }
        if height >= stages.end_of_validation {
            work.model = None;
        }
        Ok(())
    }

    async fn model(&self, work: &mut StageWork) -> anyhow::Result<Arc<PocModel>> {
        if let Some(model) = &work.model {
            return Ok(model.clone());
        }
        let spec = self.chain.with_state(|s| s.meta.params.poc.model.clone());
        let block_hash = work.stage.block_hash;
        let started = Instant::now();
        let model =
            tokio::task::spawn_blocking(move || PocModel::new(&spec, &block_hash, &candle_core::Device::Cpu))
                .await??;
        tracing::info!(
            epoch = work.stage.epoch,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "poc model built"
        );
        let model = Arc::new(model);
        work.model = Some(model.clone());
        Ok(model)
    }

    async fn start_sprint(&self, work: &mut StageWork) -> anyhow::Result<()> {
        if !self.config.enabled {
            return Ok(());
        }
        self.commit_seed(work)?;
        let model = self.model(work).await?;
        let (public_key, r_target) = self.chain.with_state(|s| {
            let key = s.participants.get(&self.account).map(|p| p.account_key);
            (key, s.poc_mismatch_rule().r_target)
        });
        let public_key = public_key.ok_or_else(|| anyhow::anyhow!("{} is not a host", self.account))?;
        let workers = match self.config.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            n => n,
        };
        let config = SprintConfig { workers, batch_size: self.config.batch_size, nice: self.config.nice };
        let (sink, found) = std::sync::mpsc::channel();
        let sprint = Sprint::start(&model, public_key.0, r_target, config, &sink)?;
        let stats = sprint.stats();
        work.sprint = Some(RunningSprint { sprint, found, stats, started: Instant::now(), counted: (0, 0) });
        tracing::info!(
            epoch = work.stage.epoch,
            stage = work.stage.start_height,
            workers,
            "poc sprint started"
        );
        self.status.update(|p| p.activity = "sprinting");
        Ok(())
    }

    /// Moves found nonces into `pending` and refreshes the progress counters.
    fn collect(&self, work: &mut StageWork) {
        let Some(running) = &mut work.sprint else { return };
        while let Ok(batch) = running.found.try_recv() {
            work.pending.extend(batch);
        }
        let (nonces, valid) = (running.stats.nonces.load(Relaxed), running.stats.valid.load(Relaxed));
        let seconds = running.started.elapsed().as_secs_f64().max(1e-3);
        self.status.counters.nonces.fetch_add(nonces - running.counted.0, Relaxed);
        self.status.counters.valid.fetch_add(valid - running.counted.1, Relaxed);
        running.counted = (nonces, valid);
        self.status.update(|p| {
            p.nonces = nonces;
            p.valid = valid;
            p.nonces_per_second = nonces as f64 / seconds;
        });
    }

    /// Commits to this epoch's seed unless the chain already holds a commitment from this host.
    fn commit_seed(&self, work: &StageWork) -> anyhow::Result<()> {
        let key = gonka_chain::ClaimKey { stage: work.stage.start_height, participant: self.account };
        if self.chain.with_state(|s| s.poc_claims.get(&key).is_some_and(|c| c.seed_commitment.is_some())) {
            return Ok(());
        }
        let chain_id = self.chain.with_state(|s| s.meta.chain_id.clone());
        let commitment = Hash::digest(&epoch_seed(self.signer.key(), &chain_id, work.stage.epoch));
        self.submit(vec![Msg::SubmitSeedCommit { epoch: work.stage.epoch, commitment }])?;
        Ok(())
    }

    fn submit_batches(&self, work: &mut StageWork) -> anyhow::Result<()> {
        let limit = self.chain.with_state(|s| s.meta.params.poc.max_nonces_per_batch as usize);
        while !work.pending.is_empty() {
            let take = work.pending.len().min(limit);
            let nonces: Vec<PocNonce> =
                work.pending[..take].iter().map(|&(nonce, distance)| PocNonce { nonce, distance }).collect();
            self.submit(vec![Msg::SubmitPocBatch { poc_start: work.stage.start_height, nonces }])?;
            work.pending.drain(..take);
            self.status.counters.submitted.fetch_add(take as u64, Relaxed);
            self.status.update(|p| p.submitted += take as u64);
        }
        Ok(())
    }

    async fn validate(&self, work: &mut StageWork) -> anyhow::Result<()> {
        self.status.update(|p| p.activity = "validating");
        let model = self.model(work).await?;
        let stage = work.stage;
        let (claims, sample_size, rule, limits) = self.chain.with_state(|s| {
            let claims: Vec<ParticipantClaims> = s
                .poc_claims
                .range(gonka_chain::ClaimKey { stage: stage.start_height, participant: Address([0; 20]) }..)
                .take_while(|(k, _)| k.stage == stage.start_height)
                .filter(|(k, c)| {
                    c.nonce_count > 0 && !already_voted(s, stage.start_height, k.participant, self.account)
                })
                .filter_map(|(k, _)| {
                    Some(ParticipantClaims {
                        participant: k.participant,
                        key: s.participants.get(&k.participant)?.account_key,
                        claimed: s.poc_claimed_nonces(stage.start_height, k.participant),
                    })
                })
                .collect();
            (claims, s.meta.params.poc.validation_sample_size, s.poc_mismatch_rule(), s.meta.params.limits)
        });
        let operational = self.signer.key().clone();
        let started = Instant::now();
        let verdicts = tokio::task::spawn_blocking(move || {
            claims
                .into_iter()
                .map(|ParticipantClaims { participant, key, claimed }| {
                    let seed =
                        operational.sign(&sample_seed_message(&stage.block_hash, stage.start_height, &key.0));
                    let check = check_claims(&seed.0, &claimed, sample_size as usize, &rule, |sample| {
                        let distances = model.distances(&key.0, sample)?;
                        Ok::<_, gonka_engine::poc::PocComputeError>(
                            distances.into_iter().map(|d| d.map(Distance::from_f32)).collect(),
                        )
                    })?;
                    Ok(Msg::SubmitPocValidation {
                        poc_start: stage.start_height,
                        participant,
                        sampled: check.sampled,
                        mismatches: check.mismatches,
                        sample_seed: seed,
                    })
                })
                .collect::<Result<Vec<Msg>, gonka_engine::poc::PocComputeError>>()
        })
        .await??;
        let (count, fraud) =
            (verdicts.len(), verdicts.iter().filter(|m| is_fraud_vote(m, &self.chain)).count());
        for chunk in verdicts.chunks(limits.max_messages_per_tx.max(1) as usize) {
            self.submit(chunk.to_vec())?;
        }
        work.validated = true;
        self.status.counters.validations.fetch_add(count as u64, Relaxed);
        self.status.update(|p| {
            p.activity = "validated";
            p.validated += count as u64;
            p.fraud_found += fraud as u64;
        });
        tracing::info!(
            epoch = stage.epoch,
            participants = count,
            fraud,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "poc validations submitted"
        );
        Ok(())
    }

    fn submit(&self, messages: Vec<Msg>) -> anyhow::Result<Hash> {
        self.signer.submit(messages)
    }
}

use std::sync::atomic::Ordering::Relaxed;

fn already_voted(state: &State, stage: u64, participant: Address, validator: Address) -> bool {
    state.poc_votes.contains_key(&gonka_chain::VoteKey { stage, participant, validator })
}

/// Whether the chain will judge this verdict fraud (for the progress counters only).
fn is_fraud_vote(msg: &Msg, chain: &Chain) -> bool {
    let Msg::SubmitPocValidation { sampled, mismatches, .. } = msg else { return false };
    chain.with_state(|s| s.meta.params.poc.is_fraud(*sampled, *mismatches).unwrap_or(false))
}

/// The host's secret seed for `epoch`: its deterministic (RFC 6979) signature over the domain, chain
/// id and epoch, so it can be recomputed after a restart instead of stored. It is committed at the
/// start of PoC and revealed when the epoch's rewards are claimed.
pub fn epoch_seed(key: &AccountKey, chain_id: &str, epoch: u64) -> Vec<u8> {
    let mut message = SEED_DOMAIN.to_vec();
    message.extend_from_slice(chain_id.as_bytes());
    message.push(0);
    message.extend_from_slice(&epoch.to_be_bytes());
    key.sign(&message).0.to_vec()
}

//! The host's PoC shell: it runs the planner of `gonka_host::poc` on every committed block, on a
//! tick and on every result the engine reports, and performs the actions it returns — building the
//! stage's model and racing nonces on the engine's PoC kernel (candle dense f32), recomputing
//! validators' samples, and signing and submitting transactions. Every decision is the planner's;
//! this file only does I/O. Progress is published for `/poc/progress`, `/metrics` and the logs.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gonka_chain::PocStage;
use gonka_engine::poc::{PocModel, Sprint, SprintConfig, SprintStats, ValidNonces};
use gonka_host::poc::{HostKey, PocAction, PocHost, PocInput, PocSummary};
use gonka_poc::Distance;
use gonka_primitives::{AccountPublicKey, Address};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::chain::Chain;
use crate::metrics::NodeMetrics;
use crate::signer::HostSigner;

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

/// Refuses to race PoC with `spec` on a machine of `memory_bytes`: its f32 weights alone would not
/// fit (the mainnet-profile model is ~71 GB), and the node would fail at the first sprint instead of at
/// start.
pub fn check_poc_fits(spec: &gonka_poc::ModelSpec, memory_bytes: u64) -> anyhow::Result<()> {
    let weights = spec.parameter_count().saturating_mul(4);
    let gb = |bytes: u64| bytes as f64 / 1e9;
    anyhow::ensure!(
        weights < memory_bytes,
        "this chain's PoC model has {} parameters: {:.1} GB of f32 weights, and this machine has {:.1} GB of \
         memory. It cannot race PoC here (PoC on a GPU is not built yet). To follow the chain without \
         PoC, set `enabled = false` under [poc] in config.toml.",
        spec.parameter_count(),
        gb(weights),
        gb(memory_bytes)
    );
    Ok(())
}

/// The machine's memory (`MemTotal` of `/proc/meminfo`), when it can be read.
pub fn machine_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

impl Default for PocConfig {
    fn default() -> Self {
        let defaults = SprintConfig::default();
        PocConfig { enabled: true, workers: 0, batch_size: defaults.batch_size, nice: defaults.nice }
    }
}

/// What the host is doing, for `/poc/progress` and the devnet's progress line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PocProgress {
    /// Epoch of the current stage.
    pub epoch: u64,
    /// Start height of the current stage.
    pub stage_start: u64,
    /// `idle`, `sprinting`, `submitting`, `validating`, `validated`.
    pub activity: String,
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

/// Shared view of the host's PoC work.
#[derive(Debug, Default)]
pub struct HostStatus {
    progress: Mutex<PocProgress>,
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

/// Waits for what a planner loop reacts to — a committed block, a tick, or a result of work it asked
/// for — and returns the inputs to plan on: `block` first, then every result waiting. None once
/// `shutdown` turns true.
pub(crate) async fn next_inputs<I>(
    block: I,
    blocks: &mut tokio::sync::broadcast::Receiver<Arc<crate::chain::BlockEvent>>,
    ticker: &mut tokio::time::Interval,
    results: &mut mpsc::UnboundedReceiver<I>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Vec<I>> {
    let mut inputs = vec![block];
    tokio::select! {
        _ = blocks.recv() => {}
        _ = ticker.tick() => {}
        Some(result) = results.recv() => inputs.push(result),
        _ = shutdown.changed() => return None,
    }
    if *shutdown.borrow() {
        return None;
    }
    while let Ok(result) = results.try_recv() {
        inputs.push(result);
    }
    Some(inputs)
}

/// A recomputation the planner asked for.
struct RecomputeJob {
    model: Arc<PocModel>,
    participant: Address,
    public_key: AccountPublicKey,
    nonces: Vec<u64>,
}

/// The stage's engine work in progress.
struct StageWork {
    stage: PocStage,
    model: Option<Arc<PocModel>>,
    sprint: Option<RunningSprint>,
    /// Valid nonces read from a stopped sprint, not yet planned.
    leftover: Vec<(u64, Distance)>,
}

struct RunningSprint {
    sprint: Sprint,
    found: Receiver<ValidNonces>,
    stats: Arc<SprintStats>,
    started: Instant,
    /// (nonces, valid) already added to the cumulative counters.
    counted: (u64, u64),
}

/// Everything the host loop needs.
pub struct Host {
    chain: Arc<Chain>,
    signer: Arc<HostSigner>,
    key: HostKey,
    config: PocConfig,
    status: Arc<HostStatus>,
    metrics: Arc<NodeMetrics>,
}

impl Host {
    /// A host acting for the signer's account on its chain.
    pub fn new(
        signer: Arc<HostSigner>,
        config: PocConfig,
        status: Arc<HostStatus>,
        metrics: Arc<NodeMetrics>,
    ) -> Host {
        let key = HostKey { account: signer.account(), operational: signer.key().clone() };
        Host { chain: signer.chain().clone(), key, signer, config, status, metrics }
    }

    /// Follows the chain until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut blocks = self.chain.subscribe();
        let mut ticker = tokio::time::interval(TICK);
        let mut planner = PocHost::new(self.config.enabled);
        let mut work: Option<StageWork> = None;
        let (jobs, results) = self.spawn_validator();
        let mut results = results;
        while let Some(mut inputs) =
            next_inputs(PocInput::Block, &mut blocks, &mut ticker, &mut results, &mut shutdown).await
        {
            if let Some(found) = collect_found(work.as_mut(), &self.metrics) {
                inputs.push(PocInput::Found(found));
            }
            for input in inputs {
                let pending = self.chain.pending_messages(&self.key.account);
                let waiting =
                    |m: &gonka_chain::Msg| pending.contains(&gonka_primitives::codec::Encode::to_bytes(m));
                let actions = self.chain.with_state(|s| planner.plan(s, &self.key, &waiting, input));
                for action in actions {
                    if let Err(error) = self.perform(action, &mut work, &jobs, &mut planner).await {
                        tracing::warn!(%error, "poc host action failed");
                        self.status.update(|p| p.last_error = Some(error.to_string()));
                    }
                }
            }
            self.publish(planner.summary(), work.as_ref());
        }
        if let Some(running) = work.and_then(|w| w.sprint) {
            let _ = tokio::task::spawn_blocking(move || running.sprint.stop()).await;
        }
    }

    /// One task recomputes samples, one at a time, on the blocking pool.
    fn spawn_validator(&self) -> (mpsc::UnboundedSender<RecomputeJob>, mpsc::UnboundedReceiver<PocInput>) {
        let (jobs, mut queue) = mpsc::unbounded_channel::<RecomputeJob>();
        let (results, received) = mpsc::unbounded_channel();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            while let Some(job) = queue.recv().await {
                let RecomputeJob { model, participant, public_key, nonces } = job;
                let computed =
                    tokio::task::spawn_blocking(move || model.distances(&public_key.0, &nonces)).await;
                let distances = match computed {
                    Ok(Ok(distances)) => distances.into_iter().map(|d| d.map(Distance::from_f32)).collect(),
                    Ok(Err(error)) => {
                        tracing::warn!(%participant, %error, "recomputing a PoC sample failed");
                        Vec::new()
                    }
                    Err(_) => Vec::new(),
                };
                metrics.poc_validations.inc();
                if results.send(PocInput::Recomputed { participant, distances }).is_err() {
                    break;
                }
            }
        });
        (jobs, received)
    }

    async fn perform(
        &self,
        action: PocAction,
        work: &mut Option<StageWork>,
        jobs: &mpsc::UnboundedSender<RecomputeJob>,
        planner: &mut PocHost,
    ) -> anyhow::Result<()> {
        match action {
            PocAction::StartSprint { stage, public_key, r_target } => {
                if let Err(error) = self.start_sprint(work, stage, public_key, r_target).await {
                    let _ = self.chain.with_state(|s| {
                        planner.plan(s, &self.key, &|_| false, PocInput::SprintFailed(error.to_string()))
                    });
                    return Err(error);
                }
            }
            PocAction::StopSprint => {
                if let Some(work) = work.as_mut()
                    && let Some(running) = work.sprint.take()
                {
                    let RunningSprint { sprint, found, .. } = running;
                    tokio::task::spawn_blocking(move || sprint.stop()).await??;
                    // What the workers found before they stopped is planned on the next pass.
                    while let Ok(batch) = found.try_recv() {
                        work.leftover.extend(batch);
                    }
                }
            }
            PocAction::Submit(messages) => {
                let count: u64 = messages
                    .iter()
                    .map(|m| match m {
                        gonka_chain::Msg::Poc(gonka_chain::PocMsg::Batch { nonces, .. }) => {
                            nonces.len() as u64
                        }
                        _ => 0,
                    })
                    .sum();
                self.signer.submit(messages)?;
                self.metrics.poc_submitted.inc_by(count);
            }
            PocAction::Recompute { stage, participant, public_key, nonces } => {
                match self.model(work, stage).await {
                    Ok(model) => {
                        let _ = jobs.send(RecomputeJob { model, participant, public_key, nonces });
                    }
                    Err(error) => {
                        let failed = PocInput::RecomputeFailed { participant, error: error.to_string() };
                        let _ = self.chain.with_state(|s| planner.plan(s, &self.key, &|_| false, failed));
                        return Err(error);
                    }
                }
            }
            PocAction::ReleaseModel => {
                if let Some(work) = work.as_mut() {
                    work.model = None;
                }
            }
        }
        Ok(())
    }

    /// The stage's model, built on first use.
    async fn model(&self, work: &mut Option<StageWork>, stage: PocStage) -> anyhow::Result<Arc<PocModel>> {
        if work.as_ref().is_none_or(|w| w.stage != stage) {
            if let Some(old) = work.take().and_then(|w| w.sprint) {
                tokio::task::spawn_blocking(move || old.sprint.stop()).await??;
            }
            *work = Some(StageWork { stage, model: None, sprint: None, leftover: Vec::new() });
        }
        let work = work.as_mut().expect("set just above");
        if let Some(model) = &work.model {
            return Ok(model.clone());
        }
        let spec = self.chain.with_state(|s| s.params().poc.model.clone());
        let block_hash = stage.block_hash;
        let started = Instant::now();
        let model =
            tokio::task::spawn_blocking(move || PocModel::new(&spec, &block_hash, &candle_core::Device::Cpu))
                .await??;
        tracing::info!(
            epoch = stage.epoch,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "poc model built"
        );
        let model = Arc::new(model);
        work.model = Some(model.clone());
        Ok(model)
    }

    async fn start_sprint(
        &self,
        work: &mut Option<StageWork>,
        stage: PocStage,
        public_key: AccountPublicKey,
        r_target: Distance,
    ) -> anyhow::Result<()> {
        let model = self.model(work, stage).await?;
        let workers = match self.config.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            n => n,
        };
        let config = SprintConfig { workers, batch_size: self.config.batch_size, nice: self.config.nice };
        let (sink, found) = std::sync::mpsc::channel();
        let sprint = Sprint::start(&model, public_key.0, r_target, config, &sink)?;
        let stats = sprint.stats();
        if let Some(work) = work.as_mut() {
            work.sprint =
                Some(RunningSprint { sprint, found, stats, started: Instant::now(), counted: (0, 0) });
        }
        tracing::info!(epoch = stage.epoch, stage = stage.start_height, workers, "poc sprint started");
        Ok(())
    }

    fn publish(&self, summary: &PocSummary, work: Option<&StageWork>) {
        let sprint = work.and_then(|w| w.sprint.as_ref());
        self.metrics.poc_sprinting.set(i64::from(sprint.is_some()));
        self.status.update(|p| {
            let (nonces, rate) = match sprint {
                Some(running) => {
                    let nonces = running.stats.nonces.load(Relaxed);
                    (nonces, nonces as f64 / running.started.elapsed().as_secs_f64().max(1e-3))
                }
                None if p.stage_start == summary.stage_start => (p.nonces, p.nonces_per_second),
                None => (0, 0.0),
            };
            self.metrics.set_sprint_rate(rate);
            *p = PocProgress {
                epoch: summary.epoch,
                stage_start: summary.stage_start,
                activity: summary.activity.to_string(),
                nonces,
                valid: summary.valid,
                submitted: summary.submitted,
                nonces_per_second: rate,
                validated: summary.validated,
                fraud_found: summary.fraud_found,
                last_error: summary.last_error.clone().or_else(|| p.last_error.clone()),
            };
        });
    }
}

use std::sync::atomic::Ordering::Relaxed;

/// Valid nonces the sprint reported since the last look; refreshes the cumulative counters.
fn collect_found(work: Option<&mut StageWork>, metrics: &NodeMetrics) -> Option<Vec<(u64, Distance)>> {
    let work = work?;
    let mut found = std::mem::take(&mut work.leftover);
    if let Some(running) = work.sprint.as_mut() {
        while let Ok(batch) = running.found.try_recv() {
            found.extend(batch);
        }
        let (nonces, valid) = (running.stats.nonces.load(Relaxed), running.stats.valid.load(Relaxed));
        metrics.poc_nonces.inc_by(nonces - running.counted.0);
        metrics.poc_valid.inc_by(valid - running.counted.1);
        running.counted = (nonces, valid);
    }
    (!found.is_empty()).then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mainnet_poc_model_is_refused_where_its_weights_do_not_fit() {
        let mainnet = gonka_poc::ModelSpec::mainnet();
        let error = check_poc_fits(&mainnet, 24 << 30).unwrap_err().to_string();
        assert!(error.contains("GB of f32 weights") && error.contains("enabled = false"), "{error}");
        assert!(check_poc_fits(&gonka_poc::ModelSpec::devnet(), 24 << 30).is_ok());
        assert!(mainnet.parameter_count() * 4 > 60_000_000_000, "the mainnet model is the ~71 GB one");
    }
}

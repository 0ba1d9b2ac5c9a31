//! The host's Proof-of-Compute duties as a planner (reference §2.4, §3.5–§3.8; `docs/spec/poc.md` §6).
//!
//! Every committed block (and every result from the engine) the shell calls [`PocHost::plan`] with
//! the committed state. From the stage heights and what the chain already holds, the planner decides:
//! - at `S`: commit to the epoch seed and start a sprint on the stage's model;
//! - while batches are accepted: submit the valid nonces found that the chain does not hold yet;
//! - at the end of generation: stop the sprint;
//! - in the validation window (hosts with power only): for every participant with claims, sample its
//!   nonces with a seed only this host can make (its signature), ask the engine to recompute them,
//!   and submit one verdict per participant as results come back;
//! - after validation: release the stage's model.
//!
//! Everything it submitted is checked against the chain on later blocks and submitted again if it did
//! not land within [`RESUBMIT_AFTER_BLOCKS`] and no longer waits in the host's mempool (`waiting`: a
//! second copy of a waiting seed commitment or vote would fail once the first lands, and the mempool
//! would drop the host's later transactions with it), so a dropped transaction costs a few blocks, not
//! weight.
//! Its memory is only what is in flight: a restarted host starts with a fresh [`PocHost`] and picks up
//! where the chain says it is.

use std::collections::BTreeMap;

use gonka_chain::{Msg, PocMsg, PocNonce, PocStage, State, poc};
use gonka_poc::{Distance, sample_seed_message, validation_sample};
use gonka_primitives::{AccountKey, AccountPublicKey, AccountSignature, Address, Hash};
use serde::Serialize;

use crate::protocol::validation_key;

/// Claimants a validator has sent to the engine and not had back yet, at most.
pub const MAX_RECOMPUTING: usize = 4;

/// Blocks after which something submitted but not on chain is submitted again.
pub const RESUBMIT_AFTER_BLOCKS: u64 = 4;

/// Who the planner acts for.
#[derive(Debug, Clone)]
pub struct HostKey {
    /// The host's account.
    pub account: Address,
    /// Its operational key: signs routine transactions and sample seeds.
    pub operational: AccountKey,
}

/// What happened since the last plan.
#[derive(Debug, Clone, PartialEq)]
pub enum PocInput {
    /// A block was committed (or time passed): look at the chain.
    Block,
    /// The sprint found valid nonces.
    Found(Vec<(u64, Distance)>),
    /// The engine recomputed the distances of `participant`'s sampled nonces, in the order asked
    /// (None: that nonce could not be recomputed).
    Recomputed {
        /// The participant.
        participant: Address,
        /// One per sampled nonce.
        distances: Vec<Option<Distance>>,
    },
    /// The engine could not recompute `participant`'s sample (its own failure, not the claimant's):
    /// no verdict is given, and the claimant is sampled again on a later block.
    RecomputeFailed {
        /// The participant.
        participant: Address,
        /// What failed.
        error: String,
    },
    /// The sprint could not start or died.
    SprintFailed(String),
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PocAction {
    /// Build the stage's model (if not built) and race nonces bound to `public_key`, reporting every
    /// valid one (`distance < r_target`) as [`PocInput::Found`].
    StartSprint {
        /// The stage.
        stage: PocStage,
        /// The host's account key (nonces are bound to it).
        public_key: AccountPublicKey,
        /// The target.
        r_target: Distance,
    },
    /// Stop the sprint.
    StopSprint,
    /// Sign these messages into one transaction and submit it.
    Submit(Vec<Msg>),
    /// Recompute the distances of `nonces` for `public_key` on the stage's model and report them as
    /// [`PocInput::Recomputed`].
    Recompute {
        /// The stage.
        stage: PocStage,
        /// Whose claims.
        participant: Address,
        /// Its account key.
        public_key: AccountPublicKey,
        /// The sample, ascending.
        nonces: Vec<u64>,
    },
    /// The stage's model is no longer needed.
    ReleaseModel,
}

/// One participant's check in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Check {
    /// Sampled; waiting for the engine.
    Recomputing { sample: Vec<(u64, Distance)>, seed: AccountSignature },
    /// Verdict ready to submit.
    Ready(Msg),
    /// Verdict submitted at this height.
    Submitted { at: u64, msg: Msg },
}

/// What the host is doing, for `/poc/progress` and the devnet's progress line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PocSummary {
    /// Epoch of the current stage.
    pub epoch: u64,
    /// Start height of the current stage.
    pub stage_start: u64,
    /// `idle`, `sprinting`, `submitting`, `validating`, `validated`.
    pub activity: &'static str,
    /// Valid nonces found.
    pub valid: u64,
    /// Valid nonces submitted in batches.
    pub submitted: u64,
    /// Participants this host submitted a verdict on.
    pub validated: u64,
    /// Verdicts that found fraud.
    pub fraud_found: u64,
    /// Last error, if any.
    pub last_error: Option<String>,
}

/// The PoC planner's memory for the current stage.
#[derive(Debug, Clone, Default)]
pub struct PocHost {
    /// Whether this host races and validates at all.
    enabled: bool,
    stage: Option<PocStage>,
    sprint_running: bool,
    seed_sent_at: Option<u64>,
    /// Valid nonces found this stage, and when each was last submitted.
    found: BTreeMap<u64, (Distance, Option<u64>)>,
    /// Batches submitted and maybe still waiting in the mempool.
    batches: Vec<Msg>,
    checks: BTreeMap<Address, Check>,
    model_released: bool,
    summary: PocSummary,
}

impl PocHost {
    /// A planner; `enabled: false` makes it do nothing.
    pub fn new(enabled: bool) -> PocHost {
        PocHost { enabled, ..PocHost::default() }
    }

    /// What the host is doing.
    pub fn summary(&self) -> &PocSummary {
        &self.summary
    }

    /// Whether a sprint is running.
    pub fn sprinting(&self) -> bool {
        self.sprint_running
    }

    /// Decides what to do after `input`, on the committed `chain`; `waiting(msg)` tells whether a
    /// message this host submitted still waits in its mempool.
    pub fn plan(
        &mut self,
        chain: &State,
        me: &HostKey,
        waiting: &dyn Fn(&Msg) -> bool,
        input: PocInput,
    ) -> Vec<PocAction> {
        let mut actions = Vec::new();
        let Some(stage) = chain.poc.stage() else { return actions };
        let Some(stages) = chain.params().epoch.stages(stage.epoch) else { return actions };
        let Some(host) = chain.hosts.participant(&me.account) else { return actions };
        if !self.enabled {
            return actions;
        }
        if self.stage != Some(stage) {
            if self.sprint_running {
                actions.push(PocAction::StopSprint);
            }
            *self = PocHost { enabled: self.enabled, stage: Some(stage), ..PocHost::default() };
            self.summary = PocSummary {
                epoch: stage.epoch,
                stage_start: stage.start_height,
                activity: "idle",
                ..PocSummary::default()
            };
        }
        self.take(chain, input);
        let height = chain.height();
        // A transaction submitted now lands in the next block at the earliest.
        let next = height + 1;
        if next <= stages.exchange_deadline && height < stages.end_of_generation {
            self.commit_seed(chain, me, stage, height, waiting, &mut actions);
            if !self.sprint_running {
                self.sprint_running = true;
                self.summary.activity = "sprinting";
                actions.push(PocAction::StartSprint {
                    stage,
                    public_key: host.account_key,
                    r_target: poc::mismatch_rule(chain.params()).r_target,
                });
            }
        }
        if self.sprint_running && height >= stages.end_of_generation {
            self.sprint_running = false;
            self.summary.activity = "submitting";
            actions.push(PocAction::StopSprint);
        }
        if stages.batch_window().contains(&next) {
            self.submit_batches(chain, me, stage, height, waiting, &mut actions);
        }
        if host.weight > 0 && stages.validation_window().contains(&next) {
            self.sample_claims(chain, me, stage, height, waiting, &mut actions);
            self.submit_verdicts(chain, me, stage, height, &mut actions);
        }
        if height >= stages.end_of_validation && !self.model_released {
            self.model_released = true;
            actions.push(PocAction::ReleaseModel);
        }
        actions
    }

    /// Folds an input into the memory.
    fn take(&mut self, chain: &State, input: PocInput) {
        match input {
            PocInput::Block => {}
            PocInput::Found(nonces) => {
                for (nonce, distance) in nonces {
                    self.found.entry(nonce).or_insert((distance, None));
                }
                self.summary.valid = self.found.len() as u64;
            }
            PocInput::Recomputed { participant, distances } => {
                let Some(Check::Recomputing { sample, seed }) = self.checks.get(&participant).cloned() else {
                    return;
                };
                let Some(stage) = self.stage else { return };
                let rule = poc::mismatch_rule(chain.params());
                // A result shorter than the sample leaves the rest unrecomputed: mismatches.
                let pairs = sample
                    .iter()
                    .enumerate()
                    .map(|(i, (_, claimed))| (*claimed, distances.get(i).copied().flatten()));
                let (sampled, mismatches) = (sample.len() as u32, rule.count(pairs));
                self.summary.validated += 1;
                if chain.params().poc.is_fraud(sampled, mismatches).unwrap_or(false) {
                    self.summary.fraud_found += 1;
                }
                let msg = Msg::Poc(PocMsg::Validation {
                    poc_start: stage.start_height,
                    participant,
                    sampled,
                    mismatches,
                    sample_seed: seed,
                });
                self.checks.insert(participant, Check::Ready(msg));
            }
            PocInput::RecomputeFailed { participant, error } => {
                if matches!(self.checks.get(&participant), Some(Check::Recomputing { .. })) {
                    self.checks.remove(&participant);
                }
                self.summary.last_error = Some(error);
            }
            PocInput::SprintFailed(error) => {
                self.sprint_running = false;
                self.summary.last_error = Some(error);
            }
        }
    }

    fn commit_seed(
        &mut self,
        chain: &State,
        me: &HostKey,
        stage: PocStage,
        height: u64,
        waiting: &dyn Fn(&Msg) -> bool,
        actions: &mut Vec<PocAction>,
    ) {
        let committed =
            chain.poc.claim(stage.start_height, me.account).is_some_and(|c| c.seed_commitment.is_some());
        if committed || self.seed_sent_at.is_some_and(|at| height < at + RESUBMIT_AFTER_BLOCKS) {
            return;
        }
        let (held, needed) =
            (gonka_chain::collateral::collateral_of(chain, &me.account), chain.params().poc.entry_collateral);
        if held < needed {
            self.summary.last_error =
                Some(format!("entering PoC needs {needed} of collateral; this host holds {held}"));
            return;
        }
        let commitment = validation_key(&me.operational, &chain.meta.chain_id, stage.epoch).public_key();
        let msg = Msg::Poc(PocMsg::SeedCommit { epoch: stage.epoch, commitment });
        if self.seed_sent_at.is_some() && waiting(&msg) {
            return;
        }
        self.seed_sent_at = Some(height);
        actions.push(PocAction::Submit(vec![msg]));
    }

    fn submit_batches(
        &mut self,
        chain: &State,
        me: &HostKey,
        stage: PocStage,
        height: u64,
        waiting: &dyn Fn(&Msg) -> bool,
        actions: &mut Vec<PocAction>,
    ) {
        // The chain takes nonces only after the seed commitment; until it lands, they wait here.
        if chain.poc.claim(stage.start_height, me.account).is_none_or(|c| c.seed_commitment.is_none()) {
            return;
        }
        let limit = chain.params().poc.max_nonces_per_batch.max(1) as usize;
        self.batches.retain(|batch| waiting(batch));
        let in_flight: std::collections::BTreeSet<u64> = self
            .batches
            .iter()
            .filter_map(|batch| match batch {
                Msg::Poc(PocMsg::Batch { nonces, .. }) => Some(nonces.iter().map(|n| n.nonce)),
                _ => None,
            })
            .flatten()
            .collect();
        let due: Vec<PocNonce> = self
            .found
            .iter()
            .filter(|(nonce, (_, sent))| {
                sent.is_none_or(|at| height >= at + RESUBMIT_AFTER_BLOCKS)
                    && !in_flight.contains(nonce)
                    && !chain.poc.has_nonce(stage.start_height, me.account, **nonce)
            })
            .map(|(nonce, (distance, _))| PocNonce { nonce: *nonce, distance: *distance })
            .collect();
        for chunk in due.chunks(limit) {
            for n in chunk {
                if let Some(entry) = self.found.get_mut(&n.nonce) {
                    if entry.1.is_none() {
                        self.summary.submitted += 1;
                    }
                    entry.1 = Some(height);
                }
            }
            let batch = Msg::Poc(PocMsg::Batch { poc_start: stage.start_height, nonces: chunk.to_vec() });
            self.batches.push(batch.clone());
            actions.push(PocAction::Submit(vec![batch]));
        }
    }

    /// Samples the claimants this host has not checked yet and asks for their recomputation, at most
    /// [`MAX_RECOMPUTING`] in flight, most powerful claimant first, then those the last stage
    /// confirmed, then the rest in an order drawn from the stage's block hash (`docs/spec/poc.md` §7):
    /// each plan loads at most that many claimants' nonces, a crowd of new claimants cannot push the
    /// current validators' verdicts out of the window, and none can grind its way to the front.
    fn sample_claims(
        &mut self,
        chain: &State,
        me: &HostKey,
        stage: PocStage,
        height: u64,
        waiting: &dyn Fn(&Msg) -> bool,
        actions: &mut Vec<PocAction>,
    ) {
        let sample_size = chain.params().poc.validation_sample_size as usize;
        let mut claimants: Vec<_> = chain
            .poc
            .stage_claims(stage.start_height)
            .filter(|(key, _)| {
                // Claims that cannot earn weight are not worth recomputing (and the chain refuses votes
                // on them): no seed commitment, below the minimum claim, or no entry collateral.
                gonka_chain::poc::eligible(chain, stage.start_height, &key.participant).is_ok()
                    && chain.poc.vote(stage.start_height, key.participant, me.account).is_none()
            })
            .map(|(key, _)| {
                let address = key.participant;
                let host = chain.hosts.participant(&address);
                let (power, confirmed) = host.map_or((0, 0), |p| (p.weight, p.poc_weight));
                // Then a stage-seeded draw: nobody can grind an address that is validated first.
                let draw =
                    Hash::digest_parts(&[b"gonka/poc/validation-order", &stage.block_hash.0, &address.0]);
                ((std::cmp::Reverse(power), std::cmp::Reverse(confirmed > 0), draw), address)
            })
            .collect();
        claimants.sort();
        let mut in_flight = self.checks.values().filter(|c| matches!(c, Check::Recomputing { .. })).count();
        for (_, participant) in claimants {
            match self.checks.get(&participant) {
                Some(Check::Submitted { at, msg })
                    if height >= at + RESUBMIT_AFTER_BLOCKS && !waiting(msg) =>
                {
                    let msg = msg.clone();
                    self.checks.insert(participant, Check::Ready(msg));
                    continue;
                }
                Some(_) => continue,
                None if in_flight >= MAX_RECOMPUTING => continue,
                None => {}
            }
            let Some(public_key) = chain.hosts.participant(&participant).map(|p| p.account_key) else {
                continue;
            };
            let seed = me.operational.sign(&sample_seed_message(
                &stage.block_hash,
                stage.start_height,
                &public_key.0,
            ));
            let claimed = chain.poc.claimed_nonces(stage.start_height, participant);
            let nonces: Vec<u64> = claimed.iter().map(|(n, _)| *n).collect();
            let sampled = validation_sample(&seed.0, &nonces, sample_size);
            let sample: Vec<(u64, Distance)> = sampled
                .iter()
                .map(|n| {
                    (*n, claimed.binary_search_by_key(n, |(c, _)| *c).map_or(Distance::MAX, |i| claimed[i].1))
                })
                .collect();
            self.checks.insert(participant, Check::Recomputing { sample, seed });
            in_flight += 1;
            self.summary.activity = "validating";
            actions.push(PocAction::Recompute { stage, participant, public_key, nonces: sampled });
        }
    }

    fn submit_verdicts(
        &mut self,
        chain: &State,
        me: &HostKey,
        stage: PocStage,
        height: u64,
        actions: &mut Vec<PocAction>,
    ) {
        let ready: Vec<(Address, Msg)> = self
            .checks
            .iter()
            .filter_map(|(a, check)| match check {
                Check::Ready(msg) => Some((*a, msg.clone())),
                _ => None,
            })
            .filter(|(a, _)| chain.poc.vote(stage.start_height, *a, me.account).is_none())
            .collect();
        let per_tx = chain.params().limits.max_messages_per_tx.max(1) as usize;
        for chunk in ready.chunks(per_tx) {
            for (participant, msg) in chunk {
                self.checks.insert(*participant, Check::Submitted { at: height, msg: msg.clone() });
            }
            actions.push(PocAction::Submit(chunk.iter().map(|(_, m)| m.clone()).collect()));
        }
        if !ready.is_empty() && !self.checks.values().any(|c| matches!(c, Check::Recomputing { .. })) {
            self.summary.activity = "validated";
        }
    }
}

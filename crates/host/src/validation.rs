//! The host's answer-validation duties as a planner (`docs/spec/validation.md` §4; reference §5).
//!
//! On every committed block the shell calls [`ValidationHost::plan`]. The planner:
//! - scans the inferences finished since it last looked; for each one another host executed, it
//!   evaluates its epoch key's VRF and, when the output selects it, queues a check with the proof;
//! - queues a check (without a proof) for every open vote on another host's answer it has not voted on;
//! - asks the shell to check at most [`MAX_CHECKING`] answers at once: fetch the payload from the
//!   executor (showing the proof, or as a voter) and re-score it on its own engine, then report the
//!   verdict ([`verdict::verdict`](crate::verdict::verdict));
//! - tries again every [`RETRY_AFTER_BLOCKS`] while the executor does not hand over the payload, and
//!   near the end of the window judges a payload still withheld as a failure (a host that refuses a
//!   selected validator fails validation; a crash shorter than the window costs nothing);
//! - submits the verdict (`submit_validation`) or the vote (`submit_validation_vote`), and submits it
//!   again if it did not land within [`RESUBMIT_AFTER_BLOCKS`] and no longer waits in the mempool;
//! - forgets what landed and what its window closed on.
//!
//! Its memory is only what is in flight: a restarted host starts with a fresh [`ValidationHost`],
//! scans every finished inference the chain keeps and skips those it already judged.

use std::collections::BTreeMap;

use gonka_chain::validation::{SELECTION_CONTEXT, check_selection, selection_message, selects};
use gonka_chain::{InferenceStatus, Msg, State, ValidationMsg, Verdict};
use gonka_primitives::{Address, Hash, VrfKey, VrfProof};
use serde::Serialize;

use crate::poc::HostKey;
use crate::protocol::validation_key;

/// Answers being fetched and re-scored at once, at most.
pub const MAX_CHECKING: usize = 4;
/// Checks waiting to start, at most: more selections than this are dropped, oldest kept.
pub const MAX_QUEUED: usize = 4096;
/// Blocks after which a verdict or vote submitted but not on chain is submitted again.
pub const RESUBMIT_AFTER_BLOCKS: u64 = 4;
/// Times a check that failed on this host's side (its engine) is tried again.
pub const MAX_ATTEMPTS: u32 = 3;
/// Blocks between tries to fetch a payload the executor did not hand over.
pub const RETRY_AFTER_BLOCKS: u64 = 2;
/// Blocks before a window closes at which a payload still withheld is judged a failure, so the verdict
/// lands inside the window.
pub const REFUSAL_MARGIN_BLOCKS: u64 = 6;

/// Whether `host` may read the payload of inference `id` from its executor (`docs/spec/validation.md`
/// §4.1): with a VRF proof that selects it to validate the inference, or — while a vote on the
/// inference is open — as a host with power in its epoch, which must re-score it to vote. The executor
/// checks this before it hands over a prompt; the reason comes back when it refuses.
pub fn may_read_payload(
    state: &State,
    id: &Hash,
    host: &Address,
    proof: Option<&VrfProof>,
) -> Result<(), String> {
    if let Some(proof) = proof {
        return check_selection(state, id, host, proof).map_err(|e| e.to_string());
    }
    let record = state.inference.record(id).ok_or("no record of this inference")?;
    let voting = record.status == InferenceStatus::Voting;
    let member = state.validation.member(record.epoch, host).is_some_and(|m| m.power > 0);
    if voting && member && record.executor != *host {
        Ok(())
    } else {
        Err("show a selection proof, or vote while the inference is under vote".into())
    }
}

/// What happened since the last plan.
#[derive(Debug, Clone, PartialEq)]
pub enum ValidationInput {
    /// A block was committed: look at the chain.
    Block,
    /// The shell checked an answer.
    Checked {
        /// The inference.
        id: Hash,
        /// What the check found (a refused payload is a failing verdict).
        verdict: Verdict,
    },
    /// The check could not be done: the executor did not hand over the payload (`refused`: it refused,
    /// or could not be reached), or something of this host's own failed (its engine). No verdict yet:
    /// the check is tried again later; a payload still withheld near the window's end is a failure.
    CheckFailed {
        /// The inference.
        id: Hash,
        /// What failed.
        error: String,
        /// Whether the executor did not hand over the payload (else the failure was this host's).
        refused: bool,
    },
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidationAction {
    /// Fetch the payload of `id` from `executor` — showing `proof` when this host was selected, or as a
    /// voter when `proof` is none — re-score it on the engine, and report [`ValidationInput::Checked`]
    /// (or [`ValidationInput::CheckFailed`]).
    Check {
        /// The inference.
        id: Hash,
        /// Its executor.
        executor: Address,
        /// The selection proof, for a validation; none for a vote.
        proof: Option<VrfProof>,
    },
    /// Sign these messages into one transaction and submit it.
    Submit(Vec<Msg>),
}

/// What the host's validation is doing, for `/validation/progress`, metrics and the devnet line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ValidationSummary {
    /// Answers this host was selected for.
    pub selected: u64,
    /// Verdicts submitted.
    pub validated: u64,
    /// Of which failures.
    pub failed: u64,
    /// Votes submitted.
    pub voted: u64,
    /// Checks waiting or running.
    pub queued: usize,
    /// Last error, if any.
    pub last_error: Option<String>,
}

/// One answer to judge.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Task {
    executor: Address,
    /// Some: a selected validation; none: a vote.
    proof: Option<VrfProof>,
    state: TaskState,
    /// Failures of this host's own.
    attempts: u32,
    /// Not checked again before this height.
    retry_at: u64,
    /// The executor withheld the payload at the last try.
    withheld: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TaskState {
    Queued,
    Checking,
    Submitted { at: u64, msg: Box<Msg> },
}

/// The validation planner's memory.
#[derive(Debug, Clone, Default)]
pub struct ValidationHost {
    enabled: bool,
    /// Finished inferences are scanned up to this height.
    scanned_to: u64,
    tasks: BTreeMap<Hash, Task>,
    /// This host's validation key per epoch, when it is the one the roster holds.
    keys: BTreeMap<u64, Option<VrfKey>>,
    summary: ValidationSummary,
    /// The claims of settled epochs, which prove this duty (`docs/spec/economy.md` §4).
    claims: crate::rewards::ClaimHost,
}

impl ValidationHost {
    /// A planner; `enabled: false` makes it do nothing.
    pub fn new(enabled: bool) -> ValidationHost {
        ValidationHost { enabled, ..ValidationHost::default() }
    }

    /// What the host is doing.
    pub fn summary(&self) -> &ValidationSummary {
        &self.summary
    }

    /// Decides what to do after `input`, on the committed `chain`; `waiting(msg)` tells whether a
    /// message this host submitted still waits in its mempool.
    pub fn plan(
        &mut self,
        chain: &State,
        me: &HostKey,
        waiting: &dyn Fn(&Msg) -> bool,
        input: ValidationInput,
    ) -> Vec<ValidationAction> {
        if !chain.hosts.is_host(&me.account) {
            return Vec::new();
        }
        let claim = self.claims.plan(chain, me, waiting).map(|msg| ValidationAction::Submit(vec![msg]));
        if !self.enabled || chain.validation.is_invalid(&me.account) {
            return claim.into_iter().collect();
        }
        self.take(input, chain.height());
        self.select(chain, me);
        self.join_votes(chain, me);
        let mut actions = self.follow_up(chain, me, waiting);
        self.start_checks(chain.height(), &mut actions);
        self.summary.queued = self.tasks.len();
        actions.extend(claim);
        actions
    }

    fn take(&mut self, input: ValidationInput, height: u64) {
        match input {
            ValidationInput::Block => {}
            ValidationInput::Checked { id, verdict } => self.judged(id, verdict),
            ValidationInput::CheckFailed { id, error, refused } => {
                if let Some(task) = self.tasks.get_mut(&id).filter(|t| t.state == TaskState::Checking) {
                    task.state = TaskState::Queued;
                    task.retry_at = height + RETRY_AFTER_BLOCKS;
                    task.withheld = refused;
                    task.attempts += u32::from(!refused);
                    if task.attempts >= MAX_ATTEMPTS {
                        self.tasks.remove(&id);
                    }
                }
                self.summary.last_error = Some(error);
            }
        }
    }

    /// The verdict on `id` is in: it becomes the message to submit.
    fn judged(&mut self, id: Hash, verdict: Verdict) {
        let Some(task) = self.tasks.get_mut(&id) else { return };
        if matches!(task.state, TaskState::Submitted { .. }) {
            return;
        }
        let msg = match task.proof {
            Some(proof) => {
                self.summary.validated += 1;
                self.summary.failed += u64::from(!verdict.passed());
                ValidationMsg::Validate { inference: id, proof, verdict }
            }
            None => {
                self.summary.voted += 1;
                ValidationMsg::Vote { inference: id, valid: verdict.passed() }
            }
        };
        // Submitted at height 0: the follow-up sends it on this very plan.
        task.state = TaskState::Submitted { at: 0, msg: Box::new(msg.into()) };
    }

    /// This host's key for `epoch`, if it is the one its roster entry committed.
    fn key(&mut self, chain: &State, me: &HostKey, epoch: u64) -> Option<VrfKey> {
        self.keys
            .entry(epoch)
            .or_insert_with(|| {
                let committed = chain.validation.member(epoch, &me.account).and_then(|m| m.key)?;
                let key = validation_key(&me.operational, &chain.meta.chain_id, epoch);
                (key.public_key() == committed).then_some(key)
            })
            .clone()
    }

    /// Queues every newly finished inference of another host this host is selected for.
    fn select(&mut self, chain: &State, me: &HostKey) {
        let height = chain.height();
        let window = chain.params().validation.validation_window_blocks;
        let from = self.scanned_to.max(height.saturating_sub(window)) + 1;
        let finished: Vec<(u64, Hash)> = chain.inference.finished_between(from..height + 1).collect();
        self.scanned_to = height;
        for (_, id) in finished {
            let Some(record) = chain.inference.record(&id) else { continue };
            let judged = chain.validation.verdict(&id, &me.account).is_some();
            if record.executor == me.account || judged || self.tasks.contains_key(&id) {
                continue;
            }
            let Some(key) = self.key(chain, me, record.epoch) else { continue };
            let message = selection_message(&chain.meta.chain_id, record.epoch, &id);
            // The output alone decides; the proof is made only for the answers selected.
            if !selects(
                chain,
                record.epoch,
                &record.executor,
                &me.account,
                key.output(SELECTION_CONTEXT, &message),
            ) {
                continue;
            }
            let (_, proof) = key.prove(SELECTION_CONTEXT, &message);
            self.summary.selected += 1;
            self.queue(id, Task::new(record.executor, Some(proof)));
        }
    }

    /// Queues a vote on every open dispute over another host's answer this host may vote on.
    fn join_votes(&mut self, chain: &State, me: &HostKey) {
        let open: Vec<Hash> = chain
            .validation
            .disputes()
            .iter()
            .filter(|(_, d)| d.outcome.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in open {
            let Some(record) = chain.inference.record(&id) else { continue };
            let member = chain.validation.member(record.epoch, &me.account).is_some_and(|m| m.power > 0);
            let voted = chain.validation.votes_on(&id).any(|(voter, _)| voter == me.account);
            if record.executor == me.account || !member || voted || self.tasks.contains_key(&id) {
                continue;
            }
            self.queue(id, Task::new(record.executor, None));
        }
    }

    fn queue(&mut self, id: Hash, task: Task) {
        if self.tasks.len() < MAX_QUEUED {
            self.tasks.insert(id, task);
        } else {
            self.summary.last_error = Some(format!("validation queue full ({MAX_QUEUED}); {id} skipped"));
        }
    }

    /// Forgets what landed or closed; judges a payload withheld until near the window's end a failure;
    /// submits what is ready and resubmits what did not land.
    fn follow_up(
        &mut self,
        chain: &State,
        me: &HostKey,
        waiting: &dyn Fn(&Msg) -> bool,
    ) -> Vec<ValidationAction> {
        let height = chain.height();
        let window = chain.params().validation.validation_window_blocks;
        let mut refused = Vec::new();
        self.tasks.retain(|id, task| {
            let Some(record) = chain.inference.record(id) else { return false };
            let (landed, last) = match task.proof {
                Some(_) => {
                    let judging = matches!(
                        record.status,
                        InferenceStatus::Finished | InferenceStatus::Validated | InferenceStatus::Voting
                    );
                    (
                        chain.validation.verdict(id, &me.account).is_some(),
                        judging.then_some(record.finished_height + window),
                    )
                }
                None => (
                    chain.validation.votes_on(id).any(|(voter, _)| voter == me.account),
                    chain.validation.dispute(id).filter(|d| d.outcome.is_none()).map(|d| d.deadline),
                ),
            };
            let open = last.is_some_and(|last| last > height);
            if landed || !open {
                return false;
            }
            let last = last.unwrap_or(0);
            if task.withheld && task.state == TaskState::Queued && height + REFUSAL_MARGIN_BLOCKS >= last {
                refused.push(*id);
            }
            true
        });
        for id in refused {
            self.judged(id, Verdict::failed(gonka_chain::Failure::PayloadRefused));
        }
        let mut actions = Vec::new();
        for task in self.tasks.values_mut() {
            if let TaskState::Submitted { at, msg } = &mut task.state {
                let due = *at == 0 || (height >= *at + RESUBMIT_AFTER_BLOCKS && !waiting(msg));
                if due {
                    *at = height.max(1);
                    actions.push(ValidationAction::Submit(vec![(**msg).clone()]));
                }
            }
        }
        actions
    }

    /// Starts checks up to [`MAX_CHECKING`]: votes first (their windows are shorter), then selections.
    fn start_checks(&mut self, height: u64, actions: &mut Vec<ValidationAction>) {
        let mut running = self.tasks.values().filter(|t| t.state == TaskState::Checking).count();
        let mut queued: Vec<(bool, Hash)> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.state == TaskState::Queued && t.retry_at <= height)
            .map(|(id, t)| (t.proof.is_some(), *id))
            .collect();
        queued.sort();
        for (_, id) in queued {
            if running >= MAX_CHECKING {
                break;
            }
            let Some(task) = self.tasks.get_mut(&id) else { continue };
            task.state = TaskState::Checking;
            running += 1;
            actions.push(ValidationAction::Check { id, executor: task.executor, proof: task.proof });
        }
    }
}

impl Task {
    fn new(executor: Address, proof: Option<VrfProof>) -> Task {
        Task { executor, proof, state: TaskState::Queued, attempts: 0, retry_at: 0, withheld: false }
    }
}

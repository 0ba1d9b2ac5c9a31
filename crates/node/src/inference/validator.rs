//! The host's validation shell (`docs/spec/validation.md` §4): it runs the planner of
//! `gonka_host::validation` on every committed block, on a tick and on every check that completes, and
//! performs what it asks — fetching a payload from its executor (with this host's signature and, when it
//! was selected, its VRF proof), re-scoring the answer teacher-forced on the engine with the seeded
//! sampler replayed, judging it with `gonka_host::verdict`, and submitting verdicts and votes. Every
//! decision is the planner's or the verdict's; this file only does I/O.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gonka_api::ApiLimits;
use gonka_chain::{Failure, Inference, Verdict};
use gonka_engine::{Backend, EngineError, ScoreRequest};
use gonka_host::poc::HostKey;
use gonka_host::protocol::{
    HEADER_HOST, HEADER_TIMESTAMP, HEADER_VALIDATION_PROOF, encode_signature, payload_request_message,
};
use gonka_host::validation::{ValidationAction, ValidationHost, ValidationInput, ValidationSummary};
use gonka_host::verdict::{Payload, Rescored, RescoredChoice, Rescoring, Tolerance, sampling_seed, verdict};
use gonka_primitives::{Address, Hash, VrfProof};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::InferenceService;
use crate::host::next_inputs;
use crate::metrics::NodeMetrics;

/// How often the planner looks at the chain besides reacting to new blocks and results.
const TICK: Duration = Duration::from_secs(1);
/// Largest payload accepted from an executor (a 1 MiB body and an answer of the longest context).
const PAYLOAD_BYTES_MAX: usize = 64 << 20;
/// The longest a payload request may take, end to end: an executor that trickles its answer is treated
/// as one that withholds it (the planner tries again, and judges it a failure near the window's end).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// What this host's validation is doing, for `/validation/progress`, metrics and the devnet line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ValidationProgress {
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
    /// Seconds spent re-scoring answers.
    pub rescoring_seconds: f64,
    /// Last error, if any.
    pub last_error: Option<String>,
}

/// Shared view of the host's validation work.
#[derive(Debug, Default)]
pub struct ValidationStatus {
    progress: Mutex<ValidationProgress>,
}

impl ValidationStatus {
    /// A snapshot.
    pub fn progress(&self) -> ValidationProgress {
        self.progress.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn publish(&self, summary: &ValidationSummary) {
        let mut progress = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        progress.selected = summary.selected;
        progress.validated = summary.validated;
        progress.failed = summary.failed;
        progress.voted = summary.voted;
        progress.queued = summary.queued;
        progress.last_error.clone_from(&summary.last_error);
    }

    fn add_rescoring(&self, seconds: f64) {
        self.progress.lock().unwrap_or_else(|p| p.into_inner()).rescoring_seconds += seconds;
    }
}

/// Follows the chain until `shutdown` turns true, validating what this host is selected for and voting
/// on failed answers.
pub async fn run(
    service: Arc<InferenceService>,
    status: Arc<ValidationStatus>,
    metrics: Arc<NodeMetrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let chain = service.signer.chain().clone();
    let key = HostKey { account: service.account(), operational: service.signer.key().clone() };
    let mut planner = ValidationHost::new(true);
    let mut blocks = chain.subscribe();
    let mut ticker = tokio::time::interval(TICK);
    let (results_tx, mut results) = mpsc::unbounded_channel::<ValidationInput>();
    while let Some(inputs) =
        next_inputs(ValidationInput::Block, &mut blocks, &mut ticker, &mut results, &mut shutdown).await
    {
        for input in inputs {
            if let ValidationInput::Checked { verdict, .. } = &input {
                metrics.validation_checks.inc();
                if !verdict.passed() {
                    metrics.validation_failures.inc();
                }
            }
            let pending = chain.pending_messages(&key.account);
            let waiting =
                |m: &gonka_chain::Msg| pending.contains(&gonka_primitives::codec::Encode::to_bytes(m));
            let actions = chain.with_state(|s| planner.plan(s, &key, &waiting, input));
            for action in actions {
                match action {
                    ValidationAction::Submit(msgs) => {
                        let votes = msgs
                            .iter()
                            .filter(|m| {
                                matches!(
                                    m,
                                    gonka_chain::Msg::Validation(gonka_chain::ValidationMsg::Vote { .. })
                                )
                            })
                            .count();
                        metrics.validation_votes.inc_by(votes as u64);
                        if let Err(error) = service.signer.submit(msgs) {
                            tracing::debug!(%error, "a validation message was refused; the planner retries");
                        }
                    }
                    ValidationAction::Check { id, executor, proof } => {
                        let (service, results, status) =
                            (service.clone(), results_tx.clone(), status.clone());
                        tokio::spawn(async move {
                            let result = check(&service, &status, id, executor, proof).await;
                            let _ = results.send(result);
                        });
                    }
                }
            }
        }
        status.publish(planner.summary());
    }
}

/// Fetches, re-scores and judges one answer.
async fn check(
    service: &InferenceService,
    status: &ValidationStatus,
    id: Hash,
    executor: Address,
    proof: Option<VrfProof>,
) -> ValidationInput {
    let fetched = tokio::time::timeout(FETCH_TIMEOUT, fetch(service, id, executor, proof)).await;
    let payload = match fetched {
        Ok(Ok(payload)) => payload,
        // Refused, unreachable or too slow: the executor's failure if it lasts to the window's end.
        Ok(Err(error)) => return ValidationInput::CheckFailed { id, error, refused: true },
        Err(_) => {
            let error = format!("the payload did not arrive within {FETCH_TIMEOUT:?}");
            return ValidationInput::CheckFailed { id, error, refused: true };
        }
    };
    let Some(record) = service.with_state(|s| s.inference.record(&id).cloned()) else {
        return ValidationInput::CheckFailed { id, error: format!("no record of {id}"), refused: false };
    };
    let started = Instant::now();
    let judged = judge(service, id, &record, &payload).await;
    status.add_rescoring(started.elapsed().as_secs_f64());
    match judged {
        Ok(verdict) => ValidationInput::Checked { id, verdict },
        Err(error) => ValidationInput::CheckFailed { id, error, refused: false },
    }
}

/// `GET {executor}/v1/inferences/{id}/payload`, signed by this host (and with its proof); `Err` says
/// why the executor did not hand it over.
async fn fetch(
    service: &InferenceService,
    id: Hash,
    executor: Address,
    proof: Option<VrfProof>,
) -> Result<Payload, String> {
    let (url, chain_id) = service
        .with_state(|s| s.hosts.participant(&executor).map(|p| (p.api_url.clone(), s.meta.chain_id.clone())))
        .ok_or_else(|| format!("{executor} is not a host"))?;
    let timestamp_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let message = payload_request_message(&chain_id, &id, &executor, timestamp_ns);
    let signature = service.signer.key().sign_recoverable(&message);
    let mut request = service
        .http
        .get(format!("{}/v1/inferences/{id}/payload", url.trim_end_matches('/')))
        .header(HEADER_HOST, service.account().to_string())
        .header(HEADER_TIMESTAMP, timestamp_ns.to_string())
        .header("authorization", encode_signature(&signature));
    if let Some(proof) = proof {
        request = request.header(HEADER_VALIDATION_PROOF, proof.to_string());
    }
    let mut response = request.send().await.map_err(|e| format!("executor unreachable: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("the executor answered {}", response.status()));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("reading the payload: {e}"))? {
        if bytes.len() + chunk.len() > PAYLOAD_BYTES_MAX {
            return Err(format!("the payload exceeds {PAYLOAD_BYTES_MAX} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("an unreadable payload: {e}"))
}

/// Re-scores `payload` on this host's engine and judges it; `Err` is a failure of this host's own.
async fn judge(
    service: &InferenceService,
    id: Hash,
    record: &Inference,
    payload: &Payload,
) -> Result<Verdict, String> {
    let (model, top_k) = service.with_state(|s| {
        (s.params().inference.model(&record.model).cloned(), s.params().validation.recorded_top_k as usize)
    });
    let Some(model) = model else { return Ok(Verdict::failed(Failure::Uncomparable)) };
    if service.engine.model_info().content_hash != model.content_hash.to_string() {
        return Err(format!("this host does not serve model {}", model.name));
    }
    let tolerance = Tolerance {
        distance_max_ppm: model.validation.distance_max_ppm,
        replay_ppm: model.validation.replay_tolerance_ppm,
    };
    match rescore(&*service.engine, &service.limits, id, record, payload, top_k).await {
        Ok(rescoring) => Ok(verdict(record, payload, &rescoring, tolerance)),
        Err(Rescore::Uncomparable) => Ok(Verdict::failed(Failure::Uncomparable)),
        Err(Rescore::Failed(error)) => Err(error),
    }
}

/// Why an answer could not be re-scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rescore {
    /// The body or the answer cannot be compared on this engine (a body the API refuses, a length past
    /// the context): a failure of the answer, never a pass.
    Uncomparable,
    /// The engine failed (this host's problem, not the answer's).
    Failed(String),
}

/// Re-scores `payload` (the answer to inference `id`, recorded as `record`) on `engine`: the body
/// parsed and rendered as the executor's API did under `limits` with the TA's `max_tokens`, the answer's
/// tokens teacher-forced with `top_k` alternatives and the seeded sampler replayed at every position,
/// and the text its tokens stream as.
pub async fn rescore(
    engine: &dyn Backend,
    limits: &ApiLimits,
    id: Hash,
    record: &Inference,
    payload: &Payload,
    top_k: usize,
) -> Result<Rescoring, Rescore> {
    // The executor served under these limits: the TA's escrowed max_tokens, split among the answers.
    let limits = super::executor::choice_limits(limits, record.max_tokens, payload.body.as_bytes());
    let (mut request, body_seed) = gonka_api::generation_request(payload.body.as_bytes(), engine, &limits)
        .map_err(|_| Rescore::Uncomparable)?;
    request.sampling.seed = sampling_seed(body_seed, &id);
    let choices = gonka_api::body_choices(payload.body.as_bytes());
    // Choice i was sampled with choice_seed(seed, i): each is re-scored under its own seed.
    let mut rescored = Vec::new();
    for (choice, answer) in payload.answers().iter().enumerate().take(choices) {
        let mut sampling = request.sampling.clone();
        sampling.seed = gonka_engine::choice_seed(request.sampling.seed, choice);
        let scored = engine
            .score(ScoreRequest {
                prompt_tokens: request.prompt_tokens.clone(),
                completion_tokens: answer.completion_token_ids.to_vec(),
                top_k,
                sampling: Some(sampling),
            })
            .await;
        let positions = match scored {
            Ok(positions) => positions,
            Err(EngineError::ContextLengthExceeded { .. } | EngineError::InvalidParameter { .. }) => {
                return Err(Rescore::Uncomparable);
            }
            Err(error) => return Err(Rescore::Failed(format!("re-scoring failed: {error}"))),
        };
        let text = engine.completion_text(
            request.prompt_tokens.len(),
            answer.completion_token_ids,
            &request.stop,
            request.max_tokens,
        );
        rescored.push(RescoredChoice {
            text: text.text,
            ended_at: text.ended_at,
            positions: positions
                .into_iter()
                .map(|p| Rescored {
                    logprob: p.logprob,
                    top: p.top,
                    replay_margin: p.replay.map_or(1.0, |r| r.margin),
                })
                .collect(),
        });
    }
    let mut rescored = rescored.into_iter();
    let first = rescored.next().ok_or(Rescore::Uncomparable)?;
    Ok(Rescoring {
        prompt_tokens: u32::try_from(request.prompt_tokens.len()).unwrap_or(u32::MAX),
        seed: request.sampling.seed,
        max_tokens: u32::try_from(request.max_tokens).unwrap_or(u32::MAX),
        text: first.text,
        ended_at: first.ended_at,
        positions: first.positions,
        choices,
        more_choices: rescored.collect(),
    })
}

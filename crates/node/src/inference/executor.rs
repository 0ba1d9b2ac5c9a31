//! The executor: `POST /v1/executor/chat/completions` (reference §4.5), for chats and text completions
//! alike (the signed body says which, [`gonka_api::Endpoint::of`]).
//!
//! It checks the TA's signature over (inference id, this executor, max_tokens), the developer's
//! signature, the time window, replay and that the chain draws this host for the id; then it answers
//! through the same OpenAI handler a direct client gets, with a generator that records what it sends.
//! Before generating it takes the request's worst-case cost from the TA's collateral share
//! ([`gonka_host::exposure`]), so the chain can pay the answer whatever the developer does; after the
//! signatures it counts the prompt and refuses bodies larger than their tokens pay to store.
//! When the generation ends it keeps the payload and records `FinishInference` with the TA's
//! forward signature. A generation that
//! fails inside the engine records nothing: the Start expires and the developer is refunded in full.

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Request, header};
use axum::response::{IntoResponse, Response};
use gonka_api::{ApiError, ApiLimits, AppState};
use gonka_chain::{InferenceMsg, SignedRequest};
use gonka_engine::{
    Backend, ChatMessage, EngineError, GenerationEvent, GenerationRequest, GenerationStream, Generator,
    ModelInfo, PositionLogprobs, ScoreRequest,
};
use gonka_host::admission::{RequestClaim, Role, admit, check_body_size};
use gonka_host::protocol::{
    HEADER_MAX_TOKENS, HEADER_TA_SIGNATURE, HEADER_TRANSFER_ADDRESS, decode_signature,
};
use gonka_primitives::{Address, Hash, RecoverableSignature};
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;

use super::InferenceService;
use super::auth::{SignedHeaders, refused, replayed, unvouched};
use super::ta::body_or_error;
use gonka_host::verdict::{ChoiceAnswer, Payload, RecordedPosition, commitments, sampling_seed};

use super::cheat::{Cheat, EDIT_POSITION, WRONG_SEED};

/// `POST /v1/executor/chat/completions`.
pub(crate) async fn chat_completions(
    State(service): State<Arc<InferenceService>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match verify_and_execute(service, headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// The `model` of a chat body, read without tokenizing: the executor checks signatures before it
/// spends anything on the body.
fn peek_model(body: &[u8]) -> Result<String, ApiError> {
    #[derive(serde::Deserialize)]
    struct Model {
        model: String,
    }
    serde_json::from_slice::<Model>(body)
        .map(|m| m.model)
        .map_err(|e| ApiError::invalid("model", format!("the body has no model: {e}")))
}

async fn verify_and_execute(
    service: Arc<InferenceService>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_or_error(body, service.limits.body_bytes_max)?;
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let transfer_agent: Address = text(HEADER_TRANSFER_ADDRESS)
        .ok_or_else(|| ApiError::invalid("X-Transfer-Address", "missing X-Transfer-Address"))?
        .parse()
        .map_err(|e| ApiError::invalid("X-Transfer-Address", format!("not a gonka address: {e}")))?;
    let max_tokens: u32 = text(HEADER_MAX_TOKENS)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::invalid("X-Max-Tokens", "missing or malformed X-Max-Tokens"))?;
    let ta_signature = text(HEADER_TA_SIGNATURE)
        .and_then(decode_signature)
        .ok_or_else(|| ApiError::Unauthorized("missing or invalid X-TA-Signature".into()))?;
    let signed = SignedHeaders::parse(&headers)?;
    let claim = RequestClaim { model: peek_model(&body)?, max_tokens, ..signed.claim(&body, transfer_agent) };
    let own = service.account();
    let admission =
        service.with_state(|s| admit(s, own, &Role::Executor { ta_signature }, &claim)).map_err(refused)?;
    // Everything before this was signatures and chain lookups; now the prompt is counted once.
    let limits = choice_limits(&service.limits, max_tokens, &body);
    let summary = gonka_api::summarize_request(&headers, &body, &*service.engine, &limits)?;
    let prompt_tokens = u32::try_from(summary.prompt_tokens).unwrap_or(u32::MAX);
    check_body_size(claim.body_len, prompt_tokens, max_tokens).map_err(refused)?;
    // The most the Finish may charge for this signed body, within the TA's share of collateral here.
    service
        .with_state(|s| service.lock_exposure().reserve_request(s, &own, &admission.request))
        .map_err(unvouched)?;
    if let Err(error) = service.lock_executor_seen().admit(
        admission.id,
        claim.timestamp_ns / 1_000_000,
        admission.replay_forget_before_ms,
    ) {
        service.lock_exposure().release(&admission.id);
        return Err(replayed(error));
    }
    execute(service, admission.request, ta_signature, &headers, body).await
}

/// The limits a body is served under when its developer signed `max_tokens`: the signed budget, split
/// evenly among the answers it asks for (`n`), is each answer's cap and default
/// (`docs/spec/inference.md` §2.1). Validators rebuild the request under the same limits.
pub(crate) fn choice_limits(limits: &ApiLimits, max_tokens: u32, body: &[u8]) -> ApiLimits {
    let per_choice = max_tokens as usize / gonka_api::body_choices(body);
    ApiLimits { max_tokens_default: per_choice, max_tokens_cap: per_choice, ..limits.clone() }
}

/// Answers `body` for the verified `request` through the OpenAI handler, then records the receipt.
/// Every answer is made reproducible (`docs/spec/validation.md` §1): it is sampled with the rule's seed
/// (the body's `seed`, else one derived from the inference id) and every position's top-k logprobs are
/// recorded for validators, while the client gets exactly the response shape it asked for.
pub(crate) async fn execute(
    service: Arc<InferenceService>,
    request: SignedRequest,
    ta_signature: RecoverableSignature,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (record_tx, record_rx) = oneshot::channel();
    let id = gonka_chain::inference_id(&request.signature);
    let seed = sampling_seed(gonka_api::body_seed(&body), &id);
    let recorded_top_k = service.with_state(|s| s.params().validation.recorded_top_k) as usize;
    let cheat = service.cheat;
    let inner: Arc<dyn Generator> = match &service.cheap {
        Some(cheap) => cheap.clone(),
        None => service.engine.clone(),
    };
    let recording: Arc<dyn Generator> = Arc::new(Recording {
        inner,
        seed: if cheat == Some(Cheat::WrongSeed) { seed ^ WRONG_SEED } else { seed },
        recorded_top_k,
        edit_at: (cheat == Some(Cheat::EditAnswer)).then_some(EDIT_POSITION),
        unconstrained: cheat == Some(Cheat::IgnoreConstraints),
        sink: Mutex::new(Some(record_tx)),
    });
    // The TA escrowed for `max_tokens`: never generate more, and use it as the default.
    let limits = choice_limits(&service.limits, request.max_tokens, &body);
    let state = AppState { generator: recording, limits, metrics: service.metrics.clone() };
    // One executor path for both endpoints: the signed body says which it is.
    let mut inner = Request::post(gonka_api::Endpoint::of(&body).path());
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        inner = inner.header(header::CONTENT_TYPE, content_type);
    }
    let inner = inner.body(Body::from(body.clone())).map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let response = gonka_api::app(state).oneshot(inner).await.unwrap_or_else(|never| match never {});
    tokio::spawn(async move {
        if let Ok(mut records) = record_rx.await {
            if cheat == Some(Cheat::Prefill) {
                for record in &mut records {
                    record.recorded = rescored_by_the_real_model(&service, record, recorded_top_k).await;
                }
            }
            finish(&service, request, ta_signature, &body, seed, records);
        }
    });
    Ok(response)
}

/// Keeps the payload and records the FinishInference of a generation that produced an answer.
fn finish(
    service: &InferenceService,
    request: SignedRequest,
    ta_signature: RecoverableSignature,
    body: &[u8],
    seed: u64,
    records: Vec<Record>,
) {
    let id = gonka_chain::inference_id(&request.signature);
    if records.is_empty() || records.iter().any(|r| r.failed) {
        tracing::warn!(%id, "generation failed; no FinishInference (the Start expires and is refunded)");
        return;
    }
    let height = service.with_state(|s| s.height());
    let payload = payload_of(body, seed, records, height);
    let (prompt_tokens, cached_tokens, completion_tokens) =
        (payload.prompt_tokens, payload.cached_tokens, payload.completion_tokens);
    let (response_hash, logprobs_hash) = (payload.response_hash, payload.logprobs_hash);
    if let Err(error) = service.payloads.put(&id, &payload) {
        tracing::warn!(%id, %error, "could not keep the payload");
    }
    let message = InferenceMsg::Finish {
        request,
        ta_signature,
        prompt_tokens,
        cached_tokens,
        completion_tokens,
        response_hash,
        seed,
        logprobs_hash,
    };
    match service.submit_receipt(message) {
        Ok(hash) => tracing::debug!(%id, tx = %hash, completion_tokens, "inference finished"),
        Err(error) => tracing::warn!(%id, %error, "FinishInference refused"),
    }
}

/// A `prefill` cheat's record: the tokens the cheaper model generated, with the logprobs the real
/// model gives them (`docs/spec/validation.md` §8).
async fn rescored_by_the_real_model(
    service: &InferenceService,
    record: &Record,
    top_k: usize,
) -> Vec<RecordedPosition> {
    let request = ScoreRequest {
        prompt_tokens: record.prompt.clone(),
        completion_tokens: record.tokens.clone(),
        top_k,
        sampling: None,
    };
    match service.engine.score(request).await {
        Ok(positions) => positions
            .into_iter()
            .map(|p| RecordedPosition { token: p.token, logprob: p.logprob, top: p.top })
            .collect(),
        Err(_) => record.recorded.clone(),
    }
}

/// What one generation produced, as the client received it.
#[derive(Debug, Default, Clone)]
struct Record {
    /// The prompt's token ids.
    prompt: Vec<u32>,
    prompt_tokens: usize,
    /// Of the prompt tokens, those the engine's prefix cache served.
    cached_tokens: usize,
    completion_tokens: usize,
    tokens: Vec<u32>,
    text: String,
    recorded: Vec<RecordedPosition>,
    failed: bool,
}

/// A generator that runs the first generation with the answer's seed and `recorded_top_k` logprobs
/// per position, passes to the client only the logprobs it asked for, and reports the [`Record`].
struct Recording {
    inner: Arc<dyn Generator>,
    seed: u64,
    recorded_top_k: usize,
    /// An `edit-answer` cheat: the position whose token it replaces by the next most likely one.
    edit_at: Option<usize>,
    /// An `ignore-constraints` cheat: drops the request's grammar, penalties and logit bias.
    unconstrained: bool,
    /// Gets every answer's record once all have ended.
    sink: Mutex<Option<oneshot::Sender<Vec<Record>>>>,
}

impl Generator for Recording {
    fn model_info(&self) -> &ModelInfo {
        self.inner.model_info()
    }

    fn render_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, EngineError> {
        self.inner.render_chat(messages)
    }

    fn check(&self, request: &GenerationRequest) -> Result<(), EngineError> {
        self.inner.check(request)
    }

    fn check_choices(&self, request: &GenerationRequest, n: usize) -> Result<(), EngineError> {
        self.inner.check_choices(request, n)
    }

    /// Every answer is recorded (choice `i` sampled with `choice_seed(seed, i)`, as the engine does);
    /// the payload and the Finish cover them all.
    fn submit_choices(
        &self,
        mut request: GenerationRequest,
        n: usize,
    ) -> Result<Vec<GenerationStream>, EngineError> {
        if self.unconstrained {
            request.sampling.grammar = None;
            request.sampling.adjustments = gonka_engine::LogitAdjustments::default();
        }
        let recorder = Recorder::prepare(&mut request, self.seed, self.recorded_top_k, self.edit_at);
        let streams = self.inner.submit_choices(request, n)?;
        let sink = self.sink.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut relayed = Vec::with_capacity(streams.len());
        let mut recordings = Vec::with_capacity(streams.len());
        for mut events in streams {
            let mut recorder = recorder.clone();
            let (tx, rx) = mpsc::channel(64);
            recordings.push(tokio::spawn(async move {
                while let Some(mut event) = events.recv().await {
                    recorder.take(&mut event);
                    // The client went away: stop (dropping `events` cancels the generation) and bill
                    // what was generated.
                    if tx.send(event).await.is_err() {
                        break;
                    }
                }
                recorder.finish()
            }));
            relayed.push(rx);
        }
        tokio::spawn(async move {
            let mut records = Vec::with_capacity(recordings.len());
            for recording in recordings {
                records
                    .push(recording.await.unwrap_or_else(|_| Record { failed: true, ..Record::default() }));
            }
            if let Some(sink) = sink {
                let _ = sink.send(records);
            }
        });
        Ok(relayed)
    }

    fn submit(&self, request: GenerationRequest) -> Result<GenerationStream, EngineError> {
        let mut streams = self.submit_choices(request, 1)?;
        Ok(streams.remove(0))
    }

    fn queue_depth(&self) -> usize {
        self.inner.queue_depth()
    }

    fn active_sequences(&self) -> usize {
        self.inner.active_sequences()
    }

    fn tokenize(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        self.inner.tokenize(text)
    }

    fn token_bytes(&self, id: u32) -> Vec<u8> {
        self.inner.token_bytes(id)
    }

    /// Prompt logprobs are the prompt's own scores, not part of the answer: not recorded.
    fn score_prompt(&self, prompt: Vec<u32>, top_k: usize) -> gonka_engine::ScoreFuture {
        self.inner.score_prompt(prompt, top_k)
    }
}

/// What an executor records of one generation while the client receives it (`docs/spec/validation.md`
/// §1): every token, the text sent, and each position's top-k logprobs — whatever the client asked
/// to see, which is all it is passed.
#[derive(Clone)]
struct Recorder {
    record: Record,
    /// The logprobs the client asked for.
    asked: Option<usize>,
    edit_at: Option<usize>,
}

impl Recorder {
    /// Sets `request` up to be recorded — sampled with `seed`, `recorded_top_k` logprobs a position —
    /// and a recorder for its events.
    fn prepare(
        request: &mut GenerationRequest,
        seed: u64,
        recorded_top_k: usize,
        edit_at: Option<usize>,
    ) -> Recorder {
        let asked = request.top_logprobs;
        request.sampling.seed = seed;
        request.top_logprobs = Some(asked.unwrap_or(0).max(recorded_top_k));
        let prompt = request.prompt_tokens.clone();
        Recorder {
            record: Record { prompt_tokens: prompt.len(), prompt, ..Record::default() },
            asked,
            edit_at,
        }
    }

    /// Records `event` and leaves in it only what the client asked to see.
    fn take(&mut self, event: &mut GenerationEvent) {
        let record = &mut self.record;
        match event {
            GenerationEvent::Token { id, text, logprobs } => {
                if self.edit_at == Some(record.tokens.len()) {
                    edit(id, text, logprobs.as_mut());
                }
                record.tokens.push(*id);
                record.text.push_str(text);
                if let Some(full) = logprobs.take() {
                    record.recorded.push(recorded(&full));
                    *logprobs = self.asked.map(|n| trimmed(full, n));
                }
            }
            GenerationEvent::Finished { usage, .. } => {
                record.prompt_tokens = usage.prompt_tokens;
                record.cached_tokens = usage.cached_tokens.min(usage.prompt_tokens);
                record.completion_tokens = usage.completion_tokens;
            }
            GenerationEvent::Failed(_) => record.failed = true,
        }
    }

    fn finish(mut self) -> Record {
        self.record.completion_tokens = self.record.completion_tokens.max(self.record.tokens.len());
        self.record
    }
}

/// The answer an honest executor gives to a chat `body` for inference `id`, under `limits`, as it
/// records it for validators: the same seed rule, recording and payload as [`execute`], without the
/// HTTP path. Benchmarks and tests of validation generate with it.
pub async fn answer_recorded(
    engine: &dyn Backend,
    body: &[u8],
    id: &Hash,
    limits: &ApiLimits,
    recorded_top_k: usize,
) -> Result<Payload, ApiError> {
    let (mut request, body_seed) = gonka_api::generation_request(body, engine, limits)?;
    let seed = sampling_seed(body_seed, id);
    let recorder = Recorder::prepare(&mut request, seed, recorded_top_k, None);
    let streams = engine.submit_choices(request, gonka_api::body_choices(body))?;
    let mut records = Vec::with_capacity(streams.len());
    // Each stream holds its whole answer (the engine never waits on a reader): drain them in turn.
    for mut events in streams {
        let mut recorder = recorder.clone();
        while let Some(mut event) = events.recv().await {
            recorder.take(&mut event);
        }
        records.push(recorder.finish());
    }
    if records.iter().any(|r| r.failed) {
        return Err(ApiError::Unavailable("the generation failed".into()));
    }
    Ok(payload_of(body, seed, records, 0))
}

/// The payload an executor keeps of `records`, the answers (choice 0 first) to `body` sampled with
/// `seed`; its counts and hashes cover every answer (`docs/spec/validation.md` §1.1).
fn payload_of(body: &[u8], seed: u64, records: Vec<Record>, height: u64) -> Payload {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let completion_tokens = count(records.iter().map(|r| r.completion_tokens).sum());
    let mut records = records.into_iter();
    let first = records.next().unwrap_or_default();
    let more_choices: Vec<ChoiceAnswer> = records
        .map(|r| ChoiceAnswer { completion: r.text, completion_token_ids: r.tokens, recorded: r.recorded })
        .collect();
    let mut payload = Payload {
        body: String::from_utf8_lossy(body).into_owned(),
        response_hash: Hash::ZERO,
        logprobs_hash: Hash::ZERO,
        completion: first.text,
        completion_token_ids: first.tokens,
        recorded: first.recorded,
        prompt_tokens: count(first.prompt_tokens),
        cached_tokens: count(first.cached_tokens),
        completion_tokens,
        seed,
        stored_height: height,
        more_choices,
    };
    (payload.response_hash, payload.logprobs_hash) = commitments(&payload.answers());
    payload
}

/// An `edit-answer` cheat's edit: the token becomes the most likely other one of the position.
fn edit(id: &mut u32, text: &mut String, logprobs: Option<&mut PositionLogprobs>) {
    let Some(position) = logprobs else { return };
    let Some(other) = position.top.iter().find(|t| t.id != *id).cloned() else { return };
    *id = other.id;
    text.clone_from(&other.text);
    position.chosen = other;
}

/// A position as validators see it.
fn recorded(position: &PositionLogprobs) -> RecordedPosition {
    RecordedPosition {
        token: position.chosen.id,
        logprob: position.chosen.logprob,
        top: position.top.iter().map(|t| (t.id, t.logprob)).collect(),
    }
}

/// A position as the client asked to see it: its `n` best alternatives.
fn trimmed(mut position: PositionLogprobs, n: usize) -> PositionLogprobs {
    position.top.truncate(n);
    position
}

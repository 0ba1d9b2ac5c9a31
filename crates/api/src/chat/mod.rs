//! `POST /v1/chat/completions`: validate, render the chat, submit to the generator, answer as one
//! `chat.completion` object or as a stream of chunks.

pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod stream;
mod tools;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gonka_engine_api::{EngineError, GenerationEvent, GenerationRequest, GenerationStream, Usage};

use self::request::ChatPlan;
use self::response::{Collected, CompletionHead};
use self::tools::CallSplitter;
use crate::{ApiError, AppState, Metrics};

/// When a request's [`crate::ApiLimits::request_timeout`] runs out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub(crate) at: tokio::time::Instant,
    pub(crate) budget: Duration,
}

impl Deadline {
    /// The deadline of a request that arrived at `arrived`, under `limits`.
    pub(crate) fn of(limits: &crate::ApiLimits, arrived: Instant) -> Option<Deadline> {
        limits
            .request_timeout
            .map(|budget| Deadline { at: tokio::time::Instant::from_std(arrived) + budget, budget })
    }
}

/// Records a generation's time to first token and its token counts.
pub(crate) struct GenerationWatch {
    metrics: Arc<Metrics>,
    arrived: Instant,
    first_token_seen: bool,
}

impl GenerationWatch {
    /// A watch of a request that arrived at `arrived`; only the first answer's first token is the
    /// request's time to first token.
    pub(crate) fn new(metrics: &Arc<Metrics>, arrived: Instant, choice: usize) -> Self {
        GenerationWatch { metrics: Arc::clone(metrics), arrived, first_token_seen: choice > 0 }
    }

    pub(crate) fn token(&mut self) {
        if !self.first_token_seen {
            self.first_token_seen = true;
            self.metrics.observe_time_to_first_token(self.arrived.elapsed());
        }
    }

    pub(crate) fn finished(&self, usage: Usage) {
        self.metrics.observe_usage(usage);
    }
}

/// The handler. The body arrives as bytes (bounded by `DefaultBodyLimit`) so that every rejection, the
/// size limit included, leaves as an OpenAI-shaped [`ApiError`].
pub(crate) async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    require_json(&headers)?;
    let body = body.map_err(|rejection| body_error(&rejection, state.limits.body_bytes_max))?;
    let (plan, request) = prepare(&body, &*state.generator, &state.limits)?;
    let ChatPlan { model, top_logprobs, stream, include_usage, tools, choices, .. } = plan;
    let streams = state.generator.submit_choices(request, choices)?;

    let head = CompletionHead::new(model);
    let id = head.id.trim_start_matches("chatcmpl-").to_owned();
    let deadline = Deadline::of(&state.limits, arrived);
    // Each answer has its own splitter into content and calls, and its own watch (only the first
    // answer's first token is the request's time to first token).
    let answers: Vec<Answer> = streams
        .into_iter()
        .enumerate()
        .map(|(choice, events)| Answer {
            events,
            splitter: tools.clone().map(|tools| CallSplitter::new(tools, &format!("{id}_{choice}"))),
            watch: GenerationWatch::new(&state.metrics, arrived, choice),
        })
        .collect();
    if stream {
        return Ok(stream::ChunkStream::new(answers, head, include_usage, deadline).into_response());
    }
    let logprobs = top_logprobs.is_some();
    let collected =
        within(deadline, futures::future::try_join_all(answers.into_iter().map(|a| collect(a, logprobs))))
            .await?;
    Ok(Json(response::completion(head, collected)).into_response())
}

/// One answer of a request in flight: its events, its splitter (requests with tools) and its watch.
pub(crate) struct Answer {
    events: GenerationStream,
    splitter: Option<CallSplitter>,
    watch: GenerationWatch,
}

/// Validates a chat body and builds the generation request the handler submits for it.
fn prepare(
    body: &[u8],
    generator: &dyn gonka_engine_api::Generator,
    limits: &crate::ApiLimits,
) -> Result<(ChatPlan, GenerationRequest), ApiError> {
    let info = generator.model_info();
    let plan = request::parse_body(body)?.validate(info, limits)?;
    let prompt_tokens = generator.render_chat(&plan.messages)?;
    let max_tokens =
        fit_max_tokens(prompt_tokens.len(), plan.max_tokens, limits.max_tokens_default, info.context_length)?;
    let request = GenerationRequest {
        prompt_tokens,
        sampling: plan.sampling.clone(),
        max_tokens,
        stop: plan.stop.clone(),
        top_logprobs: plan.top_logprobs,
        ignore_eos: false,
    };
    // Every declared function's parameter schema must compile, whether or not this answer is forced to
    // call one: the grammar of calls of every tool is the check.
    if let Some(tools) = &plan.tools {
        let mut probe = request.clone();
        probe.sampling.grammar = Some(tools.check_grammar());
        generator.check(&probe)?;
    }
    Ok((plan, request))
}

/// The generation a body asks for — a chat, or a text completion ([`crate::Endpoint::of`]) — exactly as
/// its handler would submit it under `limits`, and the `seed` the body named (none: the handler draws a
/// fresh one, which the returned request carries). A validator replays an answer from this
/// (`docs/spec/validation.md` §3); the errors are the handler's.
pub fn generation_request(
    body: &[u8],
    generator: &dyn gonka_engine_api::Generator,
    limits: &crate::ApiLimits,
) -> Result<(GenerationRequest, Option<u64>), ApiError> {
    if body.len() > limits.body_bytes_max {
        return Err(ApiError::BodyTooLarge { body_bytes_max: limits.body_bytes_max });
    }
    match crate::Endpoint::of(body) {
        crate::Endpoint::Chat => {
            let (plan, request) = prepare(body, generator, limits)?;
            Ok((request, plan.body_seed))
        }
        crate::Endpoint::Completions => {
            let (plan, request) = crate::completions::prepare(body, generator, limits)?;
            Ok((request, plan.body_seed()))
        }
    }
}

/// The `seed` a chat or completion body names (as the two's-complement `u64` the handler uses), read without
/// validating the rest.
pub fn body_seed(body: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Seeded {
        seed: Option<i64>,
    }
    serde_json::from_slice::<Seeded>(body).ok().and_then(|b| b.seed).map(i64::cast_unsigned)
}

/// The answers (`n`) a chat or completion body asks for, read without validating the rest: 1 when it
/// names none or a value the handler refuses anyway. Through the network the signed `max_tokens` is
/// the budget of all of them, split evenly (`docs/spec/inference.md` §2.1).
pub fn body_choices(body: &[u8]) -> usize {
    #[derive(serde::Deserialize)]
    struct Choices {
        n: Option<u64>,
    }
    let n = serde_json::from_slice::<Choices>(body).ok().and_then(|b| b.n).unwrap_or(1);
    usize::try_from(n).unwrap_or(1).clamp(1, CHOICES_SPLIT_MAX)
}

/// The most answers [`body_choices`] reports (more is refused by every handler anyway).
const CHOICES_SPLIT_MAX: usize = 64;

/// What a transfer agent learns from a chat request before it forwards it (and escrows for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSummary {
    /// The requested model.
    pub model: String,
    /// Prompt tokens, chat template applied.
    pub prompt_tokens: usize,
    /// Completion tokens the request may use: what it asked for, or the server default.
    pub max_tokens: usize,
    /// Whether the answer streams.
    pub stream: bool,
    /// The endpoint the body is for.
    pub endpoint: crate::Endpoint,
}

/// Validates a chat or completion request ([`crate::Endpoint::of`]) exactly as its handler does and
/// counts its prompt tokens, without generating: the same `400`/`404`/`413` errors a direct request
/// would get (the engine's own checks, such as whether its grammar engine supports the request's
/// schema, included).
pub fn summarize_request(
    headers: &HeaderMap,
    body: &[u8],
    generator: &dyn gonka_engine_api::Generator,
    limits: &crate::ApiLimits,
) -> Result<RequestSummary, ApiError> {
    require_json(headers)?;
    if body.len() > limits.body_bytes_max {
        return Err(ApiError::BodyTooLarge { body_bytes_max: limits.body_bytes_max });
    }
    let endpoint = crate::Endpoint::of(body);
    let (model, stream, choices, request) = match endpoint {
        crate::Endpoint::Chat => {
            let (plan, request) = prepare(body, generator, limits)?;
            (plan.model, plan.stream, plan.choices, request)
        }
        crate::Endpoint::Completions => {
            let (plan, request) = crate::completions::prepare(body, generator, limits)?;
            (plan.model().to_owned(), plan.stream(), plan.choices(), request)
        }
    };
    // All the answers must fit the engine at once: refused here, before anything is escrowed.
    generator.check_choices(&request, choices).map_err(|error| match endpoint {
        crate::Endpoint::Chat => error.into(),
        crate::Endpoint::Completions => crate::completions::about_prompt(error.into()),
    })?;
    Ok(RequestSummary {
        model,
        prompt_tokens: request.prompt_tokens.len(),
        max_tokens: request.max_tokens,
        stream,
        endpoint,
    })
}

/// Accept `application/json`, with or without parameters such as `charset`.
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type =
        headers.get(header::CONTENT_TYPE).map(|value| String::from_utf8_lossy(value.as_bytes()));
    let is_json = content_type.as_deref().is_some_and(|value| {
        let essence = value.split(';').next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case("application/json")
    });
    if is_json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType { content_type: content_type.map(String::from) })
    }
}

pub(crate) fn body_error(rejection: &BytesRejection, body_bytes_max: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::BodyTooLarge { body_bytes_max }
    } else {
        ApiError::BodyUnreadable(rejection.body_text())
    }
}

/// The completion budget: what the client asked for, which must fit the context window with the prompt,
/// or else the server default lowered to what still fits.
pub(crate) fn fit_max_tokens(
    prompt_tokens: usize,
    requested: Option<usize>,
    max_tokens_default: usize,
    context_length: usize,
) -> Result<usize, ApiError> {
    let room = context_length.saturating_sub(prompt_tokens);
    let max_tokens = requested.unwrap_or_else(|| max_tokens_default.min(room));
    if max_tokens == 0 || max_tokens > room {
        return Err(ApiError::Engine(EngineError::ContextLengthExceeded {
            prompt_tokens,
            max_tokens: max_tokens.max(1),
            context_length,
        }));
    }
    Ok(max_tokens)
}

/// Run `work` to completion or until the deadline; on timeout `work` is dropped, and with it the
/// generation stream it owns.
pub(crate) async fn within<T>(
    deadline: Option<Deadline>,
    work: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline.at, work)
            .await
            .map_err(|_| ApiError::Timeout(deadline.budget))?,
        None => work.await,
    }
}

/// Gather a generation's tokens until its `Finished` event.
async fn collect(answer: Answer, logprobs_requested: bool) -> Result<Collected, ApiError> {
    let Answer { mut events, splitter, mut watch } = answer;
    let mut content = String::new();
    let mut logprobs = Vec::new();
    while let Some(event) = events.recv().await {
        match event {
            GenerationEvent::Token { text, logprobs: position, .. } => {
                watch.token();
                content.push_str(&text);
                logprobs.extend(position.map(response::token_logprob));
            }
            GenerationEvent::Finished { reason, usage } => {
                watch.finished(usage);
                let logprobs = logprobs_requested.then_some(logprobs);
                let (content, calls) = match splitter {
                    Some(mut splitter) => {
                        let mut pieces = splitter.push(&content);
                        pieces.extend(splitter.finish());
                        response::gather(pieces)
                    }
                    None => (content, Vec::new()),
                };
                return Ok(Collected { content, calls, logprobs, finish_reason: reason, usage });
            }
            GenerationEvent::Failed(error) => return Err(error.into()),
        }
    }
    Err(ApiError::GenerationAbandoned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_max_tokens_shrinks_to_the_room_left_in_the_context() {
        assert_eq!(fit_max_tokens(100, None, 256, 200).expect("fits"), 100);
        assert_eq!(fit_max_tokens(10, None, 256, 2048).expect("fits"), 256);
    }

    #[test]
    fn requested_max_tokens_must_fit_with_the_prompt() {
        assert_eq!(fit_max_tokens(100, Some(100), 256, 200).expect("fits exactly"), 100);
        let error = fit_max_tokens(100, Some(101), 256, 200).expect_err("one over");
        assert_eq!(error.error_object().code, Some("context_length_exceeded"));
    }

    #[test]
    fn a_prompt_filling_the_context_is_rejected() {
        assert!(fit_max_tokens(200, None, 256, 200).is_err());
    }

    #[test]
    fn json_content_type_may_carry_a_charset() {
        let mut headers = HeaderMap::new();
        headers
            .insert(header::CONTENT_TYPE, "Application/JSON; charset=utf-8".parse().expect("valid header"));
        assert!(require_json(&headers).is_ok());
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().expect("valid header"));
        assert!(require_json(&headers).is_err());
    }
}

//! `POST /v1/completions`: OpenAI's text completions (a raw prompt, no chat template), with `echo`,
//! `logprobs` in the legacy shape, vLLM's `prompt_logprobs`, `n` choices and streaming.
//!
//! Where OpenAI and vLLM leave room, this server chooses (`docs/api.md`):
//! - `prompt` is one string or one list of token ids (also wrapped in a one-element list); a batch of
//!   several prompts is a `400` naming `prompt` — send several requests, or use `n` for several answers;
//! - `logprobs` is 0 to 20 alternatives (OpenAI stops at 5, vLLM at 20); each position's
//!   `top_logprobs` holds the alternatives and the chosen token;
//! - without `max_tokens` the server default applies, as for chats (OpenAI's is 16);
//! - `suffix` and `best_of` other than `n` are refused naming the field;
//! - prompt logprobs (`prompt_logprobs`, or `echo` with `logprobs`) need `n` = 1: they are the same for
//!   every answer and cost a second pass over the prompt, made once per request. They are the
//!   executor's report, not part of the answer validators re-score.
//!
//! The generation itself is the chat handler's: the same sampling fields, validation, engine, seeds and
//! receipts; only the prompt (tokenized as it stands) and the response shape differ. Prompt logprobs
//! are a teacher-forced scoring of the prompt ([`Generator::score_prompt`]), done while the answer
//! generates.

use std::convert::Infallible;
use std::time::Instant;

use async_openai::types::chat::CompletionUsage;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use gonka_engine_api::{
    EngineError, FinishReason, GenerationEvent, GenerationRequest, GenerationStream, Generator,
    PositionLogprobs, SamplingParams, ScoredPosition,
};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chat::request::{
    StreamOptions, TOP_LOGPROBS_MAX, parse_json, validate_adjustments, validate_choices, validate_max_tokens,
    validate_sampling, validate_stop,
};
use crate::chat::response::{CompletionHead, completion_usage, total_usage};
use crate::chat::stream::{Running, json_event, receive};
use crate::chat::{Deadline, GenerationWatch, body_error, fit_max_tokens, require_json, within};
use crate::{ApiError, ApiLimits, AppState};

/// The request body of `POST /v1/completions`.
#[derive(Debug, Deserialize)]
pub(crate) struct CompletionBody {
    model: String,
    prompt: Option<Value>,
    max_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u64>,
    seed: Option<i64>,
    stop: Option<Value>,
    logprobs: Option<u64>,
    echo: Option<bool>,
    n: Option<u64>,
    best_of: Option<u64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    presence_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    logit_bias: Option<Value>,
    suffix: Option<String>,
    /// vLLM's extension: logprobs of the prompt's own tokens, with this many alternatives.
    prompt_logprobs: Option<u64>,
}

/// The prompt as sent: text, or token ids.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Prompt {
    Text(String),
    Tokens(Vec<u32>),
}

/// A validated completion request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CompletionPlan {
    model: String,
    prompt: Prompt,
    sampling: SamplingParams,
    body_seed: Option<u64>,
    max_tokens: Option<usize>,
    stop: Vec<String>,
    /// `Some(n)`: logprobs of each generated token with `n` alternatives.
    logprobs: Option<usize>,
    echo: bool,
    /// `Some(n)`: logprobs of each prompt token with `n` alternatives.
    prompt_logprobs: Option<usize>,
    stream: bool,
    include_usage: bool,
    choices: usize,
}

impl CompletionBody {
    fn validate(self, limits: &ApiLimits, generator: &dyn Generator) -> Result<CompletionPlan, ApiError> {
        let info = generator.model_info();
        if self.model != info.name {
            return Err(ApiError::ModelNotFound { model: self.model, param: Some("model") });
        }
        let prompt = validate_prompt(self.prompt)?;
        if self.suffix.as_deref().is_some_and(|suffix| !suffix.is_empty()) {
            return Err(ApiError::invalid("suffix", "A `suffix` (insertion) is not supported."));
        }
        let choices = validate_choices(self.n, limits.choices_max)?;
        if self.best_of.is_some_and(|best_of| best_of as usize != choices) {
            return Err(ApiError::invalid(
                "best_of",
                "`best_of` other than `n` is not supported: every generated answer is returned.",
            ));
        }
        let max_tokens = validate_max_tokens(self.max_tokens, None, limits.max_tokens_cap)?;
        let mut sampling =
            validate_sampling(self.temperature, self.top_p, self.top_k, self.seed, info.defaults)?;
        sampling.adjustments =
            validate_adjustments(self.presence_penalty, self.frequency_penalty, self.logit_bias)?;
        let count = |param: &str, value: Option<u64>| match value {
            None => Ok(None),
            Some(n) if n <= TOP_LOGPROBS_MAX => Ok(Some(n as usize)),
            Some(n) => Err(ApiError::invalid(
                param,
                format!("`{param}` is {n}; it must be in [0, {TOP_LOGPROBS_MAX}]."),
            )),
        };
        let logprobs = count("logprobs", self.logprobs)?;
        let prompt_logprobs = count("prompt_logprobs", self.prompt_logprobs)?;
        let echo = self.echo.unwrap_or(false);
        // Scoring the prompt costs a second pass over it: once per request, never once per answer.
        if choices > 1 && (prompt_logprobs.is_some() || (echo && logprobs.is_some())) {
            return Err(ApiError::invalid(
                "n",
                "Prompt logprobs (`prompt_logprobs`, or `echo` with `logprobs`) are the same for every answer: ask for them with `n` = 1.",
            ));
        }
        let stream = self.stream.unwrap_or(false);
        Ok(CompletionPlan {
            model: self.model,
            prompt,
            body_seed: self.seed.map(i64::cast_unsigned),
            sampling,
            max_tokens,
            stop: validate_stop(self.stop)?,
            logprobs,
            echo,
            prompt_logprobs,
            stream,
            include_usage: stream && self.stream_options.and_then(|o| o.include_usage).unwrap_or(false),
            choices,
        })
    }
}

/// One prompt: a string, a list of token ids, or either wrapped in a one-element list.
fn validate_prompt(prompt: Option<Value>) -> Result<Prompt, ApiError> {
    let invalid = |message: &str| Err(ApiError::invalid("prompt", message));
    let prompt = match prompt {
        None | Some(Value::Null) => return invalid("`prompt` is required."),
        Some(Value::Array(mut items)) if items.len() == 1 && !items[0].is_number() => items.remove(0),
        Some(prompt) => prompt,
    };
    match prompt {
        Value::String(text) if text.is_empty() => invalid("`prompt` must not be empty."),
        Value::String(text) => Ok(Prompt::Text(text)),
        Value::Array(items) if items.is_empty() => invalid("`prompt` must not be empty."),
        Value::Array(items) if items.iter().all(Value::is_number) => items
            .iter()
            .map(|item| item.as_u64().and_then(|id| u32::try_from(id).ok()))
            .collect::<Option<Vec<u32>>>()
            .map(Prompt::Tokens)
            .map_or_else(|| invalid("Token ids in `prompt` must be integers from 0 to 2^32 - 1."), Ok),
        Value::Array(_) => invalid(
            "`prompt` holds several prompts; this server answers one prompt per request (use `n` for several answers).",
        ),
        _ => invalid("`prompt` must be a string or a list of token ids."),
    }
}

/// Engine errors about the prompt name `prompt`, the field a completion request sent it in.
pub(crate) fn about_prompt(error: ApiError) -> ApiError {
    match error {
        ApiError::Engine(EngineError::InvalidParameter { param: "messages", message }) => {
            ApiError::invalid("prompt", message)
        }
        other => other,
    }
}

/// Validates a completion body and builds the generation request the handler submits for it.
pub(crate) fn prepare(
    body: &[u8],
    generator: &dyn Generator,
    limits: &ApiLimits,
) -> Result<(CompletionPlan, GenerationRequest), ApiError> {
    let plan = parse_json::<CompletionBody>(body)?.validate(limits, generator)?;
    let prompt_tokens = match &plan.prompt {
        Prompt::Text(text) => generator.tokenize(text).map_err(|e| about_prompt(e.into()))?,
        Prompt::Tokens(ids) => ids.clone(),
    };
    if prompt_tokens.is_empty() {
        return Err(ApiError::invalid("prompt", "The prompt has no tokens."));
    }
    let info = generator.model_info();
    let max_tokens =
        fit_max_tokens(prompt_tokens.len(), plan.max_tokens, limits.max_tokens_default, info.context_length)?;
    let request = GenerationRequest {
        prompt_tokens,
        sampling: plan.sampling.clone(),
        max_tokens,
        stop: plan.stop.clone(),
        top_logprobs: plan.logprobs,
        ignore_eos: false,
    };
    Ok((plan, request))
}

impl CompletionPlan {
    /// The `seed` the body named.
    pub(crate) fn body_seed(&self) -> Option<u64> {
        self.body_seed
    }

    /// The model named.
    pub(crate) fn model(&self) -> &str {
        &self.model
    }

    /// Whether the answer streams.
    pub(crate) fn stream(&self) -> bool {
        self.stream
    }

    /// Answers asked for (`n`).
    pub(crate) fn choices(&self) -> usize {
        self.choices
    }
}

/// The handler.
pub(crate) async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    require_json(&headers)?;
    let body = body.map_err(|rejection| body_error(&rejection, state.limits.body_bytes_max))?;
    let (plan, request) = prepare(&body, &*state.generator, &state.limits)?;
    let generator = &state.generator;
    let prompt = PromptView::new(&plan.prompt, &request.prompt_tokens, &**generator);
    let prompt_tokens = request.prompt_tokens.clone();
    let streams = generator.submit_choices(request, plan.choices).map_err(|e| about_prompt(e.into()))?;
    // Prompt logprobs (echo with logprobs needs them too) are scored beside the generation, and only
    // once the engine accepted it: a refused request leaves no scoring behind.
    let scored_prompt = plan.prompt_logprobs.or(plan.logprobs.filter(|_| plan.echo));
    let prompt_scores = scored_prompt.map(|top| generator.score_prompt(prompt_tokens, top));
    let deadline = Deadline::of(&state.limits, arrived);
    let scores = match prompt_scores {
        Some(scoring) => {
            Some(within(deadline, async { scoring.await.map_err(|e| about_prompt(e.into())) }).await?)
        }
        None => None,
    };
    let head = CompletionHead::with_prefix("cmpl", plan.model.clone());
    let answers: Vec<Answer> = streams
        .into_iter()
        .enumerate()
        .map(|(choice, events)| Answer {
            events: Some(events),
            watch: GenerationWatch::new(&state.metrics, arrived, choice),
            usage: None,
        })
        .collect();
    let shape = Shape { plan, prompt, scores, generator: state.generator.clone() };
    if shape.plan.stream {
        return Ok(TextStream::new(head, shape, answers, deadline).into_response());
    }
    let collected = within(deadline, futures::future::try_join_all(answers.into_iter().map(collect))).await?;
    Ok(Json(shape.completion(&head, collected)).into_response())
}

/// One answer of a request in flight.
struct Answer {
    events: Option<GenerationStream>,
    watch: GenerationWatch,
    usage: Option<gonka_engine_api::Usage>,
}

impl Running for Answer {
    fn events(&mut self) -> Option<&mut GenerationStream> {
        self.events.as_mut()
    }
}

/// A whole answer.
struct Collected {
    text: String,
    positions: Vec<PositionLogprobs>,
    reason: FinishReason,
    usage: gonka_engine_api::Usage,
}

async fn collect(mut answer: Answer) -> Result<Collected, ApiError> {
    let Some(mut events) = answer.events.take() else { return Err(ApiError::GenerationAbandoned) };
    let (mut text, mut positions) = (String::new(), Vec::new());
    while let Some(event) = events.recv().await {
        match event {
            GenerationEvent::Token { text: piece, logprobs, .. } => {
                answer.watch.token();
                text.push_str(&piece);
                positions.extend(logprobs);
            }
            GenerationEvent::Finished { reason, usage } => {
                answer.watch.finished(usage);
                return Ok(Collected { text, positions, reason, usage });
            }
            GenerationEvent::Failed(error) => return Err(error.into()),
        }
    }
    Err(ApiError::GenerationAbandoned)
}

/// The prompt as the response shows it: its text (as sent, or decoded from its ids) and each token's.
struct PromptView {
    text: String,
    tokens: Vec<(u32, String)>,
}

impl PromptView {
    fn new(prompt: &Prompt, ids: &[u32], generator: &dyn Generator) -> Self {
        let tokens: Vec<(u32, String)> = ids
            .iter()
            .map(|&id| (id, String::from_utf8_lossy(&generator.token_bytes(id)).into_owned()))
            .collect();
        let text = match prompt {
            Prompt::Text(text) => text.clone(),
            Prompt::Tokens(_) => {
                let bytes: Vec<u8> = ids.iter().flat_map(|&id| generator.token_bytes(id)).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
        };
        Self { text, tokens }
    }
}

/// Everything the response's shape depends on besides the answers.
struct Shape {
    plan: CompletionPlan,
    prompt: PromptView,
    /// The prompt's scored positions (token 1 on), when asked for.
    scores: Option<Vec<ScoredPosition>>,
    generator: std::sync::Arc<dyn Generator>,
}

/// A JSON object whose keys keep their order (best first) and whose values keep their own precision
/// (an `f32` logprob prints as an `f32`). A later duplicate key is dropped.
#[derive(Debug)]
struct Ordered<V>(Vec<(String, V)>);

impl<V> Default for Ordered<V> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<V> Ordered<V> {
    fn insert(&mut self, key: String, value: V) {
        if !self.0.iter().any(|(k, _)| *k == key) {
            self.0.push((key, value));
        }
    }
}

impl<V: Serialize> Serialize for Ordered<V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// `logprobs` of a text completion choice (OpenAI's legacy shape).
#[derive(Debug, Default, Serialize)]
struct TextLogprobs {
    tokens: Vec<String>,
    token_logprobs: Vec<Option<f32>>,
    top_logprobs: Vec<Option<Ordered<f32>>>,
    text_offset: Vec<usize>,
}

impl TextLogprobs {
    /// Appends one position; `offset` is the character offset of its token in the choice's text.
    fn push(&mut self, token: String, logprob: Option<f32>, top: Option<Ordered<f32>>, offset: usize) {
        self.tokens.push(token);
        self.token_logprobs.push(logprob);
        self.top_logprobs.push(top);
        self.text_offset.push(offset);
    }
}

/// One prompt token of vLLM's `prompt_logprobs`.
#[derive(Debug, Serialize)]
struct PromptLogprob {
    logprob: f32,
    rank: u32,
    decoded_token: String,
}

#[derive(Debug, Serialize)]
struct TextChoice {
    text: String,
    index: usize,
    logprobs: Option<TextLogprobs>,
    finish_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_logprobs: Option<Vec<Option<Ordered<PromptLogprob>>>>,
}

#[derive(Debug, Serialize)]
struct TextCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u32,
    model: &'a str,
    choices: Vec<TextChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<CompletionUsage>,
}

fn reason_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

/// A position's alternatives as `{token text: logprob}`, best first, with the chosen token added when
/// it is not among them (vLLM's convention).
fn alternatives(chosen: (&str, f32), top: impl IntoIterator<Item = (String, f32)>) -> Ordered<f32> {
    let mut map = Ordered::default();
    for (text, logprob) in top {
        map.insert(text, logprob);
    }
    map.insert(chosen.0.to_owned(), chosen.1);
    map
}

impl Shape {
    fn token_text(&self, id: u32) -> String {
        String::from_utf8_lossy(&self.generator.token_bytes(id)).into_owned()
    }

    /// The echoed prompt's part of a choice's logprobs: the first token has none, the others their
    /// scores.
    fn prompt_positions(&self, logprobs: &mut TextLogprobs, offset: &mut usize) {
        let top_n = self.plan.logprobs.unwrap_or(0);
        for (i, (_, text)) in self.prompt.tokens.iter().enumerate() {
            let scored = i.checked_sub(1).and_then(|at| self.scores.as_ref()?.get(at));
            let (logprob, top) = match scored {
                Some(scored) => {
                    let top = scored.top.iter().take(top_n).map(|&(id, l)| (self.token_text(id), l));
                    (Some(scored.logprob), Some(alternatives((text, scored.logprob), top)))
                }
                None => (None, None),
            };
            logprobs.push(text.clone(), logprob, top, *offset);
            *offset += text.chars().count();
        }
    }

    /// Generated positions' logprobs, from `offset` on.
    fn answer_positions(
        &self,
        positions: &[PositionLogprobs],
        logprobs: &mut TextLogprobs,
        offset: &mut usize,
    ) {
        for position in positions {
            let chosen = &position.chosen;
            let top = position.top.iter().map(|t| (t.text.clone(), t.logprob));
            logprobs.push(
                chosen.text.clone(),
                Some(chosen.logprob),
                Some(alternatives((&chosen.text, chosen.logprob), top)),
                *offset,
            );
            *offset += chosen.text.chars().count();
        }
    }

    /// vLLM's `prompt_logprobs`: `null` for the first token, then `{id: {logprob, rank, decoded_token}}`
    /// holding the prompt's token and its alternatives.
    fn prompt_logprobs(&self) -> Option<Vec<Option<Ordered<PromptLogprob>>>> {
        let top_n = self.plan.prompt_logprobs?;
        let scores = self.scores.as_ref()?;
        let mut out = vec![None];
        for scored in scores {
            let mut map = Ordered::default();
            let mut add = |id: u32, logprob: f32, rank: u32| {
                map.insert(
                    id.to_string(),
                    PromptLogprob { logprob, rank, decoded_token: self.token_text(id) },
                );
            };
            add(scored.token, scored.logprob, scored.rank);
            for (rank, &(id, logprob)) in scored.top.iter().take(top_n).enumerate() {
                add(id, logprob, u32::try_from(rank + 1).unwrap_or(u32::MAX));
            }
            out.push(Some(map));
        }
        Some(out)
    }

    fn completion<'a>(&self, head: &'a CompletionHead, collected: Vec<Collected>) -> TextCompletion<'a> {
        let usage = total_usage(collected.iter().map(|c| c.usage));
        let choices = collected
            .into_iter()
            .enumerate()
            .map(|(index, answer)| {
                let mut text = String::new();
                let mut logprobs = self.plan.logprobs.map(|_| TextLogprobs::default());
                let mut offset = 0;
                if self.plan.echo {
                    text.push_str(&self.prompt.text);
                    if let Some(logprobs) = &mut logprobs {
                        self.prompt_positions(logprobs, &mut offset);
                    }
                }
                if let Some(logprobs) = &mut logprobs {
                    self.answer_positions(&answer.positions, logprobs, &mut offset);
                }
                text.push_str(&answer.text);
                TextChoice {
                    text,
                    index,
                    logprobs,
                    finish_reason: Some(reason_name(answer.reason)),
                    prompt_logprobs: self.prompt_logprobs(),
                }
            })
            .collect();
        TextCompletion {
            id: &head.id,
            object: "text_completion",
            created: head.created,
            model: &head.model,
            choices,
            usage: Some(completion_usage(usage)),
        }
    }
}

/// A streamed chunk: one choice's part, or (no choice) the usage.
fn chunk(
    head: &CompletionHead,
    choice: Option<TextChoice>,
    usage: Option<CompletionUsage>,
) -> TextCompletion<'_> {
    TextCompletion {
        id: &head.id,
        object: "text_completion",
        created: head.created,
        model: &head.model,
        choices: choice.into_iter().collect(),
        usage,
    }
}

/// Where a streamed completion is.
enum Phase {
    /// The echoed prompt of choice `.0` (and its prompt logprobs) comes next.
    Echo(usize),
    Tokens,
    Usage,
    Done,
    Ended,
}

/// A streamed completion: per choice the echoed prompt (when asked), its tokens, its finish; then the
/// usage chunk (when asked) and `[DONE]`.
struct TextStream {
    head: CompletionHead,
    shape: Shape,
    answers: Vec<Answer>,
    deadline: Option<Deadline>,
    phase: Phase,
    next_poll: usize,
    /// Characters of each choice's text sent so far (its next token's `text_offset`).
    offsets: Vec<usize>,
}

impl TextStream {
    fn new(head: CompletionHead, shape: Shape, answers: Vec<Answer>, deadline: Option<Deadline>) -> Self {
        let phase = if shape.plan.echo || shape.plan.prompt_logprobs.is_some() {
            Phase::Echo(0)
        } else {
            Phase::Tokens
        };
        let offsets = vec![0; answers.len()];
        Self { head, shape, answers, deadline, phase, next_poll: 0, offsets }
    }

    fn into_response(self) -> Response {
        let events = futures::stream::unfold(self, |mut stream| async move {
            let event = stream.next_event().await?;
            Some((Ok::<_, Infallible>(event), stream))
        });
        Sse::new(events).keep_alive(KeepAlive::default()).into_response()
    }

    async fn next_event(&mut self) -> Option<Event> {
        match std::mem::replace(&mut self.phase, Phase::Ended) {
            Phase::Echo(index) => {
                self.phase =
                    if index + 1 < self.answers.len() { Phase::Echo(index + 1) } else { Phase::Tokens };
                let choice = self.echo_choice(index);
                Some(json_event(&chunk(&self.head, Some(choice), None)))
            }
            Phase::Tokens => Some(self.next_token_event().await),
            Phase::Usage => {
                self.phase = Phase::Done;
                let usage = total_usage(self.answers.iter().filter_map(|a| a.usage));
                Some(json_event(&chunk(&self.head, None, Some(completion_usage(usage)))))
            }
            Phase::Done => Some(Event::default().data("[DONE]")),
            Phase::Ended => None,
        }
    }

    /// The first chunk of choice `index` when the prompt is echoed or scored.
    fn echo_choice(&mut self, index: usize) -> TextChoice {
        let shape = &self.shape;
        let mut text = String::new();
        let mut logprobs = None;
        if shape.plan.echo {
            text.clone_from(&shape.prompt.text);
            if shape.plan.logprobs.is_some() {
                let mut prompt = TextLogprobs::default();
                shape.prompt_positions(&mut prompt, &mut self.offsets[index]);
                logprobs = Some(prompt);
            }
        }
        TextChoice { text, index, logprobs, finish_reason: None, prompt_logprobs: shape.prompt_logprobs() }
    }

    async fn next_token_event(&mut self) -> Event {
        loop {
            let (index, event) = match receive(&mut self.answers, &mut self.next_poll, self.deadline).await {
                Ok(event) => event,
                Err(error) => return self.fail(&error),
            };
            let Some(answer) = self.answers.get_mut(index) else { continue };
            match event {
                GenerationEvent::Token { text, logprobs, .. } => {
                    answer.watch.token();
                    self.phase = Phase::Tokens;
                    if text.is_empty() && logprobs.is_none() {
                        continue;
                    }
                    let logprobs = logprobs.map(|position| {
                        let mut one = TextLogprobs::default();
                        self.shape.answer_positions(&[position], &mut one, &mut self.offsets[index]);
                        one
                    });
                    let choice =
                        TextChoice { text, index, logprobs, finish_reason: None, prompt_logprobs: None };
                    return json_event(&chunk(&self.head, Some(choice), None));
                }
                GenerationEvent::Finished { reason, usage } => {
                    answer.watch.finished(usage);
                    answer.usage = Some(usage);
                    answer.events = None;
                    self.phase = if self.answers.iter().any(|a| a.usage.is_none()) {
                        Phase::Tokens
                    } else if self.shape.plan.include_usage {
                        Phase::Usage
                    } else {
                        Phase::Done
                    };
                    let choice = TextChoice {
                        text: String::new(),
                        index,
                        logprobs: None,
                        finish_reason: Some(reason_name(reason)),
                        prompt_logprobs: None,
                    };
                    return json_event(&chunk(&self.head, Some(choice), None));
                }
                GenerationEvent::Failed(error) => return self.fail(&ApiError::Engine(error)),
            }
        }
    }

    /// Ends the stream with an error event; dropping the receivers cancels what still runs.
    fn fail(&mut self, error: &ApiError) -> Event {
        tracing::warn!(error = %error, id = %self.head.id, "api.completion_stream failed");
        for answer in &mut self.answers {
            answer.events = None;
        }
        self.phase = Phase::Ended;
        json_event(&error.envelope())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_one_string_or_one_list_of_ids() {
        let prompt = |value: Value| validate_prompt(Some(value));
        assert_eq!(prompt(serde_json::json!("Hi")).expect("text"), Prompt::Text("Hi".into()));
        assert_eq!(prompt(serde_json::json!(["Hi"])).expect("wrapped text"), Prompt::Text("Hi".into()));
        assert_eq!(prompt(serde_json::json!([1, 2])).expect("ids"), Prompt::Tokens(vec![1, 2]));
        assert_eq!(prompt(serde_json::json!([[1, 2]])).expect("wrapped ids"), Prompt::Tokens(vec![1, 2]));
        for bad in [
            serde_json::json!(""),
            serde_json::json!([]),
            serde_json::json!(["a", "b"]),
            serde_json::json!([1, -1]),
            serde_json::json!([1, 1.5]),
            serde_json::json!([[1], [2]]),
            serde_json::json!({"text": "x"}),
        ] {
            let error = prompt(bad.clone()).expect_err("refused");
            assert_eq!(error.error_object().param.as_deref(), Some("prompt"), "{bad}");
        }
        assert!(validate_prompt(None).is_err());
    }

    #[test]
    fn alternatives_keep_the_best_first_and_add_the_chosen_token() {
        let map = alternatives(("c", -3.0), [("a".to_owned(), -0.5), ("b".to_owned(), -1.0)]);
        assert_eq!(serde_json::to_string(&map).expect("json"), r#"{"a":-0.5,"b":-1.0,"c":-3.0}"#);
        let present = alternatives(("a", -0.5), [("a".to_owned(), -0.5)]);
        assert_eq!(present.0.len(), 1);
    }
}

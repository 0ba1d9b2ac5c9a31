//! The chat completion request as it arrives on the wire, and its validation into a [`ChatPlan`].
//!
//! The wire struct is our own rather than async-openai's `CreateChatCompletionRequest`: we need the
//! non-standard `top_k`, fields we only accept at their defaults must parse leniently so that the error
//! names the field instead of a serde variant, and message content is checked part by part so a `400`
//! can say which message is at fault. Unknown top-level fields are ignored, because OpenAI SDKs send
//! fields newer than this server.

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use gonka_engine_api::{
    ChatMessage, GenerationDefaults, LogitAdjustments, ModelInfo, OutputGrammar, SamplingParams,
};
use serde::Deserialize;
use serde_json::Value;

use crate::{ApiError, ApiLimits};

/// OpenAI allows at most this many stop sequences.
const STOP_SEQUENCES_MAX: usize = 4;
/// Longest stop sequence; the engine holds back this much text while it might still match.
const STOP_SEQUENCE_BYTES_MAX: usize = 256;
/// OpenAI's bound on `top_logprobs`, which the engine shares.
pub(crate) const TOP_LOGPROBS_MAX: u64 = 20;
const TEMPERATURE_MAX: f64 = 2.0;
/// OpenAI's bound on `presence_penalty` and `frequency_penalty`.
const PENALTY_MAX: f64 = 2.0;
/// OpenAI's bound on a `logit_bias` value.
const LOGIT_BIAS_LIMIT: f64 = 100.0;
/// Most tokens one request may bias (each is one addition per generated token).
const LOGIT_BIAS_MAX: usize = 1024;

/// Longest `response_format.json_schema.name` (OpenAI's limit).
const SCHEMA_NAME_MAX: usize = 64;
/// Largest JSON Schema a request may constrain its answer with, in bytes of JSON.
const SCHEMA_BYTES_MAX: usize = 64 * 1024;

/// Roles accepted as plain text. `function` (deprecated by OpenAI) is not.
const ROLES: [&str; 5] = ["system", "user", "assistant", "developer", "tool"];

/// The request body of `POST /v1/chat/completions`.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatCompletionBody {
    model: String,
    messages: Vec<WireMessage>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    /// Non-standard extension (vLLM, llama.cpp): keep only the `top_k` most likely tokens; 0 disables.
    top_k: Option<u64>,
    seed: Option<i64>,
    stop: Option<Value>,
    logprobs: Option<bool>,
    top_logprobs: Option<u64>,
    n: Option<u64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    presence_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    response_format: Option<Value>,
    logit_bias: Option<Value>,
    tools: Option<Value>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    functions: Option<Value>,
    function_call: Option<Value>,
    store: Option<bool>,
    modalities: Option<Value>,
    audio: Option<Value>,
    prediction: Option<Value>,
    web_search_options: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct StreamOptions {
    pub(crate) include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    role: String,
    content: Option<Value>,
    tool_calls: Option<Value>,
}

pub(crate) use super::tools::ToolPlan;

/// A validated request: what the handler needs to render, submit and answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChatPlan {
    /// The model name, echoed in responses.
    pub(crate) model: String,
    /// Messages as the chat template consumes them.
    pub(crate) messages: Vec<ChatMessage>,
    /// Sampling settings.
    pub(crate) sampling: SamplingParams,
    /// The `seed` the body named (`sampling.seed` is a fresh one when it named none).
    pub(crate) body_seed: Option<u64>,
    /// Completion tokens the client asked for; `None` means the server default.
    pub(crate) max_tokens: Option<usize>,
    /// Stop sequences.
    pub(crate) stop: Vec<String>,
    /// `Some(n)` when logprobs were asked for, with `n` alternatives per position.
    pub(crate) top_logprobs: Option<usize>,
    /// Answer as server-sent events.
    pub(crate) stream: bool,
    /// Streaming only: send a final usage chunk.
    pub(crate) include_usage: bool,
    /// The declared tools and what `tool_choice` asks, when tools are declared.
    pub(crate) tools: Option<ToolPlan>,
    /// Answers asked for (`n`).
    pub(crate) choices: usize,
}

/// Parse a chat body.
pub(crate) fn parse_body(bytes: &[u8]) -> Result<ChatCompletionBody, ApiError> {
    parse_json(bytes)
}

/// Parse a request body. A value that does not fit the schema names its field as `param`; broken JSON
/// has no field to blame, so its message gives the line and column (and the field it was inside).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would read a top-level array as a positional struct and blame `[0]`; say what is wrong instead.
    if bytes.trim_ascii_start().first().is_some_and(|first| *first != b'{') {
        return Err(ApiError::InvalidRequest {
            param: None,
            message: "The request body must be a JSON object.".to_owned(),
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let body: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let inside = if path == "." { String::new() } else { format!(" inside `{path}`") };
        match inner.classify() {
            serde_json::error::Category::Data if path != "." => ApiError::InvalidRequest {
                message: format!("Invalid value for `{path}`: {inner}"),
                param: Some(path),
            },
            serde_json::error::Category::Data => {
                ApiError::InvalidRequest { param: None, message: format!("Invalid request body: {inner}") }
            }
            _ => ApiError::InvalidRequest { param: None, message: format!("Invalid JSON{inside}: {inner}") },
        }
    })?;
    deserializer.end().map_err(|error| ApiError::InvalidRequest {
        param: None,
        message: format!("Invalid JSON body: {error}"),
    })?;
    Ok(body)
}

impl ChatCompletionBody {
    /// Check every field against what this server serves and `limits`, in the order a client would fix
    /// them: the model, the messages, then the parameters.
    pub(crate) fn validate(self, model: &ModelInfo, limits: &ApiLimits) -> Result<ChatPlan, ApiError> {
        if self.model != model.name {
            return Err(ApiError::ModelNotFound { model: self.model, param: Some("model") });
        }
        let messages = validate_messages(self.messages, limits.messages_max)?;
        reject_unsupported(&UnsupportedFields {
            functions: self.functions.as_ref(),
            function_call: self.function_call.as_ref(),
            store: self.store,
            modalities: self.modalities.as_ref(),
            audio: self.audio.as_ref(),
            prediction: self.prediction.as_ref(),
            web_search_options: self.web_search_options.as_ref(),
        })?;
        let choices = validate_choices(self.n, limits.choices_max)?;
        let max_tokens =
            validate_max_tokens(self.max_tokens, self.max_completion_tokens, limits.max_tokens_cap)?;
        let mut sampling =
            validate_sampling(self.temperature, self.top_p, self.top_k, self.seed, model.defaults)?;
        sampling.adjustments =
            validate_adjustments(self.presence_penalty, self.frequency_penalty, self.logit_bias)?;
        sampling.grammar = validate_response_format(self.response_format)?;
        let tools = ToolPlan::validate(self.tools, self.tool_choice, self.parallel_tool_calls)?;
        let messages = match &tools {
            Some(tools) => tools.render(messages),
            None => messages,
        };
        if let Some(forced) = tools.as_ref().and_then(ToolPlan::grammar) {
            if sampling.grammar.is_some() {
                return Err(ApiError::invalid(
                    "response_format",
                    "A `response_format` other than text cannot be combined with a `tool_choice` that forces a call.",
                ));
            }
            sampling.grammar = Some(forced);
        }
        let body_seed = self.seed.map(i64::cast_unsigned);
        let stop = validate_stop(self.stop)?;
        let top_logprobs = validate_logprobs(self.logprobs, self.top_logprobs)?;
        let stream = self.stream.unwrap_or(false);
        let include_usage =
            stream && self.stream_options.and_then(|options| options.include_usage).unwrap_or(false);
        Ok(ChatPlan {
            model: self.model,
            messages,
            sampling,
            body_seed,
            max_tokens,
            stop,
            top_logprobs,
            stream,
            include_usage,
            tools,
            choices,
        })
    }
}

fn validate_messages(messages: Vec<WireMessage>, messages_max: usize) -> Result<Vec<ChatMessage>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::invalid("messages", "`messages` must hold at least one message."));
    }
    if messages.len() > messages_max {
        return Err(ApiError::invalid(
            "messages",
            format!("`messages` holds {} messages; the limit is {messages_max}.", messages.len()),
        ));
    }
    messages.into_iter().enumerate().map(|(index, message)| validate_message(index, message)).collect()
}

fn validate_message(index: usize, message: WireMessage) -> Result<ChatMessage, ApiError> {
    let WireMessage { role, content, tool_calls } = message;
    if !ROLES.contains(&role.as_str()) {
        return Err(ApiError::invalid(
            format!("messages[{index}].role"),
            format!("Unsupported role `{role}`; expected one of {}.", ROLES.join(", ")),
        ));
    }
    let calls = match tool_calls {
        Some(calls) if !is_null_or_empty(&calls) => {
            if role != "assistant" {
                return Err(ApiError::invalid(
                    format!("messages[{index}].tool_calls"),
                    "Only assistant messages carry `tool_calls`.",
                ));
            }
            Some(super::tools::render_calls(index, &calls)?)
        }
        _ => None,
    };
    let content = match content {
        Some(content) => message_text(index, content)?,
        // An assistant turn that only called tools has no content.
        None if role == "assistant" => String::new(),
        None => {
            return Err(ApiError::invalid(
                format!("messages[{index}].content"),
                "Message content is required.",
            ));
        }
    };
    // The chat template knows `system`; OpenAI's `developer` role is its newer name.
    let role = if role == "developer" { "system".to_owned() } else { role };
    let content = match (role.as_str(), calls) {
        (_, Some(calls)) if content.is_empty() => calls,
        (_, Some(calls)) => format!("{content}\n{calls}"),
        ("tool", None) => super::tools::render_result(&content),
        _ => content,
    };
    Ok(ChatMessage { role, content })
}

/// Message content as one string: a string, or an array of `{"type": "text", "text": …}` parts joined
/// with newlines (as vLLM does). Images, audio, files and refusals are rejected.
fn message_text(index: usize, content: Value) -> Result<String, ApiError> {
    let param = || format!("messages[{index}].content");
    match content {
        Value::String(text) => Ok(text),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (part_index, part) in parts.iter().enumerate() {
                let kind = part.get("type").and_then(Value::as_str);
                match (kind, part.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(text)) => texts.push(text),
                    (Some("text"), None) => {
                        return Err(ApiError::invalid(
                            param(),
                            format!("Content part {part_index} of type `text` needs a string `text`."),
                        ));
                    }
                    (kind, _) => {
                        return Err(ApiError::invalid(
                            param(),
                            format!(
                                "Content part {part_index} has type {}; only `text` parts are supported.",
                                kind.map_or_else(|| "(missing)".to_owned(), |kind| format!("`{kind}`"))
                            ),
                        ));
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        _ => Err(ApiError::invalid(param(), "Content must be a string or an array of text parts.")),
    }
}

/// Fields OpenAI defines that this server accepts only at their defaults.
struct UnsupportedFields<'a> {
    functions: Option<&'a Value>,
    function_call: Option<&'a Value>,
    store: Option<bool>,
    modalities: Option<&'a Value>,
    audio: Option<&'a Value>,
    prediction: Option<&'a Value>,
    web_search_options: Option<&'a Value>,
}

fn reject_unsupported(fields: &UnsupportedFields<'_>) -> Result<(), ApiError> {
    let unsupported =
        |param: &str, what: &str| Err(ApiError::invalid(param, format!("{what} is not supported.")));
    let defaults_only = [
        ("functions", fields.functions, "Function calling"),
        ("audio", fields.audio, "Audio output"),
        ("prediction", fields.prediction, "Predicted output"),
        ("web_search_options", fields.web_search_options, "Web search"),
    ];
    for (param, value, what) in defaults_only {
        if value.is_some_and(|value| !is_null_or_empty(value)) {
            return unsupported(param, what);
        }
    }
    // With no functions, `none` and `auto` both mean "answer in text".
    if fields.function_call.is_some_and(|value| !value.is_null() && value != "none" && value != "auto") {
        return unsupported("function_call", "A `function_call` naming a function (use `tools`)");
    }
    if fields.store == Some(true) {
        return unsupported("store", "Storing completions");
    }
    if let Some(modalities) = fields.modalities
        && !modalities.is_null()
        && *modalities != serde_json::json!(["text"])
    {
        return unsupported("modalities", "An output modality other than `text`");
    }
    Ok(())
}

fn is_null_or_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        _ => false,
    }
}

/// `response_format`: `text` (or none) leaves the answer free; `json_object` constrains it to a JSON
/// object; `json_schema` to JSON matching `json_schema.schema` (any JSON when the schema is omitted),
/// enforced whether or not `strict` is set (`docs/spec/validation.md` §3.2). Whether the grammar engine
/// supports every keyword of the schema is the engine's check.
fn validate_response_format(format: Option<Value>) -> Result<Option<OutputGrammar>, ApiError> {
    let format = match format {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(format)) => format,
        Some(_) => return Err(ApiError::invalid("response_format", "`response_format` must be an object.")),
    };
    let kind = format.get("type").and_then(Value::as_str);
    match kind {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(OutputGrammar::JsonSchema(r#"{"type": "object"}"#.to_owned()))),
        Some("json_schema") => {
            let param = "response_format.json_schema";
            let Some(Value::Object(spec)) = format.get("json_schema") else {
                return Err(ApiError::invalid(
                    param,
                    "`json_schema` must be an object with `name` and `schema`.",
                ));
            };
            let name = spec.get("name").and_then(Value::as_str).unwrap_or_default();
            let name_ok = !name.is_empty()
                && name.len() <= SCHEMA_NAME_MAX
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !name_ok {
                return Err(ApiError::invalid(
                    "response_format.json_schema.name",
                    format!("`name` must be 1 to {SCHEMA_NAME_MAX} letters, digits, `_` or `-`."),
                ));
            }
            if spec.get("strict").is_some_and(|strict| !strict.is_boolean() && !strict.is_null()) {
                return Err(ApiError::invalid(
                    "response_format.json_schema.strict",
                    "`strict` must be a boolean.",
                ));
            }
            let schema = match spec.get("schema") {
                None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
                Some(schema @ (Value::Object(_) | Value::Bool(_))) => schema.clone(),
                Some(_) => {
                    return Err(ApiError::invalid(
                        "response_format.json_schema.schema",
                        "`schema` must be a JSON Schema object.",
                    ));
                }
            };
            let text = schema.to_string();
            if text.len() > SCHEMA_BYTES_MAX {
                return Err(ApiError::invalid(
                    "response_format.json_schema.schema",
                    format!("The schema is {} bytes; at most {SCHEMA_BYTES_MAX} are accepted.", text.len()),
                ));
            }
            Ok(Some(OutputGrammar::JsonSchema(text)))
        }
        _ => Err(ApiError::invalid(
            "response_format.type",
            "`response_format.type` must be `text`, `json_object` or `json_schema`.",
        )),
    }
}

/// `n`: 1 to `choices_max` answers, 1 when omitted.
pub(crate) fn validate_choices(n: Option<u64>, choices_max: usize) -> Result<usize, ApiError> {
    match n.map(usize::try_from) {
        None => Ok(1),
        Some(Ok(n)) if (1..=choices_max).contains(&n) => Ok(n),
        _ => Err(ApiError::invalid(
            "n",
            format!(
                "`n` is {}; this server answers 1 to {choices_max} choices per request.",
                n.unwrap_or_default()
            ),
        )),
    }
}

/// `max_completion_tokens` wins over the deprecated `max_tokens` when both are sent; the error names
/// whichever field was used.
pub(crate) fn validate_max_tokens(
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    max_tokens_cap: usize,
) -> Result<Option<usize>, ApiError> {
    let (param, requested) = match (max_completion_tokens, max_tokens) {
        (Some(requested), _) => ("max_completion_tokens", requested),
        (None, Some(requested)) => ("max_tokens", requested),
        (None, None) => return Ok(None),
    };
    if requested == 0 {
        return Err(ApiError::invalid(param, format!("`{param}` must be at least 1.")));
    }
    match usize::try_from(requested) {
        Ok(requested) if requested <= max_tokens_cap => Ok(Some(requested)),
        _ => Err(ApiError::invalid(
            param,
            format!(
                "`{param}` is {requested}; this server generates at most {max_tokens_cap} tokens per request."
            ),
        )),
    }
}

/// Temperature in `[0, 2]`; `top_p` in `[0, 1]`, where `0` means greedy (the limit of a shrinking
/// nucleus is the argmax, and OpenAI accepts `0`); either one omitted takes the model's recommended
/// value (`model_defaults`); `top_k` as sent; a signed `seed` reinterpreted as its two's-complement
/// `u64`, or a fresh random seed when absent (OpenAI's unseeded behaviour).
pub(crate) fn validate_sampling(
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u64>,
    seed: Option<i64>,
    model_defaults: GenerationDefaults,
) -> Result<SamplingParams, ApiError> {
    let defaults = SamplingParams {
        temperature: model_defaults.temperature,
        top_p: model_defaults.top_p,
        ..SamplingParams::default()
    };
    let mut temperature = match temperature {
        None => defaults.temperature,
        Some(value) if (0.0..=TEMPERATURE_MAX).contains(&value) => value as f32,
        Some(value) => {
            return Err(ApiError::invalid(
                "temperature",
                format!("`temperature` is {value}; it must be in [0, 2]."),
            ));
        }
    };
    let top_p = match top_p {
        None => defaults.top_p,
        Some(0.0) => {
            temperature = 0.0;
            1.0
        }
        Some(value) if (0.0..=1.0).contains(&value) => value as f32,
        Some(value) => {
            return Err(ApiError::invalid("top_p", format!("`top_p` is {value}; it must be in [0, 1].")));
        }
    };
    let top_k = match top_k.map(usize::try_from) {
        None => defaults.top_k,
        Some(Ok(top_k)) => top_k,
        Some(Err(_)) => return Err(ApiError::invalid("top_k", "`top_k` is too large.")),
    };
    let seed = seed.map_or_else(fresh_seed, i64::cast_unsigned);
    Ok(SamplingParams { temperature, top_p, top_k, seed, ..SamplingParams::default() })
}

/// `presence_penalty` and `frequency_penalty` in `[-2, 2]` (0 when omitted), and `logit_bias` as an
/// object of at most [`LOGIT_BIAS_MAX`] token ids (decimal strings) to biases in `[-100, 100]`; whether an
/// id is in the vocabulary is the engine's check.
pub(crate) fn validate_adjustments(
    presence_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    logit_bias: Option<Value>,
) -> Result<LogitAdjustments, ApiError> {
    let penalty = |param: &str, value: Option<f64>| match value {
        None => Ok(0.0),
        Some(value) if (-PENALTY_MAX..=PENALTY_MAX).contains(&value) => Ok(value as f32),
        Some(value) => Err(ApiError::invalid(param, format!("`{param}` is {value}; it must be in [-2, 2]."))),
    };
    let presence_penalty = penalty("presence_penalty", presence_penalty)?;
    let frequency_penalty = penalty("frequency_penalty", frequency_penalty)?;
    let biases = match logit_bias {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(biases)) => biases,
        Some(_) => {
            return Err(ApiError::invalid(
                "logit_bias",
                "`logit_bias` must be an object mapping token ids to biases.",
            ));
        }
    };
    if biases.len() > LOGIT_BIAS_MAX {
        return Err(ApiError::invalid(
            "logit_bias",
            format!("`logit_bias` biases {} tokens; the limit is {LOGIT_BIAS_MAX}.", biases.len()),
        ));
    }
    let mut logit_bias = BTreeMap::new();
    for (key, bias) in biases {
        let param = || format!("logit_bias.{key}");
        let id = key
            .parse::<u32>()
            .ok()
            .filter(|_| key.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| ApiError::invalid(param(), format!("`{key}` is not a token id.")))?;
        let bias = bias
            .as_f64()
            .filter(|bias| (-LOGIT_BIAS_LIMIT..=LOGIT_BIAS_LIMIT).contains(bias))
            .ok_or_else(|| {
                ApiError::invalid(param(), format!("The bias of token {id} must be a number in [-100, 100]."))
            })?;
        logit_bias.insert(id, bias as f32);
    }
    Ok(LogitAdjustments { presence_penalty, frequency_penalty, logit_bias: logit_bias.into_iter().collect() })
}

/// A seed for a request that sent none: std's per-instance random hasher keys over a process counter,
/// so no two unseeded requests share a stream.
fn fresh_seed() -> u64 {
    static UNSEEDED_REQUESTS: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(UNSEEDED_REQUESTS.fetch_add(1, Ordering::Relaxed))
}

/// `stop` as a string or an array of up to four non-empty strings; `null` and `[]` mean none.
pub(crate) fn validate_stop(stop: Option<Value>) -> Result<Vec<String>, ApiError> {
    let sequences = match stop {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(sequence)) => vec![sequence],
        Some(Value::Array(items)) => {
            if items.len() > STOP_SEQUENCES_MAX {
                return Err(ApiError::invalid(
                    "stop",
                    format!(
                        "`stop` holds {} sequences; at most {STOP_SEQUENCES_MAX} are allowed.",
                        items.len()
                    ),
                ));
            }
            items
                .into_iter()
                .map(|item| match item {
                    Value::String(sequence) => Ok(sequence),
                    _ => Err(ApiError::invalid("stop", "`stop` must be a string or an array of strings.")),
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(_) => return Err(ApiError::invalid("stop", "`stop` must be a string or an array of strings.")),
    };
    for sequence in &sequences {
        if sequence.is_empty() {
            return Err(ApiError::invalid("stop", "Stop sequences must not be empty."));
        }
        if sequence.len() > STOP_SEQUENCE_BYTES_MAX {
            return Err(ApiError::invalid(
                "stop",
                format!("Stop sequences must be at most {STOP_SEQUENCE_BYTES_MAX} bytes long."),
            ));
        }
    }
    Ok(sequences)
}

/// `logprobs: true` asks for the chosen token's logprob, `top_logprobs` for alternatives (needs
/// `logprobs: true`, at most 20).
fn validate_logprobs(logprobs: Option<bool>, top_logprobs: Option<u64>) -> Result<Option<usize>, ApiError> {
    let top = top_logprobs.unwrap_or(0);
    if top > TOP_LOGPROBS_MAX {
        return Err(ApiError::invalid(
            "top_logprobs",
            format!("`top_logprobs` is {top}; it must be in [0, {TOP_LOGPROBS_MAX}]."),
        ));
    }
    match logprobs {
        Some(true) => Ok(Some(usize::try_from(top).unwrap_or(0))),
        _ if top_logprobs.is_some() => {
            Err(ApiError::invalid("top_logprobs", "`top_logprobs` requires `logprobs` to be true."))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(body: &Value) -> Result<ChatPlan, ApiError> {
        plan_for(body, GenerationDefaults::OPENAI)
    }

    fn plan_for(body: &Value, defaults: GenerationDefaults) -> Result<ChatPlan, ApiError> {
        let bytes = serde_json::to_vec(body).expect("a JSON value encodes");
        let model = ModelInfo { name: "m".into(), content_hash: String::new(), context_length: 64, defaults };
        parse_body(&bytes)?.validate(&model, &ApiLimits::default())
    }

    #[test]
    fn omitted_sampling_parameters_take_the_models_recommended_ones() {
        let recommended = GenerationDefaults { temperature: 0.2, top_p: 0.9 };
        let hi = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let plan = plan_for(&hi, recommended).expect("valid request");
        assert_eq!((plan.sampling.temperature, plan.sampling.top_p), (0.2, 0.9));
        // What the request names wins, parameter by parameter.
        let mut named = hi.clone();
        named["temperature"] = serde_json::json!(1.0);
        let plan = plan_for(&named, recommended).expect("valid request");
        assert_eq!((plan.sampling.temperature, plan.sampling.top_p), (1.0, 0.9));
        let mut greedy = hi;
        greedy["temperature"] = serde_json::json!(0);
        let plan = plan_for(&greedy, recommended).expect("valid request");
        assert_eq!(plan.sampling.temperature, 0.0);
    }

    #[test]
    fn negative_seed_maps_to_its_twos_complement() {
        let plan = plan(
            &serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "seed": -1}),
        )
        .expect("valid request");
        assert_eq!(plan.sampling.seed, u64::MAX);
    }

    #[test]
    fn response_formats_become_grammars_keeping_the_schemas_property_order() {
        let grammar = |format: &str| {
            let body = format!(
                r#"{{"model": "m", "messages": [{{"role": "user", "content": "hi"}}], "response_format": {format}}}"#
            );
            let body: Value = serde_json::from_str(&body).expect("test JSON");
            plan(&body).expect("valid request").sampling.grammar
        };
        assert_eq!(grammar(r#"{"type": "text"}"#), None);
        assert_eq!(
            grammar(r#"{"type": "json_object"}"#),
            Some(OutputGrammar::JsonSchema(r#"{"type": "object"}"#.into()))
        );
        let schema =
            r#"{"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"integer"}}}"#;
        let format = format!(
            r#"{{"type": "json_schema", "json_schema": {{"name": "x", "strict": true, "schema": {schema}}}}}"#
        );
        assert_eq!(grammar(&format), Some(OutputGrammar::JsonSchema(schema.into())));
    }

    #[test]
    fn top_p_zero_is_greedy() {
        let plan = plan(
            &serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "top_p": 0}),
        )
        .expect("valid request");
        assert_eq!((plan.sampling.temperature, plan.sampling.top_p), (0.0, 1.0));
    }

    #[test]
    fn text_parts_join_with_newlines_and_developer_becomes_system() {
        let plan = plan(&serde_json::json!({"model": "m", "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
        ]}))
        .expect("valid request");
        assert_eq!(plan.messages, vec![ChatMessage { role: "system".into(), content: "a\nb".into() }]);
    }

    #[test]
    fn max_completion_tokens_wins_and_is_the_param_named() {
        let error = plan(&serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 5, "max_completion_tokens": 100000}))
        .expect_err("over the cap");
        assert_eq!(error.error_object().param.as_deref(), Some("max_completion_tokens"));
    }

    #[test]
    fn trailing_garbage_after_the_body_is_rejected() {
        let error = parse_body(br#"{"model": "m", "messages": []} x"#).expect_err("trailing characters");
        assert_eq!(error.status(), axum::http::StatusCode::BAD_REQUEST);
    }
}

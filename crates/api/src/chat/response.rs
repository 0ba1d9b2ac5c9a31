//! What a chat completion answers: the `chat.completion` object (async-openai's types) and the
//! `chat.completion.chunk` events of a stream (our own structs, see [`ChatCompletionChunk`]).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_openai::types::chat::{
    ChatChoice, ChatChoiceLogprobs, ChatCompletionMessageToolCall, ChatCompletionMessageToolCalls,
    ChatCompletionResponseMessage, ChatCompletionTokenLogprob, CompletionUsage, CreateChatCompletionResponse,
    FinishReason, FunctionCall, PromptTokensDetails, Role, TopLogprobs,
};
use gonka_engine_api::{PositionLogprobs, TokenLogprob, Usage};
use serde::Serialize;

use super::tools::Piece;

/// What every object of one completion repeats: its id, creation time and model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompletionHead {
    pub(crate) id: String,
    pub(crate) created: u32,
    pub(crate) model: String,
}

impl CompletionHead {
    /// A head with a fresh `chatcmpl-` id, stamped with the wall clock (the API edge is not consensus
    /// state, so a clock read is fine here).
    pub(crate) fn new(model: String) -> Self {
        Self::with_prefix("chatcmpl", model)
    }

    /// A head whose id starts `{kind}-` (`cmpl` for text completions).
    pub(crate) fn with_prefix(kind: &str, model: String) -> Self {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since_epoch| u32::try_from(since_epoch.as_secs()).unwrap_or(u32::MAX));
        Self { id: completion_id(kind), created, model }
    }
}

/// `{kind}-` followed by a random per-process prefix and a process-wide counter: unique within the
/// process and, with overwhelming likelihood, across restarts.
fn completion_id(kind: &str) -> String {
    static PROCESS_PREFIX: OnceLock<u64> = OnceLock::new();
    static COMPLETIONS: AtomicU64 = AtomicU64::new(0);
    let prefix = *PROCESS_PREFIX.get_or_init(|| {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(std::process::id())
    });
    format!("{kind}-{prefix:016x}{:08x}", COMPLETIONS.fetch_add(1, Ordering::Relaxed))
}

/// Token counts in OpenAI's shape; `total_tokens` is their sum.
pub(crate) fn completion_usage(usage: Usage) -> CompletionUsage {
    let count = |tokens: usize| u32::try_from(tokens).unwrap_or(u32::MAX);
    CompletionUsage {
        prompt_tokens: count(usage.prompt_tokens),
        completion_tokens: count(usage.completion_tokens),
        total_tokens: count(usage.prompt_tokens.saturating_add(usage.completion_tokens)),
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: Some(count(usage.cached_tokens)),
            audio_tokens: Some(0),
            ..PromptTokensDetails::default()
        }),
        completion_tokens_details: None,
    }
}

pub(crate) fn finish_reason(reason: gonka_engine_api::FinishReason) -> FinishReason {
    match reason {
        gonka_engine_api::FinishReason::Stop => FinishReason::Stop,
        gonka_engine_api::FinishReason::Length => FinishReason::Length,
    }
}

/// An answer that ended on its own after calling tools finished with `tool_calls`.
pub(crate) fn finish_reason_with_calls(reason: gonka_engine_api::FinishReason, called: bool) -> FinishReason {
    match reason {
        gonka_engine_api::FinishReason::Stop if called => FinishReason::ToolCalls,
        other => finish_reason(other),
    }
}

/// One position's logprobs in OpenAI's shape: the chosen token and its alternatives, best first.
pub(crate) fn token_logprob(position: PositionLogprobs) -> ChatCompletionTokenLogprob {
    let PositionLogprobs { chosen, top } = position;
    let top_logprobs = top
        .into_iter()
        .map(|alternative| TopLogprobs {
            token: alternative.text,
            logprob: alternative.logprob,
            bytes: Some(alternative.bytes),
        })
        .collect();
    let TokenLogprob { text, bytes, logprob, .. } = chosen;
    ChatCompletionTokenLogprob { token: text, logprob, bytes: Some(bytes), top_logprobs }
}

/// One tool call of an answer: id, function name, arguments (JSON text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CollectedCall {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) arguments: String,
}

/// The pieces of an answer with tools gathered into content and calls.
pub(crate) fn gather(pieces: Vec<Piece>) -> (String, Vec<CollectedCall>) {
    let mut content = String::new();
    let mut calls: Vec<CollectedCall> = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Content(text) => content.push_str(&text),
            Piece::CallStart { id, name, .. } => {
                calls.push(CollectedCall { id, name, arguments: String::new() });
            }
            Piece::CallArguments { index, fragment } => {
                if let Some(call) = calls.get_mut(index) {
                    call.arguments.push_str(&fragment);
                }
            }
        }
    }
    (content, calls)
}

/// What a finished non-streaming generation collected.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Collected {
    pub(crate) content: String,
    /// Tool calls parsed from the answer (requests with tools only).
    pub(crate) calls: Vec<CollectedCall>,
    /// `Some` when the request asked for logprobs.
    pub(crate) logprobs: Option<Vec<ChatCompletionTokenLogprob>>,
    pub(crate) finish_reason: gonka_engine_api::FinishReason,
    pub(crate) usage: Usage,
}

/// The `chat.completion` object answering a non-streaming request: one choice per answer, and usage
/// counting the prompt once and every answer's tokens.
pub(crate) fn completion(head: CompletionHead, answers: Vec<Collected>) -> CreateChatCompletionResponse {
    let usage = total_usage(answers.iter().map(|answer| answer.usage));
    let choices = answers.into_iter().enumerate().map(|(index, answer)| choice(index, answer)).collect();
    CreateChatCompletionResponse {
        id: head.id,
        choices,
        created: head.created,
        model: head.model,
        object: "chat.completion".to_owned(),
        usage: Some(completion_usage(usage)),
        ..Default::default()
    }
}

/// The usage of a request's answers: the prompt once (they share it), every answer's completion.
pub(crate) fn total_usage(usages: impl IntoIterator<Item = Usage>) -> Usage {
    usages.into_iter().fold(Usage::default(), |total, usage| Usage {
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: total.completion_tokens + usage.completion_tokens,
        // The choices share one prefill: its cached part is the first's.
        cached_tokens: total.cached_tokens.max(usage.cached_tokens),
    })
}

fn choice(index: usize, collected: Collected) -> ChatChoice {
    let called = !collected.calls.is_empty();
    let tool_calls = called.then(|| {
        collected
            .calls
            .into_iter()
            .map(|call| {
                ChatCompletionMessageToolCalls::Function(ChatCompletionMessageToolCall {
                    id: call.id,
                    function: FunctionCall { name: call.name, arguments: call.arguments },
                })
            })
            .collect()
    });
    let content = collected.content;
    let message = ChatCompletionResponseMessage {
        content: (!called || !content.trim().is_empty()).then_some(content),
        tool_calls,
        role: Role::Assistant,
        ..Default::default()
    };
    ChatChoice {
        index: u32::try_from(index).unwrap_or(u32::MAX),
        message,
        finish_reason: Some(finish_reason_with_calls(collected.finish_reason, called)),
        logprobs: collected
            .logprobs
            .map(|content| ChatChoiceLogprobs { content: Some(content), refusal: None }),
    }
}

/// One `chat.completion.chunk` event.
///
/// Our own struct rather than async-openai's `CreateChatCompletionStreamResponse`, whose fields always
/// serialize: OpenAI sends an empty `delta: {}` with the finish reason, and a `usage` key only when
/// `stream_options.include_usage` is set (`null` until the last chunk). SDKs parse both shapes.
#[derive(Debug, Serialize)]
pub(crate) struct ChatCompletionChunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u32,
    model: &'a str,
    choices: Vec<ChunkChoice>,
    /// Absent without `include_usage`; `null` on every chunk but the last with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<CompletionUsage>>,
}

#[derive(Debug, Serialize)]
struct ChunkChoice {
    index: usize,
    delta: Delta,
    logprobs: Option<ChatChoiceLogprobs>,
    finish_reason: Option<FinishReason>,
}

#[derive(Debug, Default, Serialize)]
struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<ToolCallDelta>>,
}

/// A streamed tool call's part: its first chunk carries the id, type and name, later ones argument
/// fragments (as OpenAI streams them).
#[derive(Debug, Serialize)]
struct ToolCallDelta {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta,
}

#[derive(Debug, Serialize)]
struct FunctionDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<String>,
}

impl<'a> ChatCompletionChunk<'a> {
    fn new(head: &'a CompletionHead, include_usage: bool, choices: Vec<ChunkChoice>) -> Self {
        Self {
            id: &head.id,
            object: "chat.completion.chunk",
            created: head.created,
            model: &head.model,
            choices,
            usage: include_usage.then_some(None),
        }
    }

    /// The first chunk: the assistant role and empty content.
    pub(crate) fn role(head: &'a CompletionHead, include_usage: bool, index: usize) -> Self {
        let delta = Delta { role: Some(Role::Assistant), content: Some(String::new()), tool_calls: None };
        Self::new(
            head,
            include_usage,
            vec![ChunkChoice { index, delta, logprobs: None, finish_reason: None }],
        )
    }

    /// A chunk carrying one token's text (possibly empty while text is held back) and its logprobs.
    pub(crate) fn content(
        head: &'a CompletionHead,
        include_usage: bool,
        index: usize,
        text: String,
        logprobs: Option<PositionLogprobs>,
    ) -> Self {
        let logprobs = logprobs.map(|position| ChatChoiceLogprobs {
            content: Some(vec![token_logprob(position)]),
            refusal: None,
        });
        let delta = Delta { role: None, content: Some(text), tool_calls: None };
        Self::new(head, include_usage, vec![ChunkChoice { index, delta, logprobs, finish_reason: None }])
    }

    /// A chunk carrying the pieces of an answer with tools that one token completed (content and tool
    /// call parts), and the token's logprobs; `None` when there is nothing to send.
    pub(crate) fn pieces(
        head: &'a CompletionHead,
        include_usage: bool,
        index: usize,
        pieces: Vec<Piece>,
        logprobs: Option<PositionLogprobs>,
    ) -> Option<Self> {
        let mut content: Option<String> = None;
        let mut calls = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Content(text) => content.get_or_insert_with(String::new).push_str(&text),
                Piece::CallStart { index: call, id, name } => calls.push(ToolCallDelta {
                    index: call,
                    id: Some(id),
                    kind: Some("function"),
                    function: FunctionDelta { name: Some(name), arguments: Some(String::new()) },
                }),
                Piece::CallArguments { index: call, fragment } => calls.push(ToolCallDelta {
                    index: call,
                    id: None,
                    kind: None,
                    function: FunctionDelta { name: None, arguments: Some(fragment) },
                }),
            }
        }
        if content.is_none() && calls.is_empty() && logprobs.is_none() {
            return None;
        }
        let logprobs = logprobs.map(|position| ChatChoiceLogprobs {
            content: Some(vec![token_logprob(position)]),
            refusal: None,
        });
        let delta = Delta { role: None, content, tool_calls: (!calls.is_empty()).then_some(calls) };
        Some(Self::new(
            head,
            include_usage,
            vec![ChunkChoice { index, delta, logprobs, finish_reason: None }],
        ))
    }

    /// The chunk ending the choice: an empty delta and the finish reason.
    pub(crate) fn finish(
        head: &'a CompletionHead,
        include_usage: bool,
        index: usize,
        reason: gonka_engine_api::FinishReason,
        called: bool,
    ) -> Self {
        let choice = ChunkChoice {
            index,
            delta: Delta::default(),
            logprobs: None,
            finish_reason: Some(finish_reason_with_calls(reason, called)),
        };
        Self::new(head, include_usage, vec![choice])
    }

    /// The last chunk with `include_usage`: no choices, the request's token counts.
    pub(crate) fn usage(head: &'a CompletionHead, usage: Usage) -> Self {
        Self { usage: Some(Some(completion_usage(usage))), ..Self::new(head, true, Vec::new()) }
    }
}

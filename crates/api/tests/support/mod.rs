//! A scripted [`Generator`] and request helpers for driving the router without a socket.
// `pub` here means "shared with the test files"; nothing leaves the test crate.
#![allow(unreachable_pub)]
// Each test file uses part of it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use gonka_api::{ApiLimits, AppState};
use gonka_engine_api::{
    ChatMessage, EngineError, FinishReason, GenerationEvent, GenerationRequest, GenerationStream, Generator,
    ModelInfo, PositionLogprobs, TokenLogprob, Usage,
};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tower::ServiceExt;

/// The fake's model name.
pub const MODEL: &str = "fake-model";
/// The fake's context window.
pub const CONTEXT_LENGTH: usize = 4096;
/// What the fake reports as waiting and running, so `/health` and `/metrics` can be checked.
pub const QUEUE_DEPTH: usize = 3;
pub const ACTIVE_SEQUENCES: usize = 2;

/// The token texts a [`Mode::Script`] generation emits, in order. The third is empty: text the engine
/// holds back (say, a possible stop sequence), which a stream only sends when it carries logprobs.
pub const SCRIPT: [&str; 6] = ["Paris", " is", "", " the", " capital", "."];
/// `SCRIPT` concatenated.
pub const SCRIPT_TEXT: &str = "Paris is the capital.";

/// How the fake answers `submit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Emit `SCRIPT` (cut at `max_tokens`) and finish.
    Script,
    /// Refuse: the queue is full.
    Overloaded,
    /// Refuse: the prompt does not fit.
    ContextLengthExceeded,
    /// Emit two tokens, then fail inside the "model".
    FailMidway,
    /// Emit one token and never finish, keeping the sender until the receiver is dropped.
    Hang,
}

/// A scripted generator that records every request and keeps every sender, so a test can see what was
/// asked and whether the API dropped its receiver.
pub struct FakeGenerator {
    info: ModelInfo,
    mode: Mode,
    submitted: Mutex<Vec<GenerationRequest>>,
    senders: Mutex<Vec<mpsc::Sender<GenerationEvent>>>,
}

impl FakeGenerator {
    pub fn new(mode: Mode) -> Self {
        Self {
            info: ModelInfo {
                name: MODEL.to_owned(),
                content_hash: "ab".repeat(32),
                context_length: CONTEXT_LENGTH,
                defaults: gonka_engine_api::GenerationDefaults::OPENAI,
            },
            mode,
            submitted: Mutex::new(Vec::new()),
            senders: Mutex::new(Vec::new()),
        }
    }

    /// Requests that reached `submit`, in order.
    pub fn submitted(&self) -> MutexGuard<'_, Vec<GenerationRequest>> {
        self.submitted.lock().expect("fake lock is never poisoned")
    }

    /// Whether the receiver of the `index`th accepted generation has been dropped.
    pub fn receiver_dropped(&self, index: usize) -> bool {
        self.senders.lock().expect("fake lock is never poisoned")[index].is_closed()
    }

    fn send_script(&self, request: &GenerationRequest, sender: &mpsc::Sender<GenerationEvent>) {
        let emitted = request.max_tokens.min(SCRIPT.len());
        let emit = |event| sender.try_send(event).expect("channel sized for the script");
        let token_count = match self.mode {
            Mode::FailMidway => 2,
            Mode::Hang => 1,
            _ => emitted,
        };
        for (position, text) in SCRIPT.iter().take(token_count).enumerate() {
            emit(GenerationEvent::Token {
                id: u32::try_from(position).expect("small"),
                text: (*text).to_owned(),
                logprobs: request.top_logprobs.map(|top| position_logprobs(position, text, top)),
            });
        }
        match self.mode {
            Mode::FailMidway => emit(GenerationEvent::Failed(EngineError::Model("NaN in logits".to_owned()))),
            Mode::Hang => {}
            _ => emit(GenerationEvent::Finished {
                reason: if emitted < SCRIPT.len() { FinishReason::Length } else { FinishReason::Stop },
                usage: Usage {
                    prompt_tokens: request.prompt_tokens.len(),
                    completion_tokens: emitted,
                    cached_tokens: 0,
                },
            }),
        }
    }
}

/// Logprobs of the `position`th token: the chosen one is the most likely, alternatives fall by 1 nat.
fn position_logprobs(position: usize, text: &str, top: usize) -> PositionLogprobs {
    let chosen_logprob = -0.125 * (position as f32 + 1.0);
    let candidate = |rank: usize, text: String| TokenLogprob {
        id: u32::try_from(100 + rank).expect("small"),
        bytes: text.as_bytes().to_vec(),
        text,
        logprob: chosen_logprob - rank as f32,
    };
    PositionLogprobs {
        chosen: candidate(0, text.to_owned()),
        top: (0..top)
            .map(|rank| candidate(rank, if rank == 0 { text.to_owned() } else { format!("alt{rank}") }))
            .collect(),
    }
}

impl Generator for FakeGenerator {
    fn model_info(&self) -> &ModelInfo {
        &self.info
    }

    /// One token per message (its role marker) plus one per whitespace-separated word.
    fn render_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, EngineError> {
        Ok(messages
            .iter()
            .flat_map(|message| {
                std::iter::once(0).chain(
                    message
                        .content
                        .split_whitespace()
                        .map(|word| u32::try_from(word.len()).expect("short word")),
                )
            })
            .collect())
    }

    fn submit(&self, request: GenerationRequest) -> Result<GenerationStream, EngineError> {
        match self.mode {
            Mode::Overloaded => return Err(EngineError::Overloaded { queue_capacity: 4 }),
            Mode::ContextLengthExceeded => {
                return Err(EngineError::ContextLengthExceeded {
                    prompt_tokens: request.prompt_tokens.len(),
                    max_tokens: request.max_tokens,
                    context_length: 8,
                });
            }
            _ => {}
        }
        let (sender, receiver) = mpsc::channel(SCRIPT.len() + 1);
        self.send_script(&request, &sender);
        self.submitted().push(request);
        self.senders.lock().expect("fake lock is never poisoned").push(sender);
        Ok(receiver)
    }

    /// One token per whitespace-separated word, its id the word's length (as `render_chat`).
    fn tokenize(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        Ok(text.split_whitespace().map(|word| u32::try_from(word.len()).expect("short word")).collect())
    }

    fn token_bytes(&self, id: u32) -> Vec<u8> {
        format!("<{id}>").into_bytes()
    }

    /// Position `i` scores `prompt[i + 1]` at `-(i + 1)` nats, rank 2, behind token 99 at -0.25.
    fn score_prompt(&self, prompt: Vec<u32>, top_k: usize) -> gonka_engine_api::ScoreFuture {
        let positions = prompt
            .iter()
            .skip(1)
            .enumerate()
            .map(|(i, &token)| gonka_engine_api::ScoredPosition {
                token,
                logprob: -(i as f32 + 1.0),
                top: [(99, -0.25), (token, -(i as f32 + 1.0))].into_iter().take(top_k).collect(),
                rank: 2,
                replay: None,
            })
            .collect();
        Box::pin(std::future::ready(Ok(positions)))
    }

    fn queue_depth(&self) -> usize {
        QUEUE_DEPTH
    }

    fn active_sequences(&self) -> usize {
        ACTIVE_SEQUENCES
    }
}

/// A router over a fresh fake in `mode`, and the fake.
pub fn app(mode: Mode) -> (Router, Arc<FakeGenerator>) {
    app_with_limits(mode, ApiLimits::default())
}

pub fn app_with_limits(mode: Mode, limits: ApiLimits) -> (Router, Arc<FakeGenerator>) {
    let fake = Arc::new(FakeGenerator::new(mode));
    let router = gonka_api::app(AppState::new(Arc::clone(&fake) as Arc<dyn Generator>, limits));
    (router, fake)
}

/// A minimal valid request body, to extend per test.
pub fn chat_body() -> Value {
    serde_json::json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    })
}

/// Prompt tokens the fake renders for [`chat_body`]: one role marker and six words.
pub const CHAT_BODY_PROMPT_TOKENS: usize = 7;

pub fn request(
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    builder.body(body.into()).expect("valid request")
}

pub fn post_completion(body: &Value) -> Request<Body> {
    request(
        Method::POST,
        "/v1/completions",
        Some("application/json"),
        serde_json::to_vec(body).expect("encodes"),
    )
}

pub fn post_chat(body: &Value) -> Request<Body> {
    request(
        Method::POST,
        "/v1/chat/completions",
        Some("application/json"),
        serde_json::to_vec(body).expect("encodes"),
    )
}

/// A complete response: status, headers, body bytes.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!("body is not JSON ({error}): {}", String::from_utf8_lossy(&self.body))
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("UTF-8 body")
    }

    /// The `data:` payloads of an SSE body, in order.
    pub fn sse_data(&self) -> Vec<String> {
        self.text().lines().filter_map(|line| line.strip_prefix("data: ")).map(str::to_owned).collect()
    }
}

pub async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.expect("the router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.expect("body collects").to_bytes();
    Answer { status, headers, body }
}

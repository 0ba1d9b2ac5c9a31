//! Serve the OpenAI-compatible HTTP API: chat completions, text completions, models, health and
//! metrics.
//!
//! [`app`] builds the router without binding a socket, so tests drive it with `tower::ServiceExt::oneshot`
//! and the binary decides where to listen. Every request is bounded by [`ApiLimits`] before it reaches
//! the [`Generator`]; every failure leaves through [`ApiError`], the one place that shapes errors as
//! OpenAI's `{"error": {"message", "type", "param", "code"}}`.
//!
//! Where OpenAI leaves room, this server chooses:
//! - a full engine queue (`Overloaded`) is `429` with `Retry-After: 1`, a shut-down engine `503`;
//! - `top_p: 0` means greedy decoding; `seed` is any `i64`, read as its two's-complement `u64`;
//! - `max_completion_tokens` wins over `max_tokens`; without either, the default is lowered to what still
//!   fits the context window, while an explicit value that does not fit is `400 context_length_exceeded`;
//! - text content parts are joined with newlines; `developer` messages are rendered as `system`;
//! - fields OpenAI defines but this server does not implement (tools, penalties, JSON mode, …) are
//!   accepted at their defaults and rejected with `400` naming the field otherwise; unknown fields are
//!   ignored.
#![deny(missing_docs)]

mod chat;
mod completions;
mod error;
mod metrics;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use gonka_engine_api::Generator;

pub use chat::{RequestSummary, body_choices, body_seed, generation_request, summarize_request};
pub use error::{ApiError, ErrorObject};
pub use metrics::Metrics;

/// The OpenAI endpoint a request body is for. The body alone decides — one with a `prompt` and no
/// `messages` is a text completion — so what a developer signed (the body) fixes how every host reads
/// it: the transfer agent, the executor and the validators that replay it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/completions`.
    Completions,
}

impl Endpoint {
    /// The endpoint `body` is for (a body that is not a JSON object is a chat's, to be refused there).
    pub fn of(body: &[u8]) -> Endpoint {
        #[derive(serde::Deserialize)]
        struct Shape {
            messages: Option<serde::de::IgnoredAny>,
            prompt: Option<serde::de::IgnoredAny>,
        }
        match serde_json::from_slice::<Shape>(body) {
            Ok(Shape { messages: None, prompt: Some(_) }) => Endpoint::Completions,
            _ => Endpoint::Chat,
        }
    }

    /// Its path.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
        }
    }
}

/// Bounds on what one request may ask of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiLimits {
    /// Largest accepted request body; larger bodies get `413`.
    pub body_bytes_max: usize,
    /// Most chat messages in one request.
    pub messages_max: usize,
    /// Completion tokens generated when the request names neither `max_tokens` nor
    /// `max_completion_tokens` (lowered to what still fits the context window).
    pub max_tokens_default: usize,
    /// Largest `max_tokens` a request may ask for.
    pub max_tokens_cap: usize,
    /// Most answers one request may ask for (`n`); they share the prompt's prefill.
    pub choices_max: usize,
    /// Wall-clock budget of one chat completion, from arrival to the last token; `None` waits as long as
    /// the generation runs. When it passes, the generation is cancelled and the client gets `504` (or an
    /// error event, when streaming).
    pub request_timeout: Option<Duration>,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            body_bytes_max: 1024 * 1024,
            messages_max: 256,
            max_tokens_default: 256,
            max_tokens_cap: 2048,
            choices_max: 8,
            request_timeout: None,
        }
    }
}

/// What every handler shares: the generator it serves from, the limits it enforces, the metrics it
/// records.
#[derive(Clone)]
pub struct AppState {
    /// The engine (or any other [`Generator`]) behind the API.
    pub generator: Arc<dyn Generator>,
    /// Request bounds.
    pub limits: ApiLimits,
    /// Prometheus metrics exposed on `/metrics`.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// State serving `generator` under `limits`, with a fresh metrics registry.
    pub fn new(generator: Arc<dyn Generator>, limits: ApiLimits) -> Self {
        Self { generator, limits, metrics: Arc::new(Metrics::new()) }
    }
}

/// The HTTP API as a router: `POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models`, `GET /v1/models/{id}`,
/// `GET /health`, `GET /metrics`; anything else answers an OpenAI-shaped `404` or `405`.
pub fn app(state: AppState) -> Router {
    let body_bytes_max = state.limits.body_bytes_max;
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/models", get(routes::list_models))
        .route("/v1/models/{id}", get(routes::get_model))
        .route("/health", get(routes::health))
        .route("/metrics", get(routes::metrics))
        .fallback(routes::route_not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_bytes_max))
        .layer(axum::middleware::from_fn_with_state(state.clone(), routes::track_request))
        .with_state(state)
}

//! The API's one error type and the one place that maps errors to status codes and OpenAI's JSON shape.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gonka_engine_api::EngineError;
use serde::Serialize;

/// Seconds a client is told to wait (`Retry-After`) when the engine queue is full.
const OVERLOADED_RETRY_AFTER_SECONDS: u32 = 1;

/// Everything that can go wrong while answering a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or asks for something this server does not support.
    #[error("{message}")]
    InvalidRequest {
        /// The offending field as the API spells it (`temperature`, `messages[0].content`), if one.
        param: Option<String>,
        /// What is wrong, for a human.
        message: String,
    },
    /// `model` names a model this server does not serve.
    #[error("The model `{model}` does not exist or you do not have access to it.")]
    ModelNotFound {
        /// The requested model name.
        model: String,
        /// `Some("model")` when it came from a request body, `None` when from the URL.
        param: Option<&'static str>,
    },
    /// No route matches the path.
    #[error("Invalid URL ({method} {path})")]
    RouteNotFound {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
    /// The route exists but not for this method.
    #[error("Method {method} is not allowed for {path}")]
    MethodNotAllowed {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
    /// The body is larger than [`crate::ApiLimits::body_bytes_max`].
    #[error("The request body is larger than the limit of {body_bytes_max} bytes.")]
    BodyTooLarge {
        /// The configured limit.
        body_bytes_max: usize,
    },
    /// The body is not declared as JSON.
    #[error("Expected `Content-Type: application/json`, got `{}`.", content_type.as_deref().unwrap_or("(none)"))]
    UnsupportedMediaType {
        /// The `Content-Type` the request carried, if any.
        content_type: Option<String>,
    },
    /// The body could not be read off the connection.
    #[error("Failed to read the request body: {0}")]
    BodyUnreadable(String),
    /// The engine refused or failed the request.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The request ran past [`crate::ApiLimits::request_timeout`]; its generation was cancelled.
    #[error("The request did not finish within {0:?}; its generation was cancelled.")]
    Timeout(Duration),
    /// The engine closed a generation without its `Finished` or `Failed` event (a broken contract).
    #[error("The engine ended the generation without a result.")]
    GenerationAbandoned,
    /// The metrics registry could not be encoded.
    #[error("Failed to encode metrics.")]
    MetricsEncoding,
    /// A network request's signature is missing or does not match its requester.
    #[error("{0}")]
    Unauthorized(String),
    /// The requester has no account on chain.
    #[error("Account {0} does not exist on chain; fund it first.")]
    AccountNotFound(String),
    /// The requester cannot cover the escrow of this request.
    #[error(
        "Insufficient balance: {balance} ngonka available, {needed} ngonka needed for (prompt + max_tokens) × price."
    )]
    InsufficientBalance {
        /// Balance in ngonka.
        balance: u128,
        /// Escrow in ngonka.
        needed: u128,
    },
    /// The same signed request was seen before.
    #[error("This signed request was already submitted (replay).")]
    Replay,
    /// The transfer agent is at its capacity.
    #[error("Transfer agent capacity reached; retry, or send the request to another host ({0}).")]
    CapacityReached(String),
    /// The forwarding transfer agent has no collateral vouching for its requests at this executor.
    #[error("{0}")]
    Unvouched(String),
    /// The executor failed or could not be reached.
    #[error("The executor failed: {0}")]
    Upstream(String),
    /// The host cannot serve the request now.
    #[error("Service unavailable: {0}")]
    Unavailable(String),
    /// A chain object (block, transaction, inference…) does not exist or is no longer kept.
    #[error("{0}")]
    NotFound(String),
    /// The server failed in a way the client cannot fix (a store read error).
    #[error("Internal error: {0}")]
    Internal(String),
}

/// The body of OpenAI's error responses, under the `error` key; also sent as an SSE event when a stream
/// fails after its first byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorObject {
    /// Human-readable description.
    pub message: String,
    /// Error class: `invalid_request_error`, `rate_limit_exceeded` or `server_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The request field at fault, if one.
    pub param: Option<String>,
    /// Machine-readable code, if one (`model_not_found`, `context_length_exceeded`, …).
    pub code: Option<&'static str>,
}

/// `{"error": {...}}`: the whole body of an error response, and the data of a stream's error event.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorEnvelope {
    error: ErrorObject,
}

const INVALID_REQUEST: &str = "invalid_request_error";
const SERVER_ERROR: &str = "server_error";

impl ApiError {
    /// A `400` naming `param`.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidRequest { param: Some(param.into()), message: message.into() }
    }

    /// HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.classify().0
    }

    /// The OpenAI-shaped error body.
    pub fn error_object(&self) -> ErrorObject {
        let (_, kind, param, code) = self.classify();
        ErrorObject { message: self.to_string(), kind, param, code }
    }

    /// `{"error": {...}}` for this error.
    pub(crate) fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope { error: self.error_object() }
    }

    /// Status, `type`, `param` and `code` of each error: the single mapping the whole API uses.
    ///
    /// `Overloaded` is `429` with `Retry-After`: the queue bound is an admission limit the client should
    /// back off from and retry, which is what OpenAI SDKs do on `429`. `503` is kept for a host that is
    /// not serving at all (`ShutDown`), so load balancers and monitors can tell the two apart.
    fn classify(&self) -> (StatusCode, &'static str, Option<String>, Option<&'static str>) {
        match self {
            Self::InvalidRequest { param, .. } => {
                (StatusCode::BAD_REQUEST, INVALID_REQUEST, param.clone(), None)
            }
            Self::ModelNotFound { param, .. } => {
                (StatusCode::NOT_FOUND, INVALID_REQUEST, param.map(str::to_owned), Some("model_not_found"))
            }
            Self::RouteNotFound { .. } => (StatusCode::NOT_FOUND, INVALID_REQUEST, None, Some("unknown_url")),
            Self::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, INVALID_REQUEST, None, Some("method_not_allowed"))
            }
            Self::BodyTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, INVALID_REQUEST, None, Some("request_too_large"))
            }
            Self::UnsupportedMediaType { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, INVALID_REQUEST, None, Some("unsupported_media_type"))
            }
            Self::BodyUnreadable(_) => (StatusCode::BAD_REQUEST, INVALID_REQUEST, None, None),
            Self::Engine(error) => classify_engine(error),
            Self::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, SERVER_ERROR, None, Some("request_timeout")),
            Self::GenerationAbandoned | Self::MetricsEncoding => {
                (StatusCode::INTERNAL_SERVER_ERROR, SERVER_ERROR, None, None)
            }
            Self::Unauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                Some("Authorization".into()),
                Some("invalid_signature"),
            ),
            Self::AccountNotFound(_) => (
                StatusCode::NOT_FOUND,
                INVALID_REQUEST,
                Some("X-Requester-Address".into()),
                Some("account_not_found"),
            ),
            Self::InsufficientBalance { .. } => {
                (StatusCode::PAYMENT_REQUIRED, "insufficient_quota", None, Some("insufficient_balance"))
            }
            Self::Replay => (
                StatusCode::CONFLICT,
                INVALID_REQUEST,
                Some("Authorization".into()),
                Some("replayed_request"),
            ),
            Self::CapacityReached(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded", None, Some("transfer_agent_capacity"))
            }
            Self::Unvouched(_) => {
                (StatusCode::FORBIDDEN, INVALID_REQUEST, None, Some("transfer_agent_not_vouched"))
            }
            Self::Upstream(_) => (StatusCode::BAD_GATEWAY, SERVER_ERROR, None, Some("executor_failed")),
            Self::Unavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, SERVER_ERROR, None, Some("unavailable"))
            }
            Self::NotFound(_) => (StatusCode::NOT_FOUND, INVALID_REQUEST, None, Some("not_found")),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, SERVER_ERROR, None, Some("internal")),
        }
    }
}

fn classify_engine(error: &EngineError) -> (StatusCode, &'static str, Option<String>, Option<&'static str>) {
    match error {
        EngineError::ContextLengthExceeded { .. } => (
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            Some("messages".to_owned()),
            Some("context_length_exceeded"),
        ),
        EngineError::InvalidParameter { param, .. } => {
            (StatusCode::BAD_REQUEST, INVALID_REQUEST, Some((*param).to_owned()), None)
        }
        EngineError::Overloaded { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded", None, Some("engine_overloaded"))
        }
        EngineError::ShutDown => {
            (StatusCode::SERVICE_UNAVAILABLE, SERVER_ERROR, None, Some("engine_shut_down"))
        }
        EngineError::Model(_) => (StatusCode::INTERNAL_SERVER_ERROR, SERVER_ERROR, None, Some("model_error")),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, status = status.as_u16(), "api.request failed");
        }
        let mut response = (status, Json(self.envelope())).into_response();
        if matches!(self, Self::Engine(EngineError::Overloaded { .. }) | Self::CapacityReached(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(OVERLOADED_RETRY_AFTER_SECONDS));
        }
        response
    }
}

//! The transfer agent: the public `POST /v1/chat/completions` and `POST /v1/completions` of every host
//! (reference §4.3).
//!
//! Checks, cheapest first: body and fields (as the OpenAI API would), the developer's signature (401),
//! the requester's account (404), the time window (400), the model (404), the balance against the
//! escrow (402), replay (409), capacity (429). Then it draws the executor, records `StartInference`
//! and forwards the body unchanged; the answer streams back unchanged. If the executor cannot be
//! reached the client gets `502`; if it breaks mid-stream the stream ends with an OpenAI error event.
//! No ngonka moves unless the chain accepts the Start, and an unfinished Start is refunded at expiry.

use std::sync::Arc;

use super::outbound::RELAY_BYTES_MAX;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use gonka_api::{ApiError, Endpoint};
use gonka_chain::{BankError, InferenceError, InferenceMsg, TxError};
use gonka_host::admission::{Admission, RequestClaim, Role, admit, verify_developer};
use gonka_host::protocol::{
    HEADER_EXECUTOR, HEADER_INFERENCE_ID, HEADER_MAX_PRICE, HEADER_MAX_TOKENS, HEADER_REQUESTER,
    HEADER_TA_SIGNATURE, HEADER_TIMESTAMP, HEADER_TRANSFER_ADDRESS, encode_signature, forward_message,
};
use serde_json::json;

use super::auth::{SignedHeaders, refused, replayed};
use super::{InferenceService, executor};
use crate::mempool::MempoolError;

/// `POST /v1/chat/completions` as transfer agent.
pub(crate) async fn chat_completions(
    State(service): State<Arc<InferenceService>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match transfer(service, Endpoint::Chat, headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// `POST /v1/completions` as transfer agent.
pub(crate) async fn completions(
    State(service): State<Arc<InferenceService>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match transfer(service, Endpoint::Completions, headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// A body sent to the other endpoint's path is refused before anything is spent on it: the body alone
/// says how every host reads it ([`Endpoint::of`]).
fn check_endpoint(endpoint: Endpoint, body: &[u8]) -> Result<(), ApiError> {
    match (endpoint, Endpoint::of(body)) {
        (Endpoint::Chat, Endpoint::Completions) => Err(ApiError::invalid(
            "messages",
            "A chat completion needs `messages`; a body with a `prompt` goes to /v1/completions.",
        )),
        (Endpoint::Completions, Endpoint::Chat) => Err(ApiError::invalid(
            "prompt",
            "A text completion needs a `prompt` (and no `messages`); chats go to /v1/chat/completions.",
        )),
        _ => Ok(()),
    }
}

/// `GET /v1/models`: the models this network serves.
pub(crate) async fn list_models(State(service): State<Arc<InferenceService>>) -> Response {
    let models: Vec<_> = service.with_state(|s| {
        s.params()
            .inference
            .models
            .iter()
            .map(|m| json!({"id": m.name, "object": "model", "created": 0, "owned_by": "gonka", "content_hash": m.content_hash}))
            .collect()
    });
    axum::Json(json!({"object": "list", "data": models})).into_response()
}

pub(crate) fn body_or_error(
    body: Result<Bytes, BytesRejection>,
    body_bytes_max: usize,
) -> Result<Bytes, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge { body_bytes_max }
        } else {
            ApiError::BodyUnreadable(rejection.body_text())
        }
    })?;
    // JSON is UTF-8; the JSON parser lets invalid bytes through inside ignored fields, and a body
    // validators cannot store as the developer signed it would fail every validation of an honest
    // answer (`docs/spec/validation.md` §10).
    if std::str::from_utf8(&body).is_err() {
        return Err(ApiError::invalid("messages", "the request body must be UTF-8 JSON"));
    }
    Ok(body)
}

async fn transfer(
    service: Arc<InferenceService>,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_or_error(body, service.limits.body_bytes_max)?;
    check_endpoint(endpoint, &body)?;
    let own = service.account();
    let transfer_agent = match headers.get(HEADER_TRANSFER_ADDRESS).and_then(|v| v.to_str().ok()) {
        Some(named) => named
            .parse()
            .map_err(|e| ApiError::invalid("X-Transfer-Address", format!("not a gonka address: {e}")))?,
        None => own,
    };
    let signed = SignedHeaders::parse(&headers)?;
    // The developer signs the max_tokens it reserves (`X-Max-Tokens`): the body is judged with it as
    // the cap and default, exactly as the executor will generate.
    let signed_max_tokens = match headers.get(HEADER_MAX_TOKENS) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.parse::<u32>().ok())
                .ok_or_else(|| ApiError::invalid("X-Max-Tokens", "must be a positive integer"))?,
        ),
    };
    let mut claim = signed.claim(&body, transfer_agent);
    // Several answers (`n`) share what the developer reserves: each gets an even share
    // (docs/spec/inference.md §2.1).
    let choices = u32::try_from(gonka_api::body_choices(&body)).unwrap_or(1);
    // The developer's signature before anything is tokenized (issue 12, item 12): an unsigned or
    // forged body costs this host a hash and a key recovery, not a tokenizer pass. The max_tokens
    // signed is X-Max-Tokens, else the body's, else the default (docs/spec/inference.md §2).
    // A body that does not parse gets the API's own 400 below (parsing is cheap; tokenizing is not).
    if let Some(peeked) = peek_request(&body) {
        let precheck = RequestClaim {
            model: peeked.model,
            max_tokens: signed_max_tokens
                .unwrap_or(peeked.max_tokens.unwrap_or(MAX_TOKENS_SIGNED_DEFAULT).saturating_mul(choices)),
            ..claim.clone()
        };
        service.with_state(|s| verify_developer(s, &precheck)).map_err(refused)?;
    }
    let limits = match signed_max_tokens {
        Some(max) => {
            let split = executor::choice_limits(&service.limits, max, &body);
            gonka_api::ApiLimits {
                max_tokens_cap: split.max_tokens_cap.min(service.limits.max_tokens_cap),
                ..split
            }
        }
        None => service.limits.clone(),
    };
    let summary = gonka_api::summarize_request(&headers, &body, &*service.engine, &limits)?;
    claim.model = summary.model.clone();
    claim.prompt_tokens = u32::try_from(summary.prompt_tokens).unwrap_or(u32::MAX);
    claim.max_tokens = signed_max_tokens
        .unwrap_or(u32::try_from(summary.max_tokens).unwrap_or(u32::MAX).saturating_mul(choices));
    let admission = service.with_state(|s| admit(s, own, &Role::TransferAgent, &claim)).map_err(refused)?;
    // Before anything moves: an executor URL this TA must not call (issue 12, item 11).
    if admission.executor != own {
        super::outbound::check_url(&admission.executor_url, service.allow_private_executors)
            .map_err(ApiError::Upstream)?;
    }
    // A slot first: a busy host's 429 must not leave the request marked as seen.
    let permit = service
        .ta_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::CapacityReached("every forwarding slot of this host is busy".into()))?;
    service
        .lock_ta_seen()
        .admit(admission.id, claim.timestamp_ns / 1_000_000, admission.replay_forget_before_ms)
        .map_err(replayed)?;
    let start = InferenceMsg::Start {
        request: admission.request,
        executor: admission.executor,
        prompt_tokens: claim.prompt_tokens,
    };
    if let Err(error) = service.submit_receipt(start) {
        // Nothing reached the chain: the same signed request may be sent again.
        service.lock_ta_seen().forget(&admission.id);
        return Err(start_refused(&error));
    }
    tracing::debug!(id = %admission.id, executor = %admission.executor, "inference started");
    let mut response = if admission.executor == own {
        // Its own executor: it vouches to itself (a shortfall comes out of its own collateral).
        let chain_id = service.with_state(|s| s.meta.chain_id.clone());
        let message = forward_message(&chain_id, &admission.id, &own, admission.request.max_tokens);
        let ta_signature = service.signer.key().sign_recoverable(&message);
        let response = executor::execute(service, admission.request, ta_signature, &headers, body).await?;
        hold_until_done(response, permit)
    } else {
        forward(&service, &admission, &headers, body, summary.stream, permit).await?
    };
    for (name, value) in
        [(HEADER_INFERENCE_ID, admission.id.to_string()), (HEADER_EXECUTOR, admission.executor.to_string())]
    {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

/// Sends the request to the executor with the TA's signature and relays the answer.
async fn forward(
    service: &InferenceService,
    admission: &Admission,
    headers: &HeaderMap,
    body: Bytes,
    stream: bool,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<Response, ApiError> {
    let request = &admission.request;
    let chain_id = service.with_state(|s| s.meta.chain_id.clone());
    let message = forward_message(&chain_id, &admission.id, &admission.executor, request.max_tokens);
    let signature = service.signer.key().sign_recoverable(&message);
    let mut outgoing = service
        .http
        .post(format!("{}/v1/executor/chat/completions", admission.executor_url))
        .header(HEADER_REQUESTER, request.requester.to_string())
        .header(HEADER_TIMESTAMP, request.timestamp_ns.to_string())
        .header(HEADER_TRANSFER_ADDRESS, service.account().to_string())
        .header(HEADER_TA_SIGNATURE, encode_signature(&signature))
        .header(HEADER_MAX_TOKENS, request.max_tokens.to_string())
        .header(HEADER_MAX_PRICE, request.max_price_per_token.0.to_string())
        .body(body);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(value) = headers.get(&name) {
            outgoing = outgoing.header(name, value);
        }
    }
    let upstream = outgoing
        .send()
        .await
        .map_err(|e| ApiError::Upstream(format!("executor {}: {e}", admission.executor)))?;
    relay(upstream, stream, permit).await
}

/// The `max_tokens` a developer signs when neither `X-Max-Tokens` nor the body names one.
const MAX_TOKENS_SIGNED_DEFAULT: u32 = 256;

/// The model and the asked-for completion length of a body, read without tokenizing it.
struct Peeked {
    model: String,
    max_tokens: Option<u32>,
}

fn peek_request(body: &[u8]) -> Option<Peeked> {
    #[derive(serde::Deserialize)]
    struct Fields {
        model: String,
        max_tokens: Option<u64>,
        max_completion_tokens: Option<u64>,
    }
    let fields: Fields = serde_json::from_slice(body).ok()?;
    // A text completion knows only `max_tokens`.
    let asked = match Endpoint::of(body) {
        Endpoint::Chat => fields.max_completion_tokens.or(fields.max_tokens),
        Endpoint::Completions => fields.max_tokens,
    };
    Some(Peeked { model: fields.model, max_tokens: asked.map(|n| u32::try_from(n).unwrap_or(u32::MAX)) })
}

/// The chain's refusal of the Start, as the client should see it.
fn start_refused(error: &anyhow::Error) -> ApiError {
    match error.downcast_ref::<MempoolError>() {
        Some(MempoolError::Check(TxError::Inference(InferenceError::CannotPay { balance, needed })))
        | Some(MempoolError::Check(TxError::Bank(BankError::InsufficientFunds { balance, needed }))) => {
            ApiError::InsufficientBalance { balance: balance.0, needed: needed.0 }
        }
        // Another request of the same developer waiting in the mempool already holds that balance.
        Some(MempoolError::Overdrawn { balance, pending, needed, .. }) => {
            ApiError::InsufficientBalance { balance: balance.0.saturating_sub(pending.0), needed: needed.0 }
        }
        Some(MempoolError::Check(TxError::Inference(InferenceError::Duplicate(_)))) => ApiError::Replay,
        Some(MempoolError::Check(TxError::Inference(InferenceError::StaleTimestamp { .. }))) => {
            ApiError::invalid("X-Timestamp", error.to_string())
        }
        Some(MempoolError::Full(_)) => ApiError::CapacityReached(error.to_string()),
        _ => ApiError::Unavailable(format!("the chain refused the StartInference: {error}")),
    }
}

/// Streams the executor's answer back unchanged, keeping the forwarding slot until it ends. A JSON
/// answer is read whole first, so a broken one becomes a clean `502`; a stream that breaks ends with an
/// OpenAI error event, which SDKs raise.
async fn relay(
    upstream: reqwest::Response,
    stream: bool,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<Response, ApiError> {
    let status = StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    if status.is_redirection() {
        // Never followed (outbound.rs), never relayed: a redirect could point the client anywhere.
        return Err(ApiError::Upstream(format!("the executor answered a redirect ({status})")));
    }
    let content_type = upstream.headers().get(reqwest::header::CONTENT_TYPE).cloned();
    let mut response = if stream && status.is_success() {
        let chunks = upstream.bytes_stream();
        let state = (Some(chunks), Some(permit), 0usize);
        let body = futures::stream::unfold(state, |(chunks, permit, relayed)| async move {
            let mut chunks = chunks?;
            let broken = |message: String| {
                let data = json!({"error": ApiError::Upstream(message).error_object()});
                Some((Ok(Bytes::from(format!("data: {data}\n\n"))), (None, None, relayed)))
            };
            match chunks.next().await {
                Some(Ok(bytes)) if relayed + bytes.len() > RELAY_BYTES_MAX => {
                    broken(format!("the executor's stream passed {RELAY_BYTES_MAX} bytes"))
                }
                Some(Ok(bytes)) => {
                    let relayed = relayed + bytes.len();
                    Some((Ok::<_, std::io::Error>(bytes), (Some(chunks), permit, relayed)))
                }
                Some(Err(error)) => broken(format!("the executor's stream broke: {error}")),
                None => None,
            }
        });
        Response::new(Body::from_stream(body))
    } else {
        // Read whole (so a broken answer becomes a clean 502), but never more than the bound.
        if upstream.content_length().is_some_and(|n| n > RELAY_BYTES_MAX as u64) {
            return Err(ApiError::Upstream(format!("the executor's answer is over {RELAY_BYTES_MAX} bytes")));
        }
        let mut chunks = upstream.bytes_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| ApiError::Upstream(format!("the executor's answer broke: {e}")))?;
            if bytes.len() + chunk.len() > RELAY_BYTES_MAX {
                return Err(ApiError::Upstream(format!(
                    "the executor's answer is over {RELAY_BYTES_MAX} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        drop(permit);
        Response::new(Body::from(bytes))
    };
    *response.status_mut() = status;
    if let Some(value) = content_type.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    Ok(response)
}

/// Keeps the forwarding slot until a locally executed answer has been sent.
fn hold_until_done(response: Response, permit: tokio::sync::OwnedSemaphorePermit) -> Response {
    let (parts, body) = response.into_parts();
    // The permit lives inside the stream and is released when the stream is dropped.
    let stream = body.into_data_stream().map(move |chunk| {
        let _slot = &permit;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

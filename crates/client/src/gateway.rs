//! `gonka gateway`: a local OpenAI-compatible endpoint that signs every request with a developer key
//! and sends it to a host (its transfer agent), so unmodified OpenAI SDKs — any `api_key`, `base_url`
//! pointed here — use the network. The answer comes back unchanged, streamed or not.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use gonka_api::ApiError;
use gonka_host::protocol::{HEADER_EXECUTOR, HEADER_INFERENCE_ID};
use gonka_primitives::{AccountKey, Address, Amount, Hash};

use crate::rest::NodeClient;
use crate::signing::{RequestChoice, body_choice, now_ns, price_bound, signed_headers};

/// Largest request body the gateway forwards.
const BODY_BYTES_MAX: usize = 4 << 20;

/// A gateway bound to one developer key and one transfer agent.
pub struct Gateway {
    key: AccountKey,
    node: String,
    chain_id: String,
    transfer_agent: Address,
    /// Model names to content hashes, as the network last listed them.
    models: Mutex<BTreeMap<String, Hash>>,
    http: reqwest::Client,
}

impl Gateway {
    /// Connects to the host at `node` (its REST/API base URL) and learns its host address.
    pub async fn connect(key: AccountKey, node: &str) -> anyhow::Result<Gateway> {
        let node = node.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build()?;
        let status = NodeClient::new(&node).status().await?;
        let transfer_agent =
            status.host_address.context("the node has no host address (it does not serve inference)")?;
        let gateway = Gateway {
            key,
            node,
            chain_id: status.chain.chain_id,
            transfer_agent,
            models: Mutex::new(BTreeMap::new()),
            http,
        };
        gateway.refresh_models().await?;
        Ok(gateway)
    }

    /// Reloads the served models and their content hashes from the node's `/params`.
    async fn refresh_models(&self) -> anyhow::Result<()> {
        let params = NodeClient::new(&self.node).params().await?;
        let models = params.inference.models.into_iter().map(|m| (m.name, m.content_hash)).collect();
        *self.models.lock().unwrap_or_else(|p| p.into_inner()) = models;
        Ok(())
    }

    /// The content hash of the model called `name`, reloading the list once if it is not known.
    async fn model_hash(&self, name: &str) -> Option<Hash> {
        let known =
            |gateway: &Gateway| gateway.models.lock().unwrap_or_else(|p| p.into_inner()).get(name).copied();
        if let Some(hash) = known(self) {
            return Some(hash);
        }
        self.refresh_models().await.ok()?;
        known(self)
    }

    /// The developer account paying for requests.
    pub fn account(&self) -> Address {
        self.key.address()
    }

    /// The host the gateway sends to.
    pub fn transfer_agent(&self) -> Address {
        self.transfer_agent
    }

    /// Signs `body` now and posts it to the transfer agent's `endpoint`.
    pub async fn send(
        &self,
        endpoint: gonka_api::Endpoint,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<reqwest::Response, ApiError> {
        let mut request = self.http.post(format!("{}{}", self.node, endpoint.path()));
        // The developer signs the model and max_tokens the body asks for; a body that names no model
        // (or an unknown one) is signed for the zero hash and the TA answers it with the API's error.
        let (model, max_tokens, name) = match body_choice(&body) {
            Some((name, max_tokens)) => {
                (self.model_hash(&name).await.unwrap_or(Hash::ZERO), max_tokens, name)
            }
            None => (Hash::ZERO, crate::signing::MAX_TOKENS_DEFAULT, String::new()),
        };
        // The developer signs the most it pays per token: the model's price now with headroom for the
        // blocks until the receipt (`docs/spec/economy.md` §7). An unknown model signs 0 and gets the
        // TA's 404.
        let max_price_per_token = if model == Hash::ZERO {
            Amount::ZERO
        } else {
            let price = NodeClient::new(&self.node)
                .price(&name)
                .await
                .map_err(|e| ApiError::Upstream(format!("cannot read the price of {name}: {e}")))?;
            price_bound(price.price_per_token)
        };
        let choice = RequestChoice {
            chain_id: &self.chain_id,
            transfer_agent: self.transfer_agent,
            model,
            max_tokens,
            timestamp_ns: now_ns(),
            max_price_per_token,
        };
        for (name, value) in signed_headers(&self.key, &body, &choice) {
            request = request.header(name, value);
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/json"));
        request
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| ApiError::Upstream(format!("cannot reach the transfer agent {}: {e}", self.node)))
    }
}

/// The gateway's routes: `POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models`,
/// `GET /health`.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/health", get(|| async { Json(serde_json::json!({"status": "ok"})) }))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(gateway)
}

async fn chat_completions(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    sign_and_send(&gateway, gonka_api::Endpoint::Chat, headers, body).await
}

async fn completions(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    sign_and_send(&gateway, gonka_api::Endpoint::Completions, headers, body).await
}

async fn sign_and_send(
    gateway: &Gateway,
    endpoint: gonka_api::Endpoint,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return ApiError::BodyTooLarge { body_bytes_max: BODY_BYTES_MAX }.into_response();
        }
        Err(rejection) => return ApiError::BodyUnreadable(rejection.body_text()).into_response(),
    };
    match gateway.send(endpoint, &headers, body).await {
        Ok(upstream) => pass_through(upstream),
        Err(error) => error.into_response(),
    }
}

async fn models(State(gateway): State<Arc<Gateway>>) -> Response {
    match gateway.http.get(format!("{}/v1/models", gateway.node)).send().await {
        Ok(upstream) => pass_through(upstream),
        Err(error) => ApiError::Upstream(error.to_string()).into_response(),
    }
}

/// Response headers a client may rely on, passed through unchanged.
const KEPT_HEADERS: [&str; 4] = ["content-type", "retry-after", HEADER_INFERENCE_ID, HEADER_EXECUTOR];

/// The upstream response as it is: status, the [`KEPT_HEADERS`], body bytes as they arrive.
fn pass_through(upstream: reqwest::Response) -> Response {
    let status = StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let kept: Vec<(&str, HeaderValue)> = KEPT_HEADERS
        .into_iter()
        .filter_map(|name| {
            let value = upstream.headers().get(name)?;
            Some((name, HeaderValue::from_bytes(value.as_bytes()).ok()?))
        })
        .collect();
    let mut response = Response::new(Body::from_stream(upstream.bytes_stream()));
    *response.status_mut() = status;
    for (name, value) in kept {
        response.headers_mut().insert(name, value);
    }
    response
}

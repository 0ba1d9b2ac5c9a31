//! The small endpoints (models, health, metrics), the 404/405 fallbacks and the request-counting middleware.

use std::time::Instant;

use axum::Json;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderValue, Method, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::{ApiError, AppState};

/// Route label for requests no route matched; one value keeps the label set bounded.
const UNMATCHED_ROUTE: &str = "unmatched";

const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One entry of `GET /v1/models` (async-openai's `Model` type sits behind a feature this crate does not
/// enable, and the shape is four fields).
#[derive(Debug, Serialize)]
struct ModelObject {
    id: String,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

impl ModelObject {
    fn new(name: &str) -> Self {
        Self { id: name.to_owned(), object: "model", created: 0, owned_by: "gonka" }
    }
}

#[derive(Debug, Serialize)]
struct ModelList {
    object: &'static str,
    data: Vec<ModelObject>,
}

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    model: String,
    content_hash: String,
    queue_depth: usize,
    active_sequences: usize,
}

/// `GET /v1/models`: the one served model.
pub(crate) async fn list_models(State(state): State<AppState>) -> Json<impl Serialize> {
    let name = &state.generator.model_info().name;
    Json(ModelList { object: "list", data: vec![ModelObject::new(name)] })
}

/// `GET /v1/models/{id}`: the served model, or `404`.
pub(crate) async fn get_model(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<impl Serialize>, ApiError> {
    let name = &state.generator.model_info().name;
    if id == *name {
        Ok(Json(ModelObject::new(name)))
    } else {
        Err(ApiError::ModelNotFound { model: id, param: None })
    }
}

/// `GET /health`: always `200` while the process serves; reports the model and the engine's load.
pub(crate) async fn health(State(state): State<AppState>) -> Json<impl Serialize> {
    let generator = &state.generator;
    let info = generator.model_info();
    Json(Health {
        status: "ok",
        model: info.name.clone(),
        content_hash: info.content_hash.clone(),
        queue_depth: generator.queue_depth(),
        active_sequences: generator.active_sequences(),
    })
}

/// `GET /metrics`: Prometheus scrape in the OpenMetrics text format.
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let generator = &state.generator;
    let text = state
        .metrics
        .encode(generator.queue_depth(), generator.active_sequences())
        .map_err(|_| ApiError::MetricsEncoding)?;
    let mut response = text.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE));
    Ok(response)
}

/// Fallback for paths no route matches.
pub(crate) async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::RouteNotFound { method: method.to_string(), path: uri.path().to_owned() }
}

/// Fallback for a known path under a method it does not serve.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed { method: method.to_string(), path: uri.path().to_owned() }
}

/// Count every request by route template and status, and time it to its response head.
pub(crate) async fn track_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED_ROUTE.to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    state.metrics.observe_request(&route, response.status().as_u16(), started.elapsed());
    response
}

//! The node's REST API (JSON): status, blocks, transactions, accounts, participants, params, epoch,
//! transaction submission, and a server-sent-event stream of committed blocks.
//!
//! Errors are `{"error": {"message", "code"}}` with 400 for bad input, 404 for unknown objects and 503
//! when the mempool is full.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, State as AxumState};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use gonka_chain::{Block, Tx};
use gonka_consensus::ConsensusHandle;
use gonka_primitives::codec::decode_exact;
use gonka_primitives::{Address, Hash, ValidatorPublicKey};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

use crate::chain::Chain;
use crate::gossip::TxBatch;
use crate::mempool::MempoolError;

/// Largest request body (a gossip batch of 2,000 hex transactions fits).
const MAX_BODY_BYTES: usize = 64 << 20;
/// Most transactions in one batch submission.
const MAX_BATCH_TXS: usize = 10_000;

/// What the REST handlers share.
pub struct RestContext {
    /// The chain.
    pub chain: Arc<Chain>,
    /// Consensus status.
    pub consensus: ConsensusHandle,
    /// Queue of admitted client transactions to gossip.
    pub gossip: mpsc::Sender<Vec<u8>>,
    /// This node's consensus key.
    pub validator_key: ValidatorPublicKey,
    /// This node's name.
    pub moniker: String,
    /// What the host logic is doing.
    pub host: Arc<crate::host::HostStatus>,
    /// The host account this node acts for, if it has host keys.
    pub host_address: Option<Address>,
}

/// A REST error.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl std::fmt::Display) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, code: "invalid_request", message: message.to_string() }
    }

    fn not_found(message: impl std::fmt::Display) -> ApiError {
        ApiError { status: StatusCode::NOT_FOUND, code: "not_found", message: message.to_string() }
    }

    fn internal(message: impl std::fmt::Display) -> ApiError {
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code: "internal", message: message.to_string() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": {"message": self.message, "code": self.code}}))).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;
type Ctx = AxumState<Arc<RestContext>>;

/// The REST router.
pub fn router(context: Arc<RestContext>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/blocks/latest", get(latest_block))
        .route("/blocks/{height}", get(block))
        .route("/txs", post(submit_tx))
        .route("/txs/batch", post(submit_batch))
        .route("/txs/{hash}", get(tx))
        .route("/gossip/txs", post(gossip_batch))
        .route("/accounts/{address}", get(account))
        .route("/participants", get(participants))
        .route("/validators", get(validators))
        .route("/params", get(params))
        .route("/epoch", get(epoch))
        .route("/inferences/{id}", get(inference))
        .route("/poc", get(poc))
        .route("/poc/progress", get(poc_progress))
        .route("/poc/nonces/{address}", get(poc_nonces))
        .route("/metrics", get(metrics))
        .route("/events", get(events))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(context)
}

async fn status(AxumState(ctx): Ctx) -> ApiResult {
    let chain_view = ctx.chain.with_state(|s| {
        let epoch = &s.meta.params.epoch;
        let h = s.height();
        json!({
            "chain_id": s.meta.chain_id,
            "height": h,
            "app_hash": s.meta.app_hash,
            "last_block_hash": s.meta.last_block_hash,
            "time_ms": s.meta.time_ms,
            "epoch": epoch.poc_epoch_at(h),
            "effective_epoch": epoch.effective_epoch_at(h),
            "phase": epoch.phase_at(h).name(),
        })
    });
    let mut body = chain_view;
    body["moniker"] = json!(ctx.moniker);
    body["host_address"] = json!(ctx.host_address);
    body["validator_key"] = json!(ctx.validator_key);
    body["peers"] = json!(ctx.consensus.peers());
    body["consensus_height"] = json!(ctx.consensus.height());
    body["consensus_round"] = json!(ctx.consensus.round());
    body["mempool_txs"] = json!(ctx.chain.mempool_len());
    Ok(Json(body))
}

fn block_json(ctx: &RestContext, height: u64) -> ApiResult {
    let store = ctx.chain.store();
    let (bytes, certificate) = store
        .block(height)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no block at height {height}")))?;
    let block: Block = decode_exact(&bytes, usize::MAX).map_err(ApiError::internal)?;
    let results = store.results(height).map_err(ApiError::internal)?;
    let h = &block.header;
    Ok(Json(json!({
        "height": h.height,
        "hash": block.hash(),
        "header": {
            "chain_id": h.chain_id,
            "height": h.height,
            "time_ms": h.time_ms,
            "proposer": h.proposer,
            "previous_block_hash": h.previous_block_hash,
            "previous_app_hash": h.previous_app_hash,
            "txs_hash": h.txs_hash,
        },
        "app_hash": results.as_ref().map(|r| r.app_hash),
        "txs": results.as_ref().map(|r| r.txs.clone()).unwrap_or_default(),
        "events": results.map(|r| r.events).unwrap_or_default(),
        "certificate": hex::encode(certificate),
    })))
}

async fn latest_block(AxumState(ctx): Ctx) -> ApiResult {
    let height = ctx.chain.with_state(|s| s.height());
    block_json(&ctx, height)
}

async fn block(AxumState(ctx): Ctx, Path(height): Path<String>) -> ApiResult {
    let height: u64 = height
        .parse()
        .map_err(|_| ApiError::bad_request(format!("height must be a number, got {height:?}")))?;
    block_json(&ctx, height)
}

async fn tx(AxumState(ctx): Ctx, Path(hash): Path<String>) -> ApiResult {
    let hash = Hash::from_hex(&hash).ok_or_else(|| ApiError::bad_request("tx hash must be 64 hex digits"))?;
    let store = ctx.chain.store();
    let (height, index) = store
        .tx_location(&hash)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no committed tx {hash}")))?;
    let (bytes, _) = store
        .block(height)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal("indexed block missing"))?;
    let block: Block = decode_exact(&bytes, usize::MAX).map_err(ApiError::internal)?;
    let raw = block.txs.get(index as usize).ok_or_else(|| ApiError::internal("indexed tx missing"))?;
    let tx: Option<Tx> = decode_exact(&raw.0, usize::MAX).ok();
    let result =
        store.results(height).map_err(ApiError::internal)?.and_then(|r| r.txs.get(index as usize).cloned());
    Ok(Json(json!({
        "hash": hash,
        "height": height,
        "index": index,
        "result": result,
        "tx": tx.map(|t| json!({"body": t.body, "signature": hex::encode(t.signature.0)})),
    })))
}

fn submit_one(ctx: &RestContext, hex_tx: &str, gossip: bool) -> (StatusCode, Value) {
    let Ok(bytes) = hex::decode(hex_tx.trim()) else {
        return (StatusCode::BAD_REQUEST, json!({"accepted": false, "error": "tx must be hex"}));
    };
    let hash = Hash::digest(&bytes);
    match ctx.chain.submit(bytes.clone()) {
        Ok(_) => {
            if gossip {
                // A full gossip queue only delays the tx until this node proposes.
                let _ = ctx.gossip.try_send(bytes);
            }
            (StatusCode::OK, json!({"hash": hash, "accepted": true}))
        }
        Err(MempoolError::Full(reason)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"hash": hash, "accepted": false, "error": format!("mempool full: {reason}")}),
        ),
        Err(error) => {
            (StatusCode::BAD_REQUEST, json!({"hash": hash, "accepted": false, "error": error.to_string()}))
        }
    }
}

async fn submit_tx(
    AxumState(ctx): Ctx,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return ApiError::bad_request("body must be JSON {\"tx\": \"<hex>\"}").into_response();
    };
    let Some(hex_tx) = body.get("tx").and_then(Value::as_str) else {
        return ApiError::bad_request("missing string field `tx` (hex-encoded transaction)").into_response();
    };
    let (status, body) = submit_one(&ctx, hex_tx, true);
    (status, Json(body)).into_response()
}

fn submit_many(
    ctx: &RestContext,
    body: Result<Json<TxBatch>, axum::extract::rejection::JsonRejection>,
    gossip: bool,
) -> ApiResult {
    let Json(batch) =
        body.map_err(|_| ApiError::bad_request("body must be JSON {\"txs\": [\"<hex>\", ...]}"))?;
    if batch.txs.len() > MAX_BATCH_TXS {
        return Err(ApiError::bad_request(format!("at most {MAX_BATCH_TXS} txs per batch")));
    }
    let results: Vec<Value> = batch.txs.iter().map(|tx| submit_one(ctx, tx, gossip).1).collect();
    Ok(Json(json!({"results": results})))
}

async fn submit_batch(
    AxumState(ctx): Ctx,
    body: Result<Json<TxBatch>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    submit_many(&ctx, body, true)
}

async fn gossip_batch(
    AxumState(ctx): Ctx,
    body: Result<Json<TxBatch>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    submit_many(&ctx, body, false)
}

async fn account(AxumState(ctx): Ctx, Path(address): Path<String>) -> ApiResult {
    let address: Address = address.parse().map_err(ApiError::bad_request)?;
    Ok(Json(ctx.chain.with_state(|s| {
        let account = s.account(&address);
        json!({
            "address": address,
            "balance": account.balance.0.to_string(),
            "sequence": account.sequence,
            "developer": s.developers.contains_key(&address),
            "host": s.participants.get(&address),
        })
    })))
}

async fn participants(AxumState(ctx): Ctx) -> ApiResult {
    Ok(Json(ctx.chain.with_state(|s| {
        let list: Vec<Value> = s
            .participants
            .iter()
            .map(|(address, p)| {
                let mut v = json!(p);
                v["address"] = json!(address);
                v
            })
            .collect();
        json!({"participants": list})
    })))
}

async fn validators(AxumState(ctx): Ctx) -> ApiResult {
    Ok(Json(ctx.chain.with_state(|s| {
        let set: Vec<Value> =
            s.validator_set().iter().map(|(k, w)| json!({"validator_key": k, "voting_power": w})).collect();
        json!({"height": s.height() + 1, "validators": set})
    })))
}

async fn params(AxumState(ctx): Ctx) -> ApiResult {
    Ok(Json(ctx.chain.with_state(|s| json!(s.meta.params))))
}

async fn epoch(AxumState(ctx): Ctx) -> ApiResult {
    Ok(Json(ctx.chain.with_state(|s| {
        let p = &s.meta.params.epoch;
        let h = s.height();
        let index = p.poc_epoch_at(h);
        json!({
            "height": h,
            "epoch": index,
            "effective_epoch": p.effective_epoch_at(h),
            "phase": p.phase_at(h).name(),
            "stages": p.stages(index),
            "next_stages": p.stages(index + 1),
        })
    })))
}

async fn events(AxumState(ctx): Ctx) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = BroadcastStream::new(ctx.chain.subscribe()).map(|item| {
        Ok(match item {
            Ok(block) => SseEvent::default().event("block").json_data(&*block).unwrap_or_default(),
            // A subscriber that fell behind is told how many blocks it missed and can re-read them.
            Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(missed)) => {
                SseEvent::default().event("lagged").data(missed.to_string())
            }
        })
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn poc(AxumState(ctx): Ctx) -> ApiResult {
    Ok(Json(ctx.chain.with_state(|s| {
        let Some(stage) = s.poc_stage() else { return json!({"stage": null}) };
        let from = gonka_chain::ClaimKey { stage: stage.start_height, participant: Address([0; 20]) };
        let claims: Vec<Value> = s
            .poc_claims
            .range(from..)
            .take_while(|(k, _)| k.stage == stage.start_height)
            .map(|(k, claim)| {
                let votes: Vec<Value> = s
                    .poc_votes
                    .range(
                        gonka_chain::VoteKey { stage: k.stage, participant: k.participant, validator: Address([0; 20]) }..,
                    )
                    .take_while(|(v, _)| v.stage == k.stage && v.participant == k.participant)
                    .map(|(v, vote)| {
                        json!({"validator": v.validator, "sampled": vote.sampled, "mismatches": vote.mismatches,
                               "fraud": vote.fraud, "sample_seed": vote.sample_seed})
                    })
                    .collect();
                json!({"participant": k.participant, "nonces": claim.nonce_count,
                       "seed_committed": claim.seed_commitment.is_some(), "votes": votes})
            })
            .collect();
        let weights: Vec<Value> = s
            .participants
            .iter()
            .map(|(a, p)| json!({"participant": a, "poc_weight": p.poc_weight, "next_power": p.next_weight, "power": p.weight}))
            .collect();
        json!({"stage": stage, "stages": s.meta.params.epoch.stages(stage.epoch), "claims": claims, "weights": weights})
    })))
}

async fn poc_progress(AxumState(ctx): Ctx) -> ApiResult {
    Ok(Json(json!(ctx.host.progress())))
}

async fn poc_nonces(AxumState(ctx): Ctx, Path(address): Path<String>) -> ApiResult {
    let address: Address = address.parse().map_err(ApiError::bad_request)?;
    Ok(Json(ctx.chain.with_state(|s| {
        let Some(stage) = s.poc_stage() else { return json!({"stage": null, "nonces": []}) };
        let nonces: Vec<Value> = s
            .poc_claimed_nonces(stage.start_height, address)
            .into_iter()
            .map(|(nonce, distance)| json!({"nonce": nonce, "distance": distance}))
            .collect();
        json!({"stage": stage.start_height, "participant": address, "nonces": nonces})
    })))
}

/// Prometheus text: chain height and mempool, the host's PoC counters and sprint rate.
async fn metrics(AxumState(ctx): Ctx) -> Response {
    use std::fmt::Write;
    use std::sync::atomic::Ordering::Relaxed;
    let (height, validators) = ctx.chain.with_state(|s| (s.height(), s.validator_set().len()));
    let progress = ctx.host.progress();
    let counters = &ctx.host.counters;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    metric("gonka_chain_height", "gauge", "Height of the last committed block.", height.to_string());
    metric("gonka_chain_validators", "gauge", "Validators deciding the next height.", validators.to_string());
    metric(
        "gonka_mempool_txs",
        "gauge",
        "Transactions waiting in the mempool.",
        ctx.chain.mempool_len().to_string(),
    );
    metric(
        "gonka_poc_nonces_total",
        "counter",
        "PoC nonces computed.",
        counters.nonces.load(Relaxed).to_string(),
    );
    metric(
        "gonka_poc_valid_nonces_total",
        "counter",
        "Valid PoC nonces found.",
        counters.valid.load(Relaxed).to_string(),
    );
    metric(
        "gonka_poc_submitted_nonces_total",
        "counter",
        "Valid PoC nonces submitted in batches.",
        counters.submitted.load(Relaxed).to_string(),
    );
    metric(
        "gonka_poc_validations_total",
        "counter",
        "PoC verdicts submitted.",
        counters.validations.load(Relaxed).to_string(),
    );
    metric(
        "gonka_poc_sprint_nonces_per_second",
        "gauge",
        "Rate of the running or last sprint.",
        format!("{:.1}", progress.nonces_per_second),
    );
    metric(
        "gonka_poc_sprinting",
        "gauge",
        "1 while a sprint runs.",
        u8::from(progress.activity == "sprinting").to_string(),
    );
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

async fn inference(AxumState(ctx): Ctx, Path(id): Path<String>) -> ApiResult {
    let id = Hash::from_hex(&id).ok_or_else(|| ApiError::bad_request("an inference id is 64 hex digits"))?;
    ctx.chain
        .with_state(|s| s.inferences.get(&id).map(|i| json!(i)))
        .map(|mut body| {
            body["id"] = json!(id);
            Json(body)
        })
        .ok_or_else(|| ApiError::not_found(format!("no inference {id} (never seen, or pruned)")))
}

//! The node's REST API (JSON): status, genesis, blocks, transactions, accounts, hosts, params, epoch, PoC,
//! inference receipts, supply, transaction submission, `/metrics` and a server-sent-event stream of
//! committed blocks.
//!
//! Every answer is a typed view (`gonka_chain::views`, or [`NodeStatus`] here) so REST, `gonka query`
//! and the explorer read the same structs; every error is the API's one error type, the same
//! OpenAI-shaped `{"error": {"message", "type", "param", "code"}}` the inference API answers with.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State as AxumState};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use gonka_api::ApiError;
use gonka_chain::views::{self, BlockView, ChainStatus, SignedTxView, TxView};
use gonka_chain::{Block, Tx};
use gonka_consensus::ConsensusHandle;
use gonka_engine::Generator;
use gonka_primitives::codec::decode_exact;
use gonka_primitives::{Address, Hash, ValidatorPublicKey};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

use crate::chain::Chain;
use crate::gossip::{Outgoing, TxBatch};
use crate::mempool::MempoolError;
use crate::metrics::NodeMetrics;

/// Largest batch body (a gossip batch of 2,000 hex transactions fits).
const MAX_BODY_BYTES: usize = 64 << 20;
/// Largest `POST /txs` body: the largest transaction the params can allow (1 MiB), hex, in JSON.
const MAX_TX_BODY_BYTES: usize = (2 << 20) + 1024;
/// Most transactions in one batch submission (what gossip sends at most).
const MAX_BATCH_TXS: usize = 2_000;

/// Batches being verified, by the address they came from: one at a time per address, on a blocking
/// thread, so no peer can hold the async workers with signature checks (issue 12, item 12).
#[derive(Debug, Default)]
pub struct BatchGate {
    busy: std::sync::Mutex<std::collections::BTreeSet<std::net::IpAddr>>,
}

impl BatchGate {
    fn enter(self: &Arc<Self>, peer: std::net::IpAddr) -> Option<BatchTicket> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        busy.insert(peer).then(|| BatchTicket { gate: self.clone(), peer })
    }
}

/// A batch in verification; leaving frees the address.
struct BatchTicket {
    gate: Arc<BatchGate>,
    peer: std::net::IpAddr,
}

impl Drop for BatchTicket {
    fn drop(&mut self) {
        self.gate.busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.peer);
    }
}

/// What the REST handlers share.
pub struct RestContext {
    /// The chain.
    pub chain: Arc<Chain>,
    /// Batch verifications in progress per peer address.
    pub batches: Arc<BatchGate>,
    /// Consensus status.
    pub consensus: ConsensusHandle,
    /// Queue of newly admitted transactions to gossip.
    pub gossip: mpsc::Sender<Outgoing>,
    /// This node's consensus key.
    pub validator_key: ValidatorPublicKey,
    /// This node's name.
    pub moniker: String,
    /// Its consensus listen address.
    pub p2p_listen: std::net::SocketAddr,
    /// What the host logic is doing.
    pub host: Arc<crate::host::HostStatus>,
    /// What the host's answer validation is doing.
    pub validation: Arc<crate::inference::validator::ValidationStatus>,
    /// The host account this node acts for, if it has host keys.
    pub host_address: Option<Address>,
    /// The process's metrics.
    pub metrics: Arc<NodeMetrics>,
    /// The engine, when this node serves inference (its load is read at scrape time).
    pub engine: Option<Arc<dyn Generator>>,
    /// The chain's genesis and its hash, served to nodes that join (`GET /genesis`).
    pub genesis: Arc<GenesisView>,
}

/// `GET /status`: the chain's status and this node's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Where the chain is.
    #[serde(flatten)]
    pub chain: ChainStatus,
    /// This node's name.
    pub moniker: String,
    /// The host account it acts for.
    pub host_address: Option<Address>,
    /// Its consensus key.
    pub validator_key: ValidatorPublicKey,
    /// Connected consensus peers.
    pub peers: usize,
    /// The address consensus listens on (a joining node dials it, at this node's host when it is
    /// unspecified or loopback); absent from nodes older than issue 17.
    #[serde(default)]
    pub p2p_listen: Option<std::net::SocketAddr>,
    /// The height consensus works on.
    pub consensus_height: u64,
    /// Its round (−1 before the first).
    pub consensus_round: i64,
    /// Transactions waiting.
    pub mempool_txs: usize,
}

/// `GET /genesis`: the document every node of the chain started from, and its hash
/// ([`gonka_chain::Genesis::hash`]) for a joining operator to check against the one announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisView {
    /// The genesis' chain id (also inside it).
    pub chain_id: String,
    /// The app hash of the state at height 0.
    pub genesis_hash: Hash,
    /// The document.
    pub genesis: gonka_chain::Genesis,
}

/// The result of submitting one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitResult {
    /// Its hash (absent when the bytes were not hex).
    pub hash: Option<Hash>,
    /// Whether the mempool admitted it.
    pub accepted: bool,
    /// Why not.
    pub error: Option<String>,
}

/// The results of a batch submission, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResults {
    /// One per transaction.
    pub results: Vec<SubmitResult>,
}

/// `POST /txs` body.
#[derive(Debug, Deserialize)]
struct SubmitBody {
    tx: String,
}

type ApiResult<T> = Result<Json<T>, ApiError>;
type Ctx = AxumState<Arc<RestContext>>;

/// The REST router.
pub fn router(context: Arc<RestContext>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/genesis", get(genesis))
        .route("/blocks/latest", get(latest_block))
        .route("/blocks/{height}", get(block))
        .route("/txs", post(submit_tx).layer(DefaultBodyLimit::max(MAX_TX_BODY_BYTES)))
        .route("/txs/batch", post(submit_batch))
        .route("/txs/{hash}", get(tx))
        .route("/gossip/txs", post(gossip_batch))
        .route("/accounts/{address}", get(account))
        .route("/participants", get(participants))
        .route("/validators", get(validators))
        .route("/params", get(params))
        .route("/epoch", get(epoch))
        .route("/supply", get(supply))
        .route("/inferences/{id}", get(inference))
        .route("/poc", get(poc))
        .route("/poc/progress", get(poc_progress))
        .route("/validation/progress", get(validation_progress))
        .route("/participants/{address}", get(participant))
        .route("/rewards/{address}", get(rewards))
        .route("/collateral/{address}", get(collateral))
        .route("/prices", get(prices))
        .route("/price/{model}", get(price))
        .route("/poc/nonces/{address}", get(poc_nonces))
        .route("/metrics", get(metrics))
        .route("/events", get(events))
        .fallback(|method: axum::http::Method, uri: axum::http::Uri| async move {
            ApiError::RouteNotFound { method: method.to_string(), path: uri.path().to_string() }
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(context)
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(error.to_string())
}

fn parse_address(text: &str) -> Result<Address, ApiError> {
    text.parse().map_err(|e| ApiError::invalid("address", format!("not a gonka address: {e}")))
}

async fn status(AxumState(ctx): Ctx) -> ApiResult<NodeStatus> {
    Ok(Json(NodeStatus {
        chain: ctx.chain.with_state(views::chain_status),
        moniker: ctx.moniker.clone(),
        host_address: ctx.host_address,
        validator_key: ctx.validator_key,
        peers: ctx.consensus.peers(),
        p2p_listen: Some(ctx.p2p_listen),
        consensus_height: ctx.consensus.height(),
        consensus_round: ctx.consensus.round(),
        mempool_txs: ctx.chain.mempool_len(),
    }))
}

async fn genesis(AxumState(ctx): Ctx) -> ApiResult<GenesisView> {
    Ok(Json(GenesisView::clone(&ctx.genesis)))
}

fn block_view(ctx: &RestContext, height: u64) -> ApiResult<BlockView> {
    let store = ctx.chain.store();
    let (bytes, certificate) = store
        .block(height)
        .map_err(internal)?
        .ok_or_else(|| ApiError::NotFound(format!("no block at height {height}")))?;
    let block: Block = decode_exact(&bytes, usize::MAX).map_err(internal)?;
    let results = store.results(height).map_err(internal)?;
    Ok(Json(BlockView {
        height: block.header.height,
        hash: block.hash(),
        header: block.header,
        app_hash: results.as_ref().map(|r| r.app_hash),
        txs: results.as_ref().map(|r| r.txs.clone()).unwrap_or_default(),
        events: results.map(|r| r.events).unwrap_or_default(),
        certificate: hex::encode(certificate),
    }))
}

async fn latest_block(AxumState(ctx): Ctx) -> ApiResult<BlockView> {
    let height = ctx.chain.with_state(|s| s.height());
    block_view(&ctx, height)
}

async fn block(AxumState(ctx): Ctx, Path(height): Path<String>) -> ApiResult<BlockView> {
    let height: u64 = height
        .parse()
        .map_err(|_| ApiError::invalid("height", format!("height must be a number, got {height:?}")))?;
    block_view(&ctx, height)
}

async fn tx(AxumState(ctx): Ctx, Path(hash): Path<String>) -> ApiResult<TxView> {
    let hash =
        Hash::from_hex(&hash).ok_or_else(|| ApiError::invalid("hash", "tx hash must be 64 hex digits"))?;
    let store = ctx.chain.store();
    let (height, index) = store
        .tx_location(&hash)
        .map_err(internal)?
        .ok_or_else(|| ApiError::NotFound(format!("no committed tx {hash}")))?;
    let (bytes, _) =
        store.block(height).map_err(internal)?.ok_or_else(|| internal("indexed block missing"))?;
    let block: Block = decode_exact(&bytes, usize::MAX).map_err(internal)?;
    let raw = block.txs.get(index as usize).ok_or_else(|| internal("indexed tx missing"))?;
    let tx: Option<Tx> = decode_exact(&raw.0, usize::MAX).ok();
    let result = store.results(height).map_err(internal)?.and_then(|r| r.txs.get(index as usize).cloned());
    Ok(Json(TxView {
        hash,
        height,
        index,
        result,
        tx: tx.map(|t| SignedTxView { body: t.body, signature: hex::encode(t.signature.0) }),
    }))
}

/// Where a submitted transaction came from.
#[derive(Clone)]
enum Origin {
    /// A client: this node offers it again while it waits.
    Client,
    /// A peer's gossip, with the peers its batch said it already reaches.
    Peer(Arc<std::collections::BTreeSet<String>>),
}

fn submit_one(ctx: &RestContext, hex_tx: &str, origin: &Origin) -> (StatusCode, SubmitResult) {
    let Ok(bytes) = hex::decode(hex_tx.trim()) else {
        return (
            StatusCode::BAD_REQUEST,
            SubmitResult { hash: None, accepted: false, error: Some("tx must be hex".into()) },
        );
    };
    let hash = Some(Hash::digest(&bytes));
    // Transactions from clients are this node's to offer again; gossiped ones are their origin's.
    let (admitted, covered) = match origin {
        Origin::Client => (ctx.chain.submit(bytes.clone()), Arc::default()),
        Origin::Peer(covered) => (ctx.chain.submit_from_peer(bytes.clone()), covered.clone()),
    };
    match admitted {
        Ok(_) => {
            // Admitted for the first time: on to the peers not yet covered (docs/spec/network.md §2).
            // A full gossip queue only delays the tx until this node proposes.
            let _ = ctx.gossip.try_send(Outgoing { tx: bytes, covered });
            (StatusCode::OK, SubmitResult { hash, accepted: true, error: None })
        }
        Err(MempoolError::Full(reason)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            SubmitResult { hash, accepted: false, error: Some(format!("mempool full: {reason}")) },
        ),
        Err(error) => {
            (StatusCode::BAD_REQUEST, SubmitResult { hash, accepted: false, error: Some(error.to_string()) })
        }
    }
}

async fn submit_tx(AxumState(ctx): Ctx, body: Result<Json<SubmitBody>, JsonRejection>) -> Response {
    let Ok(Json(body)) = body else {
        return ApiError::invalid("tx", "body must be JSON {\"tx\": \"<hex>\"}").into_response();
    };
    let (status, result) = submit_one(&ctx, &body.tx, &Origin::Client);
    (status, Json(result)).into_response()
}

/// Parses and admits a batch on a blocking thread, one batch at a time per peer address.
async fn submit_many(
    ctx: Arc<RestContext>,
    peer: std::net::SocketAddr,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    gossip: bool,
) -> ApiResult<BatchResults> {
    let body = body.map_err(|e| ApiError::invalid("txs", format!("unreadable body: {}", e.body_text())))?;
    let ticket = ctx.batches.enter(peer.ip()).ok_or_else(|| {
        ApiError::CapacityReached(format!("a batch from {} is already being verified", peer.ip()))
    })?;
    let verified = tokio::task::spawn_blocking(move || {
        let _ticket = ticket;
        let batch: TxBatch = serde_json::from_slice(&body)
            .map_err(|_| ApiError::invalid("txs", "body must be JSON {\"txs\": [\"<hex>\", ...]}"))?;
        if batch.txs.len() > MAX_BATCH_TXS {
            return Err(ApiError::invalid("txs", format!("at most {MAX_BATCH_TXS} txs per batch")));
        }
        let origin =
            if gossip { Origin::Peer(crate::gossip::covered_set(&batch.covered)) } else { Origin::Client };
        Ok(BatchResults { results: batch.txs.iter().map(|tx| submit_one(&ctx, tx, &origin).1).collect() })
    })
    .await
    .map_err(internal)??;
    Ok(Json(verified))
}

async fn submit_batch(
    AxumState(ctx): Ctx,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<BatchResults> {
    submit_many(ctx, peer, body, false).await
}

async fn gossip_batch(
    AxumState(ctx): Ctx,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<BatchResults> {
    submit_many(ctx, peer, body, true).await
}

async fn account(AxumState(ctx): Ctx, Path(address): Path<String>) -> ApiResult<views::AccountView> {
    let address = parse_address(&address)?;
    Ok(Json(ctx.chain.with_state(|s| views::account(s, &address))))
}

async fn participants(AxumState(ctx): Ctx) -> ApiResult<views::HostsView> {
    Ok(Json(ctx.chain.with_state(views::hosts)))
}

async fn validators(AxumState(ctx): Ctx) -> ApiResult<views::ValidatorsView> {
    Ok(Json(ctx.chain.with_state(views::validators)))
}

async fn params(AxumState(ctx): Ctx) -> ApiResult<gonka_chain::Params> {
    Ok(Json(ctx.chain.with_state(|s| s.params().clone())))
}

async fn epoch(AxumState(ctx): Ctx) -> ApiResult<views::EpochView> {
    Ok(Json(ctx.chain.with_state(views::epoch)))
}

async fn supply(AxumState(ctx): Ctx) -> ApiResult<views::SupplyView> {
    Ok(Json(ctx.chain.with_state(views::supply)))
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

async fn poc(AxumState(ctx): Ctx) -> ApiResult<views::PocView> {
    Ok(Json(ctx.chain.with_state(views::poc)))
}

async fn poc_progress(AxumState(ctx): Ctx) -> ApiResult<crate::host::PocProgress> {
    Ok(Json(ctx.host.progress()))
}

/// `GET /validation/progress`: this host's validation work (its planner) and its standing on chain.
async fn validation_progress(AxumState(ctx): Ctx) -> ApiResult<ValidationProgressView> {
    let standing = ctx.host_address.map(|a| ctx.chain.with_state(|s| views::standing(s, &a)));
    Ok(Json(ValidationProgressView { progress: ctx.validation.progress(), standing }))
}

/// `GET /validation/progress`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidationProgressView {
    /// What the planner did.
    #[serde(flatten)]
    pub progress: crate::inference::validator::ValidationProgress,
    /// This host's standing, when it is a host.
    pub standing: Option<views::StandingView>,
}

/// `GET /participants/{address}`: one host with its standing (reputation, status, counts).
async fn participant(AxumState(ctx): Ctx, Path(address): Path<String>) -> ApiResult<views::HostView> {
    let address: Address =
        address.parse().map_err(|e| ApiError::invalid("address", format!("not a gonka address: {e}")))?;
    ctx.chain
        .with_state(|s| views::host(s, &address))
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("{address} is not a registered host")))
}

async fn rewards(AxumState(ctx): Ctx, Path(address): Path<String>) -> ApiResult<views::RewardsView> {
    let address: Address =
        address.parse().map_err(|e| ApiError::invalid("address", format!("not a gonka address: {e}")))?;
    Ok(Json(ctx.chain.with_state(|s| views::rewards(s, &address))))
}

async fn prices(AxumState(ctx): Ctx) -> ApiResult<Vec<views::PriceView>> {
    Ok(Json(ctx.chain.with_state(views::prices)))
}

async fn price(AxumState(ctx): Ctx, Path(model): Path<String>) -> ApiResult<views::PriceView> {
    ctx.chain
        .with_state(|s| views::price(s, &model))
        .map(Json)
        .ok_or(ApiError::ModelNotFound { model, param: None })
}

async fn collateral(AxumState(ctx): Ctx, Path(address): Path<String>) -> ApiResult<views::CollateralView> {
    let address: Address =
        address.parse().map_err(|e| ApiError::invalid("address", format!("not a gonka address: {e}")))?;
    Ok(Json(ctx.chain.with_state(|s| views::collateral(s, &address))))
}

/// `?after=NONCE&limit=N` of `GET /poc/nonces/{address}`.
#[derive(Debug, Deserialize)]
struct PageQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

/// Nonces per page of `GET /poc/nonces/{address}` by default, and at most (issue 12, item 12: a
/// million-nonce claim is never built into one answer under the state lock).
const NONCES_PAGE_DEFAULT: usize = 1_000;
const NONCES_PAGE_MAX: usize = 10_000;

async fn poc_nonces(
    AxumState(ctx): Ctx,
    Path(address): Path<String>,
    query: Result<axum::extract::Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<views::PocNoncesView> {
    let address = parse_address(&address)?;
    let axum::extract::Query(page) =
        query.map_err(|e| ApiError::invalid("after", format!("after and limit are integers: {e}")))?;
    let limit = page.limit.unwrap_or(NONCES_PAGE_DEFAULT);
    if limit == 0 || limit > NONCES_PAGE_MAX {
        return Err(ApiError::invalid("limit", format!("limit is 1 to {NONCES_PAGE_MAX}")));
    }
    Ok(Json(ctx.chain.with_state(|s| views::poc_nonces(s, &address, page.after, limit))))
}

/// Prometheus text of the process's one registry.
async fn metrics(AxumState(ctx): Ctx) -> Response {
    match ctx.metrics.encode(&ctx.chain, ctx.engine.as_deref()) {
        Ok(text) => {
            ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
                .into_response()
        }
        Err(_) => ApiError::MetricsEncoding.into_response(),
    }
}

async fn inference(AxumState(ctx): Ctx, Path(id): Path<String>) -> ApiResult<views::InferenceView> {
    let id =
        Hash::from_hex(&id).ok_or_else(|| ApiError::invalid("id", "an inference id is 64 hex digits"))?;
    ctx.chain
        .with_state(|s| views::inference(s, &id))
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no inference {id} (never seen, or pruned)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_verifies_one_batch_at_a_time() {
        let gate = Arc::new(BatchGate::default());
        let (a, b): (std::net::IpAddr, std::net::IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = gate.enter(a).expect("free");
        assert!(gate.enter(a).is_none(), "a second batch from the same address waits its turn (429)");
        let other = gate.enter(b).expect("another peer is not held up");
        drop(first);
        assert!(gate.enter(a).is_some(), "free again once the first is done");
        drop(other);
    }
}

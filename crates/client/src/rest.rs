//! A typed client of a node's REST API: each call returns the view the node serves
//! (`gonka_chain::views`, `gonka_node::rest`), and an error answer becomes an error carrying the
//! node's message.

use std::time::Duration;

use anyhow::{Context, bail};
use gonka_chain::views::{AccountView, BlockView, EpochView, HostsView, TxView, ValidatorsView};
use gonka_chain::{Params, Tx};
use gonka_node::host::PocProgress;
use gonka_node::rest::{NodeStatus, SubmitResult};
use gonka_primitives::codec::Encode;
use gonka_primitives::{Address, Hash};
use serde::de::DeserializeOwned;

/// A node's REST API.
#[derive(Debug, Clone)]
pub struct NodeClient {
    http: reqwest::Client,
    base: String,
}

impl NodeClient {
    /// A client of the node at `base` (its REST base URL).
    pub fn new(base: &str) -> NodeClient {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
        NodeClient { http, base: base.trim_end_matches('/').to_string() }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// GET `path` as JSON; an error body becomes an error with its message.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.get(path).await
    }

    /// GET `path` as `T`; an error body becomes an error with its message.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let response = self.http.get(&url).send().await.with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let body: serde_json::Value =
            response.json().await.with_context(|| format!("{url} did not return JSON"))?;
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("request failed");
            bail!("{url}: {status}: {message}");
        }
        serde_json::from_value(body).with_context(|| format!("{url} answered an unexpected shape"))
    }

    /// `GET /genesis`: the chain's genesis and its hash.
    pub async fn genesis(&self) -> anyhow::Result<gonka_node::rest::GenesisView> {
        self.get("/genesis").await
    }

    /// The node's and the chain's status.
    pub async fn status(&self) -> anyhow::Result<NodeStatus> {
        self.get("/status").await
    }

    /// An account.
    pub async fn account(&self, address: &Address) -> anyhow::Result<AccountView> {
        self.get(&format!("/accounts/{address}")).await
    }

    /// A block (the latest when `height` is None).
    pub async fn block(&self, height: Option<u64>) -> anyhow::Result<BlockView> {
        match height {
            Some(height) => self.get(&format!("/blocks/{height}")).await,
            None => self.get("/blocks/latest").await,
        }
    }

    /// A committed transaction, or None while it is not in a block.
    pub async fn tx(&self, hash: &Hash) -> anyhow::Result<Option<TxView>> {
        self.get_optional(&format!("/txs/{hash}")).await
    }

    /// GET `path` as `T`, or None when the node answers 404; any other error body becomes an error.
    pub async fn get_optional<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<Option<T>> {
        let url = format!("{}{path}", self.base);
        let response = self.http.get(&url).send().await.with_context(|| format!("cannot reach {url}"))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let status = response.status();
        let body: serde_json::Value =
            response.json().await.with_context(|| format!("{url} did not return JSON"))?;
        if !status.is_success() {
            bail!("{url}: {status}: {}", body["error"]["message"].as_str().unwrap_or("request failed"));
        }
        Ok(Some(serde_json::from_value(body)?))
    }

    /// Every host.
    pub async fn participants(&self) -> anyhow::Result<HostsView> {
        self.get("/participants").await
    }

    /// The validator set of the next height.
    pub async fn validators(&self) -> anyhow::Result<ValidatorsView> {
        self.get("/validators").await
    }

    /// The parameters.
    pub async fn params(&self) -> anyhow::Result<Params> {
        self.get("/params").await
    }

    /// The epoch clock.
    pub async fn epoch(&self) -> anyhow::Result<EpochView> {
        self.get("/epoch").await
    }

    /// What the node's host is doing in PoC.
    pub async fn poc_progress(&self) -> anyhow::Result<PocProgress> {
        self.get("/poc/progress").await
    }

    /// What the node's host is doing in answer validation, and its standing.
    pub async fn validation_progress(&self) -> anyhow::Result<gonka_node::rest::ValidationProgressView> {
        self.get("/validation/progress").await
    }

    /// One inference, while the chain keeps it (None: never seen, or pruned).
    pub async fn inference(&self, id: &Hash) -> anyhow::Result<Option<gonka_chain::views::InferenceView>> {
        self.get_optional(&format!("/inferences/{id}")).await
    }

    /// One host (None: not a registered host).
    pub async fn participant(
        &self,
        address: &Address,
    ) -> anyhow::Result<Option<gonka_chain::views::HostView>> {
        self.get_optional(&format!("/participants/{address}")).await
    }

    /// `address`'s rewards: fees owed by epoch, the settlement waiting for its claim, vesting, summaries.
    pub async fn rewards(&self, address: &Address) -> anyhow::Result<gonka_chain::views::RewardsView> {
        self.get(&format!("/rewards/{address}")).await
    }

    /// `address`'s collateral, unbonding collateral and waiting withdrawals.
    pub async fn collateral(&self, address: &Address) -> anyhow::Result<gonka_chain::views::CollateralView> {
        self.get(&format!("/collateral/{address}")).await
    }

    /// The current price of the model called `model` (or with that content hash).
    pub async fn price(&self, model: &str) -> anyhow::Result<gonka_chain::views::PriceView> {
        self.get(&format!("/price/{model}")).await
    }

    /// The supply, every pool and whether it balances.
    pub async fn supply(&self) -> anyhow::Result<gonka_chain::views::SupplyView> {
        self.get("/supply").await
    }

    /// Submits a signed transaction; the result says whether the mempool admitted it.
    pub async fn submit(&self, tx: &Tx) -> anyhow::Result<SubmitResult> {
        let url = format!("{}/txs", self.base);
        let body = serde_json::json!({"tx": hex::encode(tx.to_bytes())});
        let response =
            self.http.post(&url).json(&body).send().await.with_context(|| format!("cannot reach {url}"))?;
        let body: serde_json::Value =
            response.json().await.with_context(|| format!("{url} did not return JSON"))?;
        if let Some(message) = body["error"]["message"].as_str() {
            return Ok(SubmitResult {
                hash: Some(tx.hash()),
                accepted: false,
                error: Some(message.to_string()),
            });
        }
        serde_json::from_value(body).with_context(|| format!("{url} answered an unexpected shape"))
    }

    /// POSTs `body` as JSON to `path` and returns the status and the JSON answer.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<(reqwest::StatusCode, serde_json::Value)> {
        let url = format!("{}{path}", self.base);
        let response =
            self.http.post(&url).json(body).send().await.with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let body = response.json().await.with_context(|| format!("{url} did not return JSON"))?;
        Ok((status, body))
    }
}

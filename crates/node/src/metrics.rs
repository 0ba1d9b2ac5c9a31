//! The node's one Prometheus registry: chain and mempool gauges, the host's PoC counters, and the
//! inference API's request, latency and token metrics that the transfer agent and executor record.
//! `GET /metrics` encodes it whole.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use gonka_engine::Generator;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::chain::Chain;

/// Every metric of the process, registered in one registry.
#[derive(Debug)]
pub struct NodeMetrics {
    registry: Registry,
    /// The inference API's metrics (recorded by the TA and executor handlers).
    pub api: Arc<gonka_api::Metrics>,
    chain_height: Gauge,
    chain_validators: Gauge,
    mempool_txs: Gauge,
    supply: Gauge,
    subsidy_minted: Gauge,
    burned: Gauge,
    epochs_settled: Gauge,
    fees_burned: Gauge,
    /// Each served model's price per token, labelled `model`.
    prices: Family<Vec<(String, String)>, Gauge>,
    /// PoC nonces computed.
    pub poc_nonces: Counter,
    /// Valid PoC nonces found.
    pub poc_valid: Counter,
    /// Valid PoC nonces submitted.
    pub poc_submitted: Counter,
    /// PoC samples recomputed (one per verdict).
    pub poc_validations: Counter,
    poc_sprint_rate: Gauge<f64, AtomicU64>,
    /// 1 while a sprint runs.
    pub poc_sprinting: Gauge,
    /// Answers of others this host re-scored.
    pub validation_checks: Counter,
    /// Of those, answers it found invalid.
    pub validation_failures: Counter,
    /// Votes it cast on failed answers.
    pub validation_votes: Counter,
    /// Payloads it handed to validators as executor.
    pub validation_payloads_served: Counter,
    /// Payload requests it refused (no proof, not selected, not voting).
    pub validation_payloads_refused: Counter,
}

impl NodeMetrics {
    /// Every metric at zero.
    pub fn new() -> NodeMetrics {
        let mut registry = Registry::default();
        let api = Arc::new(gonka_api::Metrics::register(&mut registry));
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        let chain_height = gauge(&mut registry, "gonka_chain_height", "Height of the last committed block");
        let chain_validators =
            gauge(&mut registry, "gonka_chain_validators", "Validators deciding the next height");
        let mempool_txs = gauge(&mut registry, "gonka_mempool_txs", "Transactions waiting in the mempool");
        let supply = gauge(&mut registry, "gonka_supply_ngonka", "Every ngonka that exists");
        let subsidy_minted =
            gauge(&mut registry, "gonka_subsidy_minted_ngonka", "Subsidy minted by epoch settlements so far");
        let burned = gauge(
            &mut registry,
            "gonka_burned_ngonka",
            "Burned: unclaimed, forfeited, INVALID hosts' fees, slashes",
        );
        let epochs_settled = gauge(&mut registry, "gonka_epochs_settled", "Epochs settled");
        let fees_burned = gauge(
            &mut registry,
            "gonka_fees_burned_ngonka",
            "Transaction fees burned (part of gonka_burned_ngonka)",
        );
        let prices = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register("gonka_price_ngonka", "Price per token of each served model", prices.clone());
        let poc_nonces = counter(&mut registry, "gonka_poc_nonces", "PoC nonces computed");
        let poc_valid = counter(&mut registry, "gonka_poc_valid_nonces", "Valid PoC nonces found");
        let poc_submitted =
            counter(&mut registry, "gonka_poc_submitted_nonces", "Valid PoC nonces submitted in batches");
        let poc_validations =
            counter(&mut registry, "gonka_poc_validations", "PoC samples recomputed for verdicts");
        let poc_sprint_rate = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "gonka_poc_sprint_nonces_per_second",
            "Rate of the running or last sprint",
            poc_sprint_rate.clone(),
        );
        let poc_sprinting = gauge(&mut registry, "gonka_poc_sprinting", "1 while a sprint runs");
        let validation_checks = counter(
            &mut registry,
            "gonka_validation_checks",
            "Answers of other hosts re-scored by this host",
        );
        let validation_failures =
            counter(&mut registry, "gonka_validation_failures", "Re-scored answers this host found invalid");
        let validation_votes =
            counter(&mut registry, "gonka_validation_votes", "Votes this host cast on failed answers");
        let validation_payloads_served =
            counter(&mut registry, "gonka_validation_payloads_served", "Payloads handed to validators");
        let validation_payloads_refused = counter(
            &mut registry,
            "gonka_validation_payloads_refused",
            "Payload requests refused (not selected, not voting, bad signature)",
        );
        NodeMetrics {
            registry,
            api,
            chain_height,
            chain_validators,
            mempool_txs,
            supply,
            subsidy_minted,
            burned,
            epochs_settled,
            fees_burned,
            prices,
            poc_nonces,
            poc_valid,
            poc_submitted,
            poc_validations,
            poc_sprint_rate,
            poc_sprinting,
            validation_checks,
            validation_failures,
            validation_votes,
            validation_payloads_served,
            validation_payloads_refused,
        }
    }

    /// Records the rate of the running sprint.
    pub fn set_sprint_rate(&self, nonces_per_second: f64) {
        self.poc_sprint_rate.set(nonces_per_second);
    }

    /// The OpenMetrics text of every metric, with the gauges read now.
    pub fn encode(&self, chain: &Chain, engine: Option<&dyn Generator>) -> Result<String, std::fmt::Error> {
        let (height, validators, supply, totals) = chain
            .with_state(|s| (s.height(), s.validator_set().len(), s.bank.supply().total, s.rewards.totals()));
        let clamp = |v: u128| i64::try_from(v).unwrap_or(i64::MAX);
        self.supply.set(clamp(supply.0));
        self.subsidy_minted.set(clamp(totals.minted.0));
        self.burned.set(clamp(totals.burned().0));
        self.epochs_settled.set(totals.last_settled.map_or(0, |e| clamp(u128::from(e) + 1)));
        self.fees_burned.set(clamp(totals.burned_fees.0));
        for price in chain.with_state(gonka_chain::views::prices) {
            self.prices
                .get_or_create(&vec![("model".to_string(), price.model)])
                .set(clamp(price.price_per_token.0));
        }
        self.chain_height.set(i64::try_from(height).unwrap_or(i64::MAX));
        self.chain_validators.set(i64::try_from(validators).unwrap_or(i64::MAX));
        self.mempool_txs.set(i64::try_from(chain.mempool_len()).unwrap_or(i64::MAX));
        if let Some(engine) = engine {
            self.api.set_engine_load(engine.queue_depth(), engine.active_sequences());
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics::new()
    }
}

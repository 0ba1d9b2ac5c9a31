//! Paid inference on a host (reference §4, DESIGN.md §4; `docs/spec/inference.md`): the public
//! OpenAI-compatible endpoint where the host acts as **transfer agent** (TA), the endpoint where it acts
//! as **executor**, and the custody of payloads for validators.
//!
//! ```text
//! developer/gateway ── POST /v1/chat/completions (signed) ──▶ TA: signature, time, replay, balance,
//!     executor draw, StartInference ──▶ executor: POST /v1/executor/chat/completions (TA-signed)
//!     ──▶ engine ──▶ answer streams back through the TA unchanged; FinishInference; payload kept
//! ```

mod auth;
pub mod cheat;
mod executor;
pub(crate) mod outbound;
mod payloads;
mod ta;
pub mod validator;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use gonka_api::{ApiLimits, Metrics};
use gonka_chain::InferenceMsg;
use gonka_chain::State;
use gonka_engine::{Backend, Generator};
use gonka_host::admission::ReplayGuard;
use gonka_host::exposure::ExposureBook;
use gonka_host::receipts::Outbox;
use gonka_primitives::Address;
use tokio::sync::Semaphore;

pub use executor::answer_recorded;
pub use payloads::{Payload, PayloadStore};

use crate::metrics::NodeMetrics;
use crate::signer::HostSigner;

/// Most served requests whose payment is not yet on chain (each an exposure entry): far above what one
/// host generates within a block or two.
const EXPOSURE_ENTRIES_MAX: usize = 65_536;

/// Bounds of the inference service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct InferenceConfig {
    /// Whether this host serves inference (loads the model).
    pub enabled: bool,
    /// Requests this host forwards at once as transfer agent; more get `429`.
    pub ta_concurrent_max: usize,
    /// Signed requests remembered for replay protection; a full table answers `429`.
    pub replay_entries_max: usize,
    /// How long the TA waits for an executor to start answering.
    pub executor_timeout_ms: u64,
    /// Whether the TA may call executors at loopback, private or link-local addresses (the devnet
    /// profile, whose hosts all listen on loopback). Off by default: executor URLs come from the
    /// chain, and anyone can register one (`docs/spec/inference.md` §9).
    pub allow_private_executors: bool,
    /// Devnet only: cheat as an executor this way, so validation can be watched catching it
    /// ([`cheat`]). Never set on a real host.
    pub cheat: Option<cheat::Cheat>,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        InferenceConfig {
            enabled: true,
            ta_concurrent_max: 64,
            replay_entries_max: 1_000_000,
            executor_timeout_ms: 120_000,
            allow_private_executors: false,
            cheat: None,
        }
    }
}

/// Everything the inference handlers share.
pub struct InferenceService {
    signer: Arc<HostSigner>,
    engine: Arc<dyn Backend>,
    limits: ApiLimits,
    metrics: Arc<Metrics>,
    node_metrics: Arc<NodeMetrics>,
    http: reqwest::Client,
    ta_slots: Arc<Semaphore>,
    ta_seen: Mutex<ReplayGuard>,
    executor_seen: Mutex<ReplayGuard>,
    payload_seen: Mutex<ReplayGuard>,
    exposure: Mutex<ExposureBook>,
    payloads: PayloadStore,
    outbox: Mutex<Outbox>,
    allow_private_executors: bool,
    cheat: Option<cheat::Cheat>,
    /// The cheaper model a cheating devnet host generates with.
    cheap: Option<Arc<dyn Backend>>,
}

impl InferenceService {
    /// The service of the host behind `signer`, serving (and re-scoring with) `engine`, keeping
    /// payloads in `payloads`; a devnet host told to cheat with the cheaper model generates with
    /// `cheap`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        signer: Arc<HostSigner>,
        engine: Arc<dyn Backend>,
        cheap: Option<Arc<dyn Backend>>,
        limits: ApiLimits,
        config: InferenceConfig,
        payloads: PayloadStore,
        node_metrics: Arc<NodeMetrics>,
    ) -> anyhow::Result<InferenceService> {
        let http = outbound::client(
            Duration::from_millis(config.executor_timeout_ms),
            config.allow_private_executors,
        )?;
        let outbox = Mutex::new(payloads.outbox()?);
        Ok(InferenceService {
            signer,
            engine,
            limits,
            metrics: node_metrics.api.clone(),
            node_metrics,
            ta_slots: Arc::new(Semaphore::new(config.ta_concurrent_max.max(1))),
            ta_seen: Mutex::new(ReplayGuard::new(config.replay_entries_max)),
            executor_seen: Mutex::new(ReplayGuard::new(config.replay_entries_max)),
            payload_seen: Mutex::new(ReplayGuard::new(config.replay_entries_max)),
            exposure: Mutex::new(ExposureBook::new(EXPOSURE_ENTRIES_MAX)),
            http,
            payloads,
            outbox,
            allow_private_executors: config.allow_private_executors,
            cheat: config.cheat,
            cheap,
        })
    }

    fn account(&self) -> Address {
        self.signer.account()
    }

    fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        self.signer.chain().with_state(f)
    }

    fn lock_ta_seen(&self) -> MutexGuard<'_, ReplayGuard> {
        self.ta_seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_executor_seen(&self) -> MutexGuard<'_, ReplayGuard> {
        self.executor_seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_exposure(&self) -> MutexGuard<'_, ExposureBook> {
        self.exposure.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_payload_seen(&self) -> MutexGuard<'_, ReplayGuard> {
        self.payload_seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Submits `receipt` and keeps it in the outbox, which resubmits it until the chain holds it. A
    /// Finish is kept even when the mempool refuses it now (the answer is out: it must be paid); a
    /// Start the mempool refuses is not (the request is refused). Errors: the mempool refused it.
    fn submit_receipt(&self, receipt: InferenceMsg) -> anyhow::Result<gonka_primitives::Hash> {
        let mut outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        let submitted = self.signer.submit(vec![receipt.clone().into()]);
        let keep = submitted.is_ok() || matches!(receipt, InferenceMsg::Finish { .. });
        if let Some(key) = keep.then(|| outbox.add(receipt)).flatten() {
            if submitted.is_ok() {
                outbox.submitted(key, self.with_state(State::height));
            }
            let pending = outbox.entries().find(|(k, _)| **k == key).map(|(_, p)| p.clone());
            if let Some(pending) = pending
                && let Err(error) = self.payloads.put_receipt(key, &pending)
            {
                tracing::warn!(%error, "could not keep a receipt");
            }
        }
        submitted
    }

    /// On a committed block: resubmits the receipts that did not land and forgets those done.
    pub fn resubmit_receipts(&self) {
        let pending = self.signer.chain().pending_messages(&self.account());
        let waiting = |m: &gonka_chain::Msg| pending.contains(&gonka_primitives::codec::Encode::to_bytes(m));
        let (due, done) = {
            let mut outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
            self.with_state(|s| outbox.plan(s, &waiting))
        };
        for receipt in due {
            if let Err(error) = self.signer.submit(vec![receipt]) {
                tracing::debug!(%error, "resubmitting a receipt failed; retried later");
            }
        }
        if let Err(error) = self.payloads.remove_receipts(&done) {
            tracing::warn!(%error, "could not forget settled receipts");
        }
    }

    /// The engine this host serves from.
    pub fn engine_handle(&self) -> Arc<dyn Generator> {
        self.engine.clone()
    }

    /// Drops payloads older than the retention window; called on every committed block.
    pub fn prune_payloads(&self, height: u64) {
        let retention = self.with_state(|s| 2 * s.params().epoch.epoch_length);
        if let Err(error) = self.payloads.prune(height.saturating_sub(retention)) {
            tracing::warn!(%error, "pruning payloads failed");
        }
    }
}

/// The public routes this host adds to its API: OpenAI-compatible chat as TA, the executor endpoint,
/// model list and payload custody.
pub fn router(service: Arc<InferenceService>) -> Router {
    let body_max = service.limits.body_bytes_max;
    Router::new()
        .route("/v1/chat/completions", post(ta::chat_completions))
        .route("/v1/completions", post(ta::completions))
        .route("/v1/models", get(ta::list_models))
        .route("/v1/executor/chat/completions", post(executor::chat_completions))
        .route("/v1/inferences/{id}/payload", get(payloads::serve_payload))
        .layer(DefaultBodyLimit::max(body_max))
        .with_state(service)
}

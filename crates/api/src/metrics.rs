//! Prometheus metrics of the API and of the engine behind it.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Label set of `gonka_api_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    /// Matched route template (`/v1/models/{id}`), or `unmatched`, so label cardinality stays bounded.
    route: String,
    /// HTTP status code.
    status: u16,
}

/// Label set of `gonka_api_request_duration_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// 5 ms to about 41 s: covers a health check up to a long completion.
fn request_duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// 1 ms to about 33 s: covers an idle engine up to a deep queue.
fn time_to_first_token_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The handles the API records into, and (for a server of its own, `gonka serve`) the registry behind
/// its `/metrics`. A node registers the same metrics into its one process registry instead
/// ([`Metrics::register`]) and serves that.
#[derive(Debug)]
pub struct Metrics {
    registry: Option<Registry>,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    time_to_first_token: Histogram,
    prompt_tokens: Counter,
    completion_tokens: Counter,
    queue_depth: Gauge,
    active_sequences: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry of its own with every metric registered at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let mut metrics = Self::register(&mut registry);
        metrics.registry = Some(registry);
        metrics
    }

    /// Every metric registered at zero in `registry` (the process registry of a node).
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(request_duration_histogram);
        let time_to_first_token = time_to_first_token_histogram();
        let prompt_tokens = Counter::default();
        let completion_tokens = Counter::default();
        let queue_depth = Gauge::default();
        let active_sequences = Gauge::default();

        // Counters get their `_total` suffix from the encoder; histograms get `_seconds` from the unit.
        registry.register(
            "gonka_api_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        registry.register_with_unit(
            "gonka_api_request_duration",
            "Time from request arrival to response head, by route",
            Unit::Seconds,
            request_duration.clone(),
        );
        registry.register_with_unit(
            "gonka_api_time_to_first_token",
            "Time from chat completion arrival to its first generated token",
            Unit::Seconds,
            time_to_first_token.clone(),
        );
        registry.register(
            "gonka_engine_prompt_tokens",
            "Prompt tokens of finished generations",
            prompt_tokens.clone(),
        );
        registry.register(
            "gonka_engine_completion_tokens",
            "Completion tokens of finished generations",
            completion_tokens.clone(),
        );
        registry.register(
            "gonka_engine_queue_depth",
            "Requests waiting for a generation slot",
            queue_depth.clone(),
        );
        registry.register(
            "gonka_engine_active_sequences",
            "Requests generating now",
            active_sequences.clone(),
        );

        Self {
            registry: None,
            requests,
            request_duration,
            time_to_first_token,
            prompt_tokens,
            completion_tokens,
            queue_depth,
            active_sequences,
        }
    }

    /// Count one answered request and its time to response head.
    pub fn observe_request(&self, route: &str, status: u16, duration: Duration) {
        self.requests.get_or_create(&RequestLabels { route: route.to_owned(), status }).inc();
        self.request_duration
            .get_or_create(&RouteLabels { route: route.to_owned() })
            .observe(duration.as_secs_f64());
    }

    /// Record the wait until a chat completion's first token.
    pub fn observe_time_to_first_token(&self, duration: Duration) {
        self.time_to_first_token.observe(duration.as_secs_f64());
    }

    /// Count the tokens of a finished generation.
    pub fn observe_usage(&self, usage: gonka_engine_api::Usage) {
        self.prompt_tokens.inc_by(u64::try_from(usage.prompt_tokens).unwrap_or(u64::MAX));
        self.completion_tokens.inc_by(u64::try_from(usage.completion_tokens).unwrap_or(u64::MAX));
    }

    /// Sets the engine gauges to the values read at scrape time.
    pub fn set_engine_load(&self, queue_depth: usize, active_sequences: usize) {
        self.queue_depth.set(i64::try_from(queue_depth).unwrap_or(i64::MAX));
        self.active_sequences.set(i64::try_from(active_sequences).unwrap_or(i64::MAX));
    }

    /// Encode every metric of its own registry in the OpenMetrics text format, after setting the engine
    /// gauges to the values read at scrape time. Metrics registered into a node's registry have none:
    /// the node encodes its registry.
    pub fn encode(&self, queue_depth: usize, active_sequences: usize) -> Result<String, std::fmt::Error> {
        self.set_engine_load(queue_depth, active_sequences);
        let registry = self.registry.as_ref().ok_or(std::fmt::Error)?;
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry)?;
        Ok(text)
    }
}

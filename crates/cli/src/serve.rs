//! `gonka serve`: one host answering chat completions with the embedded model.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use gonka_api::{ApiLimits, AppState};
use gonka_engine::{Engine, EngineConfig};

/// Options of `gonka serve`.
#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Sequences generated together (batch slots).
    #[arg(long, default_value_t = EngineConfig::default().max_sequences)]
    max_sequences: usize,
    /// Requests allowed to wait for a slot before the server answers 429.
    #[arg(long, default_value_t = EngineConfig::default().queue_capacity)]
    queue_capacity: usize,
    /// Prompt tokens whose keys and values are kept for later prompts that start the same way (0: off).
    #[arg(long, default_value_t = EngineConfig::default().prefix_cache_tokens)]
    prefix_cache_tokens: usize,
    /// Completion tokens when a request names no max_tokens.
    #[arg(long, default_value_t = ApiLimits::default().max_tokens_default)]
    max_tokens_default: usize,
    /// Largest max_tokens a request may ask for.
    #[arg(long, default_value_t = ApiLimits::default().max_tokens_cap)]
    max_tokens_cap: usize,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = ApiLimits::default().body_bytes_max)]
    body_bytes_max: usize,
    /// Most messages in one request.
    #[arg(long, default_value_t = ApiLimits::default().messages_max)]
    messages_max: usize,
}

#[allow(clippy::print_stdout)]
pub(crate) fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let model = crate::default_model()?;
    let config = EngineConfig {
        max_sequences: args.max_sequences,
        queue_capacity: args.queue_capacity,
        prefix_cache_tokens: args.prefix_cache_tokens,
        max_tokens_cap: args.max_tokens_cap,
        threads: crate::compute_threads(),
        defaults: model.defaults,
        ..EngineConfig::default()
    };
    let engine = Engine::load(&model.path, &model.name, &model.content_hash, config)
        .with_context(|| format!("loading {}", model.path.display()))?;
    let limits = ApiLimits {
        body_bytes_max: args.body_bytes_max,
        messages_max: args.messages_max,
        max_tokens_default: args.max_tokens_default.min(args.max_tokens_cap),
        max_tokens_cap: args.max_tokens_cap,
        ..ApiLimits::default()
    };
    let state = AppState::new(Arc::new(engine), limits);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let addr = listener.local_addr()?;
        println!("gonka serve: {} (sha256 {}) listening on http://{addr}", model.name, model.content_hash);
        println!(
            "try: curl http://{addr}/v1/chat/completions -H 'Content-Type: application/json' \\\n  -d '{{\"model\": \"{}\", \"messages\": [{{\"role\": \"user\", \"content\": \"What is the capital of France? Answer in one sentence.\"}}]}}'",
            model.name
        );
        axum::serve(listener, gonka_api::app(state)).with_graceful_shutdown(crate::wait_for_termination()).await?;
        anyhow::Ok(())
    })
}

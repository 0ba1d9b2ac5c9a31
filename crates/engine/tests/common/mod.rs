//! Shared set-up of the engine's model tests: the real default model from the gonka home (pulled on
//! first use, as every command does).
#![allow(dead_code)]

use std::fs::File;
use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::quantized::gguf_file::Content;
use gonka_engine::store::{DEFAULT_MODEL, ModelStore, gonka_home};
use gonka_engine::tokenizer::Tokenizer;

/// Path of the installed default model, pulling it once per test binary.
pub(crate) fn model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        ModelStore::new(&gonka_home()).ensure(&DEFAULT_MODEL).expect("the default model installs").path
    })
    .clone()
}

/// The default model's tokenizer.
pub(crate) fn tokenizer() -> Tokenizer {
    let mut file = File::open(model_path()).expect("model file opens");
    let content = Content::read(&mut file).expect("GGUF parses");
    Tokenizer::from_gguf(&content).expect("tokenizer builds")
}

use gonka_engine::{
    ChatMessage, Engine, EngineConfig, FinishReason, GenerationEvent, GenerationRequest, GenerationStream,
    Generator, PositionLogprobs, SamplingParams, Usage,
};

/// An engine on the default model.
pub(crate) fn engine(config: EngineConfig) -> Engine {
    Engine::load(&model_path(), "SmolLM2-135M-Instruct", "test", config).expect("engine loads")
}

/// A chat of one user message.
pub(crate) fn user(engine: &Engine, text: &str) -> Vec<u32> {
    engine.render_chat(&[ChatMessage { role: "user".into(), content: text.into() }]).expect("renders")
}

/// A greedy request.
pub(crate) fn greedy(prompt_tokens: Vec<u32>, max_tokens: usize) -> GenerationRequest {
    GenerationRequest {
        prompt_tokens,
        sampling: SamplingParams { temperature: 0.0, ..SamplingParams::default() },
        max_tokens,
        stop: Vec::new(),
        top_logprobs: None,
        ignore_eos: false,
    }
}

/// Everything a finished generation sent.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub(crate) ids: Vec<u32>,
    pub(crate) text: String,
    pub(crate) logprobs: Vec<PositionLogprobs>,
    pub(crate) reason: Option<FinishReason>,
    pub(crate) usage: Usage,
}

/// Drain a stream to its end.
pub(crate) async fn collect(mut stream: GenerationStream) -> Collected {
    let mut out = Collected::default();
    while let Some(event) = stream.recv().await {
        match event {
            GenerationEvent::Token { id, text, logprobs } => {
                out.ids.push(id);
                out.text.push_str(&text);
                out.logprobs.extend(logprobs);
            }
            GenerationEvent::Finished { reason, usage } => {
                out.reason = Some(reason);
                out.usage = usage;
            }
            GenerationEvent::Failed(e) => panic!("generation failed: {e}"),
        }
    }
    out
}

/// Wait (bounded) until the engine reports no active or waiting request: the final event reaches the
/// client just before the engine thread frees the slot.
pub(crate) fn wait_idle(engine: &Engine) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while engine.active_sequences() + engine.queue_depth() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "engine still busy: {} active, {} waiting",
            engine.active_sequences(),
            engine.queue_depth()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

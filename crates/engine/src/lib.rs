//! Run the embedded LLM: model store, tokenizer, chat template, batched generation and scoring.
#![deny(missing_docs)]

pub mod request;

pub use request::{
    ChatMessage, EngineError, FinishReason, GenerationEvent, GenerationRequest, GenerationStream, Generator,
    ModelInfo, PositionLogprobs, SamplingParams, TokenLogprob, Usage,
};

pub mod chat;
pub mod engine;
pub mod gguf;
pub mod kernels;
pub mod model;
pub mod poc;
pub mod sampler;
pub mod score;
pub mod store;
pub mod text;
pub mod tokenizer;

pub use engine::{Engine, EngineConfig};

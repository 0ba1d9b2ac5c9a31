//! Run the embedded LLM: model store, tokenizer, chat template, batched generation and scoring.
#![deny(missing_docs)]

pub mod request;

pub use request::{
    ChatMessage, EngineError, FinishReason, GenerationEvent, GenerationRequest, GenerationStream, Generator,
    ModelInfo, PositionLogprobs, SamplingParams, TokenLogprob, Usage,
};

pub mod gguf;
pub mod model;
pub mod store;
pub mod tokenizer;

//! A generation as server-sent events: role chunk, token chunks, finish chunk, optional usage chunk,
//! `[DONE]`.
//!
//! The [`ChunkStream`] owns the [`GenerationStream`] and nothing else holds it, so when the client goes
//! away and the response body is dropped, the receiver drops with it and the engine cancels the
//! generation.

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use gonka_engine_api::{GenerationEvent, GenerationStream, Usage};
use serde::Serialize;

use super::response::{ChatCompletionChunk, CompletionHead};
use super::tools::CallSplitter;
use super::{Deadline, GenerationWatch};
use crate::ApiError;

/// Where the stream is in its fixed sequence of events.
#[derive(Debug)]
enum Phase {
    Role,
    Tokens,
    /// The generation ended; the finish chunk comes next (after the held-back pieces of an answer
    /// with tools).
    Finish(gonka_engine_api::FinishReason, Usage),
    Usage(Usage),
    Done,
    Ended,
}

/// The state of one streaming response.
pub(crate) struct ChunkStream {
    /// `None` once the generation has ended, so the receiver is released as early as possible.
    events: Option<GenerationStream>,
    head: CompletionHead,
    include_usage: bool,
    deadline: Option<Deadline>,
    watch: GenerationWatch,
    phase: Phase,
    /// Splits an answer with tools into content and tool-call parts.
    splitter: Option<CallSplitter>,
}

impl ChunkStream {
    pub(crate) fn new(
        events: GenerationStream,
        head: CompletionHead,
        include_usage: bool,
        deadline: Option<Deadline>,
        watch: GenerationWatch,
        splitter: Option<CallSplitter>,
    ) -> Self {
        Self { events: Some(events), head, include_usage, deadline, watch, phase: Phase::Role, splitter }
    }

    /// The SSE response; the body stream owns `self`.
    pub(crate) fn into_response(self) -> Response {
        Sse::new(self.into_events()).keep_alive(KeepAlive::default()).into_response()
    }

    fn into_events(self) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
        futures::stream::unfold(self, |mut stream| async move {
            let event = stream.next_event().await?;
            Some((Ok(event), stream))
        })
    }

    async fn next_event(&mut self) -> Option<Event> {
        match std::mem::replace(&mut self.phase, Phase::Ended) {
            Phase::Role => {
                self.phase = Phase::Tokens;
                Some(json_event(&ChatCompletionChunk::role(&self.head, self.include_usage)))
            }
            Phase::Tokens => Some(self.next_generation_event().await),
            Phase::Finish(reason, usage) => {
                self.phase = if self.include_usage { Phase::Usage(usage) } else { Phase::Done };
                let called = self.splitter.as_ref().is_some_and(|splitter| splitter.calls() > 0);
                Some(json_event(&ChatCompletionChunk::finish(&self.head, self.include_usage, reason, called)))
            }
            Phase::Usage(usage) => {
                self.phase = Phase::Done;
                Some(json_event(&ChatCompletionChunk::usage(&self.head, usage)))
            }
            Phase::Done => Some(Event::default().data("[DONE]")),
            Phase::Ended => None,
        }
    }

    /// Wait for the next event worth a chunk: a token with text or logprobs, the finish, or a failure.
    async fn next_generation_event(&mut self) -> Event {
        loop {
            let event = match self.receive().await {
                Ok(event) => event,
                Err(error) => return self.fail(&error),
            };
            match event {
                GenerationEvent::Token { text, logprobs, .. } => {
                    self.watch.token();
                    self.phase = Phase::Tokens;
                    if let Some(splitter) = &mut self.splitter {
                        let pieces = splitter.push(&text);
                        match ChatCompletionChunk::pieces(&self.head, self.include_usage, pieces, logprobs) {
                            Some(chunk) => return json_event(&chunk),
                            None => continue,
                        }
                    }
                    if text.is_empty() && logprobs.is_none() {
                        continue;
                    }
                    return json_event(&ChatCompletionChunk::content(
                        &self.head,
                        self.include_usage,
                        text,
                        logprobs,
                    ));
                }
                GenerationEvent::Finished { reason, usage } => {
                    self.watch.finished(usage);
                    self.events = None;
                    self.phase = Phase::Finish(reason, usage);
                    let held = self.splitter.as_mut().map(CallSplitter::finish).unwrap_or_default();
                    match ChatCompletionChunk::pieces(&self.head, self.include_usage, held, None) {
                        Some(chunk) => return json_event(&chunk),
                        None => {
                            let called = self.splitter.as_ref().is_some_and(|splitter| splitter.calls() > 0);
                            self.phase = if self.include_usage { Phase::Usage(usage) } else { Phase::Done };
                            return json_event(&ChatCompletionChunk::finish(
                                &self.head,
                                self.include_usage,
                                reason,
                                called,
                            ));
                        }
                    }
                }
                GenerationEvent::Failed(error) => return self.fail(&ApiError::Engine(error)),
            }
        }
    }

    async fn receive(&mut self) -> Result<GenerationEvent, ApiError> {
        let events = self.events.as_mut().ok_or(ApiError::GenerationAbandoned)?;
        let received = match self.deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.at, events.recv())
                .await
                .map_err(|_| ApiError::Timeout(deadline.budget))?,
            None => events.recv().await,
        };
        received.ok_or(ApiError::GenerationAbandoned)
    }

    /// End the stream with an error event; dropping the receiver cancels whatever is still running.
    fn fail(&mut self, error: &ApiError) -> Event {
        tracing::warn!(error = %error, id = %self.head.id, "api.chat_stream failed");
        self.events = None;
        self.phase = Phase::Ended;
        json_event(&error.envelope())
    }
}

/// An SSE `data:` event holding `value` as JSON.
fn json_event<T: Serialize>(value: &T) -> Event {
    match serde_json::to_string(value) {
        Ok(json) => Event::default().data(json),
        Err(error) => {
            tracing::error!(%error, "api.chat_stream could not encode a chunk");
            Event::default().data(r#"{"error":{"message":"failed to encode a chunk","type":"server_error","param":null,"code":null}}"#)
        }
    }
}

//! A generation as server-sent events: role chunk, token chunks, finish chunk, optional usage chunk,
//! `[DONE]`.
//!
//! The [`ChunkStream`] owns every answer's [`GenerationStream`] and nothing else holds them, so when the
//! client goes away and the response body is dropped, the receivers drop with it and the engine cancels
//! the generations.

use std::convert::Infallible;
use std::task::Poll;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use gonka_engine_api::{GenerationEvent, GenerationStream, Usage};
use serde::Serialize;

use super::response::{self, ChatCompletionChunk, CompletionHead};
use super::tools::CallSplitter;
use super::{Answer, Deadline, GenerationWatch};
use crate::ApiError;

/// Where the stream is in its fixed sequence of events.
#[derive(Debug)]
enum Phase {
    /// The role chunk of answer `.0` comes next.
    Role(usize),
    Tokens,
    /// Answer `.0` ended; its finish chunk comes next (after the held-back pieces of an answer with
    /// tools).
    Finish(usize, gonka_engine_api::FinishReason),
    Usage,
    Done,
    Ended,
}

/// One answer's part of the stream.
struct Choice {
    /// Its events; `None` once it has ended, so the receiver is released as early as possible.
    events: Option<GenerationStream>,
    splitter: Option<CallSplitter>,
    watch: GenerationWatch,
    usage: Option<Usage>,
}

/// The state of one streaming response.
pub(crate) struct ChunkStream {
    head: CompletionHead,
    include_usage: bool,
    deadline: Option<Deadline>,
    choices: Vec<Choice>,
    phase: Phase,
    /// The answer polled first next time (answers take turns).
    next_poll: usize,
}

impl ChunkStream {
    /// A stream of `answers` (their events merged as they come; chunks name the answer's index).
    pub(crate) fn new(
        answers: Vec<Answer>,
        head: CompletionHead,
        include_usage: bool,
        deadline: Option<Deadline>,
    ) -> Self {
        let choices = answers
            .into_iter()
            .map(|Answer { events, splitter, watch }| Choice {
                events: Some(events),
                splitter,
                watch,
                usage: None,
            })
            .collect();
        Self { head, include_usage, deadline, choices, phase: Phase::Role(0), next_poll: 0 }
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
            Phase::Role(index) => {
                self.phase =
                    if index + 1 < self.choices.len() { Phase::Role(index + 1) } else { Phase::Tokens };
                Some(json_event(&ChatCompletionChunk::role(&self.head, self.include_usage, index)))
            }
            Phase::Tokens => Some(self.next_generation_event().await),
            Phase::Finish(index, reason) => {
                self.phase = self.after_finish();
                Some(json_event(&self.finish_chunk(index, reason)))
            }
            Phase::Usage => {
                self.phase = Phase::Done;
                let usage = response::total_usage(self.choices.iter().filter_map(|choice| choice.usage));
                Some(json_event(&ChatCompletionChunk::usage(&self.head, usage)))
            }
            Phase::Done => Some(Event::default().data("[DONE]")),
            Phase::Ended => None,
        }
    }

    /// After an answer's finish chunk: more tokens while any answer runs, then usage or `[DONE]`.
    fn after_finish(&mut self) -> Phase {
        if self.choices.iter().any(|choice| choice.usage.is_none()) {
            Phase::Tokens
        } else if self.include_usage {
            Phase::Usage
        } else {
            Phase::Done
        }
    }

    fn finish_chunk(&self, index: usize, reason: gonka_engine_api::FinishReason) -> ChatCompletionChunk<'_> {
        let called = self.choices[index].splitter.as_ref().is_some_and(|splitter| splitter.calls() > 0);
        ChatCompletionChunk::finish(&self.head, self.include_usage, index, reason, called)
    }

    /// Wait for the next event worth a chunk: a token with text or logprobs, a finish, or a failure.
    async fn next_generation_event(&mut self) -> Event {
        loop {
            let (index, event) = match self.receive().await {
                Ok(event) => event,
                Err(error) => return self.fail(&error),
            };
            let include_usage = self.include_usage;
            let Some(choice) = self.choices.get_mut(index) else { continue };
            match event {
                GenerationEvent::Token { text, logprobs, .. } => {
                    choice.watch.token();
                    self.phase = Phase::Tokens;
                    if let Some(splitter) = &mut choice.splitter {
                        let pieces = splitter.push(&text);
                        match ChatCompletionChunk::pieces(&self.head, include_usage, index, pieces, logprobs)
                        {
                            Some(chunk) => return json_event(&chunk),
                            None => continue,
                        }
                    }
                    if text.is_empty() && logprobs.is_none() {
                        continue;
                    }
                    return json_event(&ChatCompletionChunk::content(
                        &self.head,
                        include_usage,
                        index,
                        text,
                        logprobs,
                    ));
                }
                GenerationEvent::Finished { reason, usage } => {
                    choice.watch.finished(usage);
                    choice.usage = Some(usage);
                    choice.events = None;
                    let held = choice.splitter.as_mut().map(CallSplitter::finish).unwrap_or_default();
                    if let Some(chunk) =
                        ChatCompletionChunk::pieces(&self.head, include_usage, index, held, None)
                    {
                        self.phase = Phase::Finish(index, reason);
                        return json_event(&chunk);
                    }
                    self.phase = self.after_finish();
                    return json_event(&self.finish_chunk(index, reason));
                }
                GenerationEvent::Failed(error) => return self.fail(&ApiError::Engine(error)),
            }
        }
    }

    /// The next event of any running answer.
    async fn receive(&mut self) -> Result<(usize, GenerationEvent), ApiError> {
        receive(&mut self.choices, &mut self.next_poll, self.deadline).await
    }

    /// End the stream with an error event; dropping the receivers cancels whatever is still running.
    fn fail(&mut self, error: &ApiError) -> Event {
        tracing::warn!(error = %error, id = %self.head.id, "api.chat_stream failed");
        for choice in &mut self.choices {
            choice.events = None;
        }
        self.phase = Phase::Ended;
        json_event(&error.envelope())
    }
}

impl Running for Choice {
    fn events(&mut self) -> Option<&mut GenerationStream> {
        self.events.as_mut()
    }
}

/// An answer of a streamed response, whose events [`receive`] merges with the others'.
pub(crate) trait Running {
    /// Its events, while it runs.
    fn events(&mut self) -> Option<&mut GenerationStream>;
}

/// The next event of any running answer of `choices` (they take turns from `next_poll` when several
/// are ready), before `deadline`.
pub(crate) async fn receive<T: Running>(
    choices: &mut [T],
    next_poll: &mut usize,
    deadline: Option<Deadline>,
) -> Result<(usize, GenerationEvent), ApiError> {
    let next = std::future::poll_fn(|cx| {
        let count = choices.len();
        for offset in 0..count {
            let index = (*next_poll + offset) % count;
            let Some(events) = choices[index].events() else { continue };
            match events.poll_recv(cx) {
                Poll::Ready(Some(event)) => {
                    *next_poll = (index + 1) % count;
                    return Poll::Ready(Some((index, event)));
                }
                // Closed before its `Finished`: the engine abandoned it.
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    });
    let received = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline.at, next)
            .await
            .map_err(|_| ApiError::Timeout(deadline.budget))?,
        None => next.await,
    };
    received.ok_or(ApiError::GenerationAbandoned)
}

/// An SSE `data:` event holding `value` as JSON.
pub(crate) fn json_event<T: Serialize>(value: &T) -> Event {
    match serde_json::to_string(value) {
        Ok(json) => Event::default().data(json),
        Err(error) => {
            tracing::error!(%error, "api.chat_stream could not encode a chunk");
            Event::default().data(r#"{"error":{"message":"failed to encode a chunk","type":"server_error","param":null,"code":null}}"#)
        }
    }
}

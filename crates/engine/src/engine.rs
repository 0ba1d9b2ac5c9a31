//! The embedded engine: one thread owns the model and every sequence's KV cache and runs a continuous
//! batching loop. Each step puts one decode token of every generating sequence and a bounded chunk of
//! waiting prompts into a single forward pass, so concurrent requests share each read of the weights.
//! A request whose stream is dropped is removed before the next step and its slot reused.

use std::collections::VecDeque;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::thread::JoinHandle;

use candle_core::quantized::gguf_file::Content;
use tokio::sync::{mpsc, oneshot};

use crate::chat::ChatTemplate;
use crate::constraint::{Constraint, Grammars};
use crate::model::{KvCache, Llama, ModelError, Outputs, Segment};
use crate::prefix::PrefixCache;
use crate::sampler::Sampler;
use crate::score::{ScoredPosition, score, score_position};
use crate::text::TextStream;
use crate::tokenizer::Tokenizer;
use crate::{
    ChatMessage, CompletionText, EngineError, FinishReason, GenerationDefaults, GenerationEvent,
    GenerationRequest, GenerationStream, Generator, ModelInfo, PositionLogprobs, SamplingParams, ScoreFuture,
    ScoreRequest, Scorer, TokenLogprob, Usage,
};

/// Most alternatives a request may ask for per position (OpenAI's limit).
pub const TOP_LOGPROBS_MAX: usize = 20;

/// Limits and sizes of the engine. Every queue and buffer it owns is bounded by one of these.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Sequences generating at once (batch slots).
    pub max_sequences: usize,
    /// Requests waiting for a slot; beyond this `submit` answers `Overloaded`.
    pub queue_capacity: usize,
    /// Prompt tokens prefilled per step, shared by all waiting prompts (keeps decode latency steady).
    pub prefill_chunk_tokens: usize,
    /// KV-cache positions reserved across all active sequences (each reserves prompt + max_tokens).
    /// Raised to at least the context length so any single valid request fits.
    pub kv_tokens_max: usize,
    /// Largest `max_tokens` accepted.
    pub max_tokens_cap: usize,
    /// Threads the forward pass is split over (the engine thread included).
    pub threads: usize,
    /// Keep only the first this many transformer layers: a cheaper model of the same shape, which a
    /// devnet host told to cheat (`substitute-model`, `prefill`) serves while claiming the real one.
    /// Never set on an honest host.
    pub layers: Option<usize>,
    /// The sampling parameters of a request that omits them: the model manifest's (`gonka model list`).
    pub defaults: GenerationDefaults,
    /// Prompt tokens whose keys and values the prefix cache keeps for later prompts that start with
    /// them (0 disables it; each token costs `2 × layers × kv_dim × 4` bytes, 45 KiB for SmolLM2-135M).
    pub prefix_cache_tokens: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_sequences: 16,
            queue_capacity: 256,
            prefill_chunk_tokens: 512,
            kv_tokens_max: 16 * 1024,
            max_tokens_cap: 4096,
            prefix_cache_tokens: 4096,
            threads: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            layers: None,
            defaults: GenerationDefaults::OPENAI,
        }
    }
}

/// Loading the engine failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The model file.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The tokenizer.
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    /// The chat template.
    #[error(transparent)]
    Template(#[from] crate::chat::TemplateError),
    /// Starting the engine thread.
    #[error("starting the engine thread: {0}")]
    Thread(std::io::Error),
}

enum Job {
    Generate(Waiting),
    Score {
        prompt: Vec<u32>,
        completion: Vec<u32>,
        top_k: usize,
        sampling: Option<SamplingParams>,
        constraint: Option<Constraint>,
        reply: oneshot::Sender<Result<Vec<ScoredPosition>, EngineError>>,
    },
}

#[derive(Debug, Default)]
struct Counters {
    waiting: AtomicUsize,
    active: AtomicUsize,
}

/// The embedded engine. Cheap to share behind an `Arc`; dropping it stops the engine thread.
pub struct Engine {
    info: ModelInfo,
    config: EngineConfig,
    tokenizer: Arc<Tokenizer>,
    template: ChatTemplate,
    grammars: Grammars,
    jobs: Mutex<Option<std_mpsc::Sender<Job>>>,
    counters: Arc<Counters>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A generation accepted by `submit`, waiting for a slot.
struct Waiting {
    request: GenerationRequest,
    /// Its grammar, compiled (when it names one).
    constraint: Option<Constraint>,
    events: mpsc::Sender<GenerationEvent>,
    /// The request's other choices (`n > 1`): they share its prefill and fork from it.
    forks: Vec<Fork>,
}

/// Another answer to a sequence's prompt, started from the sequence's KV cache once its prefill is done.
struct Fork {
    sampler: Sampler,
    events: mpsc::Sender<GenerationEvent>,
}

impl Waiting {
    /// Whether nobody waits for any of its answers any more.
    fn abandoned(&self) -> bool {
        self.events.is_closed() && self.forks.iter().all(|fork| fork.events.is_closed())
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("info", &self.info)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Load the GGUF at `path`, served as `name` with identity `content_hash`, and start the engine thread.
    pub fn load(
        path: &Path,
        name: &str,
        content_hash: &str,
        mut config: EngineConfig,
    ) -> Result<Self, LoadError> {
        let io = |source| ModelError::Io { path: path.display().to_string(), source };
        let mut file = File::open(path).map_err(io)?;
        let content = Content::read(&mut file).map_err(ModelError::from)?;
        let tokenizer = Arc::new(Tokenizer::from_gguf(&content)?);
        let template = ChatTemplate::from_gguf(&content)?;
        let mut model = Llama::from_content(&content, &mut file, config.threads)?;
        if let Some(layers) = config.layers {
            model.keep_layers(layers);
        }
        let context_length = model.config().context_length;
        config.kv_tokens_max = config.kv_tokens_max.max(context_length);
        config.max_sequences = config.max_sequences.max(1);
        config.prefill_chunk_tokens = config.prefill_chunk_tokens.max(1);
        let info = ModelInfo {
            name: name.to_string(),
            content_hash: content_hash.to_string(),
            context_length,
            defaults: config.defaults,
        };
        let (jobs, receiver) = std_mpsc::channel();
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            model,
            tokenizer: tokenizer.clone(),
            config: config.clone(),
            jobs: receiver,
            counters: counters.clone(),
            waiting: VecDeque::new(),
            active: Vec::new(),
            kv_reserved: 0,
            prefix: PrefixCache::new(config.prefix_cache_tokens),
        };
        let thread = std::thread::Builder::new()
            .name("gonka-engine".into())
            .spawn(move || worker.run())
            .map_err(LoadError::Thread)?;
        Ok(Self {
            info,
            config,
            grammars: Grammars::new(Arc::clone(&tokenizer)),
            tokenizer,
            template,
            jobs: Mutex::new(Some(jobs)),
            counters,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The grammars of structured outputs, compiled for this engine's tokenizer.
    pub fn grammars(&self) -> &Grammars {
        &self.grammars
    }

    /// The limits in force.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Teacher-forced scoring of `completion` after `prompt` on the engine thread (between batch steps).
    pub async fn score(
        &self,
        prompt: Vec<u32>,
        completion: Vec<u32>,
        top_k: usize,
    ) -> Result<Vec<ScoredPosition>, EngineError> {
        self.queue_score(prompt, completion, top_k, None)?.await.map_err(|_| EngineError::ShutDown)?
    }

    /// Queues a scoring job; the receiver gets its result.
    fn queue_score(
        &self,
        prompt: Vec<u32>,
        completion: Vec<u32>,
        top_k: usize,
        sampling: Option<SamplingParams>,
    ) -> Result<oneshot::Receiver<Result<Vec<ScoredPosition>, EngineError>>, EngineError> {
        let needed = prompt.len() + completion.len();
        if needed > self.info.context_length {
            return Err(EngineError::ContextLengthExceeded {
                prompt_tokens: prompt.len(),
                max_tokens: completion.len(),
                context_length: self.info.context_length,
            });
        }
        // Scoring takes tokens from other hosts' payloads: one outside the vocabulary is the caller's
        // error, not the engine's.
        let vocab = self.tokenizer.vocab_size();
        if prompt.iter().chain(&completion).any(|t| *t as usize >= vocab) {
            return Err(EngineError::InvalidParameter {
                param: "completion",
                message: format!("a token id is outside the vocabulary of {vocab}"),
            });
        }
        let constraint = self.compile(sampling.as_ref())?;
        let (reply, answer) = oneshot::channel();
        let top_k = top_k.min(TOP_LOGPROBS_MAX);
        self.send(Job::Score { prompt, completion, top_k, sampling, constraint, reply })?;
        Ok(answer)
    }

    fn send(&self, job: Job) -> Result<(), EngineError> {
        let jobs = self.jobs.lock().map_err(|_| EngineError::ShutDown)?;
        jobs.as_ref().ok_or(EngineError::ShutDown)?.send(job).map_err(|_| EngineError::ShutDown)
    }

    /// Queues a validated request (and the choices forking from it) as one waiting job, within the
    /// queue bound; returns the first answer's stream.
    fn enqueue(
        &self,
        request: GenerationRequest,
        constraint: Option<Constraint>,
        forks: Vec<Fork>,
    ) -> Result<GenerationStream, EngineError> {
        let capacity = self.config.queue_capacity;
        // Reserve a queue place first so concurrent submitters cannot overshoot the bound.
        let reserved = self
            .counters
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| (w < capacity).then_some(w + 1));
        if reserved.is_err() {
            return Err(EngineError::Overloaded { queue_capacity: capacity });
        }
        // One event per token plus the final one: the engine never blocks on a slow reader.
        let (events, stream) = mpsc::channel(request.max_tokens + 2);
        if let Err(e) = self.send(Job::Generate(Waiting { request, constraint, events, forks })) {
            self.counters.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(e);
        }
        Ok(stream)
    }

    /// The request's grammar compiled for this tokenizer, if it names one.
    fn compile(&self, sampling: Option<&SamplingParams>) -> Result<Option<Constraint>, EngineError> {
        match sampling.and_then(|s| s.grammar.as_ref()) {
            Some(grammar) => self.grammars.compile(grammar).map(Some),
            None => Ok(None),
        }
    }

    /// Whether `n` answers to `request` fit at once: sequences and KV cache positions.
    fn check_room(&self, request: &GenerationRequest, n: usize) -> Result<(), EngineError> {
        if n <= 1 {
            return Ok(());
        }
        if n > self.config.max_sequences {
            return Err(EngineError::InvalidParameter {
                param: "n",
                message: format!(
                    "this engine generates at most {} answers at once",
                    self.config.max_sequences
                ),
            });
        }
        let reserve = (request.prompt_tokens.len() + request.max_tokens).saturating_mul(n);
        if reserve > self.config.kv_tokens_max {
            return Err(EngineError::InvalidParameter {
                param: "n",
                message: format!(
                    "{n} answers of up to {} tokens after this prompt need {reserve} cache positions; this engine holds {}",
                    request.max_tokens, self.config.kv_tokens_max
                ),
            });
        }
        Ok(())
    }

    /// Checks `request` against the engine's limits and compiles its grammar.
    fn validate(&self, request: &GenerationRequest) -> Result<Option<Constraint>, EngineError> {
        let invalid = |param, message: String| Err(EngineError::InvalidParameter { param, message });
        let s = &request.sampling;
        if request.prompt_tokens.is_empty() {
            return invalid("messages", "the prompt is empty".into());
        }
        if request.max_tokens == 0 || request.max_tokens > self.config.max_tokens_cap {
            return invalid("max_tokens", format!("must be between 1 and {}", self.config.max_tokens_cap));
        }
        if !s.temperature.is_finite() || s.temperature < 0.0 {
            return invalid("temperature", "must be a finite number ≥ 0".into());
        }
        if !s.top_p.is_finite() || s.top_p <= 0.0 || s.top_p > 1.0 {
            return invalid("top_p", "must be in (0, 1]".into());
        }
        if request.top_logprobs.is_some_and(|n| n > TOP_LOGPROBS_MAX) {
            return invalid("top_logprobs", format!("must be at most {TOP_LOGPROBS_MAX}"));
        }
        let vocab = self.tokenizer.vocab_size();
        if request.prompt_tokens.iter().any(|t| *t as usize >= vocab) {
            return invalid("messages", "prompt holds a token id outside the vocabulary".into());
        }
        let adjustments = &s.adjustments;
        for (param, penalty) in [
            ("presence_penalty", adjustments.presence_penalty),
            ("frequency_penalty", adjustments.frequency_penalty),
        ] {
            if !penalty.is_finite() {
                return invalid(param, "must be a finite number".into());
            }
        }
        if let Some((id, _)) =
            adjustments.logit_bias.iter().find(|(id, bias)| *id as usize >= vocab || !bias.is_finite())
        {
            return invalid(
                "logit_bias",
                format!("token {id} is not in the vocabulary of {vocab} tokens, or its bias is not finite"),
            );
        }
        let needed = request.prompt_tokens.len() + request.max_tokens;
        if needed > self.info.context_length {
            return Err(EngineError::ContextLengthExceeded {
                prompt_tokens: request.prompt_tokens.len(),
                max_tokens: request.max_tokens,
                context_length: self.info.context_length,
            });
        }
        self.compile(Some(s))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        if let Ok(mut thread) = self.thread.lock()
            && let Some(handle) = thread.take()
        {
            let _ = handle.join();
        }
    }
}

impl Scorer for Engine {
    fn score(&self, request: ScoreRequest) -> ScoreFuture {
        let ScoreRequest { prompt_tokens, completion_tokens, top_k, sampling } = request;
        match self.queue_score(prompt_tokens, completion_tokens, top_k, sampling) {
            Ok(answer) => Box::pin(async move { answer.await.map_err(|_| EngineError::ShutDown)? }),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }

    fn completion_text(
        &self,
        prompt_len: usize,
        completion: &[u32],
        stop: &[String],
        max_tokens: usize,
    ) -> CompletionText {
        let mut ending = Ending::new(stop, prompt_len, max_tokens, false, self.info.context_length);
        let mut text = String::new();
        for (i, &id) in completion.iter().enumerate() {
            let step = ending.push(&self.tokenizer, id);
            text.push_str(&step.text);
            if step.reason.is_some() {
                return CompletionText { text, ended_at: Some(i) };
            }
        }
        CompletionText { text, ended_at: None }
    }
}

/// How a sequence's text and its end follow from its tokens: end-of-turn tokens, stop sequences,
/// `max_tokens` and the context window. Generation streams through it and validators rebuild an
/// answer's text through it ([`Scorer::completion_text`]), so the two cannot disagree.
#[derive(Clone)]
struct Ending {
    text: TextStream,
    prompt_len: usize,
    completion_tokens: usize,
    max_tokens: usize,
    ignore_eos: bool,
    context_length: usize,
}

/// One token's text, and the reason the sequence ends with it, if it does.
struct Step {
    text: String,
    reason: Option<FinishReason>,
}

impl Ending {
    fn new(
        stop: &[String],
        prompt_len: usize,
        max_tokens: usize,
        ignore_eos: bool,
        context_length: usize,
    ) -> Self {
        Ending {
            text: TextStream::new(stop),
            prompt_len,
            completion_tokens: 0,
            max_tokens,
            ignore_eos,
            context_length,
        }
    }

    fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Step {
        self.completion_tokens += 1;
        let is_end_of_turn = !self.ignore_eos && tokenizer.stop_ids().contains(&id);
        let (mut text, mut reason) = if is_end_of_turn {
            (String::new(), Some(FinishReason::Stop))
        } else {
            let delta = self.text.push(tokenizer.token_bytes(id));
            (delta.text, delta.stopped.then_some(FinishReason::Stop))
        };
        let context_full = self.prompt_len + self.completion_tokens >= self.context_length;
        if reason.is_none() && (self.completion_tokens >= self.max_tokens || context_full) {
            reason = Some(FinishReason::Length);
        }
        if reason.is_some() {
            text.push_str(&self.text.finish());
        }
        Step { text, reason }
    }
}

impl Generator for Engine {
    fn model_info(&self) -> &ModelInfo {
        &self.info
    }

    fn render_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, EngineError> {
        let text = self
            .template
            .render(messages)
            .map_err(|e| EngineError::InvalidParameter { param: "messages", message: e.to_string() })?;
        self.tokenizer.encode(&text).map_err(|e| EngineError::Model(e.to_string()))
    }

    fn check(&self, request: &GenerationRequest) -> Result<(), EngineError> {
        self.validate(request).map(|_| ())
    }

    fn check_choices(&self, request: &GenerationRequest, n: usize) -> Result<(), EngineError> {
        self.validate(request)?;
        self.check_room(request, n)
    }

    fn tokenize(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        self.tokenizer.encode(text).map_err(|e| EngineError::Model(e.to_string()))
    }

    fn token_bytes(&self, id: u32) -> Vec<u8> {
        self.tokenizer.token_bytes(id).to_vec()
    }

    fn score_prompt(&self, prompt: Vec<u32>, top_k: usize) -> ScoreFuture {
        if prompt.len() < 2 {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        }
        let completion = prompt[1..].to_vec();
        Scorer::score(
            self,
            ScoreRequest {
                prompt_tokens: prompt[..1].to_vec(),
                completion_tokens: completion,
                top_k,
                sampling: None,
            },
        )
    }

    fn submit(&self, request: GenerationRequest) -> Result<GenerationStream, EngineError> {
        let constraint = self.validate(&request)?;
        self.enqueue(request, constraint, Vec::new())
    }

    /// The choices share one prefill: the first is prefilled, and the others fork from its KV cache
    /// when it draws its first token (each with its own seed and grammar state).
    fn submit_choices(
        &self,
        request: GenerationRequest,
        n: usize,
    ) -> Result<Vec<GenerationStream>, EngineError> {
        if n <= 1 {
            return Ok(vec![self.submit(request)?]);
        }
        let constraint = self.validate(&request)?;
        self.check_room(&request, n)?;
        let seed = request.sampling.seed;
        let mut streams = Vec::with_capacity(n);
        let mut forks = Vec::with_capacity(n - 1);
        for choice in 1..n {
            let mut sampling = request.sampling.clone();
            sampling.seed = gonka_engine_api::choice_seed(seed, choice);
            let constraint = self.compile(Some(&sampling))?;
            let (events, stream) = mpsc::channel(request.max_tokens + 2);
            forks.push(Fork { sampler: Sampler::constrained(sampling, constraint), events });
            streams.push(stream);
        }
        streams.insert(0, self.enqueue(request, constraint, forks)?);
        Ok(streams)
    }

    fn queue_depth(&self) -> usize {
        self.counters.waiting.load(Ordering::Acquire)
    }

    fn active_sequences(&self) -> usize {
        self.counters.active.load(Ordering::Acquire)
    }
}

struct Sequence {
    events: mpsc::Sender<GenerationEvent>,
    prompt: Vec<u32>,
    prefilled: usize,
    /// The last sampled token, fed at the next decode step.
    next_input: u32,
    top_logprobs: Option<usize>,
    sampler: Sampler,
    ending: Ending,
    cache: KvCache,
    kv_reserved: usize,
    /// Choices still to fork from this sequence when it draws its first token.
    forks: Vec<Fork>,
    /// Prompt tokens restored from the prefix cache.
    cached: usize,
}

impl Sequence {
    fn is_decoding(&self) -> bool {
        self.prefilled == self.prompt.len()
    }
}

struct Worker {
    model: Llama,
    tokenizer: Arc<Tokenizer>,
    config: EngineConfig,
    jobs: std_mpsc::Receiver<Job>,
    counters: Arc<Counters>,
    waiting: VecDeque<Waiting>,
    active: Vec<Sequence>,
    kv_reserved: usize,
    prefix: PrefixCache,
}

/// What one sequence contributed to a step.
enum Part {
    Decode,
    Prefill { len: usize },
}

impl Worker {
    fn run(mut self) {
        loop {
            if self.active.is_empty() && self.waiting.is_empty() {
                match self.jobs.recv() {
                    Ok(job) => self.accept(job),
                    Err(_) => return,
                }
            }
            while let Ok(job) = self.jobs.try_recv() {
                self.accept(job);
            }
            self.drop_cancelled();
            self.admit();
            self.publish_counts();
            if !self.active.is_empty() {
                if let Err(e) = self.step() {
                    tracing::error!(error = %e, "engine step failed; failing the batch");
                    for seq in self.active.drain(..) {
                        let failed = || GenerationEvent::Failed(EngineError::Model(e.to_string()));
                        let _ = seq.events.try_send(failed());
                        for fork in &seq.forks {
                            let _ = fork.events.try_send(failed());
                        }
                    }
                    self.kv_reserved = 0;
                }
                self.publish_counts();
            }
        }
    }

    fn accept(&mut self, job: Job) {
        match job {
            Job::Generate(waiting) => self.waiting.push_back(waiting),
            Job::Score { prompt, completion, top_k, sampling, constraint, reply } => {
                let result = score(&self.model, &prompt, &completion, top_k, sampling.as_ref(), constraint)
                    .map_err(|e| EngineError::Model(e.to_string()));
                let _ = reply.send(result);
            }
        }
    }

    /// `waiting` counts requests from `submit` until they are admitted or dropped (it includes jobs
    /// still in the channel, which is what keeps the queue bound exact); only this thread writes `active`.
    fn publish_counts(&self) {
        self.counters.active.store(self.active.len(), Ordering::Release);
    }

    fn drop_cancelled(&mut self) {
        let queued = self.waiting.len();
        self.waiting.retain(|waiting| !waiting.abandoned());
        self.counters.waiting.fetch_sub(queued - self.waiting.len(), Ordering::AcqRel);
        let before = self.active.len();
        let mut freed = 0;
        self.active.retain(|seq| {
            let keep = !seq.events.is_closed() || seq.forks.iter().any(|fork| !fork.events.is_closed());
            if !keep {
                freed += seq.kv_reserved;
            }
            keep
        });
        self.kv_reserved -= freed;
        if self.active.len() < before {
            tracing::debug!(
                cancelled = before - self.active.len(),
                "dropped sequences whose client went away"
            );
        }
    }

    /// Move waiting requests into free slots, first come first served, while their KV reservation fits.
    fn admit(&mut self) {
        while let Some(Waiting { request, forks, .. }) = self.waiting.front() {
            // A request's choices take their slots when it is admitted, though they fork later.
            let slots = self.active.iter().map(|seq| 1 + seq.forks.len()).sum::<usize>();
            if slots + 1 + forks.len() > self.config.max_sequences {
                break;
            }
            let reserve = (request.prompt_tokens.len() + request.max_tokens) * (1 + forks.len());
            if self.kv_reserved + reserve > self.config.kv_tokens_max {
                break;
            }
            let Some(Waiting { request, constraint, events, forks }) = self.waiting.pop_front() else {
                break;
            };
            self.counters.waiting.fetch_sub(1, Ordering::AcqRel);
            self.kv_reserved += reserve;
            let mut cache = KvCache::new(&self.model);
            let cached = self.prefix.restore(&request.prompt_tokens, &mut cache);
            self.active.push(Sequence {
                events,
                prefilled: cached,
                cached,
                next_input: 0,
                top_logprobs: request.top_logprobs,
                sampler: Sampler::constrained(request.sampling.clone(), constraint),
                ending: Ending::new(
                    &request.stop,
                    request.prompt_tokens.len(),
                    request.max_tokens,
                    request.ignore_eos,
                    self.model.config().context_length,
                ),
                cache,
                kv_reserved: reserve,
                forks,
                prompt: request.prompt_tokens,
            });
        }
    }

    /// One forward pass over every decoding sequence and a chunk of prompts, then sampling.
    fn step(&mut self) -> Result<(), ModelError> {
        let mut prefill_budget = self.config.prefill_chunk_tokens;
        let mut parts = Vec::with_capacity(self.active.len());
        let mut segments = Vec::with_capacity(self.active.len());
        for (index, seq) in self.active.iter_mut().enumerate() {
            if seq.is_decoding() {
                parts.push((index, Part::Decode));
                segments.push(Segment {
                    cache: &mut seq.cache,
                    tokens: std::slice::from_ref(&seq.next_input),
                    outputs: Outputs::Last,
                });
            } else if prefill_budget > 0 {
                let len = (seq.prompt.len() - seq.prefilled).min(prefill_budget);
                prefill_budget -= len;
                let finishes = seq.prefilled + len == seq.prompt.len();
                parts.push((index, Part::Prefill { len }));
                segments.push(Segment {
                    cache: &mut seq.cache,
                    tokens: &seq.prompt[seq.prefilled..seq.prefilled + len],
                    outputs: if finishes { Outputs::Last } else { Outputs::None },
                });
            }
        }
        let hidden = self.model.forward(&mut segments)?;
        drop(segments);

        let mut sampled_rows = Vec::new();
        let mut sampled_seqs = Vec::new();
        for ((index, part), rows) in parts.iter().zip(&hidden) {
            if let Part::Prefill { len } = part {
                let seq = &mut self.active[*index];
                seq.prefilled += len;
                // A prompt just prefilled: its full blocks serve later prompts that start the same way.
                if seq.is_decoding() {
                    self.prefix.keep(&seq.prompt, &seq.cache);
                }
            }
            if !rows.is_empty() {
                sampled_rows.extend_from_slice(rows);
                sampled_seqs.push(*index);
            }
        }
        if sampled_seqs.is_empty() {
            return Ok(());
        }
        let logits = self.model.logits(&sampled_rows)?;
        let vocab = logits.len() / sampled_seqs.len();
        let mut finished = Vec::new();
        for (row, index) in logits.chunks_exact(vocab).zip(sampled_seqs) {
            // Other choices start from this prompt's cache and draw their first token from the same row.
            for fork in self.fork(index) {
                if !self.emit_token(fork, row) {
                    finished.push(fork);
                }
            }
            if !self.emit_token(index, row) {
                finished.push(index);
            }
        }
        finished.sort_unstable();
        for index in finished.into_iter().rev() {
            let seq = self.active.swap_remove(index);
            self.kv_reserved -= seq.kv_reserved;
        }
        Ok(())
    }

    /// Starts the choices waiting on sequence `index` (just prefilled) as sequences of their own, each
    /// with a copy of its cache and its share of its KV reservation; returns their indices.
    fn fork(&mut self, index: usize) -> Vec<usize> {
        let forks = std::mem::take(&mut self.active[index].forks);
        let mut started = Vec::with_capacity(forks.len());
        for Fork { sampler, events } in forks {
            let parent = &mut self.active[index];
            let reserve = parent.prompt.len() + parent.ending.max_tokens;
            parent.kv_reserved -= reserve;
            let child = Sequence {
                events,
                prompt: parent.prompt.clone(),
                prefilled: parent.prefilled,
                next_input: 0,
                top_logprobs: parent.top_logprobs,
                sampler,
                // The parent has drawn nothing yet: its ending is still the fresh one each choice needs.
                ending: parent.ending.clone(),
                cache: parent.cache.clone(),
                kv_reserved: reserve,
                forks: Vec::new(),
                cached: parent.cached,
            };
            started.push(self.active.len());
            self.active.push(child);
        }
        started
    }

    /// Sample and send one token; returns false when the sequence is over (finished or abandoned).
    fn emit_token(&mut self, index: usize, logits: &[f32]) -> bool {
        let tokenizer = &self.tokenizer;
        let seq = &mut self.active[index];
        let id = seq.sampler.sample(logits);
        seq.next_input = id;
        let logprobs = seq.top_logprobs.map(|n| position_logprobs(tokenizer, logits, id, n));
        let Step { text, reason } = seq.ending.push(tokenizer, id);
        if seq.events.try_send(GenerationEvent::Token { id, text, logprobs }).is_err() {
            return false;
        }
        match reason {
            None => true,
            Some(reason) => {
                let usage = Usage {
                    prompt_tokens: seq.prompt.len(),
                    completion_tokens: seq.ending.completion_tokens,
                    cached_tokens: seq.cached,
                };
                let _ = seq.events.try_send(GenerationEvent::Finished { reason, usage });
                false
            }
        }
    }
}

fn token_logprob(tokenizer: &Tokenizer, id: u32, logprob: f32) -> TokenLogprob {
    let bytes = tokenizer.token_bytes(id).to_vec();
    TokenLogprob { id, text: String::from_utf8_lossy(&bytes).into_owned(), bytes, logprob }
}

fn position_logprobs(tokenizer: &Tokenizer, logits: &[f32], chosen: u32, top: usize) -> PositionLogprobs {
    let scored = score_position(logits, chosen, top);
    PositionLogprobs {
        chosen: token_logprob(tokenizer, chosen, scored.logprob),
        top: scored.top.into_iter().map(|(id, logprob)| token_logprob(tokenizer, id, logprob)).collect(),
    }
}

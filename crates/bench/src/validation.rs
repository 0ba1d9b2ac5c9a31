//! `gonka bench validation` (`docs/spec/validation.md` §9): answer validation on the embedded engine —
//! the false-positive rate on honest answers, the detection rate of each cheat kind, what validating
//! costs against serving, and a host's throughput while it validates against the same host not
//! validating, in the same run.
//!
//! Answers are made the way executors make them (`gonka_node::inference::answer_recorded`: the seed
//! rule, top-k logprobs recorded whatever the request asked) and judged the way validators judge them
//! (`gonka_node::inference::validator::rescore` and `gonka_host::verdict::verdict`); the cheats are the
//! devnet's (`gonka_node::inference::cheat`) and the simulator's kinds.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use gonka_api::ApiLimits;
use gonka_chain::{Inference, InferenceStatus, Verdict};
use gonka_engine::{Engine, EngineConfig, ScoreRequest, Scorer};
use gonka_host::verdict::{Payload, RecordedPosition, Tolerance, commitments, verdict};
use gonka_node::inference::validator::{Rescore, rescore};
use gonka_node::inference::{answer_recorded, cheat};
use gonka_primitives::{Address, Amount, Hash};
use serde_json::json;

/// Top logprobs recorded per position (the chain's default `recorded_top_k`).
pub const TOP_K: usize = 5;

/// How an answer is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answerer {
    /// An honest executor.
    Honest,
    /// One of the devnet's cheats.
    Cheat(cheat::Cheat),
}

/// One request of the workload: a chat or text completion body and the inference id it is answered under.
#[derive(Debug, Clone)]
pub struct Case {
    /// The request body.
    pub body: Vec<u8>,
    /// The inference id (seeds the answer when the body names no seed).
    pub id: Hash,
    /// The `max_tokens` the TA escrowed (every choice's budget together).
    pub max_tokens: u32,
}

/// `count` requests over `prompts`: greedy and seeded sampling (temperature 0.7, 1.0 with top-p 0.9,
/// some with their own seed, some with presence and frequency penalties and a logit bias, some
/// constrained to a JSON Schema, some forced to call a tool, some with two choices), chats and text
/// completions, several answer
/// lengths and prompt lengths (a prompt repeated up to three times), in a fixed order.
pub fn cases(prompts: &[String], count: usize) -> Vec<Case> {
    (0..count)
        .map(|i| {
            let prompt = prompts[i % prompts.len()].repeat(1 + i % 3);
            let max_tokens = [8u32, 16, 48, 96][i % 4];
            let sampling = match i % 8 {
                0 => json!({"temperature": 0.0}),
                1 => json!({"temperature": 0.7}),
                2 => json!({"temperature": 1.0, "top_p": 0.9}),
                3 => json!({"temperature": 1.0, "seed": i}),
                4 => json!({"temperature": 0.8, "top_k": 40}),
                // Penalties, and biases on two arbitrary token ids.
                5 => json!({"temperature": 0.9, "presence_penalty": 0.8, "frequency_penalty": 0.4,
                            "logit_bias": {"13": -2.5, "1030": 1.5}}),
                7 => json!({"temperature": 0.8, "tool_choice": "required", "parallel_tool_calls": false, "tools": [
                    {"type": "function", "function": {"name": "lookup", "description": "Search the notes",
                     "parameters": {"type": "object", "properties": {"query": {"type": "string", "maxLength": 40},
                                    "limit": {"type": "integer", "minimum": 1, "maximum": 10}},
                                    "required": ["query", "limit"], "additionalProperties": false}}}]}),
                _ => json!({"temperature": 0.7, "response_format": {"type": "json_schema", "json_schema": {
                    "name": "summary", "strict": true, "schema": {
                        "type": "object",
                        "properties": {"topic": {"type": "string", "maxLength": 60},
                                       "sentiment": {"enum": ["positive", "neutral", "negative"]},
                                       "keywords": {"type": "array", "items": {"type": "string"}, "maxItems": 4}},
                        "required": ["topic", "sentiment", "keywords"], "additionalProperties": false}}}}),
            };
            // A third of the free and penalized requests are text completions: a raw prompt, no template.
            let mut body = if i % 8 <= 5 && i % 3 == 2 {
                json!({
                    "model": gonka_engine::store::DEFAULT_MODEL.name,
                    "prompt": format!("Question: {prompt}\nAnswer:"),
                    "max_tokens": max_tokens,
                })
            } else {
                json!({
                    "model": gonka_engine::store::DEFAULT_MODEL.name,
                    "messages": [{"role": "user", "content": prompt}],
                    "max_tokens": max_tokens,
                })
            };
            if let (Some(body), Some(extra)) = (body.as_object_mut(), sampling.as_object()) {
                body.extend(extra.clone());
            }
            // Some sampled chats ask for two answers: the signed budget is both answers' tokens.
            let choices = if i % 8 == 1 && i % 3 == 1 { 2 } else { 1 };
            if choices > 1 {
                body["n"] = json!(choices);
            }
            Case {
                body: serde_json::to_vec(&body).expect("a JSON value serializes"),
                id: Hash::digest_parts(&[b"gonka/bench/validation", &(i as u64).to_be_bytes()]),
                max_tokens: max_tokens * choices,
            }
        })
        .collect()
}

/// The engines answers are made and judged with.
pub struct Harness {
    /// The real model.
    pub engine: Arc<Engine>,
    /// The cheaper model the `substitute-model` and `prefill` cheats generate with.
    pub cheap: Arc<Engine>,
    /// The API limits of executors and validators.
    pub limits: ApiLimits,
}

impl Harness {
    /// Loads the embedded model twice: whole, and cut to [`cheat::CHEAP_LAYERS`] layers.
    pub fn load(max_sequences: usize) -> anyhow::Result<Harness> {
        let model = crate::default_model()?;
        let load = |layers| {
            let config = EngineConfig {
                max_sequences,
                threads: gonka_engine::compute_threads(),
                layers,
                ..EngineConfig::default()
            };
            Engine::load(&model.path, &model.name, &model.content_hash, config)
                .with_context(|| format!("loading {}", model.path.display()))
        };
        Ok(Harness {
            engine: Arc::new(load(None)?),
            cheap: Arc::new(load(Some(cheat::CHEAP_LAYERS))?),
            limits: ApiLimits::default(),
        })
    }

    /// What the executor serves `case` under: its signed budget split among its choices.
    fn limits(&self, case: &Case) -> ApiLimits {
        let max_tokens = case.max_tokens as usize / gonka_api::body_choices(&case.body);
        ApiLimits { max_tokens_default: max_tokens, max_tokens_cap: max_tokens, ..self.limits.clone() }
    }

    /// The answer `answerer` gives to `case`, as it would keep it for validators.
    pub async fn answer(&self, answerer: Answerer, case: &Case) -> anyhow::Result<Payload> {
        let limits = self.limits(case);
        let honest = || answer_recorded(&*self.engine, &case.body, &case.id, &limits, TOP_K);
        let mut payload = match answerer {
            Answerer::Honest | Answerer::Cheat(cheat::Cheat::RefusePayload) => honest().await?,
            Answerer::Cheat(cheat::Cheat::SubstituteModel) => {
                answer_recorded(&*self.cheap, &case.body, &case.id, &limits, TOP_K).await?
            }
            Answerer::Cheat(cheat::Cheat::Prefill) => {
                let mut cheap = answer_recorded(&*self.cheap, &case.body, &case.id, &limits, TOP_K).await?;
                let (request, _) = gonka_api::generation_request(&case.body, &*self.engine, &limits)?;
                let scored = Scorer::score(
                    &*self.engine,
                    ScoreRequest {
                        prompt_tokens: request.prompt_tokens,
                        completion_tokens: cheap.completion_token_ids.clone(),
                        top_k: TOP_K,
                        sampling: None,
                    },
                )
                .await?;
                cheap.recorded = scored
                    .into_iter()
                    .map(|p| RecordedPosition { token: p.token, logprob: p.logprob, top: p.top })
                    .collect();
                cheap
            }
            Answerer::Cheat(cheat::Cheat::EditAnswer) => {
                let mut answer = honest().await?;
                let at = cheat::EDIT_POSITION.min(answer.completion_token_ids.len().saturating_sub(1));
                if let Some(position) = answer.recorded.get_mut(at)
                    && let Some(&(token, logprob)) = position.top.iter().find(|(t, _)| *t != position.token)
                {
                    position.token = token;
                    position.logprob = logprob;
                    answer.completion_token_ids[at] = token;
                    let (request, _) = gonka_api::generation_request(&case.body, &*self.engine, &limits)?;
                    answer.completion = Scorer::completion_text(
                        &*self.engine,
                        request.prompt_tokens.len(),
                        &answer.completion_token_ids,
                        &request.stop,
                        request.max_tokens,
                    )
                    .text;
                }
                answer
            }
            Answerer::Cheat(cheat::Cheat::IgnoreConstraints) => {
                // Generated as if the body named no grammar (no schema, no forced call), penalties or
                // biases, claiming it did.
                let mut body: serde_json::Value = serde_json::from_slice(&case.body)?;
                if let Some(fields) = body.as_object_mut() {
                    for field in [
                        "response_format",
                        "tool_choice",
                        "presence_penalty",
                        "frequency_penalty",
                        "logit_bias",
                    ] {
                        fields.remove(field);
                    }
                }
                let mut answer =
                    answer_recorded(&*self.engine, &serde_json::to_vec(&body)?, &case.id, &limits, TOP_K)
                        .await?;
                answer.body = String::from_utf8_lossy(&case.body).into_owned();
                answer
            }
            Answerer::Cheat(cheat::Cheat::WrongSeed) => {
                // Sampled under another id's seed (or the named seed changed), claiming the rule's.
                let mut body: serde_json::Value = serde_json::from_slice(&case.body)?;
                if let Some(seed) = body.get("seed").and_then(serde_json::Value::as_u64) {
                    body["seed"] = json!(seed ^ cheat::WRONG_SEED);
                }
                let other = Hash::digest_parts(&[b"wrong", &case.id.0]);
                let mut answer =
                    answer_recorded(&*self.engine, &serde_json::to_vec(&body)?, &other, &limits, TOP_K)
                        .await?;
                let honest_seed =
                    gonka_host::verdict::sampling_seed(gonka_api::body_seed(&case.body), &case.id);
                answer.body = String::from_utf8_lossy(&case.body).into_owned();
                answer.seed = honest_seed;
                answer
            }
        };
        (payload.response_hash, payload.logprobs_hash) = commitments(&payload.answers());
        Ok(payload)
    }

    /// The chain's record of `case` answered with `payload` (what the Finish committed to).
    pub fn record(case: &Case, payload: &Payload) -> Inference {
        Inference {
            requester: Address([1; 20]),
            transfer_agent: Some(Address([2; 20])),
            vouched_by: Address([2; 20]),
            executor: Address([3; 20]),
            model: Hash::ZERO,
            prompt_hash: Hash::digest(&case.body),
            response_hash: Some(payload.response_hash),
            prompt_tokens: payload.prompt_tokens,
            cached_tokens: payload.cached_tokens,
            completion_tokens: payload.completion_tokens,
            max_tokens: case.max_tokens,
            price_per_token: Amount(1),
            cached_price_ppm: 1_000_000,
            cost: Amount::ZERO,
            status: InferenceStatus::Finished,
            first_seen_height: 1,
            deadline: 100,
            timestamp_ns: 0,
            seed: payload.seed,
            logprobs_hash: Some(payload.logprobs_hash),
            finished_height: 1,
            epoch: 0,
            requester_paid: Amount::ZERO,
            fee_settled: false,
            settles_at: 0,
            prune_at_ms: 0,
        }
    }

    /// A validator's verdict on `payload` for `case`, with the embedded model's tolerance (exact).
    pub async fn judge(&self, case: &Case, payload: &Payload) -> anyhow::Result<Verdict> {
        let record = Harness::record(case, payload);
        let tolerance = Tolerance { distance_max_ppm: 0, replay_ppm: 0 };
        match rescore(&*self.engine, &self.limits, case.id, &record, payload, TOP_K).await {
            Ok(rescoring) => Ok(verdict(&record, payload, &rescoring, tolerance)),
            Err(Rescore::Uncomparable) => Ok(Verdict::failed(gonka_chain::Failure::Uncomparable)),
            Err(Rescore::Failed(error)) => anyhow::bail!(error),
        }
    }

    /// Answers every case (8 at a time, so they come from batched decoding as in production), then
    /// judges each; returns each honest-or-cheated answer, its verdict, and the seconds spent
    /// generating and re-scoring.
    pub async fn run(&self, answerer: Answerer, cases: &[Case]) -> anyhow::Result<Judged> {
        let mut judged = Judged::default();
        for group in cases.chunks(8) {
            let started = Instant::now();
            let answers = futures::future::join_all(group.iter().map(|c| self.answer(answerer, c))).await;
            judged.generating += started.elapsed();
            for (case, answer) in group.iter().zip(answers) {
                let answer = answer?;
                let started = Instant::now();
                let verdict = self.judge(case, &answer).await?;
                judged.rescoring += started.elapsed();
                judged.answers.push((answer, verdict));
            }
        }
        Ok(judged)
    }
}

/// Answers and what validation made of them.
#[derive(Debug, Default)]
pub struct Judged {
    /// Each answer and its verdict.
    pub answers: Vec<(Payload, Verdict)>,
    /// Time spent generating.
    pub generating: Duration,
    /// Time spent re-scoring.
    pub rescoring: Duration,
}

impl Judged {
    /// Answers that failed.
    pub fn failed(&self) -> usize {
        self.answers.iter().filter(|(_, v)| !v.passed()).count()
    }
}

/// Arguments of `gonka bench validation`.
#[derive(clap::Args, Debug)]
pub struct ValidationArgs {
    /// Honest answers judged (the false-positive rate).
    #[arg(long, default_value_t = 1000)]
    honest: usize,
    /// Answers of each cheat kind judged (the detection rate).
    #[arg(long, default_value_t = 200)]
    cheats: usize,
    /// Seconds of each throughput phase (validating, and not).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Prompts, one per line.
    #[arg(long, default_value = "bench/prompts-scoring.txt")]
    prompts: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// `gonka bench validation`.
#[allow(clippy::print_stdout)]
pub(crate) async fn validation_bench(args: ValidationArgs) -> anyhow::Result<()> {
    let harness = Harness::load(8)?;
    let text = std::fs::read_to_string(&args.prompts)
        .with_context(|| format!("reading {}", args.prompts.display()))?;
    let prompts: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    anyhow::ensure!(!prompts.is_empty(), "{} holds no prompts", args.prompts.display());
    let all = cases(&prompts, args.honest.max(args.cheats));
    let honest = harness.run(Answerer::Honest, &all[..args.honest]).await?;
    let mut detection = serde_json::Map::new();
    for kind in [
        cheat::Cheat::SubstituteModel,
        cheat::Cheat::Prefill,
        cheat::Cheat::EditAnswer,
        cheat::Cheat::WrongSeed,
        cheat::Cheat::IgnoreConstraints,
    ] {
        let cheated = harness.run(Answerer::Cheat(kind), &all[..args.cheats]).await?;
        // An answer identical to the honest one (a greedy answer under another seed, a cheaper model
        // that happened to agree) cheated nobody: only differing answers count.
        let mut differing = 0usize;
        let mut caught = 0usize;
        let mut failures = std::collections::BTreeMap::<&str, usize>::new();
        for (i, (answer, verdict)) in cheated.answers.iter().enumerate() {
            let same = honest.answers.get(i).is_some_and(|(h, _)| {
                h.completion_token_ids == answer.completion_token_ids && h.recorded == answer.recorded
            });
            if same {
                continue;
            }
            differing += 1;
            caught += usize::from(!verdict.passed());
            *failures.entry(verdict.failure.name()).or_default() += 1;
        }
        detection.insert(
            kind.name().into(),
            json!({"answers": cheated.answers.len(), "differing": differing, "caught": caught,
                   "rate": ratio(caught, differing), "by_failure": failures}),
        );
    }
    let per_answer = |d: Duration| d.as_secs_f64() / honest.answers.len().max(1) as f64;
    let (serve_s, rescore_s) = (per_answer(honest.generating), per_answer(honest.rescoring));
    let params = gonka_chain::ValidationParams::default();
    let (busy, idle) = throughput(&harness, &all, Duration::from_secs(args.seconds)).await?;
    let vrf = vrf_costs();
    let report = json!({
        "honest": {"answers": honest.answers.len(), "failed": honest.failed(),
                   "false_positive_rate": ratio(honest.failed(), honest.answers.len())},
        "detection": detection,
        "cost": {
            "serve_seconds_per_answer": serve_s,
            "rescore_seconds_per_answer": rescore_s,
            "rescore_over_serve": rescore_s / serve_s,
            "share_of_serving_at_low_traffic": rescore_s * params.max_validation_average_ppm as f64 / 1e6 / serve_s,
            "share_of_serving_at_full_traffic_reputation_100": rescore_s * params.min_validation_average_ppm as f64 / 1e6 / serve_s,
        },
        "throughput": {"serving_only_tok_s": idle, "serving_while_validating_tok_s": busy, "ratio": busy / idle},
        "vrf_microseconds": {"output": vrf[0], "prove": vrf[1], "verify": vrf[2]},
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// Microseconds per VRF output (what a host computes for every answer it might validate, and the
/// chain per answer at claim time), proof and verification (the executor's and the chain's check), over
/// 2,000 inputs each.
fn vrf_costs() -> [f64; 3] {
    use gonka_chain::validation::{SELECTION_CONTEXT, selection_message};
    let key = gonka_primitives::VrfKey::from_seed(b"bench");
    let public = key.public_key();
    let messages: Vec<Vec<u8>> =
        (0..2_000u64).map(|i| selection_message("bench", 1, &Hash::digest(&i.to_be_bytes()))).collect();
    let time = |work: &dyn Fn(&[u8])| {
        let started = Instant::now();
        for message in &messages {
            work(message);
        }
        started.elapsed().as_secs_f64() * 1e6 / messages.len() as f64
    };
    let output = time(&|m| {
        std::hint::black_box(key.output(SELECTION_CONTEXT, m));
    });
    let prove = time(&|m| {
        std::hint::black_box(key.prove(SELECTION_CONTEXT, m));
    });
    let proofs: Vec<_> = messages.iter().map(|m| (m.clone(), key.prove(SELECTION_CONTEXT, m).1)).collect();
    let started = Instant::now();
    for (message, proof) in &proofs {
        // A distinct context from the memo's key would not help: each input is verified once here.
        std::hint::black_box(public.verify(SELECTION_CONTEXT, message, proof).ok());
    }
    let verify = started.elapsed().as_secs_f64() * 1e6 / proofs.len() as f64;
    [output, prove, verify]
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// Completion tokens/s of 8 concurrent streams for `span`: first while a validator on the same engine
/// re-scores every answer served as it comes (one expected validation per inference, the default rate
/// at low traffic; re-scoring runs on the engine thread between batch steps, as on a validating host),
/// then serving alone; the same requests both times.
async fn throughput(harness: &Harness, cases: &[Case], span: Duration) -> anyhow::Result<(f64, f64)> {
    let mut rates = Vec::new();
    for validating in [true, false] {
        let (served, mut to_judge) = tokio::sync::mpsc::unbounded_channel::<(usize, Payload)>();
        let serve = async move {
            let started = Instant::now();
            let (mut tokens, mut next) = (0usize, 0usize);
            while started.elapsed() < span {
                let group: Vec<usize> = (next..next + 8).map(|i| i % cases.len()).collect();
                next += 8;
                let answers = futures::future::join_all(
                    group.iter().map(|&i| harness.answer(Answerer::Honest, &cases[i])),
                )
                .await;
                for (i, answer) in group.into_iter().zip(answers) {
                    let answer = answer?;
                    tokens += answer.completion_token_ids.len();
                    if validating {
                        let _ = served.send((i, answer));
                    }
                }
            }
            anyhow::Ok(tokens as f64 / started.elapsed().as_secs_f64())
        };
        let validate = async {
            while let Some((i, answer)) = to_judge.recv().await {
                harness.judge(&cases[i], &answer).await?;
            }
            anyhow::Ok(())
        };
        let (rate, validated) = tokio::join!(serve, validate);
        validated?;
        rates.push(rate?);
    }
    Ok((rates[0], rates[1]))
}

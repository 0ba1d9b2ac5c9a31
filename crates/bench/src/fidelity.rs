//! `gonka bench fidelity`: how faithfully the served engine computes the model the network names,
//! against our own plain f32 forward pass over the same GGUF (`gonka_engine::reference`).
//!
//! For every prompt of the set, once with no system message (the chat template then adds the model's
//! default one) and once with the set's system message:
//! - the reference decodes greedily (up to `max_tokens`, stopping at an end-of-turn token);
//! - the engine, through its real scheduler, decodes greedily too: **exact match** when both answers
//!   have the same tokens;
//! - the engine scores the reference's answer teacher-forced (what a validator runs): **top-1
//!   agreement** at a position when the engine's most likely token is the reference's choice, and
//!   **|Δlogprob|**, the distance between the two logprobs of that token.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use gonka_engine::reference::ReferenceModel;
use gonka_engine::{ChatMessage, Engine, EngineConfig, GenerationRequest, Generator};
use serde::{Deserialize, Serialize};

/// The prompt set: `bench/fidelity-prompts.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct PromptSet {
    /// The system message of the second run of every prompt.
    pub system: String,
    /// User messages.
    pub prompts: Vec<String>,
}

impl PromptSet {
    /// Read a prompt set file.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let set: Self = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if set.prompts.is_empty() {
            bail!("{} holds no prompts", path.display());
        }
        Ok(set)
    }

    /// Every chat the benchmark runs: each prompt without, then with, the system message.
    pub fn chats(&self) -> Vec<Vec<ChatMessage>> {
        let user = |p: &String| ChatMessage { role: "user".into(), content: p.clone() };
        let system = ChatMessage { role: "system".into(), content: self.system.clone() };
        self.prompts.iter().flat_map(|p| [vec![user(p)], vec![system.clone(), user(p)]]).collect()
    }
}

/// One chat's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ChatFidelity {
    /// The user message.
    pub prompt: String,
    /// Whether the set's system message was sent.
    pub system: bool,
    /// The reference's greedy answer.
    pub reference: String,
    /// The engine's greedy answer.
    pub engine: String,
    /// Same tokens.
    pub exact: bool,
    /// Positions of the reference's answer.
    pub positions: usize,
    /// Positions where the engine's top token is the reference's.
    pub top1_agree: usize,
    /// Largest |Δlogprob| over the positions.
    pub max_abs_logprob_diff: f64,
    /// Sum of |Δlogprob| (for the mean).
    pub sum_abs_logprob_diff: f64,
}

/// The benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct FidelityReport {
    /// Chats compared.
    pub chats: usize,
    /// Chats whose greedy answers are identical.
    pub exact: usize,
    /// `exact / chats`.
    pub exact_fraction: f64,
    /// Positions compared.
    pub positions: usize,
    /// Fraction of positions where the top tokens agree.
    pub top1_agreement: f64,
    /// Mean |Δlogprob| of the reference's token.
    pub mean_abs_logprob_diff: f64,
    /// Largest |Δlogprob|.
    pub max_abs_logprob_diff: f64,
    /// Per chat.
    pub per_chat: Vec<ChatFidelity>,
}

impl FidelityReport {
    fn from_chats(per_chat: Vec<ChatFidelity>) -> Self {
        let chats = per_chat.len();
        let exact = per_chat.iter().filter(|c| c.exact).count();
        let positions: usize = per_chat.iter().map(|c| c.positions).sum();
        let agree: usize = per_chat.iter().map(|c| c.top1_agree).sum();
        let sum: f64 = per_chat.iter().map(|c| c.sum_abs_logprob_diff).sum();
        let fraction = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        Self {
            chats,
            exact,
            exact_fraction: fraction(exact, chats),
            positions,
            top1_agreement: fraction(agree, positions),
            mean_abs_logprob_diff: if positions == 0 { 0.0 } else { sum / positions as f64 },
            max_abs_logprob_diff: per_chat.iter().map(|c| c.max_abs_logprob_diff).fold(0.0, f64::max),
            per_chat,
        }
    }
}

/// Compare `engine` with `reference` over `chats`, `max_tokens` tokens each.
pub async fn compare(
    reference: &ReferenceModel,
    engine: &Engine,
    chats: &[Vec<ChatMessage>],
    max_tokens: usize,
) -> anyhow::Result<FidelityReport> {
    let stop_ids = engine.tokenizer().stop_ids().to_vec();
    let mut per_chat = Vec::with_capacity(chats.len());
    for messages in chats {
        let prompt = engine.render_chat(messages)?;
        let expected = reference.greedy(&prompt, max_tokens, &stop_ids)?;
        let expected_ids: Vec<u32> = expected.iter().map(|(id, _)| *id).collect();
        let served = greedy(engine, prompt.clone(), max_tokens).await?;
        let scored = engine.score(prompt, expected_ids.clone(), 1).await?;
        let (mut top1_agree, mut max_diff, mut sum_diff) = (0, 0.0f64, 0.0);
        for ((id, logprob), position) in expected.iter().zip(&scored) {
            top1_agree += usize::from(position.top.first().is_some_and(|(top, _)| top == id));
            let diff = (f64::from(position.logprob) - logprob).abs();
            max_diff = max_diff.max(diff);
            sum_diff += diff;
        }
        let last = messages.last().map(|m| m.content.clone()).unwrap_or_default();
        per_chat.push(ChatFidelity {
            prompt: last,
            system: messages.len() > 1,
            reference: engine.tokenizer().decode(&expected_ids),
            engine: engine.tokenizer().decode(&served),
            exact: served == expected_ids,
            positions: expected.len(),
            top1_agree,
            max_abs_logprob_diff: max_diff,
            sum_abs_logprob_diff: sum_diff,
        });
    }
    Ok(FidelityReport::from_chats(per_chat))
}

/// The engine's greedy answer, through its scheduler, ending as the reference's does (at an
/// end-of-turn token, which is kept, or after `max_tokens`).
async fn greedy(engine: &Engine, prompt_tokens: Vec<u32>, max_tokens: usize) -> anyhow::Result<Vec<u32>> {
    let request = GenerationRequest {
        prompt_tokens,
        sampling: gonka_engine::SamplingParams { temperature: 0.0, ..Default::default() },
        max_tokens,
        stop: Vec::new(),
        top_logprobs: None,
        ignore_eos: false,
    };
    Ok(crate::engine::generate(engine, request).await?.tokens)
}

/// `gonka bench fidelity`.
#[derive(clap::Args, Debug)]
pub struct FidelityArgs {
    /// The prompt set.
    #[arg(long, default_value = "bench/fidelity-prompts.json")]
    prompts: PathBuf,
    /// Tokens per greedy answer.
    #[arg(long, default_value_t = 32)]
    max_tokens: usize,
    /// Only the first N prompts of the set.
    #[arg(long)]
    limit: Option<usize>,
    /// The GGUF both run (default: the installed default model).
    #[arg(long)]
    gguf: Option<PathBuf>,
    /// Print one JSON object (with every chat) instead of the summary and the differing answers.
    #[arg(long)]
    json: bool,
}

/// Targets of `docs/engine.md` "Fidelity" (issue 15).
const TOP1_TARGET: f64 = 0.995;
const EXACT_TARGET: f64 = 0.90;

#[allow(clippy::print_stdout)]
pub(crate) async fn fidelity_bench(args: FidelityArgs) -> anyhow::Result<()> {
    let mut set = PromptSet::read(&args.prompts)?;
    if let Some(limit) = args.limit {
        set.prompts.truncate(limit);
    }
    let (path, name, hash) = match &args.gguf {
        Some(path) => (path.clone(), "model".to_string(), String::new()),
        None => {
            let model = crate::default_model()?;
            (model.path, model.name, model.content_hash)
        }
    };
    let threads = gonka_engine::compute_threads();
    let started = Instant::now();
    let reference = ReferenceModel::load(&path, threads)?;
    let engine = Engine::load(&path, &name, &hash, EngineConfig { threads, ..EngineConfig::default() })?;
    let report = compare(&reference, &engine, &set.chats(), args.max_tokens).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    for chat in report.per_chat.iter().filter(|c| !c.exact) {
        let system = if chat.system { "with system" } else { "no system" };
        println!("differs ({system}): {:?}", chat.prompt);
        println!("  reference: {:?}", chat.reference);
        println!("  engine:    {:?}", chat.engine);
    }
    let pass = |ok: bool| if ok { "pass" } else { "FAIL" };
    println!("model: {}", path.display());
    println!(
        "chats: {} ({} prompts, without and with a system message), {} tokens each, {:.0} s",
        report.chats,
        set.prompts.len(),
        args.max_tokens,
        started.elapsed().as_secs_f64()
    );
    println!(
        "identical greedy answers: {}/{} = {:.1} % (target ≥ {:.0} %: {})",
        report.exact,
        report.chats,
        report.exact_fraction * 100.0,
        EXACT_TARGET * 100.0,
        pass(report.exact_fraction >= EXACT_TARGET)
    );
    println!(
        "top-1 agreement: {:.2} % of {} positions (target ≥ {:.1} %: {})",
        report.top1_agreement * 100.0,
        report.positions,
        TOP1_TARGET * 100.0,
        pass(report.top1_agreement >= TOP1_TARGET)
    );
    println!(
        "|Δlogprob| of the reference's token: mean {:.5}, max {:.5}",
        report.mean_abs_logprob_diff, report.max_abs_logprob_diff
    );
    if let Some(france) =
        report.per_chat.iter().find(|c| !c.system && c.prompt == "What is the capital of France?")
    {
        println!(
            "\"What is the capital of France?\" (no system message): {:?} ({})",
            france.engine,
            pass(france.engine.contains("Paris"))
        );
    }
    Ok(())
}

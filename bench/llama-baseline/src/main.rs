//! llama.cpp baseline for the gonka-rs engine benchmark.
//!
//! This is a bench tool, not a dependency of the project: it links llama.cpp (built from the
//! sources bundled in `llama-cpp-sys-2`) and measures it on the same prompts and the same GGUF
//! file as `gonka bench engine`, CPU only.
//!
//! Subcommands:
//!   tokenize --model GGUF --input STRINGS.json --output IDS.json [--with-pieces]
//!   bench    --model GGUF --prompts PROMPTS.txt [--max-tokens N] [--streams S] [--threads T] [--json]
//!            [--verbose (llama.cpp logs)] [--show-output (greedy completion of prompt 1 on stderr)]
//!   quantize --input GGUF --output GGUF [--type q8_0]
//!   generate --model GGUF --prompt TEXT [--max-tokens N] [--raw]   (greedy, for spot checks)

use std::fmt::Write as _;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use serde::Serialize;

/// Version of the `llama-cpp-2` crate this tool is pinned to (see Cargo.toml).
const LLAMA_CPP_2_VERSION: &str = "0.1.160";

const SYSTEM_PROMPT: &str = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

const USAGE: &str = "\
usage:
  llama-baseline tokenize --model GGUF --input STRINGS.json --output IDS.json [--with-pieces]
  llama-baseline bench --model GGUF --prompts PROMPTS.txt [--max-tokens N] [--streams S]
                       [--threads T] [--json] [--verbose] [--show-output]
  llama-baseline quantize --input GGUF --output GGUF [--type q8_0|q4_0|q4_1|f16]
  llama-baseline generate --model GGUF --prompt TEXT [--max-tokens N] [--raw] [--threads T]";

fn main() {
    if let Err(e) = run() {
        eprintln!("llama-baseline: error: {e:#}");
        std::process::exit(1);
    }
}

/// Minimal `--flag value` / `--switch` parser (keeps the build free of a CLI crate).
struct Args {
    rest: Vec<String>,
}

impl Args {
    fn value(&mut self, name: &str) -> Result<Option<String>> {
        if let Some(i) = self.rest.iter().position(|a| a == name) {
            if i + 1 >= self.rest.len() {
                bail!("{name} needs a value");
            }
            let v = self.rest.remove(i + 1);
            self.rest.remove(i);
            return Ok(Some(v));
        }
        let prefix = format!("{name}=");
        if let Some(i) = self.rest.iter().position(|a| a.starts_with(&prefix)) {
            let v = self.rest.remove(i)[prefix.len()..].to_string();
            return Ok(Some(v));
        }
        Ok(None)
    }

    fn required(&mut self, name: &str) -> Result<String> {
        self.value(name)?.ok_or_else(|| anyhow!("missing {name}\n{USAGE}"))
    }

    fn switch(&mut self, name: &str) -> bool {
        match self.rest.iter().position(|a| a == name) {
            Some(i) => {
                self.rest.remove(i);
                true
            }
            None => false,
        }
    }

    fn finish(self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            bail!("unexpected arguments: {:?}\n{USAGE}", self.rest)
        }
    }
}

fn run() -> Result<()> {
    let mut argv = std::env::args().skip(1);
    let cmd = argv.next().unwrap_or_default();
    let mut args = Args { rest: argv.collect() };
    match cmd.as_str() {
        "tokenize" => {
            let model = PathBuf::from(args.required("--model")?);
            let input = PathBuf::from(args.required("--input")?);
            let output = PathBuf::from(args.required("--output")?);
            let with_pieces = args.switch("--with-pieces");
            args.finish()?;
            tokenize(&model, &input, &output, with_pieces)
        }
        "bench" => {
            let model = PathBuf::from(args.required("--model")?);
            let prompts = PathBuf::from(args.required("--prompts")?);
            let max_tokens: usize = parse_num(args.value("--max-tokens")?, 64, "--max-tokens")?;
            let streams: usize = parse_num(args.value("--streams")?, 8, "--streams")?;
            let threads: i32 = parse_num(args.value("--threads")?, 2, "--threads")?;
            let json = args.switch("--json");
            let verbose = args.switch("--verbose");
            let show_output = args.switch("--show-output");
            args.finish()?;
            if max_tokens < 2 {
                bail!("--max-tokens must be at least 2");
            }
            if streams < 1 || threads < 1 {
                bail!("--streams and --threads must be at least 1");
            }
            let cfg = BenchConfig { model, prompts, max_tokens, streams, threads, verbose, show_output };
            let report = bench(&cfg)?;
            print_report(&report, json)
        }
        "quantize" => {
            let input = PathBuf::from(args.required("--input")?);
            let output = PathBuf::from(args.required("--output")?);
            let ty = args.value("--type")?.unwrap_or_else(|| "q8_0".to_string());
            args.finish()?;
            quantize(&input, &output, &ty)
        }
        "generate" => {
            let model = PathBuf::from(args.required("--model")?);
            let prompt = args.required("--prompt")?;
            let max_tokens: usize = parse_num(args.value("--max-tokens")?, 32, "--max-tokens")?;
            let threads: i32 = parse_num(args.value("--threads")?, 2, "--threads")?;
            let raw = args.switch("--raw");
            let verbose = args.switch("--verbose");
            args.finish()?;
            generate(&model, &prompt, max_tokens.max(1), threads, raw, verbose)
        }
        "" | "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown subcommand {other:?}\n{USAGE}"),
    }
}

fn parse_num<T: std::str::FromStr>(v: Option<String>, default: T, name: &str) -> Result<T> {
    match v {
        None => Ok(default),
        Some(s) => s.parse().map_err(|_| anyhow!("{name}: not a number: {s:?}")),
    }
}

fn init_backend(verbose: bool) -> Result<LlamaBackend> {
    let mut backend = LlamaBackend::init().context("initialising llama.cpp")?;
    if !verbose {
        backend.void_logs();
    }
    Ok(backend)
}

fn load_model(backend: &LlamaBackend, path: &Path, vocab_only: bool) -> Result<LlamaModel> {
    if !path.is_file() {
        bail!("model file {} does not exist", path.display());
    }
    let params = LlamaModelParams::default()
        .with_n_gpu_layers(0)
        .with_vocab_only(vocab_only);
    LlamaModel::load_from_file(backend, path, &params)
        .with_context(|| format!("loading {}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// tokenize

#[derive(Serialize)]
struct TokenizedString {
    text: String,
    ids: Vec<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pieces: Option<Vec<String>>,
}

fn tokenize(model_path: &Path, input: &Path, output: &Path, with_pieces: bool) -> Result<()> {
    let raw = std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
    let strings: Vec<String> =
        serde_json::from_str(&raw).with_context(|| format!("{}: expected a JSON array of strings", input.display()))?;
    let backend = init_backend(false)?;
    let model = load_model(&backend, model_path, true)?;
    let vocab = model.vocab();
    let mut out = Vec::with_capacity(strings.len());
    for text in strings {
        // add_special = false: no BOS/EOS; parse_special = true: `<|im_start|>` is one token.
        let ids: Vec<i32> = vocab.tokenize(text.as_bytes(), false, true).into_iter().map(|t| t.0).collect();
        let pieces = if with_pieces {
            let mut ps = Vec::with_capacity(ids.len());
            for &id in &ids {
                let bytes = vocab.text(LlamaToken(id)).map(|c| c.to_string_lossy().into_owned());
                ps.push(bytes.unwrap_or_default());
            }
            Some(ps)
        } else {
            None
        };
        out.push(TokenizedString { text, ids, pieces });
    }
    let mut json = serde_json::to_string_pretty(&out)?;
    json.push('\n');
    std::fs::write(output, json).with_context(|| format!("writing {}", output.display()))?;
    eprintln!("llama-baseline: wrote {} tokenized strings to {}", out.len(), output.display());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// bench

struct BenchConfig {
    model: PathBuf,
    prompts: PathBuf,
    max_tokens: usize,
    streams: usize,
    threads: i32,
    verbose: bool,
    show_output: bool,
}

struct Report {
    model: String,
    threads: i32,
    n_prompts: usize,
    max_tokens: usize,
    streams: usize,
    prompt_tokens: usize,
    prefill_tok_s: f64,
    decode_tok_s: f64,
    decode_streams_tok_s: f64,
    ttft_ms_p50: f64,
    ttft_ms_p99: f64,
    peak_rss_mib: f64,
    load_ms: f64,
    wall_s: f64,
    cpu_contention_pct: Option<f64>,
}

fn chatml(line: &str) -> String {
    format!(
        "<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n{line}<|im_end|>\n<|im_start|>assistant\n"
    )
}

/// Greedy sampling: index of the largest logit (first one on ties).
fn argmax(logits: &[f32]) -> LlamaToken {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best_v = v;
            best = i;
        }
    }
    LlamaToken(best as i32)
}

/// Per-sequence KV size: enough for the longest prompt plus the generated tokens, rounded up
/// to llama.cpp's padding of 256.
fn per_seq_ctx(max_prompt: usize, max_tokens: usize) -> u32 {
    let need = max_prompt + max_tokens + 8;
    need.div_ceil(256).max(1) as u32 * 256
}

fn ctx_params(n_ctx: u32, n_batch: u32, n_seq: u32, threads: i32) -> LlamaContextParams {
    LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(n_batch)
        .with_n_ubatch(n_batch)
        .with_n_seq_max(n_seq)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
}

fn decode(ctx: &mut LlamaContext<'_>, batch: &mut LlamaBatch<'_>) -> Result<()> {
    ctx.decode(batch).map_err(|e| anyhow!("llama_decode failed: {e}"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile of an unsorted sample.
fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = (p / 100.0 * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("VmHWM:") {
            let kib: f64 = rest.trim().trim_end_matches("kB").trim().parse().unwrap_or(f64::NAN);
            return kib / 1024.0;
        }
    }
    f64::NAN
}

/// Cumulative time (µs) during which some runnable task waited for a CPU (Linux PSI), if available.
fn cpu_pressure_total_us() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let line = text.lines().find(|l| l.starts_with("some"))?;
    line.split_whitespace().find_map(|f| f.strip_prefix("total=")).and_then(|v| v.parse().ok())
}

fn bench(cfg: &BenchConfig) -> Result<Report> {
    let wall = Instant::now();
    let psi0 = cpu_pressure_total_us();
    let text = std::fs::read_to_string(&cfg.prompts).with_context(|| format!("reading {}", cfg.prompts.display()))?;
    let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        bail!("{}: no prompts", cfg.prompts.display());
    }

    let backend = init_backend(cfg.verbose)?;
    let t_load = Instant::now();
    let model = load_model(&backend, &cfg.model, false)?;
    let load_ms = ms(t_load.elapsed());
    let vocab = model.vocab();

    let prompts: Vec<Vec<LlamaToken>> =
        lines.iter().map(|l| vocab.tokenize(chatml(l).as_bytes(), false, true)).collect();
    let max_prompt = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let prompt_tokens: usize = prompts.iter().map(Vec::len).sum();
    let n = cfg.max_tokens;
    let steps = n - 1; // the first of the N generated tokens comes from the prefill

    // ---- single stream: prefill, TTFT and decode over every prompt ----
    let per_seq = per_seq_ctx(max_prompt, n);
    let n_batch = (max_prompt as u32).max(512);
    let mut prefill_time = Duration::ZERO;
    let mut decode_time = Duration::ZERO;
    let mut ttft_ms = Vec::with_capacity(prompts.len());
    let mut first_single: Vec<LlamaToken> = Vec::new();
    let mut first_multi: Vec<LlamaToken> = Vec::new();
    {
        let mut ctx = model
            .new_context(&backend, ctx_params(per_seq, n_batch, 1, cfg.threads))
            .context("creating the single-stream context")?;
        let mut batch = LlamaBatch::new(n_batch as usize, 1);

        // Warm-up (not measured): one prefill and a few decode steps.
        run_single(&mut ctx, &mut batch, &prompts[0], 4)?;

        for (i, prompt) in prompts.iter().enumerate() {
            let r = run_single(&mut ctx, &mut batch, prompt, steps)?;
            if i == 0 {
                first_single = r.tokens.clone();
            }
            prefill_time += r.prefill;
            decode_time += r.decode;
            ttft_ms.push(ms(r.ttft));
        }
    }
    let prefill_tok_s = prompt_tokens as f64 / prefill_time.as_secs_f64();
    let decode_tok_s = (steps * prompts.len()) as f64 / decode_time.as_secs_f64();

    // ---- S streams decoded together, one llama_batch per step ----
    let s = cfg.streams;
    let groups = prompts.len().div_ceil(s);
    let mut multi_time = Duration::ZERO;
    let mut multi_tokens = 0usize;
    {
        let group_prompt_max = (0..groups)
            .map(|g| (0..s).map(|k| prompts[(g * s + k) % prompts.len()].len()).sum::<usize>())
            .max()
            .unwrap_or(0);
        let n_batch = (group_prompt_max as u32).max(512);
        let mut ctx = model
            .new_context(&backend, ctx_params(per_seq * s as u32, n_batch, s as u32, cfg.threads))
            .context("creating the multi-stream context")?;
        let mut batch = LlamaBatch::new(n_batch as usize, s as i32);
        for g in 0..groups {
            let group: Vec<&[LlamaToken]> = (0..s).map(|k| prompts[(g * s + k) % prompts.len()].as_slice()).collect();
            ctx.clear_kv_cache();
            // Prefill all sequences in one batch (not part of the decode figure).
            batch.clear();
            let mut last_idx = Vec::with_capacity(s);
            for (seq, p) in group.iter().enumerate() {
                for (pos, &tok) in p.iter().enumerate() {
                    let last = pos + 1 == p.len();
                    batch.add(tok, pos as i32, &[seq as i32], last)?;
                }
                last_idx.push(batch.n_tokens() - 1);
            }
            decode(&mut ctx, &mut batch)?;
            let mut next: Vec<LlamaToken> = last_idx.iter().map(|&i| argmax(ctx.get_logits_ith(i))).collect();
            let mut pos: Vec<i32> = group.iter().map(|p| p.len() as i32).collect();
            if g == 0 {
                first_multi.push(next[0]);
            }

            let t = Instant::now();
            for _ in 0..steps {
                batch.clear();
                for seq in 0..s {
                    batch.add(next[seq], pos[seq], &[seq as i32], true)?;
                    pos[seq] += 1;
                }
                decode(&mut ctx, &mut batch)?;
                for (seq, tok) in next.iter_mut().enumerate() {
                    *tok = argmax(ctx.get_logits_ith(seq as i32));
                }
                if g == 0 {
                    first_multi.push(next[0]);
                }
            }
            multi_time += t.elapsed();
            multi_tokens += steps * s;
        }
    }
    let decode_streams_tok_s = multi_tokens as f64 / multi_time.as_secs_f64();

    if cfg.show_output {
        let text = String::from_utf8_lossy(&vocab.detokenize(&first_single, false, true)).into_owned();
        eprintln!("--- prompt 1: {:?}\n--- greedy completion ({} tokens):\n{text}\n---", lines[0], first_single.len());
        let ids: Vec<i32> = first_single.iter().map(|t| t.0).collect();
        eprintln!("ids: {ids:?}");
        let agree = first_single.iter().zip(&first_multi).take_while(|(a, b)| a == b).count();
        eprintln!(
            "single-stream and {s}-stream decodes of prompt 1 agree on the first {agree} of {} tokens",
            first_single.len()
        );
    }

    // Share of the run during which some task (ours or another process's) waited for a CPU:
    // with T threads on T idle cores this stays near 0; a high value means the figures are noisy.
    let wall_s = wall.elapsed().as_secs_f64();
    let cpu_contention_pct = match (psi0, cpu_pressure_total_us()) {
        (Some(a), Some(b)) => Some((b.saturating_sub(a) as f64 / 1e6) / wall_s * 100.0),
        _ => None,
    };
    if let Some(c) = cpu_contention_pct {
        if c > 10.0 {
            eprintln!("llama-baseline: warning: CPU contention during the run was {c:.0}% (other processes?); figures are noisy");
        }
    }

    Ok(Report {
        model: cfg.model.display().to_string(),
        threads: cfg.threads,
        n_prompts: prompts.len(),
        max_tokens: n,
        streams: s,
        prompt_tokens,
        prefill_tok_s,
        decode_tok_s,
        decode_streams_tok_s,
        ttft_ms_p50: percentile(&ttft_ms, 50.0),
        ttft_ms_p99: percentile(&ttft_ms, 99.0),
        peak_rss_mib: peak_rss_mib(),
        load_ms,
        wall_s,
        cpu_contention_pct,
    })
}

struct SingleRun {
    prefill: Duration,
    ttft: Duration,
    decode: Duration,
    tokens: Vec<LlamaToken>,
}

/// One request on sequence 0: prefill the prompt as one batch, sample greedily, then run `steps`
/// single-token decode steps (EOS is ignored).
fn run_single(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch<'_>,
    prompt: &[LlamaToken],
    steps: usize,
) -> Result<SingleRun> {
    ctx.clear_kv_cache();
    let t0 = Instant::now();
    batch.clear();
    batch.add_sequence(prompt, 0, false)?;
    decode(ctx, batch)?;
    let prefill = t0.elapsed();
    let mut tok = argmax(ctx.get_logits_ith(batch.n_tokens() - 1));
    let ttft = t0.elapsed();

    let mut tokens = Vec::with_capacity(steps + 1);
    tokens.push(tok);
    let t1 = Instant::now();
    let start = prompt.len() as i32;
    for pos in start..start + steps as i32 {
        batch.clear();
        batch.add(tok, pos, &[0], true)?;
        decode(ctx, batch)?;
        tok = argmax(ctx.get_logits_ith(0));
        tokens.push(tok);
    }
    Ok(SingleRun { prefill, ttft, decode: t1.elapsed(), tokens })
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

fn print_report(r: &Report, json: bool) -> Result<()> {
    if json {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            m.insert(k.to_string(), v);
        };
        put("engine", format!("llama.cpp via llama-cpp-2 {LLAMA_CPP_2_VERSION} (CPU)").into());
        put("model", r.model.clone().into());
        put("threads", r.threads.into());
        put("n_prompts", r.n_prompts.into());
        put("prompt_tokens", r.prompt_tokens.into());
        put("max_tokens", r.max_tokens.into());
        put("streams", r.streams.into());
        put("prefill_tok_s", round(r.prefill_tok_s, 2).into());
        put("decode_tok_s", round(r.decode_tok_s, 2).into());
        put(&format!("decode_{}_streams_tok_s", r.streams), round(r.decode_streams_tok_s, 2).into());
        put("ttft_ms_p50", round(r.ttft_ms_p50, 3).into());
        put("ttft_ms_p99", round(r.ttft_ms_p99, 3).into());
        put("peak_rss_mib", round(r.peak_rss_mib, 1).into());
        put("load_ms", round(r.load_ms, 1).into());
        put("wall_s", round(r.wall_s, 2).into());
        if let Some(c) = r.cpu_contention_pct {
            put("cpu_contention_pct", round(c, 1).into());
        }
        println!("{}", serde_json::Value::Object(m));
    } else {
        let mut s = String::new();
        writeln!(s, "llama.cpp (llama-cpp-2 {LLAMA_CPP_2_VERSION}), CPU, {} threads", r.threads)?;
        writeln!(s, "model          {}", r.model)?;
        writeln!(s, "prompts        {} ({} prompt tokens), {} tokens each", r.n_prompts, r.prompt_tokens, r.max_tokens)?;
        writeln!(s, "prefill        {:.1} tok/s", r.prefill_tok_s)?;
        writeln!(s, "decode         {:.1} tok/s (single stream)", r.decode_tok_s)?;
        writeln!(s, "decode x{:<2}     {:.1} tok/s (aggregate)", r.streams, r.decode_streams_tok_s)?;
        writeln!(s, "ttft p50/p99   {:.2} / {:.2} ms", r.ttft_ms_p50, r.ttft_ms_p99)?;
        writeln!(s, "peak rss       {:.1} MiB", r.peak_rss_mib)?;
        print!("{s}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// generate

/// Greedy completion of one prompt (ChatML-wrapped unless `raw`), printed with its token ids.
fn generate(model_path: &Path, prompt: &str, max_tokens: usize, threads: i32, raw: bool, verbose: bool) -> Result<()> {
    let backend = init_backend(verbose)?;
    let model = load_model(&backend, model_path, false)?;
    let text = if raw { prompt.to_string() } else { chatml(prompt) };
    let tokens = model.vocab().tokenize(text.as_bytes(), false, true);
    if tokens.is_empty() {
        bail!("empty prompt");
    }
    let n_batch = (tokens.len() as u32).max(512);
    let mut ctx = model
        .new_context(&backend, ctx_params(per_seq_ctx(tokens.len(), max_tokens), n_batch, 1, threads))
        .context("creating the context")?;
    let mut batch = LlamaBatch::new(n_batch as usize, 1);
    let r = run_single(&mut ctx, &mut batch, &tokens, max_tokens - 1)?;
    let out = String::from_utf8_lossy(&model.vocab().detokenize(&r.tokens, false, true)).into_owned();
    let prompt_ids: Vec<i32> = tokens.iter().map(|t| t.0).collect();
    let ids: Vec<i32> = r.tokens.iter().map(|t| t.0).collect();
    println!("{}", serde_json::json!({"prompt_ids": prompt_ids, "ids": ids, "text": out}));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// quantize

fn quantize(input: &Path, output: &Path, ty: &str) -> Result<()> {
    use llama_cpp_sys_2 as sys;
    let ftype = match ty.to_ascii_lowercase().as_str() {
        "q8_0" => sys::LLAMA_FTYPE_MOSTLY_Q8_0,
        "q4_0" => sys::LLAMA_FTYPE_MOSTLY_Q4_0,
        "q4_1" => sys::LLAMA_FTYPE_MOSTLY_Q4_1,
        "f16" => sys::LLAMA_FTYPE_MOSTLY_F16,
        other => bail!("unsupported --type {other:?}"),
    };
    if !input.is_file() {
        bail!("{} does not exist", input.display());
    }
    let _backend = init_backend(false)?;
    let inp = std::ffi::CString::new(input.to_str().ok_or_else(|| anyhow!("non-UTF-8 path"))?)?;
    let out = std::ffi::CString::new(output.to_str().ok_or_else(|| anyhow!("non-UTF-8 path"))?)?;
    // SAFETY: plain FFI calls with valid NUL-terminated paths and a params struct from llama.cpp.
    let rc = unsafe {
        let mut params = sys::llama_model_quantize_default_params();
        params.ftype = ftype;
        params.nthread = 2;
        // The input may already be quantized (e.g. Q4_1 -> Q8_0 for a speed comparison).
        params.allow_requantize = true;
        sys::llama_model_quantize(inp.as_ptr(), out.as_ptr(), &params)
    };
    if rc != 0 {
        bail!("llama_model_quantize failed with code {rc}");
    }
    eprintln!("llama-baseline: wrote {} ({ty})", output.display());
    Ok(())
}

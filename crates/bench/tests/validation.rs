//! Answer validation on the embedded engine (`docs/spec/validation.md` §3, §9): honest answers —
//! greedy and seeded sampling, with and without penalties, logit bias, a JSON Schema and a forced tool
//! call, several prompt and answer lengths, generated 8 at a time by the
//! continuous-batching scheduler — pass both the distance and the sampling-replay verdicts exactly,
//! also when the validator runs as an AVX2-only CPU under `qemu-x86_64 -cpu Haswell`; every cheat kind
//! fails. `gonka bench validation` measures the same at larger counts, with the costs.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use gonka_bench::validation::{Answerer, Case, Harness, cases};
use gonka_node::inference::cheat::Cheat;

/// Honest answers judged here (`GONKA_VALIDATION_ANSWERS` overrides).
const HONEST_ANSWERS: usize = 1000;

fn prompts() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/prompts-scoring.txt");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// The workload with short answers (the verdicts are checked at every position; short answers keep
/// the thousand of them within a few minutes on two cores). Prompts still vary in length: the prompt
/// file's lines, some repeated.
fn short_cases(count: usize) -> Vec<Case> {
    cases(&prompts(), count)
        .into_iter()
        .map(|mut case| {
            let mut body: serde_json::Value = serde_json::from_slice(&case.body).unwrap();
            // Each of the body's choices gets 12 at most; the signed budget covers them all.
            let choices = gonka_api::body_choices(&case.body) as u32;
            let per_choice = (case.max_tokens / choices).min(12);
            case.max_tokens = per_choice * choices;
            body["max_tokens"] = per_choice.into();
            case.body = serde_json::to_vec(&body).unwrap();
            case
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

#[test]
fn honest_answers_pass_both_verdicts_exactly() {
    let count =
        std::env::var("GONKA_VALIDATION_ANSWERS").ok().and_then(|n| n.parse().ok()).unwrap_or(HONEST_ANSWERS);
    let harness = Harness::load(8).unwrap();
    let judged = runtime().block_on(harness.run(Answerer::Honest, &short_cases(count))).unwrap();
    let failed: Vec<_> = judged.answers.iter().filter(|(_, v)| !v.passed()).map(|(_, v)| *v).collect();
    let positions: usize = judged.answers.iter().map(|(a, _)| a.completion_token_ids.len()).sum();
    println!("{count} honest answers, {positions} positions: {} failed", failed.len());
    assert!(failed.is_empty(), "false positives: {failed:?}");
    assert!(judged.answers.iter().all(|(_, v)| v.distance_ppm == 0 && v.replay_mismatches == 0));
}

#[test]
fn every_cheat_kind_fails_validation() {
    let harness = Harness::load(8).unwrap();
    let cases = short_cases(24);
    let runtime = runtime();
    let honest = runtime.block_on(harness.run(Answerer::Honest, &cases)).unwrap();
    for kind in [Cheat::SubstituteModel, Cheat::Prefill, Cheat::EditAnswer, Cheat::WrongSeed] {
        let cheated = runtime.block_on(harness.run(Answerer::Cheat(kind), &cases)).unwrap();
        let mut differing = 0;
        for ((answer, verdict), (honest, _)) in cheated.answers.iter().zip(&honest.answers) {
            if answer.completion_token_ids == honest.completion_token_ids
                && answer.recorded == honest.recorded
            {
                continue; // identical to the honest answer (a greedy answer under another seed)
            }
            differing += 1;
            assert!(!verdict.passed(), "{kind}: a cheated answer passed: {verdict:?}");
        }
        assert!(differing >= 12, "{kind}: only {differing} answers differed");
    }
}

/// An executor that ignores the request's grammar, penalties and logit bias (`ignore-constraints`) is
/// caught on every constrained answer it changed.
#[test]
fn ignoring_constraints_fails_validation() {
    let harness = Harness::load(8).unwrap();
    // `cases` cycles through eight samplings: the sixth has penalties and biases, the seventh a schema,
    // the eighth a forced tool call.
    let cases: Vec<Case> =
        short_cases(32).into_iter().enumerate().filter(|(i, _)| i % 8 >= 5).map(|(_, c)| c).collect();
    let runtime = runtime();
    let honest = runtime.block_on(harness.run(Answerer::Honest, &cases)).unwrap();
    assert!(honest.answers.iter().all(|(_, v)| v.passed()), "{:?}", honest.answers);
    let cheated = runtime.block_on(harness.run(Answerer::Cheat(Cheat::IgnoreConstraints), &cases)).unwrap();
    for (i, ((answer, verdict), (honest, _))) in cheated.answers.iter().zip(&honest.answers).enumerate() {
        // Twelve tokens seldom repeat one, so a penalized answer may come out the same; a grammar's
        // answer never does.
        let grammar = i % 3 != 0;
        if grammar || answer.completion_token_ids != honest.completion_token_ids {
            assert!(!verdict.passed(), "an unconstrained answer passed: {verdict:?} {:?}", answer.completion);
        }
    }
}

/// Written natively, re-scored under qemu: the answers and what the file path is.
const QEMU_FILE: &str = "GONKA_VALIDATION_FILE";

/// The validator's half of [`rescoring_agrees_on_an_avx2_only_cpu_under_qemu`]: re-scores the answers in
/// the file named by `GONKA_VALIDATION_FILE` and requires every one to pass (skipped without it).
#[test]
fn rescores_answers_from_a_file() {
    let Ok(path) = std::env::var(QEMU_FILE) else { return };
    let mut saved: Vec<(String, u32, String, gonka_host::verdict::Payload)> =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    if let Some(limit) = std::env::var("GONKA_VALIDATION_LIMIT").ok().and_then(|l| l.parse().ok()) {
        saved.truncate(limit);
    }
    let harness = Harness::load(1).unwrap();
    let runtime = runtime();
    for (body, max_tokens, id, payload) in &saved {
        let case = Case {
            body: body.as_bytes().to_vec(),
            id: gonka_primitives::Hash::from_hex(id).unwrap(),
            max_tokens: *max_tokens,
        };
        let verdict = runtime.block_on(harness.judge(&case, payload)).unwrap();
        assert!(verdict.passed(), "{verdict:?}");
    }
    let avx512 = std::arch::is_x86_feature_detected!("avx512f");
    let avx2 = std::arch::is_x86_feature_detected!("avx2");
    if std::env::var_os("GONKA_EXPECT_NO_AVX512").is_some() {
        assert!(!avx512, "qemu should hide AVX-512");
    }
    println!("avx512f {avx512} avx2 {avx2}: {} answers pass", saved.len());
}

/// Answers generated natively (AVX-512 where the CPU has it) are re-scored by the same test binary run
/// as an AVX2-only CPU under `qemu-x86_64 -cpu Haswell`, and the first of them as a CPU without AVX
/// (`-cpu Nehalem`: every kernel on its scalar path): both verdicts still pass exactly. Skipped with a
/// message when qemu-user is missing, unless `GONKA_REQUIRE_QEMU` is set (`scripts/test.sh` sets it).
#[test]
fn rescoring_agrees_on_an_avx2_only_cpu_under_qemu() {
    let qemu = std::env::var("GONKA_QEMU").unwrap_or_else(|_| "qemu-x86_64".into());
    if std::process::Command::new(&qemu).arg("--version").output().is_err() {
        assert!(
            std::env::var_os("GONKA_REQUIRE_QEMU").is_none(),
            "{qemu} not found; install Debian's qemu-user"
        );
        eprintln!("skipping: {qemu} not found (install Debian's qemu-user)");
        return;
    }
    let harness = Harness::load(8).unwrap();
    // Greedy, top-p, top-k, penalties with logit bias, a JSON Schema and a forced tool call (`cases`
    // cycles through eight samplings).
    let cases: Vec<Case> = short_cases(8)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| [0, 2, 4, 5, 6, 7].contains(i))
        .map(|(_, c)| c)
        .collect();
    let judged = runtime().block_on(harness.run(Answerer::Honest, &cases)).unwrap();
    assert!(judged.answers.iter().all(|(_, v)| v.passed()));
    let saved: Vec<(String, u32, String, &gonka_host::verdict::Payload)> = cases
        .iter()
        .zip(&judged.answers)
        .map(|(c, (p, _))| (String::from_utf8(c.body.clone()).unwrap(), c.max_tokens, c.id.to_string(), p))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("answers.json");
    std::fs::write(&file, serde_json::to_vec(&saved).unwrap()).unwrap();
    for (cpu, answers, avx2) in [("Haswell", cases.len(), true), ("Nehalem", 1, false)] {
        let output = std::process::Command::new(&qemu)
            .args(["-cpu", cpu])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "rescores_answers_from_a_file", "--nocapture", "--test-threads", "1"])
            .env(QEMU_FILE, &file)
            .env("GONKA_EXPECT_NO_AVX512", "1")
            .env("GONKA_VALIDATION_LIMIT", answers.to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "under qemu -cpu {cpu}:\n{stdout}\n{stderr}");
        let expected = format!("avx512f false avx2 {avx2}: {answers} answers pass");
        assert!(stdout.contains(&expected), "{cpu}: {stdout}");
    }
}

//! The served engine against our plain f32 forward pass of the same GGUF (`gonka bench fidelity` on a
//! short subset of `bench/fidelity-prompts.json`; `docs/engine.md` "Fidelity"): identical greedy
//! answers, top-1 agreement and |Δlogprob| within the issue-15 targets, and Paris for France.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use gonka_bench::fidelity::{PromptSet, compare};
use gonka_engine::reference::ReferenceModel;
use gonka_engine::store::{DEFAULT_MODEL, ModelStore, gonka_home};
use gonka_engine::{Engine, EngineConfig};

/// Prompts of the set checked here (the first ones; the France question is the first).
const PROMPTS: usize = 4;

#[test]
fn the_engine_answers_as_the_f32_reference_does() {
    let model = ModelStore::new(&gonka_home()).ensure(&DEFAULT_MODEL).unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/fidelity-prompts.json");
    let mut set = PromptSet::read(std::path::Path::new(path)).unwrap();
    set.prompts.truncate(PROMPTS);
    assert_eq!(set.prompts[0], "What is the capital of France?");
    let reference = ReferenceModel::load(&model.path, 2).unwrap();
    let engine =
        Engine::load(&model.path, &model.name, &model.content_hash, EngineConfig::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let report = runtime.block_on(compare(&reference, &engine, &set.chats(), 32)).unwrap();
    println!(
        "exact {}/{}, top-1 {:.4} of {} positions, mean |Δlogprob| {:.5}, max {:.5}",
        report.exact,
        report.chats,
        report.top1_agreement,
        report.positions,
        report.mean_abs_logprob_diff,
        report.max_abs_logprob_diff
    );
    assert!(report.positions >= 100, "{} positions", report.positions);
    assert!(report.exact_fraction >= 0.9, "{report:#?}");
    assert!(report.top1_agreement >= 0.995, "{report:#?}");
    assert!(report.mean_abs_logprob_diff < 0.005, "{report:#?}");
    let france = &report.per_chat[0];
    assert!(!france.system && france.engine.contains("Paris"), "{france:?}");
}

//! The GGUF tokenizer against token ids llama.cpp produced for the same SmolLM2 file (fixtures).

mod common;

use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

#[test]
fn token_ids_equal_llama_cpp() {
    let tokenizer = common::tokenizer();
    let cases: Vec<Case> =
        serde_json::from_str(include_str!("fixtures/llama_cpp_token_ids.json")).expect("fixture parses");
    assert!(cases.len() >= 20, "fixture holds the full string set");
    let mut failures = Vec::new();
    for case in &cases {
        let ids = tokenizer.encode(&case.text).expect("encodes");
        if ids != case.ids {
            failures.push(format!("{:?}\n  ours:      {:?}\n  llama.cpp: {:?}", case.text, ids, case.ids));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} strings differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn decoding_token_bytes_round_trips_text() {
    let tokenizer = common::tokenizer();
    let cases: Vec<Case> =
        serde_json::from_str(include_str!("fixtures/llama_cpp_token_ids.json")).expect("fixture parses");
    for case in &cases {
        assert_eq!(tokenizer.decode(&case.ids), case.text);
    }
}

#[test]
fn control_tokens_are_atomic_and_end_turns() {
    let tokenizer = common::tokenizer();
    assert_eq!(tokenizer.encode("<|im_start|>").expect("encodes"), vec![1]);
    assert_eq!(tokenizer.encode("<|im_end|>").expect("encodes"), vec![2]);
    assert!(tokenizer.stop_ids().contains(&2));
    assert_eq!(tokenizer.token_bytes(2), b"<|im_end|>");
}

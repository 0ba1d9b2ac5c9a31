//! `POST /v1/completions` against a scripted generator: the text completion shape, echo, legacy
//! logprobs, vLLM's prompt logprobs, token-id prompts, streaming and refusals.

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{MODEL, Mode, SCRIPT, SCRIPT_TEXT, app, post_chat, post_completion, send};

/// The prompt: four words, so four tokens on the fake (ids are word lengths: 3, 7, 2, 6).
const PROMPT: &str = "The capital of France";

fn body(fields: Value) -> Value {
    let mut body = json!({"model": MODEL, "prompt": PROMPT});
    let Value::Object(fields) = fields else { panic!("fields must be an object") };
    body.as_object_mut().expect("object").extend(fields);
    body
}

#[tokio::test]
async fn a_text_completion_continues_the_raw_prompt() {
    let (router, fake) = app(Mode::Script);
    let answer = send(&router, post_completion(&body(json!({"max_tokens": 10})))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let json = answer.json();
    assert!(json["id"].as_str().expect("id").starts_with("cmpl-"));
    assert_eq!(json["object"], "text_completion");
    assert_eq!(json["choices"][0]["text"], SCRIPT_TEXT);
    assert_eq!(json["choices"][0]["finish_reason"], "stop");
    assert!(json["choices"][0]["logprobs"].is_null());
    assert!(json["choices"][0].get("prompt_logprobs").is_none(), "only when asked");
    assert_eq!(json["usage"]["prompt_tokens"], 4);
    assert_eq!(json["usage"]["completion_tokens"], SCRIPT.len());
    // No chat template: the prompt's own tokens reach the engine.
    assert_eq!(fake.submitted()[0].prompt_tokens, vec![3, 7, 2, 6]);
    assert_eq!(fake.submitted()[0].max_tokens, 10);
}

#[tokio::test]
async fn echo_with_logprobs_puts_the_scored_prompt_before_the_answer() {
    let (router, _fake) = app(Mode::Script);
    let answer = send(&router, post_completion(&body(json!({"echo": true, "logprobs": 1})))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let choice = answer.json()["choices"][0].clone();
    assert_eq!(choice["text"], format!("{PROMPT}{SCRIPT_TEXT}"));
    let logprobs = &choice["logprobs"];
    let tokens: Vec<&str> =
        logprobs["tokens"].as_array().expect("tokens").iter().filter_map(Value::as_str).collect();
    assert_eq!(tokens[..4], ["<3>", "<7>", "<2>", "<6>"], "the prompt's tokens, decoded");
    assert_eq!(tokens[4..], SCRIPT);
    assert_eq!(logprobs["token_logprobs"][0], Value::Null);
    assert_eq!(logprobs["top_logprobs"][0], Value::Null);
    assert_eq!(logprobs["token_logprobs"][1], -1.0);
    // The best alternative, then the chosen token.
    assert_eq!(logprobs["top_logprobs"][1], json!({"<99>": -0.25, "<7>": -1.0}));
    let offsets: Vec<u64> =
        logprobs["text_offset"].as_array().expect("offsets").iter().filter_map(Value::as_u64).collect();
    assert_eq!(offsets[..5], [0, 3, 6, 9, 12]);
}

#[tokio::test]
async fn prompt_logprobs_rank_every_prompt_token_after_the_first() {
    let (router, _fake) = app(Mode::Script);
    let answer = send(&router, post_completion(&body(json!({"prompt_logprobs": 1})))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let positions = answer.json()["choices"][0]["prompt_logprobs"].clone();
    assert_eq!(positions.as_array().expect("per prompt token").len(), 4);
    assert_eq!(positions[0], Value::Null);
    assert_eq!(
        positions[1],
        json!({"7": {"logprob": -1.0, "rank": 2, "decoded_token": "<7>"},
               "99": {"logprob": -0.25, "rank": 1, "decoded_token": "<99>"}})
    );
}

#[tokio::test]
async fn token_id_prompts_stream_and_choices() {
    let (router, fake) = app(Mode::Script);
    let request = json!({"model": MODEL, "prompt": [[5, 6, 7]], "n": 2, "seed": 3, "stream": true,
                         "stream_options": {"include_usage": true}});
    let answer = send(&router, post_completion(&request)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let mut data = answer.sse_data();
    assert_eq!(data.pop().as_deref(), Some("[DONE]"));
    let chunks: Vec<Value> = data.iter().map(|d| serde_json::from_str(d).expect("JSON")).collect();
    for index in 0..2 {
        let text: String = chunks
            .iter()
            .filter(|c| c["choices"][0]["index"] == index)
            .filter_map(|c| c["choices"][0]["text"].as_str())
            .collect();
        assert_eq!(text, SCRIPT_TEXT);
    }
    let usage = &chunks.last().expect("usage chunk")["usage"];
    assert_eq!((usage["prompt_tokens"].as_u64(), usage["completion_tokens"].as_u64()), (Some(3), Some(12)));
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    let submitted = fake.submitted();
    assert_eq!(submitted[0].prompt_tokens, vec![5, 6, 7]);
    assert_eq!(submitted.iter().map(|r| r.sampling.seed).collect::<Vec<_>>(), vec![3, 4]);
}

#[tokio::test]
async fn bad_completion_requests_are_refused_naming_the_field() {
    let (router, fake) = app(Mode::Script);
    let cases = [
        (json!({"model": MODEL}), "prompt"),
        (body(json!({"prompt": ""})), "prompt"),
        (body(json!({"prompt": ["a", "b"]})), "prompt"),
        (body(json!({"prompt": [1, -2]})), "prompt"),
        (body(json!({"logprobs": 21})), "logprobs"),
        (body(json!({"prompt_logprobs": 21})), "prompt_logprobs"),
        (body(json!({"suffix": "!"})), "suffix"),
        (body(json!({"best_of": 2})), "best_of"),
        (body(json!({"n": 9})), "n"),
        (body(json!({"n": 2, "prompt_logprobs": 0})), "n"),
        (body(json!({"n": 2, "echo": true, "logprobs": 1})), "n"),
        (body(json!({"max_tokens": 0})), "max_tokens"),
        (body(json!({"temperature": 3})), "temperature"),
    ];
    for (request, param) in cases {
        let answer = send(&router, post_completion(&request)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{request}: {}", answer.text());
        assert_eq!(answer.json()["error"]["param"], param, "{request}");
    }
    let unknown = send(&router, post_completion(&body(json!({"model": "other"})))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    // A prompt body is not a chat, and the other way round.
    let chat_shaped = send(&router, post_chat(&body(json!({})))).await;
    assert_eq!(chat_shaped.status, StatusCode::BAD_REQUEST);
    assert!(fake.submitted().is_empty(), "nothing reached the engine");
    assert_eq!(gonka_api::Endpoint::of(br#"{"prompt": "x"}"#), gonka_api::Endpoint::Completions);
    assert_eq!(gonka_api::Endpoint::of(br#"{"prompt": "x", "messages": []}"#), gonka_api::Endpoint::Chat);
    assert_eq!(gonka_api::Endpoint::of(b"[1]"), gonka_api::Endpoint::Chat);
}

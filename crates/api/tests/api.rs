//! The HTTP API against a scripted generator: response shapes, streaming, errors, cancellation, metrics.

mod support;

use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use gonka_api::ApiLimits;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use support::{
    ACTIVE_SEQUENCES, Answer, CHAT_BODY_PROMPT_TOKENS, MODEL, Mode, QUEUE_DEPTH, SCRIPT, SCRIPT_TEXT, app,
    app_with_limits, chat_body, post_chat, request, send,
};
use tower::ServiceExt;

/// `body` with `fields` (a JSON object) set on it.
fn with(mut body: Value, fields: Value) -> Value {
    let object = body.as_object_mut().expect("chat_body is an object");
    let Value::Object(fields) = fields else { panic!("fields must be an object") };
    object.extend(fields);
    body
}

fn assert_openai_error(answer: &Answer, status: StatusCode, param: Option<&str>) -> Value {
    assert_eq!(answer.status, status, "body: {}", answer.text());
    let error = answer.json()["error"].clone();
    assert!(error["message"].as_str().is_some_and(|message| !message.is_empty()), "error: {error}");
    assert!(error["type"].is_string(), "error: {error}");
    assert!(error.get("code").is_some(), "error: {error}");
    assert_eq!(error["param"].as_str(), param, "error: {error}");
    error
}

fn chunks(answer: &Answer) -> (Vec<Value>, Option<String>) {
    let mut data = answer.sse_data();
    let last = data.pop();
    let chunks = data.iter().map(|payload| serde_json::from_str(payload).expect("chunk is JSON")).collect();
    (chunks, last)
}

#[tokio::test]
async fn non_streaming_completion_has_openai_shape_and_exact_usage() {
    let (router, fake) = app(Mode::Script);
    let answer = send(&router, post_chat(&chat_body())).await;
    assert_eq!(answer.status, StatusCode::OK, "body: {}", answer.text());
    let completion = answer.json();

    assert!(completion["id"].as_str().expect("id").starts_with("chatcmpl-"));
    assert_eq!(completion["object"], "chat.completion");
    assert!(completion["created"].as_u64().expect("created") > 1_600_000_000);
    assert_eq!(completion["model"], MODEL);
    let choices = completion["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 1);
    assert_eq!(choices[0]["index"], 0);
    assert_eq!(choices[0]["message"], json!({"role": "assistant", "content": SCRIPT_TEXT}));
    assert_eq!(choices[0]["finish_reason"], "stop");
    assert!(choices[0].get("logprobs").is_none_or(Value::is_null));
    assert_eq!(
        completion["usage"],
        json!({
            "prompt_tokens": CHAT_BODY_PROMPT_TOKENS,
            "completion_tokens": SCRIPT.len(),
            "total_tokens": CHAT_BODY_PROMPT_TOKENS + SCRIPT.len(),
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        })
    );
    assert_eq!(fake.submitted().len(), 1);
}

#[tokio::test]
async fn sampling_parameters_reach_the_generator() {
    let (router, fake) = app(Mode::Script);
    let body = with(
        chat_body(),
        json!({"temperature": 0.5, "top_p": 0.9, "top_k": 40, "seed": -2, "stop": "\n\n",
               "max_completion_tokens": 3, "logprobs": true, "top_logprobs": 2, "user": "u-1",
               "presence_penalty": 0.5, "frequency_penalty": -1.25, "logit_bias": {"17": -100, "3": 2.5},
               "response_format": {"type": "text"}, "some_future_field": {"x": 1}}),
    );
    let answer = send(&router, post_chat(&body)).await;
    assert_eq!(answer.status, StatusCode::OK, "body: {}", answer.text());
    assert_eq!(answer.json()["choices"][0]["finish_reason"], "length");

    let submitted = fake.submitted();
    let request = &submitted[0];
    assert_eq!(request.prompt_tokens.len(), CHAT_BODY_PROMPT_TOKENS);
    assert_eq!(
        (request.sampling.temperature, request.sampling.top_p, request.sampling.top_k),
        (0.5, 0.9, 40)
    );
    assert_eq!(request.sampling.seed, u64::MAX - 1);
    assert_eq!(request.stop, vec!["\n\n".to_owned()]);
    assert_eq!(request.max_tokens, 3);
    assert_eq!(request.top_logprobs, Some(2));
    let adjustments = &request.sampling.adjustments;
    assert_eq!((adjustments.presence_penalty, adjustments.frequency_penalty), (0.5, -1.25));
    assert_eq!(adjustments.logit_bias, vec![(3, 2.5), (17, -100.0)], "by token id");
}

#[tokio::test]
async fn absent_max_tokens_uses_the_server_default() {
    let limits = ApiLimits { max_tokens_default: 5, ..ApiLimits::default() };
    let (router, fake) = app_with_limits(Mode::Script, limits);
    let answer = send(&router, post_chat(&chat_body())).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(fake.submitted()[0].max_tokens, 5);
    assert_eq!(fake.submitted()[0].top_logprobs, None);
}

#[tokio::test]
async fn logprobs_list_one_entry_per_token_with_sorted_alternatives() {
    let (router, _fake) = app(Mode::Script);
    let body = with(chat_body(), json!({"logprobs": true, "top_logprobs": 3}));
    let answer = send(&router, post_chat(&body)).await;
    assert_eq!(answer.status, StatusCode::OK, "body: {}", answer.text());
    let content =
        answer.json()["choices"][0]["logprobs"]["content"].as_array().expect("logprobs.content").clone();
    assert_eq!(content.len(), SCRIPT.len());
    for (entry, text) in content.iter().zip(SCRIPT) {
        assert_eq!(entry["token"], text);
        assert_eq!(entry["bytes"], json!(text.as_bytes()));
        assert!(entry["logprob"].as_f64().expect("logprob") <= 0.0);
        let top = entry["top_logprobs"].as_array().expect("top_logprobs");
        assert_eq!(top.len(), 3);
        assert_eq!(top[0]["token"], text);
        assert!(top.iter().all(|alternative| alternative["bytes"].is_array()));
        let logprobs: Vec<f64> =
            top.iter().map(|alternative| alternative["logprob"].as_f64().expect("f64")).collect();
        assert!(logprobs.windows(2).all(|pair| pair[0] >= pair[1]), "sorted best first: {logprobs:?}");
    }
}

#[tokio::test]
async fn logprobs_without_alternatives_give_empty_top_lists() {
    let (router, _fake) = app(Mode::Script);
    let answer = send(&router, post_chat(&with(chat_body(), json!({"logprobs": true})))).await;
    let content = answer.json()["choices"][0]["logprobs"]["content"].clone();
    assert_eq!(content.as_array().expect("content").len(), SCRIPT.len());
    assert_eq!(content[0]["top_logprobs"], json!([]));
}

#[tokio::test]
async fn streaming_sends_role_tokens_finish_usage_then_done() {
    let (router, _fake) = app(Mode::Script);
    let body = with(chat_body(), json!({"stream": true, "stream_options": {"include_usage": true}}));
    let answer = send(&router, post_chat(&body)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.headers[header::CONTENT_TYPE].to_str().expect("ascii").starts_with("text/event-stream"));
    let (chunks, last) = chunks(&answer);
    assert_eq!(last.as_deref(), Some("[DONE]"));

    let texts: Vec<&str> = SCRIPT.iter().copied().filter(|text| !text.is_empty()).collect();
    // role chunk, one chunk per non-empty token, finish chunk, usage chunk
    assert_eq!(chunks.len(), 1 + texts.len() + 2, "chunks: {chunks:#?}");
    let id = chunks[0]["id"].clone();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], id);
        assert_eq!(chunk["model"], MODEL);
    }
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    for (chunk, text) in chunks[1..=texts.len()].iter().zip(&texts) {
        assert_eq!(chunk["choices"][0]["delta"], json!({"content": text}));
        assert!(chunk["choices"][0]["finish_reason"].is_null());
    }
    let finish = &chunks[texts.len() + 1];
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    for chunk in &chunks[..chunks.len() - 1] {
        assert_eq!(chunk.get("usage"), Some(&Value::Null), "earlier chunks carry usage: null");
    }
    let usage_chunk = &chunks[chunks.len() - 1];
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], CHAT_BODY_PROMPT_TOKENS);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], SCRIPT.len());
    assert_eq!(usage_chunk["usage"]["total_tokens"], CHAT_BODY_PROMPT_TOKENS + SCRIPT.len());
}

#[tokio::test]
async fn n_choices_each_get_their_seed_and_usage_counts_the_prompt_once() {
    let (router, fake) = app(Mode::Script);
    let answer = send(&router, post_chat(&with(chat_body(), json!({"n": 3, "seed": 10})))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let json = answer.json();
    let choices = json["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 3);
    for (index, choice) in choices.iter().enumerate() {
        assert_eq!(choice["index"], index);
        assert_eq!(choice["message"]["content"], SCRIPT_TEXT);
    }
    let seeds: Vec<u64> = fake.submitted().iter().map(|request| request.sampling.seed).collect();
    assert_eq!(seeds, vec![10, 11, 12], "choice i is sampled with seed + i");
    let prompt = json["usage"]["prompt_tokens"].as_u64().expect("prompt tokens");
    assert_eq!(json["usage"]["completion_tokens"], 3 * 6);
    assert_eq!(json["usage"]["total_tokens"], prompt + 18);

    let body = with(chat_body(), json!({"n": 2, "stream": true, "stream_options": {"include_usage": true}}));
    let (chunks, last) = chunks(&send(&router, post_chat(&body)).await);
    assert_eq!(last.as_deref(), Some("[DONE]"));
    for index in 0..2 {
        let of_choice: Vec<&Value> =
            chunks.iter().filter(|chunk| chunk["choices"][0]["index"] == index).collect();
        assert_eq!(of_choice[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String =
            of_choice.iter().filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, SCRIPT_TEXT, "choice {index}");
        assert_eq!(of_choice.last().expect("a finish")["choices"][0]["finish_reason"], "stop");
    }
    assert_eq!(chunks.last().expect("usage")["usage"]["completion_tokens"], 12);
}

#[tokio::test]
async fn streaming_without_include_usage_has_no_usage_key() {
    let (router, _fake) = app(Mode::Script);
    let answer = send(&router, post_chat(&with(chat_body(), json!({"stream": true})))).await;
    let (chunks, last) = chunks(&answer);
    assert_eq!(last.as_deref(), Some("[DONE]"));
    assert!(chunks.iter().all(|chunk| chunk.get("usage").is_none()));
    assert_eq!(chunks.last().expect("finish chunk")["choices"][0]["finish_reason"], "stop");
    let text: String =
        chunks.iter().filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, SCRIPT_TEXT);
}

#[tokio::test]
async fn streaming_logprobs_send_held_back_tokens_as_empty_content() {
    let (router, _fake) = app(Mode::Script);
    let body = with(chat_body(), json!({"stream": true, "logprobs": true, "top_logprobs": 1}));
    let (chunks, _) = chunks(&send(&router, post_chat(&body)).await);
    let token_chunks = &chunks[1..chunks.len() - 1];
    assert_eq!(token_chunks.len(), SCRIPT.len(), "every token carries logprobs, even with no text yet");
    for (chunk, text) in token_chunks.iter().zip(SCRIPT) {
        assert_eq!(chunk["choices"][0]["delta"]["content"], text);
        let content = chunk["choices"][0]["logprobs"]["content"].as_array().expect("logprobs.content");
        assert_eq!(content.len(), 1);
        assert_eq!(content[0]["token"], text);
        assert_eq!(content[0]["top_logprobs"].as_array().expect("top").len(), 1);
    }
}

#[tokio::test]
async fn engine_failure_mid_stream_sends_an_error_event_and_ends() {
    let (router, _fake) = app(Mode::FailMidway);
    let answer = send(&router, post_chat(&with(chat_body(), json!({"stream": true})))).await;
    assert_eq!(answer.status, StatusCode::OK, "the head was sent before the failure");
    let data = answer.sse_data();
    assert_ne!(data.last().map(String::as_str), Some("[DONE]"));
    let error: Value = serde_json::from_str(data.last().expect("an error event")).expect("JSON");
    assert_eq!(error["error"]["type"], "server_error");
    assert!(error["error"]["message"].as_str().expect("message").contains("NaN"));
}

#[tokio::test]
async fn engine_failure_without_streaming_is_a_500() {
    let (router, _fake) = app(Mode::FailMidway);
    let answer = send(&router, post_chat(&chat_body())).await;
    assert_openai_error(&answer, StatusCode::INTERNAL_SERVER_ERROR, None);
}

#[tokio::test]
async fn overloaded_engine_answers_429_with_retry_after() {
    let (router, _fake) = app(Mode::Overloaded);
    let answer = send(&router, post_chat(&chat_body())).await;
    let error = assert_openai_error(&answer, StatusCode::TOO_MANY_REQUESTS, None);
    assert_eq!(error["type"], "rate_limit_exceeded");
    assert_eq!(answer.headers[header::RETRY_AFTER], "1");
}

#[tokio::test]
async fn context_length_exceeded_is_a_400_on_messages() {
    let (router, _fake) = app(Mode::ContextLengthExceeded);
    let answer = send(&router, post_chat(&chat_body())).await;
    let error = assert_openai_error(&answer, StatusCode::BAD_REQUEST, Some("messages"));
    assert_eq!(error["code"], "context_length_exceeded");
}

#[tokio::test]
async fn max_tokens_beyond_the_context_window_is_rejected_before_submit() {
    let (router, fake) = app(Mode::Script);
    let limits_cap = ApiLimits::default().max_tokens_cap;
    let prompt = "word ".repeat(support::CONTEXT_LENGTH);
    let body =
        json!({"model": MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": limits_cap});
    let answer = send(&router, post_chat(&body)).await;
    let error = assert_openai_error(&answer, StatusCode::BAD_REQUEST, Some("messages"));
    assert_eq!(error["code"], "context_length_exceeded");
    assert!(fake.submitted().is_empty());
}

struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: StatusCode,
    param: Option<&'static str>,
}

fn chat_case(name: &'static str, fields: Value, status: StatusCode, param: Option<&'static str>) -> Case {
    Case {
        name,
        method: Method::POST,
        path: "/v1/chat/completions",
        content_type: Some("application/json"),
        body: serde_json::to_vec(&with(chat_body(), fields)).expect("encodes"),
        status,
        param,
    }
}

fn malformed_requests() -> Vec<Case> {
    let bad = StatusCode::BAD_REQUEST;
    let user = json!({"role": "user", "content": "hi"});
    let raw = |name, method, path, content_type, body: &[u8], status, param| Case {
        name,
        method,
        path,
        content_type,
        body: body.to_vec(),
        status,
        param,
    };
    vec![
        raw(
            "bad JSON",
            Method::POST,
            "/v1/chat/completions",
            Some("application/json"),
            b"{\"model\": ",
            bad,
            None,
        ),
        raw(
            "body not an object",
            Method::POST,
            "/v1/chat/completions",
            Some("application/json"),
            b"[1]",
            bad,
            None,
        ),
        raw(
            "wrong content type",
            Method::POST,
            "/v1/chat/completions",
            Some("text/plain"),
            &serde_json::to_vec(&chat_body()).expect("encodes"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
        ),
        chat_case("temperature of the wrong type", json!({"temperature": "hot"}), bad, Some("temperature")),
        chat_case("temperature above 2", json!({"temperature": 3}), bad, Some("temperature")),
        chat_case("negative top_p", json!({"top_p": -0.5}), bad, Some("top_p")),
        chat_case("negative top_k", json!({"top_k": -1}), bad, Some("top_k")),
        chat_case(
            "top_logprobs above 20",
            json!({"logprobs": true, "top_logprobs": 21}),
            bad,
            Some("top_logprobs"),
        ),
        chat_case("top_logprobs without logprobs", json!({"top_logprobs": 2}), bad, Some("top_logprobs")),
        chat_case("n of 9, over the limit of 8", json!({"n": 9}), bad, Some("n")),
        chat_case("n of 0", json!({"n": 0}), bad, Some("n")),
        chat_case("unknown model", json!({"model": "gpt-4o"}), StatusCode::NOT_FOUND, Some("model")),
        chat_case("missing messages", json!({"messages": null}), bad, Some("messages")),
        chat_case("empty messages", json!({"messages": []}), bad, Some("messages")),
        chat_case("too many messages", json!({"messages": vec![user.clone(); 257]}), bad, Some("messages")),
        chat_case("max_tokens above the cap", json!({"max_tokens": 4096}), bad, Some("max_tokens")),
        chat_case("max_tokens of zero", json!({"max_tokens": 0}), bad, Some("max_tokens")),
        chat_case(
            "image content part",
            json!({"messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
            bad,
            Some("messages[0].content"),
        ),
        chat_case(
            "content of the wrong type",
            json!({"messages": [{"role": "user", "content": 7}]}),
            bad,
            Some("messages[0].content"),
        ),
        chat_case(
            "unknown role",
            json!({"messages": [user.clone(), {"role": "wizard", "content": "hi"}]}),
            bad,
            Some("messages[1].role"),
        ),
        chat_case("stop with 5 entries", json!({"stop": ["a", "b", "c", "d", "e"]}), bad, Some("stop")),
        chat_case("empty stop sequence", json!({"stop": [""]}), bad, Some("stop")),
        chat_case(
            "presence_penalty above 2",
            json!({"presence_penalty": 2.5}),
            bad,
            Some("presence_penalty"),
        ),
        chat_case(
            "frequency_penalty below -2",
            json!({"frequency_penalty": -3}),
            bad,
            Some("frequency_penalty"),
        ),
        chat_case("logit_bias of the wrong type", json!({"logit_bias": [1, 2]}), bad, Some("logit_bias")),
        chat_case("logit_bias naming no token", json!({"logit_bias": {"-5": 1}}), bad, Some("logit_bias.-5")),
        chat_case("logit_bias above 100", json!({"logit_bias": {"42": 101}}), bad, Some("logit_bias.42")),
        chat_case(
            "logit_bias of too many tokens",
            json!({"logit_bias": (0..1025).map(|i| (i.to_string(), json!(1))).collect::<serde_json::Map<_, _>>()}),
            bad,
            Some("logit_bias"),
        ),
        chat_case(
            "unknown response_format type",
            json!({"response_format": {"type": "yaml"}}),
            bad,
            Some("response_format.type"),
        ),
        chat_case(
            "json_schema without a name",
            json!({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}}),
            bad,
            Some("response_format.json_schema.name"),
        ),
        chat_case(
            "json_schema whose schema is a string",
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": "object"}}}),
            bad,
            Some("response_format.json_schema.schema"),
        ),
        chat_case(
            "json_schema with a non-boolean strict",
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": "yes"}}}),
            bad,
            Some("response_format.json_schema.strict"),
        ),
        chat_case(
            "tool_choice naming an undeclared function",
            json!({"tools": [{"type": "function", "function": {"name": "f"}}],
                   "tool_choice": {"type": "function", "function": {"name": "g"}}}),
            bad,
            Some("tool_choice"),
        ),
        chat_case(
            "a tool whose parameters are not an object schema",
            json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]}),
            bad,
            Some("tools[0].function.parameters"),
        ),
        chat_case(
            "tool_calls on a user message",
            json!({"messages": [{"role": "user", "content": "hi", "tool_calls": [{"id": "c", "type": "function",
                   "function": {"name": "f", "arguments": "{}"}}]}]}),
            bad,
            Some("messages[0].tool_calls"),
        ),
        chat_case("stream of the wrong type", json!({"stream": "yes"}), bad, Some("stream")),
        raw(
            "body over the limit",
            Method::POST,
            "/v1/chat/completions",
            Some("application/json"),
            &serde_json::to_vec(
                &json!({"model": MODEL, "messages": [{"role": "user", "content": "x".repeat(1 << 20)}]}),
            )
            .expect("encodes"),
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
        ),
        raw(
            "GET on the POST route",
            Method::GET,
            "/v1/chat/completions",
            None,
            b"",
            StatusCode::METHOD_NOT_ALLOWED,
            None,
        ),
        raw(
            "unknown route",
            Method::POST,
            "/v1/embeddings",
            Some("application/json"),
            b"{}",
            StatusCode::NOT_FOUND,
            None,
        ),
        raw("unknown model by id", Method::GET, "/v1/models/gpt-4o", None, b"", StatusCode::NOT_FOUND, None),
    ]
}

#[tokio::test]
async fn malformed_requests_get_openai_errors_and_a_valid_request_still_succeeds() {
    let (router, fake) = app(Mode::Script);
    for case in malformed_requests() {
        let answer = send(&router, request(case.method, case.path, case.content_type, case.body)).await;
        assert_eq!(answer.status, case.status, "{}: {}", case.name, answer.text());
        let error = answer.json()["error"].clone();
        assert_eq!(error["param"].as_str(), case.param, "{}: {error}", case.name);
        assert!(
            error["message"].as_str().is_some_and(|message| !message.is_empty()),
            "{}: {error}",
            case.name
        );
        assert!(error["type"].is_string(), "{}: {error}", case.name);
        assert!(error.get("code").is_some(), "{}: {error}", case.name);
    }
    assert!(fake.submitted().is_empty(), "no malformed request reached the generator");

    let answer = send(&router, post_chat(&chat_body())).await;
    assert_eq!(answer.status, StatusCode::OK, "body: {}", answer.text());
    assert_eq!(answer.json()["choices"][0]["message"]["content"], SCRIPT_TEXT);
}

#[tokio::test]
async fn bad_json_errors_say_where_the_json_broke() {
    let (router, _fake) = app(Mode::Script);
    let body = b"{\"model\": \"fake-model\",\n \"messages\": [}".to_vec();
    let answer =
        send(&router, request(Method::POST, "/v1/chat/completions", Some("application/json"), body)).await;
    let error = assert_openai_error(&answer, StatusCode::BAD_REQUEST, None);
    let message = error["message"].as_str().expect("message");
    assert!(message.contains("line 2") && message.contains("messages"), "error: {error}");
}

#[tokio::test]
async fn dropping_a_streaming_response_drops_the_generation_stream() {
    let (router, fake) = app(Mode::Hang);
    let response = router
        .oneshot(post_chat(&with(chat_body(), json!({"stream": true}))))
        .await
        .expect("router is infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let role = body.frame().await.expect("a frame").expect("no error");
    assert!(String::from_utf8_lossy(role.data_ref().expect("data")).contains("assistant"));
    let token = body.frame().await.expect("a frame").expect("no error");
    assert!(String::from_utf8_lossy(token.data_ref().expect("data")).contains("Paris"));
    assert!(!fake.receiver_dropped(0), "the generation is live while the client reads");

    drop(body);
    assert!(fake.receiver_dropped(0), "client disconnect must cancel the generation");
}

#[tokio::test]
async fn abandoning_a_non_streaming_request_drops_the_generation_stream() {
    let (router, fake) = app(Mode::Hang);
    let pending = tokio::spawn(router.oneshot(post_chat(&chat_body())));
    while fake.submitted().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(!fake.receiver_dropped(0));
    pending.abort();
    assert!(pending.await.expect_err("aborted").is_cancelled());
    assert!(fake.receiver_dropped(0));
}

#[tokio::test]
async fn request_timeout_cancels_the_generation_with_504() {
    let limits = ApiLimits { request_timeout: Some(Duration::from_millis(50)), ..ApiLimits::default() };
    let (router, fake) = app_with_limits(Mode::Hang, limits);
    let answer = send(&router, post_chat(&chat_body())).await;
    let error = assert_openai_error(&answer, StatusCode::GATEWAY_TIMEOUT, None);
    assert_eq!(error["code"], "request_timeout");
    assert!(fake.receiver_dropped(0));
}

#[tokio::test]
async fn request_timeout_ends_a_stream_with_an_error_event() {
    let limits = ApiLimits { request_timeout: Some(Duration::from_millis(50)), ..ApiLimits::default() };
    let (router, fake) = app_with_limits(Mode::Hang, limits);
    let answer = send(&router, post_chat(&with(chat_body(), json!({"stream": true})))).await;
    let last: Value = serde_json::from_str(answer.sse_data().last().expect("events")).expect("JSON");
    assert_eq!(last["error"]["code"], "request_timeout");
    assert!(fake.receiver_dropped(0));
}

#[tokio::test]
async fn models_lists_the_served_model() {
    let (router, _fake) = app(Mode::Script);
    let answer = send(&router, request(Method::GET, "/v1/models", None, "")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "gonka"}]})
    );
    let answer = send(&router, request(Method::GET, &format!("/v1/models/{MODEL}"), None, "")).await;
    assert_eq!(answer.json()["id"], MODEL);
    let answer = send(&router, request(Method::GET, "/v1/models/other", None, "")).await;
    let error = assert_openai_error(&answer, StatusCode::NOT_FOUND, None);
    assert_eq!(error["code"], "model_not_found");
}

#[tokio::test]
async fn health_reports_model_and_load() {
    let (router, _fake) = app(Mode::Script);
    let answer = send(&router, request(Method::GET, "/health", None, "")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({"status": "ok", "model": MODEL, "content_hash": "ab".repeat(32),
               "queue_depth": QUEUE_DEPTH, "active_sequences": ACTIVE_SEQUENCES})
    );
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_engine_load() {
    let (router, _fake) = app(Mode::Script);
    assert_eq!(send(&router, post_chat(&chat_body())).await.status, StatusCode::OK);
    assert_eq!(send(&router, request(Method::GET, "/nowhere", None, "")).await.status, StatusCode::NOT_FOUND);
    let answer = send(&router, request(Method::GET, "/metrics", None, "")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let text = answer.text();
    let expected = [
        r#"gonka_api_requests_total{route="/v1/chat/completions",status="200"} 1"#.to_owned(),
        r#"gonka_api_requests_total{route="unmatched",status="404"} 1"#.to_owned(),
        r#"gonka_api_request_duration_seconds_count{route="/v1/chat/completions"} 1"#.to_owned(),
        "gonka_api_time_to_first_token_seconds_count 1".to_owned(),
        format!("gonka_engine_prompt_tokens_total {CHAT_BODY_PROMPT_TOKENS}"),
        format!("gonka_engine_completion_tokens_total {}", SCRIPT.len()),
        format!("gonka_engine_queue_depth {QUEUE_DEPTH}"),
        format!("gonka_engine_active_sequences {ACTIVE_SEQUENCES}"),
    ];
    for line in expected {
        assert!(text.lines().any(|candidate| candidate == line), "missing `{line}` in:\n{text}");
    }
}

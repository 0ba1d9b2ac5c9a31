//! The embedded engine on the real model: answers, determinism, batching, cancellation, limits, scoring.

mod common;

use std::time::Duration;

use common::{collect, engine, greedy, user};
use gonka_engine::{ChatMessage, EngineConfig, EngineError, FinishReason, Generator, SamplingParams};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Prompts whose greedy answers are pinned in `fixtures/greedy_answers.json`. Set
/// `GONKA_UPDATE_FIXTURES=1` to rewrite the fixture after a deliberate numeric change.
const GREEDY_PROMPTS: [&str; 3] =
    ["Name three primary colors.", "What is the capital of France?", "Write one sentence about autumn."];

#[test]
fn greedy_answer_matches_fixture() {
    let engine = engine(EngineConfig::default());
    let answers: Vec<serde_json::Value> = GREEDY_PROMPTS
        .iter()
        .map(|prompt| {
            let got = runtime()
                .block_on(collect(engine.submit(greedy(user(&engine, prompt), 48)).expect("submits")));
            serde_json::json!({"prompt": prompt, "answer": got.text, "ids": got.ids})
        })
        .collect();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/greedy_answers.json");
    if std::env::var_os("GONKA_UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&answers).expect("serializes")).expect("writes");
        return;
    }
    let fixture: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture exists"))
            .expect("fixture parses");
    assert_eq!(fixture.len(), GREEDY_PROMPTS.len(), "fixture covers every prompt");
    for (got, expected) in answers.iter().zip(&fixture) {
        assert_eq!(got, expected, "greedy answer changed");
    }
}

#[test]
fn capital_of_france_mentions_paris() {
    let engine = engine(EngineConfig::default());
    let messages = [
        ChatMessage { role: "system".into(), content: "You are a helpful assistant. Answer briefly.".into() },
        ChatMessage { role: "user".into(), content: "What is the capital of France?".into() },
    ];
    let prompt = engine.render_chat(&messages).expect("renders");
    let got = runtime().block_on(collect(engine.submit(greedy(prompt, 32)).expect("submits")));
    assert!(got.text.contains("Paris"), "answer was {:?}", got.text);
    assert_eq!(got.reason, Some(FinishReason::Stop));
}

#[test]
fn same_seed_gives_same_tokens_at_temperature_one() {
    let engine = engine(EngineConfig::default());
    let prompt = user(&engine, "Write a short poem about the sea.");
    let run = |seed| {
        let mut request = greedy(prompt.clone(), 24);
        request.sampling =
            SamplingParams { temperature: 1.0, top_p: 0.95, top_k: 50, seed, ..SamplingParams::default() };
        runtime().block_on(collect(engine.submit(request).expect("submits"))).ids
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
}

#[test]
fn batched_decoding_gives_the_same_tokens_as_alone() {
    let engine = engine(EngineConfig::default());
    let prompts = ["Name three fruits.", "What is 2 + 2?", "Describe a cat.", "Say hello in French."];
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| {
            runtime().block_on(collect(engine.submit(greedy(user(&engine, p), 24)).expect("submits"))).ids
        })
        .collect();
    let together = runtime().block_on(async {
        let streams: Vec<_> =
            prompts.iter().map(|p| engine.submit(greedy(user(&engine, p), 24)).expect("submits")).collect();
        futures::future::join_all(streams.into_iter().map(collect)).await
    });
    for (a, t) in alone.iter().zip(&together) {
        assert_eq!(a, &t.ids);
    }
}

#[test]
fn sixteen_concurrent_requests_complete_with_exact_usage() {
    let engine = engine(EngineConfig { max_sequences: 16, ..EngineConfig::default() });
    let results = runtime().block_on(async {
        let streams: Vec<_> = (0..16)
            .map(|i| {
                let prompt = user(&engine, &format!("Count from {i} to {}.", i + 5));
                let len = prompt.len();
                (len, engine.submit(greedy(prompt, 16 + i)).expect("submits"))
            })
            .collect();
        let lens: Vec<usize> = streams.iter().map(|(l, _)| *l).collect();
        let done = futures::future::join_all(streams.into_iter().map(|(_, s)| collect(s))).await;
        lens.into_iter().zip(done).collect::<Vec<_>>()
    });
    assert_eq!(results.len(), 16);
    for (i, (prompt_len, got)) in results.iter().enumerate() {
        assert!(got.reason.is_some(), "request {i} finished");
        assert_eq!(got.usage.prompt_tokens, *prompt_len);
        assert_eq!(got.usage.completion_tokens, got.ids.len());
        assert!(got.usage.completion_tokens <= 16 + i);
    }
    common::wait_idle(&engine);
}

#[test]
fn dropped_streams_free_their_slots() {
    let engine = engine(EngineConfig { max_sequences: 2, ..EngineConfig::default() });
    runtime().block_on(async {
        let mut long = Vec::new();
        for _ in 0..2 {
            let mut request = greedy(user(&engine, "Tell me a very long story."), 4000);
            request.ignore_eos = true;
            let mut stream = engine.submit(request).expect("submits");
            stream.recv().await.expect("first token");
            long.push(stream);
        }
        assert_eq!(engine.active_sequences(), 2);
        drop(long);
        // With both slots held, this request could only finish once the dropped ones were freed.
        let got = tokio::time::timeout(
            Duration::from_secs(60),
            collect(engine.submit(greedy(user(&engine, "Hi"), 8)).expect("submits")),
        )
        .await
        .expect("a freed slot served the next request");
        assert!(got.reason.is_some());
    });
    common::wait_idle(&engine);
}

#[test]
fn stop_sequence_ends_generation_before_it() {
    let engine = engine(EngineConfig::default());
    let mut request = greedy(user(&engine, "Count from 1 to 10, separated by commas."), 48);
    let unstopped = runtime().block_on(collect(engine.submit(request.clone()).expect("submits")));
    let cut = unstopped.text.find('5').expect("the count reaches 5");
    request.stop = vec!["5".into()];
    let got = runtime().block_on(collect(engine.submit(request).expect("submits")));
    assert_eq!(got.text, unstopped.text[..cut]);
    assert_eq!(got.reason, Some(FinishReason::Stop));
}

#[test]
fn max_tokens_ends_with_length() {
    let engine = engine(EngineConfig::default());
    let got = runtime()
        .block_on(collect(engine.submit(greedy(user(&engine, "Tell me a story."), 5)).expect("submits")));
    assert_eq!(got.ids.len(), 5);
    assert_eq!(got.reason, Some(FinishReason::Length));
}

#[test]
fn requests_beyond_limits_are_refused() {
    let engine = engine(EngineConfig { max_tokens_cap: 100, ..EngineConfig::default() });
    let context = engine.model_info().context_length;
    let too_long = greedy(vec![100; context], 1);
    assert!(matches!(engine.submit(too_long), Err(EngineError::ContextLengthExceeded { .. })));
    let too_many = greedy(user(&engine, "Hi"), 101);
    assert!(matches!(
        engine.submit(too_many),
        Err(EngineError::InvalidParameter { param: "max_tokens", .. })
    ));
    let mut bad = greedy(user(&engine, "Hi"), 5);
    bad.top_logprobs = Some(21);
    assert!(matches!(engine.submit(bad), Err(EngineError::InvalidParameter { param: "top_logprobs", .. })));
    let bad_id = greedy(vec![u32::MAX], 5);
    assert!(matches!(engine.submit(bad_id), Err(EngineError::InvalidParameter { .. })));
}

#[test]
fn a_full_queue_answers_overloaded() {
    let engine = engine(EngineConfig { max_sequences: 1, queue_capacity: 2, ..EngineConfig::default() });
    let mut held = Vec::new();
    let mut overloaded = false;
    for _ in 0..6 {
        let mut request = greedy(user(&engine, "Tell me a long story."), 2000);
        request.ignore_eos = true;
        match engine.submit(request) {
            Ok(stream) => held.push(stream),
            Err(EngineError::Overloaded { queue_capacity }) => {
                assert_eq!(queue_capacity, 2);
                overloaded = true;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(overloaded);
    assert!(held.len() <= 3, "one running plus at most two waiting");
}

#[test]
fn scoring_reproduces_generation_logprobs() {
    let engine = engine(EngineConfig::default());
    let prompts = ["Why is the sky blue?", "Write a haiku about rain.", "List four planets."];
    runtime().block_on(async {
        let streams: Vec<_> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let prompt = user(&engine, p);
                let mut request = greedy(prompt.clone(), 32);
                request.sampling = SamplingParams { seed: i as u64, ..SamplingParams::default() };
                request.top_logprobs = Some(5);
                (prompt, engine.submit(request).expect("submits"))
            })
            .collect();
        for (prompt, stream) in streams {
            let got = collect(stream).await;
            let scores = engine.score(prompt, got.ids.clone(), 5).await.expect("scores");
            assert_eq!(scores.len(), got.ids.len());
            for (generated, scored) in got.logprobs.iter().zip(&scores) {
                assert_eq!(generated.chosen.id, scored.token);
                assert!((generated.chosen.logprob - scored.logprob).abs() <= 1e-4);
                let top_ids: Vec<u32> = generated.top.iter().map(|t| t.id).collect();
                let scored_ids: Vec<u32> = scored.top.iter().map(|t| t.0).collect();
                assert_eq!(top_ids, scored_ids);
            }
        }
    });
}

/// Penalties and logit biases change the distribution every draw walks (issue 16, item 3); a validator
/// replaying the seeded sampler with the request's adjustments and the answer's earlier tokens finds
/// every token exactly where the draw put it, and without them finds the answer off its draws.
#[test]
fn penalized_and_biased_answers_replay_exactly_and_only_with_their_adjustments() {
    use gonka_engine::{LogitAdjustments, ScoreRequest, Scorer};
    let engine = engine(EngineConfig::default());
    let prompt = user(&engine, "Repeat the word hello ten times.");
    let plain = runtime().block_on(collect(engine.submit(greedy(prompt.clone(), 24)).expect("submits")));
    // Ban the plain answer's first token and penalize repetition hard.
    let adjustments = LogitAdjustments {
        presence_penalty: 1.5,
        frequency_penalty: 0.5,
        logit_bias: vec![(plain.ids[0], -100.0)],
    };
    for temperature in [0.0, 1.0] {
        let sampling = SamplingParams {
            temperature,
            seed: 9,
            adjustments: adjustments.clone(),
            ..SamplingParams::default()
        };
        let mut request = greedy(prompt.clone(), 24);
        request.sampling = sampling.clone();
        let got = runtime().block_on(collect(engine.submit(request).expect("submits")));
        assert_ne!(got.ids[0], plain.ids[0], "the banned token is never drawn");
        let replay = |sampling: SamplingParams| {
            let request = ScoreRequest {
                prompt_tokens: prompt.clone(),
                completion_tokens: got.ids.clone(),
                top_k: 0,
                sampling: Some(sampling),
            };
            let scored = runtime().block_on(Scorer::score(&engine, request)).expect("scores");
            scored.iter().map(|p| p.replay.expect("replayed").margin).collect::<Vec<f32>>()
        };
        assert!(replay(sampling.clone()).iter().all(|m| *m == 0.0), "temperature {temperature}");
        let unadjusted = SamplingParams { adjustments: LogitAdjustments::default(), ..sampling };
        assert!(replay(unadjusted).iter().any(|m| *m > 0.0), "temperature {temperature}");
    }
}

/// Structured outputs (`docs/spec/validation.md` §3.2): an answer constrained by a JSON Schema parses and
/// matches it at every temperature, replays exactly under its grammar, and an answer made without the
/// grammar (what an executor ignoring `response_format` sends) is found off the grammar's draws.
#[test]
fn schema_constrained_answers_parse_and_replay_only_under_their_grammar() {
    use gonka_engine::{OutputGrammar, ScoreRequest, Scorer};
    let engine = engine(EngineConfig::default());
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 40},
            "country": {"type": "string", "enum": ["France", "Germany", "Italy"]},
            "population_millions": {"type": "number", "minimum": 0, "maximum": 100},
            "landmarks": {"type": "array", "items": {"type": "string", "maxLength": 30}, "maxItems": 3}
        },
        "required": ["city", "country", "population_millions", "landmarks"],
        "additionalProperties": false
    });
    let grammar = OutputGrammar::JsonSchema(schema.to_string());
    let prompt = user(&engine, "Describe Paris as JSON with its city, country, population and landmarks.");
    for temperature in [0.0, 0.8] {
        let sampling = SamplingParams {
            temperature,
            seed: 5,
            grammar: Some(grammar.clone()),
            ..SamplingParams::default()
        };
        let mut request = greedy(prompt.clone(), 120);
        request.sampling = sampling.clone();
        let got = runtime().block_on(collect(engine.submit(request).expect("submits")));
        assert_eq!(got.reason, Some(FinishReason::Stop), "temperature {temperature}: {:?}", got.text);
        let value: serde_json::Value = serde_json::from_str(&got.text)
            .unwrap_or_else(|e| panic!("temperature {temperature}: {e}: {:?}", got.text));
        let object = value.as_object().expect("an object");
        assert_eq!(object.keys().count(), 4, "{value}");
        assert!(["France", "Germany", "Italy"].contains(&object["country"].as_str().expect("a string")));
        let population = object["population_millions"].as_f64().expect("a number");
        assert!((0.0..=100.0).contains(&population), "{value}");
        assert!(object["landmarks"].as_array().expect("an array").len() <= 3, "{value}");

        let replay = |sampling: SamplingParams, completion: &[u32]| {
            let request = ScoreRequest {
                prompt_tokens: prompt.clone(),
                completion_tokens: completion.to_vec(),
                top_k: 0,
                sampling: Some(sampling),
            };
            let scored = runtime().block_on(Scorer::score(&engine, request)).expect("scores");
            scored.iter().map(|p| p.replay.expect("replayed").margin).collect::<Vec<f32>>()
        };
        assert!(replay(sampling.clone(), &got.ids).iter().all(|m| *m == 0.0), "temperature {temperature}");

        // The same request without the grammar: its answer is not JSON of this schema, and the
        // grammar's replay finds a token it could never have drawn.
        let mut free = greedy(prompt.clone(), 40);
        free.sampling = SamplingParams { grammar: None, ..sampling.clone() };
        let unconstrained = runtime().block_on(collect(engine.submit(free).expect("submits")));
        assert!(replay(sampling, &unconstrained.ids).contains(&1.0), "{:?}", unconstrained.text);
    }
}

#[test]
fn invalid_and_unsupported_schemas_are_refused_before_generating() {
    use gonka_engine::OutputGrammar;
    let engine = engine(EngineConfig::default());
    let prompt = user(&engine, "Hi");
    for schema in [
        "not json".to_string(),
        "[1, 2]".to_string(),
        r##"{"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}, "required": ["a"]}"##
            .to_string(),
        r#"{"type": "strnig"}"#.to_string(),
    ] {
        let mut request = greedy(prompt.clone(), 8);
        request.sampling.grammar = Some(OutputGrammar::JsonSchema(schema.clone()));
        match engine.submit(request) {
            Err(EngineError::InvalidParameter { param, message }) => {
                assert_eq!(param, "response_format.json_schema.schema", "{schema}: {message}");
            }
            Err(other) => panic!("{schema}: {other}"),
            Ok(_) => panic!("{schema}: accepted"),
        }
    }
    // The engine keeps serving.
    let got = runtime().block_on(collect(engine.submit(greedy(prompt, 4)).expect("submits")));
    assert!(!got.ids.is_empty());
}

/// `n` answers share one prefill: each choice forks from the first one's KV cache, and is token for
/// token (logprob for logprob) the answer a separate request with the choice's seed gets — so a validator
/// replays each choice as a request of its own.
#[test]
fn choices_share_the_prefill_and_equal_separate_requests_with_their_seeds() {
    let engine = engine(EngineConfig { max_sequences: 4, ..EngineConfig::default() });
    let prompt = user(&engine, "Write a short poem about the sea.");
    let mut request = greedy(prompt, 24);
    request.sampling = SamplingParams { temperature: 1.0, seed: 40, ..SamplingParams::default() };
    request.top_logprobs = Some(2);
    let streams = engine.submit_choices(request.clone(), 3).expect("submits");
    let runtime = runtime();
    let choices: Vec<_> = streams.into_iter().map(|stream| runtime.block_on(collect(stream))).collect();
    for (choice, got) in choices.iter().enumerate() {
        let mut alone = request.clone();
        alone.sampling.seed = gonka_engine_api::choice_seed(40, choice);
        let separate = runtime.block_on(collect(engine.submit(alone).expect("submits")));
        assert_eq!(got.ids, separate.ids, "choice {choice}");
        assert_eq!(got.logprobs, separate.logprobs, "choice {choice}");
    }
    assert!(choices[0].ids != choices[1].ids || choices[1].ids != choices[2].ids, "seeds differ");
    // More answers than the KV cache can ever hold at once is the request's error, not a wait forever.
    let too_many = engine.submit_choices(greedy(user(&engine, "Hi"), 2000), 64);
    assert!(matches!(too_many, Err(EngineError::InvalidParameter { param: "n", .. })), "{too_many:?}");
}

/// Prefix caching: a prompt that starts like an earlier one restores that prefix's keys and values in
/// whole blocks and reports them as cached, and its answer is bit-identical (tokens and logprobs) to the
/// answer of an engine without the cache; a cache too small for two prompts evicts the older one's
/// blocks from their end, and answers stay identical.
#[test]
fn cached_prefixes_give_bit_identical_answers_and_are_evicted_from_their_end() {
    use gonka_engine::prefix::BLOCK_TOKENS;
    let cached_engine =
        engine(EngineConfig { prefix_cache_tokens: 4 * BLOCK_TOKENS, ..EngineConfig::default() });
    let plain = engine(EngineConfig { prefix_cache_tokens: 0, ..EngineConfig::default() });
    let instructions = "You are a careful assistant for a bakery. Answer in one short sentence. ".repeat(12);
    let chat = |engine: &gonka_engine::Engine, system: &str, question: &str| {
        let messages = [
            ChatMessage { role: "system".into(), content: system.into() },
            ChatMessage { role: "user".into(), content: question.into() },
        ];
        let mut request = greedy(engine.render_chat(&messages).expect("renders"), 16);
        request.top_logprobs = Some(3);
        runtime().block_on(collect(engine.submit(request).expect("submits")))
    };
    let first = chat(&cached_engine, &instructions, "When do you open?");
    assert_eq!(first.usage.cached_tokens, 0, "nothing cached yet");
    let second = chat(&cached_engine, &instructions, "Do you sell rye bread?");
    let expected = chat(&plain, &instructions, "Do you sell rye bread?");
    assert!(second.usage.cached_tokens >= 2 * BLOCK_TOKENS, "{:?}", second.usage);
    assert_eq!(second.usage.cached_tokens % BLOCK_TOKENS, 0);
    assert_eq!((&second.ids, &second.logprobs), (&expected.ids, &expected.logprobs));
    assert_eq!(expected.usage.cached_tokens, 0);

    // Another long prompt fills the 4-block cache: the first prompt's blocks go, deepest first.
    let other =
        "You are a terse librarian who recommends exactly one classic novel per question. ".repeat(12);
    chat(&cached_engine, &other, "Something about the sea?");
    let again = chat(&cached_engine, &instructions, "Do you sell rye bread?");
    assert!(again.usage.cached_tokens < second.usage.cached_tokens, "{:?}", again.usage);
    assert_eq!((&again.ids, &again.logprobs), (&expected.ids, &expected.logprobs));
}

"""The official OpenAI Python SDK against a running `gonka serve` (started by run.sh).

GONKA_BASE_URL points at the server's /v1. Greedy answers (temperature 0) must be identical however they
are delivered; seeded sampled answers must repeat.
"""

import json
import os
from typing import Literal

import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel, Field

# SmolLM2-135M, with the template's default system prompt, greedily answers this question with a list of
# French words (llama.cpp on the same file agrees); a short system prompt of our own keeps it on topic.
QUESTION = [
    {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
]
ANSWER_TOKENS_MAX = 48
TOP_LOGPROBS = 5


@pytest.fixture(scope="module")
def client() -> OpenAI:
    base_url = os.environ["GONKA_BASE_URL"]
    # No retries: a 429 or 5xx should fail the test, not be hidden by the SDK's backoff.
    return OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120.0)


@pytest.fixture(scope="module")
def model(client: OpenAI) -> str:
    models = client.models.list().data
    assert len(models) == 1
    assert models[0].object == "model"
    return models[0].id


@pytest.fixture(scope="module")
def greedy_answer(client: OpenAI, model: str):
    return client.chat.completions.create(
        model=model, messages=QUESTION, temperature=0, max_tokens=ANSWER_TOKENS_MAX
    )


def test_model_is_retrievable_by_id(client: OpenAI, model: str) -> None:
    assert client.models.retrieve(model).id == model


def test_non_streaming_completion_answers_and_counts_tokens(greedy_answer, model: str) -> None:
    assert greedy_answer.object == "chat.completion"
    assert greedy_answer.id.startswith("chatcmpl-")
    assert greedy_answer.model == model
    assert len(greedy_answer.choices) == 1
    choice = greedy_answer.choices[0]
    assert choice.message.role == "assistant"
    assert "paris" in (choice.message.content or "").lower(), choice.message.content
    assert choice.finish_reason in ("stop", "length")
    usage = greedy_answer.usage
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert 0 < usage.completion_tokens <= ANSWER_TOKENS_MAX
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    if choice.finish_reason == "length":
        assert usage.completion_tokens == ANSWER_TOKENS_MAX


def test_streaming_matches_the_greedy_answer_and_ends_with_usage(
    client: OpenAI, model: str, greedy_answer
) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=QUESTION,
        temperature=0,
        max_tokens=ANSWER_TOKENS_MAX,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks, "the stream sent no chunks"
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1

    text = "".join(
        choice.delta.content or "" for chunk in chunks for choice in chunk.choices
    )
    assert text == greedy_answer.choices[0].message.content

    finish_reasons = [
        choice.finish_reason for chunk in chunks for choice in chunk.choices if choice.finish_reason
    ]
    assert finish_reasons == [greedy_answer.choices[0].finish_reason]

    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == greedy_answer.usage.prompt_tokens
    assert last.usage.completion_tokens == greedy_answer.usage.completion_tokens
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_logprobs_give_one_entry_per_token_with_sorted_alternatives(
    client: OpenAI, model: str
) -> None:
    # A request long enough to hit max_tokens, so no end-of-turn token is in doubt: every completion
    # token is a content token.
    tokens_max = 8
    response = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        temperature=0,
        max_tokens=tokens_max,
        logprobs=True,
        top_logprobs=TOP_LOGPROBS,
    )
    choice = response.choices[0]
    assert choice.finish_reason == "length"
    assert response.usage.completion_tokens == tokens_max
    entries = choice.logprobs.content
    assert len(entries) == response.usage.completion_tokens
    content_bytes = b"".join(bytes(entry.bytes or []) for entry in entries)
    assert content_bytes.decode("utf-8", errors="replace") == choice.message.content
    for entry in entries:
        assert entry.logprob <= 0.0
        assert entry.bytes is not None
        alternatives = entry.top_logprobs
        assert len(alternatives) == TOP_LOGPROBS
        logprobs = [alternative.logprob for alternative in alternatives]
        assert all(logprob <= 0.0 for logprob in logprobs)
        assert logprobs == sorted(logprobs, reverse=True)
        # Greedy picks the most likely token, so it heads its own list.
        assert abs(entry.logprob - logprobs[0]) < 1e-3


def test_the_same_seed_reproduces_a_sampled_answer(client: OpenAI, model: str) -> None:
    def sample(seed: int) -> str:
        response = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Tell me a short story about a cat."}],
            temperature=1.0,
            max_tokens=32,
            seed=seed,
        )
        return response.choices[0].message.content or ""

    first = sample(1234)
    assert first
    assert sample(1234) == first
    # Another seed usually, but not necessarily, gives another story; it must at least be served.
    assert isinstance(sample(4321), str)


def test_logit_bias_and_penalties_shape_the_answer(client: OpenAI, model: str) -> None:
    # A bias of +100 on one ordinary token makes greedy decoding emit it at every position; the SDK sends
    # the integer key as the JSON string the API expects.
    forced = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        temperature=0,
        max_tokens=6,
        logprobs=True,
        logit_bias={1030: 100},
    )
    entries = forced.choices[0].logprobs.content
    assert len(entries) == 6
    assert len({entry.token for entry in entries}) == 1, [entry.token for entry in entries]
    # Penalties are accepted in OpenAI's range and change a repetitive greedy answer.
    def repeat(**penalties) -> str:
        response = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Repeat the word hello ten times."}],
            temperature=0,
            max_tokens=16,
            **penalties,
        )
        return response.choices[0].message.content or ""

    assert repeat(presence_penalty=2.0, frequency_penalty=2.0) != repeat()
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=model, messages=QUESTION, presence_penalty=2.5)
    assert raised.value.status_code == 400
    assert raised.value.body["param"] == "presence_penalty"


class Landmark(BaseModel):
    name: str = Field(max_length=40)
    kind: Literal["museum", "monument", "park", "church"]


class City(BaseModel):
    name: str = Field(max_length=40)
    country: Literal["France", "Germany", "Italy", "Spain"]
    population_millions: float = Field(ge=0, le=40)
    founded_century: int = Field(ge=-10, le=21)
    landmarks: list[Landmark] = Field(max_length=3)


class Sentiment(BaseModel):
    label: Literal["positive", "neutral", "negative"]
    confidence: float = Field(ge=0, le=1)
    reasons: list[str] = Field(max_length=3)


@pytest.mark.parametrize(
    "schema, prompt",
    [
        (City, "Describe Paris: its name, country, population, founding century and landmarks."),
        (Sentiment, "Classify the sentiment of: 'I loved the food but the service was slow.'"),
    ],
)
@pytest.mark.parametrize("temperature", [0, 0.7])
def test_parse_returns_an_object_of_the_pydantic_schema(client: OpenAI, model: str, schema, prompt, temperature) -> None:
    completion = client.chat.completions.parse(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        response_format=schema,
        temperature=temperature,
        seed=3,
        max_tokens=200,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    parsed = choice.message.parsed
    assert isinstance(parsed, schema), choice.message.content
    # pydantic checked every bound and enum; the text is the JSON it parsed.
    assert schema.model_validate_json(choice.message.content) == parsed


def test_json_object_mode_answers_an_object(client: OpenAI, model: str) -> None:
    completion = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Give the name and age of a fictional person as JSON."}],
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=64,
    )
    content = completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop", content
    assert isinstance(json.loads(content), dict)


def test_an_invalid_schema_is_a_bad_request_naming_it(client: OpenAI, model: str) -> None:
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strnig"}}}
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=model, messages=QUESTION, response_format=bad)
    assert raised.value.body["param"] == "response_format.json_schema.schema"
    assert "strnig" in raised.value.body["message"]


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 40}, "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
ADD_TOOL = {
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]},
    },
}
WEATHER_QUESTION = [{"role": "user", "content": "What is the weather like in Paris right now?"}]


def _streamed_calls(stream) -> tuple[str, list[dict], str]:
    """Accumulates a streamed answer as the SDK's users do: content, tool calls by index, finish reason."""
    content, calls, finish = "", {}, None
    for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        content += choice.delta.content or ""
        for part in choice.delta.tool_calls or []:
            call = calls.setdefault(part.index, {"id": None, "name": "", "arguments": ""})
            call["id"] = part.id or call["id"]
            if part.function is not None:
                call["name"] += part.function.name or ""
                call["arguments"] += part.function.arguments or ""
        finish = choice.finish_reason or finish
    return content, [calls[i] for i in sorted(calls)], finish


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_round_trip(client: OpenAI, model: str, stream: bool) -> None:
    """The model calls a function (forced by name), the client sends the result back as a `tool` message,
    and the model answers in text."""
    forced = {"type": "function", "function": {"name": "get_weather"}}
    kwargs = dict(model=model, messages=WEATHER_QUESTION, tools=[WEATHER_TOOL, ADD_TOOL], tool_choice=forced,
                  parallel_tool_calls=False, temperature=0, max_tokens=60)
    if stream:
        content, calls, finish = _streamed_calls(client.chat.completions.create(stream=True, **kwargs))
        assistant = {"role": "assistant", "content": content or None, "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]}
        whole = client.chat.completions.create(**kwargs).choices[0].message.tool_calls
        assert [(c.function.name, c.function.arguments) for c in whole] == [(c["name"], c["arguments"]) for c in calls]
    else:
        answer = client.chat.completions.create(**kwargs)
        finish = answer.choices[0].finish_reason
        message = answer.choices[0].message
        calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments} for c in message.tool_calls]
        assistant = message.model_dump(exclude_none=True)
    assert finish == "tool_calls"
    assert len(calls) == 1 and calls[0]["name"] == "get_weather" and calls[0]["id"].startswith("call_")
    arguments = json.loads(calls[0]["arguments"])
    assert isinstance(arguments["city"], str) and arguments["unit"] in ("celsius", "fahrenheit")
    result = {"role": "tool", "tool_call_id": calls[0]["id"], "content": json.dumps({"temperature": 18, "sky": "sunny"})}
    reply = client.chat.completions.create(
        model=model, messages=WEATHER_QUESTION + [assistant, result], tools=[WEATHER_TOOL, ADD_TOOL],
        tool_choice="none", temperature=0, max_tokens=40,
    )
    assert reply.choices[0].message.content and not reply.choices[0].message.tool_calls


class Guest(BaseModel):
    name: str = Field(max_length=30)
    nights: int = Field(ge=1, le=14)


class BookRoom(BaseModel):
    """Book a hotel room."""

    city: str = Field(max_length=30)
    guest: Guest


def test_a_pydantic_tool_with_nested_models_is_called_with_valid_arguments(client: OpenAI, model: str) -> None:
    tool = openai.pydantic_function_tool(BookRoom)
    assert "$defs" in json.dumps(tool), "the nested model is a $ref into $defs"
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Book me two nights in Rome; I am Ada."}], tools=[tool],
        tool_choice={"type": "function", "function": {"name": "BookRoom"}}, parallel_tool_calls=False,
        temperature=0, max_tokens=80,
    )
    call = answer.choices[0].message.tool_calls[0]
    assert answer.choices[0].finish_reason == "tool_calls"
    BookRoom.model_validate_json(call.function.arguments)


def test_required_tool_choice_calls_some_declared_function(client: OpenAI, model: str) -> None:
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "What is 2 plus 3?"}], tools=[WEATHER_TOOL, ADD_TOOL],
        tool_choice="required", parallel_tool_calls=False, temperature=0.7, seed=1, max_tokens=60,
    )
    calls = answer.choices[0].message.tool_calls
    assert answer.choices[0].finish_reason == "tool_calls" and len(calls) == 1
    assert calls[0].function.name in ("get_weather", "add")
    assert isinstance(json.loads(calls[0].function.arguments), dict)


def test_auto_tool_choice_answers_text_or_calls(client: OpenAI, model: str) -> None:
    answer = client.chat.completions.create(
        model=model, messages=WEATHER_QUESTION, tools=[WEATHER_TOOL], temperature=0, max_tokens=40
    )
    message = answer.choices[0].message
    assert message.content or message.tool_calls


@pytest.mark.parametrize(
    "tools, choice, param",
    [
        ([WEATHER_TOOL], {"type": "function", "function": {"name": "get_time"}}, "tool_choice"),
        ([{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "strnig"}}}}}], "auto", "tools"),
        ([{"type": "function", "function": {"name": "bad name"}}], "auto", "tools[0].function.name"),
    ],
)
def test_bad_tools_are_bad_requests_naming_the_field(client: OpenAI, model: str, tools, choice, param) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=model, messages=QUESTION, tools=tools, tool_choice=choice, max_tokens=8)
    assert raised.value.body["param"] == param


def test_n_answers_share_a_prompt_and_count_it_once(client: OpenAI, model: str) -> None:
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Name a color."}], n=3, seed=7, temperature=1.0, max_tokens=12
    )
    assert [choice.index for choice in answer.choices] == [0, 1, 2]
    assert all(choice.message.content for choice in answer.choices)
    # Choice i is sampled with seed + i: the second choice is what seed 8 alone gives.
    alone = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Name a color."}], seed=8, temperature=1.0, max_tokens=12
    )
    assert answer.choices[1].message.content == alone.choices[0].message.content
    assert answer.usage.prompt_tokens == alone.usage.prompt_tokens
    assert answer.usage.completion_tokens == sum(
        len(client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Name a color."}], seed=7 + i, temperature=1.0,
            max_tokens=12, logprobs=True,
        ).choices[0].logprobs.content)
        for i in range(3)
    )
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=model, messages=QUESTION, n=9)
    assert raised.value.body["param"] == "n"


def test_a_repeated_long_system_prompt_is_served_from_the_prefix_cache(client: OpenAI, model: str) -> None:
    system = "You answer questions about a small bakery; be brief and friendly. " * 20
    def ask(question: str):
        return client.chat.completions.create(
            model=model, messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
            temperature=0, max_tokens=8, logprobs=True,
        )
    ask("When do you open?")
    again = ask("Do you sell rye bread?")
    cached = again.usage.prompt_tokens_details.cached_tokens
    assert 64 <= cached < again.usage.prompt_tokens and cached % 64 == 0, again.usage


def test_unknown_model_is_not_found(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="no-such-model", messages=QUESTION)
    assert raised.value.status_code == 404


def test_max_tokens_over_the_cap_is_a_bad_request(client: OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=model, messages=QUESTION, max_tokens=1_000_000)
    assert raised.value.status_code == 400


def _health() -> dict:
    import json
    import urllib.request

    root = os.environ["GONKA_BASE_URL"].rsplit("/v1", 1)[0]
    with urllib.request.urlopen(f"{root}/health", timeout=5) as response:
        return json.load(response)


def _wait_idle(seconds: float = 15.0) -> dict:
    import time

    deadline = time.monotonic() + seconds
    health = _health()
    while health["active_sequences"] + health["queue_depth"] > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
        health = _health()
    return health


def test_sixteen_concurrent_requests_complete_with_exact_usage(client: OpenAI, model: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def ask(i: int):
        return client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": f"Count from {i} to {i + 10}."}],
            temperature=0,
            max_tokens=12 + i,
        )

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(ask, range(16)))
    for i, answer in enumerate(answers):
        usage = answer.usage
        assert answer.choices[0].finish_reason in ("stop", "length")
        assert 0 < usage.completion_tokens <= 12 + i
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
        if answer.choices[0].finish_reason == "length":
            assert usage.completion_tokens == 12 + i
    assert _wait_idle()["active_sequences"] == 0


def test_a_client_that_disconnects_frees_its_slot(client: OpenAI, model: str) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Count from 1 to 1000, one number per line."}],
        temperature=0,
        max_tokens=2000,
        stream=True,
    )
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == 4:
            break
    assert all(c.choices[0].finish_reason is None for c in chunks if c.choices), "still generating"
    assert _health()["active_sequences"] == 1
    stream.close()
    health = _wait_idle()
    assert health["active_sequences"] == 0, health


PROMPT = "The capital of France is"


def test_text_completion_continues_a_raw_prompt(client: OpenAI, model: str) -> None:
    answer = client.completions.create(model=model, prompt=PROMPT, max_tokens=8, temperature=0)
    assert answer.object == "text_completion" and answer.id.startswith("cmpl-")
    choice = answer.choices[0]
    assert "Paris" in choice.text and choice.finish_reason in ("stop", "length")
    assert answer.usage.completion_tokens <= 8 and answer.usage.prompt_tokens == 5, answer.usage


def test_echo_with_logprobs_scores_the_prompt_and_the_answer(client: OpenAI, model: str) -> None:
    plain = client.completions.create(model=model, prompt=PROMPT, max_tokens=6, temperature=0)
    echoed = client.completions.create(model=model, prompt=PROMPT, max_tokens=6, temperature=0, echo=True, logprobs=3)
    choice = echoed.choices[0]
    assert choice.text == PROMPT + plain.choices[0].text
    logprobs = choice.logprobs
    prompt_tokens = echoed.usage.prompt_tokens
    assert len(logprobs.tokens) == prompt_tokens + echoed.usage.completion_tokens
    assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None
    assert all(lp <= 0 for lp in logprobs.token_logprobs[1:])
    assert "".join(logprobs.tokens) == choice.text
    assert logprobs.text_offset == [len("".join(logprobs.tokens[:i])) for i in range(len(logprobs.tokens))]
    for token, logprob, top in zip(logprobs.tokens[1:], logprobs.token_logprobs[1:], logprobs.top_logprobs[1:]):
        assert 1 <= len(top) <= 4 and top[token] == pytest.approx(logprob)
        assert max(top.values()) >= logprob
    # The answer's logprobs are its own generation's: a chat of the same tokens reports the same.
    generated = client.completions.create(model=model, prompt=PROMPT, max_tokens=6, temperature=0, logprobs=3)
    assert generated.choices[0].logprobs.token_logprobs == logprobs.token_logprobs[prompt_tokens:]


def prompt_logprobs(client: OpenAI, model: str, prompt, top: int) -> tuple[list, dict]:
    """vLLM's `prompt_logprobs` of `prompt` (an extension the SDK passes through `extra_body`)."""
    raw = client.completions.with_raw_response.create(
        model=model, prompt=prompt, max_tokens=4, temperature=0, extra_body={"prompt_logprobs": top}
    )
    body = json.loads(raw.text)
    return body["choices"][0]["prompt_logprobs"], body


def test_vllm_prompt_logprobs_rank_each_prompt_token(client: OpenAI, model: str) -> None:
    echoed = client.completions.create(model=model, prompt=PROMPT, max_tokens=1, temperature=0, echo=True, logprobs=0)
    positions, body = prompt_logprobs(client, model, PROMPT, 2)
    assert len(positions) == body["usage"]["prompt_tokens"] and positions[0] is None
    for position, token_text, logprob in zip(
        positions[1:], echoed.choices[0].logprobs.tokens[1:], echoed.choices[0].logprobs.token_logprobs[1:]
    ):
        # The prompt's own token first, then the 2 most likely, ranked from 1.
        actual = next(iter(position.values()))
        assert actual["decoded_token"] == token_text and actual["logprob"] == pytest.approx(logprob)
        ranks = sorted(entry["rank"] for entry in position.values())
        assert ranks[0] == 1 and all(entry["logprob"] <= 0 for entry in position.values())
        assert 2 <= len(position) <= 3


def test_text_completions_take_token_ids_stream_and_n(client: OpenAI, model: str) -> None:
    # The ids of " capital of France is": the prompt's own tokens after its first, as prompt_logprobs
    # names them.
    positions, _ = prompt_logprobs(client, model, PROMPT, 0)
    ids = [int(next(iter(position))) for position in positions[1:]]
    by_text = client.completions.create(model=model, prompt=" capital of France is", max_tokens=6, temperature=0)
    by_ids = client.completions.create(model=model, prompt=ids, max_tokens=6, temperature=0)
    assert by_ids.choices[0].text == by_text.choices[0].text and by_ids.usage.prompt_tokens == len(ids)
    streamed = client.completions.create(
        model=model, prompt=ids, max_tokens=6, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    text, usage, finish = "", None, None
    for chunk in streamed:
        for choice in chunk.choices:
            text += choice.text
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
    assert text == by_ids.choices[0].text and finish == by_ids.choices[0].finish_reason
    assert usage.completion_tokens == by_ids.usage.completion_tokens
    three = client.completions.create(model=model, prompt=PROMPT, max_tokens=6, temperature=0.9, seed=5, n=3)
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert three.usage.prompt_tokens == 5
    # Choice i is the answer a request with seed 5 + i gets.
    second = client.completions.create(model=model, prompt=PROMPT, max_tokens=6, temperature=0.9, seed=6)
    assert three.choices[1].text == second.choices[0].text


def test_bad_text_completion_requests_name_the_field(client: OpenAI, model: str) -> None:
    cases = [
        ({"prompt": ""}, "prompt"),
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [1, 10_000_000]}, "prompt"),
        ({"prompt": PROMPT, "logprobs": 21}, "logprobs"),
        ({"prompt": PROMPT, "suffix": "x"}, "suffix"),
        ({"prompt": PROMPT, "best_of": 3}, "best_of"),
        ({"prompt": PROMPT, "n": 9}, "n"),
        ({"prompt": PROMPT, "extra_body": {"prompt_logprobs": 50}}, "prompt_logprobs"),
    ]
    for fields, param in cases:
        extra = fields.pop("extra_body", None)
        with pytest.raises(openai.BadRequestError) as raised:
            client.completions.create(model=model, max_tokens=4, extra_body=extra, **fields)
        assert raised.value.body["param"] == param, (fields, raised.value.body)
    assert client.completions.create(model=model, prompt=PROMPT, max_tokens=2).choices

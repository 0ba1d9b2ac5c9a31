"""The official OpenAI Python SDK against `gonka gateway` on a devnet of 3 hosts (started by run.sh).

GONKA_DEVNET_DIR holds devnet.json. Every answer is paid from the developer's balance: exactly
(prompt + completion tokens) x the price locked at its first receipt (prices follow load, within the bound
the gateway signs: docs/spec/economy.md §7), held for the answer until its validation is over, then shared among
the executor and the validators that passed it (docs/spec/validation.md §5.3); executors are drawn in
proportion to voting power (genesis weights 100/200/300).
"""

import hashlib
import json
import os
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel, Field

DEVNET = os.environ["GONKA_DEVNET_DIR"]
QUESTION = [
    {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
]
# 2 degrees of freedom: chi-square below 9.21 means p >= 0.01.
CHI_SQUARE_P01_DF2 = 9.21


@pytest.fixture(scope="module")
def plan() -> dict:
    with open(os.path.join(DEVNET, "devnet.json")) as f:
        return json.load(f)


def get(plan: dict, path: str, node: int = 0):
    with urllib.request.urlopen(plan["nodes"][node]["api_url"] + path, timeout=10) as response:
        return json.load(response)


def balance(plan: dict, address: str) -> int:
    return int(get(plan, f"/accounts/{address}")["balance"])


def locked_price(plan: dict, record: dict) -> int:
    """The price the answer locked at its first receipt; the model's price is public at /price/{model}."""
    locked = int(record["price_per_token"])
    assert 0 < locked, record
    assert int(get(plan, f"/price/{record['model']}")["base_price"]) > 0
    return locked


def finished(plan: dict, inference_id: str, timeout: float = 30.0) -> dict:
    deadline = time.time() + timeout
    while True:
        try:
            record = get(plan, f"/inferences/{inference_id}")
            # A validator may already have re-scored and passed it.
            if record["status"] in ("finished", "validated") and record["transfer_agent"]:
                return record
        except urllib.error.HTTPError:
            pass
        assert time.time() < deadline, f"inference {inference_id} not finished on chain"
        time.sleep(0.3)


def assert_fee_held(plan: dict, inference_id: str, cost: int) -> None:
    """The whole cost is held for the answer until its validation is over; then it is shared."""
    record = get(plan, f"/inferences/{inference_id}")
    assert int(record["fee_held"]) == cost or record["fee_settled"], record


@pytest.fixture(scope="module")
def client(plan: dict) -> OpenAI:
    return OpenAI(base_url=plan["gateway_url"] + "/v1", api_key="unused", max_retries=0, timeout=120.0)


@pytest.fixture(scope="module")
def model(client: OpenAI) -> str:
    return client.models.list().data[0].id


def test_a_non_streaming_answer_is_paid_exactly_by_its_tokens(plan, client, model) -> None:
    developer = plan["developer"]["address"]
    before = balance(plan, developer)
    raw = client.chat.completions.with_raw_response.create(model=model, messages=QUESTION, max_tokens=24, temperature=0)
    answer = raw.parse()
    assert "paris" in answer.choices[0].message.content.lower()
    record = finished(plan, raw.headers["x-inference-id"])
    executor = raw.headers["x-executor-address"]
    assert record["executor"] == executor
    assert (record["prompt_tokens"], record["completion_tokens"]) == (
        answer.usage.prompt_tokens,
        answer.usage.completion_tokens,
    )
    assert record["response_hash"] == hashlib.sha256(answer.choices[0].message.content.encode()).hexdigest()
    cost = answer.usage.total_tokens * locked_price(plan, record)
    assert int(record["cost"]) == cost
    assert balance(plan, developer) == before - cost
    assert_fee_held(plan, raw.headers["x-inference-id"], cost)


def test_a_streamed_answer_is_paid_exactly_by_its_tokens(plan, client, model) -> None:
    developer = plan["developer"]["address"]
    before = balance(plan, developer)
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=QUESTION,
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in raw.parse():
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
    assert "paris" in text.lower()
    assert usage is not None
    record = finished(plan, raw.headers["x-inference-id"])
    assert record["response_hash"] == hashlib.sha256(text.encode()).hexdigest()
    cost = usage.total_tokens * locked_price(plan, record)
    assert balance(plan, developer) == before - cost
    assert_fee_held(plan, raw.headers["x-inference-id"], cost)


class Capital(BaseModel):
    country: str = Field(max_length=30)
    capital: str = Field(max_length=30)
    on_the_coast: bool
    population_millions: int = Field(ge=0, le=50)


def test_a_structured_answer_parses_and_is_paid_exactly(plan, client, model) -> None:
    """A pydantic schema through the gateway: the executor's answer parses, and its receipts bill it like
    any other answer (validators replay it under the same grammar: docs/spec/validation.md §3.2)."""
    developer = plan["developer"]["address"]
    before = balance(plan, developer)
    raw = client.chat.completions.with_raw_response.parse(
        model=model, messages=QUESTION, response_format=Capital, max_tokens=120, temperature=0
    )
    answer = raw.parse()
    parsed = answer.choices[0].message.parsed
    assert isinstance(parsed, Capital), answer.choices[0].message.content
    record = finished(plan, raw.headers["x-inference-id"])
    assert record["response_hash"] == hashlib.sha256(answer.choices[0].message.content.encode()).hexdigest()
    cost = answer.usage.total_tokens * locked_price(plan, record)
    assert balance(plan, developer) == before - cost


def test_an_invalid_schema_is_refused_before_anything_is_escrowed(plan, client, model) -> None:
    developer = plan["developer"]["address"]
    before = balance(plan, developer)
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strnig"}}}
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=model, messages=QUESTION, response_format=bad, max_tokens=8)
    assert raised.value.body["param"] == "response_format.json_schema.schema"
    assert balance(plan, developer) == before


def choices_hash(texts: list[str]) -> str:
    """The Finish's commitment to several answers' texts (docs/spec/validation.md §1.1)."""
    data = b"gonka/choices/v1" + len(texts).to_bytes(4, "big")
    for text in texts:
        raw = text.encode()
        data += len(raw).to_bytes(8, "big") + raw
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("stream", [False, True])
def test_several_choices_are_answered_and_paid_exactly(plan, client, model, stream) -> None:
    """`n = 3` through the gateway: the prompt is billed once and every choice's tokens, the Finish
    commits to all three texts, and the signed budget (3 x max_tokens) caps each choice at max_tokens."""
    developer = plan["developer"]["address"]
    before = balance(plan, developer)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=QUESTION, n=3, max_tokens=12, temperature=1.0, seed=11, stream=stream,
        **({"stream_options": {"include_usage": True}} if stream else {}),
    )
    if stream:
        texts, usage = ["", "", ""], None
        for chunk in raw.parse():
            for choice in chunk.choices:
                texts[choice.index] += choice.delta.content or ""
            usage = chunk.usage or usage
    else:
        answer = raw.parse()
        texts = [c.message.content for c in sorted(answer.choices, key=lambda c: c.index)]
        usage = answer.usage
    assert len(texts) == 3 and usage.completion_tokens <= 36
    record = finished(plan, raw.headers["x-inference-id"])
    assert (record["prompt_tokens"], record["completion_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert record["response_hash"] == choices_hash(texts)
    cost = usage.total_tokens * locked_price(plan, record)
    assert int(record["cost"]) == cost
    assert balance(plan, developer) == before - cost


def test_cached_prompt_tokens_are_billed_at_the_cached_price_to_the_ngonka(plan, client, model) -> None:
    """A long system prompt sent again reaches an executor whose prefix cache holds it: the answer reports
    the cached tokens, the Finish carries the same count, and the developer pays
    (prompt - cached + completion) x price + floor(cached x price x cached_price_ppm / 10^6)
    (docs/spec/inference.md §4.2)."""
    developer = plan["developer"]["address"]
    system = "You are the assistant of a small bakery in Lyon; answer in one short sentence. " * 12
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Do you sell rye bread?"}]
    # Executors are drawn by weight: after a few answers every one of the three has the prompt cached.
    for _ in range(12):
        before = balance(plan, developer)
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=messages, max_tokens=8, temperature=0
        )
        answer = raw.parse()
        record = finished(plan, raw.headers["x-inference-id"])
        cached = answer.usage.prompt_tokens_details.cached_tokens
        assert record["cached_tokens"] == cached, record
        price = locked_price(plan, record)
        ppm = get(plan, f"/price/{record['model']}")["cached_price_ppm"]
        full = answer.usage.prompt_tokens - cached + answer.usage.completion_tokens
        cost = full * price + cached * price * ppm // 1_000_000
        assert int(record["cost"]) == cost
        assert balance(plan, developer) == before - cost
        if cached > 0:
            assert ppm < 1_000_000 and cost < answer.usage.total_tokens * price
            return
    pytest.fail("no answer was served from a prefix cache")


def test_a_text_completion_with_echo_and_logprobs_is_paid_exactly(plan, client, model) -> None:
    """`/v1/completions` through the gateway: the executor answers a raw prompt, echoes it with its
    logprobs, and the receipts bill the prompt and the generated tokens; the response hash commits to
    the generated text only (what validators replay; docs/spec/validation.md §3)."""
    developer = plan["developer"]["address"]
    before = balance(plan, developer)
    prompt = "The capital of France is"
    raw = client.completions.with_raw_response.create(
        model=model, prompt=prompt, max_tokens=8, temperature=0, echo=True, logprobs=2
    )
    answer = raw.parse()
    choice = answer.choices[0]
    assert choice.text.startswith(prompt) and "Paris" in choice.text[len(prompt):]
    assert len(choice.logprobs.tokens) == answer.usage.total_tokens
    assert choice.logprobs.token_logprobs[0] is None
    record = finished(plan, raw.headers["x-inference-id"])
    assert (record["prompt_tokens"], record["completion_tokens"]) == (
        answer.usage.prompt_tokens,
        answer.usage.completion_tokens,
    )
    assert record["response_hash"] == hashlib.sha256(choice.text[len(prompt):].encode()).hexdigest()
    cost = answer.usage.total_tokens * locked_price(plan, record)
    assert balance(plan, developer) == before - cost


def test_a_body_sent_to_the_other_endpoint_is_refused_before_anything_is_escrowed(plan, client, model) -> None:
    developer = plan["developer"]["address"]
    before = balance(plan, developer)
    with pytest.raises(openai.BadRequestError) as raised:
        client.completions.create(model=model, prompt="Hi", max_tokens=4, extra_body={"messages": QUESTION})
    assert raised.value.body["param"] == "prompt"
    assert balance(plan, developer) == before


def test_an_unknown_model_is_an_openai_404(client) -> None:
    with pytest.raises(openai.NotFoundError) as error:
        client.chat.completions.create(model="no-such-model", messages=QUESTION, max_tokens=4)
    assert error.value.body["code"] == "model_not_found"


def test_executors_are_drawn_in_proportion_to_voting_power(plan, client, model) -> None:
    requests = 300

    def one(i: int) -> tuple:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": f"Say {i}"}], max_tokens=1
        )
        raw.parse()
        return raw.headers["x-executor-address"], raw.headers["x-inference-id"]

    counts_before = {p["address"]: p["inferences"] for p in get(plan, "/participants")["participants"]}
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(requests)))
    counts = Counter(executor for executor, _ in results)
    weights = {p["address"]: p["weight"] for p in get(plan, "/participants")["participants"]}
    total = sum(weights.values())
    chi_square = sum((counts[a] - requests * w / total) ** 2 / (requests * w / total) for a, w in weights.items())
    print(f"executor counts {dict(counts)} for weights {weights}: chi-square {chi_square:.2f}")
    assert chi_square < CHI_SQUARE_P01_DF2, (counts, weights)
    # Every answer has its receipts on chain, and each executor was credited for its own.
    finished(plan, results[-1][1])
    deadline = time.time() + 30
    while True:
        counts_after = {p["address"]: p["inferences"] for p in get(plan, "/participants")["participants"]}
        done = {a: counts_after[a] - counts_before[a] for a in weights}
        if done == {a: counts[a] for a in weights}:
            break
        assert time.time() < deadline, (done, counts)
        time.sleep(0.5)

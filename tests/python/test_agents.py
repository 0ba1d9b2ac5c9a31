"""A real agent framework, the OpenAI Agents SDK (installed from PyPI by run.sh), runs a small
tool-using task end to end against `gonka gateway` on the devnet (GONKA_DEVNET_DIR holds devnet.json):
the model calls the agent's function, the SDK runs it and sends the result back, the model answers.

The first turn forces a call (`tool_choice="required"`; the SDK resets the choice to `auto` once a tool has
run, as it does by default), since a 135M model rarely decides to call a tool on its own.
"""

import json
import os

from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

DEVNET = os.environ["GONKA_DEVNET_DIR"]
CITIES: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The current weather in a city.

    Args:
        city: The city's name.
    """
    CITIES.append(city)
    return f"It is 18 degrees Celsius and sunny in {city}."


def test_an_agent_calls_a_tool_and_answers_through_the_gateway() -> None:
    with open(os.path.join(DEVNET, "devnet.json")) as f:
        plan = json.load(f)
    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=plan["gateway_url"] + "/v1", api_key="unused", max_retries=0, timeout=120.0)
    agent = Agent(
        name="weather",
        instructions="You answer questions about the weather, using the get_weather tool.",
        tools=[get_weather],
        model=OpenAIChatCompletionsModel(model="SmolLM2-135M-Instruct", openai_client=client),
        model_settings=ModelSettings(tool_choice="required", parallel_tool_calls=False, temperature=0, max_tokens=60),
    )
    result = Runner.run_sync(agent, "What is the weather in Paris?", max_turns=4)
    assert CITIES, "the tool never ran"
    assert all(isinstance(city, str) and city for city in CITIES)
    assert isinstance(result.final_output, str) and result.final_output.strip(), result.final_output
    print(f"tool called for {CITIES}; the agent answered {result.final_output!r}")

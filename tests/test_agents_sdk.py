"""The OpenAI Agents SDK, unchanged, on its default model (the Responses API), streamed,
against the gateway and the real llama.cpp engine; the ledger holds exactly the usage the SDK
counted. (tests/test_real_clients.py runs it whole: a one-turn agent, and one that calls a
tool.) Skipped where the SDK is not installed."""

import asyncio
from typing import Any

import openai
import pytest

from tokenmill.testing import ServerProcess

agents = pytest.importorskip("agents")

MODEL = "smollm2-135m"


@pytest.fixture
def agent_kit(server: ServerProcess, tenant_key) -> Any:
    """The SDK's defaults pointed at the gateway: its own client, its default Responses model."""
    _, key = tenant_key
    client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    agents.set_default_openai_client(client, use_for_tracing=False)
    agents.set_default_openai_api("responses")
    agents.set_tracing_disabled(True)  # its traces would go to OpenAI's servers
    return agents


def test_an_agent_with_a_function_tool_runs_streamed(server: ServerProcess, tenant_key, agent_kit):
    """SmolLM2 answers without calling the tool; the tool's offer must still go through."""
    tenant, _ = tenant_key
    calls: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return "sunny"

    agent = agents.Agent(
        name="forecaster", instructions="Answer briefly.", model=MODEL,
        tools=[get_weather],
        # Room to finish: the SDK takes a response cut at max_output_tokens for a failure.
        model_settings=agents.ModelSettings(temperature=0, max_tokens=64),
    )  # fmt: skip

    async def run() -> Any:
        result = agents.Runner.run_streamed(agent, "Reply with one word: yes.")
        async for _ in result.stream_events():
            pass
        return result

    result = asyncio.run(run())
    assert result.final_output or calls
    usage = result.context_wrapper.usage
    [row] = server.tenant_usage(tenant, usage.requests)
    told = (usage.requests, usage.input_tokens, usage.output_tokens)
    assert (row["requests"], row["prompt_tokens"], row["completion_tokens"]) == told

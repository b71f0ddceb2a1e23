"""The clients people bring, unchanged, against the real server and engine: LangChain's
ChatOpenAI, LiteLLM and the OpenAI Agents SDK. Each works, and the ledger holds exactly the
tokens each client was told it used."""

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, Field

from tokenmill.testing import ServerProcess

MODEL = "smollm2-135m"


class Weather(BaseModel):
    """The weather to look up."""

    city: str = Field(description="The city")


def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return f"sunny in {city}"


@pytest.fixture
def chat(server: ServerProcess, tenant_key: tuple[str, str]) -> Any:
    from langchain_openai import ChatOpenAI

    _, key = tenant_key
    return ChatOpenAI(
        model=MODEL, base_url=server.url + "/v1", api_key=key, max_tokens=40, temperature=0,
        max_retries=0, stream_usage=True,
    )  # fmt: skip


def _ledger(server: ServerProcess, tenant: str, requests: int) -> dict[str, int]:
    rows = server.tenant_usage(tenant, requests)
    return {
        "requests": sum(r["requests"] for r in rows),
        "input": sum(r["prompt_tokens"] for r in rows),
        "output": sum(r["completion_tokens"] for r in rows),
    }


def test_langchain_invoke_and_stream(server: ServerProcess, tenant_key, chat: Any):
    tenant, _ = tenant_key
    answer = chat.invoke("Say hello.")
    assert isinstance(answer.content, str) and answer.content
    chunks = list(chat.stream("Say hello again."))
    assert "".join(str(c.content) for c in chunks)
    streamed = next(c.usage_metadata for c in chunks if c.usage_metadata)
    told = [answer.usage_metadata, streamed]
    assert _ledger(server, tenant, 2) == {
        "requests": 2,
        "input": sum(u["input_tokens"] for u in told),
        "output": sum(u["output_tokens"] for u in told),
    }


def test_langchain_bind_tools_gets_a_tool_call(server: ServerProcess, tenant_key, chat: Any):
    tenant, _ = tenant_key
    answer = chat.bind_tools([get_weather], tool_choice="get_weather").invoke(
        "What is the weather in Paris?"
    )
    [call] = answer.tool_calls
    assert call["name"] == "get_weather"
    assert isinstance(call["args"]["city"], str)
    assert _ledger(server, tenant, 1)["output"] == answer.usage_metadata["output_tokens"]


@pytest.mark.parametrize("method", ["function_calling", "json_schema", "json_mode"])
def test_langchain_structured_output(chat: Any, method: str):
    if method == "json_mode":  # no schema is sent: the model writes JSON of its own shape
        result = chat.with_structured_output(None, method="json_mode").invoke(
            "Reply in JSON with a key 'city' for the capital of France."
        )
        assert isinstance(result, dict)
        return
    result = chat.with_structured_output(Weather, method=method).invoke(
        "Which city is the capital of France?"
    )
    assert isinstance(result, Weather) and isinstance(result.city, str)


def test_litellm_as_a_client(server: ServerProcess, tenant_key):
    import litellm

    tenant, key = tenant_key
    common = {"model": f"openai/{MODEL}", "api_base": server.url + "/v1", "api_key": key,
              "max_tokens": 8, "temperature": 0}  # fmt: skip
    resp = litellm.completion(messages=[{"role": "user", "content": "Hello"}], **common)
    assert resp.choices[0].message.content
    chunks = list(
        litellm.completion(
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True},
            **common,
        )
    )
    streamed = next(c.usage for c in chunks if getattr(c, "usage", None))
    assert _ledger(server, tenant, 2) == {
        "requests": 2,
        "input": resp.usage.prompt_tokens + streamed.prompt_tokens,
        "output": resp.usage.completion_tokens + streamed.completion_tokens,
    }


@pytest.fixture
def agents_client(server: ServerProcess, tenant_key: tuple[str, str]) -> Iterator[None]:
    """The Agents SDK's default client pointed at TokenMill; its tracing (which would call
    OpenAI's servers) off."""
    import agents
    from openai import AsyncOpenAI

    _, key = tenant_key
    os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")
    agents.set_tracing_disabled(True)
    agents.set_default_openai_client(
        AsyncOpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0),
        use_for_tracing=False,
    )
    agents.set_default_openai_api("responses")  # its default, said out loud
    yield
    agents.set_default_openai_api("responses")


def _run_agent(agent: Any, prompt: str) -> Any:
    import agents

    return asyncio.run(agents.Runner.run(agent, prompt, max_turns=3))


def _agent_usage(result: Any) -> tuple[int, int]:
    usage = result.context_wrapper.usage
    return usage.input_tokens, usage.output_tokens


def test_agents_sdk_one_turn(server: ServerProcess, tenant_key, agents_client: None):
    import agents

    tenant, _ = tenant_key
    agent = agents.Agent(
        name="greeter", instructions="Answer in one short sentence.", model=MODEL,
        model_settings=agents.ModelSettings(max_tokens=256, temperature=0),
    )  # fmt: skip
    result = _run_agent(agent, "Say hello.")
    assert isinstance(result.final_output, str) and result.final_output
    told_in, told_out = _agent_usage(result)
    assert _ledger(server, tenant, 1) == {"requests": 1, "input": told_in, "output": told_out}


def test_agents_sdk_with_a_function_tool(server: ServerProcess, tenant_key, agents_client: None):
    import agents

    tenant, _ = tenant_key
    calls: list[str] = []

    @agents.function_tool
    def weather(city: str) -> str:
        """Get the weather for a city."""
        calls.append(city)
        return f"sunny in {city}"

    agent = agents.Agent(
        name="forecaster", instructions="Use the weather tool.", model=MODEL, tools=[weather],
        model_settings=agents.ModelSettings(tool_choice="required", max_tokens=40, temperature=0),
        tool_use_behavior="stop_on_first_tool",
    )  # fmt: skip
    result = _run_agent(agent, "What is the weather in Paris?")
    assert len(calls) == 1  # the model called it, the SDK ran it
    assert result.final_output == f"sunny in {calls[0]}"
    told_in, told_out = _agent_usage(result)
    assert _ledger(server, tenant, 1) == {"requests": 1, "input": told_in, "output": told_out}

"""Tool calls from the default deployment, whose chat template has none: the gateway emulates
them with a JSON grammar, so clients that wait for `tool_calls` get them (real engine)."""

import json
from typing import Any

import openai
import pytest

from tokenmill.gateway.jobs import prompt_bytes
from tokenmill.gateway.tool_emulation import ToolEmulation, prompt_bytes_change
from tokenmill.gateway.tracker import UsageTracker
from tokenmill.testing import ServerProcess

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "description": "The time now", "parameters": {}},
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def _client(server: ServerProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def test_the_default_deployment_says_its_tool_calls_are_emulated(server: ServerProcess):
    deps = server.admin("GET", "/admin/deployments")["data"]
    [dep] = [d for d in deps if d["name"] == "smollm2-135m"]
    assert dep["capabilities"]["tool_calls"] == "emulated"
    assert dep["capabilities"]["vision"] is False


@pytest.mark.parametrize(
    "choice", ["required", {"type": "function", "function": {"name": "get_weather"}}]
)
def test_a_required_or_named_tool_is_called(server: ServerProcess, tenant_key, choice: Any):
    tenant, key = tenant_key
    resp = _client(server, key).chat.completions.create(
        model="smollm2-135m", messages=ASK, tools=[WEATHER, TIME], tool_choice=choice,
        max_tokens=60, temperature=0,
    )  # fmt: skip
    [result] = resp.choices
    assert result.finish_reason == "tool_calls", result
    [call] = result.message.tool_calls or []
    assert call.id.startswith("call_")
    if isinstance(choice, dict):
        assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    if call.function.name == "get_weather":
        assert isinstance(arguments["city"], str)  # the grammar held it to the schema
    [row] = server.tenant_usage(tenant, 1)
    assert resp.usage is not None
    assert row["completion_tokens"] == resp.usage.completion_tokens
    assert row["prompt_tokens"] == resp.usage.prompt_tokens


def test_a_streamed_tool_call_arrives_whole_with_usage(server: ServerProcess, tenant_key):
    tenant, key = tenant_key
    stream = _client(server, key).chat.completions.create(
        model="smollm2-135m", messages=ASK, tools=[WEATHER], tool_choice="required",
        max_tokens=60, temperature=0, stream=True, stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    calls = [c for ch in chunks if ch.choices for c in ch.choices[0].delta.tool_calls or []]
    assert [c.function.name for c in calls] == ["get_weather"]
    assert "city" in json.loads(calls[0].function.arguments or "")
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "tool_calls"
    assert not any(ch.choices[0].delta.content for ch in chunks if ch.choices)  # no raw JSON
    usage = next(ch.usage for ch in chunks if ch.usage)
    [row] = server.tenant_usage(tenant, 1)
    assert row["completion_tokens"] == usage.completion_tokens


def test_auto_answers_in_words_or_calls_and_a_tool_result_continues(
    server: ServerProcess, tenant_key
):
    _, key = tenant_key
    client = _client(server, key)
    first = client.chat.completions.create(
        model="smollm2-135m", messages=ASK, tools=[WEATHER], max_tokens=60, temperature=0
    ).choices[0]
    assert (first.finish_reason == "tool_calls") == bool(first.message.tool_calls)
    if first.message.tool_calls is None:
        assert first.message.content and not first.message.content.lstrip().startswith("{")
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}  # fmt: skip
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": [call]},
               {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"}]  # fmt: skip
    second = client.chat.completions.create(
        model="smollm2-135m", messages=history, tools=[WEATHER], tool_choice="none",
        max_tokens=20, temperature=0,
    ).choices[0]  # fmt: skip
    assert second.message.content  # the template could render the exchange
    assert not second.message.tool_calls


def test_a_named_tool_that_was_not_offered_is_a_400(server: ServerProcess, tenant_key):
    _, key = tenant_key
    with pytest.raises(openai.BadRequestError, match="get_time"):
        _client(server, key).chat.completions.create(
            model="smollm2-135m", messages=ASK, tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "get_time"}},
        )  # fmt: skip


def _tracker() -> UsageTracker:
    return UsageTracker("r", "t", "k", "m", "d", "d-0", "chat", True)


def test_the_request_is_rewritten_for_the_grammar():
    payload: dict[str, Any] = {"messages": list(ASK), "tools": [WEATHER, TIME],
                               "tool_choice": "auto", "parallel_tool_calls": True}  # fmt: skip
    emulation = ToolEmulation.plan(payload)
    assert emulation is not None and emulation.may_answer
    assert "tools" not in payload and "tool_choice" not in payload
    schema = payload["response_format"]["json_schema"]["schema"]
    names = [o["properties"].get("name", {}).get("const") for o in schema["anyOf"]]
    assert names == ["get_weather", "get_time", None]  # None: the plain answer
    assert payload["messages"][0]["role"] == "system"
    assert "get_weather" in payload["messages"][0]["content"]
    assert ASK[0] == {"role": "user", "content": "What is the weather in Paris?"}  # untouched


def test_no_tools_or_none_leaves_no_grammar_but_history_in_words():
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    payload: dict[str, Any] = {
        "messages": [{"role": "assistant", "content": None, "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": "c", "content": "42"}],
        "tools": [WEATHER], "tool_choice": "none",
    }  # fmt: skip
    assert ToolEmulation.plan(payload) is None
    assert "response_format" not in payload and "tools" not in payload
    assert payload["messages"] == [
        {"role": "assistant", "content": '{"name":"f","arguments":{"a":1}}'},
        {"role": "user", "content": "Result of c: 42"},
    ]


def test_stream_chunks_are_held_until_the_call_is_whole():
    emulation = ToolEmulation(may_answer=False)
    tracker = _tracker()
    parts = ['{"name": "get_weather", ', '"arguments": {"city": "Paris"}}']
    role = {"choices": [{"delta": {"role": "assistant", "content": None}}]}
    assert emulation.chunk(role, tracker) is True
    for text in parts:
        chunk = {"choices": [{"delta": {"content": text}}], "timings": {"predicted_n": 3}}
        assert emulation.chunk(chunk, tracker) is False
    assert tracker.completion_tokens == 3  # held chunks still count what the engine made
    last: dict[str, Any] = {"choices": [{"delta": {}, "finish_reason": "stop"}]}
    assert emulation.chunk(last, tracker) is True
    [call] = last["choices"][0]["delta"]["tool_calls"]
    assert call["index"] == 0 and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert last["choices"][0]["finish_reason"] == "tool_calls"


def test_a_cut_short_call_is_left_as_written():
    emulation = ToolEmulation(may_answer=False)
    choice = {"message": {"content": '{"name": "get_we'}, "finish_reason": "length"}
    emulation.message(choice)
    assert choice == {"message": {"content": '{"name": "get_we'}, "finish_reason": "length"}


def test_an_answer_in_words_cut_short_keeps_its_words():
    emulation = ToolEmulation(may_answer=True)
    choice = {"message": {"content": '{\n  "response": "Paris is \\"lovely\\" and su'},
              "finish_reason": "length"}  # fmt: skip
    emulation.message(choice)
    assert choice["message"] == {"content": 'Paris is "lovely" and su'}
    assert choice["finish_reason"] == "length"


def test_an_answer_in_words_streams_as_it_comes():
    emulation = ToolEmulation(may_answer=True)
    tracker = _tracker()
    sent = []
    for text in ['{"resp', 'onse": "Par', "is is", " nice\\u00e9", '"}']:
        chunk: dict[str, Any] = {"choices": [{"delta": {"content": text}}]}
        if emulation.chunk(chunk, tracker):
            sent.append(chunk["choices"][0]["delta"]["content"])
    last: dict[str, Any] = {"choices": [{"delta": {}, "finish_reason": "stop"}]}
    assert emulation.chunk(last, tracker) is True
    sent.append(last["choices"][0]["delta"].get("content", ""))
    assert sent[:2] == ["Par", "is is"]  # words as they come, none of the JSON around them
    assert "".join(sent) == "Paris is nice\u00e9"
    assert last["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("choice", ["auto", "required"])
@pytest.mark.parametrize("system", [False, True])
def test_the_prompt_it_writes_is_counted_before_budgets_reserve(choice: str, system: bool):
    """Budgets bound a prompt by its bytes before the engine counts it: the bound must hold
    for the prompt the emulation writes (tools out, their description in)."""
    messages = [{"role": "system", "content": "Be brief."}, *ASK] if system else list(ASK)
    body: dict[str, Any] = {"messages": messages, "tools": [WEATHER, TIME], "tool_choice": choice}
    payload = {**body}
    ToolEmulation.plan(payload)
    bound = prompt_bytes("chat", body) + prompt_bytes_change(body)
    assert prompt_bytes("chat", payload) <= bound
    assert bound - prompt_bytes("chat", payload) < 100  # close: not the tools counted twice
    assert prompt_bytes_change({**body, "tool_choice": "none"}) == 0

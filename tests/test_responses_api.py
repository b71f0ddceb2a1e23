"""The official OpenAI SDK's Responses API against the gateway and the real llama.cpp engine:
whole and streamed answers, follow-ups by previous_response_id, function tools and call items,
refusals by name; the ledger holds exactly the usage each client was told."""

import json
from typing import Any

import httpx
import openai
import pytest

from tokenmill.testing import ADMIN_KEY, ServerProcess

MODEL = "smollm2-135m"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def _client(server: ServerProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def _ledger(server: ServerProcess, tenant: str, requests: int) -> tuple[int, int, int]:
    [row] = server.tenant_usage(tenant, requests)
    return row["requests"], row["prompt_tokens"], row["completion_tokens"]


def test_a_response_says_what_the_ledger_holds(server: ServerProcess, tenant_key):
    tenant, key = tenant_key
    raw = _client(server, key).responses.with_raw_response.create(
        model=MODEL, input="Say hello.", instructions="Be brief.", max_output_tokens=8,
        user="someone", include=["message.output_text.logprobs"],
    )  # fmt: skip
    assert set(raw.headers["x-tokenmill-ignored-params"].split(", ")) == {"user", "include"}
    resp = raw.parse()
    assert resp.id.startswith("resp_") and resp.object == "response" and resp.model == MODEL
    assert resp.status in ("completed", "incomplete") and resp.output_text
    assert resp.instructions == "Be brief."
    assert resp.usage is not None and resp.usage.output_tokens > 0
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    assert _ledger(server, tenant, 1) == (1, resp.usage.input_tokens, resp.usage.output_tokens)


def test_a_streamed_response_is_told_in_events_with_its_usage(server: ServerProcess, tenant_key):
    tenant, key = tenant_key
    # The SDK's stream helper checks that every event fits the response it has built so far.
    with _client(server, key).responses.stream(
        model=MODEL, input="Reply with one word: yes.", max_output_tokens=16, temperature=0
    ) as stream:
        events = list(stream)
    kinds = [event.type for event in events]
    final = events[-1].response
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas and "".join(deltas) == final.output_text
    assert final.usage is not None
    assert _ledger(server, tenant, 1) == (1, final.usage.input_tokens, final.usage.output_tokens)


def test_a_follow_up_continues_a_stored_response(server: ServerProcess, tenant_key):
    tenant, key = tenant_key
    client = _client(server, key)
    first = client.responses.create(model=MODEL, input="My name is Ada.", max_output_tokens=4)
    second = client.responses.create(
        model=MODEL, input="What is my name?", previous_response_id=first.id, max_output_tokens=4
    )
    assert second.previous_response_id == first.id
    assert first.usage is not None and second.usage is not None
    # The engine was sent the first turn (question and answer) before the second question.
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    assert client.responses.retrieve(second.id).output_text == second.output_text
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    totals = (first.usage.input_tokens + second.usage.input_tokens,
              first.usage.output_tokens + second.usage.output_tokens)  # fmt: skip
    assert _ledger(server, tenant, 2) == (2, *totals)


def test_unknown_forgotten_and_other_tenants_responses_are_not_found(
    server: ServerProcess, tenant_key
):
    tenant, key = tenant_key
    client = _client(server, key)
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.create(model=MODEL, input="hi", previous_response_id="resp_nope")
    assert err.value.body["param"] == "previous_response_id"  # type: ignore[index]
    unstored = client.responses.create(model=MODEL, input="hi", max_output_tokens=2, store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    kept = client.responses.create(model=MODEL, input="hi", max_output_tokens=2)
    stranger = _client(server, server.new_tenant_key(f"{tenant}-other"))
    with pytest.raises(openai.NotFoundError):
        stranger.responses.create(model=MODEL, input="hi", previous_response_id=kept.id)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.delete(kept.id)
    assert client.responses.retrieve(kept.id).id == kept.id


def test_function_tools_and_call_items_reach_the_engine(server: ServerProcess, tenant_key):
    """SmolLM2 makes no tool calls of its own; what is tested here is that a tool offered with
    tool_choice, and a model's earlier call with its output, are sent on and answered."""
    tenant, key = tenant_key
    items: Any = [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21 C"},
    ]  # fmt: skip
    resp = _client(server, key).responses.create(
        model=MODEL, input=items, tools=[WEATHER], tool_choice="auto", max_output_tokens=8,
        parallel_tool_calls=False,
    )  # fmt: skip
    assert resp.tools[0].type == "function" and resp.tools[0].name == "get_weather"
    assert resp.tool_choice == "auto" and resp.parallel_tool_calls is False
    assert resp.output and resp.usage is not None
    assert _ledger(server, tenant, 1) == (1, resp.usage.input_tokens, resp.usage.output_tokens)


def test_a_key_may_not_offer_tools_outside_its_allow_list(server: ServerProcess, tenant_key):
    tenant, _ = tenant_key
    narrow = _client(server, server.new_key(tenant, tools=["lookup"]))
    with pytest.raises(openai.PermissionDeniedError) as err:
        narrow.responses.create(model=MODEL, input="hi", tools=[WEATHER])
    assert err.value.code == "tool_not_allowed"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools.0.type"),
        ({"background": True}, "background"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input.0.type"),
        ({"temperature": "hot"}, "temperature"),
    ],
)
def test_what_only_openai_runs_is_refused_by_name(server: ServerProcess, tenant_key, extra, param):
    _, key = tenant_key
    body = {"model": MODEL, "input": "hi", **extra}
    resp = httpx.post(
        server.url + "/v1/responses", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param


def test_a_client_that_leaves_a_stream_is_metered_for_what_it_was_sent(
    server: ServerProcess, tenant_key
):
    tenant, key = tenant_key
    body = {"model": MODEL, "input": "Write a long story about a lighthouse.",
            "max_output_tokens": 400, "stream": True}  # fmt: skip
    deltas = 0
    with (
        httpx.Client(base_url=server.url, timeout=30) as client,
        client.stream(
            "POST", "/v1/responses", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as resp,
    ):
        assert resp.status_code == 200
        for line in resp.iter_lines():
            deltas += line == "event: response.output_text.delta"
            if deltas == 5:
                break  # leaving the block closes the connection mid-stream
    server.tenant_usage(tenant, 1)
    export = httpx.get(
        server.url + "/admin/usage/records",
        params={"tenant": tenant, "format": "jsonl"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    [record] = [json.loads(line) for line in export.text.splitlines()]
    assert (record["outcome"], record["status"], record["endpoint"]) == ("partial", 499, "chat")
    assert record["prompt_tokens"] > 0
    assert deltas <= record["completion_tokens"] < 100  # what was sent before it noticed

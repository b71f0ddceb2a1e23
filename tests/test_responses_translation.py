"""The Responses API <-> chat completions translation, both ways, whole and streamed, and the
store behind previous_response_id. No engine needed: the shapes are checked against the
installed OpenAI SDK's own types. (Tool calls are translated here from chat data in
llama.cpp's shape, because the shipped SmolLM2 model cannot make one.)"""

from typing import Any

import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tokenmill.core.errors import InvalidRequest
from tokenmill.gateway.response_store import ResponseStore
from tokenmill.gateway.responses import from_chat, new_response
from tokenmill.gateway.responses_input import chat_request, messages_of
from tokenmill.gateway.responses_stream import ResponseEvents

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def _chat(req: dict[str, Any], history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return chat_request({"model": "m", **req}, history or []).body


def test_a_string_input_with_instructions_is_a_system_and_a_user_message():
    body = _chat({"input": "hi", "instructions": "Be brief.", "max_output_tokens": 9})
    assert body == {
        "model": "m",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        "max_completion_tokens": 9,
    }


def test_function_calls_and_their_outputs_become_an_assistant_turn_and_tool_messages():
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "ask"}]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city":"Paris"}', "id": "fc_1", "status": "completed"},
        {"type": "function_call", "call_id": "call_2", "name": "get_weather",
         "arguments": '{"city":"Lyon"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_2",
         "output": [{"type": "input_text", "text": "rain"}]},
    ]  # fmt: skip
    assert messages_of(items) == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "reasoning_content": "ask",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Lyon"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
    ]


def test_tools_tool_choice_format_and_effort_take_their_chat_shapes():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    fmt = {"type": "json_schema", "name": "out", "schema": schema, "strict": True}
    choice = {"type": "function", "name": "get_weather"}
    body = _chat({
        "input": "x", "tools": [WEATHER], "tool_choice": choice, "text": {"format": fmt},
        "reasoning": {"effort": "low"}, "stream": True, "temperature": 0.5,
    })  # fmt: skip
    assert body["tools"] == [
        {"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": schema, "strict": True},
    }
    assert body["reasoning_effort"] == "low"
    assert body["stream_options"] == {"include_usage": True}  # usage for response.completed
    assert body["temperature"] == 0.5


def test_allowed_tools_offer_only_those_tools():
    other = {**WEATHER, "name": "other"}
    choice = {"type": "allowed_tools", "mode": "required",
              "tools": [{"type": "function", "name": "other"}]}  # fmt: skip
    body = _chat({"input": "x", "tools": [WEATHER, other], "tool_choice": choice})
    assert body["tool_choice"] == "required"
    assert [t["function"]["name"] for t in body["tools"]] == ["other"]


@pytest.mark.parametrize(
    ("req", "param"),
    [
        ({"input": "x", "tools": [WEATHER, {"type": "web_search"}]}, "tools.1.type"),
        ({"input": "x", "tool_choice": {"type": "file_search"}}, "tool_choice.type"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input.0.type"),
        ({"input": [{"type": "computer_call", "id": "c"}]}, "input.0.type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file"}]}]},
            "input.0.content.0.type",
        ),
        ({"input": [{"role": "robot", "content": "hi"}]}, "input.0.role"),
        ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input.0.call_id"),
        ({"input": [{"type": 3}]}, "input.0.type"),
        (
            {"input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}},
            "text.format.schema",
        ),
        ({"input": "x", "tool_choice": "sometimes"}, "tool_choice"),
        ({"input": []}, "input"),
    ],
)
def test_what_cannot_be_served_is_refused_naming_the_field(req, param):
    with pytest.raises(InvalidRequest) as err:
        _chat(req)
    assert err.value.param == param
    assert err.value.status == 400


def test_a_follow_up_continues_a_copy_of_the_history():
    history = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    turn = chat_request({"model": "m", "input": "c", "instructions": "I"}, history)
    turn.body["messages"][1]["content"] = "rewritten by the gateway"
    assert history[0]["content"] == "a"
    assert turn.conversation()[2] == {"role": "user", "content": "c"}  # instructions not kept


def _answer(message: dict[str, Any], finish: str) -> dict[str, Any]:
    usage = {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37,
             "prompt_tokens_details": {"cached_tokens": 12}}  # fmt: skip
    return {"choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage}


def test_a_chat_answer_with_tool_calls_is_a_response_with_function_call_items():
    call = {"id": "call_9", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}  # fmt: skip
    req = {"model": "m", "tools": [WEATHER], "metadata": {"k": "v"}}
    done = from_chat(
        _answer({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"),
        new_response(req, "resp_1"),
    )
    parsed = Response.model_validate(done)
    assert parsed.status == "completed"
    [item] = parsed.output
    assert item.type == "function_call"
    assert (item.call_id, item.name, item.arguments) == ("call_9", "get_weather", '{"city":"Oslo"}')
    assert parsed.usage is not None
    assert (parsed.usage.input_tokens, parsed.usage.output_tokens) == (30, 7)
    assert parsed.usage.input_tokens_details.cached_tokens == 12
    assert parsed.metadata == {"k": "v"}
    # ...and the output goes back in as the assistant turn it was.
    assert messages_of(orjson.loads(orjson.dumps(done["output"]))) == [
        {"role": "assistant", "content": None, "tool_calls": [call]}
    ]


def test_a_cut_answer_is_incomplete():
    done = from_chat(_answer({"content": "Hel"}, "length"), new_response({"model": "m"}, "r"))
    parsed = Response.model_validate(done)
    assert parsed.status == "incomplete"
    assert parsed.incomplete_details is not None
    assert parsed.incomplete_details.reason == "max_output_tokens"
    assert parsed.output_text == "Hel"


def _stream(chunks: list[dict[str, Any]]) -> list[Any]:
    events = ResponseEvents(new_response({"model": "m"}, "resp_s"))
    raw = events.start() + b"".join(events.chunk(c) for c in chunks) + events.end()
    parsed = []
    for block in raw.split(b"\n\n")[:-1]:
        kind, data = block.split(b"\n")
        event = EVENTS.validate_python(orjson.loads(data.removeprefix(b"data: ")))
        assert kind == b"event: " + event.type.encode()
        parsed.append(event)
    assert [e.sequence_number for e in parsed] == list(range(len(parsed)))
    return parsed


def _delta(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


USAGE_CHUNK = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}


def test_streamed_text_is_told_as_responses_events():
    events = _stream([
        _delta({"role": "assistant", "content": None}),
        _delta({"content": "Hel"}), _delta({"content": "lo"}), _delta({}, "stop"), USAGE_CHUNK,
    ])  # fmt: skip
    assert [e.type for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed",
    ]  # fmt: skip
    assert events[6].text == "Hello"
    final = events[-1].response
    assert final.output_text == "Hello"
    assert final.usage is not None and final.usage.total_tokens == 7


def test_streamed_tool_calls_are_told_as_function_call_events():
    events = _stream([
        _delta({"content": "Let me check."}),
        _delta({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                "function": {"name": "get_weather", "arguments": ""}}]}),
        _delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        _delta({"tool_calls": [{"index": 0, "function": {"arguments": '"Rome"}'}}]}),
        _delta({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                "function": {"name": "get_weather", "arguments": "{}"}}]}),
        _delta({}, "tool_calls"), USAGE_CHUNK,
    ])  # fmt: skip
    kinds = [e.type for e in events]
    assert kinds.count("response.function_call_arguments.done") == 2
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [(d.name, d.arguments) for d in done] == [
        ("get_weather", '{"city":"Rome"}'), ("get_weather", "{}")
    ]  # fmt: skip
    final = events[-1].response
    assert [i.type for i in final.output] == ["message", "function_call", "function_call"]
    assert [i.call_id for i in final.output[1:]] == ["call_a", "call_b"]
    assert final.status == "completed"


def test_reasoning_is_streamed_as_its_own_item():
    events = _stream([
        _delta({"reasoning_content": "think"}), _delta({"content": "ok"}), _delta({}, "stop"),
        USAGE_CHUNK,
    ])  # fmt: skip
    assert "response.reasoning_text.delta" in [e.type for e in events]
    assert [i.type for i in events[-1].response.output] == ["reasoning", "message"]


def test_an_empty_answer_still_has_a_message():
    events = _stream([_delta({}, "stop"), USAGE_CHUNK])
    assert [i.type for i in events[-1].response.output] == ["message"]


def _put(store: ResponseStore, tenant: str, rid: str, text: str = "x") -> None:
    assert store.put(tenant, {"id": rid}, [{"role": "user", "content": text}])


def test_the_store_is_per_tenant_and_forgets():
    now = [0.0]
    store = ResponseStore(ttl_s=10, clock=lambda: now[0])
    _put(store, "a", "resp_1")
    assert store.get("a", "resp_1") is not None
    assert store.get("b", "resp_1") is None  # another tenant's id does not exist
    assert not store.delete("b", "resp_1")
    now[0] = 11
    assert store.get("a", "resp_1") is None and len(store) == 0


def test_the_store_evicts_the_oldest_past_its_caps():
    store = ResponseStore(tenant_bytes=200, total_bytes=300)
    for i in range(3):
        _put(store, "a", f"a{i}", "y" * 40)
    assert [store.get("a", f"a{i}") is not None for i in range(3)] == [False, True, True]
    for i in range(3):
        _put(store, "b", f"b{i}", "y" * 40)
    assert len(store) <= 300 // 75
    assert store.get("b", "b2") is not None
    assert not store.put("a", {"id": "big"}, [{"content": "z" * 500}])

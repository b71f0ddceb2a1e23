"""Tool calls the model returns for tools outside the allow-list are withheld, whole or
streamed. (The bundled engine cannot produce one: llama.cpp constrains tool calls to the
declared tools, and the gateway refuses declaring others. The shapes here are OpenAI's
documented wire format, the one every engine adapter relays.)"""

from tokenmill.security.policy import ToolCallFilter, requested_tools


def _call(name: str | None, args: str, index: int | None = None) -> dict:
    call: dict = {"function": {"arguments": args}}
    if name is not None:
        call |= {"id": f"call_{name}", "type": "function"}
        call["function"]["name"] = name
    if index is not None:
        call["index"] = index
    return call


def test_requested_tools_reads_both_shapes():
    body = {"tools": [{"type": "function", "function": {"name": "a"}}],
            "functions": [{"name": "b"}]}  # fmt: skip
    assert requested_tools(body) == {"a", "b"}


def test_a_whole_message_keeps_only_allowed_calls():
    f = ToolCallFilter(frozenset({"get_weather"}))
    message = {"role": "assistant", "content": None,
               "tool_calls": [_call("get_weather", "{}"), _call("rm_rf", "{}")]}  # fmt: skip
    f.message(message)
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["get_weather"]
    assert f.blocked == ["rm_rf"]
    assert f.finish_reason("tool_calls") == "tool_calls"  # one call survived


def test_a_message_of_only_blocked_calls_ends_as_filtered():
    f = ToolCallFilter(frozenset())
    message = {"role": "assistant", "content": None, "tool_calls": [_call("rm_rf", "{}")]}
    f.message(message)
    assert "tool_calls" not in message
    assert f.finish_reason("tool_calls") == "content_filter"


def test_a_streamed_blocked_call_is_dropped_with_all_its_fragments():
    f = ToolCallFilter(frozenset({"get_weather"}))
    deltas = [
        {"tool_calls": [_call("rm_rf", "", index=0)]},
        {"tool_calls": [_call(None, '{"path": "/"', index=0)]},
        {"tool_calls": [_call("get_weather", "", index=1)]},
        {"tool_calls": [_call(None, '{"city": "Paris"}', index=1)]},
        {"tool_calls": [_call(None, "}", index=0)]},
    ]
    for d in deltas:
        f.delta(d)
    kept = [c for d in deltas for c in d.get("tool_calls", [])]
    assert {c["index"] for c in kept} == {1}
    assert "".join(c["function"]["arguments"] for c in kept) == '{"city": "Paris"}'
    assert f.blocked == ["rm_rf"] and f.finish_reason("tool_calls") == "tool_calls"

"""Tool calls for an engine whose chat template has none (SmolLM2's, and many small models').

Without this, a request offering tools gets prose back, and SDKs that wait for `tool_calls`
(LangChain's bind_tools and function-calling structured output, agent frameworks) break
quietly. Instead the tools are described in the system prompt and the answer is held to a JSON
grammar (`response_format` json_schema, which llama.cpp and vLLM enforce while sampling):
`{"name": ..., "arguments": {...}}` for a call, `{"response": "..."}` for an answer in words
when the client lets the model choose. That JSON becomes the OpenAI `tool_calls` the client
expects. One call per turn; the tokens metered are the engine's, JSON included.
"""

import re
import secrets
from dataclasses import dataclass
from typing import Any

import orjson

from tokenmill.core.errors import InvalidRequest
from tokenmill.gateway.tracker import UsageTracker

_ANSWER_START = re.compile(r'\s*\{\s*"response"\s*:\s*"')
_ANSWER = {
    "type": "object",
    "properties": {"response": {"type": "string"}},
    "required": ["response"],
    "additionalProperties": False,
}


@dataclass
class ToolEmulation:
    may_answer: bool  # tool_choice "auto": a plain answer is allowed too
    _buffer: str = ""  # a stream's content so far: the JSON being written
    _sent: int = 0  # characters of an answer in words already streamed
    _call_id: str = ""

    @classmethod
    def plan(cls, payload: dict[str, Any]) -> "ToolEmulation | None":
        """Rewrite a chat request for an engine without native tool calls (in place); the
        emulation to apply to its answer, or None when no tool may be called."""
        payload["messages"] = [_plain(m) for m in payload["messages"]]
        tools = [t["function"] for t in payload.pop("tools", None) or []]
        choice = payload.pop("tool_choice", None) or "auto"
        payload.pop("parallel_tool_calls", None)
        if not tools or choice == "none":
            return None
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
            tools = [t for t in tools if t["name"] == name]
            if not tools:
                raise InvalidRequest(
                    f"tool_choice names '{name}', which is not among the tools offered",
                    param="tool_choice",
                )
        if payload.get("response_format") is not None:
            raise InvalidRequest(
                "This model's tool calls are emulated with a JSON grammar, which cannot also "
                "hold to response_format: send one or the other",
                param="response_format",
                code="unsupported_parameter",
            )
        may_answer = choice == "auto"
        options = [_call_schema(t) for t in tools] + ([_ANSWER] if may_answer else [])
        schema = options[0] if len(options) == 1 else {"anyOf": options}
        payload["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "tool_call", "schema": schema},
        }
        _describe(payload["messages"], tools, may_answer)
        return cls(may_answer)

    def message(self, choice: dict[str, Any]) -> None:
        """A whole answer: its JSON becomes a tool call, or the words it holds."""
        message = choice.get("message") or {}
        call = self._parse(message.get("content"))
        if call is None:
            return  # cut short (length) or not JSON: left as the engine wrote it
        if "response" in call:
            message["content"] = call["response"]
            return
        message["content"] = None
        message["tool_calls"] = [self._tool_call(call)]
        if choice.get("finish_reason") == "stop":
            choice["finish_reason"] = "tool_calls"

    def chunk(self, chunk: dict[str, Any], tracker: UsageTracker) -> bool:
        """A stream chunk: a tool call is held back until its JSON is whole, then sent as one;
        an answer in words streams as it comes. False when the chunk is to be dropped."""
        first = (chunk.get("choices") or [{}])[0]
        delta = first.setdefault("delta", {})
        text = delta.pop("content", None)
        if text:
            self._buffer += text
            # Held, not lost: the engine made these tokens for this client.
            tracker.mark_first_token()
            timings = chunk.get("timings")
            if timings is not None:
                tracker.take_timings(timings)
        if not first.get("finish_reason"):
            words = _cut_answer(self._buffer) if self.may_answer and text else None
            if words is not None and len(words) > self._sent:
                delta["content"], self._sent = words[self._sent :], len(words)
            return bool(delta)  # the role chunk and words go on; a call being written does not
        call = self._parse(self._buffer)
        if call is None:
            delta["content"] = self._buffer
        elif "response" in call:
            delta["content"] = call["response"][self._sent :]
        else:
            tool_call = self._tool_call(call)
            delta["tool_calls"] = [{"index": 0, **tool_call}]
            if first["finish_reason"] == "stop":
                first["finish_reason"] = "tool_calls"
        return True

    def _parse(self, content: Any) -> dict[str, Any] | None:
        if not isinstance(content, str):
            return None
        try:
            value = orjson.loads(content)
        except orjson.JSONDecodeError:
            words = _cut_answer(content) if self.may_answer else None
            return None if words is None else {"response": words}
        if not isinstance(value, dict):
            return None
        if isinstance(value.get("name"), str) and isinstance(value.get("arguments"), dict):
            return value
        if self.may_answer and isinstance(value.get("response"), str):
            return value
        return None

    def _tool_call(self, call: dict[str, Any]) -> dict[str, Any]:
        self._call_id = self._call_id or "call_" + secrets.token_hex(12)
        arguments = orjson.dumps(call["arguments"]).decode()
        return {
            "id": self._call_id,
            "type": "function",
            "function": {"name": call["name"], "arguments": arguments},
        }


def _cut_answer(content: str) -> str | None:
    """The words of a `{"response": "...` cut short by max_tokens: a plain answer cut short,
    as the client would get without tools."""
    start = _ANSWER_START.match(content)
    if start is None:
        return None
    rest = content[start.end() :]
    for end in range(len(rest), max(len(rest) - 6, -1), -1):  # an escape may be cut in two
        try:
            words = orjson.loads('"' + rest[:end] + '"')
        except orjson.JSONDecodeError:
            continue
        return words if isinstance(words, str) else None
    return None


def _call_schema(tool: dict[str, Any]) -> dict[str, Any]:
    parameters = tool.get("parameters") or {"type": "object"}
    return {
        "type": "object",
        "properties": {"name": {"const": tool["name"]}, "arguments": parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def prompt_bytes_change(body: dict[str, Any]) -> int:
    """How many bytes `plan` changes a chat prompt by, at most, as gateway/jobs.py counts it:
    the tools' JSON goes (the engine no longer renders it), the description and instructions
    come in. Budgets bound a prompt by its bytes before the engine counts it."""
    tools = [t for t in body.get("tools") or () if isinstance(t, dict)]
    if not tools or body.get("tool_choice") == "none":
        return 0
    functions = [t.get("function") or {} for t in tools]
    # Joined to the system message ("\n\n"), or one of its own, counted with its role.
    described = len(_description(functions, may_answer=True).encode()) + len("system:")
    return described - len(orjson.dumps(tools))


def _description(tools: list[dict[str, Any]], may_answer: bool) -> str:
    lines = ["You can call these tools:"]
    for tool in tools:
        params = orjson.dumps(tool.get("parameters") or {}).decode()
        lines.append(f"- {tool.get('name')}: {tool.get('description') or ''} Arguments: {params}")
    lines.append('To call a tool, reply with {"name": <tool>, "arguments": {...}}.')
    if may_answer:
        lines.append('To answer without a tool, reply with {"response": <your answer>}.')
    return "\n".join(lines)


def _describe(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]], may_answer: bool
) -> None:
    """Tell the model what it may call, in the system message (which it reads first)."""
    text = _description(tools, may_answer)
    head = messages[0] if messages else None
    if head is not None and head.get("role") in ("system", "developer"):
        messages[0] = {**head, "content": f"{_text(head.get('content'))}\n\n{text}"}
    else:
        messages.insert(0, {"role": "system", "content": text})


def _plain(message: dict[str, Any]) -> dict[str, Any]:
    """A turn of an earlier tool exchange in words the template can render: the assistant's
    call as the JSON it wrote, the tool's result as a user turn that names the tool."""
    calls = message.get("tool_calls")
    if message.get("role") == "assistant" and calls:
        written = [
            {"name": c["function"]["name"], "arguments": _arguments(c["function"])} for c in calls
        ]
        content = orjson.dumps(written[0] if len(written) == 1 else written).decode()
        return {"role": "assistant", "content": content}
    if message.get("role") in ("tool", "function"):
        who = message.get("name") or message.get("tool_call_id") or "the tool"
        return {"role": "user", "content": f"Result of {who}: {_text(message.get('content'))}"}
    return message


def _arguments(function: dict[str, Any]) -> Any:
    try:
        return orjson.loads(function.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        return function.get("arguments")


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)

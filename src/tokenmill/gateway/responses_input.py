"""A Responses API request as the chat completion the engines serve.

Input items become chat messages: messages as they are, a model's function calls as an
assistant turn's `tool_calls`, their outputs as `tool` messages, reasoning as the next assistant
turn's `reasoning_content` (llama.cpp's field). Flat function tools, `tool_choice`,
`text.format` and `reasoning.effort` take their chat shapes. What only OpenAI can run (its
built-in tools, references to items it keeps) is refused, naming the field.
"""

import copy
from dataclasses import dataclass, field
from typing import Any

from tokenmill.core.errors import InvalidRequest

_ROLES = ("user", "system", "developer", "assistant")
_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "summary_text", "reasoning_text"})
_CHOICES = ("auto", "none", "required")
# Copied to the chat request under the same name (or the chat name on the right).
_SAME = {
    "stream": "stream",
    "temperature": "temperature",
    "top_p": "top_p",
    "parallel_tool_calls": "parallel_tool_calls",
    "service_tier": "service_tier",
    "max_output_tokens": "max_completion_tokens",
}


def _invalid(path: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid value for '{path}': {why}", param=path, code="invalid_value")


def _unsupported(path: str, why: str) -> InvalidRequest:
    return InvalidRequest(
        f"Unsupported value for '{path}': {why}", param=path, code="unsupported_value"
    )


def _string(item: dict[str, Any], key: str, path: str) -> str:
    value = item.get(key)
    if value is None:
        raise InvalidRequest(
            f"Missing required parameter: '{path}.{key}'",
            param=f"{path}.{key}",
            code="missing_parameter",
        )
    if not isinstance(value, str):
        raise _invalid(f"{path}.{key}", "expected a string")
    return value


@dataclass
class ChatTurn:
    """The chat request for one Responses request."""

    body: dict[str, Any]
    lead: int  # leading messages that are this request's instructions: not part of the history

    def conversation(self) -> list[dict[str, Any]]:
        """The messages a follow-up (previous_response_id) continues from."""
        messages: list[dict[str, Any]] = self.body["messages"][self.lead :]
        return messages


@dataclass
class _Messages:
    """Chat messages, built item by item."""

    out: list[dict[str, Any]] = field(default_factory=list)
    reasoning: str | None = None  # held for the next assistant turn

    def add(self, item: dict[str, Any], path: str) -> None:
        kind = item.get("type", "message")
        if kind == "message":
            self._message(item, path)
        elif kind == "function_call":
            self._call(item, path)
        elif kind == "function_call_output":
            self._call_output(item, path)
        elif kind == "reasoning":
            self._reasoning(item, path)
        elif kind == "item_reference":
            raise _unsupported(
                f"{path}.type",
                "item references are not available; send the item itself, "
                "or continue a stored response with previous_response_id",
            )
        elif isinstance(kind, str):
            raise _unsupported(
                f"{path}.type",
                f"'{kind}' items belong to tools OpenAI runs itself; "
                "TokenMill serves function tools only",
            )
        else:
            raise _invalid(f"{path}.type", "expected a string")

    def _message(self, item: dict[str, Any], path: str) -> None:
        role = item.get("role")
        if role not in _ROLES:
            raise _invalid(f"{path}.role", f"expected one of {', '.join(_ROLES)}")
        content = item.get("content")
        if isinstance(content, list):
            parts = [_part(p, f"{path}.content.{i}") for i, p in enumerate(content)]
            content = parts[0]["text"] if len(parts) == 1 and parts[0]["type"] == "text" else parts
        elif not isinstance(content, str):
            raise _invalid(f"{path}.content", "expected a string or a list of content parts")
        if role == "assistant":
            self._assistant()["content"] = content
        else:
            self.out.append({"role": role, "content": content})

    def _call(self, item: dict[str, Any], path: str) -> None:
        call = {
            "id": _string(item, "call_id", path),
            "type": "function",
            "function": {
                "name": _string(item, "name", path),
                "arguments": _string(item, "arguments", path),
            },
        }
        last = self.out[-1] if self.out else None
        # A model's calls and the text before them are one assistant turn in chat.
        turn = last if last is not None and last["role"] == "assistant" else self._assistant()
        turn.setdefault("tool_calls", []).append(call)

    def _call_output(self, item: dict[str, Any], path: str) -> None:
        output = item.get("output")
        if isinstance(output, list):
            parts = [_part(p, f"{path}.output.{i}") for i, p in enumerate(output)]
            if any(p["type"] != "text" for p in parts):
                raise _unsupported(f"{path}.output", "a tool's output may hold text only")
            output = "".join(p["text"] for p in parts)
        elif not isinstance(output, str):
            raise _invalid(f"{path}.output", "expected a string or a list of content parts")
        call_id = _string(item, "call_id", path)
        self.out.append({"role": "tool", "tool_call_id": call_id, "content": output})

    def _reasoning(self, item: dict[str, Any], path: str) -> None:
        texts = []
        for key in ("content", "summary"):
            parts = item.get(key)
            if parts is not None and not isinstance(parts, list):
                raise _invalid(f"{path}.{key}", "expected a list of text parts")
            texts += [_part(p, f"{path}.{key}.{i}")["text"] for i, p in enumerate(parts or ())]
            if texts:  # the reasoning itself when given, else its summary
                break
        if texts:
            self.reasoning = "\n".join(texts)

    def _assistant(self) -> dict[str, Any]:
        turn: dict[str, Any] = {"role": "assistant", "content": None}
        if self.reasoning is not None:
            turn["reasoning_content"], self.reasoning = self.reasoning, None
        self.out.append(turn)
        return turn


def _part(part: Any, path: str) -> dict[str, Any]:
    """A content part in its chat shape: text, or an image by URL."""
    if not isinstance(part, dict):
        raise _invalid(path, "expected a content part object")
    kind = part.get("type")
    if kind in _TEXT_PARTS:
        return {"type": "text", "text": _string(part, "text", path)}
    if kind == "refusal":
        return {"type": "text", "text": _string(part, "refusal", path)}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        url = {"url": part["image_url"], **({"detail": part["detail"]} if "detail" in part else {})}
        return {"type": "image_url", "image_url": url}  # the engine says if it can see
    if kind == "input_image":
        raise _unsupported(f"{path}.image_url", "images are taken by URL only (no file ids)")
    raise _unsupported(f"{path}.type", f"'{kind}' content is not available; send text")


def messages_of(items: list[dict[str, Any]], path: str = "input") -> list[dict[str, Any]]:
    """Responses items (input items, or a response's output items) as chat messages."""
    messages = _Messages()
    for i, item in enumerate(items):
        messages.add(item, f"{path}.{i}")
    return messages.out


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function":
            raise _unsupported(
                f"tools.{i}.type",
                f"'{tool.get('type')}' is a tool OpenAI runs itself; "
                "TokenMill offers function tools only",
            )
        function = {"name": _string(tool, "name", f"tools.{i}")}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any, tools: list[dict[str, Any]]) -> tuple[Any, list[dict[str, Any]]]:
    """The chat `tool_choice`, and the tools it leaves on offer."""
    if isinstance(choice, str):
        if choice not in _CHOICES:
            raise _invalid("tool_choice", f"expected one of {', '.join(_CHOICES)} or an object")
        return choice, tools
    kind = choice.get("type")
    if kind == "function":
        return {
            "type": "function",
            "function": {"name": _string(choice, "name", "tool_choice")},
        }, tools
    if kind == "allowed_tools":  # chat has no such choice: offer only the allowed ones
        mode = choice.get("mode", "auto")
        allowed = choice.get("tools")
        if mode not in ("auto", "required") or not isinstance(allowed, list):
            raise _invalid("tool_choice", "allowed_tools needs a mode (auto, required) and tools")
        names = {t.get("name") for t in allowed if isinstance(t, dict)}
        return mode, [t for t in tools if t["function"]["name"] in names]
    raise _unsupported(
        "tool_choice.type",
        f"'{kind}' names a tool OpenAI runs itself; TokenMill offers function tools only",
    )


def _response_format(fmt: dict[str, Any]) -> dict[str, Any]:
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind != "json_schema":
        raise _invalid("text.format.type", "expected text, json_object or json_schema")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise _invalid("text.format.schema", "expected a JSON Schema object")
    spec = {"name": _string(fmt, "name", "text.format"), "schema": schema}
    for key in ("description", "strict"):
        if fmt.get(key) is not None:
            spec[key] = fmt[key]
    return {"type": "json_schema", "json_schema": spec}


def chat_request(req: dict[str, Any], history: list[dict[str, Any]]) -> ChatTurn:
    """`req`: a validated, sifted Responses request; `history`: the conversation a
    previous_response_id continues (copied: the gateway may rewrite what it is sent)."""
    given = req.get("input")
    new = [{"role": "user", "content": given}] if isinstance(given, str) else []
    if isinstance(given, list):
        new = messages_of(given)
    lead = [{"role": "system", "content": req["instructions"]}] if req.get("instructions") else []
    messages = lead + copy.deepcopy(history) + new
    if not messages:
        raise InvalidRequest(
            "Missing required parameter: 'input'", param="input", code="missing_parameter"
        )
    body: dict[str, Any] = {"model": req["model"], "messages": messages}
    body |= {chat: req[name] for name, chat in _SAME.items() if req.get(name) is not None}
    if req.get("stream"):
        body["stream_options"] = {"include_usage": True}  # the usage in response.completed
    tools = _tools(req.get("tools") or [])
    if req.get("tool_choice") is not None:
        body["tool_choice"], tools = _tool_choice(req["tool_choice"], tools)
    if tools:
        body["tools"] = tools
    effort = (req.get("reasoning") or {}).get("effort")
    if effort is not None:
        body["reasoning_effort"] = effort
    fmt = (req.get("text") or {}).get("format")
    if fmt is not None:
        body["response_format"] = _response_format(fmt)
    return ChatTurn(body, len(lead))

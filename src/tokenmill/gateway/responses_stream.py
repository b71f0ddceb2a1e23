"""A chat completion stream, retold as the Responses API's server-sent events.

Each output item is opened (`output_item.added`, and `content_part.added` for text), grows by
deltas, and is closed (`.done` events) before the next one opens, as OpenAI streams them.
The stream ends with `response.completed` (or `response.incomplete`) carrying the whole
Response and its usage: the engine's count, which is on the usage record before it is sent.
"""

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from tokenmill.gateway import responses as rs

# Text-like items: the item, its content part, and the names of their delta and done events.
_TEXT: dict[str, tuple[Callable[..., dict[str, Any]], Callable[[str], dict[str, Any]], str]] = {
    "message": (rs.message_item, rs.output_text, "response.output_text"),
    "reasoning": (rs.reasoning_item, rs.reasoning_text, "response.reasoning_text"),
}


@dataclass
class _Open:
    """The output item being streamed, and its place in the output."""

    item: dict[str, Any]
    index: int
    text: str = ""


class ResponseEvents:
    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self._seq = 0
        self._output: list[dict[str, Any]] = []
        self._open: _Open | None = None
        self._calls: dict[int, _Open] = {}  # by the chat tool call's index
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = orjson.dumps({"type": kind, "sequence_number": self._seq, **fields})
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    def start(self) -> bytes:
        return self._event("response.created", response=self.response) + self._event(
            "response.in_progress", response=self.response
        )

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        """The events one chat completion chunk makes (often none, or one delta)."""
        out: list[bytes] = []
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in (chunk.get("choices") or [])[:1]:
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                out += self._text("reasoning", delta["reasoning_content"])
            if delta.get("content"):
                out += self._text("message", delta["content"])
            for call in delta.get("tool_calls") or ():
                out += self._call(call)
            self._finish_reason = choice.get("finish_reason") or self._finish_reason
        return b"".join(out)

    def end(self) -> bytes:
        out = [] if self._output else self._start_text("message")  # always an answer
        out += self._close(rs.item_status(self._finish_reason))
        rs.finish(self.response, self._output, self._finish_reason, self._usage)
        done = "completed" if self.response["status"] == "completed" else "incomplete"
        return b"".join(out) + self._event(f"response.{done}", response=self.response)

    def fail(self, message: str) -> bytes:
        error = {"code": "server_error", "message": message}
        self.response.update(status="failed", output=self._output, error=error)
        return self._event("response.failed", response=self.response)

    def _text(self, kind: str, delta: str) -> list[bytes]:
        out: list[bytes] = []
        if self._open is None or self._open.item["type"] != kind:
            out += self._close("completed") + self._start_text(kind)
        assert self._open is not None
        self._open.text += delta
        events = _TEXT[kind][2]
        out.append(self._event(f"{events}.delta", **self._at_part(), delta=delta, **_extra(kind)))
        return out

    def _start_text(self, kind: str) -> list[bytes]:
        make_item, make_part, _ = _TEXT[kind]
        item = make_item("", "in_progress")
        item["content"] = []  # its part is added next
        self._open = self._add(item)
        return [
            self._event("response.output_item.added", output_index=self._open.index, item=item),
            self._event("response.content_part.added", **self._at_part(), part=make_part("")),
        ]

    def _call(self, call: dict[str, Any]) -> list[bytes]:
        index = int(call.get("index") or 0)
        arguments = (call.get("function") or {}).get("arguments") or ""
        out: list[bytes] = []
        opened = self._calls.get(index)
        if opened is None:
            out += self._close("completed")
            item = rs.function_call_item(call, "in_progress")
            item["arguments"] = ""  # every piece, this first one too, is added below
            opened = self._calls[index] = self._open = self._add(item)
            out.append(
                self._event("response.output_item.added", output_index=opened.index, item=item)
            )
        opened.item["arguments"] += arguments
        if arguments:
            where = {"item_id": opened.item["id"], "output_index": opened.index}
            out.append(
                self._event("response.function_call_arguments.delta", **where, delta=arguments)
            )
        return out

    def _add(self, item: dict[str, Any]) -> _Open:
        self._output.append(item)
        return _Open(item, len(self._output) - 1)

    def _at_part(self) -> dict[str, Any]:
        assert self._open is not None
        return {
            "item_id": self._open.item["id"],
            "output_index": self._open.index,
            "content_index": 0,
        }

    def _close(self, status: str) -> list[bytes]:
        """The done events of the open item, if any."""
        opened, self._open = self._open, None
        if opened is None:
            return []
        item = opened.item
        item["status"] = status
        at = {"item_id": item["id"], "output_index": opened.index}
        if item["type"] == "function_call":
            kind = "response.function_call_arguments.done"
            out = [self._event(kind, **at, name=item["name"], arguments=item["arguments"])]
        else:
            _, make_part, events = _TEXT[item["type"]]
            item["content"] = [make_part(opened.text)]
            out = [
                self._event(
                    f"{events}.done",
                    **at,
                    content_index=0,
                    text=opened.text,
                    **_extra(item["type"]),
                ),
                self._event(
                    "response.content_part.done", **at, content_index=0, part=item["content"][0]
                ),
            ]
        return [
            *out,
            self._event("response.output_item.done", output_index=opened.index, item=item),
        ]


async def response_events(
    chat: AsyncIterator[bytes],
    events: ResponseEvents,
    done: Callable[[dict[str, Any]], None],
) -> AsyncIterator[bytes]:
    """`chat`: the gateway's chat stream (gateway/proxy.py: SSE events, usage before [DONE]);
    `done` is given the finished Response before its last event is sent."""
    try:
        yield events.start()
        async for raw in chat:
            for data in _data_lines(raw):
                if data == b"[DONE]":
                    last = events.end()
                    done(events.response)
                    yield last
                    return
                chunk = orjson.loads(data)
                if "error" in chunk:  # the engine's stream broke; what ran is metered
                    error = chunk["error"]
                    yield events.fail(
                        str(error.get("message") if isinstance(error, dict) else error)
                    )
                    return
                out = events.chunk(chunk)
                if out:
                    yield out
    finally:
        if isinstance(chat, AsyncGenerator):  # the relay meters what was delivered as it closes
            await chat.aclose()


def _extra(kind: str) -> dict[str, Any]:
    return {"logprobs": []} if kind == "message" else {}  # text events carry (no) logprobs


def _data_lines(raw: bytes) -> list[bytes]:
    return [line[5:].strip() for line in raw.split(b"\n") if line.startswith(b"data:")]

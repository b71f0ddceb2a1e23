"""Per-stream rewriting of an engine's SSE chunks on their way to the client."""

from typing import Any

import orjson

from tokenmill.gateway.content_guard import StreamGuard
from tokenmill.gateway.logprobs import CompletionLogprobs
from tokenmill.gateway.tool_emulation import ToolEmulation
from tokenmill.gateway.tracker import UsageTracker
from tokenmill.security.policy import ToolCallFilter


class StreamRelay:
    """Per-stream rewriting: hides what TokenMill asked the engine for that the client did not."""

    def __init__(
        self,
        want_usage: bool,
        strip_timings: bool,
        public_model: str | None,
        tools: ToolCallFilter | None,
        pii: StreamGuard | None,
        logprobs: CompletionLogprobs | None = None,
        emulation: ToolEmulation | None = None,
    ) -> None:
        self.tools = tools
        self.emulation = emulation  # tool calls the engine writes as JSON, made OpenAI's
        self.logprobs = logprobs  # legacy completions: llama.cpp's logprobs to OpenAI's
        self.pii = pii
        self.want_usage = want_usage
        self.strip_timings = strip_timings
        self.public_model = public_model
        self.held_usage: bytes | None = None
        self._timings: dict[str, Any] | None = None
        self._content = False

    def rewrite(self, data: bytes, tracker: UsageTracker) -> bytes | None:
        chunk = orjson.loads(data)
        changed = False
        self._timings = chunk.get("timings")
        if self._timings is not None and self.strip_timings:
            del chunk["timings"]
            changed = True
        if self.public_model is not None and chunk.get("model") != self.public_model:
            chunk["model"] = self.public_model
            changed = True
        usage = chunk.get("usage")
        if usage:
            tracker.take_usage(usage)
        choices = chunk.get("choices")
        if not choices:
            if usage:  # the final usage chunk: sent after the record is durable, if asked for
                self.held_usage = orjson.dumps(chunk) if self.want_usage else None
                return None
        else:
            if self.logprobs is not None and self.logprobs.convert(chunk):
                changed = True
            if self.emulation is not None:
                if not self.emulation.chunk(chunk, tracker):
                    return None
                changed = True
            if self.pii is not None:
                self.pii.chunk(chunk)
                changed = changed or self.pii.rewrites
            first = choices[0]
            delta = first.get("delta") or {}
            if self.tools is not None and (delta.get("tool_calls") or first.get("finish_reason")):
                self.tools.delta(delta)
                first["finish_reason"] = self.tools.finish_reason(first.get("finish_reason"))
                changed = True
            self._content = bool(
                delta.get("content") or delta.get("tool_calls") or first.get("text")
            )
            if first.get("finish_reason"):
                tracker.finish_reason = first["finish_reason"]
            if self._content:
                tracker.mark_first_token()
        return b"data: " + (orjson.dumps(chunk) if changed else data) + b"\n\n"

    def delivered(self, tracker: UsageTracker) -> None:
        if self._timings is not None:
            tracker.take_timings(self._timings)
        if self._content:
            tracker.chunks_delivered += 1

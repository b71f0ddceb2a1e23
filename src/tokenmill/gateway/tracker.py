"""Turns what an engine sent back into exact token counts, with their provenance."""

import time
from dataclasses import dataclass, field
from typing import Any

from tokenmill.core.usage import Outcome, UsageRecord, UsageSource
from tokenmill.observe.tracing import TraceContext


@dataclass
class UsageTracker:
    request_id: str
    tenant: str
    key_id: str
    model: str
    deployment: str
    replica: str
    endpoint: str
    stream: bool
    agent: str | None = None
    owner: str | None = None
    trace: TraceContext | None = None  # the W3C trace it belongs to, and its span there
    started: float = field(default_factory=time.perf_counter)
    wall_start: float = field(default_factory=time.time)
    first_token_at: float | None = None
    # Whether the decode was timed: a stream's first token, or an answer's own decode time;
    # not a whole answer without one (its first token is only known at its end).
    decode_timed: bool = False
    dispatched_at: float | None = None  # when a replica took it: the end of its queueing
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    chunks_delivered: int = 0
    finish_reason: str | None = None
    source: UsageSource = "none"

    def take_usage(self, usage: dict[str, Any] | None) -> None:
        """The engine's own `usage` object: the authoritative count."""
        if not usage:
            return
        self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        self.completion_tokens = int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        self.cached_tokens = int(details.get("cached_tokens") or 0)
        self.source = "engine"

    def take_timings(self, timings: dict[str, Any]) -> None:
        """llama.cpp per-chunk timings: engine counts so far, for streams cut short."""
        if self.source == "engine":
            return
        cached = int(timings.get("cache_n") or 0)
        self.prompt_tokens = int(timings.get("prompt_n") or 0) + cached
        self.cached_tokens = cached
        self.completion_tokens = int(timings.get("predicted_n") or 0)
        self.source = "engine_timings"

    def mark_dispatched(self) -> None:
        self.dispatched_at = time.perf_counter()  # a retry elsewhere moves it: the last counts

    def mark_first_token(self, decode_ms: float | None = None) -> None:
        """Now, or for a whole answer that says how long its decode took (llama.cpp's
        `timings.predicted_ms`), when decoding began: the engine's first token, so the
        economics can tell prefill time from decode time."""
        if self.first_token_at is None:
            now = time.perf_counter()
            back = decode_ms / 1000 if isinstance(decode_ms, int | float) and decode_ms > 0 else 0
            self.first_token_at = max(self.started, now - back)
            self.decode_timed = self.stream or back > 0

    def record(self, status: int, outcome: Outcome) -> UsageRecord:
        if self.source == "none" and self.chunks_delivered:
            # No engine count at all: count delivered content chunks, and say so.
            self.completion_tokens = self.chunks_delivered
            self.source = "stream_count"
        now = time.perf_counter()
        ttft = None if self.first_token_at is None else (self.first_token_at - self.started) * 1e3
        return UsageRecord(
            request_id=self.request_id,
            created_at=self.wall_start,
            tenant=self.tenant,
            key_id=self.key_id,
            model=self.model,
            deployment=self.deployment,
            replica=self.replica,
            endpoint=self.endpoint,
            stream=self.stream,
            prompt_tokens=self.prompt_tokens,
            cached_tokens=self.cached_tokens,
            completion_tokens=self.completion_tokens,
            ttft_ms=ttft,
            duration_ms=(now - self.started) * 1e3,
            status=status,
            outcome=outcome,
            finish_reason=self.finish_reason,
            usage_source=self.source,
            agent=self.agent,
            owner=self.owner,
            trace_id=self.trace.trace_id if self.trace is not None else None,
            queued_ms=None
            if self.dispatched_at is None
            else (self.dispatched_at - self.started) * 1e3,
        )

"""The usage record: one per request, the unit everything downstream (ledger, billing) counts."""

from dataclasses import dataclass, fields
from typing import Any, Literal

UsageSource = Literal["engine", "engine_timings", "stream_count", "none"]
Outcome = Literal["ok", "partial", "error"]


@dataclass(frozen=True, slots=True)
class UsageRecord:
    request_id: str
    created_at: float  # unix seconds, UTC
    tenant: str
    key_id: str
    model: str
    deployment: str
    replica: str
    endpoint: str  # "chat" | "completions"
    stream: bool
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    ttft_ms: float | None
    duration_ms: float
    status: int
    outcome: Outcome
    finish_reason: str | None
    usage_source: UsageSource  # where the counts came from: never silently estimated
    agent: str | None = None  # the agent that asked, and the user it acts for
    owner: str | None = None
    trace_id: str | None = None  # W3C trace the request belongs to
    # Time in the gateway's queue before a replica took it (part of ttft_ms and duration_ms);
    # None for records written before it was kept.
    queued_ms: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies and is several times slower on the hot path.
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UsageRecord":
        return cls(**{k: v for k, v in data.items() if k in _FIELDS})


_FIELDS = tuple(f.name for f in fields(UsageRecord))

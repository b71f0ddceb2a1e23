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


@dataclass(frozen=True)
class MeteringHealth:
    """How far metering is behind: records held in memory for a disk that refuses them, and
    records durable in the journal but not yet in the ledger."""

    held: int
    journal_error: str | None
    ledger_pending: int
    ledger_lag_s: float
    ledger_error: str | None

    @property
    def problem(self) -> str | None:
        """What is wrong, in words; None when metering keeps up."""
        if self.held or self.journal_error:
            return (
                f"the usage journal cannot write ({self.journal_error}): {self.held} record(s) "
                "held in memory, lost if TokenMill stops before the disk has room"
            )
        if self.ledger_error:
            return (
                f"the ledger cannot write ({self.ledger_error}): {self.ledger_pending} "
                f"record(s) wait in the journal, the oldest for {self.ledger_lag_s:.0f} s"
            )
        if self.ledger_lag_s > LEDGER_LAG_ALERT_S:
            return f"the ledger is {self.ledger_lag_s:.0f} s behind the journal"
        return None


LEDGER_LAG_ALERT_S = 60.0

_FIELDS = tuple(f.name for f in fields(UsageRecord))

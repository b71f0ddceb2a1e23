"""W3C Trace Context: continue the caller's trace (or start one) across the gateway hop."""

import re
import secrets
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_INVALID_TRACE, _INVALID_SPAN = "0" * 32, "0" * 16


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    span_id: str  # the gateway's span: the parent of whatever the engine does
    parent_id: str | None  # the caller's span, when it sent one
    flags: str

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    @property
    def sampled(self) -> bool:
        return bool(int(self.flags, 16) & 1)

    def sibling(self) -> "TraceContext":
        """Another span beside this one, with the same parent: one per choice of n > 1."""
        return TraceContext(self.trace_id, secrets.token_hex(8), self.parent_id, self.flags)


def continue_trace(traceparent: str | None) -> TraceContext:
    """A child span of the incoming `traceparent`; a new trace when there is none or it is
    malformed (the spec says to restart rather than propagate garbage)."""
    span = secrets.token_hex(8)
    m = _TRACEPARENT.match((traceparent or "").strip().lower())
    if m and m[1] != "ff" and m[2] != _INVALID_TRACE and m[3] != _INVALID_SPAN:
        return TraceContext(m[2], span, m[3], m[4])
    return TraceContext(secrets.token_hex(16), span, None, "01")

"""Who used a machine when: its busy time shared out among the requests it served.

A node costs the same every second; while it is serving, that second belongs to the requests
in flight, split evenly between them (processor sharing: with continuous batching they really
do share each step). Each request's share is further split by phase: before its first token it
is prefilling (input tokens), after it decoding (output tokens). The shares sum to the busy
time exactly, so cost attributed plus idle ("unsold") cost is the node's whole cost.
"""

from collections.abc import Sequence
from dataclasses import dataclass

_START, _FIRST, _END = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Span:
    """One request's time on a machine (unix s); `first_token` None: it never produced one."""

    start: float
    first_token: float | None
    end: float


@dataclass(frozen=True, slots=True)
class Share:
    prefill_s: float
    decode_s: float


@dataclass(frozen=True, slots=True)
class Sharing:
    shares: tuple[Share, ...]  # one per span, in order
    busy_s: float  # time with at least one request in flight


def share_time(spans: Sequence[Span], since: float, until: float) -> Sharing:
    """Each span's share of the busy time within [since, until)."""
    if until < since:
        raise ValueError(f"window ends ({until}) before it starts ({since})")
    events: list[tuple[float, int, int]] = []
    for i, s in enumerate(spans):
        start, end = max(s.start, since), min(s.end, until)
        if end <= start:
            continue
        events.append((start, _START, i))
        events.append((end, _END, i))
        if s.first_token is not None and start < s.first_token < end:
            events.append((s.first_token, _FIRST, i))
    events.sort()
    prefill = [0.0] * len(spans)
    decode = [0.0] * len(spans)
    decoding: dict[int, bool] = {}  # in flight now -> past its first token?
    busy, last = 0.0, since
    for at, kind, i in events:
        if decoding and at > last:
            each = (at - last) / len(decoding)
            for j, past_first in decoding.items():
                if past_first:
                    decode[j] += each
                else:
                    prefill[j] += each
            busy += at - last
        last = at
        if kind == _START:
            first = spans[i].first_token
            decoding[i] = first is not None and first <= at
        elif kind == _FIRST:
            decoding[i] = True
        else:
            del decoding[i]
    return Sharing(tuple(Share(p, d) for p, d in zip(prefill, decode, strict=True)), busy)

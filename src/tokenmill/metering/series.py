"""Usage over time for a chart: one point per hour or per day, read from the rollups, with
every bucket of the window present (zeros where nothing happened). Counts and revenue are
exact sums; TTFT percentiles are estimates from the rollup's fixed buckets, interpolated
within a bucket as Prometheus' histogram_quantile does.
"""

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from tokenmill.core.errors import InvalidRequest
from tokenmill.metering.rollup import COUNTS, DAY_S, HOUR_S, TTFT_BOUNDS_MS, TTFT_COLUMNS
from tokenmill.store.tables import RevenueRollup, UsageRollup

STEPS = {"hour": HOUR_S, "day": DAY_S}
DEFAULT_POINTS = {"hour": 7 * 24, "day": 90}  # a window left open: the last week, 90 days
MAX_POINTS = 2000


@dataclass(frozen=True)
class Window:
    step: int  # seconds: HOUR_S or DAY_S
    start: int  # the first bucket's start, unix s
    end: int  # after the last bucket

    @classmethod
    def of(cls, step: str, since: float | None, until: float | None, now: float) -> "Window":
        """The buckets of `step` that [since, until) touches; an open end: now, and the
        default number of points before it."""
        grain = STEPS[step]
        end = math.ceil((until if until is not None else now) / grain) * grain
        start = (
            math.floor(since / grain) * grain
            if since is not None
            else end - DEFAULT_POINTS[step] * grain
        )
        if start >= end:
            raise InvalidRequest("since must be before until", param="since")
        if (end - start) // grain > MAX_POINTS:
            raise InvalidRequest(
                f"{(end - start) // grain} points of a {step} asked; at most {MAX_POINTS}: "
                "narrow the window or take a longer step",
                param="since",
            )
        return cls(grain, start, end)


@dataclass(frozen=True)
class Filters:
    tenant: str | None = None
    model: str | None = None
    key_id: str | None = None
    agent: str | None = None


@dataclass
class Point:
    t: int  # the bucket's start, unix s
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    ttft: list[int] = field(default_factory=lambda: [0] * len(TTFT_COLUMNS))
    revenue: dict[str, int] = field(default_factory=dict)  # pico-units per currency

    def ttft_ms(self, q: float) -> float | None:
        return estimate_quantile(q, self.ttft)


def estimate_quantile(q: float, counts: list[int]) -> float | None:
    """The q-quantile of the TTFTs counted per bucket (TTFT_COLUMNS), in ms, by linear
    interpolation inside its bucket (from 0 in the first); in the bucket above the last bound,
    that bound. None with no TTFT counted."""
    total = sum(counts)
    if total == 0:
        return None
    rank, seen, lower = q * total, 0, 0.0
    for bound, n in zip(TTFT_BOUNDS_MS, counts[:-1], strict=True):
        if n and seen + n >= rank:
            return lower + (bound - lower) * (rank - seen) / n
        seen += n
        lower = float(bound)
    return lower  # in the bucket above every bound: that bound, as Prometheus answers


def _where(table: type[UsageRollup] | type[RevenueRollup], w: Window, f: Filters) -> list[Any]:
    tests = [table.bucket_s == w.step, table.bucket >= w.start, table.bucket < w.end]
    for name in ("tenant", "model", "key_id", "agent"):
        value = getattr(f, name)
        if value is not None:
            tests.append(getattr(table, name) == value)
    return tests


def usage_series(engine: Engine, window: Window, filters: Filters) -> list[Point]:
    u, r = UsageRollup, RevenueRollup
    sums = [func.sum(u.__table__.c[name]) for name in (*COUNTS, *TTFT_COLUMNS)]
    usage = select(u.bucket, *sums).where(*_where(u, window, filters)).group_by(u.bucket)
    revenue = (
        select(r.bucket, r.currency, func.sum(r.pico))
        .where(*_where(r, window, filters))
        .group_by(r.bucket, r.currency)
    )
    points = {t: Point(t) for t in range(window.start, window.end, window.step)}
    with engine.connect() as conn:
        for bucket, *values in conn.execute(usage):
            point = points[bucket]
            point.counts = {k: int(v) for k, v in zip(COUNTS, values[: len(COUNTS)], strict=True)}
            point.ttft = [int(v) for v in values[len(COUNTS) :]]
        for bucket, currency, pico in conn.execute(revenue):
            points[bucket].revenue[currency] = int(pico)
    return list(points.values())

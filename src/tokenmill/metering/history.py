"""Usage totals from the rollup (`metering/rollup.py`) instead of the ledger's rows: exactly
the ledger's sums for any window whose ends are whole UTC hours (or open), inside the history
retention has kept. Whole days of a window are read at the day grain, its ends at the hour
grain, so a long window reads few rows.
"""

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, func, or_, select

from tokenmill.metering.rollup import DAY_S, HOUR_S, bucket_start
from tokenmill.store.tables import UsageRollup, UsageRow

R = UsageRollup
GROUPS: dict[str, Any] = {  # columns and expressions
    "tenant": R.tenant,
    "key": R.key_id,
    "agent": R.agent,
    "model": R.model,
    "day": R.bucket - R.bucket % DAY_S,  # a bucket's day: hour buckets fold into it
}
TOTALS = ("requests", "prompt_tokens", "cached_tokens", "completion_tokens")
LAST_TIME_S = 253_402_300_800  # 10000-01-01: later "times" are not worth an exact answer


def answers(group_by: list[str], since: float | None, until: float | None) -> bool:
    """Whether the rollup can answer this question exactly (given `covers`)."""
    return all(g in GROUPS for g in group_by) and all(
        t is None or (0 <= t <= LAST_TIME_S and t % HOUR_S == 0) for t in (since, until)
    )


def whole_hours(since: float | None, until: float | None) -> tuple[int | None, int | None]:
    """The whole UTC hours inside [since, until): the part the rollup answers."""
    low = None if since is None else math.ceil(since / HOUR_S) * HOUR_S
    high = None if until is None else math.floor(until / HOUR_S) * HOUR_S
    return low, high


def horizon(engine: Engine) -> float | None:
    """Where the rollup's history starts: None when it holds the whole ledger, else the start
    of its first day (retention pruned what came before; with nothing left, the day after the
    ledger's last record)."""
    with engine.connect() as conn:
        first_record = conn.scalar(select(func.min(UsageRow.created_at)))
        if first_record is None:
            return None
        first_day = conn.scalar(select(func.min(R.bucket)).where(R.bucket_s == DAY_S))
        if first_day is None:
            last_record = conn.scalar(select(func.max(UsageRow.created_at))) or first_record
            return float(bucket_start(last_record, DAY_S) + DAY_S)
    return None if first_record >= first_day else float(first_day)


def covers(engine: Engine, since: float | None) -> bool:
    start = horizon(engine)
    return start is None or (since is not None and since >= start)


def spans(since: int | None, until: int | None) -> list[tuple[int, int | None, int | None]]:
    """The window [since, until) as (grain, from, to) ranges of bucket starts: whole UTC days at
    the day grain, the hours before the first and after the last at the hour grain."""
    first_day = None if since is None else -(-since // DAY_S) * DAY_S
    last_day = None if until is None else until - until % DAY_S
    if first_day is not None and last_day is not None and first_day >= last_day:
        return [(HOUR_S, since, until)]  # no whole day inside
    out: list[tuple[int, int | None, int | None]] = [(DAY_S, first_day, last_day)]
    if since is not None and first_day is not None and since < first_day:
        out.append((HOUR_S, since, first_day))
    if until is not None and last_day is not None and last_day < until:
        out.append((HOUR_S, last_day, until))
    return out


def in_window(since: int | None, until: int | None) -> ColumnElement[bool]:
    ranges = []
    for grain, low, high in spans(since, until):
        tests = [R.bucket_s == grain]
        tests += [R.bucket >= low] if low is not None else []
        tests += [R.bucket < high] if high is not None else []
        ranges.append(and_(*tests))
    return or_(*ranges)


def totals(
    engine: Engine,
    group_by: list[str],
    since: float | None,
    until: float | None,
    tenant: str | None,
) -> list[dict[str, Any]]:
    """Requests and tokens per group, as `ledger.ledger_totals` has them (sums may be None
    where nothing matched; `ledger` shapes them)."""
    cols = [GROUPS[g].label(g) for g in group_by]
    window = in_window(_whole(since), _whole(until))
    q = select(*cols, *(func.sum(R.__table__.c[k]).label(k) for k in TOTALS)).where(window)
    if tenant is not None:
        q = q.where(R.tenant == tenant)
    if cols:
        q = q.group_by(*cols).order_by(*cols)
    with engine.connect() as conn:
        return [_named(dict(row._mapping)) for row in conn.execute(q)]


def _whole(t: float | None) -> int | None:
    return None if t is None else math.floor(t)


def _named(item: dict[str, Any]) -> dict[str, Any]:
    """The ledger's names for what the rollup keeps as numbers or "": a day as 2026-12-06,
    no agent as None."""
    if "day" in item:
        item["day"] = datetime.fromtimestamp(item["day"], UTC).strftime("%Y-%m-%d")
    if "agent" in item:
        item["agent"] = item["agent"] or None
    return item

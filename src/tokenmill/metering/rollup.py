"""The usage rollup: ledger rows summed per hour and per day, by tenant, key, model and agent,
added in the transaction that inserts them (`ledger.insert_records`) and only for the rows
that went in, so it equals the ledger exactly. Migration 0015 fills it from an older ledger
with the same rules in SQL (a test keeps the two equal).

Two grains: the console's hourly charts read hours; long windows read days, 24 times fewer
rows (with 200 active keys an hour holds almost as many rows as requests).
"""

import asyncio
import bisect
import logging
import math
import time
from collections.abc import Iterable
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, delete

from tokenmill.core.periodic import Periodic
from tokenmill.store.tables import RevenueRollup, UsageRollup
from tokenmill.store.upserts import add_sums

log = logging.getLogger(__name__)

HOUR_S, DAY_S = 3600, 86_400
GRAINS = (HOUR_S, DAY_S)
# TTFT histogram bounds, ms: each bucket counts (previous bound, bound]; one more above the last.
TTFT_BOUNDS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
TTFT_COLUMNS = (*(f"ttft_ms_{b}" for b in TTFT_BOUNDS_MS), "ttft_ms_inf")
COUNTS = ("requests", "errors", "prompt_tokens", "cached_tokens", "completion_tokens")
SUMS = (*COUNTS, *TTFT_COLUMNS)
DIMENSIONS = ("bucket_s", "bucket", "tenant", "key_id", "model", "agent")
assert [*DIMENSIONS, *SUMS] == UsageRollup.__table__.c.keys()  # rows are tuples in this order
PRUNE_EVERY_S = 3600.0


class Usage(Protocol):
    """What the rollup reads of a usage record (a UsageRecord has it)."""

    @property
    def created_at(self) -> float: ...
    @property
    def tenant(self) -> str: ...
    @property
    def key_id(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def agent(self) -> str | None: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def cached_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...
    @property
    def ttft_ms(self) -> float | None: ...
    @property
    def status(self) -> int: ...
    @property
    def outcome(self) -> str: ...


def bucket_start(created_at: float, grain: int) -> int:
    """The bucket holding `created_at`: its whole seconds (truncated; times are >= 0) less
    their remainder. In integers, as migration 0015's SQL, so both put a record in one place,
    and `bucket <= created_at < bucket + grain` holds as the ledger's window filters test it."""
    whole = int(created_at)
    return whole - whole % grain


def is_error(outcome: str, status: int) -> bool:
    """Failed, or cut short on our side; a client that hung up (499, "partial") is no error."""
    return outcome == "error" or status >= 500


def ttft_slot(ttft_ms: float | None) -> int | None:
    """Which TTFT bucket (index into TTFT_COLUMNS); None: no first token (or NaN, stored as
    NULL by SQLite)."""
    if ttft_ms is None or math.isnan(ttft_ms):
        return None
    return bisect.bisect_left(TTFT_BOUNDS_MS, ttft_ms)


def usage_rows(records: Iterable[Usage]) -> list[tuple[Any, ...]]:
    """The records summed into rollup rows, tuples in the table's column order: hours first,
    then the hours into days (a batch has far fewer hours than records; this runs on every
    ledger insert)."""
    hours: dict[tuple[Any, ...], list[int]] = {}
    for r in records:
        key = (bucket_start(r.created_at, HOUR_S), r.tenant, r.key_id, r.model, r.agent or "")
        into = hours.get(key)
        if into is None:
            into = hours[key] = [0] * len(SUMS)
        into[0] += 1
        into[1] += is_error(r.outcome, r.status)
        into[2] += r.prompt_tokens
        into[3] += r.cached_tokens
        into[4] += r.completion_tokens
        slot = ttft_slot(r.ttft_ms)
        if slot is not None:
            into[len(COUNTS) + slot] += 1
    days: dict[tuple[Any, ...], list[int]] = {}
    for (hour, *who), sums in hours.items():
        into = days.setdefault((hour - hour % DAY_S, *who), [0] * len(SUMS))
        for i, n in enumerate(sums):
            into[i] += n
    return [
        (grain, *key, *sums)
        for grain, rows in ((HOUR_S, hours), (DAY_S, days))
        for key, sums in rows.items()
    ]


def add_usage(conn: Connection, records: Iterable[Usage]) -> None:
    """Add records just inserted into the ledger, in the caller's transaction."""
    add_sums(conn, UsageRollup, usage_rows(records))


def prune(engine: Engine, keep_days: int, now: float | None = None) -> int:
    """Delete rollup rows (usage and revenue) of days that ended more than `keep_days` ago;
    the ledger keeps every record. Whole UTC days go, so both grains end at the same time
    (reads find where the history starts: `history.horizon`). Returns the rows deleted."""
    cutoff = bucket_start((now if now is not None else time.time()) - keep_days * DAY_S, DAY_S)
    deleted = 0
    with engine.begin() as conn:
        for table in (UsageRollup, RevenueRollup):
            for grain in GRAINS:  # one range of the primary key each
                q = delete(table).where(table.bucket_s == grain, table.bucket < cutoff)
                deleted += conn.execute(q).rowcount
    return deleted


def history_retention(engine: Engine, keep_days: int) -> Periodic:
    """The rollup's retention as a periodic task (start it, stop it at shutdown)."""

    async def step() -> None:
        deleted = await asyncio.to_thread(prune, engine, keep_days)
        if deleted:
            log.info("usage history: pruned %d rollup rows older than %d days", deleted, keep_days)

    return Periodic("usage history retention", PRUNE_EVERY_S, step)

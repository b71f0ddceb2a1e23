"""The ledger: usage records in the database, inserted idempotently by request id."""

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from functools import lru_cache
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.orm import Session

from tokenmill.core.usage import UsageRecord
from tokenmill.metering import history
from tokenmill.metering.rollup import add_usage
from tokenmill.store.db import make_durable
from tokenmill.store.tables import ApiKey, UsageRow
from tokenmill.store.upserts import expect_inserted, firsts, held_keys, insert_new

log = logging.getLogger(__name__)

GROUPS = {
    "tenant": UsageRow.tenant,
    "key": UsageRow.key_id,
    "agent": UsageRow.agent,
    "owner": UsageRow.owner,
    "model": UsageRow.model,
    "replica": UsageRow.replica,
    "day": UsageRow.day,
}
# Longer periods, folded from days here (exact integer sums; the SQL stays portable): an ISO
# week as "2026-W49" (Monday to Sunday, UTC), a month as "2026-12".
PERIODS: dict[str, Callable[[str], str]] = {
    "week": lambda day: "{}-W{:02d}".format(*date.fromisoformat(day).isocalendar()[:2]),
    "month": lambda day: day[:7],
}
GROUP_NAMES = frozenset(GROUPS) | frozenset(PERIODS)
_SUMS = ("requests", "prompt_tokens", "cached_tokens", "completion_tokens")


_FIELDS = tuple(f.name for f in fields(UsageRecord))
_COLUMNS = (*_FIELDS, "day")
_values = attrgetter(*_FIELDS)  # one C call for every field, as a tuple in _FIELDS order
_DAY_S = 86_400


@lru_cache(maxsize=64)
def _day_number(days_since_epoch: int) -> str:
    return datetime.fromtimestamp(days_since_epoch * _DAY_S, UTC).strftime("%Y-%m-%d")


def _utc_day(created_at: float) -> str:
    """The UTC date, as `datetime.fromtimestamp(created_at, UTC)` has it, formatted once per day
    rather than once per record: unix time has no leap seconds, so it is the whole days since
    the epoch, except within a microsecond of midnight where `fromtimestamp` may round up."""
    if 1e-6 < created_at % _DAY_S < _DAY_S - 1e-6:
        return _day_number(int(created_at // _DAY_S))
    return datetime.fromtimestamp(created_at, UTC).strftime("%Y-%m-%d")


def _row(record: UsageRecord) -> tuple[Any, ...]:
    """A ledger row: the values in `_COLUMNS` order."""
    return (*_values(record), _utc_day(record.created_at))


# SQLite: plain DBAPI executemany of positional tuples. Core's per-row parameter processing of
# dicts cost more than SQLite's own insert work (benchmarks/ledger_ingest.py).
_SQLITE_INSERT = (
    f"INSERT INTO {UsageRow.__tablename__} ({', '.join(_COLUMNS)}) "  # noqa: S608 - model names
    f"VALUES ({', '.join('?' * len(_COLUMNS))}) ON CONFLICT (request_id) DO NOTHING"
)


def insert_records(engine: Engine, records: Iterable[UsageRecord]) -> int:
    """Insert records, ignoring ids already present, and add the new ones to the usage rollup,
    in one transaction. Returns how many were new."""
    batch = list(records)
    if not batch:
        return 0
    with engine.begin() as conn:
        new = _insert_new(conn, batch)
        add_usage(conn, new)
    return len(new)


def _insert_new(conn: Connection, batch: list[UsageRecord]) -> list[UsageRecord]:
    """Insert the records whose id the ledger lacks (the first of an id given twice); return
    exactly those (`store/upserts.py` says how it knows)."""
    if conn.dialect.name != "sqlite":
        rows = [dict(zip(_COLUMNS, _row(r), strict=True)) for r in batch]
        new_rows = insert_new(conn, UsageRow, rows, ("request_id",))
        return [UsageRecord.from_dict(row) for row in new_rows]
    held = held_keys(conn, UsageRow, ("request_id",), {(r.request_id,) for r in batch})
    new = firsts(batch, lambda r: (r.request_id,), lambda k: k not in held)
    if new:
        result = conn.exec_driver_sql(_SQLITE_INSERT, [_row(r) for r in new])
        expect_inserted(result.rowcount, len(new), UsageRow.__tablename__)
    return new


def usage_totals(
    engine: Engine,
    group_by: list[str],
    since: float | None = None,
    until: float | None = None,
    tenant: str | None = None,
) -> list[dict[str, Any]]:
    """Requests and tokens per group (names from GROUP_NAMES), in the window, for one tenant
    or all. From the rollup where it can answer exactly (the window's whole hours, inside its
    history, for groups it keeps) plus the ledger's rows for the ends of the window that are
    not whole hours; else from the ledger's rows alone."""
    if any(g in PERIODS for g in group_by):
        by_day = list(dict.fromkeys(g if g not in PERIODS else "day" for g in group_by))
        return _fold(usage_totals(engine, by_day, since, until, tenant), group_by)
    low, high = history.whole_hours(since, until)
    inside = low is None or high is None or low < high
    if inside and history.answers(group_by, low, high) and history.covers(engine, low):
        rows = _shaped(history.totals(engine, group_by, low, high, tenant))
        # A window's ragged ends (under an hour each) from the ledger's rows, by its index.
        if since is not None and low is not None and since < low:
            rows += ledger_totals(engine, group_by, since, low, tenant, short=True)
        if until is not None and high is not None and high < until:
            rows += ledger_totals(engine, group_by, high, until, tenant, short=True)
        return _fold(rows, group_by)
    return ledger_totals(engine, group_by, since, until, tenant)


def ledger_totals(
    engine: Engine,
    group_by: list[str],
    since: float | None = None,
    until: float | None = None,
    tenant: str | None = None,
    *,
    short: bool = False,
) -> list[dict[str, Any]]:
    """`usage_totals` from the ledger's rows, for any window and any of GROUPS. `short`: the
    window is short (a ragged end): read it by the created_at index, never by the tenant's."""
    cols = [GROUPS[g].label(g) for g in group_by]
    q = select(
        *cols,
        func.count().label("requests"),
        func.sum(UsageRow.prompt_tokens).label("prompt_tokens"),
        func.sum(UsageRow.cached_tokens).label("cached_tokens"),
        func.sum(UsageRow.completion_tokens).label("completion_tokens"),
    )
    if since is not None:
        q = q.where(UsageRow.created_at >= since)
    if until is not None:
        q = q.where(UsageRow.created_at < until)
    if tenant is not None:
        # SQLite prefers an equality index to a range: for an hour it would read all of the
        # tenant's history (28 ms for 20,000 records) where the created_at index reads the hour
        # (0.04 ms). `tenant || ''` takes the tenant's index out of the running.
        q = q.where((UsageRow.tenant.concat("") if short else UsageRow.tenant) == tenant)
    if cols:
        q = q.group_by(*cols).order_by(*cols)
    with Session(engine) as s:
        return _shaped(dict(row._mapping) for row in s.execute(q))


def _shaped(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Groups with requests, their sums as ints (SQL's SUM of nothing is NULL), and totals."""
    out = []
    for item in rows:
        if not item["requests"]:
            continue
        for k in _SUMS:
            item[k] = int(item[k] or 0)
        item["total_tokens"] = item["prompt_tokens"] + item["completion_tokens"]
        out.append(item)
    return out


def _fold(rows: list[dict[str, Any]], group_by: list[str]) -> list[dict[str, Any]]:
    """Rows grouped by day (and the rest) summed into the weeks or months `group_by` asks;
    rows of the same group (from the rollup and the ledger) summed into one."""
    folded: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(PERIODS[g](row["day"]) if g in PERIODS else row[g] for g in group_by)
        into = folded.setdefault(key, {**dict(zip(group_by, key, strict=True)),
                                       **dict.fromkeys(_SUMS, 0)})  # fmt: skip
        for k in _SUMS:
            into[k] += row[k]
    out = [folded[k] for k in sorted(folded, key=lambda k: tuple(str(v) for v in k))]
    for item in out:
        item["total_tokens"] = item["prompt_tokens"] + item["completion_tokens"]
    return out


class LedgerWriter:
    """Drains durable journal records into the database in batches, off the event loop.

    Journal segments are released only after the ledger rows are durable (see `make_durable`),
    checked at most every `durable_every_s`, so a power loss can only cost a replay. A database
    that fails (a full disk, a lost connection) is retried, with backoff, for as long as it
    takes: the records wait in memory and in the journal, and `lag` says how far behind it is.
    """

    def __init__(
        self, engine: Engine, batch_delay_s: float = 0.05, durable_every_s: float = 2.0
    ) -> None:
        self._engine = engine
        self._delay = batch_delay_s
        self._durable_every = durable_every_s
        self._last_durable = time.monotonic()
        self._committed_segment = 0
        self._released_segment = 0
        self._pending: list[tuple[UsageRecord, int]] = []
        self._pending_since: float | None = None  # monotonic time the oldest pending came
        self._failure: _Failure | None = None
        self._wakeup = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self.on_committed: Any = None  # callable(segment) to release journal segments
        # Called, in a worker thread, with each batch once it is in the ledger (billing rates
        # it); a failure there is logged and never touches the ledger.
        self.on_inserted: Callable[[list[UsageRecord]], object] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def submit(self, records: list[UsageRecord], segment: int) -> None:
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.extend((r, segment) for r in records)
        self._wakeup.set()

    @property
    def lag(self) -> tuple[int, float]:
        """Records not yet in the ledger, and how long the oldest has waited (seconds)."""
        if not self._pending or self._pending_since is None:
            return 0, 0.0
        return len(self._pending), time.monotonic() - self._pending_since

    @property
    def error(self) -> str | None:
        return self._failure.error if self._failure else None

    async def _loop(self) -> None:
        tries_after_close = 0
        while not self._closed or self._pending:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._closed:
                await asyncio.sleep(self._delay)  # let a batch gather
            try:
                await self._drain()
            except Exception as exc:  # the records are safe in the journal: retry
                self._failed(exc)
                if self._closed:
                    tries_after_close += 1
                    if tries_after_close >= CLOSE_TRIES:
                        return  # the journal keeps them; the next start replays them
                await asyncio.sleep(self._failure.backoff_s if self._failure else 1.0)
                self._wakeup.set()
                continue
            if self._failure is not None:
                log.warning(
                    "ledger writes again after %.1f s", time.monotonic() - self._failure.since
                )
                self._failure = None

    async def _drain(self) -> None:
        batch, self._pending = self._pending, []
        since, self._pending_since = self._pending_since, None
        if batch:
            try:
                await asyncio.to_thread(insert_records, self._engine, [r for r, _ in batch])
            except BaseException:
                self._pending[:0] = batch  # back in front, in order
                self._pending_since = since
                raise
            self._committed_segment = batch[-1][1]
            if self.on_inserted is not None:
                await self._tell(self.on_inserted, [r for r, _ in batch])
        due = time.monotonic() - self._last_durable >= self._durable_every
        if due and self._committed_segment > self._released_segment:
            await self._release(self._committed_segment)

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._failure is None:
            self._failure = _Failure(_reason(exc), now, now)
            log.error(
                "ledger write failed (%s); retrying, records wait in the journal", _reason(exc)
            )
            return
        self._failure.error = _reason(exc)
        self._failure.backoff_s = min(self._failure.backoff_s * 2, MAX_BACKOFF_S)
        if now - self._failure.logged_at >= 60:
            self._failure.logged_at = now
            pending, age = self.lag
            log.error(
                "ledger still failing after %.0f s (%s): %d record(s) behind, oldest %.0f s",
                now - self._failure.since,
                self._failure.error,
                pending,
                age,
            )

    @staticmethod
    async def _tell(
        listener: Callable[[list[UsageRecord]], object], records: list[UsageRecord]
    ) -> None:
        try:
            await asyncio.to_thread(listener, records)
        except Exception:
            log.exception("a ledger listener failed on %d records", len(records))

    async def _release(self, segment: int) -> None:
        """Segments before `segment` hold only committed rows: once durable, let them go."""
        self._last_durable = time.monotonic()
        if self.on_committed is not None and await asyncio.to_thread(make_durable, self._engine):
            self.on_committed(segment)
            self._released_segment = segment

    async def close(self) -> bool:
        """Drain everything; True if the ledger is durable (the journal may then be emptied)."""
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        if self._pending:
            return False
        try:
            return await asyncio.to_thread(make_durable, self._engine)
        except Exception as exc:
            log.error("ledger not durable at shutdown (%s): the journal is kept for replay", exc)
            return False


CLOSE_TRIES = 5  # at shutdown, a failing database gets this many more tries
MAX_BACKOFF_S = 10.0


@dataclass
class _Failure:
    error: str
    since: float  # monotonic
    logged_at: float
    backoff_s: float = 0.5


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]


def tokens_used(engine: Engine, holder: str, since: float | None) -> int:
    """Prompt + completion tokens spent by a budget holder: `agent:<id>`, or `key:<id>` with
    every key rotated from it."""
    kind, _, ident = holder.partition(":")
    spent = select(func.sum(UsageRow.prompt_tokens + UsageRow.completion_tokens))
    if kind == "agent":
        q = spent.where(UsageRow.agent == ident)
    else:
        line = select(ApiKey.id).where((ApiKey.id == ident) | (ApiKey.budget_key == ident))
        q = spent.where(UsageRow.key_id.in_(line))
    if since is not None:
        q = q.where(UsageRow.created_at >= since)
    with Session(engine) as s:
        return int(s.scalar(q) or 0)

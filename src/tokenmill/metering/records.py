"""Usage records read back out of the ledger, page by page, in one total order.

Exports (CSV, CloudEvents) walk the ledger in `(created_at, request_id)` order with a keyset
condition: each page starts after the last row of the one before, so a page never repeats or
skips a row that was there when the walk began, and no page costs an OFFSET scan.
"""

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, fields

from sqlalchemy import ColumnElement, Engine, and_, or_, select

from tokenmill.core.usage import Outcome, UsageRecord
from tokenmill.store.tables import UsageRow

RECORD_FIELDS = tuple(f.name for f in fields(UsageRecord))
_COLUMNS = [getattr(UsageRow, name) for name in RECORD_FIELDS]

Position = tuple[float, str]  # (created_at, request_id) of a row: its place in export order


def position(record: UsageRecord) -> Position:
    return record.created_at, record.request_id


def after(pos: Position) -> ColumnElement[bool]:
    created_at, request_id = pos
    # The `>=` lets the created_at index bound the scan; the OR only breaks ties within it.
    return and_(
        UsageRow.created_at >= created_at,
        or_(UsageRow.created_at > created_at, UsageRow.request_id > request_id),
    )


def at_or_before(pos: Position) -> ColumnElement[bool]:
    created_at, request_id = pos
    return and_(
        UsageRow.created_at <= created_at,
        or_(UsageRow.created_at < created_at, UsageRow.request_id <= request_id),
    )


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """Which records: every field optional; `since` inclusive, `until` exclusive (unix s)."""

    since: float | None = None
    until: float | None = None
    tenant: str | None = None
    model: str | None = None
    key_id: str | None = None
    agent: str | None = None
    owner: str | None = None
    outcome: Outcome | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.since is not None:
            out.append(UsageRow.created_at >= self.since)
        if self.until is not None:
            out.append(UsageRow.created_at < self.until)
        equal = {
            UsageRow.tenant: self.tenant,
            UsageRow.model: self.model,
            UsageRow.key_id: self.key_id,
            UsageRow.agent: self.agent,
            UsageRow.owner: self.owner,
            UsageRow.outcome: self.outcome,
        }
        out += [column == value for column, value in equal.items() if value is not None]
        return out


def read_page(
    engine: Engine, where: Sequence[ColumnElement[bool]], start: Position | None, limit: int
) -> list[UsageRecord]:
    """Up to `limit` records matching `where`, in export order, after `start` (if given)."""
    q = select(*_COLUMNS).where(*where)
    if start is not None:
        q = q.where(after(start))
    q = q.order_by(UsageRow.created_at, UsageRow.request_id).limit(limit)
    with engine.connect() as conn:
        return [UsageRecord(**row._mapping) for row in conn.execute(q)]


async def read_pages(
    engine: Engine,
    where: Sequence[ColumnElement[bool]],
    page_size: int,
    start: Position | None = None,
) -> AsyncIterator[list[UsageRecord]]:
    """Pages of records, each read off the event loop only when the consumer asks for it: a
    consumer that acts on a page before taking the next (a POST, a socket write) holds one
    page in memory at a time."""
    while True:
        page = await asyncio.to_thread(read_page, engine, where, start, page_size)
        if page:
            yield page
        if len(page) < page_size:
            return
        start = position(page[-1])

"""Usage records out of the ledger, one row per request, for any filter: CSV or JSON lines,
streamed page by page so that a year of usage never sits in memory.

Same admin surface and rules as admin_routes: the router authenticates and checks the declared
permission, and a tenant-admin sees its own tenant only.
"""

import csv
import dataclasses
import io
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import ColumnElement, Engine

from tokenmill.api.admin_routes import Caller, P, Svc, _note, _within_reach, admin
from tokenmill.api.auth import requires
from tokenmill.core.usage import Outcome, UsageRecord
from tokenmill.metering.records import RECORD_FIELDS, RecordFilter, read_pages

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(admin)])
PAGE_SIZE = 1000
Format = Literal["csv", "jsonl"]
MEDIA_TYPES: dict[Format, str] = {"csv": "text/csv", "jsonl": "application/x-ndjson"}
_DOCUMENTED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "One record per request",
        "content": {media: {"schema": {"type": "string"}} for media in MEDIA_TYPES.values()},
    }
}
# A spreadsheet runs a cell that starts like a formula; owner names are anyone's text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
Name = Annotated[str | None, Query(max_length=200)]


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv_rows(rows: Iterable[Iterable[object]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode()


def _csv(records: Sequence[UsageRecord]) -> bytes:
    return _csv_rows([_cell(getattr(r, f)) for f in RECORD_FIELDS] for r in records)


def _jsonl(records: Sequence[UsageRecord]) -> bytes:
    return b"".join(orjson.dumps(r.to_dict()) + b"\n" for r in records)


_ENCODERS: dict[Format, tuple[bytes, Callable[[Sequence[UsageRecord]], bytes]]] = {
    "csv": (_csv_rows([RECORD_FIELDS]), _csv),  # a header row of every field
    "jsonl": (b"", _jsonl),
}


async def _body(
    engine: Engine, where: list[ColumnElement[bool]], fmt: Format
) -> AsyncIterator[bytes]:
    header, encode = _ENCODERS[fmt]
    if header:
        yield header
    async for page in read_pages(engine, where, PAGE_SIZE):
        yield encode(page)


@router.get("/usage/records", response_class=StreamingResponse, responses=_DOCUMENTED)
@requires(P.USAGE_READ)
async def usage_records(
    svc: Svc,
    caller: Caller,
    request: Request,
    since: Annotated[float | None, Query(ge=0, description="Unix time, inclusive")] = None,
    until: Annotated[float | None, Query(ge=0, description="Unix time, exclusive")] = None,
    tenant: Annotated[str | None, Query(max_length=64)] = None,
    model: Name = None,
    key: Annotated[str | None, Query(max_length=32, description="Key id")] = None,
    agent: Annotated[str | None, Query(max_length=32, description="Agent id")] = None,
    owner: Name = None,
    outcome: Outcome | None = None,
    fmt: Annotated[Format, Query(alias="format")] = "csv",
) -> StreamingResponse:
    """Usage records in time order (created_at, then request id), every field of each."""
    if tenant is not None:
        _within_reach(caller, tenant)
    chosen = RecordFilter(since, until, tenant or caller.reach, model, key, agent, owner, outcome)
    filters: dict[str, Any] = {k: v for k, v in dataclasses.asdict(chosen).items() if v is not None}
    _note(request, "usage:records", format=fmt, filters=filters)  # who exported what
    return StreamingResponse(
        _body(svc.db, chosen.conditions(), fmt),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="usage.{fmt}"'},
    )

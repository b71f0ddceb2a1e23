"""Usage as CloudEvents 1.0, pushed to an OpenMeter-compatible collector.

Format. One structured-mode JSON event per usage record (`to_cloudevent`): `id` is the
request id, `source` names this ledger, `type` is `tokenmill.usage`, `subject` is the tenant
(OpenMeter's customer), `time` is when the request started (RFC 3339, UTC) and `data` holds
the token counts and their attribution. Batches are POSTed as a JSON array with the content
type `application/cloudevents-batch+json`, as OpenMeter's `/api/v1/events` takes them.
Plain dicts, not the `cloudevents` SDK: the format is eight attributes, the SDK's batch
support is thin and it would bring its own dependencies; the tests check the spec's required
attributes and their types instead.

Delivery is at least once, with idempotent ids. A batch is acknowledged by a 2xx; connection
errors, timeouts, 408, 429 and 5xx are retried with exponential backoff and full jitter (or
after exactly the collector's Retry-After), and anything else stops the run. The cursor moves
only past acknowledged batches, so a crash or a refusal re-sends, never skips; the collector
drops repeats by (id, source). So `source` must stay the same for the same ledger: the
default, `tokenmill/<hostname>`, suits one fixed host; where the host name changes (a
container, a new pod) or the exporter may move, give a stable name, or a re-send after a
move counts twice. Run one exporter per ledger.

Late records. A record's `created_at` is when its request *started*, and it reaches the
ledger when the request ends (a long stream: minutes later), or at startup when the usage
journal is replayed after a crash. A cursor on `(created_at, request_id)` alone would pass
such a row before it exists and never see it. The ledger has no commit order to follow
instead: `request_id` is the key, SQLite's implicit rowid is renumbered by VACUUM, and
PostgreSQL has nothing of the kind. So, without a schema change:

- the cursor advances only up to `settle_s` ago, by which time most requests have ended;
- it also keeps, per `bucket_s` of `created_at` over the last `lookback_s` before it, how
  many rows it has had acknowledged there. Each run counts the ledger's rows in those buckets
  (one indexed GROUP BY) and re-sends every bucket whose count grew, whole: the collector
  drops the rows it already has, and keeps the late one.

A record that reaches the ledger more than `lookback_s` behind the cursor (a journal replayed
after a longer outage) is not exported: choose `lookback_s` above the longest outage that
should be covered. A cursor file deleted re-sends everything, which is safe.

The exact fix needs a column (a migration): an indexed `ingested_at` set by the database at
insert, and a cursor on `(ingested_at, request_id)` that stays a few seconds behind now (more
than the longest ledger transaction and the clock skew between gateways): no buckets, no
lookback, no re-sends.
"""

import asyncio
import json
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from sqlalchemy import ColumnElement, Engine, Integer, cast, func, literal_column, select

from tokenmill.core.periodic import Periodic
from tokenmill.core.usage import UsageRecord
from tokenmill.metering.records import Position, at_or_before, position, read_pages
from tokenmill.store.tables import UsageRow

log = logging.getLogger(__name__)

SPEC_VERSION = "1.0"
EVENT_TYPE = "tokenmill.usage"  # one usage record: one request's tokens
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
MAX_RETRY_AFTER_S = 600.0  # the longest one Retry-After may hold a run
_RETRYABLE = {408, 429}


def default_source() -> str:
    return f"tokenmill/{socket.gethostname()}"


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def to_cloudevent(record: UsageRecord, source: str) -> dict[str, Any]:
    """A structured-mode CloudEvent. `data` keeps the tenant too: OpenMeter meters group by
    `data` fields, and cannot group by the subject."""
    data = record.to_dict()
    del data["request_id"], data["created_at"]  # they are the event's id and time
    data["total_tokens"] = record.total_tokens
    return {
        "specversion": SPEC_VERSION,
        "id": record.request_id,
        "source": source,
        "type": EVENT_TYPE,
        "subject": record.tenant,
        "time": rfc3339(record.created_at),
        "datacontenttype": "application/json",
        "data": data,
    }


class ExportError(Exception):
    """The collector did not acknowledge a batch; the cursor stays before it."""


@dataclass
class Cursor:
    """Where export stands: the last acknowledged row, and how many acknowledged rows each
    recent bucket of `created_at` holds (to notice rows that arrive behind the cursor)."""

    created_at: float = 0.0
    request_id: str = ""
    acked: dict[int, int] = field(default_factory=dict)

    @property
    def position(self) -> Position:
        return self.created_at, self.request_id

    @classmethod
    def load(cls, path: Path) -> "Cursor":
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        acked = {int(b): int(n) for b, n in raw.get("acked", {}).items()}
        return cls(float(raw["created_at"]), str(raw["request_id"]), acked)

    def save(self, path: Path) -> None:
        """Atomically: a reader, or a crash, sees the old cursor or the new one. No directory
        fsync: losing the rename to a power cut only moves the cursor back, which re-sends."""
        body = {"created_at": self.created_at, "request_id": self.request_id, "acked": self.acked}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("w") as f:
            json.dump(body, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


class CloudEventsExporter:
    def __init__(
        self,
        engine: Engine,
        url: str,
        *,
        cursor_path: Path,
        source: str | None = None,
        batch_size: int = 100,
        headers: Mapping[str, str] | None = None,
        settle_s: float = 60.0,
        lookback_s: float = 3600.0,
        bucket_s: int = 10,
        max_attempts: int = 8,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if batch_size < 1 or bucket_s < 1 or max_attempts < 1:
            raise ValueError("batch_size, bucket_s and max_attempts must be at least 1")
        self._engine = engine
        self._url = url
        self._cursor_path = cursor_path
        self.source = source or default_source()
        self._batch_size = batch_size
        self._headers = {**(headers or {}), "Content-Type": BATCH_CONTENT_TYPE}
        self._settle_s = settle_s
        self._lookback_s = lookback_s
        self._bucket_s = bucket_s
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._bucket_sql = self._bucket_expression()

    def periodic(self, every_s: float = 30.0) -> Periodic:
        return Periodic("usage-cloudevents-export", every_s, self.run_once)

    async def run_once(self) -> int:
        """Export what is pending; returns how many events were acknowledged (re-sends too).
        Raises ExportError, with the cursor after the last acknowledged batch."""
        async with self._lock, aiohttp.ClientSession(timeout=self._timeout) as http:
            cursor = await asyncio.to_thread(Cursor.load, self._cursor_path)
            sent = await self._advance(http, cursor)
            return sent + await self._resend_grown(http, cursor)

    # -- the cursor's walk forward -------------------------------------------------------

    async def _advance(self, http: aiohttp.ClientSession, cursor: Cursor) -> int:
        settled = [UsageRow.created_at < self._clock() - self._settle_s]
        sent = 0
        async for page in read_pages(self._engine, settled, self._batch_size, cursor.position):
            await self._deliver(http, page)
            for record in page:
                bucket = self._bucket(record.created_at)
                cursor.acked[bucket] = cursor.acked.get(bucket, 0) + 1
            cursor.created_at, cursor.request_id = position(page[-1])
            first = self._first_bucket(cursor)
            cursor.acked = {b: n for b, n in cursor.acked.items() if b >= first}
            await asyncio.to_thread(cursor.save, self._cursor_path)
            sent += len(page)
        return sent

    # -- late rows: behind the cursor, within the lookback --------------------------------

    async def _resend_grown(self, http: aiohttp.ClientSession, cursor: Cursor) -> int:
        first = self._first_bucket(cursor)
        counts = await asyncio.to_thread(self._bucket_counts, cursor, first)
        changed = sorted(
            b
            for b in counts.keys() | cursor.acked.keys()
            if counts.get(b, 0) != cursor.acked.get(b, 0)
        )
        sent = 0
        for bucket in changed:
            resent = 0
            where = self._in_bucket(bucket, cursor)
            async for page in read_pages(self._engine, where, self._batch_size):
                await self._deliver(http, page)
                resent += len(page)
            log.info(
                "usage export: the %d s from %s held %d acknowledged row(s) and now %d: "
                "re-sent them all",
                self._bucket_s,
                rfc3339(bucket * self._bucket_s),
                cursor.acked.get(bucket, 0),
                resent,
            )
            # Rows read, not rows counted: one committed since the count is sent already.
            cursor.acked[bucket] = resent
            if not resent:  # its rows were deleted
                del cursor.acked[bucket]
            await asyncio.to_thread(cursor.save, self._cursor_path)
            sent += resent
        return sent

    def _bucket(self, created_at: float) -> int:
        # The same IEEE division and rounding as _bucket_expression, so both agree on edges.
        return int(created_at / self._bucket_s)

    def _bucket_expression(self) -> ColumnElement[Any]:
        # A literal, not a bound parameter: PostgreSQL must see the SELECT and GROUP BY
        # expressions as the same one. Times are positive, so truncation is floor.
        scaled = UsageRow.created_at / literal_column(str(self._bucket_s))
        if self._engine.dialect.name == "sqlite":
            return cast(scaled, Integer)
        return func.floor(scaled)

    def _first_bucket(self, cursor: Cursor) -> int:
        return self._bucket(max(cursor.created_at - self._lookback_s, 0.0))

    def _bucket_counts(self, cursor: Cursor, first: int) -> dict[int, int]:
        q = (
            select(self._bucket_sql, func.count())
            .where(UsageRow.created_at >= first * self._bucket_s)
            .where(at_or_before(cursor.position))
            .group_by(self._bucket_sql)
        )
        with self._engine.connect() as conn:
            return {int(b): int(n) for b, n in conn.execute(q)}

    def _in_bucket(self, bucket: int, cursor: Cursor) -> list[ColumnElement[bool]]:
        s = self._bucket_s
        return [
            UsageRow.created_at >= (bucket - 1) * s,  # index bounds around the exact test
            UsageRow.created_at < (bucket + 2) * s,
            self._bucket_sql == bucket,
            at_or_before(cursor.position),
        ]

    # -- delivery ------------------------------------------------------------------------

    async def _deliver(self, http: aiohttp.ClientSession, records: list[UsageRecord]) -> None:
        body = orjson.dumps([to_cloudevent(r, self.source) for r in records])
        for attempt in range(1, self._max_attempts + 1):
            retry_after = None
            try:
                async with http.post(self._url, data=body, headers=self._headers) as resp:
                    detail = (await resp.text(errors="replace"))[:300]
                    if 200 <= resp.status < 300:
                        return
                    problem = f"HTTP {resp.status}: {detail}"
                    if resp.status not in _RETRYABLE and resp.status < 500:
                        raise ExportError(f"collector refused a batch of usage events: {problem}")
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt == self._max_attempts:
                break
            if retry_after is None:
                cap = min(self._max_backoff_s, self._backoff_s * 2 ** (attempt - 1))
                delay = random.uniform(0, cap)  # noqa: S311 - jitter spreads retries, no secret
            else:
                delay = retry_after
            log.warning("usage export: %s; retry %d in %.2f s", problem, attempt, delay)
            await asyncio.sleep(delay)
        raise ExportError(f"usage events not delivered after {self._max_attempts} tries: {problem}")


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP date), within bounds."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)

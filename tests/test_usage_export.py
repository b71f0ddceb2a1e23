"""Usage exports: CloudEvents pushed to a real HTTP collector from a real SQLite ledger, and
CSV / JSON lines streamed by the real server."""

import csv
import io
import json
import re
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import Engine

from tokenmill.core.usage import UsageRecord
from tokenmill.metering.cloudevents import (
    BATCH_CONTENT_TYPE,
    CloudEventsExporter,
    Cursor,
    ExportError,
    parse_retry_after,
)
from tokenmill.metering.ledger import insert_records
from tokenmill.metering.records import RECORD_FIELDS
from tokenmill.store.db import make_engine, migrate, sqlite_url
from tokenmill.testing import ADMIN_KEY, ServerProcess

NOW = time.time()
SOURCE = "tokenmill/test-ledger"


def _record(n: int, created_at: float, tenant: str = "acme") -> UsageRecord:
    return UsageRecord(
        request_id=f"req-{n:05d}",
        created_at=created_at,
        tenant=tenant,
        key_id="key_1",
        model="smollm2-135m",
        deployment="smollm2-135m",
        replica="smollm2-135m-0",
        endpoint="chat",
        stream=n % 2 == 0,
        prompt_tokens=10 + n,
        cached_tokens=n % 3,
        completion_tokens=5 + n % 7,
        ttft_ms=12.5,
        duration_ms=80.0,
        status=200,
        outcome="ok",
        finish_reason="stop",
        usage_source="engine",
        agent="agt_1" if n % 2 else None,
        owner="alice" if n % 2 else None,
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Engine:
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    return engine


@dataclass
class Collector:
    """An OpenMeter-like ingest endpoint: answers from `script` first (a status, or "reset" to
    drop the connection), then 204; keeps every event it acknowledged, and each attempt."""

    script: list[int | str] = field(default_factory=list)
    always: int | None = None  # answer this to everything instead
    events: list[dict[str, object]] = field(default_factory=list)
    attempts: list[tuple[float, int | str]] = field(default_factory=list)
    url: str = ""

    @property
    def ids(self) -> set[object]:
        return {e["id"] for e in self.events}

    async def ingest(self, request: web.Request) -> web.StreamResponse:
        assert request.content_type == BATCH_CONTENT_TYPE
        batch = await request.json()
        answer = self.always or (self.script.pop(0) if self.script else 204)
        self.attempts.append((time.monotonic(), answer))
        if answer == "reset":  # an RST, not a polite close
            transport = request.transport
            assert transport is not None
            linger = struct.pack("ii", 1, 0)
            transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, linger
            )
            transport.abort()
            return web.Response(status=500)  # never sent
        assert isinstance(answer, int)
        if answer != 204:
            headers = {"Retry-After": "1"} if answer == 429 else {}
            return web.json_response({"error": "not now"}, status=answer, headers=headers)
        self.events += batch
        return web.Response(status=204)


@pytest_asyncio.fixture(loop_scope="function")  # served on the loop the test runs on
async def collector() -> AsyncIterator[Collector]:
    got = Collector()
    app = web.Application()
    app.router.add_post("/api/v1/events", got.ingest)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound before serving: no free-port race
    await web.SockSite(runner, sock).start()
    got.url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/v1/events"
    yield got
    await runner.cleanup()


def _exporter(engine: Engine, collector: Collector, cursor: Path, **kw: Any) -> CloudEventsExporter:
    options = {"batch_size": 100, "backoff_s": 0.01, "timeout_s": 5, **kw}  # tests wait less
    return CloudEventsExporter(engine, collector.url, source=SOURCE, cursor_path=cursor, **options)


_ATTRIBUTE = re.compile(r"^[a-z0-9]{1,20}$")
_RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _assert_cloudevent(event: dict[str, object], record: UsageRecord) -> None:
    """CloudEvents 1.0: the required attributes, their types, and the optional ones we set."""
    assert all(_ATTRIBUTE.match(name) for name in event), event.keys()
    for required in ("id", "source", "specversion", "type"):
        assert isinstance(event[required], str) and event[required], required
    assert event["specversion"] == "1.0"
    assert (event["id"], event["source"], event["type"]) == (
        record.request_id,
        SOURCE,
        "tokenmill.usage",
    )
    assert event["subject"] == record.tenant
    assert event["datacontenttype"] == "application/json"
    assert isinstance(event["time"], str) and _RFC3339_UTC.match(event["time"])
    when = datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
    assert when.tzinfo == UTC and abs(when.timestamp() - record.created_at) < 1e-5
    data = event["data"]
    assert isinstance(data, dict)
    attributed = ("model", "key_id", "agent", "owner", "usage_source", "status", "outcome")
    counted = ("prompt_tokens", "cached_tokens", "completion_tokens", "duration_ms")
    for name in (*attributed, *counted):
        assert data[name] == getattr(record, name), name
    assert data["total_tokens"] == record.total_tokens


async def test_every_record_arrives_once_through_failures_and_a_restart(
    ledger: Engine, collector: Collector, tmp_path: Path
):
    records = [_record(n, NOW - 3000 + n) for n in range(250)]
    insert_records(ledger, records)
    collector.script = [503, "reset", 429]
    cursor_path = tmp_path / "export" / "cursor.json"

    assert await _exporter(ledger, collector, cursor_path).run_once() == 250

    assert collector.ids == {r.request_id for r in records}
    assert len(collector.events) == 250  # failed attempts were never acknowledged
    by_id = {r.request_id: r for r in records}
    for event in collector.events:
        _assert_cloudevent(event, by_id[str(event["id"])])
    answers = [a for _, a in collector.attempts]
    assert answers[:4] == [503, "reset", 429, 204] and len(answers) == 6  # then 2 more batches
    waited = collector.attempts[3][0] - collector.attempts[2][0]
    assert waited >= 0.95  # Retry-After: 1, not the 10 ms backoff
    saved = Cursor.load(cursor_path)
    assert saved.position == (records[-1].created_at, records[-1].request_id)

    # A restart: a new exporter reads the cursor and has nothing to send.
    assert await _exporter(ledger, collector, cursor_path).run_once() == 0
    assert len(collector.attempts) == 6


async def test_a_record_that_reaches_the_ledger_late_is_still_exported(
    ledger: Engine, collector: Collector, tmp_path: Path
):
    cursor_path = tmp_path / "cursor.json"
    insert_records(ledger, [_record(n, NOW - 2000 + n) for n in range(50)])
    assert await _exporter(ledger, collector, cursor_path, lookback_s=600).run_once() == 50
    head = Cursor.load(cursor_path).created_at

    # Committed after the cursor passed its time (a long stream, a replayed journal), next
    # to a record that is simply new; and one too far behind to be noticed.
    late, new, too_late = (
        _record(900, head - 20.5),
        _record(901, head + 1),
        _record(902, head - 1200),
    )
    insert_records(ledger, [late, new, too_late])
    sent = await _exporter(ledger, collector, cursor_path, lookback_s=600).run_once()

    assert {late.request_id, new.request_id} <= collector.ids
    # The late row's 10 s bucket went again, whole: repeats the collector drops by id.
    assert 2 <= sent <= 2 + 11
    assert too_late.request_id not in collector.ids  # beyond lookback_s: the documented bound
    wire = len(collector.events)
    assert await _exporter(ledger, collector, cursor_path, lookback_s=600).run_once() == 0
    assert len(collector.events) == wire


async def test_records_wait_until_they_settle(ledger: Engine, collector: Collector, tmp_path: Path):
    clock = [NOW]
    exporter = _exporter(
        ledger, collector, tmp_path / "c.json", settle_s=60, clock=lambda: clock[0]
    )
    insert_records(ledger, [_record(1, NOW - 120), _record(2, NOW - 10)])
    assert await exporter.run_once() == 1
    clock[0] += 60
    assert await exporter.run_once() == 1
    assert collector.ids == {"req-00001", "req-00002"}


async def test_a_refused_batch_never_moves_the_cursor(
    ledger: Engine, collector: Collector, tmp_path: Path
):
    cursor_path = tmp_path / "cursor.json"
    records = [_record(n, NOW - 1000 + n) for n in range(30)]
    insert_records(ledger, records)
    collector.always = 400  # not retried: the collector rejects the events themselves
    with pytest.raises(ExportError, match="refused"):
        await _exporter(ledger, collector, cursor_path, batch_size=10).run_once()
    assert len(collector.attempts) == 1 and not cursor_path.exists()

    collector.always = 503  # retried, up to max_attempts
    with pytest.raises(ExportError, match="after 3 tries"):
        await _exporter(ledger, collector, cursor_path, max_attempts=3).run_once()
    assert len(collector.attempts) == 4 and not cursor_path.exists()

    collector.always = None
    assert await _exporter(ledger, collector, cursor_path).run_once() == 30
    assert collector.ids == {r.request_id for r in records}


def test_retry_after_takes_seconds_or_a_date():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = parse_retry_after(
        format_datetime(datetime.fromtimestamp(time.time() + 30, UTC), usegmt=True)
    )
    assert later is not None and 28 <= later <= 30
    assert parse_retry_after("99999") == 600.0  # bounded


def test_a_cursor_survives_a_round_trip(tmp_path: Path):
    cursor = Cursor(NOW, "req-1", {170000: 3})
    cursor.save(tmp_path / "c.json")
    assert Cursor.load(tmp_path / "c.json") == cursor
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]  # no temp file left


# -- CSV / JSON lines from the real server ------------------------------------------------


def _chat(server: ServerProcess, key: str) -> None:
    body = {"model": "smollm2-135m", "max_tokens": 8,
            "messages": [{"role": "user", "content": "Say hello."}]}  # fmt: skip
    resp = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert resp.status_code == 200, resp.text


def _export(server: ServerProcess, key: str, **params: str) -> httpx.Response:
    return httpx.get(server.url + "/admin/usage/records", params=params, timeout=30,
                     headers={"Authorization": f"Bearer {key}"})  # fmt: skip


def test_usage_records_export_as_csv_and_jsonl(server: ServerProcess, tenant_key, tmp_path: Path):
    tenant, key = tenant_key
    _chat(server, key)
    _chat(server, key)
    [total] = server.tenant_usage(tenant, 2)

    resp = _export(server, ADMIN_KEY, tenant=tenant, format="csv")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(resp.text))
    rows = list(reader)
    assert reader.fieldnames == list(RECORD_FIELDS)
    assert len(rows) == 2 and {r["tenant"] for r in rows} == {tenant}
    for name in ("prompt_tokens", "cached_tokens", "completion_tokens"):
        assert sum(int(r[name]) for r in rows) == total[name], name
    assert {r["stream"] for r in rows} == {"false"} and {r["outcome"] for r in rows} == {"ok"}

    lines = _export(server, ADMIN_KEY, tenant=tenant, format="jsonl").text.splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == [r["request_id"] for r in rows]
    assert _export(server, ADMIN_KEY, tenant=tenant, outcome="error").text.count("\n") == 1

    # The CLI streams the same export to a file.
    out = tmp_path / "usage.jsonl"
    cli = subprocess.run(
        [sys.executable, "-m", "tokenmill", "export-usage", "--tenant", tenant,
         "--format", "jsonl", "--out", str(out)],
        env=server.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert out.read_text().splitlines() == lines


def test_a_tenant_admin_exports_only_its_own_tenant(server: ServerProcess, tenant_key):
    tenant, key = tenant_key
    _chat(server, key)
    server.tenant_usage(tenant, 1)
    other = f"{tenant[:50]}-other"
    server.admin("POST", "/admin/tenants", json={"name": other})
    other_admin = server.new_key(other, "tenant-admin")

    denied = _export(server, other_admin, tenant=tenant)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "tenant_denied"
    own = _export(server, other_admin)  # no tenant given: its own, which has no usage
    assert own.status_code == 200 and own.text.splitlines() == [",".join(RECORD_FIELDS)]

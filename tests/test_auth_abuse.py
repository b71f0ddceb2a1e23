"""Cheap abuse is bounded, against a real `tokenmill up` on 127.0.0.1: a flood of requests
without a key writes a bounded number of audit records (which still account for every
refusal), a missing key counts toward the lockout, the local admin is not locked out by the
flood from its own address, and an idle connection is closed at the configured timeout."""

import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tokenmill.security.keys import generate_secret
from tokenmill.security.refusals import SUMMARY_ACTION
from tokenmill.testing import ADMIN_KEY, ServerProcess

IDLE_S = 1
CODES = 3  # missing_api_key, invalid_api_key, too_many_auth_failures
WINDOWS = 2  # this test runs well under a minute: it spans at most two 60 s windows


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path, extra_env={"TOKENMILL_HTTP_IDLE_TIMEOUT_S": str(IDLE_S)})
    server.start(timeout=60, default_model=False)
    yield server
    server.stop()


def _unauthenticated_rows(srv: ServerProcess) -> list[dict[str, Any]]:
    with sqlite3.connect(srv.data_dir / "tokenmill.db") as db:
        rows = db.execute(
            "SELECT action, outcome, json_extract(detail, '$.count'), "
            "json_extract(detail, '$.code'), json_extract(detail, '$.locked_out') "
            "FROM audit_log WHERE actor = 'unauthenticated' ORDER BY seq"
        ).fetchall()
    keys = ("action", "outcome", "count", "code", "locked_out")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def test_a_flood_without_keys_is_audited_in_bounded_rows_and_the_admin_still_gets_in(srv):
    sent: list[int] = []
    with httpx.Client(base_url=srv.url, timeout=10) as client:
        for path in ("/health", "/openapi.json") * 10:  # routes that need no key never count
            assert client.get(path).status_code == 200
        for i in range(1_500):
            if i % 3 == 0:
                resp = client.get("/v1/models")
            elif i % 3 == 1:
                resp = client.post("/v1/chat/completions", json={"model": "m", "messages": []})
            elif i % 30 == 2:
                resp = client.get("/admin/tenants", headers={"Authorization": "Bearer nope"})
            elif i % 30 == 5:
                auth = {"Authorization": f"Bearer {generate_secret()}"}  # a key nobody has
                resp = client.get("/v1/models", headers=auth)
            else:
                resp = client.get("/admin/tenants")
            sent.append(resp.status_code)
        admin = client.get("/admin/tenants", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    srv.stop()  # closes the open window: its summaries are written
    rows = _unauthenticated_rows(srv)
    summaries = [r for r in rows if r["action"] == SUMMARY_ACTION]
    one_by_one = [r for r in rows if r["action"] != SUMMARY_ACTION]
    # per address and window: one record per code, one per lockout (at most two a window of
    # 60 s, as a lockout lasts 60 s), and one summary per code
    assert len(one_by_one) <= WINDOWS * (CODES + 2), one_by_one
    assert len(summaries) <= WINDOWS * CODES, summaries
    assert len(one_by_one) + sum(r["count"] for r in summaries) == len(sent)  # all counted
    assert any(r["locked_out"] == 1 for r in one_by_one)  # the lockout itself is on record
    assert {r["code"] for r in rows} == {"missing_api_key", "too_many_auth_failures",
                                         "invalid_api_key"}  # fmt: skip
    # the missing keys counted (and the keyless routes did not): the 11th refusal found the
    # address locked out
    assert sent[:10] == [401] * 10 and sent[10] == 429
    assert admin.status_code == 200  # the local admin was not locked out by the flood


def test_an_idle_connection_is_closed_after_the_configured_timeout(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""  # closed by the server, not by our 10 s timeout
        assert time.monotonic() - started < IDLE_S + 1.5

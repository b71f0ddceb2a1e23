"""Replicas as data: the controller writes each replica's row (node, engine, endpoint, state)
and a heartbeat while it owns it; a new run claims its node's rows afresh."""

import time
from pathlib import Path

from tokenmill.runtime.instances import STALE_AFTER_S, read_instances
from tokenmill.store.db import make_engine, sqlite_url
from tokenmill.testing import ServerProcess


def _rows(srv: ServerProcess) -> list[dict]:
    return list(srv.admin("GET", "/admin/replicas")["data"])


def _until(srv: ServerProcess, check, timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = _rows(srv)
        if check(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_replica_rows_follow_the_replicas_and_a_new_run_claims_them(tmp_path: Path):
    srv = ServerProcess(tmp_path / "data").start()
    try:
        [row] = _rows(srv)
        assert (row["id"], row["deployment"], row["engine"]) == (
            "smollm2-135m-0", "smollm2-135m", "llamacpp",
        )  # fmt: skip
        assert row["state"] == "ready" and row["live"] and row["pid"]
        assert row["endpoint"].startswith("http://127.0.0.1:")
        fixed = {"min_replicas": 2, "max_replicas": 2}
        srv.admin("PATCH", "/admin/deployments/smollm2-135m", json=fixed)
        rows = _until(srv, lambda rs: [r["state"] for r in rs] == ["ready", "ready"])
        assert [r["id"] for r in rows] == ["smollm2-135m-0", "smollm2-135m-1"]
        assert rows[0]["pid"] != rows[1]["pid"]
        assert rows[0]["heartbeat_age_s"] < STALE_AFTER_S
        before = {r["pid"] for r in rows}
    finally:
        srv.kill9()  # the controller dies: its rows stay, their heartbeat stops
    db = make_engine(sqlite_url(tmp_path / "data"))
    later = read_instances(db, now=time.time() + STALE_AFTER_S)
    assert [r["live"] for r in later] == [False, False]  # readers see it is gone
    db.dispose()
    srv.start()  # a new run on the node claims its rows: what it runs now, nothing else
    try:
        rows = _until(srv, lambda rs: [r["state"] for r in rs] == ["ready", "ready"])
        assert [(r["id"], r["state"], r["live"]) for r in rows] == [
            ("smollm2-135m-0", "ready", True), ("smollm2-135m-1", "ready", True),
        ]  # fmt: skip
        assert not {r["pid"] for r in rows} & before  # this run's engines
    finally:
        srv.stop()

"""kill -9 during load: every response a client completed is in the ledger exactly once."""

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tokenmill.testing import ServerProcess

MODEL = "smollm2-135m"
WORKERS = 6
KILL_AFTER_COMPLETED = 24
LOAD_DEADLINE_S = 60.0


async def _one(client: httpx.AsyncClient, key: str, i: int) -> tuple[str, int, int] | None:
    """Send one request; return (request id, prompt, completion) only if fully received."""
    stream = i % 2 == 0
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": f"Count to {i % 7 + 2}."}],
        "max_tokens": 8,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    headers = {"Authorization": f"Bearer {key}"}
    if not stream:
        resp = await client.post("/v1/chat/completions", json=body, headers=headers)
        if resp.status_code != 200:
            return None
        usage = resp.json()["usage"]
        return resp.headers["x-request-id"], usage["prompt_tokens"], usage["completion_tokens"]
    async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as resp:
        usage, done = None, False
        async for line in resp.aiter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: "):
                chunk = orjson.loads(line[6:])
                usage = chunk.get("usage") or usage
        if not done or usage is None:
            return None
        return resp.headers["x-request-id"], usage["prompt_tokens"], usage["completion_tokens"]


async def _load_then_kill(srv: ServerProcess, key: str) -> dict[str, tuple[int, int]]:
    completed: dict[str, tuple[int, int]] = {}
    stop = asyncio.Event()
    counter = iter(range(10_000))

    async def worker(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                got = await _one(client, key, next(counter))
            except (httpx.HTTPError, orjson.JSONDecodeError):
                return  # the server is gone
            if got is not None:
                completed[got[0]] = (got[1], got[2])

    async def killer() -> None:
        deadline = time.monotonic() + LOAD_DEADLINE_S
        while len(completed) < KILL_AFTER_COMPLETED and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        srv.kill9()  # mid-load: requests are in flight right now
        stop.set()

    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as client:
        await asyncio.gather(killer(), *(worker(client) for _ in range(WORKERS)))
    return completed


def _ledger(data_dir: Path) -> dict[str, tuple[int, int]]:
    with sqlite3.connect(data_dir / "tokenmill.db") as db:
        rows = db.execute(
            "SELECT request_id, prompt_tokens, completion_tokens FROM usage_records"
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead but not yet reaped by its (dead) parent's reaper.
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("sync", ["fsync", "write"])
def test_kill_9_mid_load_loses_and_duplicates_nothing(tmp_path: Path, sync: str):
    srv = ServerProcess(tmp_path / "crash", extra_env={"TOKENMILL_JOURNAL_SYNC": sync}).start()
    key = srv.new_tenant_key("crashy")
    engine_pids = [
        r["pid"]
        for d in srv.admin("GET", "/admin/deployments")["data"]
        for r in d["replica_status"]
    ]
    completed = asyncio.run(_load_then_kill(srv, key))
    assert len(completed) >= KILL_AFTER_COMPLETED

    # No orphans: the engine died with its supervisor.
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in engine_pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in engine_pids)

    restarted = ServerProcess(
        srv.data_dir, extra_env=srv.extra_env
    ).start()  # replays the journal on start
    try:
        ledger = _ledger(srv.data_dir)
        missing = set(completed) - set(ledger)
        assert not missing, f"{len(missing)} completed responses have no usage record"
        for rid, counts in completed.items():
            assert ledger[rid] == counts, rid
        # A clean stop (SIGTERM) drains the journal into the ledger and removes its segments.
        assert restarted.stop() in (0, -signal.SIGTERM)
        assert not list((srv.data_dir / "journal").glob("usage-*.jsonl"))
        # Starting again adds nothing.
        again = ServerProcess(srv.data_dir, extra_env=srv.extra_env).start()
        assert _ledger(srv.data_dir) == ledger
        again.stop()
    finally:
        restarted.stop()

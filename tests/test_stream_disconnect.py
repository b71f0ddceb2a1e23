"""A client that leaves mid-stream is metered for what it was delivered, marked partial."""

import sqlite3
import time

import httpx

from tokenmill.testing import ServerProcess

MODEL = "smollm2-135m"


def _records(server: ServerProcess, tenant: str) -> list[sqlite3.Row]:
    with sqlite3.connect(server.data_dir / "tokenmill.db") as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM usage_records WHERE tenant = ?", (tenant,)).fetchall()


def test_disconnect_mid_stream_meters_delivered_tokens(server: ServerProcess, tenant_key):
    tenant, key = tenant_key
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write a long story about a lighthouse."}],
        "max_tokens": 400,
        "stream": True,
    }
    received = 0
    with (
        httpx.Client(base_url=server.url, timeout=30) as client,
        client.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as resp,
    ):
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: ") and '"content":"' in line:
                received += 1
            if received == 5:
                break  # leaving the block closes the connection mid-stream
    deadline = time.monotonic() + 10
    rows = _records(server, tenant)
    while not rows and time.monotonic() < deadline:
        time.sleep(0.1)
        rows = _records(server, tenant)
    [row] = rows
    assert row["outcome"] == "partial"
    assert row["status"] == 499
    assert row["usage_source"] == "engine_timings"
    assert row["prompt_tokens"] > 0
    # Tokens the gateway handed over before it noticed: at least what we read, far below 400.
    assert received <= row["completion_tokens"] < 100

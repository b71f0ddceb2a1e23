"""`tokenmill reconcile` after a bounded real load: the ledger agrees with the engine's own
counters to the token, and issued invoices agree with the ledger."""

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tokenmill.engines.llamacpp import LlamaCppAdapter
from tokenmill.testing import ServerProcess

MODEL = "smollm2-135m"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own: the replica's counters hold this module's traffic only."""
    srv = ServerProcess(tmp_path_factory.mktemp("reconcile")).start()
    yield srv
    srv.stop()


async def _load(srv: ServerProcess, key: str, n: int) -> int:
    """n requests, 8 at a time (twice the replica's slots); returns how many were served."""
    async with httpx.AsyncClient(
        base_url=srv.url, timeout=120, headers={"Authorization": f"Bearer {key}"}
    ) as http:

        async def one(i: int) -> bool:
            body = {
                "model": MODEL,
                "max_tokens": 4 + i % 13,
                "stream": i % 2 == 0,
                "messages": [{"role": "user", "content": f"Tell me about {i} cats."}],
            }
            async with http.stream("POST", "/v1/chat/completions", json=body) as resp:
                await resp.aread()
                assert resp.status_code in (200, 429)  # a refusal never reaches the engine
                return resp.status_code == 200

        served = 0
        for start in range(0, n, 8):
            served += sum(await asyncio.gather(*(one(i) for i in range(start, start + 8))))
        return served


def test_after_a_real_load_the_ledger_and_the_engine_agree(fresh: ServerProcess):
    key = fresh.new_tenant_key("load")
    served = asyncio.run(_load(fresh, key, 32))
    assert served >= 16
    fresh.tenant_usage("load", served)
    done = subprocess.run(
        [sys.executable, "-m", "tokenmill", "reconcile", "--json"],
        env=fresh.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (replica,) = json.loads(done.stdout)["replicas"]
    assert replica["status"] == "ok" and set(replica["drift"].values()) == {0}
    assert replica["engine"]["completion"] > served and replica["engine"]["cached"] > 0


def test_engine_counters_are_read_from_llama_cpp_metrics():
    text = Path(__file__).with_name("data").joinpath("llamacpp_metrics.txt").read_text()
    assert LlamaCppAdapter().engine_counts(text) is not None

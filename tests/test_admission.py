"""The gateway's queue against the real engine: over capacity, requests wait (bounded) or are
refused with 429 + Retry-After, never a 5xx; a client that leaves while queued costs nothing."""

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tokenmill.testing import ServerProcess

MODEL = "smollm2-135m"  # 4 parallel slots on one llama.cpp replica
QUEUE_WAIT_S = 1.0


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"TOKENMILL_QUEUE_WAIT_S": str(QUEUE_WAIT_S)}
    srv = ServerProcess(tmp_path_factory.mktemp("tight"), extra_env=env).start()
    yield srv
    srv.stop()


def _body(max_tokens: int) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Tell me a long story."}],
            "max_tokens": max_tokens, "temperature": 0}  # fmt: skip


def _ledger_requests(srv: ServerProcess, tenant: str, expected: int) -> int:
    return sum(r["requests"] for r in srv.tenant_usage(tenant, expected))


async def _burst(srv: ServerProcess, key: str, n: int, max_tokens: int) -> list[httpx.Response]:
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=srv.url, timeout=60) as client:
        return await asyncio.gather(
            *(client.post("/v1/chat/completions", json=_body(max_tokens), headers=auth)
              for _ in range(n))
        )  # fmt: skip


def test_overload_is_refused_with_retry_after_never_5xx(tight: ServerProcess):
    key = tight.new_tenant_key("flood")
    # 16 requests of ~2-3 s each on 4 slots, each allowed to wait 1 s: most cannot be placed.
    responses = asyncio.run(_burst(tight, key, 16, max_tokens=96))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) >= 4 and statuses.count(429) >= 1, statuses
    for r in responses:
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["type"] == "rate_limit_error"
    served = statuses.count(200)
    assert _ledger_requests(tight, "flood", served) == served  # refused ones cost nothing


async def _leave_while_queued(srv: ServerProcess, key: str) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=srv.url, timeout=60) as client:
        busy = [asyncio.create_task(client.post("/v1/chat/completions", json=_body(64),
                                                headers=auth)) for _ in range(4)]  # fmt: skip
        await asyncio.sleep(0.3)  # the 4 slots are taken
        with pytest.raises(httpx.ReadTimeout):  # queued; the client gives up and disconnects
            await client.post("/v1/chat/completions", json=_body(64), headers=auth,
                              timeout=httpx.Timeout(60, read=0.3))  # fmt: skip
        for r in await asyncio.gather(*busy):
            assert r.status_code == 200, r.text
        # Had the leaver stayed queued it would be running now: nothing may be waiting or served.
        metrics = srv.metrics()
        assert f'tokenmill_queue_depth{{model="{MODEL}"}} 0.0' in metrics
        assert f'tokenmill_requests_in_flight{{model="{MODEL}"}} 0.0' in metrics


def test_a_client_that_leaves_while_queued_is_not_metered(server: ServerProcess, tenant_key):
    tenant, key = tenant_key  # on the default server: a queued request may wait 30 s
    asyncio.run(_leave_while_queued(server, key))
    assert _ledger_requests(server, tenant, 4) == 4

"""A server told to export usage as CloudEvents does: every real request arrives at the
collector once by id, OpenMeter-shaped."""

import asyncio
from pathlib import Path

import httpx
from aiohttp import web

from tokenmill.testing import ServerProcess, free_port


async def test_real_usage_reaches_a_cloudevents_collector(tmp_path: Path):
    received: dict[str, dict] = {}
    arrived = asyncio.Event()

    async def collect(request: web.Request) -> web.Response:
        assert request.content_type == "application/cloudevents-batch+json"
        assert request.headers["Authorization"] == "Bearer collector-token"
        for event in await request.json():
            received[event["id"]] = event
        arrived.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/api/v1/events", collect)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    env = {
        "TOKENMILL_EVENTS_URL": f"http://127.0.0.1:{port}/api/v1/events",
        "TOKENMILL_EVENTS_SOURCE": "gateway-test",
        "TOKENMILL_EVENTS_TOKEN": "collector-token",
        "TOKENMILL_EVENTS_EVERY_S": "0.5",
        "TOKENMILL_EVENTS_SETTLE_S": "0",
    }
    srv = ServerProcess(tmp_path / "srv", extra_env=env)
    await asyncio.to_thread(srv.start)
    try:
        key = await asyncio.to_thread(srv.new_tenant_key, "metered")
        ids = []
        async with httpx.AsyncClient(
            base_url=srv.url, timeout=60, headers={"Authorization": f"Bearer {key}"}
        ) as http:
            for _ in range(3):
                resp = await http.post(
                    "/v1/chat/completions",
                    json={
                        "model": "smollm2-135m",
                        "max_tokens": 4,
                        "messages": [{"role": "user", "content": "Hi"}],
                    },
                )
                ids.append(resp.headers["x-request-id"])

        async def all_arrived() -> None:
            while not set(ids) <= set(received):
                arrived.clear()
                await arrived.wait()

        await asyncio.wait_for(all_arrived(), timeout=30)
        event = received[ids[0]]
        assert (event["specversion"], event["type"], event["source"], event["subject"]) == (
            "1.0",
            "tokenmill.usage",
            "gateway-test",
            "metered",
        )
        assert event["data"]["completion_tokens"] > 0
    finally:
        await asyncio.to_thread(srv.stop)
        await runner.cleanup()

"""Which async HTTP client should relay to engines? aiohttp vs httpx, same upstream, same run.

    python benchmarks/relay_client.py [--requests 3000] [--out benchmarks/results/relay_client.json]

Measures, against benchmarks/fast_upstream.py on loopback: non-streaming requests/s at 32
concurrent, and streamed SSE chunks/s reading 1,000-chunk answers line by line (8 concurrent).
"""

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import uvloop

from tokenmill.gateway.sse import sse_events
from tokenmill.testing import free_port

BODY = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
STREAM = b'{"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
CHUNKS = 1000
HEADERS = {"Content-Type": "application/json"}


async def _drive(n: int, concurrency: int, one: Callable[[], Awaitable[int]]) -> tuple[float, int]:
    left = n
    total = 0

    async def worker() -> None:
        nonlocal left, total
        while left > 0:
            left -= 1
            total += await one()

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t, total


async def with_aiohttp(url: str, n: int, streams: int) -> dict[str, float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

        async def post() -> int:
            async with s.post(url, data=BODY, headers=HEADERS) as r:
                await r.read()
            return 1

        async def stream_lines() -> int:
            count = 0
            async with s.post(url, data=STREAM, headers=HEADERS) as r:
                async for line in r.content:
                    count += line.startswith(b"data: {")
            return count

        async def stream_events() -> int:  # what the gateway does: read blocks, split events
            count = 0
            async with s.post(url, data=STREAM, headers=HEADERS) as r:
                async for event in sse_events(r.content):
                    count += event.startswith(b"data: {")
            return count

        secs, _ = await _drive(n, 32, post)
        lsecs, lchunks = await _drive(streams, 8, stream_lines)
        esecs, echunks = await _drive(streams, 8, stream_events)
    return {
        "requests_per_s": n / secs,
        "chunks_per_s": lchunks / lsecs,
        "chunks_per_s_event_split": echunks / esecs,
    }


async def with_httpx(url: str, n: int, streams: int) -> dict[str, float]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits) as c:

        async def post() -> int:
            (await c.post(url, content=BODY, headers=HEADERS)).read()
            return 1

        async def stream() -> int:
            count = 0
            async with c.stream("POST", url, content=STREAM, headers=HEADERS) as r:
                async for line in r.aiter_lines():
                    count += line.startswith("data: {")
            return count

        secs, _ = await _drive(n, 32, post)
        ssecs, chunks = await _drive(streams, 8, stream)
    return {"requests_per_s": n / secs, "chunks_per_s": chunks / ssecs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--streams", type=int, default=40)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/relay_client.json"))
    args = ap.parse_args()
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "fast_upstream.py"),
         "--port", str(port), "--chunks", str(CHUNKS)],
    )  # fmt: skip
    try:
        time.sleep(1.0)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        results = {
            "aiohttp": uvloop.run(with_aiohttp(url, args.requests, args.streams)),
            "httpx": uvloop.run(with_httpx(url, args.requests, args.streams)),
        }
    finally:
        upstream.terminate()
        upstream.wait()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Which async HTTP client should the gateway relay with? aiohttp vs httpx, same upstream, same run.

    python benchmarks/relay_client.py [--requests 3000] [--streams 40]
        [--out benchmarks/results/relay_client.json]

Starts benchmarks/synthetic_upstream.py (1,000-chunk streams) in a subprocess and measures, on
uvloop over loopback, for each client with one shared session/client:
  - non-streaming POST requests/s, sequential (1 in flight) and concurrent (32 in flight);
  - streamed SSE chunks/s reading 1,000-chunk answers one at a time, line by line (the
    client's own line iterator), and, for reference, by splitting read blocks into events.
"""

import argparse
import asyncio
import json
import os
import platform
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import uvloop

from loadgen import sse_data_events
from synthetic_upstream import running

BODY = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
STREAM = b'{"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
HEADERS = {"Content-Type": "application/json"}
CHUNKS = 1000
CONCURRENCY = 32

One = Callable[[], Awaitable[int]]


async def _drive(n: int, concurrency: int, one: One) -> float:
    """Run `one` n times with `concurrency` in flight; returns (units it counted) per second."""
    left, total = n, 0

    async def worker() -> None:
        nonlocal left, total
        while left > 0:
            left -= 1
            counted = await one()  # not `total += await one()`: that reads total before awaiting
            total += counted

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - t)


async def _count_lines(lines: AsyncIterable[bytes]) -> int:
    return sum([1 async for line in lines if line.startswith(b"data: {")])


async def _count_text_lines(lines: AsyncIterable[str]) -> int:
    return sum([1 async for line in lines if line.startswith("data: {")])


async def _count_events(blocks: AsyncIterator[bytes]) -> int:
    return sum([1 async for _ in sse_data_events(blocks)])


async def _measure(
    post: One, stream_lines: One, stream_blocks: One, n: int, streams: int
) -> dict[str, float]:
    await _drive(min(n, 200), CONCURRENCY, post)  # warm up: open the connections
    return {
        "sequential_rps": await _drive(n // 4, 1, post),
        f"c{CONCURRENCY}_rps": await _drive(n, CONCURRENCY, post),
        "stream_lines_chunks_per_s": await _drive(streams, 1, stream_lines),
        "stream_blocks_chunks_per_s": await _drive(streams, 1, stream_blocks),
    }


async def with_aiohttp(url: str, n: int, streams: int) -> dict[str, float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

        async def post() -> int:
            async with s.post(url, data=BODY, headers=HEADERS) as r:
                await r.read()
            return 1

        async def stream_lines() -> int:
            async with s.post(url, data=STREAM, headers=HEADERS) as r:
                return await _count_lines(r.content)

        async def stream_blocks() -> int:
            async with s.post(url, data=STREAM, headers=HEADERS) as r:
                return await _count_events(r.content.iter_any())

        return await _measure(post, stream_lines, stream_blocks, n, streams)


async def with_httpx(url: str, n: int, streams: int) -> dict[str, float]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=CONCURRENCY * 2)
    async with httpx.AsyncClient(limits=limits) as c:

        async def post() -> int:
            await c.post(url, content=BODY, headers=HEADERS)  # reads the body
            return 1

        async def stream_lines() -> int:
            async with c.stream("POST", url, content=STREAM, headers=HEADERS) as r:
                return await _count_text_lines(r.aiter_lines())

        async def stream_blocks() -> int:
            async with c.stream("POST", url, content=STREAM, headers=HEADERS) as r:
                return await _count_events(r.aiter_raw())

        return await _measure(post, stream_lines, stream_blocks, n, streams)


def _table(results: dict[str, dict[str, float]]) -> str:
    cols = list(next(iter(results.values())))
    rows = [["client", *cols]]
    rows += [[name, *(f"{r[c]:,.0f}" for c in cols)] for name, r in results.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(cols) + 1)]
    return "\n".join(
        "  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in rows
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000, help="concurrent POSTs (sequential: 1/4)")
    ap.add_argument("--streams", type=int, default=40, help="1,000-chunk streams per reader")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/relay_client.json"))
    args = ap.parse_args()
    with running(chunks=CHUNKS) as base:
        url = base + "/v1/chat/completions"
        results = {
            "aiohttp": uvloop.run(with_aiohttp(url, args.requests, args.streams)),
            "httpx": uvloop.run(with_httpx(url, args.requests, args.streams)),
        }
    print(_table(results))
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "python": platform.python_version(),
        "versions": {"aiohttp": aiohttp.__version__, "httpx": httpx.__version__},
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "requests": args.requests, "streams": args.streams, "chunks_per_stream": CHUNKS,
        "results": results,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
